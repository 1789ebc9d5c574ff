#pragma once

// Finds the throwaway server started by scripts/mariadb.sh (the CTest fixture sets
// DBPOOL_TEST_ENV_FILE to its DIR/env; DBPOOL_TEST_* variables in the environment also work).
#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/connection.hpp>

#include "../server_support.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace dbpool_test {

struct TestServer {
    std::string socket;
    std::uint16_t port = 0;
    std::string user;
    std::string password;
    std::string database;
    std::string url;
    std::string tls_dir;    // DIR/tls: ca.pem, wrong-ca.pem, client-cert.pem, client-key.pem
    std::string x509_user;  // a user that must present a client certificate (REQUIRE X509)
    std::string x509_password;

    // Options for TCP on 127.0.0.1 with short timeouts.
    dbpool::mysql::ConnectOptions tcp() const {
        dbpool::mysql::ConnectOptions options;
        options.host = "127.0.0.1";
        options.port = port;
        options.user = user;
        options.password = password;
        options.database = database;
        options.connect_timeout = std::chrono::seconds(3);
        options.read_timeout = std::chrono::seconds(20);
        options.write_timeout = std::chrono::seconds(20);
        return options;
    }

    // Options for the unix socket.
    dbpool::mysql::ConnectOptions unix_socket() const {
        dbpool::mysql::ConnectOptions options = tcp();
        options.host = "localhost";
        options.unix_socket = socket;
        return options;
    }

    // The server's root account over the unix socket (no password), for tests that change
    // global server state; such tests run serially (tag [serial]).
    dbpool::mysql::ConnectOptions root() const {
        dbpool::mysql::ConnectOptions options = unix_socket();
        options.user = "root";
        options.password.clear();
        options.database.clear();
        return options;
    }

    // A file in the fixture's TLS directory.
    std::string tls_file(const char* name) const { return tls_dir + "/" + name; }
};

inline const TestServer& test_server() {
    static const TestServer server = [] {
        auto values = server_values(
            "DBPOOL_TEST_ENV_FILE",
            {"DBPOOL_TEST_SOCKET", "DBPOOL_TEST_PORT", "DBPOOL_TEST_USER", "DBPOOL_TEST_PASSWORD",
             "DBPOOL_TEST_DATABASE", "DBPOOL_TEST_URL", "DBPOOL_TEST_TLS_DIR",
             "DBPOOL_TEST_X509_USER", "DBPOOL_TEST_X509_PASSWORD"});
        if (values["DBPOOL_TEST_PORT"].empty()) {
            throw std::runtime_error(
                "no test server: run `scripts/mariadb.sh start DIR` and set "
                "DBPOOL_TEST_ENV_FILE=DIR/env (ctest does this through its fixture)");
        }
        TestServer result;
        result.socket = values["DBPOOL_TEST_SOCKET"];
        result.port = static_cast<std::uint16_t>(std::stoi(values["DBPOOL_TEST_PORT"]));
        result.user = values["DBPOOL_TEST_USER"];
        result.password = values["DBPOOL_TEST_PASSWORD"];
        result.database = values["DBPOOL_TEST_DATABASE"];
        result.url = values["DBPOOL_TEST_URL"];
        result.tls_dir = values["DBPOOL_TEST_TLS_DIR"];
        result.x509_user = values["DBPOOL_TEST_X509_USER"];
        result.x509_password = values["DBPOOL_TEST_X509_PASSWORD"];
        return result;
    }();
    return server;
}

// Whether the server still lists connection `id` (SHOW PROCESSLIST through `admin`).
inline bool server_has_connection(dbpool::mysql::Connection& admin, std::uint64_t id) {
    return admin.query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id)
               .scalar<int>() > 0;
}

}  // namespace dbpool_test

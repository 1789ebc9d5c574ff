#pragma once

// Finds the throwaway server started by scripts/postgres.sh (the CTest fixtures set
// DBPOOL_PG_ENV_FILE to its DIR/env; DBPOOL_PG_* variables in the environment also work), and
// small helpers shared by the PostgreSQL tests.
#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/connection.hpp>

#include "../server_support.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace dbpool_pg_test {

struct TestServer {
    std::string dir;  // the script's DIR: unix socket directory, tls/ with the certificates
    std::uint16_t port = 0;
    std::string user;
    std::string password;
    std::string database;
    std::string url;

    // "host=... port=... user=... dbname=..." with sslmode; the password stays out of it.
    std::string conninfo(const std::string& host = "127.0.0.1",
                         const std::string& sslmode = "disable") const {
        return "host=" + host + " port=" + std::to_string(port) + " user=" + user +
               " dbname=" + database + " sslmode=" + sslmode;
    }

    // Options for TCP on 127.0.0.1 without TLS and with short timeouts.
    dbpool::pg::ConnectOptions tcp() const {
        dbpool::pg::ConnectOptions options;
        options.conninfo = conninfo();
        options.password = password;
        options.connect_timeout = std::chrono::seconds(3);
        options.read_timeout = std::chrono::seconds(20);
        options.write_timeout = std::chrono::seconds(20);
        return options;
    }

    // Options for the unix socket in DIR.
    dbpool::pg::ConnectOptions unix_socket() const {
        dbpool::pg::ConnectOptions options = tcp();
        options.conninfo = "host=" + dir + " port=" + std::to_string(port) + " user=" + user +
                           " dbname=" + database;
        return options;
    }

    // The superuser over the unix socket (trust): pg_terminate_backend of anyone, ALTER SYSTEM.
    dbpool::pg::ConnectOptions admin() const {
        dbpool::pg::ConnectOptions options;
        options.conninfo =
            "host=" + dir + " port=" + std::to_string(port) + " user=postgres dbname=" + database;
        options.connect_timeout = std::chrono::seconds(3);
        options.read_timeout = std::chrono::seconds(20);
        return options;
    }

    std::string tls_file(const std::string& name) const { return dir + "/tls/" + name; }
};

inline const TestServer& test_server() {
    static const TestServer server = [] {
        auto values = dbpool_test::server_values(
            "DBPOOL_PG_ENV_FILE", {"DBPOOL_PG_SOCKET_DIR", "DBPOOL_PG_PORT", "DBPOOL_PG_USER",
                                   "DBPOOL_PG_PASSWORD", "DBPOOL_PG_DATABASE", "DBPOOL_PG_URL"});
        if (values["DBPOOL_PG_PORT"].empty()) {
            throw std::runtime_error(
                "no test server: run `scripts/postgres.sh start DIR` and set "
                "DBPOOL_PG_ENV_FILE=DIR/env (ctest does this through its fixture)");
        }
        TestServer result;
        result.dir = values["DBPOOL_PG_SOCKET_DIR"];
        result.port = static_cast<std::uint16_t>(std::stoi(values["DBPOOL_PG_PORT"]));
        result.user = values["DBPOOL_PG_USER"];
        result.password = values["DBPOOL_PG_PASSWORD"];
        result.database = values["DBPOOL_PG_DATABASE"];
        result.url = values["DBPOOL_PG_URL"];
        return result;
    }();
    return server;
}

using dbpool_test::eventually;
using dbpool_test::unique_table;

// Whether the server still has a session with process id `pid`.
inline bool backend_alive(dbpool::pg::Connection& admin, int pid) {
    return admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).scalar<int>() >
           0;
}

// Ends session `pid` from `admin` (pg_terminate_backend) and waits until it is gone.
inline bool terminate_and_wait(dbpool::pg::Connection& admin, int pid) {
    admin.query("SELECT pg_terminate_backend($1)", pid);
    return eventually([&] { return !backend_alive(admin, pid); });
}

// Process ids of the sessions of `user` (excluding the caller's own).
inline std::vector<int> backends_of(dbpool::pg::Connection& admin, const std::string& user) {
    const auto rows = admin.query(
        "SELECT pid FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'",
        user);
    std::vector<int> pids;
    for (const auto& row : rows)
        pids.push_back(row.get<int>(0));
    return pids;
}

}  // namespace dbpool_pg_test

#pragma once

// The fault tests' own throwaway server (scripts/mariadb.sh in DBPOOL_FAULTS_DIR), an admin
// connection to it, and small helpers for counting and timing. Kept apart from
// tests/mysql/test_server.hpp on purpose: these tests kill and reconfigure their server.
#include <dbpool/mysql.hpp>

#include "../fault_support.hpp"
#include "../server_support.hpp"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef DBPOOL_FAULTS_SCRIPT
#error "DBPOOL_FAULTS_SCRIPT must name scripts/mariadb.sh (tests/faults/CMakeLists.txt sets it)"
#endif

namespace dbpool_faults {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// Seconds as a double, for printing.
inline double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

/// Where the fault server lives and how to reach it (read from DIR/env).
struct FaultServer {
    std::string dir;
    std::string socket;
    std::uint16_t port = 0;
    std::string user;
    std::string password;
    std::string database;

    /// TCP on 127.0.0.1 with 2 s timeouts: every fault shows up within seconds, never hangs.
    dbpool::mysql::ConnectOptions tcp() const {
        dbpool::mysql::ConnectOptions options;
        options.host = "127.0.0.1";
        options.port = port;
        options.user = user;
        options.password = password;
        options.database = database;
        options.connect_timeout = 2s;
        options.read_timeout = 2s;
        options.write_timeout = 2s;
        return options;
    }

    /// root over the unix socket (SET GLOBAL, KILL, PROCESSLIST of everyone).
    dbpool::mysql::ConnectOptions admin() const {
        dbpool::mysql::ConnectOptions options;
        options.host = "localhost";
        options.unix_socket = socket;
        options.user = "root";
        options.database = database;
        options.connect_timeout = 2s;
        options.read_timeout = 5s;
        options.write_timeout = 5s;
        return options;
    }
};

inline const FaultServer& fault_server() {
    static const FaultServer server = [] {
        const char* dir = std::getenv("DBPOOL_FAULTS_DIR");
        if (dir == nullptr || *dir == '\0') {
            throw std::runtime_error(
                "DBPOOL_FAULTS_DIR is not set: run `scripts/mariadb.sh start DIR` and export "
                "DBPOOL_FAULTS_DIR=DIR (ctest does this through the mariadb_faults fixture)");
        }
        auto values = dbpool_test::read_env_file(std::string(dir) + "/env");
        FaultServer result;
        result.dir = dir;
        result.socket = values["DBPOOL_TEST_SOCKET"];
        result.port = static_cast<std::uint16_t>(std::stoi(values["DBPOOL_TEST_PORT"]));
        result.user = values["DBPOOL_TEST_USER"];
        result.password = values["DBPOOL_TEST_PASSWORD"];
        result.database = values["DBPOOL_TEST_DATABASE"];
        return result;
    }();
    return server;
}

/// Runs `scripts/mariadb.sh COMMAND DIR`; returns its exit status, or -1 after killing it at
/// `limit`.
inline int run_script(const std::string& command, std::chrono::seconds limit = 90s) {
    return dbpool_test::run_bash({DBPOOL_FAULTS_SCRIPT, command, fault_server().dir}, limit);
}

/// Restarts the server if an earlier (failed) test left it down; true when it answers.
inline bool ensure_server_up() {
    if (run_script("status", 10s) == 0) return true;
    return run_script("restart") == 0;
}

/// Opens the root connection over the unix socket.
inline dbpool::mysql::Connection admin_connection() {
    return dbpool::mysql::Connection(fault_server().admin());
}

/// Server-side connections of the test user (the admin is root, so it is not counted).
inline long user_connections(dbpool::mysql::Connection& admin) {
    return admin
        .query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
               fault_server().user)
        .scalar<long>();
}

/// Server ids of the test user's connections.
inline std::vector<std::uint64_t> user_connection_ids(dbpool::mysql::Connection& admin) {
    const auto rows = admin.query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?",
                                  fault_server().user);
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 0; i < rows.size(); ++i)
        ids.push_back(rows[i].get<std::uint64_t>(0));
    return ids;
}

/// Polls `condition` every 50 ms until it holds or `limit` passes; returns its last value.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 10s) {
    return dbpool_test::eventually(condition, limit, 50ms);
}

using dbpool_test::ErrorTally;

/// One line of the report on stdout (quoted in the test report).
inline void report(const std::string& test, const std::string& text) {
    std::cout << "[faults] " << test << ": " << text << std::endl;
}

}  // namespace dbpool_faults

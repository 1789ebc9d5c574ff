#pragma once

// The cluster tests' test beds (scripts/replication.sh and scripts/galera.sh, one directory
// each, named by DBPOOL_REPLICATION_DIR and DBPOOL_GALERA_DIR), connect options for their
// nodes, and a bounded way to run the scripts' fault commands (kill9, restart, stop-sql...).
#include <dbpool/mysql.hpp>

#include "../fault_support.hpp"
#include "../server_support.hpp"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef DBPOOL_SCRIPTS_DIR
#error "DBPOOL_SCRIPTS_DIR must name scripts/ (tests/cluster/CMakeLists.txt sets it)"
#endif

namespace dbpool_cluster {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// Seconds as a double, for printing.
inline double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
/// Milliseconds as a whole number, for printing.
inline long long ms(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

/// One test bed: its script, its directory and its nodes (1-based as in the scripts).
struct TestBed {
    std::string script;  // "replication.sh" or "galera.sh"
    std::string dir;
    std::string user;
    std::string password;
    std::string database;
    std::vector<std::uint16_t> ports;  // index 0 = node 1
    std::vector<std::string> sockets;

    int nodes() const { return static_cast<int>(ports.size()); }

    /// TCP to node `n` as the plain test user, 2 s timeouts: faults show within seconds.
    dbpool::mysql::ConnectOptions node(int n) const {
        dbpool::mysql::ConnectOptions options;
        options.host = "127.0.0.1";
        options.port = ports.at(static_cast<std::size_t>(n - 1));
        options.user = user;
        options.password = password;
        options.database = database;
        options.connect_timeout = 2s;
        options.read_timeout = 2s;
        options.write_timeout = 2s;
        return options;
    }

    /// root over node `n`'s unix socket.
    dbpool::mysql::ConnectOptions admin(int n) const {
        dbpool::mysql::ConnectOptions options;
        options.host = "localhost";
        options.unix_socket = sockets.at(static_cast<std::size_t>(n - 1));
        options.user = "root";
        options.database = database;
        options.connect_timeout = 2s;
        options.read_timeout = 10s;
        options.write_timeout = 10s;
        return options;
    }

    /// Runs `scripts/SCRIPT COMMAND DIR [NODE]`; its exit status, or -1 after killing it at
    /// `limit`. The child inherits no descriptor above 2 (the servers must not keep ours).
    int run(const std::string& command, int node_number = 0,
            std::chrono::seconds limit = 120s) const {
        std::vector<std::string> args = {std::string(DBPOOL_SCRIPTS_DIR) + "/" + script, command,
                                         dir};
        if (node_number > 0) args.push_back(std::to_string(node_number));
        return dbpool_test::run_bash(std::move(args), limit);
    }

    /// Brings back any node an earlier (failed) test left down; true when all answer.
    bool ensure_up() const {
        if (run("status", 0, 15s) == 0) return true;
        for (int n = 1; n <= nodes(); ++n) {
            if (run("status", n, 15s) != 0 && run("restart", n) != 0) return false;
        }
        return run("status", 0, 15s) == 0;
    }
};

inline TestBed load_bed(const char* variable, const char* script) {
    const char* dir = std::getenv(variable);
    if (dir == nullptr || *dir == '\0') {
        throw std::runtime_error(std::string(variable) + " is not set: run `scripts/" + script +
                                 " start DIR` and export " + variable +
                                 "=DIR (ctest does this through its fixture)");
    }
    auto values = dbpool_test::read_env_file(std::string(dir) + "/env");
    TestBed bed;
    bed.script = script;
    bed.dir = dir;
    bed.user = values["DBPOOL_CLUSTER_USER"];
    bed.password = values["DBPOOL_CLUSTER_PASSWORD"];
    bed.database = values["DBPOOL_CLUSTER_DATABASE"];
    const int count = std::stoi(values["DBPOOL_CLUSTER_NODES"]);
    for (int n = 1; n <= count; ++n) {
        const std::string prefix = "DBPOOL_NODE" + std::to_string(n) + "_";
        bed.ports.push_back(static_cast<std::uint16_t>(std::stoi(values[prefix + "PORT"])));
        bed.sockets.push_back(values[prefix + "SOCKET"]);
    }
    return bed;
}

/// The replication test bed (node 1 primary, 2 and 3 replicas).
inline const TestBed& replication() {
    static const TestBed bed = load_bed("DBPOOL_REPLICATION_DIR", "replication.sh");
    return bed;
}

/// The Galera test bed (three peers).
inline const TestBed& galera() {
    static const TestBed bed = load_bed("DBPOOL_GALERA_DIR", "galera.sh");
    return bed;
}

/// Polls `condition` every 20 ms until it holds or `limit` passes; returns its last value.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 10s) {
    return dbpool_test::eventually(condition, limit);
}

/// One line of the report on stdout (quoted in the closing note).
inline void report(const std::string& test, const std::string& text) {
    std::cout << "[cluster] " << test << ": " << text << std::endl;
}

}  // namespace dbpool_cluster

#pragma once

// The fault tests' own throwaway server (scripts/mariadb.sh in DBPOOL_FAULTS_DIR), an admin
// connection to it, and small helpers for counting and timing. Kept apart from
// tests/mysql/test_server.hpp on purpose: these tests kill and reconfigure their server.
#include <dbpool/mysql.hpp>

#include <spawn.h>
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

extern char** environ;

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
        std::map<std::string, std::string> values;
        std::ifstream in(std::string(dir) + "/env");
        if (!in) throw std::runtime_error(std::string("cannot read ") + dir + "/env");
        std::string line;
        while (std::getline(in, line)) {
            const auto eq = line.find('=');
            if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
        }
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
/// `limit`. The child gets no descriptor above 2, so the server never inherits our sockets.
inline int run_script(const std::string& command, std::chrono::seconds limit = 90s) {
    const std::string script = DBPOOL_FAULTS_SCRIPT;
    const std::string dir = fault_server().dir;
    std::string bash = "/bin/bash";
    std::vector<char*> argv = {bash.data(), const_cast<char*>(script.c_str()),
                               const_cast<char*>(command.c_str()), const_cast<char*>(dir.c_str()),
                               nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    pid_t pid = -1;
    const int spawned = posix_spawn(&pid, "/bin/bash", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) return -1;
    const auto deadline = Clock::now() + limit;
    for (;;) {
        int status = 0;
        const pid_t done = ::waitpid(pid, &status, WNOHANG);
        if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (done < 0) return -1;
        if (Clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(20ms);
    }
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
    const auto deadline = Clock::now() + limit;
    while (!condition()) {
        if (Clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(50ms);
    }
    return true;
}

/// Thread-safe tally of errors by ErrorCode and native number.
class ErrorTally {
public:
    void add(const dbpool::Error& error) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++by_code_[dbpool::to_string(error.code())];
        ++by_native_[error.native_code()];
        ++total_;
        if (example_.count(dbpool::to_string(error.code())) == 0) {
            example_[dbpool::to_string(error.code())] = error.what();
        }
    }
    void add_untyped(const std::exception& error) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++untyped_;
        if (untyped_example_.empty()) untyped_example_ = error.what();
    }
    /// Runs `request`, counting what it throws; true when it threw nothing.
    template <class Request>
    bool record(Request&& request) {
        try {
            request();
            return true;
        } catch (const dbpool::Error& error) {
            add(error);
        } catch (const std::exception& error) {
            add_untyped(error);
        }
        return false;
    }
    long total() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return total_;
    }
    long untyped() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return untyped_;
    }
    long count(dbpool::ErrorCode code) const {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto found = by_code_.find(dbpool::to_string(code));
        return found == by_code_.end() ? 0 : found->second;
    }
    long native(int number) const {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto found = by_native_.find(number);
        return found == by_native_.end() ? 0 : found->second;
    }
    /// "connection_lost=3 (2013:2 1927:1) connect_failed=5 ..." for the report.
    std::string summary() const {
        std::lock_guard<std::mutex> lock(mutex_);
        std::ostringstream out;
        out << "total=" << total_;
        for (const auto& [code, n] : by_code_)
            out << ' ' << code << '=' << n;
        out << " native{";
        for (const auto& [number, n] : by_native_)
            out << ' ' << number << ':' << n;
        out << " }";
        if (untyped_ > 0) out << " UNTYPED=" << untyped_ << " (" << untyped_example_ << ")";
        return out.str();
    }
    /// One message per code, to show what callers see.
    std::string examples() const {
        std::lock_guard<std::mutex> lock(mutex_);
        std::string out;
        for (const auto& [code, what] : example_)
            out += "    " + code + ": " + what + "\n";
        return out;
    }

private:
    mutable std::mutex mutex_;
    std::map<std::string, long> by_code_;
    std::map<int, long> by_native_;
    std::map<std::string, std::string> example_;
    long total_ = 0;
    long untyped_ = 0;
    std::string untyped_example_;
};

/// One line of the report on stdout (quoted in the test report).
inline void report(const std::string& test, const std::string& text) {
    std::cout << "[faults] " << test << ": " << text << std::endl;
}

}  // namespace dbpool_faults

#pragma once

// What the fault tests of every backend share: running a server script with a time limit, a
// thread-safe tally of the errors callers saw, and a loopback socket that never answers.

#include <dbpool/error.hpp>
#include <dbpool/options.hpp>
#include <dbpool/pool_events.hpp>
#include <dbpool/pool_stats.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace dbpool_test {

/// Runs `bash ARGS...`; its exit status, or -1 after killing it at `limit`. The child gets no
/// descriptor above 2, so a server it starts never inherits the test's sockets.
inline int run_bash(std::vector<std::string> args,
                    std::chrono::seconds limit = std::chrono::seconds(90)) {
    std::string bash = "/bin/bash";
    std::vector<char*> argv = {bash.data()};
    for (std::string& arg : args)
        argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    pid_t pid = -1;
    const int spawned = posix_spawn(&pid, "/bin/bash", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) return -1;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        int status = 0;
        const pid_t done = ::waitpid(pid, &status, WNOHANG);
        if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (done < 0) return -1;
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

/// Thread-safe tally of the errors callers saw, by code, native code and SQLSTATE.
class ErrorTally {
public:
    void add(const dbpool::Error& error) {
        std::lock_guard<std::mutex> lock(mutex_);
        const std::string key = std::string(dbpool::to_string(error.code())) + "/" +
                                std::to_string(error.native_code()) + "/" +
                                (error.sqlstate().empty() ? "-" : error.sqlstate());
        ++by_key_[key];
        ++by_code_[error.code()];
        ++by_native_[error.native_code()];
        ++total_;
        if (example_.count(key) == 0) example_[key] = error.what();
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
        const auto found = by_code_.find(code);
        return found == by_code_.end() ? 0 : found->second;
    }
    /// Errors with this native code (the server's or client library's number).
    long native(int number) const {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto found = by_native_.find(number);
        return found == by_native_.end() ? 0 : found->second;
    }
    /// "total=3 connection_lost/2013/HY000=2 ..." (code/native/SQLSTATE=count).
    std::string summary() const {
        std::lock_guard<std::mutex> lock(mutex_);
        std::ostringstream out;
        out << "total=" << total_;
        for (const auto& [key, n] : by_key_)
            out << ' ' << key << '=' << n;
        if (untyped_ > 0) out << " UNTYPED=" << untyped_ << " (" << untyped_example_ << ")";
        return out.str();
    }
    /// One message per code/native/SQLSTATE, to show what callers see.
    std::string examples() const {
        std::lock_guard<std::mutex> lock(mutex_);
        std::string out;
        for (const auto& [key, what] : example_)
            out += "    " + key + ": " + what + "\n";
        return out;
    }

private:
    mutable std::mutex mutex_;
    std::map<std::string, long> by_key_;
    std::map<dbpool::ErrorCode, long> by_code_;
    std::map<int, long> by_native_;
    std::map<std::string, std::string> example_;
    long total_ = 0;
    long untyped_ = 0;
    std::string untyped_example_;
};

/// A loopback TCP socket on an ephemeral port: listening (accepts through the kernel backlog,
/// never answers) or not (connecting to it is refused). While it lives no other socket can take
/// its port: a closed port could be taken by the very connect that tests it (a loopback connect
/// whose local port equals the remote one connects to itself) or by a server that listens.
class LoopbackSocket {
public:
    explicit LoopbackSocket(bool listening) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw std::runtime_error("socket() failed");
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            throw std::runtime_error("bind() failed");
        }
        socklen_t length = sizeof address;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
        if (listening && ::listen(fd_, 128) != 0) throw std::runtime_error("listen() failed");
    }
    ~LoopbackSocket() { close(); }
    LoopbackSocket(const LoopbackSocket&) = delete;
    LoopbackSocket& operator=(const LoopbackSocket&) = delete;

    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    std::uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

/// What 8 threads saw in 1.5 s against a server that is up but full (see run_against_full).
struct FullServerRun {
    long served = 0;
    ErrorTally errors;
    dbpool::PoolStats stats;
    std::vector<std::string> connect_failures;  // the pool's connect_failed event details

    /// One line for the test report; `setting` says how full the server was.
    std::string describe(const std::string& setting) const {
        std::ostringstream out;
        out << served << " requests by 8 threads, " << setting << "; errors " << errors.summary()
            << "; created=" << stats.created << " failed_connects=" << stats.failed_connects
            << "; first refusal: "
            << (connect_failures.empty() ? std::string("(none)") : connect_failures.front());
        return out.str();
    }
};

/// Runs 8 threads for 1.5 s on a blocking pool of 8 made by `make_pool(options)`, each asking
/// for a connection, running `SELECT 1` and holding it 2 ms, with every error and every
/// connect_failed event recorded.
template <class MakePool>
void run_against_full(MakePool&& make_pool, FullServerRun& run) {
    std::mutex events_mutex;
    dbpool::PoolOptions options;
    options.maxconnections = 8;
    options.blocking = true;
    options.acquire_timeout = std::chrono::seconds(5);
    options.ping = dbpool::Ping::never;
    options.on_event = [&](const dbpool::PoolEvent& event) {
        if (event.kind != dbpool::EventKind::connect_failed) return;
        std::lock_guard<std::mutex> lock(events_mutex);
        run.connect_failures.push_back(event.detail);
    };
    std::atomic<long> served{0};
    {
        auto pool = make_pool(options);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
        std::vector<std::thread> workers;
        for (int t = 0; t < 8; ++t) {
            workers.emplace_back([&] {
                for (long i = 0; i < 100000 && std::chrono::steady_clock::now() < deadline; ++i) {
                    run.errors.record([&] {
                        auto conn = pool->connection();
                        conn->query("SELECT 1").template scalar<int>();
                        std::this_thread::sleep_for(std::chrono::milliseconds(2));
                        ++served;
                    });
                }
            });
        }
        for (auto& worker : workers)
            worker.join();
        run.stats = pool->stats();
    }  // closed: no event arrives after this
    run.served = served.load();
}

}  // namespace dbpool_test

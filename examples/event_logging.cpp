// Logging what a pool does: on_event for connects, failures and closes, on_leak for connections
// held too long (with the file:line that took them).
//
//   event_logging [mysql://user:password@host:port/database]   (default: $DBPOOL_TEST_URL)
//
// It opens a pool with two connections, has the server kill one of them while it is idle (the
// pool notices at the next hand-out and replaces it: the caller sees no error), holds a
// connection past the leak threshold, and closes the pool. Every step shows up in the log.
#include <dbpool/mysql.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

// The log: the callbacks run on pool threads and on the caller's, so writes are serialised.
// A callback must not block for long (it runs on the thread doing the pool's work).
class Log {
public:
    void event(const dbpool::PoolEvent& event) {
        std::lock_guard<std::mutex> lock(mutex_);
        line() << "event " << dbpool::to_string(event.kind) << ": " << event.detail << "\n";
        seen_.insert(event.kind);
        changed_.notify_all();
    }

    void leak(const dbpool::LeakReport& report) {
        std::lock_guard<std::mutex> lock(mutex_);
        line() << "leak " << (report.returned ? "returned" : "suspected") << ": held "
               << report.held.count() << " ms, acquired at "
               << (report.acquired_at.file != nullptr ? report.acquired_at.file : "?") << ":"
               << report.acquired_at.line << "\n";
    }

    void note(const std::string& text) {
        std::lock_guard<std::mutex> lock(mutex_);
        line() << "---- " << text << "\n";
    }

    // Waits (at most 10 s) until an event of `kind` has been logged.
    bool wait_for(dbpool::EventKind kind) {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, std::chrono::seconds(10),
                                 [&] { return seen_.count(kind) != 0; });
    }

    bool saw(dbpool::EventKind kind) {
        std::lock_guard<std::mutex> lock(mutex_);
        return seen_.count(kind) != 0;
    }

private:
    std::ostream& line() {
        const auto since =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_);
        std::cout.width(6);
        return std::cout << since.count() << " ms  ";
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    std::set<dbpool::EventKind> seen_;
    Clock::time_point start_ = Clock::now();
};

}  // namespace

int main(int argc, char** argv) {
    const char* url = argc > 1 ? argv[1] : std::getenv("DBPOOL_TEST_URL");
    if (url == nullptr) {
        std::cerr << "usage: " << argv[0] << " mysql://user:password@host:port/database\n";
        return 2;
    }
    Log log;
    try {
        dbpool::PoolOptions options;
        options.mincached = 2;  // two connections opened at start (and kept)
        options.maxconnections = 4;
        options.blocking = true;
        options.ping_bypass = std::chrono::milliseconds(0);  // ping at every hand-out
        options.leak_threshold = std::chrono::milliseconds(300);
        options.on_event = [&log](const dbpool::PoolEvent& event) { log.event(event); };
        options.on_leak = [&log](const dbpool::LeakReport& report) { log.leak(report); };
        dbpool::PooledPool<dbpool::mysql::Connection> pool(dbpool::mysql::connector(url), options);

        // A connection of our own, outside the pool, plays the database administrator.
        dbpool::mysql::Connection admin(dbpool::mysql::ConnectOptions::from_url(url));

        log.note("the server kills an idle pooled connection");
        unsigned long victim = 0;
        {
            auto connection = pool.connection();
            victim = connection->query("SELECT CONNECTION_ID()").scalar<unsigned long>();
        }  // returned: idle in the pool, and the next request on this thread gets it back
        admin.execute("KILL " + std::to_string(victim));
        for (int i = 0; i < 100; ++i) {  // KILL takes effect asynchronously
            const auto left = admin.query(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", victim);
            if (left.scalar<int>() == 0) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        {
            // The hand-out ping finds it dead: the pool drops it and hands out another one.
            auto connection = pool.connection();
            const auto id = connection->query("SELECT CONNECTION_ID()").scalar<unsigned long>();
            log.note("the request got connection " + std::to_string(id) + " (the killed one was " +
                     std::to_string(victim) + "); no error reached the caller");
        }

        log.note("a connection held past leak_threshold (300 ms)");
        {
            auto connection = pool.connection();  // this line is the file:line reported
            log.wait_for(dbpool::EventKind::leak_suspected);
        }  // returned: reported again as returned
        log.wait_for(dbpool::EventKind::leak_returned);

        log.note("close");
        pool.close();  // idle connections closed now; no callback runs after close() returns
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    using Kind = dbpool::EventKind;
    for (const Kind kind : {Kind::connected, Kind::ping_failed, Kind::closed, Kind::leak_suspected,
                            Kind::leak_returned, Kind::pool_closed}) {
        if (!log.saw(kind)) {
            std::cerr << "unexpected: no " << dbpool::to_string(kind) << " event\n";
            return 1;
        }
    }
    return 0;
}

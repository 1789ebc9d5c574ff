// Regression stress tests of the pool core's races: the pool's lifetime against handles and
// waiters on other threads, the return/waiter handshake, the leak flag, and a busy server.
// Every loop is bounded in rounds and in time; run them under ASan and TSan.
#include "pool_test_support.hpp"

#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using dbpool::ErrorCode;
using dbpool::EventKind;
using dbpool::Ping;
using fake::eventually;
using fake::FakeConnection;
using fake::FakeDatabase;
using namespace std::chrono_literals;

namespace {

using Pool = dbpool::PooledPool<FakeConnection>;
using Handle = Pool::handle_type;
using SteadyClock = std::chrono::steady_clock;

// Pool options for the stress tests: nothing on a background thread unless a test asks.
dbpool::PoolOptions quiet_options() {
    dbpool::PoolOptions options;
    options.background_maintenance = false;
    options.ping = Ping::never;
    return options;
}

// Busy-waits about `n` short iterations: shifts which thread reaches a lock first.
void spin(int n) {
    for (volatile int i = 0; i < n; i = i + 1) {
    }
}

// A second thread that runs `work(round)` each time go(round) is called, so that a round's
// two sides start together without creating a thread per round.
class Partner {
public:
    explicit Partner(std::function<void(int)> work)
        : work_(std::move(work)), thread_([this] { run(); }) {}

    Partner(const Partner&) = delete;
    Partner& operator=(const Partner&) = delete;

    ~Partner() {
        stop_.store(true);
        thread_.join();
    }

    void go(int round) { round_.store(round, std::memory_order_release); }

    // Waits until `round` is done; false after `limit`.
    bool wait(int round, std::chrono::milliseconds limit) const {
        const auto deadline = SteadyClock::now() + limit;
        while (done_.load(std::memory_order_acquire) != round) {
            if (SteadyClock::now() > deadline) return false;
            std::this_thread::yield();
        }
        return true;
    }

private:
    void run() {
        int seen = 0;
        for (;;) {
            int round = 0;
            while ((round = round_.load(std::memory_order_acquire)) == seen) {
                if (stop_.load()) return;
                std::this_thread::yield();
            }
            seen = round;
            work_(round);
            done_.store(round, std::memory_order_release);
        }
    }

    std::atomic<int> round_{0};
    std::atomic<int> done_{0};
    std::atomic<bool> stop_{false};
    std::function<void(int)> work_;
    std::thread thread_;  // last: starts once everything above exists
};

// One thread destroys the pool while another returns (or discards) the only handle, many
// times. The race window is a few instructions wide (the returning thread frees the
// connection's capacity, then checks whether the pool is gone), so the two sides are aligned
// through on_event: the destroying thread's `pool_closed` callback waits (10 ms at most) for
// the returning thread's `closed` event, then spins a little longer, a different amount each
// round, before the destructor goes on.
void destroy_while_returning(bool discard) {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    std::atomic<bool> connection_closed{false};
    std::atomic<int> delay{0};
    auto options = quiet_options();
    options.on_event = [&](const dbpool::PoolEvent& event) {
        if (event.kind == EventKind::closed) connection_closed.store(true);
        if (event.kind != EventKind::pool_closed) return;
        const auto limit = SteadyClock::now() + 10ms;
        while (!connection_closed.load() && SteadyClock::now() < limit) {
        }
        spin(delay.load());
    };
    std::optional<Handle> handle;
    Partner partner([&](int) {
        if (discard) {
            handle->discard();
        } else {
            handle->close();
        }
    });
    const auto deadline = SteadyClock::now() + 4s;
    int rounds = 0;
    bool partner_done = true;
    for (int round = 1; round <= 20000 && SteadyClock::now() < deadline; ++round) {
        auto pool = std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db), options);
        handle.emplace(pool->connection());
        connection_closed = false;
        delay = (round * 37) % 600;
        partner.go(round);
        pool.reset();
        partner_done = partner.wait(round, 5s);
        if (!partner_done) break;
        handle.reset();
        rounds = round;
    }
    INFO(rounds << " rounds");
    REQUIRE(partner_done);
    CHECK(rounds > 0);
    CHECK(db->opens() == rounds);
    CHECK(eventually([&] { return db->open_now() == 0; }, 2s));  // may be closed in the background
    CHECK(db->closes() == rounds);
}

}  // namespace

// --- the pool's lifetime ----------------------------------------------------------------------

TEST_CASE("regression: pool destroyed while another thread discards a handle",
          "[regression][lifetime][concurrency]") {
    destroy_while_returning(true);
}

TEST_CASE("regression: pool destroyed while another thread returns a handle",
          "[regression][lifetime][concurrency]") {
    destroy_while_returning(false);
}

// open_slot() frees the slot, reports connect_failed through on_event, and only then checks
// whether it was the last thing keeping the pool's state alive.
TEST_CASE("regression: pool destroyed while a connect fails on another thread",
          "[regression][lifetime][concurrency]") {
    auto db = std::make_shared<FakeDatabase>();
    std::atomic<bool> in_callback{false};
    auto options = quiet_options();
    options.on_event = [&](const dbpool::PoolEvent& event) {
        if (event.kind != EventKind::connect_failed) return;
        in_callback.store(true);
        std::this_thread::sleep_for(100ms);  // the pool is destroyed meanwhile
    };
    auto pool = std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db), options);
    Pool* raw = pool.get();
    db->fail_connects(1);
    std::atomic<int> outcome{-1};
    std::thread acquirer([&] {
        try {
            auto handle = raw->connection();
            outcome = 0;
        } catch (const dbpool::Error& e) {
            outcome = 1 + static_cast<int>(e.code());
        }
    });
    const bool reported = eventually([&] { return in_callback.load(); }, 5s);
    pool.reset();
    acquirer.join();
    CHECK(reported);
    CHECK((outcome == 1 + static_cast<int>(ErrorCode::connect_failed) ||
           outcome == 1 + static_cast<int>(ErrorCode::pool_closed)));
    CHECK(eventually([&] { return db->open_now() == 0; }, 2s));
}

TEST_CASE("regression: pool destroyed while a thread is blocked in connection()",
          "[regression][lifetime][concurrency]") {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    auto options = quiet_options();
    options.maxconnections = 1;
    options.blocking = true;
    options.acquire_timeout = 10s;
    std::atomic<Pool*> current{nullptr};
    std::atomic<int> outcome{-1};
    std::atomic<SteadyClock::rep> woke_at{0};
    Partner partner([&](int) {
        try {
            auto handle = current.load()->connection();
            outcome = 0;
        } catch (const dbpool::Error& e) {
            outcome = 1 + static_cast<int>(e.code());
        }
        woke_at = SteadyClock::now().time_since_epoch().count();
    });
    const auto deadline = SteadyClock::now() + 3s;
    int rounds = 0;
    int not_closed = 0;
    auto slowest = SteadyClock::duration::zero();
    for (int round = 1; round <= 500 && SteadyClock::now() < deadline; ++round) {
        auto pool = std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db), options);
        auto held = pool->connection();
        current = pool.get();
        outcome = -1;
        partner.go(round);
        const auto limit = SteadyClock::now() + 5s;
        while (pool->stats().waiting != 1 && SteadyClock::now() < limit)
            std::this_thread::yield();
        REQUIRE(pool->stats().waiting == 1);
        const auto destroyed_at = SteadyClock::now();
        pool.reset();  // wakes the waiter with pool_closed
        if (round % 2 == 0) {
            held.close();  // and the last connection out frees the pool's state
        } else {
            held.discard();
        }
        REQUIRE(partner.wait(round, 5s));
        if (outcome != 1 + static_cast<int>(ErrorCode::pool_closed)) ++not_closed;
        slowest = std::max(
            slowest, SteadyClock::time_point(SteadyClock::duration(woke_at.load())) - destroyed_at);
        rounds = round;
    }
    INFO(rounds << " rounds");
    CHECK(rounds > 0);
    CHECK(not_closed == 0);
    CHECK(slowest < 1s);
    CHECK(eventually([&] { return db->open_now() == 0; }, 2s));
}

// --- the return/waiter handshake ---------------------------------------------------------------

namespace {

// `threads` threads share `connections` connections as fast as they can for `run_for`; with a
// generous acquire_timeout a timeout means a waiter was lost.
void handshake_stress(int threads, int connections, std::chrono::microseconds handoff_after,
                      std::chrono::milliseconds run_for) {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    dbpool::PoolOptions options;  // background maintenance on, as in production
    options.ping = Ping::never;
    options.maxconnections = connections;
    options.blocking = true;
    options.acquire_timeout = 5s;
    options.handoff_after = handoff_after;
    Pool pool(FakeDatabase::creator<FakeConnection>(db), options);
    std::atomic<int> served{0};
    std::atomic<int> timeouts{0};
    std::atomic<int> other_errors{0};
    const auto deadline = SteadyClock::now() + run_for;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            for (int i = 0; i < 1000000 && SteadyClock::now() < deadline; ++i) {
                try {
                    auto handle = pool.connection();
                    handle->execute("w");
                    served.fetch_add(1);
                } catch (const dbpool::Error& e) {
                    (e.code() == ErrorCode::timeout ? timeouts : other_errors).fetch_add(1);
                }
            }
        });
    }
    for (auto& worker : workers)
        worker.join();
    const auto stats = pool.stats();
    INFO(served.load() << " served");
    CHECK(timeouts == 0);
    CHECK(other_errors == 0);
    CHECK(served > 0);
    CHECK(db->executed() == served);
    CHECK(stats.acquired == std::uint64_t(served.load()));
    CHECK(stats.in_use == 0);
    CHECK(stats.waiting == 0);
    CHECK(db->max_open_now() <= connections);
}

}  // namespace

TEST_CASE("regression: the return/waiter handshake never loses a waiter",
          "[regression][handshake][concurrency]") {
    SECTION("16 threads, 1 connection, strict hand-off") { handshake_stress(16, 1, 0us, 1500ms); }
    SECTION("64 threads, 2 connections, default hand-off") {
        handshake_stress(64, 2, dbpool::PoolOptions{}.handoff_after, 1500ms);
    }
}

// --- the leak flag -----------------------------------------------------------------------------

TEST_CASE("regression: no leak report for a borrower that did not leak",
          "[regression][leak][concurrency]") {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    constexpr auto threshold = 50ms;
    db->delay_connects(80ms);  // every acquire below connects, which takes longer than that
    std::mutex mutex;
    std::vector<dbpool::LeakReport> reports;
    dbpool::PoolOptions options;
    options.ping = Ping::never;
    options.leak_threshold = threshold;
    options.maintenance_interval = 10ms;
    options.on_leak = [&](const dbpool::LeakReport& report) {
        std::lock_guard<std::mutex> lock(mutex);
        reports.push_back(report);
    };
    int leaker_line = 0;
    std::atomic<int> brief_holds{0};
    std::atomic<int> long_brief_holds{0};  // brief borrowers that were descheduled meanwhile
    {
        Pool pool(FakeDatabase::creator<FakeConnection>(db), options);
        const auto deadline = SteadyClock::now() + 1500ms;
        std::vector<std::thread> threads;
        for (int t = 0; t < 3; ++t) {
            threads.emplace_back([&] {
                while (SteadyClock::now() < deadline) {
                    auto handle = pool.connection();  // the borrower holds it a moment only
                    const auto acquired = SteadyClock::now();
                    handle->execute("brief");
                    handle.discard();  // so that the next acquire connects again
                    brief_holds.fetch_add(1);
                    if (SteadyClock::now() - acquired >= threshold / 2)
                        long_brief_holds.fetch_add(1);
                }
            });
        }
        leaker_line = __LINE__ + 4;
        threads.emplace_back([&] {
            // A real leak, so that the test also sees leak detection working.
            while (SteadyClock::now() < deadline) {
                auto handle = pool.connection();
                std::this_thread::sleep_for(4 * threshold);
                handle.discard();
            }
        });
        for (auto& thread : threads)
            thread.join();
    }
    db->end_delays();
    std::lock_guard<std::mutex> lock(mutex);
    int genuine = 0;
    int spurious = 0;
    for (const auto& report : reports) {
        if (report.acquired_at.line == leaker_line) {
            genuine += report.returned ? 0 : 1;
            continue;
        }
        // A brief borrower (or a connection nobody had borrowed yet): not a leak.
        ++spurious;
        UNSCOPED_INFO("spurious " << (report.returned ? "leak_returned" : "leak_suspected")
                                  << ": held " << report.held.count() << " ms, acquired at "
                                  << (report.acquired_at.file ? report.acquired_at.file : "?")
                                  << ":" << report.acquired_at.line);
    }
    INFO(brief_holds.load() << " brief holds, " << long_brief_holds.load()
                            << " of them descheduled for threshold / 2 or longer");
    // A brief borrower descheduled past the threshold did leak, by the clock: at most two
    // reports (suspected, returned) each.
    CHECK(spurious <= 2 * long_brief_holds.load());
    CHECK(genuine > 0);
}

// --- a busy pool is not a dead database ----------------------------------------------------------

TEST_CASE("regression: a busy pool (server at max_connections) is not mistaken for a dead database",
          "[regression][connect][concurrency]") {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    db->set_max_connections(3);  // the server is up, with 3 free slots; beyond: MySQL 1040
    dbpool::PoolOptions options;
    options.ping = Ping::never;
    options.maxconnections = 8;
    options.blocking = true;
    options.acquire_timeout = 5s;
    std::atomic<int> served{0};
    std::atomic<int> failed{0};
    std::mutex mutex;
    std::string first_error;
    {
        Pool pool(FakeDatabase::creator<FakeConnection>(db), options);
        const auto deadline = SteadyClock::now() + 1s;
        std::vector<std::thread> threads;
        for (int t = 0; t < 8; ++t) {
            threads.emplace_back([&] {
                while (SteadyClock::now() < deadline) {
                    try {
                        auto handle = pool.connection();
                        handle->execute("q");
                        std::this_thread::sleep_for(2ms);  // comes back every few ms
                        served.fetch_add(1);
                    } catch (const dbpool::Error& e) {
                        if (failed.fetch_add(1) == 0) {
                            std::lock_guard<std::mutex> lock(mutex);
                            first_error =
                                std::string(dbpool::to_string(e.code())) + ": " + e.what();
                        }
                    }
                }
            });
        }
        for (auto& thread : threads)
            thread.join();
    }
    INFO(served.load() << " served, " << failed.load() << " failed; first error: " << first_error);
    CHECK(failed == 0);  // every caller could be served by a connection coming back
    CHECK(served >= 50);
    CHECK(db->max_open_now() <= 3);
}

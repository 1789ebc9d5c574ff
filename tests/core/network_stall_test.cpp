// Regression tests of the pool core against a network that hangs (a black-holed server: pings
// and connects wait, then fail) and a database that is down: deadlines, a clock that never
// stops, a close() that never waits on the network, connect back-off, idle cost. Real time,
// each test a few seconds at most.
#include "pool_test_support.hpp"

#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using dbpool::ErrorCode;
using dbpool::Ping;
using fake::eventually;
using fake::FakeConnection;
using fake::FakeDatabase;
using namespace std::chrono_literals;

namespace {

using Pool = dbpool::PooledPool<FakeConnection>;
using SteadyClock = std::chrono::steady_clock;

std::chrono::milliseconds since(SteadyClock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
}

// Ends the fake's network delays if the scope has not ended after `limit`: a test of today's
// behaviour then fails after `limit` instead of waiting for the whole hang.
class CutShortAfter {
public:
    CutShortAfter(FakeDatabase& db, std::chrono::milliseconds limit)
        : thread_([this, &db, limit] {
              std::unique_lock<std::mutex> lock(mutex_);
              if (!done_changed_.wait_for(lock, limit, [this] { return done_; })) db.end_delays();
          }) {}

    CutShortAfter(const CutShortAfter&) = delete;
    CutShortAfter& operator=(const CutShortAfter&) = delete;

    ~CutShortAfter() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            done_ = true;
        }
        done_changed_.notify_all();
        thread_.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable done_changed_;
    bool done_ = false;
    std::thread thread_;  // last: starts once everything above exists
};

// CPU time used by the whole process (every thread) so far.
std::chrono::nanoseconds process_cpu_time() {
    timespec now{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

}  // namespace

TEST_CASE("regression: acquire_timeout bounds connection() whatever the network does",
          "[regression][deadline][concurrency][timing]") {
    auto db = std::make_shared<FakeDatabase>();
    dbpool::PoolOptions options;
    options.background_maintenance = false;
    options.ping = Ping::on_request;
    options.ping_bypass = 0ms;
    options.maxconnections = 2;
    options.blocking = true;
    constexpr auto timeout = 400ms;
    options.acquire_timeout = timeout;
    bool idle_connection = false;
    SECTION("the hand-out ping hangs 2 s, then connects hang 2 s") { idle_connection = true; }
    SECTION("connects hang 2 s") {}
    options.mincached = idle_connection ? 1 : 0;
    auto pool = std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db), options);
    if (idle_connection) {
        db->kill(1);
        db->delay_pings(2s);
    }
    db->delay_connects(2s);
    db->fail_connects(-1);

    const auto start = SteadyClock::now();
    int outcome = -1;
    {
        const CutShortAfter cut(*db, timeout + 1s);
        try {
            auto handle = pool->connection();
            outcome = 0;
        } catch (const dbpool::Error& e) {
            outcome = 1 + static_cast<int>(e.code());
        }
    }
    const auto elapsed = since(start);
    db->end_delays();
    pool.reset();
    INFO("connection() took " << elapsed.count() << " ms; outcome " << outcome);
    CHECK(elapsed < timeout + 600ms);  // scheduling noise on a loaded machine, sanitizers
    CHECK((outcome == 0 || outcome == 1 + static_cast<int>(ErrorCode::timeout)));
    CHECK(eventually([&] { return db->open_now() == 0; }, 5s));
}

TEST_CASE("regression: time does not stop while a keepalive ping hangs",
          "[regression][maintenance][concurrency][timing]") {
    auto db = std::make_shared<FakeDatabase>();
    constexpr auto threshold = 300ms;
    std::mutex mutex;
    std::vector<dbpool::LeakReport> leaks;
    dbpool::PoolOptions options;
    options.ping = Ping::on_request;
    options.ping_bypass = 100ms;
    options.keepalive_interval = 1200ms;
    options.leak_threshold = threshold;
    options.maintenance_interval = 20ms;
    options.on_leak = [&](const dbpool::LeakReport& report) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!report.returned) leaks.push_back(report);
    };
    Pool pool(FakeDatabase::creator<FakeConnection>(db), options);
    auto a = pool.connection();
    auto b = pool.connection();
    auto c = pool.connection();
    const int a_id = a->raw().id();
    const int b_id = b->raw().id();
    db->delay_pings_on(a_id, 3s);
    a.close();  // idle: its keepalive ping, in about 1.2 s, hangs for 3 s
    REQUIRE(eventually([&] { return db->pings_in_flight() == 1; }, 5s));

    // All of this happens while that ping hangs.
    b->execute("used after the ping started");
    c.close();
    const int leak_line = __LINE__ + 1;
    auto leaked = pool.connection();  // c's connection (the only idle one), held past the threshold
    b.close();
    std::this_thread::sleep_for(400ms);  // b's connection is idle 4 x ping_bypass by now
    const int pings_before = db->pings_on(b_id);
    {
        auto again = pool.connection();  // b's connection: a's is busy with its keepalive ping
        CHECK(again->raw().id() == b_id);
    }
    CHECK(db->pings_on(b_id) == pings_before + 1);  // its hand-out ping was not bypassed

    const auto reported = [&] {
        std::lock_guard<std::mutex> lock(mutex);
        for (const auto& report : leaks) {
            if (report.acquired_at.line == leak_line) return true;
        }
        return false;
    };
    CHECK(eventually(reported, 600ms));  // about leak_threshold after the borrow, not 3 s
    CHECK(db->pings_in_flight() == 1);   // the keepalive ping was still hanging all along
    db->end_delays();
}

TEST_CASE("regression: close() and the destructor return within 1 s whatever the network does",
          "[regression][maintenance][concurrency][timing]") {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    dbpool::PoolOptions options;
    options.ping = Ping::never;
    options.mincached = 5;
    options.keepalive_interval = 100ms;
    options.maintenance_interval = 20ms;
    const bool via_close = GENERATE(true, false);
    INFO((via_close ? "close(), then the destructor" : "the destructor alone"));
    auto pool = std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db), options);
    SECTION("5 idle connections whose keepalive ping takes 1 s each") {
        db->delay_pings(1s);
        REQUIRE(eventually([&] { return db->pings_in_flight() >= 1; }, 5s));
    }
    SECTION("a mincached refill whose connect takes 2 s") {
        db->delay_connects(2s);
        {
            auto handle = pool->connection();
            handle.discard();
        }
        REQUIRE(eventually([&] { return db->connects_in_flight() >= 1; }, 5s));
    }
    if (via_close) {
        const auto start = SteadyClock::now();
        {
            const CutShortAfter cut(*db, 1500ms);
            pool->close();
        }
        const auto elapsed = since(start);
        INFO("close() took " << elapsed.count() << " ms");
        CHECK(elapsed < 1s);
    }
    const auto start = SteadyClock::now();
    {
        const CutShortAfter cut(*db, 1500ms);
        pool.reset();
    }
    const auto elapsed = since(start);
    INFO("the destructor took " << elapsed.count() << " ms");
    CHECK(elapsed < 1s);
    // The work in flight finishes (or is abandoned) in the background; nothing stays open.
    CHECK(eventually([&] { return db->open_now() == 0; }, 4s));
    CHECK(db->opens() == db->closes());
}

TEST_CASE(
    "regression: while the database is down the pool makes about one connect attempt per "
    "backoff_max",
    "[regression][connect][concurrency][timing]") {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    constexpr auto backoff = 250ms;
    dbpool::PoolOptions options;
    options.mincached = 2;
    options.ping = Ping::on_request;
    options.ping_bypass = 0ms;
    options.connect_backoff_min = backoff;
    options.connect_backoff_max = backoff;
    Pool pool(FakeDatabase::creator<FakeConnection>(db), options);
    REQUIRE(db->opens() == 2);
    db->kill(1);
    db->kill(2);
    db->delay_connects(20ms);  // a refused connect takes a moment
    db->fail_connects(-1);

    const int before = db->connect_attempts();
    const auto start = SteadyClock::now();
    std::atomic<int> served{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 100000 && SteadyClock::now() - start < 2s; ++i) {
                try {
                    auto handle = pool.connection();
                    served.fetch_add(1);
                } catch (const dbpool::Error&) {
                    std::this_thread::sleep_for(1ms);
                }
            }
        });
    }
    for (auto& thread : threads)
        thread.join();
    const auto elapsed = since(start);
    const int attempts = db->connect_attempts() - before;
    const int expected = static_cast<int>(elapsed / backoff);
    INFO(attempts << " connect attempts in " << elapsed.count() << " ms (backoff "
                  << backoff.count() << " ms)");
    CHECK(served == 0);
    CHECK(attempts <= expected + 3);
    CHECK(attempts >= expected / 2);
    CHECK(pool.stats().failed_connects == std::uint64_t(db->failed_connects()));
}

TEST_CASE("regression: idle pools do not burn CPU",
          "[regression][maintenance][concurrency][timing]") {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    dbpool::PoolOptions options;
    options.mincached = 1;
    options.ping_bypass = 0ms;  // DBUtils' exact ping counts
    std::vector<std::unique_ptr<Pool>> pools;
    for (int i = 0; i < 20; ++i)
        pools.push_back(std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db), options));
    std::this_thread::sleep_for(200ms);  // start-up is not idle time

    const auto cpu_before = process_cpu_time();
    const auto start = SteadyClock::now();
    std::this_thread::sleep_for(2s);
    const auto idle_for = since(start);
    const auto cpu =
        std::chrono::duration_cast<std::chrono::milliseconds>(process_cpu_time() - cpu_before);
    INFO("20 idle pools used " << cpu.count() << " ms of CPU in " << idle_for.count() << " ms");
    // Process CPU time counts only time spent running, so other load on the machine does not
    // inflate it; 50 ms in 2 s is far above a few timer wake-ups per pool, even under TSan.
    CHECK(cpu < 50ms);
    CHECK(db->open_now() == 20);
}

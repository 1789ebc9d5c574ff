// Pool maintenance with a manual clock (docs/dbutils-differences.md, "mincached filled only at
// start"): idle timeout, max lifetime, keepalive, mincached refill, connect backoff, leak
// detection. No test sleeps.
#include "pool_test_support.hpp"

#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

using dbpool::ErrorCode;
using dbpool::EventKind;
using dbpool::Failure;
using fake::EventLog;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::has_code;
using fake::ManualClock;
using fake::test_options;
using namespace std::chrono_literals;

namespace {

using Pool = dbpool::PooledPool<FakeConnection, ManualClock>;

struct MaintenanceFixture {
    std::shared_ptr<FakeDatabase> db = std::make_shared<FakeDatabase>();
    EventLog events;

    std::unique_ptr<Pool> make(dbpool::PoolOptions options) {
        options.on_event = events.hook();
        return std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db),
                                      std::move(options));
    }
};

}  // namespace

TEST_CASE_METHOD(MaintenanceFixture, "maintenance: idle_timeout closes idle ones above mincached",
                 "[maintenance]") {
    auto options = test_options();
    options.mincached = 1;
    options.idle_timeout = 1000ms;
    auto pool = make(options);
    {
        auto a = pool->connection();
        auto b = pool->connection();
        auto c = pool->connection();
    }
    CHECK(pool->stats().idle == 3);
    ManualClock::advance(999ms);
    pool->run_maintenance();
    CHECK(db->closes() == 0);
    ManualClock::advance(1ms);
    pool->run_maintenance();
    CHECK(db->closes() == 2);
    CHECK(pool->stats().total == 1);
    ManualClock::advance(10s);
    pool->run_maintenance();
    CHECK(db->closes() == 2);  // mincached stays
    CHECK(pool->stats().idle == 1);
    CHECK(db->opens() == 3);
}

TEST_CASE_METHOD(MaintenanceFixture, "maintenance: an in-use connection is not idle",
                 "[maintenance]") {
    auto options = test_options();
    options.idle_timeout = 1000ms;
    auto pool = make(options);
    auto held = pool->connection();
    ManualClock::advance(5s);
    pool->run_maintenance();
    CHECK(db->closes() == 0);
    held->execute("still open");
    CHECK(db->executed() == 1);
}

TEST_CASE_METHOD(MaintenanceFixture, "maintenance: max_lifetime retires connections",
                 "[maintenance]") {
    auto options = test_options();
    options.max_lifetime = 10s;
    SECTION("idle ones in maintenance, and mincached is refilled") {
        options.mincached = 2;
        auto pool = make(options);
        ManualClock::advance(9700ms);  // below the 2.5% jitter
        pool->run_maintenance();
        CHECK(db->closes() == 0);
        ManualClock::advance(301ms);
        pool->run_maintenance();
        CHECK(db->closes() == 2);
        CHECK(db->opens() == 4);
        CHECK(pool->stats().idle == 2);
    }
    SECTION("in-use ones when they are returned") {
        auto pool = make(options);
        {
            auto held = pool->connection();
            ManualClock::advance(10s);
            pool->run_maintenance();
            CHECK(db->closes() == 0);
            held->execute("the borrower keeps it");
        }
        CHECK(db->closes() == 1);
        CHECK(pool->stats().total == 0);
    }
    SECTION("an expired idle one is not handed out") {
        auto pool = make(options);
        { auto a = pool->connection(); }
        ManualClock::advance(10s);
        auto b = pool->connection();
        CHECK(b->raw().id() == 2);
        CHECK(db->closes() == 1);
    }
}

TEST_CASE_METHOD(MaintenanceFixture, "maintenance: keepalive pings idle ones, drops dead ones",
                 "[maintenance]") {
    auto options = test_options();
    options.mincached = 2;
    options.keepalive_interval = 30s;
    auto pool = make(options);
    ManualClock::advance(29s);
    pool->run_maintenance();
    CHECK(db->pings() == 0);
    ManualClock::advance(1s);
    pool->run_maintenance();
    CHECK(db->pings() == 2);
    CHECK(db->closes() == 0);
    pool->run_maintenance();
    CHECK(db->pings() == 2);  // pinging made them fresh again

    db->kill(1);
    ManualClock::advance(30s);
    pool->run_maintenance();
    CHECK(db->pings() == 4);
    CHECK(db->closes() == 1);
    CHECK(events.count(EventKind::keepalive_failed) == 1);
    CHECK(db->opens() == 3);  // refilled to mincached
    CHECK(pool->stats().idle == 2);
}

TEST_CASE_METHOD(MaintenanceFixture, "maintenance: mincached is refilled after a broken return",
                 "[maintenance]") {
    auto options = test_options();
    options.mincached = 1;
    auto pool = make(options);
    {
        auto h = pool->connection();
        h.discard();
    }
    CHECK(pool->stats().total == 0);
    pool->run_maintenance();
    CHECK(pool->stats().idle == 1);
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(MaintenanceFixture, "maintenance: connect failures back off, acquirers fail fast",
                 "[maintenance]") {
    auto options = test_options();
    options.connect_backoff_min = 1000ms;
    options.connect_backoff_max = 4000ms;
    auto pool = make(options);
    db->fail_connects(-1);
    CHECK_THROWS_MATCHES(pool->connection(), dbpool::Error, has_code(ErrorCode::connect_failed));
    CHECK(db->connect_attempts() == 1);
    try {
        pool->connection();
        FAIL("handed out while the database is down");
    } catch (const dbpool::Error& e) {
        CHECK(e.code() == ErrorCode::connect_failed);
        CHECK_THAT(e.what(), Catch::Contains("connection refused"));
    }
    CHECK(db->connect_attempts() == 1);  // failed fast, no connect attempt
    ManualClock::advance(1000ms);
    CHECK_THROWS_MATCHES(pool->connection(), dbpool::Error, has_code(ErrorCode::connect_failed));
    CHECK(db->connect_attempts() == 2);
    ManualClock::advance(1000ms);  // the backoff doubled to 2000 ms
    CHECK_THROWS(pool->connection());
    CHECK(db->connect_attempts() == 2);
    db->clear_connect_failures();
    ManualClock::advance(1000ms);
    auto h = pool->connection();
    CHECK(db->opens() == 1);
    CHECK(pool->stats().failed_connects == 2);
    CHECK(pool->stats().total == 1);
    CHECK(events.count(EventKind::connect_failed) == 2);

    h.discard();  // a success resets the backoff: one failure waits connect_backoff_min again
    db->fail_connects(1);
    CHECK_THROWS(pool->connection());
    ManualClock::advance(1000ms);
    auto again = pool->connection();
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(MaintenanceFixture, "maintenance: mincached refill backs off too",
                 "[maintenance]") {
    auto options = test_options();
    options.mincached = 1;
    options.connect_backoff_min = 1000ms;
    options.connect_backoff_max = 1000ms;
    auto pool = make(options);
    db->fail_connects(-1);
    {
        auto h = pool->connection();
        h.discard();
    }
    const int attempts = db->connect_attempts();
    pool->run_maintenance();
    pool->run_maintenance();
    CHECK(db->connect_attempts() == attempts + 1);
    db->clear_connect_failures();
    ManualClock::advance(1000ms);
    pool->run_maintenance();
    CHECK(pool->stats().idle == 1);
}

TEST_CASE_METHOD(MaintenanceFixture, "maintenance: leak_threshold reports once, then on return",
                 "[maintenance]") {
    auto options = test_options();
    options.leak_threshold = 2s;
    std::mutex mutex;
    std::vector<dbpool::LeakReport> reports;
    options.on_leak = [&](const dbpool::LeakReport& report) {
        std::lock_guard<std::mutex> lock(mutex);
        reports.push_back(report);
    };
    auto pool = make(options);
    const int line = __LINE__ + 1;
    auto held = pool->connection();
    auto brief = pool->connection();
    ManualClock::advance(1s);
    brief.close();
    pool->run_maintenance();
    CHECK(reports.empty());
    ManualClock::advance(1500ms);
    pool->run_maintenance();
    pool->run_maintenance();
    REQUIRE(reports.size() == 1);
    CHECK_FALSE(reports[0].returned);
    CHECK(reports[0].held == 2500ms);
    REQUIRE(reports[0].acquired_at.file != nullptr);
    CHECK_THAT(reports[0].acquired_at.file, Catch::EndsWith("maintenance_test.cpp"));
    CHECK(reports[0].acquired_at.line == line);
    CHECK(pool->stats().leaks == 1);
    CHECK(events.count(EventKind::leak_suspected) == 1);

    ManualClock::advance(500ms);
    held.close();
    REQUIRE(reports.size() == 2);
    CHECK(reports[1].returned);
    CHECK(reports[1].held == 3000ms);
    CHECK(reports[1].acquired_at.line == line);
    CHECK(events.count(EventKind::leak_returned) == 1);

    // The next borrower of the same connection starts with a clean slate.
    auto next = pool->connection();
    ManualClock::advance(1s);
    pool->run_maintenance();
    CHECK(reports.size() == 2);
    CHECK(pool->stats().leaks == 1);
}

// Regression tests of the pool core's counting and accounting, one per bug, named after it
// (the interleaving bugs are explored in explore_pool_test.cpp).
#include "pool_test_support.hpp"

#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <thread>

using dbpool::Ping;
using fake::eventually;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::ManualClock;
using fake::SharedFakeConnection;
using fake::test_options;
using namespace std::chrono_literals;

namespace {

using Pool = dbpool::PooledPool<FakeConnection, ManualClock>;
using SharedPool = dbpool::PooledPool<SharedFakeConnection, ManualClock>;

void check_sum(const dbpool::PoolStats& stats) {
    CHECK(stats.total == stats.idle + stats.in_use + stats.connecting);
}

}  // namespace

TEST_CASE("regression: stats().acquired does not count a shared hand-out whose ping failed",
          "[regression][stats][shared]") {
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.maxshared = 1;
    options.ping = Ping::on_request;
    SharedPool pool(FakeDatabase::creator<SharedFakeConnection>(db), options);
    auto a = pool.connection();
    const int first = a->raw().id();
    REQUIRE(pool.stats().acquired == 1);

    db->kill(first);
    auto b = pool.connection();  // the share's ping fails: b gets another connection
    REQUIRE(b->raw().id() != first);
    const auto stats = pool.stats();
    CHECK(stats.acquired == 2);  // a, and b's own connection; not the failed share
    CHECK(stats.acquire_wait.count == stats.acquired);
    CHECK(stats.usage.count == stats.acquired);
    check_sum(stats);
}

TEST_CASE("regression: stats().total is idle + in_use + connecting while a keepalive ping runs",
          "[regression][stats][concurrency]") {
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.mincached = 2;
    options.keepalive_interval = 30s;
    Pool pool(FakeDatabase::creator<FakeConnection>(db), options);
    REQUIRE(db->opens() == 2);
    db->delay_pings_on(1, 300ms);
    ManualClock::advance(31s);
    std::thread maintenance([&] { pool.run_maintenance(); });  // pings on this thread
    REQUIRE(eventually([&] { return db->pings_in_flight() == 1; }));
    const auto stats = pool.stats();
    CHECK(stats.total == 2);
    CHECK(stats.idle == 2);  // one of them under its keepalive ping
    check_sum(stats);
    maintenance.join();
    check_sum(pool.stats());
}

TEST_CASE("regression: stats() adds up after the last share of a shared connection returns",
          "[regression][stats][shared]") {
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.maxshared = 1;
    SharedPool pool(FakeDatabase::creator<SharedFakeConnection>(db), options);
    {
        auto a = pool.connection();
        auto b = pool.connection();
        REQUIRE(b->raw().id() == a->raw().id());
        check_sum(pool.stats());
        a.close();
        CHECK(pool.stats().in_use == 1);
    }
    const auto stats = pool.stats();
    CHECK(stats.idle == 1);
    CHECK(stats.in_use == 0);
    check_sum(stats);
}

TEST_CASE(
    "regression: a shareable acquire at the limit shares a connection that is in the "
    "middle of another sharer's statement instead of timing out",
    "[regression][shared][concurrency]") {
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.maxshared = 1;
    options.maxconnections = 1;
    options.blocking = true;
    options.acquire_timeout = 2s;
    SharedPool pool(FakeDatabase::creator<SharedFakeConnection>(db), options);
    fake::Gate gate;
    int first_id = 0;
    std::thread sharer([&] {
        auto handle = pool.connection();
        first_id = handle->raw().id();
        handle->run([&](SharedFakeConnection&) {  // a long statement: holds the connection
            gate.arrive_and_wait();
            return 0;
        });
    });
    gate.wait_arrived();
    std::optional<dbpool::PooledConnection<SharedFakeConnection, ManualClock>> second;
    CHECK_NOTHROW(second.emplace(pool.connection()));  // shared, not a timeout after 2 s
    gate.release();
    sharer.join();
    REQUIRE(second.has_value());
    CHECK(second->is_shared());
    CHECK((*second)->raw().id() == first_id);  // the sharer's statement has ended: its turn
    (*second)->execute("after the other sharer's statement");
}

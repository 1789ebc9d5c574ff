// PooledPool (DBUtils' PooledDB; docs/dbutils-differences.md: accounting, closed state and
// timeouts, reset, metrics), driven through the fake connection.
#include "pool_test_support.hpp"

#include <dbpool/pool_stats.hpp>
#include <dbpool/pooled_pool.hpp>
#include <dbpool/transaction.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>
#include <vector>

using dbpool::ErrorCode;
using dbpool::EventKind;
using dbpool::Failure;
using dbpool::Ping;
using dbpool::Reset;
using fake::EventLog;
using fake::eventually;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::has_code;
using fake::ManualClock;
using fake::SharedFakeConnection;
using fake::test_options;
using namespace std::chrono_literals;

namespace {

using Pool = dbpool::PooledPool<FakeConnection, ManualClock>;
using Handle = Pool::handle_type;

struct PoolFixture {
    std::shared_ptr<FakeDatabase> db = std::make_shared<FakeDatabase>();

    std::unique_ptr<Pool> make(dbpool::PoolOptions options = test_options()) {
        return std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db),
                                      std::move(options));
    }
};

int id_of(const Handle& handle) { return handle->raw().id(); }

}  // namespace

TEST_CASE_METHOD(PoolFixture, "pool: mincached connections are opened at start", "[pool]") {
    auto options = test_options();
    options.mincached = 3;
    auto pool = make(options);
    CHECK(db->opens() == 3);
    const auto stats = pool->stats();
    CHECK(stats.total == 3);
    CHECK(stats.idle == 3);
    CHECK(stats.in_use == 0);
    CHECK(stats.created == 3);
    { auto a = pool->connection(); }
    CHECK(db->opens() == 3);  // served from the cache
    pool.reset();
    CHECK(db->closes() == 3);
}

TEST_CASE_METHOD(PoolFixture, "pool: a failing connect at start is connect_failed", "[pool]") {
    auto options = test_options();
    options.mincached = 2;
    db->fail_connects(1);
    CHECK_THROWS_MATCHES(make(options), dbpool::Error, has_code(ErrorCode::connect_failed));
    CHECK(db->opens() == db->closes());
}

TEST_CASE_METHOD(PoolFixture, "pool: returns beyond maxcached close the connection", "[pool]") {
    auto options = test_options();
    options.maxcached = 1;
    auto pool = make(options);
    {
        auto a = pool->connection();
        auto b = pool->connection();
        auto c = pool->connection();
        CHECK(db->opens() == 3);
    }
    CHECK(db->closes() == 2);
    CHECK(pool->stats().idle == 1);
    CHECK(pool->stats().total == 1);
}

TEST_CASE_METHOD(PoolFixture, "pool: non-blocking at maxconnections is pool_exhausted", "[pool]") {
    auto options = test_options();
    options.maxconnections = 2;
    EventLog events;
    options.on_event = events.hook();
    auto pool = make(options);
    auto a = pool->connection();
    auto b = pool->connection();
    try {
        auto c = pool->connection();
        FAIL("third connection handed out");
    } catch (const dbpool::Error& e) {
        CHECK(e.code() == ErrorCode::pool_exhausted);
        CHECK_THAT(e.what(), Catch::Contains("too many connections"));
    }
    CHECK(pool->stats().exhausted == 1);
    CHECK(events.count(EventKind::exhausted) == 1);
    a.close();
    auto c = pool->connection();  // capacity is back
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(PoolFixture, "pool: blocking acquire times out with a helpful message", "[pool]") {
    auto options = test_options();
    options.maxconnections = 2;
    options.blocking = true;
    options.acquire_timeout = 300ms;
    auto pool = make(options);
    auto a = pool->connection();
    auto b = pool->connection();
    // A first waiter, then (100 ms later) a second: the first times out while the second waits.
    std::string first_message;
    std::thread first([&] {
        try {
            pool->connection();
        } catch (const dbpool::Error& e) {
            if (e.code() == ErrorCode::timeout) first_message = e.what();
        }
    });
    REQUIRE(eventually([&] { return pool->stats().waiting == 1; }));
    std::this_thread::sleep_for(100ms);
    std::string second_message;
    std::thread second([&] {
        try {
            pool->connection();
        } catch (const dbpool::Error& e) {
            if (e.code() == ErrorCode::timeout) second_message = e.what();
        }
    });
    first.join();
    second.join();
    CHECK_THAT(first_message, Catch::Contains("2 in use") && Catch::Contains("1 waiting"));
    CHECK_THAT(second_message, Catch::Contains("2 in use") && Catch::Contains("0 waiting"));
    CHECK(pool->stats().timeouts == 2);
    CHECK(pool->stats().waiting == 0);
}

TEST_CASE_METHOD(PoolFixture, "pool: a waiter receives a connection returned by another thread",
                 "[pool][concurrency]") {
    auto options = test_options();
    options.maxconnections = 1;
    options.blocking = true;
    options.acquire_timeout = 10s;
    auto pool = make(options);
    auto held = pool->connection();
    const int held_id = id_of(held);
    std::atomic<int> got{0};
    std::thread waiter([&] {
        auto handle = pool->connection();
        got = id_of(handle);
    });
    REQUIRE(eventually([&] { return pool->stats().waiting == 1; }));
    CHECK(got == 0);
    held.close();
    waiter.join();
    CHECK(got == held_id);
    CHECK(db->opens() == 1);
}

TEST_CASE_METHOD(PoolFixture, "pool: waiters are served in arrival order", "[pool][concurrency]") {
    auto options = test_options();
    options.maxconnections = 1;
    options.blocking = true;
    options.acquire_timeout = 10s;
    auto pool = make(options);
    auto held = pool->connection();
    std::mutex mutex;
    std::vector<int> served;
    std::vector<std::thread> threads;
    constexpr int waiters = 4;
    for (int i = 0; i < waiters; ++i) {
        threads.emplace_back([&, i] {
            auto handle = pool->connection();
            std::lock_guard<std::mutex> lock(mutex);
            served.push_back(i);
        });
        // Arrival order is fixed: the next thread starts only once this one waits.
        REQUIRE(eventually([&] { return pool->stats().waiting == std::size_t(i + 1); }));
    }
    held.close();
    for (auto& thread : threads)
        thread.join();
    CHECK(served == std::vector<int>{0, 1, 2, 3});
    CHECK(db->opens() == 1);
}

TEST_CASE_METHOD(PoolFixture, "pool: with handoff_after 0 a waiter comes before a newcomer",
                 "[pool][concurrency]") {
    auto options = test_options();
    options.maxconnections = 1;
    options.blocking = true;
    options.acquire_timeout = 10s;
    options.handoff_after = 0us;
    auto pool = make(options);
    auto held = pool->connection();
    std::mutex mutex;
    std::vector<char> served;
    std::thread waiter([&] {
        auto handle = pool->connection();
        std::lock_guard<std::mutex> lock(mutex);
        served.push_back('W');
    });
    REQUIRE(eventually([&] { return pool->stats().waiting == 1; }));
    held.close();  // handed to the waiter under the pool lock, before we can ask again
    {
        auto again = pool->connection();
        std::lock_guard<std::mutex> lock(mutex);
        served.push_back('M');
    }
    waiter.join();
    CHECK(served == std::vector<char>{'W', 'M'});
}

TEST_CASE_METHOD(PoolFixture, "pool: handoff_after bounds how long a waiter can be passed over",
                 "[pool][concurrency]") {
    auto options = test_options();
    options.maxconnections = 1;
    options.blocking = true;
    options.acquire_timeout = 10s;
    options.handoff_after = 20ms;
    auto pool = make(options);
    std::atomic<bool> served{false};
    auto held = pool->connection();
    std::thread waiter([&] {
        auto handle = pool->connection();
        served = true;
    });
    REQUIRE(eventually([&] { return pool->stats().waiting == 1; }));
    // This thread keeps returning and re-taking the connection as fast as it can; within a few
    // multiples of handoff_after the waiter must still get it.
    const auto start = std::chrono::steady_clock::now();
    held.close();
    while (!served.load() && std::chrono::steady_clock::now() - start < 5s) {
        auto again = pool->connection();
    }
    waiter.join();
    CHECK(served.load());
    CHECK(std::chrono::steady_clock::now() - start < 2s);
}

TEST_CASE_METHOD(PoolFixture, "pool: close() wakes waiters with pool_closed", "[pool]") {
    auto options = test_options();
    options.maxconnections = 1;
    options.blocking = true;
    options.acquire_timeout = 10s;
    auto pool = make(options);
    auto held = pool->connection();
    std::atomic<int> outcome{-1};
    std::thread waiter([&] {
        try {
            pool->connection();
            outcome = 0;
        } catch (const dbpool::Error& e) {
            outcome = static_cast<int>(e.code());
        }
    });
    REQUIRE(eventually([&] { return pool->stats().waiting == 1; }));
    pool->close();
    waiter.join();
    CHECK(outcome == static_cast<int>(ErrorCode::pool_closed));
    CHECK(db->closes() == 0);  // the borrowed one stays open until it comes back
    held.close();
    CHECK(db->closes() == 1);
    CHECK(pool->stats().total == 0);
}

TEST_CASE_METHOD(PoolFixture, "pool: close() refuses requests, closes idle and returned ones",
                 "[pool]") {
    auto options = test_options();
    options.mincached = 2;
    EventLog events;
    options.on_event = events.hook();
    auto pool = make(options);
    auto borrowed = pool->connection();
    pool->close();
    CHECK(db->closes() == 1);  // the idle one
    CHECK(events.count(EventKind::pool_closed) == 1);
    CHECK_THROWS_MATCHES(pool->connection(), dbpool::Error, has_code(ErrorCode::pool_closed));
    CHECK_THROWS_MATCHES(pool->dedicated_connection(), dbpool::Error,
                         has_code(ErrorCode::pool_closed));
    borrowed->execute("still usable");
    CHECK(db->executed() == 1);
    borrowed.close();
    CHECK(db->closes() == 2);
    CHECK(pool->stats().total == 0);
    CHECK(pool->stats().idle == 0);
    CHECK_NOTHROW(pool->close());  // twice is fine
    CHECK(events.count(EventKind::pool_closed) == 1);
    pool.reset();
    CHECK(db->opens() == db->closes());
}

TEST_CASE_METHOD(PoolFixture, "pool: the handle is move-only and closes once", "[pool]") {
    static_assert(!std::is_copy_constructible_v<Handle>);
    static_assert(!std::is_copy_assignable_v<Handle>);
    static_assert(std::is_nothrow_move_constructible_v<Handle>);
    static_assert(std::is_nothrow_move_assignable_v<Handle>);
    auto pool = make();
    SECTION("move") {
        auto a = pool->connection();
        Handle b = std::move(a);
        CHECK_FALSE(a.is_open());
        CHECK_THROWS_MATCHES(a->execute("x"), dbpool::Error, has_code(ErrorCode::handle_closed));
        b->execute("x");
        CHECK(pool->stats().in_use == 1);
        Handle c = pool->connection();
        c = std::move(b);  // c's own connection goes back to the pool
        CHECK(pool->stats().in_use == 1);
        CHECK(pool->stats().idle == 1);
    }
    SECTION("close is idempotent and use after close throws") {
        auto a = pool->connection();
        a.close();
        a.close();
        CHECK_FALSE(a);
        CHECK(pool->stats().idle == 1);
        CHECK_THROWS_MATCHES(a->execute("x"), dbpool::Error, has_code(ErrorCode::handle_closed));
        CHECK_THROWS_MATCHES(*a, dbpool::Error, has_code(ErrorCode::handle_closed));
        CHECK_THROWS_MATCHES(a.begin(), dbpool::Error, has_code(ErrorCode::handle_closed));
        CHECK_THROWS_MATCHES(a.commit(), dbpool::Error, has_code(ErrorCode::handle_closed));
    }
    SECTION("the destructor returns the connection") {
        { auto a = pool->connection(); }
        CHECK(pool->stats().idle == 1);
        CHECK(pool->stats().in_use == 0);
        CHECK(db->closes() == 0);
    }
    SECTION("discard closes the connection") {
        auto a = pool->connection();
        a.discard();
        a.discard();
        CHECK(db->closes() == 1);
        CHECK(pool->stats().total == 0);
    }
}

TEST_CASE_METHOD(PoolFixture, "pool: Transaction works on a handle", "[pool][transaction]") {
    auto pool = make();
    auto handle = pool->connection();
    try {
        dbpool::Transaction<Handle> tx(handle);
        handle->execute("a");
        throw std::runtime_error("user code failed");
    } catch (const std::runtime_error&) {
    }
    CHECK(db->rollbacks() == 1);
    {
        dbpool::Transaction<Handle> tx(handle);
        tx.commit();
    }
    CHECK(db->commits() == 1);
    CHECK(db->rollbacks() == 1);
}

TEST_CASE_METHOD(PoolFixture, "pool: reset policies on return", "[pool][reset]") {
    auto options = test_options();
    options.maxconnections = 1;  // always the same connection, unless it is closed
    options.setsession = {"SET a = 1"};
    SECTION("rollback: only when a transaction is open") {
        options.reset = Reset::rollback;
        auto pool = make(options);
        { auto h = pool->connection(); }
        CHECK(db->rollbacks() == 0);  // a clean return costs nothing
        {
            auto h = pool->connection();
            h.begin();
        }
        CHECK(db->rollbacks() == 1);
        {
            auto h = pool->connection();
            h->raw().set_server_transaction(true);  // implicit transaction, no begin()
        }
        CHECK(db->rollbacks() == 2);
        auto h = pool->connection();
        CHECK_FALSE(h->in_transaction());
        CHECK(db->opens() == 1);
        CHECK(db->resets() == 0);
    }
    SECTION("always: on every return") {
        options.reset = Reset::always;
        auto pool = make(options);
        { auto h = pool->connection(); }
        CHECK(db->rollbacks() == 1);
        {
            auto h = pool->connection();
            h.begin();
        }
        CHECK(db->rollbacks() == 2);
        CHECK(db->opens() == 1);
    }
    SECTION("full: session reset, then setsession again") {
        options.reset = Reset::full;
        auto pool = make(options);
        { auto h = pool->connection(); }
        CHECK(db->resets() == 1);
        CHECK(db->session_statements() == 2);
        {
            auto h = pool->connection();
            h.begin();
        }
        CHECK(db->resets() == 2);
        CHECK(db->session_statements() == 3);
        CHECK(db->rollbacks() == 0);
        auto h = pool->connection();
        CHECK_FALSE(h->in_transaction());
        CHECK(db->opens() == 1);
    }
    SECTION("none: nothing is sent; one returned inside a transaction is closed") {
        options.reset = Reset::none;
        auto pool = make(options);
        { auto h = pool->connection(); }
        CHECK(db->closes() == 0);
        {
            auto h = pool->connection();
            h.begin();
        }
        CHECK(db->rollbacks() == 0);
        CHECK(db->resets() == 0);
        CHECK(db->closes() == 1);  // never handed on with the transaction open
        {
            auto h = pool->connection();
            CHECK(id_of(h) == 2);
            CHECK_FALSE(h->in_transaction());
            h->raw().set_server_transaction(true);  // implicit, no begin(): closed just the same
        }
        CHECK(db->closes() == 2);
        CHECK(db->rollbacks() == 0);
        auto h = pool->connection();
        CHECK(id_of(h) == 3);
    }
}

TEST_CASE_METHOD(PoolFixture, "pool: a broken rollback on return closes the connection",
                 "[pool][reset]") {
    auto pool = make();
    {
        auto h = pool->connection();
        h.begin();
        db->kill(h->raw().id());
    }
    CHECK(db->opens() == 1);  // a return path never connects
    CHECK(db->closes() == 1);
    CHECK(pool->stats().total == 0);
    CHECK(pool->stats().reconnects == 0);
    auto h = pool->connection();
    CHECK(id_of(h) == 2);
}

TEST_CASE_METHOD(PoolFixture, "pool: ping on request (bit 1)", "[pool][ping]") {
    auto options = test_options();
    options.mincached = 1;
    options.ping = Ping::on_request;
    SECTION("bypass 0: one ping per hand-out") {
        auto pool = make(options);
        for (int i = 0; i < 3; ++i) {
            auto h = pool->connection();
        }
        CHECK(db->pings() == 3);
    }
    SECTION("a dead connection is retired at hand-out and the acquire goes on") {
        auto pool = make(options);
        db->kill(1);
        auto h = pool->connection();
        CHECK(id_of(h) == 2);
        CHECK(db->pings() == 1);  // a fresh connection is not pinged (as DBUtils)
        CHECK(db->closes() == 1);
        h.close();
        CHECK(pool->stats().created == 2);
        CHECK(pool->stats().reconnects == 0);  // a new connection, not one replaced in place
    }
    SECTION("defaults: a clean cycle sends nothing") {
        auto defaults = dbpool::PoolOptions{};
        defaults.background_maintenance = false;
        defaults.mincached = 1;
        auto pool = make(defaults);
        for (int i = 0; i < 3; ++i) {
            auto h = pool->connection();
        }
        CHECK(db->pings() == 0);
        CHECK(db->rollbacks() == 0);
        CHECK(db->statements() == 0);
        ManualClock::advance(1s);  // outside the bypass window: pinged again
        { auto h = pool->connection(); }
        CHECK(db->pings() == 1);
    }
}

TEST_CASE_METHOD(PoolFixture, "pool: a broken connection returned is closed, capacity freed",
                 "[pool]") {
    auto options = test_options();
    options.maxconnections = 1;
    auto pool = make(options);
    {
        auto h = pool->connection();
        db->fail_statements(1, Failure::broken);
        CHECK_THROWS_AS(h->execute("w"), fake::FakeError);
        CHECK_FALSE(h->is_open());  // dropped; nothing reconnects on the error path
    }
    CHECK(db->closes() == 1);
    CHECK(pool->stats().total == 0);
    ManualClock::advance(1s);  // past the connect backoff
    auto h = pool->connection();
    CHECK(id_of(h) == 2);
    CHECK(pool->stats().total == 1);
}

TEST_CASE_METHOD(PoolFixture, "pool: a connection that is not reusable is closed on return",
                 "[pool]") {
    auto pool = make();
    {
        auto h = pool->connection();
        h->raw().set_reusable(false);  // e.g. results left unread on a MySQL connection
    }
    CHECK(db->closes() == 1);
    CHECK(pool->stats().total == 0);
    auto h = pool->connection();
    CHECK(id_of(h) == 2);  // the next borrower never inherits it
}

TEST_CASE_METHOD(PoolFixture, "pool: dedicated and steady connections", "[pool]") {
    auto pool = make();
    auto a = pool->dedicated_connection();
    CHECK_FALSE(a.is_shared());
    auto steady = pool->steady_connection();
    CHECK(steady->is_open());
    CHECK(db->opens() == 2);
    CHECK(pool->stats().total == 1);  // the steady connection is not pooled
    steady.reset();
    CHECK(db->closes() == 1);
    CHECK(pool->stats().total == 1);
}

TEST_CASE_METHOD(PoolFixture, "pool: stats() counters are exact", "[pool][stats]") {
    auto options = test_options();
    options.maxconnections = 2;
    options.maxcached = 1;
    auto pool = make(options);
    {
        auto a = pool->connection();
        auto b = pool->connection();
        CHECK_THROWS_MATCHES(pool->connection(), dbpool::Error,
                             has_code(ErrorCode::pool_exhausted));
        const auto stats = pool->stats();
        CHECK(stats.total == 2);
        CHECK(stats.in_use == 2);
        CHECK(stats.idle == 0);
        CHECK(stats.maxconnections == 2);
    }
    {
        auto a = pool->connection();  // the cached one
        db->fail_connects(1);
        CHECK_THROWS_MATCHES(pool->connection(), dbpool::Error,
                             has_code(ErrorCode::connect_failed));
    }
    const auto stats = pool->stats();
    CHECK(stats.acquired == 3);
    CHECK(stats.created == 2);
    CHECK(stats.closed == 1);
    CHECK(stats.exhausted == 1);
    CHECK(stats.failed_connects == 1);
    CHECK(stats.timeouts == 0);
    CHECK(stats.total == 1);
    CHECK(stats.idle == 1);

    const std::string text = dbpool::to_prometheus(stats, "dbpool", "pool=\"orders\"");
    for (const char* name :
         {"dbpool_connections{pool=\"orders\"} 1", "dbpool_connections_idle",
          "dbpool_connections_in_use", "dbpool_waiting_threads", "dbpool_max_connections",
          "dbpool_acquired_total{pool=\"orders\"} 3", "dbpool_created_total", "dbpool_closed_total",
          "dbpool_reconnects_total", "dbpool_acquire_timeouts_total", "dbpool_exhausted_total",
          "dbpool_connect_failures_total", "dbpool_leaks_total",
          "dbpool_acquire_wait_seconds_total", "dbpool_usage_seconds_max",
          "# TYPE dbpool_acquired_total counter", "# TYPE dbpool_connections gauge"}) {
        CHECK_THAT(text, Catch::Contains(name));
    }
    CHECK_THAT(dbpool::to_prometheus(stats, "app"), Catch::Contains("app_connections 1"));
}

TEST_CASE_METHOD(PoolFixture, "pool: destroyed while a handle is out", "[pool]") {
    auto pool = make();
    auto handle = pool->connection();
    pool.reset();
    handle->execute("after the pool is gone");
    CHECK(db->executed() == 1);
    CHECK(db->closes() == 0);
    handle.close();
    CHECK(db->closes() == 1);
    CHECK(db->open_now() == 0);
}

TEST_CASE_METHOD(PoolFixture, "pool: events reach on_event", "[pool]") {
    auto options = test_options();
    EventLog events;
    options.on_event = events.hook();
    options.maxcached = 1;
    auto pool = make(options);
    {
        auto a = pool->connection();
        auto b = pool->connection();
    }
    db->fail_connects(1);
    {
        auto a = pool->connection();
        CHECK_THROWS(pool->connection());
    }
    pool->close();
    CHECK(events.count(EventKind::connected) == 2);
    CHECK(events.count(EventKind::closed) == 2);
    CHECK(events.count(EventKind::connect_failed) == 1);
    CHECK(events.count(EventKind::pool_closed) == 1);
    for (const auto& event : events.events())
        CHECK_FALSE(event.detail.empty());
}

// --- shared connections (maxshared, thread-safe-sharing types only) ------------------------------

namespace {

using SharedPool = dbpool::PooledPool<SharedFakeConnection, ManualClock>;
using SharedHandle = SharedPool::handle_type;

int sid(const SharedHandle& handle) { return handle->raw().id(); }

}  // namespace

TEST_CASE("pool: shared connections, least used first, within maxconnections", "[pool][shared]") {
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.maxshared = 2;
    options.maxconnections = 3;
    SharedPool pool(FakeDatabase::creator<SharedFakeConnection>(db), options);
    std::vector<SharedHandle> handles;
    for (int i = 0; i < 5; ++i)
        handles.push_back(pool.connection());
    std::set<int> ids;
    for (const auto& h : handles) {
        CHECK(h.is_shared());
        ids.insert(sid(h));
    }
    CHECK(ids.size() == 2);
    CHECK(db->opens() == 2);
    // Least used first: the two connections alternate.
    CHECK(sid(handles[0]) == sid(handles[2]));
    CHECK(sid(handles[1]) == sid(handles[3]));
    CHECK(sid(handles[0]) != sid(handles[1]));
    auto stats = pool.stats();
    CHECK(stats.total == 2);
    CHECK(stats.in_use == 2);
    CHECK(stats.acquired == 5);

    // handles 0, 2 and 4 share one connection; drop two of them: it becomes the least used.
    const int first = sid(handles[0]);
    handles[0].close();
    handles[2].close();
    auto next = pool.connection();
    CHECK(sid(next) == first);

    auto dedicated = pool.dedicated_connection();
    CHECK_FALSE(dedicated.is_shared());
    CHECK(ids.count(sid(dedicated)) == 0);
    CHECK(pool.stats().total == 3);
    auto more = pool.connection();  // still shared, never the dedicated one
    CHECK(sid(more) != sid(dedicated));
    CHECK(pool.stats().total <= 3);

    handles.clear();
    next.close();
    more.close();
    CHECK(pool.stats().in_use == 1);
    dedicated.close();
    CHECK(pool.stats().in_use == 0);
    CHECK(pool.stats().idle == 3);
}

TEST_CASE("pool: a shared connection inside a transaction is not shared", "[pool][shared]") {
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.maxshared = 2;
    options.maxconnections = 4;
    SharedPool pool(FakeDatabase::creator<SharedFakeConnection>(db), options);
    auto a = pool.connection();
    auto b = pool.connection();
    a.begin();
    auto c = pool.connection();  // a tie, but a's connection is in a transaction
    CHECK(sid(c) == sid(b));
    b->raw().set_server_transaction(true);
    b->execute("leaves a transaction open (autocommit off)");  // the pool learns it here
    // Both shared connections are in transactions: new ones are opened, and they must not
    // become shared beyond maxshared.
    auto d = pool.connection();
    auto e = pool.connection();
    CHECK(sid(d) != sid(a));
    CHECK(sid(d) != sid(b));
    CHECK(sid(e) != sid(d));
    CHECK(pool.stats().total == 4);
    CHECK_THROWS_MATCHES(pool.connection(), dbpool::Error, has_code(ErrorCode::pool_exhausted));
    a.commit();
    auto f = pool.connection();
    CHECK(sid(f) == sid(a));
}

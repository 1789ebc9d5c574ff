// Regression tests of PersistentPool, one per bug, named after it: a connection's lifetime at
// thread exit (thread_local handles and destructors that run after the pool's per-thread state
// is gone; the pool destroyed before or after the thread) and the count of open connections.
#include "pool_test_support.hpp"

#include <dbpool/persistent_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <thread>

using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::Ping;
using fake::eventually;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::has_code;
using fake::ManualClock;
using namespace std::chrono_literals;

namespace {

using Persistent = dbpool::PersistentPool<FakeConnection, ManualClock>;
using Handle = Persistent::handle_type;

struct PersistentFixture {
    std::shared_ptr<FakeDatabase> db = std::make_shared<FakeDatabase>();

    std::unique_ptr<Persistent> make(dbpool::PersistentOptions options = exact()) {
        return std::make_unique<Persistent>(FakeDatabase::creator<FakeConnection>(db),
                                            std::move(options));
    }

    static dbpool::PersistentOptions exact() {
        dbpool::PersistentOptions options;
        options.ping = Ping::never;
        options.ping_bypass = 0ms;
        return options;
    }

    // What the pool counts must be what is really open on the fake server.
    void check_count(const Persistent& pool) const {
        CHECK(pool.open_connections() == static_cast<std::size_t>(db->open_now()));
    }
};

// A thread_local object constructed before the thread first uses the pool, so destroyed after
// the pool's per-thread state; its destructor uses the pool.
struct UsesPoolAtThreadExit {
    Persistent* pool = nullptr;
    std::atomic<int>* statements = nullptr;

    UsesPoolAtThreadExit() = default;
    UsesPoolAtThreadExit(const UsesPoolAtThreadExit&) = delete;
    UsesPoolAtThreadExit& operator=(const UsesPoolAtThreadExit&) = delete;

    ~UsesPoolAtThreadExit() {
        if (pool == nullptr) return;
        try {
            auto handle = pool->connection();
            handle->execute("at thread exit");
            statements->fetch_add(1);
        } catch (...) {
        }
    }
};

}  // namespace

// --- thread exit --------------------------------------------------------------------------------

TEST_CASE_METHOD(PersistentFixture,
                 "regression: a thread_local PersistentConnection destroyed after the pool's "
                 "per-thread state neither reads freed memory nor leaks its connection",
                 "[regression][persistent][concurrency]") {
    auto pool = make();
    SECTION("the thread ends before the pool") {
        std::thread thread([&] {
            thread_local std::optional<Handle> early;  // constructed before the pool's state
            early.emplace(pool->connection());
            (*early)->execute("s");
        });
        thread.join();
        CHECK(db->open_now() == 0);
        check_count(*pool);
        pool.reset();
    }
    SECTION("the pool is destroyed before the thread ends") {
        std::atomic<bool> ready{false};
        std::atomic<bool> pool_gone{false};
        std::thread thread([&] {
            thread_local std::optional<Handle> early;
            early.emplace(pool->connection());
            (*early)->execute("s");
            ready = true;
            if (eventually([&] { return pool_gone.load(); })) {
                (*early)->execute("after the pool is gone");
            }
        });
        REQUIRE(eventually([&] { return ready.load(); }));
        pool.reset();
        CHECK(db->open_now() == 1);  // the handle still holds it
        pool_gone = true;
        thread.join();
    }
    CHECK(db->opens() == 1);
    CHECK(db->closes() == 1);
    CHECK(db->open_now() == 0);
}

TEST_CASE_METHOD(
    PersistentFixture,
    "regression: a thread_local destructor that uses a PersistentPool after the pool's "
    "per-thread state is gone gets a working connection, closed with its handle",
    "[regression][persistent][concurrency]") {
    auto pool = make();
    std::atomic<int> at_exit{0};
    SECTION("the thread used the pool before") {
        std::thread thread([&] {
            thread_local UsesPoolAtThreadExit late;  // constructed before the pool's state
            late.pool = pool.get();
            late.statements = &at_exit;
            auto handle = pool->connection();  // the thread's cache now points at its slot
            handle->execute("s");
        });
        thread.join();
        CHECK(db->opens() == 2);  // the thread's connection, then one for the late destructor
        CHECK(db->executed() == 2);
    }
    SECTION("the thread never used the pool before") {
        std::thread thread([&] {
            thread_local UsesPoolAtThreadExit late;
            late.pool = pool.get();
            late.statements = &at_exit;
        });
        thread.join();
        CHECK(db->opens() == 1);
        CHECK(db->executed() == 1);
    }
    CHECK(at_exit == 1);
    CHECK(db->open_now() == 0);
    check_count(*pool);
    pool.reset();
    CHECK(db->open_now() == 0);
}

TEST_CASE_METHOD(PersistentFixture,
                 "regression: a thread_local handle kept past pool close() is closed when it ends",
                 "[regression][persistent][concurrency]") {
    auto pool = make();
    std::atomic<bool> ready{false};
    std::atomic<bool> closed{false};
    std::atomic<bool> refused{false};  // assertions stay on the test's thread (Catch2)
    std::thread thread([&] {
        thread_local std::optional<Handle> early;
        early.emplace(pool->connection());
        ready = true;
        if (!eventually([&] { return closed.load(); })) return;
        try {
            pool->connection();
        } catch (const dbpool::Error& e) {
            refused = e.code() == ErrorCode::pool_closed;
        }
    });
    REQUIRE(eventually([&] { return ready.load(); }));
    pool->close();
    CHECK(db->open_now() == 1);  // in use: closed when its handle ends
    closed = true;
    thread.join();
    CHECK(refused);
    CHECK(db->open_now() == 0);
    check_count(*pool);
}

// --- open_connections() -------------------------------------------------------------------------

TEST_CASE_METHOD(PersistentFixture,
                 "regression: PersistentPool::open_connections() counts the connections really "
                 "open (broken statements, reconnects, closeable close, thread exit, pool close)",
                 "[regression][persistent]") {
    auto options = exact();
    SECTION("closeable = false") { options.closeable = false; }
    SECTION("closeable = true") { options.closeable = true; }
    auto pool = make(options);
    {
        auto handle = pool->connection();
        handle->execute("s");
        check_count(*pool);
        for (int i = 0; i < 3; ++i) {
            INFO("broken statement " << i + 1);
            db->fail_statements(1, Failure::broken);
            CHECK_THROWS(handle->execute("broken"));
            check_count(*pool);
            auto again = pool->connection();  // reopens
            check_count(*pool);
        }
        handle->reconnect();
        check_count(*pool);
        db->fail_statements(1, Failure::broken);
        CHECK_THROWS(handle->execute("broken"));
        handle.close();  // closes (closeable) or is ignored; the connection is already gone
        check_count(*pool);
    }
    {
        auto handle = pool->connection();
        handle->execute("s");
        handle.close();
        check_count(*pool);
    }
    for (int i = 0; i < 2; ++i) {
        auto handle = pool->connection();
        check_count(*pool);
    }
    std::atomic<bool> counted{false};  // assertions stay on the test's thread (Catch2)
    std::thread thread([&] {
        auto handle = pool->connection();
        handle->execute("s");
        counted = pool->open_connections() == 2 && db->open_now() == 2;
        db->fail_statements(1, Failure::broken);
        try {
            handle->execute("broken");
        } catch (const std::exception&) {
        }
        handle->execute("reopened");
    });
    thread.join();  // its connection closes at thread exit
    CHECK(counted);
    check_count(*pool);
    CHECK(pool->open_connections() == 1);
    pool->close();
    check_count(*pool);
    CHECK(pool->open_connections() == 0);
}

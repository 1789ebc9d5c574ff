// PersistentPool (DBUtils' PersistentDB; docs/dbutils-differences.md): one connection per
// thread, closed at thread exit or pool close, safely in either order.
#include "pool_test_support.hpp"

#include <dbpool/persistent_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

using dbpool::ErrorCode;
using dbpool::Ping;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::has_code;
using fake::ManualClock;
using namespace std::chrono_literals;

namespace {

using Persistent = dbpool::PersistentPool<FakeConnection, ManualClock>;

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
};

int id_on_this_thread(Persistent& pool) {
    auto handle = pool.connection();
    return handle->raw().id();
}

}  // namespace

TEST_CASE_METHOD(PersistentFixture, "persistent: one connection per thread", "[persistent]") {
    auto pool = make();
    CHECK(db->opens() == 0);  // lazily opened
    const int mine = id_on_this_thread(*pool);
    CHECK(id_on_this_thread(*pool) == mine);
    {
        auto a = pool->connection();
        auto b = pool->connection();  // several handles on one thread share it
        CHECK(a->raw().id() == b->raw().id());
    }
    int theirs = 0;
    int theirs_again = 0;
    std::thread other([&] {
        theirs = id_on_this_thread(*pool);
        theirs_again = id_on_this_thread(*pool);
    });
    other.join();
    CHECK(theirs != mine);
    CHECK(theirs == theirs_again);
    CHECK(db->opens() == 2);
    CHECK(db->closes() == 1);  // the other thread exited
    CHECK(pool->open_connections() == 1);
    pool.reset();
    CHECK(db->closes() == 2);
}

TEST_CASE_METHOD(PersistentFixture, "persistent: handle.close() honours closeable",
                 "[persistent]") {
    SECTION("closeable = false (default): close() only rolls back") {
        dbpool::PersistentOptions options = exact();
        CHECK_FALSE(options.closeable);
        auto pool = make(options);
        auto handle = pool->connection();
        const int id = handle->raw().id();
        handle.begin();
        handle.close();
        CHECK_FALSE(handle.is_open());
        CHECK_THROWS_MATCHES(handle->execute("x"), dbpool::Error,
                             has_code(ErrorCode::handle_closed));
        CHECK(db->rollbacks() == 1);
        CHECK(db->closes() == 0);
        CHECK(id_on_this_thread(*pool) == id);
    }
    SECTION("closeable = true: close() closes, the next use reopens") {
        dbpool::PersistentOptions options = exact();
        options.closeable = true;
        auto pool = make(options);
        auto handle = pool->connection();
        const int id = handle->raw().id();
        handle.close();
        CHECK(db->closes() == 1);
        CHECK(pool->open_connections() == 0);
        CHECK(id_on_this_thread(*pool) != id);
        CHECK(db->opens() == 2);
        CHECK(pool->open_connections() == 1);
    }
}

TEST_CASE_METHOD(PersistentFixture, "persistent: a closed pool refuses requests", "[persistent]") {
    auto pool = make();
    id_on_this_thread(*pool);
    pool->close();
    CHECK(db->closes() == 1);
    CHECK(pool->open_connections() == 0);
    CHECK_THROWS_MATCHES(pool->connection(), dbpool::Error, has_code(ErrorCode::pool_closed));
    std::atomic<bool> refused{false};
    std::thread other([&] {
        try {
            pool->connection();
        } catch (const dbpool::Error& e) {
            refused = e.code() == ErrorCode::pool_closed;
        }
    });
    other.join();
    CHECK(refused);
    CHECK(db->opens() == 1);
    pool->close();  // idempotent
}

TEST_CASE_METHOD(PersistentFixture, "persistent: maxusage, setsession and ping per thread",
                 "[persistent]") {
    auto options = exact();
    options.maxusage = 2;
    options.setsession = {"SET a = 1"};
    options.ping = Ping::on_request;
    auto pool = make(options);
    auto work = [&] {
        for (int i = 0; i < 3; ++i) {
            auto handle = pool->connection();  // 3 requests, 3 pings
            handle->execute("s");
        }
    };
    work();
    std::thread other(work);
    other.join();
    CHECK(db->opens() == 4);  // each thread: first connection, reopened for its 3rd statement
    CHECK(db->session_statements() == 4);
    CHECK(db->pings() == 6);
}

TEST_CASE_METHOD(PersistentFixture, "persistent: 200 short-lived threads leave nothing open",
                 "[persistent][concurrency]") {
    db->set_logging(false);
    auto pool = make();
    constexpr int batches = 25;
    constexpr int per_batch = 8;
    for (int b = 0; b < batches; ++b) {
        std::vector<std::thread> threads;
        for (int t = 0; t < per_batch; ++t) {
            threads.emplace_back([&] {
                auto handle = pool->connection();
                handle->execute("s");
            });
        }
        for (auto& thread : threads)
            thread.join();
    }
    CHECK(pool->open_connections() == 0);
    CHECK(db->opens() == batches * per_batch);
    CHECK(db->closes() == batches * per_batch);
}

TEST_CASE_METHOD(PersistentFixture, "persistent: pool destroyed before its threads exit",
                 "[persistent][concurrency]") {
    db->set_logging(false);
    auto pool = make();
    constexpr int count = 4;
    std::atomic<int> ready{0};
    std::atomic<bool> pool_gone{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < count; ++t) {
        threads.emplace_back([&, t] {
            auto handle = pool->connection();
            handle->execute("s");
            if (t % 2 == 0) handle.close();  // half keep their handle while the pool dies
            ready.fetch_add(1);
            for (int i = 0; i < 100000 && !pool_gone.load(); ++i)
                std::this_thread::yield();
            if (handle.is_open()) handle->execute("after the pool is gone");
        });
    }
    REQUIRE(fake::eventually([&] { return ready.load() == count; }));
    pool.reset();
    CHECK(db->closes() == count / 2);  // the others are closed when their handles end
    pool_gone = true;
    for (auto& thread : threads)
        thread.join();
    CHECK(db->opens() == count);
    CHECK(db->closes() == count);
    CHECK(db->executed() == count + count / 2);
}

TEST_CASE_METHOD(PersistentFixture, "persistent: threads exit before the pool",
                 "[persistent][concurrency]") {
    auto pool = make();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            auto handle = pool->connection();
            handle->execute("s");
        });
    }
    for (auto& thread : threads)
        thread.join();
    CHECK(db->closes() == 4);
    id_on_this_thread(*pool);
    pool.reset();
    CHECK(db->opens() == 5);
    CHECK(db->closes() == 5);
}

// PersistentPool keyed by a context other than the thread (include/dbpool/persistent_context.hpp):
// for each kind of policy, the lifecycle PersistentPool has for threads (persistent_pool_test.cpp,
// persistent_regression_test.cpp): one connection per context, closed at context end, the pool
// closed or destroyed first, a broken connection, a transaction lost, and the count of open
// connections throughout, and stats() (every lifecycle test checks it against the fake server).
//
// Two policies stand for the two kinds: FakeFiberContext (storage: a context-local table the test
// destroys to end the context, as Boost.Fiber's fiber_specific_ptr does at fiber end) and
// RequestContext (keyed: the test sets the current key and calls end_context()).
#include "pool_test_support.hpp"

#include <dbpool/persistent_context.hpp>
#include <dbpool/persistent_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::Ping;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::has_code;
using fake::ManualClock;
using namespace std::chrono_literals;

namespace {

// --- a storage-kind policy -----------------------------------------------------------------------

// A fake fiber: what its context-local storage holds. Ending it destroys that storage.
struct FakeFiber {
    std::shared_ptr<void> local;
};

thread_local FakeFiber* running_fiber = nullptr;

struct FakeFiberContext {
    template <class T>
    static T& local() {
        FakeFiber& fiber = *running_fiber;
        if (!fiber.local) fiber.local = std::make_shared<T>();
        return *static_cast<T*>(fiber.local.get());
    }
};

struct StorageKind {
    using Pool = dbpool::PersistentPool<FakeConnection, ManualClock, FakeFiberContext>;

    std::vector<std::unique_ptr<FakeFiber>> fibers;

    explicit StorageKind(int count) {
        for (int i = 0; i < count; ++i)
            fibers.push_back(std::make_unique<FakeFiber>());
    }

    // Runs context `c` on the calling thread from now on.
    void enter(int c) { running_fiber = fibers.at(static_cast<std::size_t>(c)).get(); }

    // The context ends on the calling thread (Boost.Fiber runs the cleanup in the fiber).
    void end(Pool* /*pool*/, int c) { fibers.at(static_cast<std::size_t>(c))->local.reset(); }
};

// --- a keyed policy ------------------------------------------------------------------------------

thread_local int current_request = 0;

struct RequestContext {
    using key_type = int;
    static key_type current() { return current_request; }
};

struct KeyedKind {
    using Pool = dbpool::PersistentPool<FakeConnection, ManualClock, RequestContext>;

    explicit KeyedKind(int /*count*/) {}

    void enter(int c) { current_request = c + 1; }

    // A destroyed pool has nothing to tell.
    void end(Pool* pool, int c) {
        if (pool != nullptr) pool->end_context(c + 1);
    }
};

static_assert(dbpool::detail::context_kind<dbpool::ThreadContext>() ==
              dbpool::detail::ContextKind::thread);
static_assert(dbpool::detail::context_kind<FakeFiberContext>() ==
              dbpool::detail::ContextKind::storage);
static_assert(dbpool::detail::context_kind<RequestContext>() == dbpool::detail::ContextKind::keyed);

dbpool::PersistentOptions exact() {
    dbpool::PersistentOptions options;
    options.ping = Ping::never;
    options.ping_bypass = 0ms;
    return options;
}

// stats() as the fake server sees it; exact while no other thread opens or closes.
template <class Pool>
void check_stats(const Pool& pool, const FakeDatabase& db) {
    const dbpool::PoolStats stats = pool.stats();
    CHECK(stats.total == static_cast<std::size_t>(db.open_now()));
    CHECK(stats.created == static_cast<std::uint64_t>(db.opens()));
    CHECK(stats.closed == static_cast<std::uint64_t>(db.closes()));
    CHECK(stats.idle + stats.in_use == stats.total);
    CHECK(stats.waiting == 0);
    CHECK(stats.maxconnections == 0);
}

template <class Kind>
struct ContextFixture {
    using Pool = typename Kind::Pool;

    std::shared_ptr<FakeDatabase> db = std::make_shared<FakeDatabase>();
    Kind contexts{4};
    std::unique_ptr<Pool> pool = make();

    std::unique_ptr<Pool> make(dbpool::PersistentOptions options = exact()) {
        return std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db),
                                      std::move(options));
    }

    int id_in(int c) {
        contexts.enter(c);
        auto handle = pool->connection();
        return handle->raw().id();
    }

    void end(int c) { contexts.end(pool.get(), c); }

    // What the pool counts must be what is really open on the fake server.
    void check_count() const {
        CHECK(pool->open_connections() == static_cast<std::size_t>(db->open_now()));
        check_stats(*pool, *db);
    }
};

}  // namespace

TEMPLATE_TEST_CASE_METHOD(ContextFixture,
                          "persistent contexts: one connection per context, closed at its end",
                          "[persistent][context]", StorageKind, KeyedKind) {
    auto& f = *this;
    CHECK(f.db->opens() == 0);  // lazily opened
    const int first = f.id_in(0);
    CHECK(f.id_in(0) == first);
    {
        f.contexts.enter(0);
        auto a = f.pool->connection();
        auto b = f.pool->connection();  // several handles in one context share it
        CHECK(a->raw().id() == b->raw().id());
    }
    const int second = f.id_in(1);  // another context on the same thread
    CHECK(second != first);
    CHECK(f.id_in(0) == first);
    CHECK(f.pool->open_connections() == 2);
    f.check_count();

    f.end(0);
    CHECK(f.db->closes() == 1);
    CHECK(f.pool->open_connections() == 1);
    f.check_count();
    CHECK(f.id_in(1) == second);

    // A context may move to another thread with its connection (a fiber migrates, a coroutine
    // resumes on a thread pool).
    int moved = 0;
    std::thread other([&] { moved = f.id_in(1); });
    other.join();
    CHECK(moved == second);

    f.pool.reset();
    CHECK(f.db->closes() == 2);
    CHECK(f.db->open_now() == 0);
    f.end(1);  // after the pool: nothing left to close
    CHECK(f.db->closes() == 2);
}

TEMPLATE_TEST_CASE_METHOD(ContextFixture,
                          "persistent contexts: a context that ends with a handle out closes "
                          "its connection when the handle ends",
                          "[persistent][context]", StorageKind, KeyedKind) {
    auto& f = *this;
    f.contexts.enter(0);
    {
        auto handle = f.pool->connection();
        handle->execute("s");
        f.end(0);
        CHECK(f.db->open_now() == 1);  // in use
        handle->execute("after the context ended");
        f.check_count();
    }
    CHECK(f.db->open_now() == 0);
    f.check_count();
    CHECK(f.id_in(0) != 1);  // the context begins again: a new connection
    CHECK(f.db->opens() == 2);
    f.end(0);
    CHECK(f.db->open_now() == 0);
}

TEMPLATE_TEST_CASE_METHOD(ContextFixture,
                          "persistent contexts: the pool closed before its contexts end",
                          "[persistent][context]", StorageKind, KeyedKind) {
    auto& f = *this;
    f.id_in(0);
    f.contexts.enter(1);
    auto held = f.pool->connection();
    held->execute("s");
    f.pool->close();
    CHECK(f.db->closes() == 1);    // the idle one at once
    CHECK(f.db->open_now() == 1);  // the one in use when its handle ends
    CHECK_THROWS_MATCHES(f.pool->connection(), dbpool::Error, has_code(ErrorCode::pool_closed));
    f.contexts.enter(2);
    CHECK_THROWS_MATCHES(f.pool->connection(), dbpool::Error, has_code(ErrorCode::pool_closed));
    f.end(0);
    f.end(1);
    held->execute("after close");
    f.check_count();
    { auto gone = std::move(held); }
    CHECK(f.db->open_now() == 0);
    f.check_count();
    f.pool->close();  // idempotent
    CHECK(f.db->opens() == 2);
    CHECK(f.db->closes() == 2);
}

TEMPLATE_TEST_CASE_METHOD(ContextFixture,
                          "persistent contexts: the pool destroyed before its contexts end",
                          "[persistent][context]", StorageKind, KeyedKind) {
    auto& f = *this;
    f.id_in(0);
    f.contexts.enter(1);
    auto held = f.pool->connection();
    f.pool.reset();
    CHECK(f.db->closes() == 1);
    CHECK(f.db->open_now() == 1);
    held->execute("after the pool is gone");
    f.end(1);
    { auto gone = std::move(held); }
    f.end(0);
    CHECK(f.db->open_now() == 0);
    CHECK(f.db->opens() == 2);
    CHECK(f.db->closes() == 2);
}

TEMPLATE_TEST_CASE_METHOD(ContextFixture,
                          "persistent contexts: a broken connection reopens in place, counted",
                          "[persistent][context]", StorageKind, KeyedKind) {
    auto& f = *this;
    const bool closeable = GENERATE(false, true);
    auto options = exact();
    options.closeable = closeable;
    f.pool = f.make(options);
    f.contexts.enter(0);
    auto handle = f.pool->connection();
    handle->execute("s");
    const int before = handle->raw().id();
    f.db->fail_statements(1, Failure::broken);
    CHECK_THROWS(handle->execute("broken"));
    f.check_count();
    handle->execute("reopened");
    CHECK(handle->raw().id() != before);
    f.check_count();
    f.contexts.enter(1);
    {
        auto elsewhere = f.pool->connection();
        CHECK(elsewhere->raw().id() != handle->raw().id());
        f.check_count();
    }
    handle.close();  // closes (closeable) or is ignored
    f.check_count();
    f.end(0);
    f.end(1);
    CHECK(f.db->open_now() == 0);
    f.check_count();
}

TEMPLATE_TEST_CASE_METHOD(ContextFixture,
                          "persistent contexts: a transaction lost to a broken connection is "
                          "reported, in that context only",
                          "[persistent][context]", StorageKind, KeyedKind) {
    auto& f = *this;
    f.contexts.enter(1);
    auto other = f.pool->connection();
    other.begin();
    f.contexts.enter(0);
    auto handle = f.pool->connection();
    handle.begin();
    handle->execute("w");
    f.db->fail_statements(1, Failure::broken);
    CHECK_THROWS_MATCHES(handle->execute("w"), dbpool::Error,
                         has_code(ErrorCode::transaction_lost));
    CHECK_THROWS_MATCHES(handle.commit(), dbpool::Error, has_code(ErrorCode::transaction_lost));
    handle.rollback();
    handle->execute("again");
    f.check_count();
    CHECK(other->in_transaction());  // the other context's transaction is untouched
    other.commit();
    CHECK(f.db->commits() == 1);
    f.end(0);
    f.end(1);
}

TEMPLATE_TEST_CASE_METHOD(ContextFixture,
                          "persistent contexts: a step's transaction outlives its handle; the "
                          "next step may end it but not begin() over it",
                          "[persistent][context][guard]", StorageKind, KeyedKind) {
    auto& f = *this;
    f.contexts.enter(2);  // another context's transaction, which must stay untouched
    auto other = f.pool->connection();
    other.begin();
    f.contexts.enter(0);
    {
        auto step = f.pool->connection();  // a coroutine's first step
        step.begin();
        step->execute("debit a");
    }  // the step's handle ends: the transaction stays with the context
    auto next = f.pool->connection();  // the next step, which forgot that one is open
    REQUIRE(next->in_transaction());
    const auto before = f.db->log();
    CHECK_THROWS_MATCHES(next.begin(), dbpool::Error,
                         Catch::Predicate<dbpool::Error>([](const dbpool::Error& e) {
                             const std::string what = e.what();
                             return e.code() == ErrorCode::usage &&
                                    what.find(
                                        "this context's connection, a handle that no "
                                        "longer exists") != std::string::npos;
                         }));
    CHECK(f.db->log() == before);  // nothing sent: the first step's work was not committed
    next->execute("credit b");
    next.commit();  // the next step may end it, as the coroutine example's second step does
    next.begin();
    next.rollback();
    CHECK(f.db->commits() == 1);
    CHECK(other->in_transaction());
    other.rollback();
    f.end(0);
    f.end(2);
    f.check_count();
}

TEMPLATE_TEST_CASE_METHOD(ContextFixture,
                          "persistent contexts: contexts on several threads end while the pool "
                          "closes",
                          "[persistent][context][concurrency]", StorageKind, KeyedKind) {
    auto& f = *this;
    f.db->set_logging(false);
    constexpr int threads = 4;
    constexpr int rounds = 50;
    TestType tasks(threads * rounds);  // one fake fiber (or key) per task
    std::atomic<int> started{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int r = 0; r < rounds; ++r) {
                const int c = t * rounds + r;
                tasks.enter(c);
                try {
                    auto handle = f.pool->connection();
                    handle->execute("s");
                    auto second = f.pool->connection();
                    second->execute("s");
                } catch (const dbpool::Error&) {  // pool_closed once the test closes it
                }
                started.fetch_add(1);
                tasks.end(f.pool.get(), c);
            }
        });
    }
    REQUIRE(fake::eventually([&] { return started.load() >= threads * rounds / 2; }));
    f.pool->close();
    for (auto& worker : workers)
        worker.join();
    CHECK(f.db->open_now() == 0);
    CHECK(f.pool->open_connections() == 0);
    CHECK(f.db->opens() == f.db->closes());
}

TEMPLATE_TEST_CASE_METHOD(ContextFixture,
                          "persistent contexts: stats() counts contexts in use, idle connections, "
                          "reconnects and failed connects",
                          "[persistent][context]", StorageKind, KeyedKind) {
    auto& f = *this;
    f.id_in(0);
    f.id_in(1);
    f.contexts.enter(2);
    auto held = f.pool->connection();
    auto second = f.pool->connection();  // one context holding two handles is one in use
    dbpool::PoolStats stats = f.pool->stats();
    CHECK(stats.total == 3);
    CHECK(stats.in_use == 1);
    CHECK(stats.idle == 2);
    CHECK(stats.created == 3);
    CHECK(stats.reconnects == 0);
    f.db->fail_statements(1, Failure::broken);
    CHECK_THROWS(held->execute("broken"));
    held->execute("reopened in place");
    stats = f.pool->stats();
    CHECK(stats.reconnects == 1);
    CHECK(stats.created == 4);
    CHECK(stats.closed == 1);
    CHECK(stats.total == 3);
    f.check_count();

    f.db->fail_connects(1);
    f.contexts.enter(3);
    CHECK_THROWS_MATCHES(f.pool->connection(), dbpool::Error, has_code(ErrorCode::connect_failed));
    CHECK(f.pool->stats().failed_connects == 1);
    f.check_count();

    f.end(0);
    stats = f.pool->stats();
    CHECK(stats.total == 2);
    CHECK(stats.in_use == 1);
    CHECK(stats.idle == 1);
    { auto gone = std::move(held); }
    { auto gone = std::move(second); }
    CHECK(f.pool->stats().in_use == 0);
    f.end(1);
    f.end(2);
    f.check_count();
    CHECK(f.pool->stats().total == 0);
}

TEST_CASE("persistent contexts: stats() of the thread-keyed default", "[persistent][context]") {
    auto db = std::make_shared<FakeDatabase>();
    dbpool::PersistentPool<FakeConnection, ManualClock> pool(
        FakeDatabase::creator<FakeConnection>(db), exact());
    auto mine = pool.connection();
    std::thread([&] {
        auto theirs = pool.connection();
        theirs->execute("s");
    }).join();  // that thread has ended: its connection is closed
    dbpool::PoolStats stats = pool.stats();
    CHECK(stats.total == 1);
    CHECK(stats.in_use == 1);
    CHECK(stats.idle == 0);
    CHECK(stats.created == 2);
    CHECK(stats.closed == 1);
    check_stats(pool, *db);
    { auto gone = std::move(mine); }
    stats = pool.stats();
    CHECK(stats.in_use == 0);
    CHECK(stats.idle == 1);
    pool.close();
    check_stats(pool, *db);
    CHECK(pool.stats().total == 0);
}

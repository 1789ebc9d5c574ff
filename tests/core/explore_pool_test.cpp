// The real pool code under the schedule explorer (explore/): small pools, a few threads, every
// schedule with up to two preemptions (or random PCT schedules for bigger scenarios), the
// pool's invariants checked at the end of every locked section and, whenever every thread is
// blocked, that no waiter sleeps beside an idle connection. Each bug an interleaving caused has
// its scenario here, named after it; the explorer finds each of them when its fix is reverted
// (docs/design.md, "Exploring schedules").
#include "explore/explore.hpp"
#include "explore_test_support.hpp"
#include "fake_connection.hpp"
#include "pool_test_support.hpp"

#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

namespace explore = dbpool::explore;
using Sync = explore::Sync;
using dbpool::ErrorCode;
using explore_test::bounded;
using explore_test::error_of;
using explore_test::report;
using fake::FakeDatabase;
using namespace std::chrono_literals;

namespace {

// How long the next pings hang, in virtual time (0: they answer at once).
std::atomic<long long> ping_hang_ms{0};

// A fake connection whose ping can hang on a dead network, in the explorer's virtual time.
class HangingConnection : public fake::FakeConnection {
public:
    using FakeConnection::FakeConnection;

    bool ping() {
        const long long hang = ping_hang_ms.load();
        if (hang > 0) explore::sleep_for(std::chrono::milliseconds(hang));
        return FakeConnection::ping();
    }
};

using Pool = dbpool::PooledPool<HangingConnection, explore::Clock>;
using Core = dbpool::detail::PooledCore<HangingConnection, explore::Clock>;
using Invariants = dbpool::detail::PoolInvariants<Core>;

dbpool::PoolOptions small_pool(int maxconnections) {
    auto options = fake::test_options();  // no maintenance thread, no pings
    options.maxconnections = maxconnections;
    options.blocking = true;
    options.acquire_timeout = 1000ms;
    return options;
}

std::unique_ptr<Pool> make_pool(const std::shared_ptr<FakeDatabase>& db,
                                const dbpool::PoolOptions& options) {
    return std::make_unique<Pool>(FakeDatabase::creator<HangingConnection>(db), options);
}

// Checks, whenever every thread is blocked, that no thread waits while a connection is idle;
// stops checking when it goes (declare it after the pool, so it goes first).
class QuiescentWatch {
public:
    explicit QuiescentWatch(const Pool& pool) : cell_(std::make_shared<const Pool*>(&pool)) {
        explore::on_quiescent([cell = cell_] {
            if (*cell != nullptr) Invariants::check_quiescent(**cell);
        });
    }
    QuiescentWatch(const QuiescentWatch&) = delete;
    QuiescentWatch& operator=(const QuiescentWatch&) = delete;
    ~QuiescentWatch() { *cell_ = nullptr; }

private:
    std::shared_ptr<const Pool*> cell_;
};

std::string name_of(const std::optional<ErrorCode>& error) {
    return error ? dbpool::to_string(*error) : "success";
}

// explore::check with the outcome in the message.
void check_outcome(bool ok, const char* what, const std::optional<ErrorCode>& error) {
    if (ok) return;
    const std::string message = std::string(what) + " (got " + name_of(error) + ")";
    explore::check(false, message.c_str());
}

// --- the scenarios ---------------------------------------------------------------------------

// Two waiters, a connect in flight for them, and one borrowed connection. The borrowed one
// comes back first (the oldest waiter is not due a hand-off: it goes idle, and the oldest is
// woken for it); before the oldest runs, the new connection arrives and, opened for the
// waiters, goes straight to the oldest. The next waiter is now the oldest, and the idle
// connection is its own: it must be woken for it, or it sleeps beside it for good.
void lost_wake_up() {
    auto db = std::make_shared<FakeDatabase>();
    auto options = small_pool(2);
    options.reset = dbpool::Reset::always;  // the return goes through offer()
    options.handoff_after = 1s;             // nobody is due a hand-off in this scenario
    options.acquire_timeout = 0ms;          // no deadline: a waiter nobody wakes sleeps for good
    auto pool = make_pool(db, options);
    QuiescentWatch watch(*pool);
    auto borrowed = pool->connection();
    // Each waiter keeps its connection until both are served (a request that needs the other
    // one's work): a waiter left asleep is then nobody's to wake.
    Sync::mutex mutex;
    Sync::condition_variable both_served;
    int served = 0;
    const auto wait_for_one = [&] {
        auto handle = pool->connection();
        handle->execute("served");
        std::unique_lock<Sync::mutex> lock(mutex);
        ++served;
        both_served.notify_all();
        both_served.wait(lock, [&] { return served == 2; });
    };
    Sync::thread w1(wait_for_one);  // w1 and w2 queue in either order
    Sync::thread w2(wait_for_one);
    borrowed.close();
    w1.join();
    w2.join();
}

// A return's lock-free path makes its connection idle while close() looks at the slots: close()
// must close it, not miss it.
void close_misses_a_fast_return() {
    auto db = std::make_shared<FakeDatabase>();
    auto options = small_pool(1);
    options.mincached = 1;
    auto pool = make_pool(db, options);
    auto handle = pool->connection();
    // Both on threads of their own, so that the scenario's thread waits (a free switch) and
    // both preemptions of the bound go to the race itself.
    Sync::thread returner([&] { handle.close(); });
    Sync::thread closer([&] { pool->close(); });
    returner.join();
    closer.join();
    pool.reset();
    explore::check(db->open_now() == 0, "every connection is closed once the pool is gone");
}

// Two threads close the pool at once; the one that returns second frees what the pool's event
// callback uses. No callback may run after either close() returned.
void second_close_returns_early() {
    auto db = std::make_shared<FakeDatabase>();
    auto options = small_pool(1);
    options.mincached = 1;
    auto freed = std::make_shared<std::atomic<bool>>(false);
    options.on_event = [freed](const dbpool::PoolEvent&) {
        explore::check(!freed->load(), "a callback ran after close() returned");
    };
    auto pool = make_pool(db, options);
    Sync::thread first([&] { pool->close(); });
    Sync::thread second([&] {
        pool->close();
        freed->store(true);  // the callback's state is gone once close() returned
    });
    first.join();
    second.join();
}

// A worker is idle. Two tasks come back to back: a hand-out ping that hangs (a dead network),
// and a connect for a waiter. The connect must get a worker of its own, not queue behind the
// ping while the pool may start another thread.
void worker_starvation() {
    auto db = std::make_shared<FakeDatabase>();
    auto options = small_pool(2);
    options.mincached = 1;
    options.ping = dbpool::Ping::on_request;  // the idle connection is pinged at hand-out
    ping_hang_ms.store(0);
    auto pool = make_pool(db, options);
    QuiescentWatch watch(*pool);
    { auto warm = pool->connection(); }  // its ping runs on a worker, which then lingers
    ping_hang_ms.store(3'600'000);       // from now on pings hang for an hour
    // One of them claims the idle connection and times out on its ping; the other must be
    // served by a new connection, opened by a worker of its own.
    std::atomic<int> served{0};
    const auto acquire = [&] {
        const auto error = error_of([&] { auto handle = pool->connection(); });
        check_outcome(!error || error == ErrorCode::timeout, "served or timed out", error);
        if (!error) served.fetch_add(1);
    };
    Sync::thread first(acquire);
    Sync::thread second(acquire);
    first.join();
    second.join();
    explore::check(served.load() == 1,
                   "a connect waited behind a hanging ping while the pool could start a worker");
    ping_hang_ms.store(0);
}

// No worker thread can be started: the acquirer is told so in time, and once threads can be
// started again the pool serves as before (no slot stays reserved for a task that never ran).
void worker_cannot_start() {
    auto db = std::make_shared<FakeDatabase>();
    auto options = small_pool(1);
    options.connect_backoff_min = 10ms;
    options.connect_backoff_max = 10ms;
    auto pool = make_pool(db, options);
    QuiescentWatch watch(*pool);
    Sync::thread first([&] {
        explore::fail_every_thread_start(true);
        const auto error = error_of([&] { auto handle = pool->connection(); });
        explore::fail_every_thread_start(false);
        check_outcome(error == ErrorCode::connect_failed, "told that no connect could start",
                      error);
    });
    first.join();
    explore::sleep_for(20ms);  // past the back-off
    Sync::thread second([&] {
        const auto error = error_of([&] { auto handle = pool->connection(); });
        explore::check(!error, "the pool serves again once a worker can start");
    });
    second.join();
}

// Two connections, three borrowers and a close(): the invariants and the quiescent check in
// every schedule PCT draws.
void churn_and_close() {
    auto db = std::make_shared<FakeDatabase>();
    auto options = small_pool(2);
    options.acquire_timeout = 0ms;  // wait as long as it takes: a lost wake-up is a deadlock
    auto pool = make_pool(db, options);
    {
        QuiescentWatch watch(*pool);
        const auto borrow = [&] {
            for (int i = 0; i < 2; ++i) {
                const auto error = error_of([&] {
                    auto handle = pool->connection();
                    handle->execute("work");
                });
                check_outcome(!error || error == ErrorCode::pool_closed,
                              "a borrower failed other than by close()", error);
            }
        };
        Sync::thread t1(borrow);
        Sync::thread t2(borrow);
        Sync::thread t3(borrow);
        explore::sleep_for(1ms);
        pool->close();
        t1.join();
        t2.join();
        t3.join();
    }
    pool.reset();
    explore::check(db->open_now() == 0, "every connection is closed once the pool is gone");
}

}  // namespace

TEST_CASE("explore: lost wake-up: the waiter that becomes the oldest is woken",
          "[explore][regression]") {
    // Every schedule with one preemption (483 of them); two preemptions are sampled by PCT
    // (the bounded-2 space is beyond 50,000 schedules: docs/design.md).
    report("lost wake-up", explore::dfs(bounded(1), lost_wake_up));
    report("lost wake-up (PCT)", explore::pct(3, 300, 3, lost_wake_up));
}

TEST_CASE("explore: close() does not miss a connection on the lock-free return",
          "[explore][regression]") {
    report("close() and a fast return", explore::dfs(bounded(2), close_misses_a_fast_return));
}

TEST_CASE("explore: a second concurrent close() returns only when callbacks have stopped",
          "[explore][regression]") {
    report("two close() calls", explore::dfs(bounded(2), second_close_returns_early));
}

TEST_CASE("explore: worker starvation: a connect never queues behind a hanging ping",
          "[explore][regression]") {
    report("worker starvation", explore::dfs(bounded(1), worker_starvation));
    report("worker starvation (PCT)", explore::pct(1, 300, 3, worker_starvation));
}

TEST_CASE("explore: a worker thread that cannot be created leaves no slot reserved",
          "[explore][regression]") {
    report("worker cannot start", explore::dfs(bounded(1), worker_cannot_start));
}

TEST_CASE("explore: three borrowers and close() on two connections (PCT)", "[explore]") {
    report("churn and close (PCT)", explore::pct(7, 300, 3, churn_and_close));
}

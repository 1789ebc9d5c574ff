// Regression tests for fork(): a handle inherited by a child must never talk on the parent's
// connection, neither when it is used nor when it is returned. The child reports through its
// exit code (no Catch2 in the child).
#include "../fork_support.hpp"
#include "pool_test_support.hpp"

#include <dbpool/persistent_pool.hpp>
#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using fake::FakeConnection;
using fake::FakeDatabase;
using fake::ManualClock;
using fake::SharedFakeConnection;
using fake::test_options;
using namespace std::chrono_literals;

namespace {

// What the child found; the exit code of the child.
enum ChildCode : int {
    child_ok = 0,
    statement_reached_parent = 1,  // the child's statement was logged on the parent's connection
    other_traffic_on_parent = 2,   // anything else was sent on it (ROLLBACK, reset, close, ...)
    parent_not_abandoned = 3,      // the inherited connection was not dropped with abandon()
    child_threw = 100,
    child_hung = 200,
};

const char* describe(int code) {
    switch (code) {
        case child_ok: return "ok";
        case statement_reached_parent:
            return "the child's statement reached the parent's connection";
        case other_traffic_on_parent: return "the child sent something on the parent's connection";
        case parent_not_abandoned: return "the inherited connection was not abandoned";
        case child_threw: return "the child threw";
        case child_hung: return "the child hung (killed after 10 s)";
        default: return "the child died of a signal";
    }
}

// Checks what the child did to the parent's connection `id` since the fork, given its log up to
// the fork. Only abandon() may have happened to it (locally: nothing goes to the server).
int inspect(const FakeDatabase& db, int id, const std::vector<std::string>& before_fork,
            bool require_abandon) {
    const auto log = db.log_of(id);
    if (log.size() < before_fork.size()) return other_traffic_on_parent;
    int abandons = 0;
    for (std::size_t i = before_fork.size(); i < log.size(); ++i) {
        if (log[i] == "exec in the child") return statement_reached_parent;
        if (log[i] == "abandon " + std::to_string(id)) {
            ++abandons;
        } else {
            return other_traffic_on_parent;
        }
    }
    if (abandons > 1 || (require_abandon && abandons == 0)) return parent_not_abandoned;
    return child_ok;
}

// Runs `child` in a forked child process and returns its exit code.
int run_in_child(const std::function<int()>& child) {
    const pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int code = child_threw;
        try {
            code = child();
        } catch (...) {
            code = child_threw;
        }
        ::_exit(code);  // no destructors, no leak check: inherited handles stay as they are
    }
    int status = 0;
    const bool exited =
        fake::eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 10s);
    if (!exited) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return child_hung;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE(
    "regression: after fork() a statement through an inherited pooled handle never reaches the "
    "parent's connection",
    "[regression][fork]") {
    DBPOOL_SKIP_FORK_UNDER_SANITIZERS();
    auto db = std::make_shared<FakeDatabase>();
    dbpool::PooledPool<FakeConnection, ManualClock> pool(FakeDatabase::creator<FakeConnection>(db),
                                                         test_options());
    auto handle = pool.connection();
    handle.begin();
    handle->execute("in the parent");
    const int parent_id = handle->raw().id();
    const auto before_fork = db->log_of(parent_id);

    const int code = run_in_child([&] {
        try {
            handle->execute(
                "in the child");  // may fail or use a new connection, never the parent's
        } catch (...) {
        }
        const int after_statement = inspect(*db, parent_id, before_fork, true);
        if (after_statement != child_ok) return after_statement;
        handle.close();
        return inspect(*db, parent_id, before_fork, true);
    });
    INFO("child: " << describe(code));
    CHECK(code == child_ok);

    // The parent's transaction goes on untouched.
    CHECK(db->log_of(parent_id) == before_fork);
    handle->execute("in the parent again");
    handle.commit();
    CHECK(db->commits() == 1);
}

TEST_CASE("regression: after fork() returning an inherited pooled handle sends nothing",
          "[regression][fork]") {
    DBPOOL_SKIP_FORK_UNDER_SANITIZERS();
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.reset = dbpool::Reset::rollback;  // a return inside a transaction sends ROLLBACK
    dbpool::PooledPool<FakeConnection, ManualClock> pool(FakeDatabase::creator<FakeConnection>(db),
                                                         options);
    auto handle = pool.connection();
    handle.begin();
    handle->execute("in the parent");
    const int parent_id = handle->raw().id();
    const auto before_fork = db->log_of(parent_id);

    const int code = run_in_child([&] {
        handle.close();  // no ROLLBACK on the parent's connection
        return inspect(*db, parent_id, before_fork, true);
    });
    INFO("child: " << describe(code));
    CHECK(code == child_ok);

    CHECK(db->rollbacks() == 0);
    handle->execute("in the parent again");
    handle.commit();
    CHECK(db->commits() == 1);
}

TEST_CASE(
    "regression: after fork() an inherited persistent handle neither runs statements on nor "
    "rolls back the parent's connection",
    "[regression][fork][persistent]") {
    DBPOOL_SKIP_FORK_UNDER_SANITIZERS();
    auto db = std::make_shared<FakeDatabase>();
    dbpool::PersistentOptions options;  // closeable = false: close() rolls back an open one
    options.ping = dbpool::Ping::never;
    options.ping_bypass = 0ms;
    dbpool::PersistentPool<FakeConnection, ManualClock> pool(
        FakeDatabase::creator<FakeConnection>(db), options);
    auto handle = pool.connection();
    handle.begin();
    handle->execute("in the parent");
    const int parent_id = handle->raw().id();
    const auto before_fork = db->log_of(parent_id);

    const int code = run_in_child([&] {
        try {
            handle->execute("in the child");
        } catch (...) {
        }
        const int after_statement = inspect(*db, parent_id, before_fork, true);
        if (after_statement != child_ok) return after_statement;
        handle.close();
        return inspect(*db, parent_id, before_fork, true);
    });
    INFO("child: " << describe(code));
    CHECK(code == child_ok);

    CHECK(db->log_of(parent_id) == before_fork);
    handle->execute("in the parent again");
    handle.commit();
    CHECK(db->commits() == 1);
}

TEST_CASE(
    "regression: after fork() a child does not deadlock on a thread_safe_sharing connection "
    "another thread of the parent was using",
    "[regression][fork][persistent]") {
    DBPOOL_SKIP_CONCURRENT_FORK_UNDER_SANITIZERS();
    auto db = std::make_shared<FakeDatabase>();
    dbpool::PersistentOptions options;
    options.ping = dbpool::Ping::never;
    options.ping_bypass = 0ms;
    dbpool::PersistentPool<SharedFakeConnection, ManualClock> pool(
        FakeDatabase::creator<SharedFakeConnection>(db), options);

    // Another thread is inside a statement: it holds its connection's lock at the fork.
    fake::Gate gate;
    std::thread user([&] {
        auto handle = pool.connection();
        handle->run([&](SharedFakeConnection&) {
            gate.arrive_and_wait();
            return 0;
        });
    });
    gate.wait_arrived();

    const int code = run_in_child([&] {
        ::alarm(5);  // a child stuck on the inherited lock dies of SIGALRM instead of hanging
        auto handle = pool.connection();  // forgets every inherited connection, the busy one too
        handle->execute("in the child");
        return child_ok;
    });
    INFO("child: " << describe(code));
    CHECK(code == child_ok);

    gate.release();
    user.join();
    CHECK(db->abandons() == 0);  // the parent's connections are untouched
}

// --- fork() in one rule (docs/design.md, "fork()"): in the child every inherited connection is
// abandoned, and every handle from before the fork, whichever thread borrowed it, fails its next
// use with handle_closed and never shares a connection with a new borrower.

namespace {

// The child's verdicts on a pre-fork handle.
constexpr int old_handle_worked = 10;          // a pre-fork handle ran a statement in the child
constexpr int old_handle_wrong_error = 11;     // it failed, but not with handle_closed
constexpr int new_borrower_got_old_slot = 12;  // a new borrower got the pre-fork connection
constexpr int child_capacity_lost = 13;        // the child could not borrow up to maxconnections

int use_old_handle(dbpool::PooledConnection<SharedFakeConnection, ManualClock>& handle) {
    try {
        handle->execute("in the child");
        return old_handle_worked;
    } catch (const dbpool::Error& error) {
        return error.code() == dbpool::ErrorCode::handle_closed ? child_ok : old_handle_wrong_error;
    }
}

}  // namespace

TEST_CASE(
    "regression: after fork() a handle another thread borrowed fails its next use and its "
    "connection is never handed out again",
    "[regression][fork]") {
    DBPOOL_SKIP_CONCURRENT_FORK_UNDER_SANITIZERS();
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.maxconnections = 1;
    dbpool::PooledPool<SharedFakeConnection, ManualClock> pool(
        FakeDatabase::creator<SharedFakeConnection>(db), options);
    // Borrowed on another thread, then moved to the thread that forks.
    dbpool::PooledConnection<SharedFakeConnection, ManualClock> moved;
    std::thread([&] { moved = pool.connection(false); }).join();
    const int parent_id = moved->raw().id();
    const auto before_fork = db->log_of(parent_id);

    const int code = run_in_child([&] {
        ::alarm(5);
        if (const int verdict = use_old_handle(moved); verdict != child_ok) return verdict;
        auto fresh = pool.connection(false);  // the child's whole capacity is free
        if (fresh->raw().id() == parent_id) return new_borrower_got_old_slot;
        fresh->execute("a new connection");
        moved.close();  // lets go of the orphaned slot; the new borrower is untouched
        fresh->execute("still served");
        if (fresh->raw().id() == parent_id) return new_borrower_got_old_slot;
        return inspect(*db, parent_id, before_fork, true);
    });
    INFO("child: " << code << " " << describe(code));
    CHECK(code == child_ok);
    CHECK(db->log_of(parent_id) == before_fork);
    moved->execute("in the parent");  // the parent's handle works on
}

TEST_CASE(
    "regression: after fork() a second sharer's handle and the forking thread's own shares "
    "never keep the child's capacity",
    "[regression][fork][shared]") {
    DBPOOL_SKIP_CONCURRENT_FORK_UNDER_SANITIZERS();
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.maxconnections = 1;
    options.maxshared = 1;
    dbpool::PooledPool<SharedFakeConnection, ManualClock> pool(
        FakeDatabase::creator<SharedFakeConnection>(db), options);
    // Three shares of one connection: one held by another thread across the fork, two by the
    // thread that forks.
    fake::Gate gate;
    std::thread sharer([&] {
        auto handle = pool.connection();
        gate.arrive_and_wait();
    });
    gate.wait_arrived();
    auto first = pool.connection();
    auto second = pool.connection();
    REQUIRE(first.is_shared());
    const int parent_id = first->raw().id();
    REQUIRE(second->raw().id() == parent_id);
    const auto before_fork = db->log_of(parent_id);

    const int code = run_in_child([&] {
        ::alarm(5);
        if (const int verdict = use_old_handle(first); verdict != child_ok) return verdict;
        first.close();
        second.close();  // the other thread's share never comes back in the child
        try {
            auto fresh = pool.connection();  // maxconnections = 1: the capacity is the child's
            if (fresh->raw().id() == parent_id) return new_borrower_got_old_slot;
            fresh->execute("a new connection");
        } catch (const dbpool::Error&) {
            return child_capacity_lost;
        }
        return inspect(*db, parent_id, before_fork, true);
    });
    INFO("child: " << code << " " << describe(code));
    CHECK(code == child_ok);
    gate.release();
    sharer.join();
    CHECK(db->log_of(parent_id) == before_fork);
}

TEST_CASE(
    "regression: after fork() a PooledPool child does not deadlock on a thread_safe_sharing "
    "connection another thread of the parent was using",
    "[regression][fork][shared]") {
    DBPOOL_SKIP_CONCURRENT_FORK_UNDER_SANITIZERS();
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.maxconnections = 2;
    options.maxshared = 1;
    dbpool::PooledPool<SharedFakeConnection, ManualClock> pool(
        FakeDatabase::creator<SharedFakeConnection>(db), options);

    // Another thread is inside a statement: it holds its connection's lock at the fork.
    fake::Gate gate;
    std::thread user([&] {
        auto handle = pool.connection();
        handle->run([&](SharedFakeConnection&) {
            gate.arrive_and_wait();
            return 0;
        });
    });
    gate.wait_arrived();

    const int code = run_in_child([&] {
        ::alarm(5);  // a child stuck on the inherited lock dies of SIGALRM instead of hanging
        auto handle = pool.connection();  // forgets every inherited connection, the busy one too
        handle->execute("in the child");
        return child_ok;
    });
    INFO("child: " << describe(code));
    CHECK(code == child_ok);
    gate.release();
    user.join();
}

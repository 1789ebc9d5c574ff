// A keyed PersistentPool under the schedule explorer (explore/): the pool takes its registry lock
// and its slots' state words from its clock's Sync policy, as PooledPool does, so the real code
// runs one thread at a time in every order with up to two preemptions, and PersistentInvariants
// is checked at the end of every locked section. The invariant these scenarios are about: a slot
// found under a key is open, because end_context() and close() take it out of the map in the
// locked section that marks it closed (keyed_connection() counts a handle there without looking
// at the closed bit).
#include "explore/explore.hpp"
#include "explore_test_support.hpp"
#include "fake_connection.hpp"

#include <dbpool/persistent_pool.hpp>

#include <catch2/catch.hpp>

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
using fake::FakeConnection;
using fake::FakeDatabase;
using namespace std::chrono_literals;

namespace {

// The key of the task running on this controlled thread.
thread_local int current_task = 0;

struct TaskContext {
    using key_type = int;
    static key_type current() { return current_task; }
};

using Pool = dbpool::PersistentPool<FakeConnection, explore::Clock, TaskContext>;

std::unique_ptr<Pool> make_pool(const std::shared_ptr<FakeDatabase>& db) {
    dbpool::PersistentOptions options;
    options.ping = dbpool::Ping::never;
    options.ping_bypass = 0ms;
    return std::make_unique<Pool>(FakeDatabase::creator<FakeConnection>(db), options);
}

// Task 1 uses its connection (a handle, a statement) on one thread while another ends the task
// and a third closes the pool. Whatever the order: the handle it gets is usable, or it is told
// that the pool is closed; once all are done and the pool is closed, nothing is open.
void end_context_races_close_and_a_use(bool opened_before) {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    auto pool = make_pool(db);
    if (opened_before) {
        current_task = 1;
        auto warm = pool->connection();  // task 1's connection exists when the race starts
    }
    Sync::thread user([&] {
        current_task = 1;
        const auto error = error_of([&] {
            auto handle = pool->connection();
            handle->execute("s");
        });
        if (error && error != ErrorCode::pool_closed) {
            explore::check(false, "a use of the key failed other than by close()");
        }
    });
    Sync::thread ender([&] { pool->end_context(1); });
    Sync::thread closer([&] { pool->close(); });
    user.join();
    ender.join();
    closer.join();
    explore::check(pool->open_connections() == 0, "a connection is open after close()");
    explore::check(db->open_now() == 0, "the server sees a connection open after close()");
    pool.reset();
    explore::check(db->opens() == db->closes(), "a connection was closed twice or never");
}

// Two uses of one key race its end: each gets the key's connection of the moment, one
// connection per key at a time, and the last one closes once the key has ended.
void two_uses_race_end_context() {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    auto pool = make_pool(db);
    const auto use = [&] {
        current_task = 1;
        auto handle = pool->connection();
        handle->execute("s");
    };
    Sync::thread first(use);
    Sync::thread second(use);
    Sync::thread ender([&] { pool->end_context(1); });
    first.join();
    second.join();
    ender.join();
    pool->end_context(1);  // a use after the first end_context() opened the key's connection again
    explore::check(pool->open_connections() == 0, "an ended key's connection is still open");
    explore::check(db->open_now() == 0, "the server sees an ended key's connection open");
}

}  // namespace

TEST_CASE("explore: a keyed PersistentPool: end_context() races close() and a use of the key",
          "[explore][persistent]") {
    report("end_context, close and a use (open before)",
           explore::dfs(bounded(2), [] { end_context_races_close_and_a_use(true); }));
    report("end_context, close and a use (opened in the race)",
           explore::dfs(bounded(2), [] { end_context_races_close_and_a_use(false); }));
}

TEST_CASE("explore: a keyed PersistentPool: two uses of one key race its end_context()",
          "[explore][persistent]") {
    report("two uses and end_context", explore::dfs(bounded(2), two_uses_race_end_context));
}

// Regression test: an allocation that fails inside connection() breaks nothing. connection()
// promises the strong guarantee: when it throws, the caller holds nothing, and the pool serves
// others as before. Before the fix, a failure on the wait path left the waiter's node (on the
// caller's dead stack frame) in the queue and a reserved slot whose connect never ran; on the
// validation path, a claimed connection that was never given back.
//
// This program replaces the global operator new so that the Nth allocation made by the calling
// thread from now on throws std::bad_alloc, and fails each allocation of each path in turn:
// a program of its own.
#include "fake_connection.hpp"
#include "pool_test_support.hpp"

#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>

namespace {

// Per thread: 0 = off; N = the Nth allocation from now fails. A trivial thread_local: no
// allocation of its own.
thread_local long fail_countdown = 0;
thread_local long injected = 0;  // failures injected on this thread so far

void* allocate(std::size_t size) {
    if (fail_countdown > 0 && --fail_countdown == 0) {
        ++injected;
        throw std::bad_alloc();
    }
    void* memory = std::malloc(size == 0 ? 1 : size);
    if (memory == nullptr) throw std::bad_alloc();
    return memory;
}

}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
// Every form that pairs with the deletes below, so that no block crosses allocators (ASan
// reports an operator new freed by free()).
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { std::free(memory); }

using fake::eventually;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::SharedFakeConnection;
using namespace std::chrono_literals;

namespace {

using Pool = dbpool::PooledPool<FakeConnection>;
using SharedPool = dbpool::PooledPool<SharedFakeConnection>;

constexpr long max_allocations = 80;  // more than any path below makes

dbpool::PoolOptions options_for_test() {
    auto options = fake::test_options();
    options.blocking = true;
    options.acquire_timeout = 2s;
    options.connect_backoff_min = 1ms;
    options.connect_backoff_max = 1ms;
    return options;
}

// Runs `attempt` with the Nth allocation of this thread failing; true when it failed for it:
// std::bad_alloc, or connect_failed when the allocation was a worker thread's start. It may
// also succeed: a failed worker start is absorbed when a running worker takes the task.
template <class Attempt>
void fails_at(long n, Attempt&& attempt) {
    fail_countdown = n;
    try {
        attempt();
    } catch (const std::bad_alloc&) {
        // the strong guarantee: checked by the caller
    } catch (const dbpool::Error& error) {
        fail_countdown = 0;
        CHECK(error.code() == dbpool::ErrorCode::connect_failed);
    }
    fail_countdown = 0;
}

template <class AnyPool>
void check_pool_intact(AnyPool& pool) {
    CHECK(pool.stats().waiting == 0);
    CHECK(eventually([&] { return pool.stats().connecting == 0; }));
    const auto stats = pool.stats();
    CHECK(stats.total == stats.idle + stats.in_use + stats.connecting);
}

}  // namespace

TEST_CASE(
    "regression: an allocation failure on connection()'s wait path leaves no waiter and "
    "no orphan connect",
    "[regression][allocation]") {
    const long injected_before = injected;
    for (long n = 1; n <= max_allocations; ++n) {
        auto db = std::make_shared<FakeDatabase>();
        auto options = options_for_test();
        options.maxconnections = 2;
        options.mincached = 1;  // opened by the constructor: no pool worker exists yet
        Pool pool(FakeDatabase::creator<FakeConnection>(db), options);
        // The other connection must be opened for the waiter, by a worker the waiter starts:
        // its thread allocates with every standard library (a sleeping worker would not).
        auto held = pool.connection();
        fails_at(n, [&] { auto handle = pool.connection(); });
        INFO("allocation " << n);
        check_pool_intact(pool);
        {
            auto again = pool.connection();  // the capacity was not lost
            again->execute("served");
        }
        held.close();
        CHECK(pool.stats().in_use == 0);
    }
    CHECK(injected > injected_before);  // the path allocates, and its allocations failed
}

TEST_CASE(
    "regression: an allocation failure on connection()'s validation path gives the "
    "connection back",
    "[regression][allocation]") {
    const long injected_before = injected;
    for (long n = 1; n <= max_allocations; ++n) {
        auto db = std::make_shared<FakeDatabase>();
        auto options = options_for_test();
        options.maxconnections = 1;
        options.mincached = 1;
        options.ping = dbpool::Ping::on_request;  // the idle connection is pinged at hand-out
        Pool pool(FakeDatabase::creator<FakeConnection>(db), options);
        fails_at(n, [&] { auto handle = pool.connection(); });
        INFO("allocation " << n);
        check_pool_intact(pool);
        CHECK(eventually([&] { return pool.stats().in_use == 0; }));
        auto again = pool.connection();  // the only connection came back
        again->execute("served");
    }
    CHECK(injected > injected_before);  // the path allocates, and its allocations failed
}

TEST_CASE("regression: an allocation failure while sharing a connection gives the share back",
          "[regression][allocation][shared]") {
    const long injected_before = injected;
    for (long n = 1; n <= max_allocations; ++n) {
        auto db = std::make_shared<FakeDatabase>();
        auto options = options_for_test();
        options.maxconnections = 2;
        options.maxshared = 1;
        options.ping = dbpool::Ping::on_request;  // a share is pinged first
        SharedPool pool(FakeDatabase::creator<SharedFakeConnection>(db), options);
        auto first = pool.connection();
        REQUIRE(first.is_shared());
        fails_at(n, [&] { auto second = pool.connection(); });
        INFO("allocation " << n);
        check_pool_intact(pool);
        first.close();
        CHECK(eventually([&] { return pool.stats().in_use == 0; }));
    }
    CHECK(injected > injected_before);  // the path allocates, and its allocations failed
}

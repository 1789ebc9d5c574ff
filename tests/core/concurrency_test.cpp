// Pool invariants under concurrency (docs/dbutils-differences.md: limits, close()): the limit
// holds, every request completes, nothing leaks, and close() during load neither hangs nor
// leaks. Run these under TSan.
#include "pool_test_support.hpp"

#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

using dbpool::ErrorCode;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::SharedFakeConnection;
using namespace std::chrono_literals;

namespace {

constexpr int thread_count = 4;
constexpr int iterations = 150;
constexpr int limit = 3;

void small_hold(std::mt19937& random) {
    const int roll = static_cast<int>(random() % 8);
    if (roll < 5) {
        std::this_thread::yield();
    } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50 * roll));
    }
}

}  // namespace

TEST_CASE("concurrency: N threads x M acquires stay within maxconnections", "[pool][concurrency]") {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    std::atomic<int> outstanding{0};
    std::atomic<int> max_outstanding{0};
    std::atomic<int> completed{0};
    {
        dbpool::PoolOptions options;
        options.maxconnections = limit;
        options.mincached = 1;
        options.maxcached = 2;  // exercises the locked return path too
        options.blocking = true;
        options.acquire_timeout = 20s;
        options.ping = dbpool::Ping::on_request;
        options.idle_timeout = 5ms;  // background maintenance runs concurrently
        options.on_event = [&](const dbpool::PoolEvent&) {};
        dbpool::PooledPool<FakeConnection> pool(FakeDatabase::creator<FakeConnection>(db), options);
        std::vector<std::thread> threads;
        for (int t = 0; t < thread_count; ++t) {
            threads.emplace_back([&, t] {
                std::mt19937 random(static_cast<unsigned>(t));
                for (int i = 0; i < iterations; ++i) {
                    auto handle = pool.connection();
                    const int now = outstanding.fetch_add(1) + 1;
                    int seen = max_outstanding.load();
                    while (now > seen && !max_outstanding.compare_exchange_weak(seen, now)) {
                    }
                    handle->execute("work");
                    small_hold(random);
                    outstanding.fetch_sub(1);
                    if (i % 10 == 0) handle->begin();  // returned inside a transaction
                    handle.close();
                    completed.fetch_add(1);
                }
            });
        }
        for (auto& thread : threads)
            thread.join();
        const auto stats = pool.stats();
        CHECK(stats.in_use == 0);
        CHECK(stats.waiting == 0);
        CHECK(stats.total <= std::size_t(limit));
        CHECK(stats.acquired == std::uint64_t(thread_count * iterations));
        pool.close();
        CHECK(pool.stats().total == 0);
    }
    CHECK(completed == thread_count * iterations);
    CHECK(db->executed() == thread_count * iterations);
    CHECK(max_outstanding <= limit);
    CHECK(db->max_open_now() <= limit);
    CHECK(db->opens() == db->closes());
    CHECK(db->open_now() == 0);
}

TEST_CASE("concurrency: close() during load ends with no hang and no leak", "[pool][concurrency]") {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    std::atomic<int> closed_errors{0};
    std::atomic<int> served{0};
    {
        dbpool::PoolOptions options;
        options.maxconnections = 2;
        options.blocking = true;
        options.acquire_timeout = 20s;
        dbpool::PooledPool<FakeConnection> pool(FakeDatabase::creator<FakeConnection>(db), options);
        std::vector<std::thread> threads;
        for (int t = 0; t < thread_count; ++t) {
            threads.emplace_back([&, t] {
                std::mt19937 random(static_cast<unsigned>(t));
                for (int i = 0; i < 10000; ++i) {
                    try {
                        auto handle = pool.connection();
                        handle->execute("work");
                        small_hold(random);
                        served.fetch_add(1);
                    } catch (const dbpool::Error& e) {
                        if (e.code() == ErrorCode::pool_closed) {
                            closed_errors.fetch_add(1);
                            return;
                        }
                        throw;
                    }
                }
            });
        }
        REQUIRE(fake::eventually([&] { return served.load() >= 50; }));
        pool.close();
        for (auto& thread : threads)
            thread.join();
        CHECK(closed_errors == thread_count);
        CHECK(pool.stats().total == 0);
        CHECK(db->open_now() == 0);
    }
    CHECK(db->opens() == db->closes());
    CHECK(db->max_open_now() <= 2);
}

namespace {

void shared_load(bool with_transactions) {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    {
        dbpool::PoolOptions options;
        options.maxshared = 2;
        options.maxconnections = 3;
        options.blocking = true;
        options.acquire_timeout = 20s;
        dbpool::PooledPool<SharedFakeConnection> pool(
            FakeDatabase::creator<SharedFakeConnection>(db), options);
        std::vector<std::thread> threads;
        for (int t = 0; t < thread_count; ++t) {
            threads.emplace_back([&, t] {
                std::mt19937 random(static_cast<unsigned>(t));
                for (int i = 0; i < iterations; ++i) {
                    auto handle = (i % 5 == 0) ? pool.dedicated_connection() : pool.connection();
                    handle->execute("work");
                    if (with_transactions && i % 7 == 3) {
                        // Other threads' acquire_shared() reads in_transaction() meanwhile.
                        handle.begin();
                        small_hold(random);
                        handle.commit();
                    }
                    small_hold(random);
                }
            });
        }
        for (auto& thread : threads)
            thread.join();
        CHECK(pool.stats().in_use == 0);
        CHECK(pool.stats().total <= 3);
    }
    CHECK(db->max_open_now() <= 3);
    CHECK(db->opens() == db->closes());
}

}  // namespace

TEST_CASE("concurrency: shared connections stay within maxshared and maxconnections",
          "[pool][concurrency][shared]") {
    shared_load(false);
}

// acquire_shared() once read a shared connection's transaction state under the pool lock only,
// racing with a sharing thread's begin()/commit() or reconnect; TSan caught it here.
TEST_CASE("concurrency: shared connections with transactions", "[pool][concurrency][shared]") {
    shared_load(true);
}

TEST_CASE("concurrency: destroying the pool while other threads hold handles",
          "[pool][concurrency]") {
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    auto pool = std::make_unique<dbpool::PooledPool<FakeConnection>>(
        FakeDatabase::creator<FakeConnection>(db), dbpool::PoolOptions{});
    std::vector<dbpool::PooledPool<FakeConnection>::handle_type> handles;
    for (int i = 0; i < thread_count; ++i)
        handles.push_back(pool->connection());
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (auto& handle : handles) {
        threads.emplace_back([&go, h = std::move(handle)]() mutable {
            while (!go.load())
                std::this_thread::yield();
            h->execute("after the pool is gone");
            h.close();
        });
    }
    pool.reset();
    go = true;
    for (auto& thread : threads)
        thread.join();
    CHECK(db->opens() == thread_count);
    CHECK(db->closes() == thread_count);
    CHECK(db->executed() == thread_count);
}

// Regression test: PersistentPool's per-thread registry must not keep anything of a pool that
// was destroyed. This program replaces the global operator new and delete to count the
// allocations still alive (a count, not a heap size: independent of the allocator, of the
// sanitizer's own bookkeeping and of fragmentation), so it is a program of its own.
#include "fake_connection.hpp"

#include <dbpool/persistent_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>

namespace {

std::atomic<long long> live_allocations{0};

void* counted_allocation(std::size_t size) noexcept {
    void* memory = std::malloc(size == 0 ? 1 : size);
    if (memory != nullptr) live_allocations.fetch_add(1, std::memory_order_relaxed);
    return memory;
}

void counted_free(void* memory) noexcept {
    if (memory == nullptr) return;
    live_allocations.fetch_sub(1, std::memory_order_relaxed);
    std::free(memory);
}

}  // namespace

void* operator new(std::size_t size) {
    void* memory = counted_allocation(size);
    if (memory == nullptr) throw std::bad_alloc();
    return memory;
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    return counted_allocation(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    return counted_allocation(size);
}
void operator delete(void* memory) noexcept { counted_free(memory); }
void operator delete[](void* memory) noexcept { counted_free(memory); }
void operator delete(void* memory, std::size_t) noexcept { counted_free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { counted_free(memory); }
void operator delete(void* memory, const std::nothrow_t&) noexcept { counted_free(memory); }
void operator delete[](void* memory, const std::nothrow_t&) noexcept { counted_free(memory); }

TEST_CASE(
    "regression: PersistentPool's per-thread registry does not grow with the pools a thread "
    "creates and destroys",
    "[regression][persistent]") {
    auto db = std::make_shared<fake::FakeDatabase>();
    db->set_logging(false);
    dbpool::PersistentOptions options;
    options.ping = dbpool::Ping::never;
    options.ping_bypass = std::chrono::milliseconds(0);
    const auto use_one_pool = [&] {
        dbpool::PersistentPool<fake::FakeConnection> pool(
            fake::FakeDatabase::creator<fake::FakeConnection>(db), options);
        auto handle = pool.connection();
        handle->execute("once");
    };
    // Warm-up: this thread's own state and the containers reach their steady size.
    for (int i = 0; i < 500; ++i)
        use_one_pool();
    const long long before = live_allocations.load();
    // 10,000 pools, or as many as 4 s allow (sanitizers on a loaded machine).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
    int pools = 0;
    while (pools < 10000 && std::chrono::steady_clock::now() < deadline) {
        use_one_pool();
        ++pools;
    }
    const long long growth = live_allocations.load() - before;
    INFO(growth << " more allocations alive after " << pools << " pools were used and destroyed");
    REQUIRE(pools >= 1000);
    // Nothing of a destroyed pool may stay; a few allocations of slack for amortised growth of
    // whatever the registry keeps per thread (not per pool).
    CHECK(growth < 100);
    CHECK(db->opens() == 500 + pools);
    CHECK(db->open_now() == 0);  // each pool closed this thread's connection
}

#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace dbpool::detail {

// Pools are told apart by an id that is never reused, so a thread's cached entry for a pool
// that has since been destroyed can never match a live pool and is never dereferenced.
inline std::uint64_t next_pool_id() noexcept {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
}

// The connection slot a thread returned last, per pool: the fast path tries it first, so the
// uncontended acquire touches no state shared by all threads (HikariCP's ConcurrentBag idea).
struct AffinityEntry {
    std::uint64_t pool_id = 0;
    void* slot = nullptr;
};

inline constexpr std::size_t affinity_ways = 8;

inline AffinityEntry& affinity_entry(std::uint64_t pool_id) noexcept {
    thread_local AffinityEntry table[affinity_ways];  // trivial type: no TLS destructor needed
    return table[pool_id % affinity_ways];
}

}  // namespace dbpool::detail

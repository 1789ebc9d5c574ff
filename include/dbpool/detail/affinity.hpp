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

// The slots a thread returned last to one PooledPool, most recent first. With more threads
// than connections, the one it returned last is often taken; the ones before are often free.
struct AffinityList {
    static constexpr std::size_t length = 4;
    std::uint64_t pool_id = 0;
    void* slots[length] = {};
    unsigned scan_start = 0;  // where this thread's scan of the pool begins, to spread threads

    // Puts `slot` first (for the pool `id`), keeping the others in order.
    void remember(std::uint64_t id, void* slot) noexcept {
        if (pool_id != id) {
            *this = AffinityList{};
            pool_id = id;
            scan_start = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(this) >> 6);
        }
        if (slots[0] == slot) return;
        std::size_t last = length - 1;
        for (std::size_t i = 0; i + 1 < length; ++i) {
            if (slots[i] == slot) {
                last = i;
                break;
            }
        }
        for (std::size_t i = last; i > 0; --i)
            slots[i] = slots[i - 1];
        slots[0] = slot;
    }
};

inline AffinityList& affinity_list(std::uint64_t pool_id) noexcept {
    thread_local AffinityList table[affinity_ways];  // trivial type: no TLS destructor needed
    return table[pool_id % affinity_ways];
}

}  // namespace dbpool::detail

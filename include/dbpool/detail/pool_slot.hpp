#pragma once

#include <dbpool/options.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

namespace dbpool::detail {

// Who may touch a slot's connection. Ownership moves only by compare-and-swap on `state`, so
// the uncontended acquire and release need no lock shared by all threads.
enum SlotState : int {
    slot_empty = 0,      // no connection; capacity may be reused
    slot_idle = 1,       // open, claimable by anyone
    slot_returning = 2,  // just returned; only its returner may move it on (to idle or in_use)
    slot_in_use = 3,     // owned by a borrower (or by the thread creating its connection)
    slot_reserved = 4,   // owned by maintenance or close()
};

// One cache line (or more) per slot: borrowers on different cores write their own slots, and
// slots sharing a line would bounce it between those cores on every acquire and release.
template <class Steady>
struct alignas(64) PoolSlot {
    using TimePoint = typename Steady::clock_type::time_point;

    std::atomic<int> state{slot_empty};
    std::unique_ptr<Steady> steady;

    // Touched by the owner only.
    std::uint64_t connects_seen = 0;  // to count reconnects that happened while borrowed
    AcquireSite site{};
    std::thread::id owner{};  // the borrowing thread, to tell its slots apart after fork()

    // Maintenance reads these while a borrower may own the slot, so they are atomics; the owner
    // is the only writer, so plain loads and stores suffice (no read-modify-write on the hot
    // path). Times are Clock ticks since its epoch.
    std::atomic<std::int64_t> idle_since{0};
    std::atomic<std::int64_t> opened_at{0};
    std::atomic<std::int64_t> lifetime{0};  // max_lifetime minus this slot's jitter, in ticks
    std::atomic<std::int64_t> acquired_at{0};
    std::atomic<const char*> site_file{nullptr};
    std::atomic<int> site_line{0};
    std::atomic<bool> leak_reported{false};
    std::atomic<std::uint64_t> acquisitions{0};
    std::atomic<std::int64_t> usage_total_ns{0};
    std::atomic<std::int64_t> usage_max_ns{0};

    int share_count = 0;  // guarded by the pool mutex

    bool try_claim() noexcept { return try_transition(slot_idle, slot_in_use); }

    bool try_transition(int from, int to) noexcept {
        return state.compare_exchange_strong(from, to, std::memory_order_acq_rel,
                                             std::memory_order_relaxed);
    }

    static std::int64_t ticks(TimePoint time) noexcept { return time.time_since_epoch().count(); }

    void publish(std::atomic<std::int64_t>& field, TimePoint time) noexcept {
        field.store(ticks(time), std::memory_order_relaxed);
    }

    static void add_relaxed(std::atomic<std::uint64_t>& counter, std::uint64_t value) noexcept {
        counter.store(counter.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
    }
};

}  // namespace dbpool::detail

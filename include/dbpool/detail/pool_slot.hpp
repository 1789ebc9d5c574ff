#pragma once

#include <dbpool/detail/slot_state.hpp>
#include <dbpool/detail/sync.hpp>
#include <dbpool/options.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

namespace dbpool::detail {

// One pooled connection and its bookkeeping. Its state moves only through slot_step(), by
// compare-and-swap, so the uncontended acquire and return take no lock shared by all threads.
//
// One cache line (or more) per slot: borrowers on different cores write their own slots, and
// slots sharing a line would bounce it between those cores on every acquire and return.
template <class Steady, class Owner>
struct alignas(64) PoolSlot {
    using TimePoint = typename Steady::clock_type::time_point;
    using sync_type = sync_of_t<typename Steady::clock_type>;

    // The one word the lock-free acquire and return compete for.
    typename sync_type::template atomic<SlotState> state{SlotState::empty};
    std::unique_ptr<Steady> steady;  // touched only by the slot's owner

    // The pool's shared state, held from reserve to the end of the close: while any
    // connection exists the pool's state does too, whatever happened to the PooledPool object.
    std::shared_ptr<Owner> keep_alive;

    // Written by the owner; maintenance and stats() read them while a borrower owns the slot,
    // so they are atomics, stored with plain loads and stores (the owner is the only writer).
    // Times are Clock ticks since its epoch.
    std::atomic<std::int64_t> opened_at{0};
    std::atomic<std::int64_t> lifetime{0};  // max_lifetime minus this slot's jitter, in ticks
    std::atomic<std::int64_t> idle_since{0};
    std::atomic<std::int64_t> acquired_at{0};
    std::atomic<const char*> site_file{nullptr};
    std::atomic<int> site_line{0};
    std::atomic<std::uint64_t> borrows{0};  // hand-outs so far
    // The current borrow's number from hand-out to return, else 0. A slot is in_use a moment
    // before its hand-out is recorded (claimed, or handed to a waiter that has not run yet);
    // leak detection must not judge it by its previous borrower's time.
    std::atomic<std::uint64_t> lent{0};
    std::atomic<std::uint64_t> usage_total_ns{0};
    std::atomic<std::uint64_t> usage_max_ns{0};
    // The borrow maintenance reported as leaked (0: none). Maintenance sets it for a borrow
    // number, the returner swaps it back to 0: a report that raced with the return names a
    // finished borrow, so the next borrower never gets a leak report that is not its own.
    std::atomic<std::uint64_t> leak_reported{0};

    bool fresh = false;  // opened for the waiter it was handed to: no hand-out ping
    // In a child after fork(): borrowed before the fork, so a handle may still reach it; empty,
    // never handed out again (written once in the child's fork recovery, under the lock).
    bool orphaned = false;

    // Guarded by the pool's mutex.
    int share_count = 0;  // sharers of an in_use shared connection
    bool doomed = false;  // shared, and to be closed by its last sharer

    // Applies `Event` from `From` by compare-and-swap: how an acquirer competes for an idle
    // slot (and maintenance or close() for one). The table lookup happens at compile time, and
    // a transition the table refuses does not compile.
    template <SlotState From, SlotEvent Event>
    bool apply() noexcept {
        SlotState seen = From;
        return apply<From, Event>(seen);
    }

    // The same; when refused, `seen` is the state the compare-and-swap found.
    template <SlotState From, SlotEvent Event>
    bool apply(SlotState& seen) noexcept {
        constexpr SlotStep step = slot_step(From, Event);
        static_assert(step.valid, "the slot state machine has no such transition");
        seen = From;
        return state.compare_exchange_strong(seen, step.next, std::memory_order_seq_cst,
                                             std::memory_order_seq_cst);
    }

    // An owner's transition: only the owner changes an owned state, so a store suffices.
    template <SlotState From, SlotEvent Event>
    void move(std::memory_order order = std::memory_order_seq_cst) noexcept {
        constexpr SlotStep step = slot_step(From, Event);
        static_assert(step.valid, "the slot state machine has no such transition");
        state.store(step.next, order);
    }

    // Applies `event` from whatever state the slot is in, when the table allows it.
    bool apply(SlotEvent event) noexcept {
        SlotState current = state.load(std::memory_order_seq_cst);
        for (;;) {
            const SlotStep step = slot_step(current, event);
            if (!step.valid) return false;
            if (state.compare_exchange_weak(current, step.next, std::memory_order_seq_cst,
                                            std::memory_order_seq_cst)) {
                return true;
            }
        }
    }

    SlotState load() const noexcept { return state.load(std::memory_order_seq_cst); }

    static std::int64_t ticks(TimePoint time) noexcept { return time.time_since_epoch().count(); }
    static TimePoint time_of(std::int64_t ticks) noexcept {
        return TimePoint(typename TimePoint::duration(ticks));
    }

    static void publish(std::atomic<std::int64_t>& field, TimePoint time) noexcept {
        field.store(ticks(time), std::memory_order_relaxed);
    }

    static void add(std::atomic<std::uint64_t>& counter, std::uint64_t value) noexcept {
        counter.store(counter.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
    }
};

}  // namespace dbpool::detail

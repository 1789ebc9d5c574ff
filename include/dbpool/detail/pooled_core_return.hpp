#pragma once

// A borrowed connection comes back: usage accounting, the lock-free return, the offer to a
// waiter or the idle cache, and freeing a closed slot's capacity. offer() with a `Lock&` may
// release it to retire; the connection is closed (network I/O) only with no lock held.

#include <dbpool/detail/affinity.hpp>
#include <dbpool/detail/cheap_clock.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/detail/slot_state.hpp>
#include <dbpool/options.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

namespace dbpool::detail {

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::give_back(Slot& slot, bool shared,
                                                     bool discard) noexcept {
    check_fork();  // in a child: the connection was abandoned, the return sends nothing
    if (slot.orphaned) return let_go_of_orphan(slot, shared);
    if (shared && !last_share(slot, discard)) return;
    const TimePoint now = cheap_now<Clock>();
    account(slot, now);
    Steady& steady = *slot.steady;
    Slot::publish(slot.opened_at, steady.opened_at());  // a reconnect renews the lifetime
    if (discard || !steady.is_reusable() || lifetime_over(slot, now)) {
        slot.template move<S::in_use, E::discard>();
        retire(slot);
        return;
    }
    if (steady.needs_reset(options_.reset)) {
        slot.template move<S::in_use, E::release_dirty>();
        if (!steady.reset_for_return(options_.reset)) {
            slot.template move<S::resetting, E::reset_failed>();
            retire(slot);
            return;
        }
        slot.template move<S::resetting, E::reset_ok>();
        offer(slot, false);
        return;
    }
    // The lock-free return. While the slot is `returning` it is ours: nobody can claim it
    // and close() waits for it, so the pool's state (held by the slot) stays alive.
    //
    // It pairs with a waiter registering (WaitQueue::push, then scanning the slots) like
    // Dekker's algorithm: we store `returning` and then read the waiter count, the waiter
    // increments the count and then reads the slot states. Both sides are sequentially
    // consistent, so at least one sees the other: either we see the waiter and go through
    // the lock (which hands the connection over or wakes the waiter), or the waiter sees the
    // slot returning and waits for it to become idle. With weaker orders both could miss,
    // and the waiter would sleep beside an idle connection.
    slot.template move<S::in_use, E::release>(std::memory_order_seq_cst);
    if (fast_release_ && !closed_.load(std::memory_order_seq_cst) &&
        (waiting_.count() == 0 || waiting_.front_awake_and_not_due())) {
        // Nobody waits, or the oldest waiter is awake and will look again itself: no wake-up,
        // no lock.
        Slot::publish(slot.idle_since, now);
        affinity_list(pool_id_).remember(pool_id_, &slot);
        slot.template move<S::returning, E::shelve>(std::memory_order_release);
        return;  // from here on the pool may be gone
    }
    offer(slot, false);
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::account(Slot& slot, TimePoint now) noexcept {
    const std::uint64_t borrow = slot.lent.load(std::memory_order_relaxed);
    slot.lent.store(0, std::memory_order_relaxed);
    const auto held = now - Slot::time_of(slot.acquired_at.load(std::memory_order_relaxed));
    const auto held_ns = static_cast<std::uint64_t>(std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::nanoseconds>(held).count()));
    Slot::add(slot.usage_total_ns, held_ns);
    if (held_ns > slot.usage_max_ns.load(std::memory_order_relaxed)) {
        slot.usage_max_ns.store(held_ns, std::memory_order_relaxed);
    }
    if (!rules_.detects_leaks()) return;
    if (slot.leak_reported.exchange(0, std::memory_order_acq_rel) != borrow) return;
    LeakReport report;
    report.held = std::chrono::duration_cast<std::chrono::milliseconds>(held);
    report.acquired_at = AcquireSite{slot.site_file.load(std::memory_order_relaxed),
                                     slot.site_line.load(std::memory_order_relaxed)};
    report.returned = true;
    report_leak(report);
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::offer(Slot& slot, Lock& lock, bool opened) noexcept {
    if (!closed_.load()) {
        // A due waiter first: closing it as a surplus idle one while someone waits would
        // only make the pool open another for the waiter.
        if (Waiter* waiter = waiting_.take_due(WaitClock::now(), opened)) {
            slot.fresh = opened;
            slot.template move<S::returning, E::hand_off>();
            waiter->handed = &slot;  // stays in_use: ownership passes straight to the waiter
            waiter->wake.notify_one();
            return;
        }
    }
    const bool surplus = options_.maxcached > 0 &&
                         static_cast<int>(count_states_locked().idle) >= options_.maxcached;
    if (closed_.load() || surplus) {
        slot.template move<S::returning, E::expire>();
        lock.unlock();
        retire(slot);
        return;
    }
    slot.fresh = false;  // from the idle cache: pinged at hand-out, however it was opened
    Slot::publish(slot.idle_since, cheap_now<Clock>());
    slot.template move<S::returning, E::shelve>();
    waiting_.wake_front_if_asleep();  // the oldest competes for it with running threads
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::free_capacity(Slot& slot, SlotEvent event) noexcept {
    std::shared_ptr<PooledCore> hold;  // destroyed last, after the lock is released
    Lock lock(*this);
    hold = std::move(slot.keep_alive);
    if (event == E::closed) {
        slot.template move<S::retiring, E::closed>();
    } else {
        slot.template move<S::connecting, E::connect_failed>();
    }
    slot.share_count = 0;
    slot.doomed = false;
    slot.leak_reported.store(0, std::memory_order_relaxed);
    free_slots_.push_back(&slot);
    --open_;
    if (event == E::connect_failed) {
        --connecting_;
        // Waiters decide again: with connects failing, they may have nothing to wait for.
        waiting_.wake_all();
    }
    connect_for_waiters_locked();  // capacity freed: a waiter's connect may start
    if (open_ < options_.mincached) schedule_wake_->notify_all();
}

}  // namespace dbpool::detail

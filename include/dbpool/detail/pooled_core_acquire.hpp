#pragma once

// Acquiring a dedicated connection: the lock-free claim, the caller's own connect, the wait
// for a slot and the hand-out ping. `_locked` functions are entered with the pool's lock and
// never release it; a function handed `Lock&` or holding its own may wait on it; pings and
// connects run on workers or with no lock held, never under it.

#include <dbpool/detail/affinity.hpp>
#include <dbpool/detail/cheap_clock.hpp>
#include <dbpool/detail/pool_waiters.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/detail/saturating.hpp>
#include <dbpool/detail/slot_state.hpp>
#include <dbpool/options.hpp>
#include <dbpool/pool_events.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace dbpool::detail {

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::acquire(AcquireSite site) -> Slot& {
    check_fork();
    prepare_thread();
    Slot* slot = claim_fast();
    if (slot != nullptr) {
        const TimePoint now = cheap_now<Clock>();
        if (ready(*slot, now) && !closed_.load(std::memory_order_seq_cst)) {
            hand_out(*slot, site, now);
            return *slot;
        }
    }
    const auto deadline = deadline_from(WaitClock::now());
    if (slot == nullptr) {
        if (Slot* own = try_connect_for_caller(deadline)) {
            hand_out(*own, site, cheap_now<Clock>());
            return *own;
        }
    }
    return acquire_slow(site, slot, deadline);
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::prepare_thread() {
    if constexpr (Traits::has_prepare_thread) {
        thread_local bool prepared = false;
        if (!prepared) {
            Traits::prepare_thread();
            prepared = true;
        }
    }
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::claim_fast() noexcept -> Slot* {
    if (waiting_.front_due()) return nullptr;
    AffinityList& mine = affinity_list(pool_id_);
    if (mine.pool_id == pool_id_) {
        for (void* remembered : mine.slots) {
            if (remembered == nullptr) break;
            Slot* slot = static_cast<Slot*>(remembered);
            if (slot->load() == S::idle && slot->template apply<S::idle, E::claim>()) {
                return slot;
            }
        }
    }
    const std::size_t count = slots_.size();
    const std::size_t start = count == 0 ? 0 : mine.scan_start % count;
    for (std::size_t i = 0; i < count; ++i) {
        Slot& slot = slots_[(start + i) % count];
        if (slot.load() == S::idle && slot.template apply<S::idle, E::claim>()) return &slot;
    }
    return nullptr;
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::needs_ping(const Slot& slot,
                                                      TimePoint now) const noexcept -> bool {
    // As DBUtils: a connection from the idle cache is pinged, a fresh one is not.
    if ((options_.ping & Ping::on_request) == 0 || slot.fresh) return false;
    return ping_bypass_.count() <= 0 || now - slot.steady->last_success() >= ping_bypass_;
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::acquire_slow(AcquireSite site, Slot* candidate,
                                                        WaitPoint deadline) -> Slot& {
    std::shared_ptr<PooledCore> self;  // taken before waiting: a waiter keeps the state alive
    Waiter waiter;
    waiter.since = WaitClock::now();
    for (;;) {
        if (candidate == nullptr) candidate = &wait_for_slot(waiter, deadline, self);
        if (closed_.load(std::memory_order_seq_cst)) {
            candidate->template move<S::in_use, E::discard>();
            retire(*candidate);
            throw closed_error();
        }
        const TimePoint now = cheap_now<Clock>();
        if (lifetime_over(*candidate, now)) {
            candidate->template move<S::in_use, E::discard>();
            retire(*candidate);
            candidate = nullptr;
            continue;
        }
        if (needs_ping(*candidate, now) && !validate_hand_out(*candidate, waiter, deadline, self)) {
            candidate = nullptr;  // it was dead and is being closed: look further
            continue;
        }
        hand_out(*candidate, site, cheap_now<Clock>());
        return *candidate;
    }
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::wait_for_slot(Waiter& waiter, WaitPoint deadline,
                                                         std::shared_ptr<PooledCore>& self)
    -> Slot& {
    Lock lock(*this);
    bool queued = false;
    const auto leave = [&] {
        if (queued) waiting_.remove(waiter);
        queued = false;
    };
    // However this call ends, the waiter (on this thread's stack) is off the queue: also
    // when something below throws, e.g. an allocation that fails.
    struct LeaveOnThrow {
        const decltype(leave)& leave_queue;
        LeaveOnThrow(const LeaveOnThrow&) = delete;
        LeaveOnThrow& operator=(const LeaveOnThrow&) = delete;
        LeaveOnThrow(LeaveOnThrow&&) = delete;
        LeaveOnThrow& operator=(LeaveOnThrow&&) = delete;
        ~LeaveOnThrow() { leave_queue(); }
    } leave_on_throw{leave};
    for (;;) {
        if (waiter.handed != nullptr) {  // the giver took us off the queue
            record_wait_locked(waiter.since);
            return *std::exchange(waiter.handed, nullptr);
        }
        if (closed_.load()) {
            leave();
            throw closed_error();
        }
        auto now = WaitClock::now();
        const bool front = queued && waiting_.is_front(waiter);
        // Before looking: from here on a returner either sees that the oldest waiter is
        // asleep (and wakes it), or the oldest sees its slot returning (see give_back).
        if (front) waiting_.set_front_awake(false);
        bool pending = false;
        if (queued ? front : waiting_.newcomer_may_take(now)) {
            if (Slot* slot = claim_idle_locked(pending)) {
                leave();
                record_wait_locked(waiter.since);
                return *slot;
            }
        }
        if (!queued) {
            if (!options_.blocking && at_limit_locked()) throw exhausted(lock);
            waiting_.push(waiter);
            queued = true;
            if (waiting_.is_front(waiter)) continue;  // look again, as the oldest
        }
        connect_for_waiters_locked();
        const TimePoint clock_now = Clock::now();
        if (backoff_.active(clock_now) && (!options_.blocking || count_states_locked().busy == 0)) {
            // Nothing that is out can come back, and no connect may start: a caller that
            // waited now would wait for nothing.
            leave();
            throw backoff_.refusal(clock_now, options_.blocking
                                                  ? "; no borrowed connection could come back"
                                                  : "; the pool does not wait (blocking = false)");
        }
        if (now >= deadline) {
            leave();
            throw timeout(lock, waiter.since);
        }
        auto until = deadline;
        if (waiting_.is_front(waiter)) {
            // A slot mid-return is a few instructions from idle, unless its returner was
            // preempted: look again shortly rather than spin while it cannot run.
            if (pending) until = std::min<WaitPoint>(until, now + std::chrono::microseconds(100));
            const auto due_at = waiting_.front_due_at();
            if (now < due_at) until = std::min(until, due_at);
            if (backoff_.active(clock_now) && !at_limit_locked()) {
                // Wake when the next connect may start, in case nothing comes back before.
                until = std::min<WaitPoint>(
                    until, saturating_add(now, backoff_.next_attempt() - clock_now));
            }
        }
        if (!self) self = this->shared_from_this();
        if (until == WaitPoint::max()) {
            lock.wait(waiter.wake);
        } else {
            lock.wait_until(waiter.wake, until);
        }
        now = WaitClock::now();
        if (queued && waiting_.is_front(waiter) && now >= waiting_.front_due_at()) {
            waiting_.mark_front_due();  // fast paths leave the next free connection to us
        }
    }
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::validate_hand_out(Slot& slot, Waiter& waiter,
                                                             WaitPoint deadline,
                                                             std::shared_ptr<PooledCore>& self)
    -> bool {
    if (!self) self = this->shared_from_this();
    std::shared_ptr<Ticket> ticket;
    Lock lock(*this);
    try {
        ticket = std::make_shared<Ticket>();
        ticket->waiter = &waiter;
        if (!worker_ready_locked()) {
            if (closed_.load()) throw closed_error();
            throw no_worker_error("ping a connection before handing it out");
        }
        validating_.push_back(&waiter);
        try {
            workers_.push_locked([this, &slot, ticket] { run_validation(slot, *ticket); });
        } catch (...) {
            validating_.pop_back();
            throw;
        }
    } catch (...) {
        // Nothing went to a worker (no thread, no memory, closed): the connection is still
        // ours, and goes back to the pool unpinged.
        slot.template move<S::in_use, E::release>();
        offer(slot, lock, false);
        throw;
    }
    slot.template move<S::in_use, E::stale>();  // the worker's from here
    const auto stop_waiting = [&] {
        ticket->waiter = nullptr;
        validating_.erase(std::find(validating_.begin(), validating_.end(), &waiter));
    };
    for (;;) {
        if (ticket->result != Ticket::Result::pending) {
            stop_waiting();
            return ticket->result == Ticket::Result::alive;
        }
        if (closed_.load()) {
            stop_waiting();
            throw closed_error();
        }
        if (WaitClock::now() >= deadline) {
            stop_waiting();
            throw timeout(lock, waiter.since);
        }
        if (deadline == WaitPoint::max()) {
            lock.wait(waiter.wake);
        } else {
            lock.wait_until(waiter.wake, deadline);
        }
    }
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::run_validation(Slot& slot, Ticket& ticket) noexcept {
    // The slot is ours while validating. After close() nobody gets it: no I/O for it then.
    const bool alive = !closed_.load() && slot.steady->ping();
    Lock lock(*this);
    Waiter* waiter = std::exchange(ticket.waiter, nullptr);
    if (alive && waiter != nullptr) {
        slot.template move<S::validating, E::ping_ok>();
        ticket.result = Ticket::Result::alive;
        waiter->wake.notify_one();
        return;
    }
    if (alive) {  // its acquirer gave up meanwhile
        slot.template move<S::validating, E::unclaimed>();
        offer(slot, lock, false);
        return;
    }
    slot.template move<S::validating, E::ping_failed>();
    if (waiter != nullptr) {
        ticket.result = Ticket::Result::dead;
        waiter->wake.notify_one();
    }
    lock.unlock();
    emit(EventKind::ping_failed, "a connection failed its hand-out ping and was closed");
    retire(slot);
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::hand_out(Slot& slot, AcquireSite site,
                                                    TimePoint now) noexcept {
    slot.fresh = false;
    Slot::publish(slot.acquired_at, now);
    slot.site_file.store(site.file, std::memory_order_relaxed);
    slot.site_line.store(site.line, std::memory_order_relaxed);
    // After the fields above: maintenance reads the borrow number first (see collect_leak).
    const std::uint64_t borrow = slot.borrows.load(std::memory_order_relaxed) + 1;
    slot.borrows.store(borrow, std::memory_order_relaxed);
    slot.lent.store(borrow, std::memory_order_release);
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::claim_idle_locked(bool& pending) noexcept -> Slot* {
    for (Slot& slot : slots_) {
        const SlotState state = slot.load();
        if (state == S::returning) pending = true;
        if (state == S::idle && slot.template apply<S::idle, E::claim>()) return &slot;
    }
    return nullptr;
}

}  // namespace dbpool::detail

#pragma once

// Maintenance: the opening connects of start(), the scheduler thread, one pass over the idle
// slots, refilling to mincached, keepalive pings, leak detection and connection lifetimes.
// Decisions are taken under the pool's lock; the pings, connects, closes and the user's leak
// callback run after it is released, on this thread or on workers.

#include <dbpool/detail/maintenance_rules.hpp>
#include <dbpool/detail/pool_diagnostics.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/detail/saturating.hpp>
#include <dbpool/detail/slot_state.hpp>
#include <dbpool/options.hpp>
#include <dbpool/pool_events.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace dbpool::detail {

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::start() {
    prepare_thread();
    for (int i = 0; i < options_.mincached; ++i) {
        Slot* slot = nullptr;
        {
            Lock lock(*this);
            if (at_limit_locked()) break;
            slot = &reserve_locked();
        }
        connect_slot(*slot, false);
    }
    Lock lock(*this);
    start_scheduler_locked();
}

template <class Connection, class Clock>
inline void
PooledCore<Connection, Clock>::schedule() noexcept {  // NOLINT(bugprone-exception-escape)
    const auto interval = rules_.interval();
    Lock lock(*this);
    auto next_pass = WaitClock::now() + interval;
    const unsigned generation = fork_generation_.load(std::memory_order_relaxed);
    for (;;) {
        lock.wait_until(*schedule_wake_, next_pass);
        if (closed_.load() || generation != fork_generation_.load(std::memory_order_relaxed)) {
            return;
        }
        const bool refill = open_ < options_.mincached;
        if (WaitClock::now() < next_pass && !refill) continue;
        lock.unlock();
        maintain(false);
        lock.lock();
        next_pass = WaitClock::now() + interval;
    }
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::maintain(bool inline_io) {
    check_fork();
    prepare_thread();
    const TimePoint now = Clock::now();
    std::vector<std::function<void()>> io;
    std::vector<LeakReport> leaks;
    {
        Lock lock(*this);
        if (closed_.load()) return;
        int keep = open_;
        for (Slot& slot : slots_) {
            const SlotState state = slot.load();
            if (state == S::in_use) collect_leak(slot, now, leaks);
            if (state != S::idle) continue;
            const auto idle_for =
                now - Slot::time_of(slot.idle_since.load(std::memory_order_relaxed));
            const IdleVerdict verdict = rules_.judge_idle(idle_for, lifetime_over(slot, now), keep);
            if (verdict == IdleVerdict::keep) continue;
            // Decide only what can be carried out: without a worker, the next pass decides.
            if (!inline_io && !worker_ready_locked()) break;
            std::function<void()> task;
            if (verdict == IdleVerdict::expire) {
                if (!slot.template apply<S::idle, E::expire>()) continue;
                --keep;
                task = [this, &slot] { retire(slot); };
            } else {
                if (!slot.template apply<S::idle, E::keepalive>()) continue;
                task = [this, &slot] { run_keepalive(slot); };
            }
            if (inline_io) {
                io.push_back(std::move(task));
            } else {
                workers_.push_locked(std::move(task));
            }
        }
    }
    for (auto& task : io)
        task();
    refill(inline_io);
    for (const LeakReport& report : leaks)
        report_leak(report);
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::refill(bool inline_io) {
    std::vector<Slot*> reserved;
    {
        Lock lock(*this);
        const TimePoint now = Clock::now();
        while (!closed_.load() && open_ < options_.mincached && !at_limit_locked() &&
               !(backoff_.failing() && (connecting_ > 0 || backoff_.active(now)))) {
            if (inline_io) {
                reserved.push_back(&reserve_locked());
                continue;
            }
            if (!worker_ready_locked()) {
                worker_refused_locked();
                break;
            }
            Slot& slot = reserve_locked();
            post_connect_locked(slot, false);
        }
    }
    for (Slot* slot : reserved)
        connect_quietly(*slot, false);
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::connect_quietly(Slot& slot, bool for_waiters) noexcept {
    try {
        connect_slot(slot, for_waiters);
    } catch (...) {
        // Counted and reported, waiters told (connect()); the back-off decides the retry.
    }
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::run_keepalive(Slot& slot) noexcept {
    if (closed_.load() || slot.steady->ping()) {  // after close(), offer() closes it
        slot.template move<S::pinging, E::ping_ok>();
        offer(slot, false);
        return;
    }
    slot.template move<S::pinging, E::ping_failed>();
    emit(EventKind::keepalive_failed, "an idle connection failed its keepalive ping");
    retire(slot);
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::collect_leak(Slot& slot, TimePoint now,
                                                        std::vector<LeakReport>& leaks) {
    if (!rules_.detects_leaks()) return;
    // The borrow number is stored after the acquire time: read it first, and again after,
    // so a borrow that began in between is not judged by its predecessor's time.
    const std::uint64_t borrow = slot.lent.load(std::memory_order_acquire);
    if (borrow == 0) return;  // handed over, hand-out not recorded yet
    // A seqlock's read: acquire here keeps the check below after this read (a fence would do
    // too, but ThreadSanitizer does not model fences).
    const auto acquired = Slot::time_of(slot.acquired_at.load(std::memory_order_acquire));
    if (slot.lent.load(std::memory_order_relaxed) != borrow) return;
    const auto held = now - acquired;
    if (!rules_.leaked(held)) return;
    std::uint64_t reported = slot.leak_reported.load(std::memory_order_acquire);
    if (reported == borrow) return;
    if (!slot.leak_reported.compare_exchange_strong(reported, borrow)) return;
    ++leaks_;
    LeakReport report;
    report.held = std::chrono::duration_cast<std::chrono::milliseconds>(held);
    report.acquired_at = AcquireSite{slot.site_file.load(std::memory_order_relaxed),
                                     slot.site_line.load(std::memory_order_relaxed)};
    leaks.push_back(report);
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::report_leak(const LeakReport& report) noexcept {
    emit(report.returned ? EventKind::leak_returned : EventKind::leak_suspected, describe(report));
    if (options_.on_leak) callbacks_.call(options_.on_leak, report);
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::lifetime_over(const Slot& slot,
                                                         TimePoint now) const noexcept -> bool {
    const std::int64_t lifetime = slot.lifetime.load(std::memory_order_relaxed);
    return lifetime > 0 &&
           (now - Slot::time_of(slot.opened_at.load(std::memory_order_relaxed))).count() >=
               lifetime;
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::jittered_lifetime_ticks() -> std::int64_t {
    if (options_.max_lifetime.count() <= 0) return 0;
    const std::int64_t lifetime = saturating_cast<Ticks>(options_.max_lifetime).count();
    // Up to 2.5% earlier, so connections opened together do not all expire together.
    const std::int64_t spread = lifetime / 40;
    if (spread == 0) return lifetime;
    Lock lock(*this);
    return lifetime -
           static_cast<std::int64_t>(next_random() % (static_cast<std::uint64_t>(spread) + 1));
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::next_random() -> std::uint64_t {
    std::uint64_t z = (random_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31U);
}

}  // namespace dbpool::detail

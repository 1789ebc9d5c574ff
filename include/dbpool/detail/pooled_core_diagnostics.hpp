#pragma once

// What the pool reports: the statistics snapshot, state counts, and the errors that explain
// the pool's state (timeout, exhausted). `_locked` functions are entered with the pool's lock
// and never release it; timeout() and exhausted() release the `Lock&` they are handed before
// the event callback runs.

#include <dbpool/detail/cheap_clock.hpp>
#include <dbpool/detail/pool_diagnostics.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/detail/slot_state.hpp>
#include <dbpool/error.hpp>
#include <dbpool/pool_events.hpp>
#include <dbpool/pool_stats.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace dbpool::detail {

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::stats() const -> PoolStats {
    PoolStats stats;
    Lock lock(*this);
    // total = idle + in_use + connecting, always. The open and connecting counts are exact
    // under the lock; a slot may go between idle and in use meanwhile (lock-free acquire
    // and return), so in_use is what remains, and each open slot is counted once.
    stats.total = static_cast<std::size_t>(open_);
    stats.connecting = static_cast<std::size_t>(connecting_);
    for (Slot& slot : slots_) {
        const SlotState state = slot.load();
        if (state == S::idle || state == S::pinging) ++stats.idle;  // pinging: keepalive
    }
    stats.idle = std::min(stats.idle, stats.total - stats.connecting);
    stats.in_use = stats.total - stats.connecting - stats.idle;
    stats.waiting = waiting_.size();
    stats.maxconnections = static_cast<std::size_t>(options_.maxconnections);
    for (Slot& slot : slots_) {
        stats.acquired += slot.borrows.load(std::memory_order_relaxed);
        stats.usage.total += std::chrono::nanoseconds(
            static_cast<std::int64_t>(slot.usage_total_ns.load(std::memory_order_relaxed)));
        stats.usage.max =
            std::max(stats.usage.max, std::chrono::nanoseconds(static_cast<std::int64_t>(
                                          slot.usage_max_ns.load(std::memory_order_relaxed))));
    }
    stats.acquired += shared_handouts_;
    stats.usage.count = stats.acquired;
    stats.created = created_;
    stats.closed = closed_count_;
    stats.reconnects = reconnects_;
    stats.timeouts = timeouts_;
    stats.exhausted = exhausted_;
    stats.failed_connects = failed_connects_;
    stats.leaks = leaks_;
    stats.acquire_wait = acquire_wait_;
    stats.acquire_wait.count = stats.acquired;
    stats.connects_failing = backoff_.failing();
    return stats;
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::count_states_locked() const noexcept -> StateCounts {
    StateCounts counts;
    for (Slot& slot : slots_) {
        switch (slot.load()) {
            case S::idle: ++counts.idle; break;
            case S::in_use:
            case S::validating:
            case S::resetting:
                ++counts.in_use;
                ++counts.busy;
                break;
            case S::connecting:
            case S::returning:
            case S::pinging: ++counts.busy; break;
            case S::empty:
            case S::retiring: break;
        }
    }
    return counts;
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::record_wait_locked(WaitPoint since) noexcept {
    const auto waited =
        std::chrono::duration_cast<std::chrono::nanoseconds>(WaitClock::now() - since);
    acquire_wait_.total += waited;
    acquire_wait_.max = std::max(acquire_wait_.max, waited);
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::picture_locked() const -> PoolPicture {
    const TimePoint now = cheap_now<Clock>();
    PoolPicture picture;
    picture.open = open_;
    picture.maxconnections = options_.maxconnections;
    picture.connecting = connecting_ + attempting_;
    picture.waiting = static_cast<int>(waiting_.size());
    picture.backoff = backoff_.describe(now);
    for (Slot& slot : slots_) {
        const SlotState state = slot.load();
        switch (state) {
            case S::idle: ++picture.idle; break;
            case S::validating:
            case S::pinging: ++picture.pinging; break;
            case S::in_use:
            case S::resetting: {
                ++picture.in_use;
                const auto held =
                    now - Slot::time_of(slot.acquired_at.load(std::memory_order_relaxed));
                picture.held.push_back(
                    {std::chrono::duration_cast<std::chrono::milliseconds>(held),
                     AcquireSite{slot.site_file.load(std::memory_order_relaxed),
                                 slot.site_line.load(std::memory_order_relaxed)}});
                break;
            }
            default: break;
        }
    }
    return picture;
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::timeout(Lock& lock, WaitPoint since) -> Error {
    ++timeouts_;
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(WaitClock::now() - since);
    const std::string message =
        "dbpool: timed out after " + std::to_string(waited.count()) +
        " ms waiting for a connection (acquire_timeout " +
        std::to_string(options_.acquire_timeout.count()) + " ms). " + describe(picture_locked()) +
        " Return connections sooner, or raise maxconnections or acquire_timeout.";
    lock.unlock();
    emit(EventKind::acquire_timeout, message);
    return Error(ErrorCode::timeout, message);
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::exhausted(Lock& lock) -> Error {
    ++exhausted_;
    const std::string message = "dbpool: too many connections: all " +
                                std::to_string(options_.maxconnections) +
                                " are in use (maxconnections). " + describe(picture_locked()) +
                                " Set blocking = true to wait, or raise maxconnections.";
    lock.unlock();
    emit(EventKind::exhausted, message);
    return Error(ErrorCode::pool_exhausted, message);
}

}  // namespace dbpool::detail

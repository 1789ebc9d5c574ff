#pragma once

#include <dbpool/detail/slot_state.hpp>
#include <dbpool/detail/sync.hpp>

#include <algorithm>
#include <cstddef>

namespace dbpool::detail {

// The invariants of a PooledPool's shared state (docs/design.md, "Invariants"), checked under
// the pool's lock at the end of every locked section in test builds (PoolLock). What they
// cannot see, because it holds only when no thread is between two steps, the schedule
// explorer checks when every thread is blocked: the oldest waiter is asleep only while no
// connection is idle.
template <class Core>
struct PoolInvariants {
    static void check(const Core& core) noexcept {
        using S = SlotState;
        const auto fail = [](const char* what) { Core::Sync::invariant_failed(what); };
        int open = 0;
        int connecting = 0;
        std::size_t idle = 0;
        for (const auto& slot : core.slots_) {
            // Into and out of `empty` and `connecting` only under the lock: these counts are
            // exact. Other states may change meanwhile by compare-and-swap (claim, return).
            const SlotState state = peek(slot.state);
            if (state != S::empty) ++open;
            if (state == S::connecting) ++connecting;
            if (state == S::idle) ++idle;
            const auto listed = std::count(core.free_slots_.begin(), core.free_slots_.end(), &slot);
            if (state == S::empty && !slot.orphaned ? listed != 1 : listed != 0) {
                fail("a slot is free but not on the free list once, or on it but not free");
            }
            if (slot.orphaned && state != S::empty) fail("a slot orphaned by fork() is in use");
            if (slot.share_count < 0) fail("a share count is negative");
            if (slot.doomed && slot.share_count == 0) fail("a doomed slot has no sharer left");
        }
        if (open != core.open_) fail("open_ differs from the number of slots in use");
        if (connecting != core.connecting_) fail("connecting_ differs from the connecting slots");
        if (core.options_.maxconnections > 0 && core.open_ > core.options_.maxconnections) {
            fail("more connections open than maxconnections");
        }
        if (core.caller_connects_ < 0 || core.caller_connects_ > core.connecting_) {
            fail("caller connects are not a part of the connects in flight");
        }
        if (core.attempting_ < 0) fail("a negative number of connect attempts");
        if (static_cast<int>(core.shared_.size()) > std::max(core.options_.maxshared, 0)) {
            fail("more shared connections than maxshared");
        }
        for (auto it = core.shared_.begin(); it != core.shared_.end(); ++it) {
            if ((*it)->share_count < 1) fail("a shared connection has no sharer");
            if (std::find(it + 1, core.shared_.end(), *it) != core.shared_.end()) {
                fail("a connection is listed twice as shared");
            }
        }
        if (core.close_done_ && idle > 0) fail("a connection is idle after close() returned");
        const auto& waiting = core.waiting_;
        if (peek(waiting.count_) != static_cast<int>(waiting.queue_.size())) {
            fail("the waiter count differs from the queue");
        }
        for (auto it = waiting.queue_.begin(); it != waiting.queue_.end(); ++it) {
            if ((*it)->handed != nullptr) fail("a queued waiter was handed a connection");
            if (std::find(it + 1, waiting.queue_.end(), *it) != waiting.queue_.end()) {
                fail("a waiter is queued twice");
            }
        }
        core.workers_.check_locked(fail);
    }

    // When no thread is between two steps (every one blocked: the explorer's quiescent hook):
    // the oldest waiter sleeps, so no connection may be idle. A lost wake-up shows here.
    template <class Pool>
    static void check_quiescent(const Pool& pool) noexcept {
        const Core& core = *pool.core_;
        if (core.waiting_.empty()) return;
        for (const auto& slot : core.slots_) {
            if (peek(slot.state) == SlotState::idle) {
                Core::Sync::invariant_failed("a thread waits while a connection is idle");
            }
        }
    }
};

}  // namespace dbpool::detail

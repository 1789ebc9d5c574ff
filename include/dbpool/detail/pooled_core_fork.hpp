#pragma once

// The child's side of fork(): every inherited connection abandoned, and a handle borrowed
// before the fork lets go of its slot when it comes back. Both run under the pool's lock (kept
// consistent across fork() by fork_lock_) and send nothing over the network.

#include <dbpool/detail/fork_generation.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/detail/slot_state.hpp>

#include <memory>
#include <utility>
#include <vector>

namespace dbpool::detail {

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::recover_after_fork() noexcept {
    std::vector<std::shared_ptr<PooledCore>> released;  // dropped after the lock
    Lock lock(*this);
    const unsigned generation = fork_generation();
    if (fork_generation_.load(std::memory_order_relaxed) == generation) return;
    open_ = 0;
    connecting_ = 0;
    caller_connects_ = 0;
    attempting_ = 0;
    free_slots_.clear();
    for (Slot& slot : slots_) {
        if (slot.orphaned) continue;  // orphaned by an earlier fork (this is a grandchild)
        const bool borrowed = slot.load() == S::in_use;
        if (slot.steady) slot.steady->abandon_after_fork();  // no lock a parent thread held
        slot.steady.reset();                                 // nothing left to close
        slot.apply(E::abandon);                              // its capacity is the child's
        if (borrowed) {
            // A handle may reach it (from whichever thread it was borrowed: handles move
            // between threads): never handed out again, and its hold on the pool stays until
            // the handle lets go (give_back). Several handles may share it: then for good.
            slot.orphaned = true;
            continue;
        }
        released.push_back(std::move(slot.keep_alive));
        slot.share_count = 0;
        slot.doomed = false;
        free_slots_.push_back(&slot);  // never allocates: reserve_locked() made room
    }
    shared_.clear();
    waiting_.forget_all();
    validating_.clear();
    workers_.forget_all();
    static_cast<void>(schedule_wake_.release());  // see PoolWorkers::forget_all
    schedule_wake_ = std::make_unique<CondVar>();
    static_cast<void>(close_done_wake_.release());
    close_done_wake_ = std::make_unique<CondVar>();
    if (scheduler_.joinable()) scheduler_.detach();  // that thread exists in the parent only
    // Publishes the above to threads of the child that find the generation current
    // (check_fork's acquire) and then read a slot's `orphaned`.
    fork_generation_.store(generation, std::memory_order_release);
    try {
        start_scheduler_locked();
    } catch (...) {
        // Without a maintenance thread the child's pool still works; it is not maintained.
    }
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::let_go_of_orphan(Slot& slot, bool shared) noexcept {
    if (shared) return;
    std::shared_ptr<PooledCore> hold;  // destroyed last, after the lock is released
    Lock lock(*this);
    hold = std::move(slot.keep_alive);
}

}  // namespace dbpool::detail

#pragma once

// Closing the pool: waking waiters, stopping workers and the scheduler, closing idle
// connections. claim_all_idle() releases its `Lock&` only to let a returner finish; threads
// are joined and connections closed with no lock held.

#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/detail/slot_state.hpp>
#include <dbpool/pool_events.hpp>

#include <thread>
#include <utility>
#include <vector>

namespace dbpool::detail {

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::close() noexcept {
    check_fork();  // a child must not close the parent's connections
    if (closed_.exchange(true, std::memory_order_seq_cst)) {
        if (callbacks_.in_callback()) return;
        Lock lock(*this);
        while (!close_done_)
            lock.wait(*close_done_wake_);
        return;
    }
    std::vector<Slot*> idle;
    typename Sync::thread scheduler;
    auto workers = decltype(workers_.stop_all_locked()){};
    {
        Lock lock(*this);
        waiting_.wake_all();
        for (Waiter* waiter : validating_)
            waiter->wake.notify_one();
        schedule_wake_->notify_all();
        workers = workers_.stop_all_locked();
        idle = claim_all_idle(lock);
        scheduler = std::move(scheduler_);
    }
    // Idle workers end at once (tasks queued before close() end quickly: they see the pool
    // closed); busy ones after their I/O, waited for at most Workers::close_grace.
    // Joining them means none is still inside a client library (or its thread-exit
    // handlers) once close() returns, e.g. when the process exits right after.
    {
        Lock lock(*this);
        workers_.wait_stopped(lock, workers, WaitClock::now() + Workers::close_grace);
    }
    for (auto& entry : workers) {
        if (entry.second.joinable()) entry.second.join();
    }
    if (scheduler.joinable()) {
        // A callback running on the maintenance thread may close the pool.
        if (scheduler.get_id() == std::this_thread::get_id()) {
            scheduler.detach();
        } else {
            scheduler.join();  // it never does I/O: this is quick
        }
    }
    for (Slot* slot : idle)
        retire(*slot);  // COM_QUIT and the like: sent, never waited for
    emit(EventKind::pool_closed, "pool closed");
    callbacks_.stop();  // none after close() returns: the callbacks' objects may go now
    Lock lock(*this);
    close_done_ = true;
    close_done_wake_->notify_all();
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::claim_all_idle(Lock& lock) -> std::vector<Slot*> {
    std::vector<Slot*> claimed;
    for (;;) {
        bool pending = false;
        for (Slot& slot : slots_) {
            SlotState seen = S::idle;
            if (slot.template apply<S::idle, E::expire>(seen)) {
                claimed.push_back(&slot);
            } else if (seen == S::returning) {
                pending = true;
            }
        }
        if (!pending) return claimed;
        lock.unlock();
        Sync::yield();
        lock.lock();
    }
}

}  // namespace dbpool::detail

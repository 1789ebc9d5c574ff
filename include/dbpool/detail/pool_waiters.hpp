#pragma once

#include <dbpool/detail/saturating.hpp>
#include <dbpool/detail/sync.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>

namespace dbpool::detail {

template <class Core>
struct PoolInvariants;

// A thread waiting in connection(): it parks on its own condition variable, and a returner
// either hands it a connection directly or wakes it to look for one. Lives on the waiting
// thread's stack; every field is guarded by the pool's mutex.
template <class Slot>
struct PoolWaiter {
    using Sync = typename Slot::sync_type;
    typename Sync::condition_variable wake;
    Slot* handed = nullptr;  // given straight to this waiter, which has left the queue
    typename Sync::wait_clock::time_point since{};
};

// The result of a ping run on a pool worker for a waiting acquirer. Shared by both, since the
// acquirer may give up (deadline, close) before the ping ends; guarded by the pool's mutex.
template <class Slot>
struct PingTicket {
    enum class Result { pending, alive, dead };
    Result result = Result::pending;
    PoolWaiter<Slot>* waiter = nullptr;  // null once the acquirer stopped waiting
};

// Waiters in arrival order, and the rule for when a returned connection goes straight to the
// oldest of them. Guarded by the pool's mutex, except three words the lock-free paths read: the
// count, whether the oldest is due a hand-off, and whether it is awake (will look again by
// itself, so a returner need not wake it).
//
// Bounded hand-off: a running thread may take a free connection ahead of the waiters only
// while the oldest has waited less than `handoff_after`; after that, returned connections go
// straight to it. Under sustained overload every waiter is older than that, and handing over
// every return would cost a context switch per operation (Go's mutex "starvation mode" trap),
// so direct hand-offs are also spaced by a tenth of `handoff_after`: waiters still go strictly
// in arrival order, and running threads keep the throughput up in between.
//
// Invariant (the one lost wake-ups break): whoever becomes the oldest waiter is woken, and so is
// the oldest whenever a connection goes idle while it sleeps; so the oldest waiter is asleep
// only while no connection is idle (checked when the pool is quiescent, in the explorer).
template <class Slot>
class WaitQueue {
    using Sync = typename Slot::sync_type;
    using WaitClock = typename Sync::wait_clock;
    using WaitPoint = typename WaitClock::time_point;

public:
    using Waiter = PoolWaiter<Slot>;

    explicit WaitQueue(std::chrono::microseconds handoff_after)
        : window_(saturating_cast<typename WaitClock::duration>(handoff_after)) {}

    bool empty() const noexcept { return queue_.empty(); }
    std::size_t size() const noexcept { return queue_.size(); }
    bool is_front(const Waiter& waiter) const noexcept {
        return !queue_.empty() && queue_.front() == &waiter;
    }

    // How many threads wait; read without the lock by the fast paths. Every change and every
    // read is sequentially consistent: see PooledCore::give_back for the handshake it is part of.
    int count() const noexcept { return count_.load(std::memory_order_seq_cst); }

    // Without the lock: whether the oldest waiter is due a hand-off, so that a running thread
    // must leave the next free connection to it.
    bool front_due() const noexcept {
        return count_.load(std::memory_order_seq_cst) != 0 &&
               front_due_.load(std::memory_order_relaxed);
    }

    // Without the lock: whether a returner may make its connection idle without waking anyone
    // (the oldest waiter is awake and not yet due a hand-off). Sequentially consistent: the
    // oldest clears `awake` before it looks at the slots (set_front_awake).
    bool front_awake_and_not_due() const noexcept {
        return front_awake_.load(std::memory_order_seq_cst) &&
               !front_due_.load(std::memory_order_seq_cst);
    }

    // The oldest waiter says whether it will look for a connection again without being woken.
    void set_front_awake(bool awake) noexcept {
        front_awake_.store(awake, std::memory_order_seq_cst);
    }

    // When the oldest waiter becomes due a hand-off (max() with nobody waiting).
    WaitPoint front_due_at() const noexcept {
        if (queue_.empty()) return WaitPoint::max();
        const auto by_age = saturating_add(queue_.front()->since, window_);
        const auto by_spacing = saturating_add(last_handoff_, window_ / 10);
        return std::max(by_age, by_spacing);
    }

    // The oldest waiter found itself due: running threads leave the next connection to it.
    void mark_front_due() noexcept { front_due_.store(true, std::memory_order_seq_cst); }

    void push(Waiter& waiter) {
        queue_.push_back(&waiter);
        count_.fetch_add(1, std::memory_order_seq_cst);
    }

    // Removes a waiter that stops waiting by itself; the next one is woken if it was the first.
    void remove(Waiter& waiter) noexcept {
        const bool was_front = is_front(waiter);
        const auto it = std::find(queue_.begin(), queue_.end(), &waiter);
        if (it == queue_.end()) return;
        queue_.erase(it);
        count_.fetch_sub(1, std::memory_order_seq_cst);
        if (was_front) {
            front_due_.store(false, std::memory_order_seq_cst);
            wake_front();
        }
    }

    // The oldest waiter, removed from the queue, when it is due for a direct hand-off (or when
    // `force`: a connection opened for the waiters goes to them); null otherwise.
    Waiter* take_due(WaitPoint now, bool force) noexcept {
        if (queue_.empty()) return nullptr;
        const bool due =
            now - queue_.front()->since >= window_ && now - last_handoff_ >= window_ / 10;
        if (!due && !force) return nullptr;
        Waiter* waiter = queue_.front();
        queue_.pop_front();
        count_.fetch_sub(1, std::memory_order_seq_cst);
        front_due_.store(false, std::memory_order_seq_cst);
        last_handoff_ = now;
        // The next one becomes the oldest while it sleeps: wake it, so it looks for a free
        // connection itself. Its predecessor may have been woken for one that is idle now, and
        // was then given another: nobody else would wake the new oldest for the idle one.
        front_awake_.store(false, std::memory_order_seq_cst);
        wake_front();
        return waiter;
    }

    // Whether a thread that is not queued may take a free connection ahead of the queue.
    bool newcomer_may_take(WaitPoint now) const noexcept {
        return queue_.empty() || now - queue_.front()->since < window_;
    }

    void wake_front() noexcept {
        if (queue_.empty()) return;
        front_awake_.store(true, std::memory_order_seq_cst);
        queue_.front()->wake.notify_one();
    }

    // Wakes the oldest waiter unless it is awake already: one wake-up per sleep, not one per
    // returned connection.
    void wake_front_if_asleep() noexcept {
        if (queue_.empty() || front_awake_.load(std::memory_order_seq_cst)) return;
        wake_front();
    }

    void wake_all() noexcept {
        for (Waiter* waiter : queue_)
            waiter->wake.notify_one();
    }

    // In a child after fork(): the waiters were threads of the parent.
    void forget_all() noexcept {
        queue_.clear();
        count_.store(0, std::memory_order_relaxed);
        front_due_.store(false, std::memory_order_relaxed);
        front_awake_.store(false, std::memory_order_relaxed);
    }

private:
    template <class>
    friend struct PoolInvariants;  // checks the queue against its count

    typename WaitClock::duration window_;
    std::deque<Waiter*> queue_;
    WaitPoint last_handoff_{};
    alignas(64) typename Sync::template atomic<int> count_{0};
    typename Sync::template atomic<bool> front_due_{false};
    typename Sync::template atomic<bool> front_awake_{false};
};

}  // namespace dbpool::detail

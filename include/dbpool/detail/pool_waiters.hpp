#pragma once

#include <dbpool/detail/saturating.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>

namespace dbpool::detail {

using WaitClock = std::chrono::steady_clock;

// A thread waiting in connection(): it parks on its own condition variable, and a returner
// either hands it a connection directly or wakes it to look for one. Lives on the waiting
// thread's stack; every field is guarded by the pool's mutex.
template <class Slot>
struct PoolWaiter {
    std::condition_variable wake;
    Slot* handed = nullptr;  // given straight to this waiter, which has left the queue
    WaitClock::time_point since{};
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
// oldest of them. Guarded by the pool's mutex, except the count, which the lock-free paths
// read.
//
// Bounded hand-off: a running thread may take a free connection ahead of the waiters only
// while the oldest has waited less than `handoff_after`; after that, returned connections go
// straight to it. Under sustained overload every waiter is older than that, and handing over
// every return would cost a context switch per operation (Go's mutex "starvation mode" trap),
// so direct hand-offs are also spaced by a tenth of `handoff_after`: waiters still go strictly
// in arrival order, and running threads keep the throughput up in between.
template <class Slot>
class WaitQueue {
public:
    using Waiter = PoolWaiter<Slot>;

    explicit WaitQueue(std::chrono::microseconds handoff_after)
        : window_(saturating_cast<WaitClock::duration>(handoff_after)) {}

    bool empty() const noexcept { return queue_.empty(); }
    std::size_t size() const noexcept { return queue_.size(); }
    bool is_front(const Waiter& waiter) const noexcept {
        return !queue_.empty() && queue_.front() == &waiter;
    }

    // How many threads wait; read without the lock by the fast paths. Every change and every
    // read is sequentially consistent: see PooledCore::give_back for the handshake it is part of.
    int count() const noexcept { return count_.load(std::memory_order_seq_cst); }

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
        if (was_front) wake_front();
    }

    // The oldest waiter, removed from the queue, when it is due for a direct hand-off (or when
    // `force`: a connection opened for the waiters goes to them); null otherwise.
    Waiter* take_due(WaitClock::time_point now, bool force) noexcept {
        if (queue_.empty()) return nullptr;
        const bool due =
            now - queue_.front()->since >= window_ && now - last_handoff_ >= window_ / 10;
        if (!due && !force) return nullptr;
        Waiter* waiter = queue_.front();
        queue_.pop_front();
        count_.fetch_sub(1, std::memory_order_seq_cst);
        last_handoff_ = now;
        return waiter;
    }

    // Whether a thread that is not queued may take a free connection ahead of the queue.
    bool newcomer_may_take(WaitClock::time_point now) const noexcept {
        return queue_.empty() || now - queue_.front()->since < window_;
    }

    void wake_front() noexcept {
        if (!queue_.empty()) queue_.front()->wake.notify_one();
    }

    void wake_all() noexcept {
        for (Waiter* waiter : queue_)
            waiter->wake.notify_one();
    }

    // In a child after fork(): the waiters were threads of the parent.
    void forget_all() noexcept {
        queue_.clear();
        count_.store(0, std::memory_order_relaxed);
    }

private:
    WaitClock::duration window_;
    std::deque<Waiter*> queue_;
    WaitClock::time_point last_handoff_{};
    alignas(64) std::atomic<int> count_{0};
};

}  // namespace dbpool::detail

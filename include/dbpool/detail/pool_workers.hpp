#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <system_error>
#include <thread>
#include <utility>

namespace dbpool::detail {

// The threads that do a pool's connection I/O on its behalf: connects, hand-out and keepalive
// pings, closes of expired connections. Acquirers wait for that I/O only up to their deadline,
// maintenance never waits for it, and close() never joins it: a task that hangs on a dead
// network holds up nobody. Each worker thread keeps the pool's state alive while it runs
// (`Owner` is a shared_ptr to it) and exits after `linger` without work, so an idle pool has
// no thread at all.
//
// Everything but the threads' own loop is guarded by the owner's mutex.
class PoolWorkers {
public:
    using Task = std::function<void()>;

    explicit PoolWorkers(int max_threads) : max_threads_(std::max(1, max_threads)) {}

    // Queues `task`; wakes an idle worker, or starts one with `start(thread_body)`.
    template <class Start>
    void post_locked(Task task, Start&& start) {
        tasks_.push_back(std::move(task));
        if (idle_ > 0) {
            wake_->notify_one();
            return;
        }
        if (threads_ >= max_threads_) return;  // a busy worker takes it next
        ++threads_;
        try {
            std::thread(std::forward<Start>(start)).detach();
        } catch (const std::system_error&) {
            --threads_;  // no thread now; the next post (or a running worker) tries again
        }
    }

    // The worker loop; `lock` holds the owner's mutex and is held again on return.
    template <class Lock, class Closed>
    void run(Lock& lock, Closed&& closed) noexcept {
        for (;;) {
            if (!tasks_.empty()) {
                Task task = std::move(tasks_.front());
                tasks_.pop_front();
                lock.unlock();
                task();  // tasks never throw
                lock.lock();
                continue;
            }
            if (closed()) break;
            ++idle_;
            const bool timed_out = wake_->wait_for(lock, linger) == std::cv_status::timeout;
            --idle_;
            if (timed_out && tasks_.empty()) break;
        }
        --threads_;
    }

    void wake_all() noexcept { wake_->notify_all(); }

    // In a child after fork(): the workers were threads of the parent; their tasks die too.
    // The condition variable may record waiters that do not exist here, and signalling it could
    // wait for them forever, so it is left behind (leaked) and replaced.
    void forget_all() {
        static_cast<void>(wake_.release());
        wake_ = std::make_unique<std::condition_variable>();
        tasks_.clear();
        threads_ = 0;
        idle_ = 0;
    }

    static constexpr std::chrono::seconds linger{2};

private:
    int max_threads_;
    int threads_ = 0;
    int idle_ = 0;
    std::deque<Task> tasks_;
    std::unique_ptr<std::condition_variable> wake_ = std::make_unique<std::condition_variable>();
};

}  // namespace dbpool::detail

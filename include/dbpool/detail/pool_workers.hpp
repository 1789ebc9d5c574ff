#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <iterator>
#include <list>
#include <memory>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace dbpool::detail {

// The threads that do a pool's connection I/O on its behalf: connects, hand-out and keepalive
// pings, closes of expired connections. Acquirers wait for that I/O only up to their deadline,
// maintenance never waits for it, and close() never waits for a task that hangs on a dead
// network. Each worker keeps the pool's state alive while it runs and exits after `linger`
// without work, so an idle pool has no worker at all.
//
// At close(), idle workers are stopped and joined (so none of them is still exiting, running
// its thread-exit handlers inside client libraries, after the pool is gone); busy ones finish
// their task in the background and then end on their own.
//
// Everything is guarded by the owner's mutex.
class PoolWorkers {
public:
    using Task = std::function<void()>;

    struct Worker {
        std::thread thread;
        bool busy = false;
        bool joined = false;  // close() will join this one: it must not detach itself
    };

    explicit PoolWorkers(int max_threads) : max_threads_(std::max(1, max_threads)) {}

    PoolWorkers(const PoolWorkers&) = delete;
    PoolWorkers& operator=(const PoolWorkers&) = delete;

    ~PoolWorkers() {
        // Every worker ended (each holds the pool's state while it runs), but a worker that
        // ended on its own detached itself: nothing joinable is left.
        for (Worker& worker : workers_) {
            if (worker.thread.joinable()) worker.thread.detach();
        }
    }

    // Queues `task`; wakes an idle worker, or starts one with `start(Worker*)`.
    template <class Start>
    void post_locked(Task task, Start&& start) {
        tasks_.push_back(std::move(task));
        if (idle_ > 0) {
            wake_->notify_one();
            return;
        }
        if (static_cast<int>(workers_.size()) >= max_threads_) return;  // a busy one takes it
        const auto worker = workers_.emplace(workers_.end());
        try {
            // The new thread takes the owner's mutex first, which the caller holds: it starts
            // once `worker->thread` is set.
            worker->thread = std::thread(std::forward<Start>(start), &*worker);
        } catch (const std::system_error&) {
            workers_.erase(worker);  // no thread now; the next post (or a busy worker) tries
        }
    }

    // The worker loop; `lock` holds the owner's mutex and is held again on return.
    template <class Lock, class Closed>
    void run(Lock& lock, Worker* self, Closed&& closed) noexcept {
        for (;;) {
            if (!tasks_.empty()) {
                Task task = std::move(tasks_.front());
                tasks_.pop_front();
                self->busy = true;
                lock.unlock();
                task();  // tasks never throw
                lock.lock();
                self->busy = false;
                continue;
            }
            if (closed() || self->joined) break;
            ++idle_;
            const bool timed_out = wake_->wait_for(lock, linger) == std::cv_status::timeout;
            --idle_;
            if (timed_out && tasks_.empty()) break;
        }
        if (!self->joined) self->thread.detach();  // nobody will join an exit of its own
        workers_.erase(std::find_if(workers_.begin(), workers_.end(),
                                    [self](const Worker& worker) { return &worker == self; }));
    }

    // At close: the idle workers' threads, to be joined without the lock (each ends at once);
    // busy workers end by themselves after their task.
    std::vector<std::thread> stop_idle_locked() {
        std::vector<std::thread> idle;
        for (Worker& worker : workers_) {
            if (worker.busy || worker.joined) continue;
            worker.joined = true;
            idle.push_back(std::move(worker.thread));
        }
        wake_->notify_all();
        return idle;
    }

    // In a child after fork(): the workers were threads of the parent; their tasks die too.
    // The condition variable may record waiters that do not exist here, and signalling it could
    // wait for them forever, so it is left behind (leaked) and replaced.
    void forget_all() {
        for (Worker& worker : workers_) {
            if (worker.thread.joinable()) worker.thread.detach();
        }
        workers_.clear();
        static_cast<void>(wake_.release());
        wake_ = std::make_unique<std::condition_variable>();
        tasks_.clear();
        idle_ = 0;
    }

    static constexpr std::chrono::seconds linger{2};

private:
    int max_threads_;
    int idle_ = 0;
    std::list<Worker> workers_;  // stable addresses: each thread keeps a pointer to its own
    std::deque<Task> tasks_;
    std::unique_ptr<std::condition_variable> wake_ = std::make_unique<std::condition_variable>();
};

}  // namespace dbpool::detail

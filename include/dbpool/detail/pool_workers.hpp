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
// At close(), every worker is told to stop and close() joins it: idle ones end at once, busy
// ones after their task, waited for at most `close_grace`. A task still in its I/O after that
// (a dead network) finishes in the background and its worker ends on its own. Joining matters
// at process exit: a worker still inside a client library (a TLS or SCRAM handshake) while
// exit() runs that library's cleanup crashes the process.
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
        ended_->notify_all();  // close() may be waiting for this one
    }

    // At close: every worker's thread, to be joined (or detached by stop_locked) without the
    // lock. Idle workers end at once; busy ones after their task.
    std::vector<std::pair<const Worker*, std::thread>> stop_all_locked() {
        std::vector<std::pair<const Worker*, std::thread>> stopping;
        for (Worker& worker : workers_) {
            if (worker.joined) continue;
            worker.joined = true;
            stopping.emplace_back(&worker, std::move(worker.thread));
        }
        wake_->notify_all();
        return stopping;
    }

    // Waits, with `lock` held, until every worker in `stopping` has left its loop or until
    // `deadline`; those still running then are detached and end on their own. The caller joins
    // the rest. A worker that is the calling thread is detached at once (a callback on it closed
    // the pool).
    template <class Lock>
    void stop_locked(Lock& lock, std::vector<std::pair<const Worker*, std::thread>>& stopping,
                     std::chrono::steady_clock::time_point deadline) {
        const auto running = [this](const Worker* worker) {
            return std::any_of(workers_.begin(), workers_.end(),
                               [worker](const Worker& w) { return &w == worker; });
        };
        for (auto& [worker, thread] : stopping) {
            if (thread.get_id() == std::this_thread::get_id()) thread.detach();
        }
        ended_->wait_until(lock, deadline, [&] {
            return std::none_of(stopping.begin(), stopping.end(), [&](const auto& entry) {
                return entry.second.joinable() && running(entry.first);
            });
        });
        for (auto& [worker, thread] : stopping) {
            if (thread.joinable() && running(worker)) thread.detach();
        }
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
        static_cast<void>(ended_.release());
        ended_ = std::make_unique<std::condition_variable>();
        tasks_.clear();
        idle_ = 0;
    }

    static constexpr std::chrono::seconds linger{2};
    // How long close() waits for tasks in flight: long enough for a connect or ping on a live
    // network (a TLS handshake under a sanitizer), short enough for close() to return within a
    // second whatever the network does.
    static constexpr std::chrono::milliseconds close_grace{500};

private:
    int max_threads_;
    int idle_ = 0;
    std::list<Worker> workers_;  // stable addresses: each thread keeps a pointer to its own
    std::deque<Task> tasks_;
    std::unique_ptr<std::condition_variable> wake_ = std::make_unique<std::condition_variable>();
    std::unique_ptr<std::condition_variable> ended_ = std::make_unique<std::condition_variable>();
};

}  // namespace dbpool::detail

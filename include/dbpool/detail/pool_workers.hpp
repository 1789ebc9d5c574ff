#pragma once

#include <dbpool/detail/sync.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <memory>
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
// Invariants (guarded by the owner's mutex, checked by check_locked() in test builds):
// - Every queued task has a worker that will run it: one woken for it, one started for it, or,
//   at max_threads, a busy one that takes it next. A poster asks first (reserve_locked) and
//   queues only what was accepted, so a task is never left in the queue with nobody to run it
//   (a thread that cannot be started is refused to the poster, who undoes its preparations).
// - One sleeping worker per task woken: a worker that was woken for a task no longer counts
//   as sleeping, so two tasks posted back to back wake two workers (or start one), and a task
//   never waits behind another worker's hanging I/O while a thread could have run it.
// - After stop_all_locked() (close), no worker starts and no task is accepted.
//
// At close(), every worker is told to stop and close() joins it: idle ones end at once, busy
// ones after their task, waited for at most `close_grace`. A task still in its I/O after that
// (a dead network) finishes in the background and its worker ends on its own. Joining matters
// at process exit: a worker still inside a client library (a TLS or SCRAM handshake) while
// exit() runs that library's cleanup crashes the process.
template <class Sync = StdSync>
class PoolWorkers {
public:
    using Task = std::function<void()>;
    using Thread = typename Sync::thread;
    using WaitClock = typename Sync::wait_clock;

    struct Worker {
        Thread thread;
        typename Sync::condition_variable wake;
        bool busy = false;      // running a task
        bool sleeping = false;  // waiting for work, and woken for no task yet
        bool joined = false;    // close() will join this one: it must not detach itself
    };

    explicit PoolWorkers(int max_threads) : max_threads_(std::max(1, max_threads)) {}

    PoolWorkers(const PoolWorkers&) = delete;
    PoolWorkers& operator=(const PoolWorkers&) = delete;

    ~PoolWorkers() {
        // Every worker ended (each holds the pool's state while it runs), but a worker that
        // ended on its own detached itself: nothing joinable is left.
        for (Worker& worker : *workers_) {
            if (worker.thread.joinable()) worker.thread.detach();
        }
    }

    // Makes sure a worker will run the next task queued: wakes a sleeping one, or starts one
    // with `start(Worker*)`, or (at max_threads) counts on a busy one. False when none can:
    // after close, or when no thread could be started and none is running; the caller then
    // must not queue the task and undoes what it prepared for it.
    template <class Start>
    bool reserve_locked(const Start& start) {
        if (stopped_) return false;
        for (Worker& worker : *workers_) {
            if (worker.sleeping) {
                worker.sleeping = false;  // woken for this task: not counted again
                worker.wake.notify_one();
                return true;
            }
        }
        if (static_cast<int>(workers_->size()) < max_threads_) {
            try {
                const auto worker = workers_->emplace(workers_->end());
                try {
                    // The new thread takes the owner's mutex first, which the caller holds: it
                    // starts once `worker->thread` is set.
                    worker->thread = Thread(start, &*worker);
                    return true;
                } catch (...) {
                    workers_->erase(worker);
                    throw;
                }
            } catch (...) {
                // No thread now (std::system_error, or no memory for one). A running worker
                // takes the task after its own; with none running, the poster is refused.
            }
        }
        return std::any_of(workers_->begin(), workers_->end(),
                           [](const Worker& worker) { return !worker.joined; });
    }

    // Queues a task accepted by reserve_locked().
    void push_locked(Task task) { tasks_.push_back(std::move(task)); }

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
            self->sleeping = true;
            self->wake.wait_for(lock, linger, [&] { return !self->sleeping || self->joined; });
            if (self->sleeping) {  // lingered without being woken for a task
                self->sleeping = false;
                if (tasks_.empty()) break;
            }
        }
        if (!self->joined) self->thread.detach();  // nobody will join an exit of its own
        workers_->erase(std::find_if(workers_->begin(), workers_->end(),
                                     [self](const Worker& worker) { return &worker == self; }));
        ended_->notify_all();  // close() may be waiting for this one
    }

    // At close: every worker's thread, to be joined (or detached by wait_stopped) without the
    // lock. Idle workers end at once; busy ones after their task. No worker starts after this.
    std::vector<std::pair<const Worker*, Thread>> stop_all_locked() {
        stopped_ = true;
        std::vector<std::pair<const Worker*, Thread>> stopping;
        for (Worker& worker : *workers_) {
            if (worker.joined) continue;
            worker.joined = true;
            worker.wake.notify_one();
            stopping.emplace_back(&worker, std::move(worker.thread));
        }
        return stopping;
    }

    // Waits, with `lock` held, until every worker in `stopping` has left its loop or until
    // `deadline`; those still running then are detached and end on their own. The caller joins
    // the rest. A worker that is the calling thread is detached at once (a callback on it closed
    // the pool).
    template <class Lock>
    void wait_stopped(Lock& lock, std::vector<std::pair<const Worker*, Thread>>& stopping,
                      typename WaitClock::time_point deadline) {
        const auto running = [this](const Worker* worker) {
            return std::any_of(workers_->begin(), workers_->end(),
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
    // Their condition variables may record waiters that do not exist here, and destroying or
    // signalling them could wait for those forever, so they are left behind (leaked) and
    // replaced.
    void forget_all() {
        for (Worker& worker : *workers_) {
            if (worker.thread.joinable()) worker.thread.detach();
        }
        static_cast<void>(workers_.release());
        workers_ = std::make_unique<std::list<Worker>>();
        static_cast<void>(ended_.release());
        ended_ = std::make_unique<typename Sync::condition_variable>();
        tasks_.clear();
    }

    // Asserts the invariants above (test builds); `fail` gets what does not hold.
    template <class Fail>
    void check_locked(Fail&& fail) const {
        std::size_t will_take = 0;
        bool any_busy = false;
        for (const Worker& worker : *workers_) {
            if (worker.busy) any_busy = true;
            // Woken or new; a joined one (close) too: it runs what is queued before it ends.
            if (!worker.busy && !worker.sleeping) ++will_take;
        }
        const bool at_max = static_cast<int>(workers_->size()) >= max_threads_;
        if (!tasks_.empty() && will_take == 0 && !any_busy) {
            fail("a queued task has no worker to run it");
        }
        if (tasks_.size() > will_take && !any_busy && !at_max) {
            fail("more tasks queued than workers woken for them");
        }
    }

    static constexpr std::chrono::seconds linger{2};
    // How long close() waits for tasks in flight: long enough for a connect or ping on a live
    // network (a TLS handshake under a sanitizer), short enough for close() to return within a
    // second whatever the network does.
    static constexpr std::chrono::milliseconds close_grace{500};

private:
    int max_threads_;
    bool stopped_ = false;
    // Stable addresses: each thread keeps a pointer to its own entry.
    std::unique_ptr<std::list<Worker>> workers_ = std::make_unique<std::list<Worker>>();
    std::deque<Task> tasks_;
    std::unique_ptr<typename Sync::condition_variable> ended_ =
        std::make_unique<typename Sync::condition_variable>();
};

}  // namespace dbpool::detail

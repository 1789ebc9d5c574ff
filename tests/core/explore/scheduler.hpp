#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace dbpool::explore {

struct Sync;

/// The virtual steady clock of an exploration: it moves only when the scheduler advances it (to
/// the earliest deadline, once no thread can run). Both the pool's Clock and Sync::wait_clock.
struct Clock {
    // std::chrono::nanoseconds itself (its rep is long on libstdc++, long long on libc++), so
    // that arithmetic with the standard durations gives this clock's own types.
    using duration = std::chrono::nanoseconds;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::time_point<Clock>;
    static constexpr bool is_steady = true;
    /// A pool instantiated with this clock takes its synchronisation from the explorer.
    using dbpool_sync = Sync;

    /// The virtual time of the calling thread's execution (epoch() outside an execution).
    static time_point now() noexcept;
    /// Where every execution starts: not zero, so that time_point{} stays "long ago".
    static constexpr time_point epoch() noexcept { return time_point(std::chrono::hours(1)); }
};

/// How a search runs; every bound keeps a test from hanging.
struct Options {
    /// DFS: preemptions allowed per execution (a switch away from a thread that could go on);
    /// negative means unbounded.
    int preemption_bound = 2;
    /// Executions before a search stops without a verdict (0: no cap).
    std::size_t max_executions = 100000;
    /// Scheduling points per execution; more is reported as a livelock.
    std::size_t max_steps = 20000;
    /// Spurious wake-ups the schedule may give condition-variable waiters per execution.
    std::size_t spurious_wakeups = 0;
    /// Whether a timed waiter may time out while other threads can still run.
    bool early_timeouts = false;
    /// PCT's estimate of the steps of an execution (0: learnt from the runs so far).
    std::size_t pct_steps = 0;
    /// Real time a whole search may take; then it stops with out_of_time.
    std::chrono::milliseconds time_limit{60000};
    /// Real time one execution may take; more is a failure (a thread blocked outside the
    /// scheduler, on a real OS primitive).
    std::chrono::milliseconds execution_time_limit{10000};
    /// Whether a failure is also printed to stderr with its replayable schedule.
    bool print_failures = true;
};

namespace detail {

inline constexpr std::size_t no_thread = static_cast<std::size_t>(-1);

struct MutexState {
    bool locked = false;
    std::size_t owner = no_thread;
};

// FIFO: notify_one wakes the longest waiter (the standard allows any; the pool's waiters each
// have their own condition variable, so the order of several waiters is not explored).
struct CvState {
    std::vector<std::size_t> waiters;
};

// Chooses the thread that runs at each scheduling point; one object drives a whole search.
class Strategy {
public:
    virtual ~Strategy() = default;
    virtual void begin() {}
    // `candidates` is sorted; returns one of them, or no_thread with problem() set.
    virtual std::size_t choose(const std::vector<std::size_t>& candidates, std::size_t current,
                               bool current_is_candidate) = 0;
    virtual void end() {}
    // Prepares the next execution; false when the search is over.
    virtual bool next() = 0;
    virtual bool exhausted() const { return false; }
    virtual std::string describe() const = 0;
    const std::string& problem() const noexcept { return problem_; }

protected:
    std::string problem_;
};

struct Task {
    virtual ~Task() = default;
    virtual void run() = 0;
};

template <class F>
struct TaskOf final : Task {
    explicit TaskOf(F fn) : f(std::move(fn)) {}
    void run() override { f(); }
    F f;
};

enum class Wait : unsigned char { none, mutex, cv, sleep, join };

struct ThreadRec {
    std::condition_variable baton;  // the real hand-off: one notify per switch
    std::unique_ptr<Task> task;
    std::thread real;
    std::thread::id real_id;
    Wait wait = Wait::none;
    MutexState* mutex_on = nullptr;  // Wait::mutex, and the mutex a cv waiter re-acquires
    CvState* cv_on = nullptr;
    std::size_t join_on = no_thread;
    bool timed = false;
    bool timed_out = false;
    bool finished = false;
    bool yielded = false;
    Clock::time_point deadline{};
};

class Execution;

struct Binding {
    Execution* exec = nullptr;
    std::size_t index = no_thread;
};

// Trivially destructible, so it is still readable while the thread's thread_locals die.
inline Binding& binding() noexcept {
    thread_local Binding b;
    return b;
}

inline Execution* this_execution() noexcept { return binding().exec; }

struct Outcome {
    bool ok = false;
    std::string message;
    std::vector<std::size_t> choices;
};

// One run of a scenario. Its threads are real std::threads that run strictly one at a time:
// the one whose index is current_ runs, every other one waits on its own baton. All state is
// guarded by m_; a switch sets current_ and notifies the next thread's baton.
//
// After a failure no controlled thread runs again: each one parks forever when it next enters
// the scheduler, and the driver abandons the execution (see abandon()) rather than unwind
// threads that may be deadlocked.
class Execution {
public:
    Execution(Options options, Strategy& strategy)
        : options_(std::move(options)),
          strategy_(strategy),
          spurious_left_(options_.spurious_wakeups) {}
    Execution(const Execution&) = delete;
    Execution& operator=(const Execution&) = delete;

    // Driver: runs `scenario` on controlled thread 0 until every thread has finished or the
    // execution failed.
    Outcome run(const std::function<void()>& scenario) {
        std::unique_lock<std::mutex> lk(m_);
        current_ = 0;
        add_thread_locked(std::make_unique<TaskOf<std::function<void()>>>(scenario));
        const auto limit = std::chrono::steady_clock::now() + options_.execution_time_limit;
        if (!driver_.wait_until(lk, limit, [&] { return done_ || failed_; })) {
            failed_ = true;
            failure_ =
                "execution wall-clock limit exceeded: a controlled thread blocked outside the "
                "scheduler (on a real OS primitive?) or ran for too long";
        }
        Outcome out{!failed_, failure_, choices_};
        if (!failed_) {
            lk.unlock();
            for (auto& t : threads_)
                t->real.join();
        }
        return out;
    }

    // Driver, after a failure: threads that still run or are parked are left alone.
    void detach_all() {
        std::lock_guard<std::mutex> g(m_);
        for (auto& t : threads_) {
            if (t->real.joinable()) t->real.detach();
        }
    }

    // --- Operations of controlled threads; each one is a scheduling point before it acts. ---

    template <class F>
    decltype(auto) step(F&& op) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        reschedule_locked(lk);
        return op();
    }

    void yield() {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        reschedule_locked(lk, true);
    }

    void lock(MutexState& m) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        const std::size_t self = binding().index;
        if (m.locked && m.owner == self) {
            fail_locked(lk, "thread " + std::to_string(self) +
                                " locks a mutex it already holds (undefined behaviour for "
                                "std::mutex, usually a self-deadlock)");
        }
        reschedule_locked(lk);
        if (m.locked) {
            ThreadRec& me = *threads_[self];
            me.wait = Wait::mutex;
            me.mutex_on = &m;
            reschedule_locked(lk);  // chosen again only once m is free
            me.wait = Wait::none;
        }
        m.locked = true;
        m.owner = self;
    }

    bool try_lock(MutexState& m) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        reschedule_locked(lk);
        if (m.locked) return false;
        m.locked = true;
        m.owner = binding().index;
        return true;
    }

    // Not a scheduling point: what another thread could do between the unlock and this
    // thread's next operation is explored at that next operation.
    void unlock(MutexState& m) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        const std::size_t self = binding().index;
        if (!m.locked || m.owner != self) {
            fail_locked(lk, "thread " + std::to_string(self) + " unlocks a mutex it does not hold");
        }
        m.locked = false;
        m.owner = no_thread;
    }

    // Returns true when the wait timed out.
    bool wait(CvState& cv, MutexState& m, bool timed, Clock::time_point deadline) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        const std::size_t self = binding().index;
        if (!m.locked || m.owner != self) {
            fail_locked(lk, "thread " + std::to_string(self) +
                                " waits on a condition variable without holding its mutex");
        }
        reschedule_locked(lk);
        if (timed && deadline <= now_) return true;
        ThreadRec& me = *threads_[self];
        m.locked = false;
        m.owner = no_thread;
        me.wait = Wait::cv;
        me.cv_on = &cv;
        me.mutex_on = &m;
        me.timed = timed;
        me.deadline = deadline;
        me.timed_out = false;
        cv.waiters.push_back(self);
        reschedule_locked(lk);  // back once woken and m is free
        me.wait = Wait::none;
        me.cv_on = nullptr;
        m.locked = true;
        m.owner = self;
        return me.timed_out;
    }

    void notify(CvState& cv, bool all) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        reschedule_locked(lk);
        while (!cv.waiters.empty()) {
            wake_locked(cv.waiters.front(), false);
            if (!all) break;
        }
    }

    void sleep_until(Clock::time_point deadline) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        reschedule_locked(lk);
        if (deadline <= now_) return;
        ThreadRec& me = *threads_[binding().index];
        me.wait = Wait::sleep;
        me.timed = deadline != Clock::time_point::max();
        me.deadline = deadline;
        reschedule_locked(lk);
        me.wait = Wait::none;
    }

    std::pair<std::size_t, std::thread::id> spawn(std::unique_ptr<Task> task) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        reschedule_locked(lk);
        if (fail_every_start_ || (fail_countdown_ > 0 && --fail_countdown_ == 0)) {
            throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                    "dbpool::explore: injected thread start failure");
        }
        const std::size_t i = add_thread_locked(std::move(task));
        return {i, threads_[i]->real_id};
    }

    void join(std::size_t target) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        reschedule_locked(lk);
        if (!threads_[target]->finished) {
            ThreadRec& me = *threads_[binding().index];
            me.wait = Wait::join;
            me.join_on = target;
            reschedule_locked(lk);
            me.wait = Wait::none;
        }
    }

    [[noreturn]] void fail(const std::string& what) {
        std::unique_lock<std::mutex> lk(m_);
        fail_locked(lk, what);
    }

    Clock::time_point now() {
        std::lock_guard<std::mutex> g(m_);
        return now_;
    }

    void on_quiescent(std::function<void()> hook) {
        std::unique_lock<std::mutex> lk(m_);
        enter_locked(lk);
        hooks_.push_back(std::move(hook));
    }

    void fail_thread_start(std::size_t nth, bool every) {
        std::lock_guard<std::mutex> g(m_);
        fail_countdown_ = nth;
        fail_every_start_ = every;
    }

private:
    // The first thread_local a controlled thread constructs, hence the last destroyed: the
    // thread's other thread_local destructors still run under the scheduler (their operations
    // are scheduling points), and only then does the thread finish.
    struct ExitGuard {
        ExitGuard() = default;
        ExitGuard(const ExitGuard&) = delete;
        ExitGuard& operator=(const ExitGuard&) = delete;
        ~ExitGuard() {
            if (Execution* ex = this_execution()) ex->finish_current();
        }
    };

    std::size_t add_thread_locked(std::unique_ptr<Task> task) {
        threads_.push_back(std::make_unique<ThreadRec>());
        const std::size_t i = threads_.size() - 1;
        threads_[i]->task = std::move(task);
        try {
            threads_[i]->real = std::thread([this, i] { thread_main(i); });
        } catch (...) {
            threads_.pop_back();
            throw;
        }
        threads_[i]->real_id = threads_[i]->real.get_id();
        return i;
    }

    void thread_main(std::size_t i) {
        binding() = Binding{this, i};
        thread_local ExitGuard guard;
        static_cast<void>(guard);
        std::unique_ptr<Task> task;
        {
            std::unique_lock<std::mutex> lk(m_);
            threads_[i]->baton.wait(lk, [&] { return current_ == i || failed_; });
            if (failed_) park_forever(lk);
            task = std::move(threads_[i]->task);
        }
        try {
            task->run();
            task.reset();  // the callable's captures die under the scheduler too
        } catch (const std::exception& e) {
            fail("an exception escaped thread " + std::to_string(i) + ": " + e.what());
        } catch (...) {
            fail("an exception of unknown type escaped thread " + std::to_string(i));
        }
    }

    void finish_current() {
        std::unique_lock<std::mutex> lk(m_);
        if (failed_) return;
        threads_[binding().index]->finished = true;
        reschedule_locked(lk);
    }

    void enter_locked(std::unique_lock<std::mutex>& lk) {
        if (failed_) park_forever(lk);
        if (in_hook_) {
            fail_locked(lk,
                        "a synchronisation operation inside a quiescent hook (hooks only read)");
        }
    }

    [[noreturn]] void fail_locked(std::unique_lock<std::mutex>& lk, const std::string& what) {
        if (!failed_) {
            failed_ = true;
            failure_ = what;
            driver_.notify_all();
        }
        park_forever(lk);
    }

    [[noreturn]] void park_forever(std::unique_lock<std::mutex>& lk) {
        for (;;)
            forever_.wait(lk);
    }

    // Whether thread t could be chosen: really runnable, or woken by the schedule itself (a
    // spurious wake-up or an early time-out).
    bool eligible_locked(const ThreadRec& t, bool& runnable) const {
        runnable = false;
        switch (t.wait) {
            case Wait::none: runnable = !t.finished; return runnable;
            case Wait::mutex: runnable = !t.mutex_on->locked; return runnable;
            case Wait::join: runnable = threads_[t.join_on]->finished; return runnable;
            case Wait::cv:
                return !t.mutex_on->locked &&
                       ((options_.early_timeouts && t.timed) || spurious_left_ > 0);
            case Wait::sleep: return options_.early_timeouts && t.timed;
        }
        return false;
    }

    // Fills candidates_; returns how many threads are really runnable.
    std::size_t collect_locked() {
        candidates_.clear();
        std::size_t runnable_count = 0;
        bool any_yielded = false;
        for (int pass = 0; pass < 2 && candidates_.empty(); ++pass) {
            runnable_count = 0;
            for (std::size_t i = 0; i < threads_.size(); ++i) {
                ThreadRec& t = *threads_[i];
                bool runnable = false;
                if (!eligible_locked(t, runnable)) continue;
                if (runnable) ++runnable_count;
                if (pass == 0 && t.yielded) {
                    any_yielded = true;
                    continue;
                }
                t.yielded = false;
                candidates_.push_back(i);
            }
            if (!any_yielded) break;
        }
        return runnable_count;
    }

    // The scheduling decision, made by the running thread (which may have just blocked or
    // finished): choose the next thread, hand it the baton, and wait for our turn again.
    void reschedule_locked(std::unique_lock<std::mutex>& lk, bool yielding = false) {
        const std::size_t self = binding().index;
        ThreadRec& me = *threads_[self];
        if (yielding) {
            me.yielded = true;
        } else {
            for (auto& t : threads_)
                t->yielded = false;  // a thread made progress
        }
        for (;;) {
            const std::size_t runnable_count = collect_locked();
            const bool all_finished = std::all_of(threads_.begin(), threads_.end(),
                                                  [](const auto& t) { return t->finished; });
            if (all_finished) {
                done_ = true;
                driver_.notify_all();
                return;
            }
            if (runnable_count == 0) run_hooks_locked(lk);
            if (!candidates_.empty()) break;
            if (!advance_time_locked()) fail_locked(lk, "deadlock: " + describe_waits_locked());
        }
        if (++steps_ > options_.max_steps) {
            fail_locked(lk, "step bound exceeded (" + std::to_string(options_.max_steps) +
                                " scheduling points): a livelock, or a spin loop without "
                                "Sync::yield()");
        }
        const bool self_candidate =
            std::binary_search(candidates_.begin(), candidates_.end(), self);
        const std::size_t next = strategy_.choose(candidates_, self, self_candidate);
        if (next == no_thread) fail_locked(lk, strategy_.problem());
        if (candidates_.size() > 1) choices_.push_back(next);
        ThreadRec& chosen = *threads_[next];
        if (chosen.wait == Wait::cv || chosen.wait == Wait::sleep) {
            if (options_.early_timeouts && chosen.timed) {
                time_out_until_locked(chosen.deadline);
            } else {
                --spurious_left_;
                wake_locked(next, false);
            }
        }
        if (next == self) return;
        current_ = next;
        chosen.baton.notify_one();
        if (me.finished) return;
        me.baton.wait(lk, [&] { return current_ == self || failed_; });
        if (failed_) park_forever(lk);
    }

    void run_hooks_locked(std::unique_lock<std::mutex>& lk) {
        if (hooks_.empty()) return;
        in_hook_ = true;
        lk.unlock();
        std::string error;
        try {
            for (auto& hook : hooks_)
                hook();
        } catch (const std::exception& e) {
            error = std::string("a quiescent hook threw: ") + e.what();
        } catch (...) {
            error = "a quiescent hook threw an exception of unknown type";
        }
        lk.lock();
        in_hook_ = false;
        if (!error.empty()) fail_locked(lk, error);
        if (failed_) park_forever(lk);
    }

    bool advance_time_locked() {
        Clock::time_point earliest = Clock::time_point::max();
        for (auto& t : threads_) {
            if ((t->wait == Wait::cv || t->wait == Wait::sleep) && t->timed) {
                earliest = std::min(earliest, t->deadline);
            }
        }
        if (earliest == Clock::time_point::max()) return false;
        time_out_until_locked(earliest);
        return true;
    }

    void time_out_until_locked(Clock::time_point when) {
        now_ = std::max(now_, when);
        for (std::size_t i = 0; i < threads_.size(); ++i) {
            const ThreadRec& t = *threads_[i];
            if ((t.wait == Wait::cv || t.wait == Wait::sleep) && t.timed && t.deadline <= now_) {
                wake_locked(i, true);
            }
        }
    }

    void wake_locked(std::size_t i, bool timed_out) {
        ThreadRec& t = *threads_[i];
        if (t.wait == Wait::cv) {
            auto& ws = t.cv_on->waiters;
            ws.erase(std::find(ws.begin(), ws.end(), i));
            t.wait = Wait::mutex;  // runnable once its mutex is free
        } else {
            t.wait = Wait::none;
        }
        t.timed = false;
        t.timed_out = timed_out;
    }

    std::string describe_waits_locked() const {
        std::string text;
        if (threads_[0]->finished) text = "the scenario (thread 0) has returned; ";
        bool first = true;
        for (std::size_t i = 0; i < threads_.size(); ++i) {
            const ThreadRec& t = *threads_[i];
            if (t.finished) continue;
            text += first ? "" : "; ";
            first = false;
            text += "thread " + std::to_string(i);
            switch (t.wait) {
                case Wait::none: text += " is runnable"; break;
                case Wait::mutex:
                    text +=
                        " waits for a mutex held by thread " + std::to_string(t.mutex_on->owner);
                    break;
                case Wait::cv: text += " waits on a condition variable"; break;
                case Wait::sleep: text += " sleeps forever"; break;
                case Wait::join: text += " joins thread " + std::to_string(t.join_on); break;
            }
        }
        return text;
    }

    const Options options_;
    Strategy& strategy_;
    std::mutex m_;
    std::condition_variable driver_;
    std::condition_variable forever_;
    std::vector<std::unique_ptr<ThreadRec>> threads_;
    std::vector<std::size_t> candidates_;
    std::vector<std::size_t> choices_;  // at every point with more than one candidate
    std::vector<std::function<void()>> hooks_;
    std::size_t current_ = 0;
    std::size_t steps_ = 0;
    std::size_t spurious_left_;
    std::size_t fail_countdown_ = 0;
    bool fail_every_start_ = false;
    bool done_ = false;
    bool failed_ = false;
    bool in_hook_ = false;
    std::string failure_;
    Clock::time_point now_ = Clock::epoch();
};

}  // namespace detail

inline Clock::time_point Clock::now() noexcept {
    detail::Execution* ex = detail::this_execution();
    return ex != nullptr ? ex->now() : epoch();
}

}  // namespace dbpool::explore

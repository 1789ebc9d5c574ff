#pragma once

#include "scheduler.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

// The explorer's synchronisation types: the interface of their std counterparts, each operation
// a scheduling point of the calling controlled thread. Outside an execution (a thread the
// explorer did not start) they act directly, for single-threaded set-up and tear-down only.

namespace dbpool::explore {

namespace detail {

// The deadline `d` from now, saturated: a wait too long to represent never times out.
template <class Rep, class Period>
Clock::time_point deadline_after(const std::chrono::duration<Rep, Period>& d) {
    const Clock::time_point now = Clock::now();
    const std::chrono::duration<long double, std::nano> wanted = d;
    if (wanted.count() >= static_cast<long double>((Clock::time_point::max() - now).count())) {
        return Clock::time_point::max();
    }
    return now + std::chrono::ceil<Clock::duration>(d);
}

[[noreturn]] inline void misuse(const char* what) {
    throw std::logic_error(std::string("dbpool::explore: ") + what);
}

}  // namespace detail

/// A mutex whose lock is a scheduling point; a contended lock blocks in the scheduler.
class mutex {
public:
    mutex() = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;

    void lock() {
        if (detail::Execution* ex = detail::this_execution()) return ex->lock(state_);
        if (state_.locked) detail::misuse("mutex contended outside an execution");
        state_.locked = true;
    }

    bool try_lock() {
        if (detail::Execution* ex = detail::this_execution()) return ex->try_lock(state_);
        return !std::exchange(state_.locked, true);
    }

    void unlock() {
        if (detail::Execution* ex = detail::this_execution()) return ex->unlock(state_);
        state_.locked = false;
    }

    /// Not in std::mutex: whether some thread holds it, for quiescent hooks.
    bool is_locked() const noexcept { return state_.locked; }

private:
    friend class condition_variable;
    detail::MutexState state_;
};

/// A condition variable whose waits block in the scheduler; timed waits use virtual time.
/// Waiters are woken in FIFO order; spurious wake-ups only with Options::spurious_wakeups.
class condition_variable {
public:
    condition_variable() = default;
    condition_variable(const condition_variable&) = delete;
    condition_variable& operator=(const condition_variable&) = delete;

    void notify_one() noexcept { notify(false); }
    void notify_all() noexcept { notify(true); }

    void wait(std::unique_lock<mutex>& lock) { wait_impl(lock, false, Clock::time_point::max()); }

    template <class Predicate>
    void wait(std::unique_lock<mutex>& lock, Predicate pred) {
        while (!pred())
            wait(lock);
    }

    template <class Duration>
    std::cv_status wait_until(std::unique_lock<mutex>& lock,
                              const std::chrono::time_point<Clock, Duration>& until) {
        const auto deadline = std::chrono::time_point_cast<Clock::duration>(until);
        return wait_impl(lock, deadline != Clock::time_point::max(), deadline)
                   ? std::cv_status::timeout
                   : std::cv_status::no_timeout;
    }

    template <class Duration, class Predicate>
    bool wait_until(std::unique_lock<mutex>& lock,
                    const std::chrono::time_point<Clock, Duration>& until, Predicate pred) {
        while (!pred()) {
            if (wait_until(lock, until) == std::cv_status::timeout) return pred();
        }
        return true;
    }

    template <class Rep, class Period>
    std::cv_status wait_for(std::unique_lock<mutex>& lock,
                            const std::chrono::duration<Rep, Period>& d) {
        return wait_until(lock, detail::deadline_after(d));
    }

    template <class Rep, class Period, class Predicate>
    bool wait_for(std::unique_lock<mutex>& lock, const std::chrono::duration<Rep, Period>& d,
                  Predicate pred) {
        return wait_until(lock, detail::deadline_after(d), std::move(pred));
    }

private:
    void notify(bool all) noexcept {
        if (detail::Execution* ex = detail::this_execution()) ex->notify(state_, all);
    }

    bool wait_impl(std::unique_lock<mutex>& lock, bool timed, Clock::time_point deadline) {
        if (!lock.owns_lock()) detail::misuse("condition_variable::wait without a locked lock");
        detail::Execution* ex = detail::this_execution();
        if (ex == nullptr) detail::misuse("condition_variable::wait outside an execution");
        return ex->wait(state_, lock.mutex()->state_, timed, deadline);
    }

    detail::CvState state_;
};

/// std::atomic<T>'s interface; every operation is a scheduling point and then runs as
/// sequentially consistent, whatever order it names (weaker orders are not explored).
template <class T>
class atomic {
    static_assert(std::is_trivially_copyable_v<T>, "atomic<T> needs a trivially copyable T");

public:
    atomic() noexcept : value_() {}
    constexpr atomic(T desired) noexcept : value_(desired) {}  // NOLINT: implicit like std
    atomic(const atomic&) = delete;
    atomic& operator=(const atomic&) = delete;

    T load(std::memory_order = std::memory_order_seq_cst) const {
        return act([&] { return value_; });
    }
    operator T() const { return load(); }  // NOLINT: implicit like std

    /// Not in std::atomic: the value without a scheduling point, for the pool's invariant
    /// checks (under the pool's lock, or in a quiescent hook) so that checking adds no
    /// schedules. Only one controlled thread runs at a time, so the read is never torn.
    T peek() const noexcept { return value_; }

    void store(T desired, std::memory_order = std::memory_order_seq_cst) {
        act([&] { value_ = desired; });
    }
    T operator=(T desired) {
        store(desired);
        return desired;
    }

    T exchange(T desired, std::memory_order = std::memory_order_seq_cst) {
        return act([&] { return std::exchange(value_, desired); });
    }

    /// Never fails spuriously (the weak form is explored as the strong one).
    bool compare_exchange_weak(T& expected, T desired,
                               std::memory_order = std::memory_order_seq_cst) {
        return compare_exchange_strong(expected, desired);
    }
    bool compare_exchange_weak(T& expected, T desired, std::memory_order, std::memory_order) {
        return compare_exchange_strong(expected, desired);
    }
    bool compare_exchange_strong(T& expected, T desired, std::memory_order, std::memory_order) {
        return compare_exchange_strong(expected, desired);
    }
    bool compare_exchange_strong(T& expected, T desired,
                                 std::memory_order = std::memory_order_seq_cst) {
        return act([&] {
            if (std::memcmp(&value_, &expected, sizeof(T)) == 0) {
                value_ = desired;
                return true;
            }
            expected = value_;
            return false;
        });
    }

    template <class U = T, class = std::enable_if_t<std::is_integral_v<U>>>
    T fetch_add(T arg, std::memory_order = std::memory_order_seq_cst) {
        return act([&] { return std::exchange(value_, static_cast<T>(value_ + arg)); });
    }
    template <class U = T, class = std::enable_if_t<std::is_integral_v<U>>>
    T fetch_sub(T arg, std::memory_order = std::memory_order_seq_cst) {
        return act([&] { return std::exchange(value_, static_cast<T>(value_ - arg)); });
    }
    template <class U = T, class = std::enable_if_t<std::is_integral_v<U>>>
    T fetch_or(T arg, std::memory_order = std::memory_order_seq_cst) {
        return act([&] { return std::exchange(value_, static_cast<T>(value_ | arg)); });
    }
    template <class U = T, class = std::enable_if_t<std::is_integral_v<U>>>
    T operator++() {
        return static_cast<T>(fetch_add(1) + 1);
    }
    template <class U = T, class = std::enable_if_t<std::is_integral_v<U>>>
    T operator--() {
        return static_cast<T>(fetch_sub(1) - 1);
    }
    template <class U = T, class = std::enable_if_t<std::is_integral_v<U>>>
    T operator++(int) {
        return fetch_add(1);
    }
    template <class U = T, class = std::enable_if_t<std::is_integral_v<U>>>
    T operator--(int) {
        return fetch_sub(1);
    }

private:
    template <class F>
    decltype(auto) act(F&& op) const {
        if (detail::Execution* ex = detail::this_execution()) return ex->step(op);
        return op();
    }

    T value_;
};

/// std::thread's interface for a controlled thread: starting it is a scheduling point, it
/// runs under the scheduler until it returns (detached ones too: an execution ends when every
/// thread has), and join blocks in the scheduler. get_id() is the real std::thread::id.
/// Throws std::system_error when the scenario injected a start failure (fail_thread_start).
class thread {
public:
    using id = std::thread::id;

    thread() noexcept = default;

    template <class F, class... Args,
              class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, thread>>>
    explicit thread(F&& f, Args&&... args) {
        detail::Execution* ex = detail::this_execution();
        if (ex == nullptr) detail::misuse("thread started outside an execution");
        auto call =
            [fn = std::decay_t<F>(std::forward<F>(f)),
             bound = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...)]() mutable {
                std::apply(std::move(fn), std::move(bound));
            };
        auto started = ex->spawn(std::make_unique<detail::TaskOf<decltype(call)>>(std::move(call)));
        exec_ = ex;
        index_ = started.first;
        id_ = started.second;
    }

    thread(thread&& other) noexcept
        : exec_(std::exchange(other.exec_, nullptr)),
          index_(other.index_),
          id_(std::exchange(other.id_, id())) {}

    thread& operator=(thread&& other) noexcept {
        if (joinable()) destroyed_joinable();
        exec_ = std::exchange(other.exec_, nullptr);
        index_ = other.index_;
        id_ = std::exchange(other.id_, id());
        return *this;
    }

    thread(const thread&) = delete;
    thread& operator=(const thread&) = delete;

    ~thread() {
        if (joinable()) destroyed_joinable();
    }

    bool joinable() const noexcept { return exec_ != nullptr; }
    id get_id() const noexcept { return id_; }

    void join() {
        if (!joinable()) throw std::system_error(std::make_error_code(std::errc::invalid_argument));
        if (index_ == detail::binding().index && exec_ == detail::this_execution()) {
            throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur));
        }
        exec_->join(index_);
        exec_ = nullptr;
        id_ = id();
    }

    void detach() {
        if (!joinable()) throw std::system_error(std::make_error_code(std::errc::invalid_argument));
        exec_ = nullptr;
        id_ = id();
    }

private:
    void destroyed_joinable() noexcept {
        if (exec_ == detail::this_execution()) {
            exec_->fail("thread " + std::to_string(index_) +
                        " was still joinable when its explore::thread was destroyed or assigned "
                        "(std::thread would call std::terminate)");
        }
        std::terminate();
    }

    detail::Execution* exec_ = nullptr;
    std::size_t index_ = 0;
    id id_;
};

/// The synchronisation policy of a pool under exploration (see dbpool/detail/sync.hpp); a pool
/// gets it by using explore::Clock as its clock.
struct Sync {
    using mutex = explore::mutex;
    using condition_variable = explore::condition_variable;
    template <class T>
    using atomic = explore::atomic<T>;
    using thread = explore::thread;
    using wait_clock = Clock;

    /// A scheduling point that says "I am spinning": the caller is not chosen again before
    /// another thread has made a step, unless no other thread can run.
    static void yield() noexcept {
        if (detail::Execution* ex = detail::this_execution()) return ex->yield();
        std::this_thread::yield();
    }

    /// A broken pool invariant (pool_invariants.hpp): fails the execution with its schedule.
    [[noreturn]] static void invariant_failed(const char* what) noexcept;
};

/// Fails the execution (with its schedule) unless `ok`; never returns when it fails.
/// Outside an execution it throws std::logic_error.
inline void check(bool ok, const char* what) {
    if (ok) return;
    detail::Execution* ex = detail::this_execution();
    if (ex == nullptr) detail::misuse(what);
    ex->fail("check failed in thread " + std::to_string(detail::binding().index) + ": " + what);
}

inline void Sync::invariant_failed(const char* what) noexcept {
    std::string message = "pool invariant violated: ";
    message += what;
    check(false, message.c_str());
    std::abort();  // outside an execution check() throws, which noexcept turns into this
}

/// Registers, for the rest of this execution, a hook run whenever no thread can run (before
/// virtual time advances or a deadlock is reported). It runs on a controlled thread while all
/// others are parked, so it may read shared state without locks; it must not use Sync
/// operations. It may call check().
inline void on_quiescent(std::function<void()> hook) {
    detail::Execution* ex = detail::this_execution();
    if (ex == nullptr) detail::misuse("on_quiescent outside an execution");
    ex->on_quiescent(std::move(hook));
}

/// Makes the nth thread start from now on (1: the next) throw std::system_error, in this
/// execution; 0 cancels.
inline void fail_thread_start(std::size_t nth = 1) {
    detail::Execution* ex = detail::this_execution();
    if (ex == nullptr) detail::misuse("fail_thread_start outside an execution");
    ex->fail_thread_start(nth, false);
}

/// Makes every thread start from now on throw std::system_error (or none again), in this
/// execution.
inline void fail_every_thread_start(bool on = true) {
    detail::Execution* ex = detail::this_execution();
    if (ex == nullptr) detail::misuse("fail_every_thread_start outside an execution");
    ex->fail_thread_start(0, on);
}

/// Blocks the calling controlled thread for `d` of virtual time.
template <class Rep, class Period>
void sleep_for(const std::chrono::duration<Rep, Period>& d) {
    detail::Execution* ex = detail::this_execution();
    if (ex == nullptr) detail::misuse("sleep_for outside an execution");
    ex->sleep_until(detail::deadline_after(d));
}

/// The calling thread's index in its execution (0: the scenario), in creation order.
inline std::size_t thread_index() noexcept { return detail::binding().index; }

}  // namespace dbpool::explore

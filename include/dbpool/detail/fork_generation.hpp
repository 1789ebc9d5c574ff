#pragma once

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define DBPOOL_HAS_PTHREAD_ATFORK 1
#endif

namespace dbpool::detail {

// Counts fork() calls seen in this process; a pool that finds a different value than at its
// construction runs in a child and must not touch the connections it inherited.
inline std::atomic<unsigned>& fork_counter() noexcept {
    static std::atomic<unsigned> counter{0};
    return counter;
}

inline unsigned fork_generation() noexcept {
    return fork_counter().load(std::memory_order_relaxed);
}

// The mutexes of all live pools. fork() copies a mutex in whatever state another thread left
// it, and that thread does not exist in the child; so every pool mutex is held across fork()
// and released on both sides (pthread_atfork). Pools never hold two of these at once, nor this
// list's own mutex while holding theirs, so taking them all in list order cannot deadlock.
struct ForkLocks {
    std::mutex mutex;
    std::vector<std::mutex*> locks;
};

inline ForkLocks& fork_locks() noexcept {
    // Never destroyed: pools may outlive statics. Out of memory before the first pool exists
    // is fatal anyway, so noexcept's terminate is the answer to it.
    static auto* locks = new ForkLocks;  // NOLINT(bugprone-unhandled-exception-at-new)
    return *locks;
}

inline void fork_prepare() noexcept {
    ForkLocks& all = fork_locks();
    all.mutex.lock();
    for (std::mutex* lock : all.locks)
        lock->lock();
}

inline void fork_release() noexcept {
    ForkLocks& all = fork_locks();
    for (auto it = all.locks.rbegin(); it != all.locks.rend(); ++it)
        (*it)->unlock();
    all.mutex.unlock();
}

inline void register_fork_handler() noexcept {
#ifdef DBPOOL_HAS_PTHREAD_ATFORK
    static const bool registered = [] {
        return pthread_atfork(fork_prepare, fork_release, [] {
                   fork_release();
                   fork_counter().fetch_add(1, std::memory_order_relaxed);
               }) == 0;
    }();
    (void)registered;
#endif
}

/// Holds `mutex` across fork() for as long as this object lives.
class ForkLockRegistration {
public:
    explicit ForkLockRegistration(std::mutex& mutex) : mutex_(&mutex) {
        register_fork_handler();
        ForkLocks& all = fork_locks();
        std::lock_guard<std::mutex> lock(all.mutex);
        all.locks.push_back(mutex_);
    }

    ForkLockRegistration(const ForkLockRegistration&) = delete;
    ForkLockRegistration& operator=(const ForkLockRegistration&) = delete;

    ~ForkLockRegistration() {
        ForkLocks& all = fork_locks();
        std::lock_guard<std::mutex> lock(all.mutex);
        all.locks.erase(std::remove(all.locks.begin(), all.locks.end(), mutex_), all.locks.end());
    }

private:
    std::mutex* mutex_;
};

/// ForkLockRegistration for a pool's mutex when it is a std::mutex; other mutexes (the schedule
/// explorer's, in tests) are not held across fork().
template <class Mutex>
struct ForkLockFor {
    explicit ForkLockFor(Mutex& /*mutex*/) noexcept {}
};

template <>
struct ForkLockFor<std::mutex> : ForkLockRegistration {
    using ForkLockRegistration::ForkLockRegistration;
};

}  // namespace dbpool::detail

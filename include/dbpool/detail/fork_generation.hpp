#pragma once

#include <atomic>

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

inline void register_fork_handler() noexcept {
#ifdef DBPOOL_HAS_PTHREAD_ATFORK
    static const bool registered = [] {
        return pthread_atfork(nullptr, nullptr, [] {
                   fork_counter().fetch_add(1, std::memory_order_relaxed);
               }) == 0;
    }();
    (void)registered;
#endif
}

inline unsigned fork_generation() noexcept {
    return fork_counter().load(std::memory_order_relaxed);
}

}  // namespace dbpool::detail

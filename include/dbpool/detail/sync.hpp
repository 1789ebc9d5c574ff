#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

namespace dbpool::detail {

// The synchronisation a pool's core uses, as one policy: the mutex, the condition variable, the
// atomics its threads hand state over with, the thread type of its workers, the clock its
// waits are measured on, and the yield of its spin loops. Every build uses the standard
// library's. The schedule explorer of the tests (tests/core/explore/) substitutes types of its
// own with the same interface, each operation a scheduling point, so that it can run the real
// pool code one thread at a time in every order it chooses.
//
// Counters that only feed stats() stay plain std::atomic: they hand nothing over between
// threads, and exploring their orders would only multiply schedules.
struct StdSync {
    using mutex = std::mutex;
    using condition_variable = std::condition_variable;
    template <class T>
    using atomic = std::atomic<T>;
    using thread = std::thread;
    using wait_clock = std::chrono::steady_clock;

    static void yield() noexcept { std::this_thread::yield(); }

    // A broken invariant (test builds, see pool_invariants.hpp): the state can no longer be
    // trusted, so the process stops here, where the evidence is.
    [[noreturn]] static void invariant_failed(const char* what) noexcept {
        std::fprintf(stderr, "dbpool: invariant violated: %s\n", what);
        std::abort();
    }
};

// Reads an atomic for an invariant check (under the pool's lock, or in the explorer's quiescent
// hook) without making the read a scheduling point where the type allows (the explorer's
// atomics have peek(): checking must not add schedules); std::atomic is simply loaded.
template <class Atomic>
constexpr auto has_peek(int) -> decltype(std::declval<const Atomic&>().peek(), true) {
    return true;
}
template <class Atomic>
constexpr bool has_peek(...) {
    return false;
}

template <class Atomic>
auto peek(const Atomic& atomic) noexcept {
    if constexpr (has_peek<Atomic>(0)) {
        return atomic.peek();
    } else {
        return atomic.load();
    }
}

// A pool takes its synchronisation from its Clock: a clock type that names `dbpool_sync` brings
// its own (the explorer's virtual clock does); every other clock uses StdSync.
template <class Clock, class = void>
struct SyncOf {
    using type = StdSync;
};

template <class Clock>
struct SyncOf<Clock, std::void_t<typename Clock::dbpool_sync>> {
    using type = typename Clock::dbpool_sync;
};

template <class Clock>
using sync_of_t = typename SyncOf<Clock>::type;

}  // namespace dbpool::detail

#pragma once

// fork() in the tests: which sanitizers cannot follow it, and the one way a test says so.
//
// - ThreadSanitizer does not support a child of a multi-threaded process that starts threads
//   ("starting new threads after multi-threaded fork"), and a pool in a child starts workers.
//   Every fork test is skipped under it.
// - AddressSanitizer's allocator (GCC 12, clang 14) is not fork-safe: when another thread is
//   inside it at the moment of fork(), the child inherits one of its locks held and hangs in
//   its first allocation (seen: a new thread's calloc in the child; glibc's own malloc is
//   fork-safe). Fork tests with a concurrently busy thread are skipped under it; they run in
//   the clang tree of scripts/test.sh (UBSan, no ASan or TSan), which runs every [fork] test.

#include <catch2/catch.hpp>

#if defined(__SANITIZE_THREAD__)
#define DBPOOL_TEST_UNDER_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DBPOOL_TEST_UNDER_ASAN 1
#endif
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DBPOOL_TEST_UNDER_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define DBPOOL_TEST_UNDER_ASAN 1
#endif
#endif

namespace dbpool_test {

#ifdef DBPOOL_TEST_UNDER_TSAN
inline constexpr bool fork_unsupported = true;
inline constexpr bool concurrent_fork_unsupported = true;
#elif defined(DBPOOL_TEST_UNDER_ASAN)
inline constexpr bool fork_unsupported = false;
inline constexpr bool concurrent_fork_unsupported = true;
#else
inline constexpr bool fork_unsupported = false;
inline constexpr bool concurrent_fork_unsupported = false;
#endif

}  // namespace dbpool_test

// At the top of a fork test: returns (with a warning) where the sanitizer cannot follow it.
#define DBPOOL_SKIP_FORK_UNDER_SANITIZERS()                                                    \
    do {                                                                                       \
        if (dbpool_test::fork_unsupported) {                                                   \
            WARN("skipped under TSan: a forked child starts pool threads (see fork_support)"); \
            return;                                                                            \
        }                                                                                      \
    } while (false)

// At the top of a fork test that forks while another thread is busy.
#define DBPOOL_SKIP_CONCURRENT_FORK_UNDER_SANITIZERS()                                          \
    do {                                                                                        \
        if (dbpool_test::concurrent_fork_unsupported) {                                         \
            WARN(                                                                               \
                "skipped under ASan/TSan: fork() while another thread allocates is not "        \
                "supported by the sanitizer; this test runs in the clang tree (fork_support)"); \
            return;                                                                             \
        }                                                                                       \
    } while (false)

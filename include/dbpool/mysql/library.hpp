#pragma once

#include <dbpool/error.hpp>

#include <mysql.h>

namespace dbpool::mysql {

/// Runs mysql_library_init exactly once per process (thread-safe); throws Error{connect_failed}
/// when the client library cannot start. mysql_library_end is never needed.
inline void ensure_library_init() {
    // A function-local static is initialised once even when several threads race here.
    static const int result = mysql_library_init(0, nullptr, nullptr);
    if (result != 0) {
        throw Error(ErrorCode::connect_failed, "mysql: mysql_library_init failed");
    }
}

namespace detail {

// Calls mysql_thread_end when the thread that constructed it exits.
struct ThreadGuard {
    ThreadGuard() { mysql_thread_init(); }
    ~ThreadGuard() { mysql_thread_end(); }
    ThreadGuard(const ThreadGuard&) = delete;
    ThreadGuard& operator=(const ThreadGuard&) = delete;
};

}  // namespace detail

/// Prepares the calling thread for the client library: library init once per process, then
/// mysql_thread_init, with mysql_thread_end arranged for thread exit. Idempotent per thread.
inline void prepare_thread() {
    ensure_library_init();
    thread_local detail::ThreadGuard guard;
    (void)guard;
}

}  // namespace dbpool::mysql

#pragma once

/// \file
/// Client library start-up: mysql::ensure_library_init() and mysql::prepare_thread().

#include <dbpool/error.hpp>
#include <dbpool/mysql/client.hpp>

namespace dbpool::mysql {

/// Runs mysql_library_init once per process; throws Error{connect_failed} when the client
/// library cannot start. mysql_library_end is never needed.
///
/// Thread-safety: safe against concurrent calls from dbpool (a function-local static), but
/// Oracle's mysql_library_init itself is not thread-safe against other code in the process that
/// uses the client library at the same time (mysql_init() calls it implicitly). When other code
/// in the process uses the C API too, call this function (or mysql_library_init) from main()
/// before starting threads; when dbpool is the only user, its connections call it first and
/// nothing else is needed.
inline void ensure_library_init() {
    // A function-local static is initialised once even when several threads race here.
    static const int result = mysql_library_init(0, nullptr, nullptr);
    if (result != 0) {
        throw Error(ErrorCode::connect_failed, "mysql: mysql_library_init failed");
    }
}

namespace detail {

// Calls mysql_thread_init for the thread that constructs it and mysql_thread_end at its exit.
struct ThreadGuard {
    ThreadGuard() {
        ensure_library_init();
        mysql_thread_init();
    }
    ~ThreadGuard() { mysql_thread_end(); }
    ThreadGuard(const ThreadGuard&) = delete;
    ThreadGuard& operator=(const ThreadGuard&) = delete;
    ThreadGuard(ThreadGuard&&) = delete;
    ThreadGuard& operator=(ThreadGuard&&) = delete;
};

}  // namespace detail

/// Prepares the calling thread for the client library: library init once per process, then
/// mysql_thread_init, with mysql_thread_end arranged for the thread's exit.
///
/// Oracle's library needs this on every thread that uses a connection, not only the one that
/// opened it; Connector/C does not, and the calls are harmless there. dbpool's pools call it
/// (through ConnectionTraits::prepare_thread) on every thread they hand a connection to, and
/// Connection's constructor calls it. Idempotent; after the first call on a thread it costs a
/// thread-local guard check. Throws Error{connect_failed} if the library cannot start.
inline void prepare_thread() {
    thread_local const detail::ThreadGuard guard;
    (void)guard;
}

}  // namespace dbpool::mysql

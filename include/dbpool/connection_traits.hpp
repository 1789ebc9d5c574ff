#pragma once

#include <dbpool/error.hpp>

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace dbpool {

/// How a failed statement left its connection.
enum class Failure {
    none,             ///< The connection is fine (syntax error, constraint violation, ...).
    broken_not_sent,  ///< Broken, and the statement certainly never reached the server.
    broken,           ///< Broken; the statement may have run (e.g. lost during query).
};

namespace detail {

template <class, class = void>
struct has_close : std::false_type {};
template <class C>
struct has_close<C, std::void_t<decltype(std::declval<C&>().close())>> : std::true_type {};

template <class, class = void>
struct has_ping : std::false_type {};
template <class C>
struct has_ping<C, std::void_t<decltype(std::declval<C&>().ping())>> : std::true_type {};

template <class, class = void>
struct has_begin : std::false_type {};
template <class C>
struct has_begin<C, std::void_t<decltype(std::declval<C&>().begin())>> : std::true_type {};

template <class, class = void>
struct has_commit : std::false_type {};
template <class C>
struct has_commit<C, std::void_t<decltype(std::declval<C&>().commit())>> : std::true_type {};

template <class, class = void>
struct has_rollback : std::false_type {};
template <class C>
struct has_rollback<C, std::void_t<decltype(std::declval<C&>().rollback())>> : std::true_type {};

template <class, class = void>
struct has_execute : std::false_type {};
template <class C>
struct has_execute<
    C, std::void_t<decltype(std::declval<C&>().execute(std::declval<const std::string&>()))>>
    : std::true_type {};

template <class, class = void>
struct has_in_transaction : std::false_type {};
template <class C>
struct has_in_transaction<C, std::void_t<decltype(bool(std::declval<const C&>().in_transaction()))>>
    : std::true_type {};

template <class, class = void>
struct has_reset_session : std::false_type {};
template <class C>
struct has_reset_session<C, std::void_t<decltype(std::declval<C&>().reset_session())>>
    : std::true_type {};

template <class, class = void>
struct has_classify_failure : std::false_type {};
template <class C>
struct has_classify_failure<
    C, std::void_t<decltype(C::classify_failure(std::declval<const std::exception&>()))>>
    : std::true_type {};

template <class, class = void>
struct has_thread_safe_sharing : std::false_type {};
template <class C>
struct has_thread_safe_sharing<C, std::void_t<decltype(C::thread_safe_sharing)>>
    : std::true_type {};

template <class, class = void>
struct has_prepare_thread : std::false_type {};
template <class C>
struct has_prepare_thread<C, std::void_t<decltype(C::prepare_thread())>> : std::true_type {};

template <class, class = void>
struct has_abandon : std::false_type {};
template <class C>
struct has_abandon<C, std::void_t<decltype(std::declval<C&>().abandon())>> : std::true_type {};

}  // namespace detail

/// What dbpool needs from a connection type, in one place.
///
/// The primary template looks for these members on `Connection` and falls back to a safe
/// default where one is missing; specialise `ConnectionTraits<YourType>` to adapt a type you
/// cannot change. Every function is called by one thread at a time for a given connection.
///
/// Members looked for (use; default when missing):
/// - `void close()`: closing; the destructor is relied on.
/// - `bool ping()`, may throw: ping bits and keepalive; always alive.
/// - `void begin()`, `commit()`, `rollback()`: transactions and reset; no-ops.
/// - `execute(const std::string&)`: setsession statements; setsession is refused.
/// - `bool in_transaction() const`: the server's transaction flag; only begin() counts.
/// - `void reset_session()`: `Reset::full`; a rollback instead.
/// - `static Failure classify_failure(const std::exception&)`: failure classes; see below.
/// - `static constexpr bool thread_safe_sharing`: enables maxshared; never shared.
/// - `static void prepare_thread()`: per-thread client set-up; nothing.
/// - `void abandon() noexcept`: drop silently after fork(); the object is leaked.
///
/// Without `classify_failure`, a `dbpool::Error` with code `connection_lost` counts as
/// `Failure::broken` and every other exception as `Failure::none`.
template <class Connection, class = void>
struct ConnectionTraits {
    /// Whether one connection may be used by several threads at once (enables maxshared).
    static constexpr bool thread_safe_sharing = [] {
        if constexpr (detail::has_thread_safe_sharing<Connection>::value) {
            return bool(Connection::thread_safe_sharing);
        } else {
            return false;
        }
    }();

    /// Closes the connection; never throws.
    static void close(Connection& connection) noexcept {
        if constexpr (detail::has_close<Connection>::value) {
            try {
                connection.close();
            } catch (...) {
                // Closing is best effort: the object is destroyed right after.
            }
        }
    }

    /// True when the connection answered; a throwing ping counts as dead.
    static bool ping(Connection& connection) noexcept {
        if constexpr (detail::has_ping<Connection>::value) {
            try {
                if constexpr (std::is_void_v<decltype(connection.ping())>) {
                    connection.ping();
                    return true;
                } else {
                    return bool(connection.ping());
                }
            } catch (...) {
                return false;
            }
        } else {
            return true;
        }
    }

    /// Starts a transaction.
    static void begin(Connection& connection) {
        if constexpr (detail::has_begin<Connection>::value) connection.begin();
    }

    /// Commits the open transaction.
    static void commit(Connection& connection) {
        if constexpr (detail::has_commit<Connection>::value) connection.commit();
    }

    /// Rolls back the open transaction, if any.
    static void rollback(Connection& connection) {
        if constexpr (detail::has_rollback<Connection>::value) connection.rollback();
    }

    /// Runs one setsession statement (e.g. "SET time_zone = '+00:00'").
    static void run_session_statement(Connection& connection, const std::string& sql) {
        if constexpr (detail::has_execute<Connection>::value) {
            connection.execute(sql);
        } else {
            throw Error(ErrorCode::invalid_options,
                        "dbpool: setsession needs a connection type with execute(const "
                        "std::string&), or a ConnectionTraits specialisation (statement: " +
                            sql + ")");
        }
    }

    /// What the server says about an open transaction (no round trip expected).
    static bool in_transaction(const Connection& connection) noexcept {
        if constexpr (detail::has_in_transaction<Connection>::value) {
            return bool(connection.in_transaction());
        } else {
            return false;
        }
    }

    /// Whether `reset_session` does a full session reset.
    static constexpr bool can_reset_session = detail::has_reset_session<Connection>::value;

    /// Clears all session state without reconnecting (MySQL COM_RESET_CONNECTION).
    static void reset_session(Connection& connection) {
        if constexpr (can_reset_session) {
            connection.reset_session();
        } else {
            rollback(connection);
        }
    }

    /// Classifies an exception thrown by a statement on this connection type.
    static Failure classify_failure(const std::exception& error) noexcept {
        if constexpr (detail::has_classify_failure<Connection>::value) {
            return Connection::classify_failure(error);
        } else {
            const auto* own = dynamic_cast<const Error*>(&error);
            return own != nullptr && own->code() == ErrorCode::connection_lost ? Failure::broken
                                                                               : Failure::none;
        }
    }

    /// Per-thread set-up of the client library, run before a thread's first connection.
    static void prepare_thread() {
        if constexpr (detail::has_prepare_thread<Connection>::value) Connection::prepare_thread();
    }

    /// Whether `abandon` can drop a connection without touching the server (after fork()).
    static constexpr bool can_abandon = detail::has_abandon<Connection>::value;

    /// Releases local resources without sending anything (the socket belongs to the parent).
    static void abandon(Connection& connection) noexcept {
        if constexpr (can_abandon) connection.abandon();
    }
};

}  // namespace dbpool

#pragma once

/// \file
/// What the core needs from a connection type (ConnectionTraits), and how a failed statement
/// left its connection (Failure).

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

// One detection idiom for every optional member: detected<C, Op> is true when Op<C> is a
// well-formed expression.
template <class, template <class> class, class = void>
struct detector : std::false_type {};
template <class C, template <class> class Op>
struct detector<C, Op, std::void_t<Op<C>>> : std::true_type {};
template <class C, template <class> class Op>
inline constexpr bool detected = detector<C, Op>::value;

template <class C>
using close_member = decltype(std::declval<C&>().close());
template <class C>
using ping_member = decltype(std::declval<C&>().ping());
template <class C>
using begin_member = decltype(std::declval<C&>().begin());
template <class C>
using commit_member = decltype(std::declval<C&>().commit());
template <class C>
using rollback_member = decltype(std::declval<C&>().rollback());
template <class C>
using execute_member = decltype(std::declval<C&>().execute(std::declval<const std::string&>()));
template <class C>
using in_transaction_member = decltype(bool(std::declval<const C&>().in_transaction()));
template <class C>
using reset_session_member = decltype(std::declval<C&>().reset_session());
template <class C>
using classify_failure_member =
    decltype(C::classify_failure(std::declval<const std::exception&>()));
template <class C>
using thread_safe_sharing_member = decltype(C::thread_safe_sharing);
template <class C>
using prepare_thread_member = decltype(C::prepare_thread());
template <class C>
using abandon_member = decltype(std::declval<C&>().abandon());
template <class C>
using is_reusable_member = decltype(bool(std::declval<const C&>().is_reusable()));

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
/// - `bool is_reusable() const noexcept`: no I/O; false when the connection cannot serve another
///   borrower (e.g. results left unread); pools close it on return; always reusable.
///
/// Without `classify_failure`, a `dbpool::Error` with code `connection_lost` counts as
/// `Failure::broken` and every other exception as `Failure::none`.
template <class Connection, class = void>
struct ConnectionTraits {
    /// Whether one connection may be used by several threads at once (enables maxshared).
    static constexpr bool thread_safe_sharing = [] {
        if constexpr (detail::detected<Connection, detail::thread_safe_sharing_member>) {
            return bool(Connection::thread_safe_sharing);
        } else {
            return false;
        }
    }();

    /// Closes the connection; never throws.
    static void close(Connection& connection) noexcept {
        if constexpr (detail::detected<Connection, detail::close_member>) {
            try {
                connection.close();
            } catch (...) {
                // Closing is best effort: the object is destroyed right after.
            }
        }
    }

    /// True when the connection answered; a throwing ping counts as dead.
    static bool ping(Connection& connection) noexcept {
        if constexpr (detail::detected<Connection, detail::ping_member>) {
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
        if constexpr (detail::detected<Connection, detail::begin_member>) connection.begin();
    }

    /// Commits the open transaction.
    static void commit(Connection& connection) {
        if constexpr (detail::detected<Connection, detail::commit_member>) connection.commit();
    }

    /// Rolls back the open transaction, if any.
    static void rollback(Connection& connection) {
        if constexpr (detail::detected<Connection, detail::rollback_member>) connection.rollback();
    }

    /// Runs one setsession statement (e.g. "SET time_zone = '+00:00'").
    static void run_session_statement(Connection& connection, const std::string& sql) {
        if constexpr (detail::detected<Connection, detail::execute_member>) {
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
        if constexpr (detail::detected<Connection, detail::in_transaction_member>) {
            return bool(connection.in_transaction());
        } else {
            return false;
        }
    }

    /// Whether `reset_session` does a full session reset.
    static constexpr bool can_reset_session =
        detail::detected<Connection, detail::reset_session_member>;

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
        if constexpr (detail::detected<Connection, detail::classify_failure_member>) {
            return Connection::classify_failure(error);
        } else {
            const auto* own = dynamic_cast<const Error*>(&error);
            return own != nullptr && own->code() == ErrorCode::connection_lost ? Failure::broken
                                                                               : Failure::none;
        }
    }

    /// Whether the client library needs per-thread set-up (prepare_thread() does something).
    static constexpr bool has_prepare_thread =
        detail::detected<Connection, detail::prepare_thread_member>;

    /// Per-thread set-up of the client library; pools run it once on every thread that uses a
    /// connection (borrowers, pool workers, maintenance), before its first use.
    static void prepare_thread() {
        if constexpr (has_prepare_thread) Connection::prepare_thread();
    }

    /// Whether a returned connection can serve the next borrower as it is (no I/O); a pool
    /// closes one that cannot.
    static bool is_reusable(const Connection& connection) noexcept {
        if constexpr (detail::detected<Connection, detail::is_reusable_member>) {
            return bool(connection.is_reusable());
        } else {
            return true;
        }
    }

    /// Whether `abandon` can drop a connection without touching the server (after fork()).
    static constexpr bool can_abandon = detail::detected<Connection, detail::abandon_member>;

    /// Releases local resources without sending anything (the socket belongs to the parent).
    static void abandon(Connection& connection) noexcept {
        if constexpr (can_abandon) connection.abandon();
    }
};

}  // namespace dbpool

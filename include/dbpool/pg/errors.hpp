#pragma once

/// \file
/// How PostgreSQL errors are classified for callers (ErrorCode) and pools (Failure).

#include <dbpool/connection_traits.hpp>
#include <dbpool/error.hpp>

#include <cstddef>
#include <exception>
#include <string>
#include <string_view>

namespace dbpool::pg {

/// dbpool's numbers for failures that libpq reports without a server error, kept in
/// `Error::native_code()`. PostgreSQL has no error numbers: server errors carry 0 there and
/// their SQLSTATE in `Error::sqlstate()`.
enum class ClientError : int {
    none = 0,  ///< A server error (see the SQLSTATE) or a client-side usage error.
    /// The connection was found dead before the statement was sent (closed, lost by an earlier
    /// call, or already closed by the server): the statement certainly never reached the server.
    not_sent = 1,
    /// The connection broke after the statement was handed to the socket: it may have run.
    lost = 2,
    /// No reply within read_timeout (or no progress within write_timeout); the connection was
    /// closed. The statement may have run.
    timed_out = 3,
};

/// The native code of a ClientError.
constexpr int native(ClientError error) noexcept { return static_cast<int>(error); }

/// Whether `sqlstate` names a broken or ending session: class 08 (connection exception),
/// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 57P04
/// database_dropped, 57P05 idle_session_timeout.
inline bool is_connection_sqlstate(std::string_view sqlstate) noexcept {
    if (sqlstate.size() != 5) return false;
    if (sqlstate.substr(0, 2) == "08") return true;
    return sqlstate.substr(0, 4) == "57P0" && sqlstate[4] >= '1' && sqlstate[4] <= '5';
}

/// The ErrorCode of a server error: 40001 serialization_failure and 40P01 deadlock_detected
/// -> transaction_conflict, 25006 read_only_sql_transaction -> read_only, a connection
/// SQLSTATE -> connection_lost, everything else -> database. (The connection raises
/// connection_lost only when the session really ended: an ERROR-level 08P01 leaves it usable
/// and is `database`. A wrong number of arguments never gets that far: it is Error{usage}
/// before sending.)
inline ErrorCode error_code_for(std::string_view sqlstate) noexcept {
    if (sqlstate == "40001" || sqlstate == "40P01") return ErrorCode::transaction_conflict;
    if (sqlstate == "25006") return ErrorCode::read_only;
    if (is_connection_sqlstate(sqlstate)) return ErrorCode::connection_lost;
    return ErrorCode::database;
}

/// The failure class of an exception thrown by a `dbpool::pg::Connection`: native not_sent ->
/// broken_not_sent (safe to run again elsewhere); lost, timed_out, or any other
/// connection_lost (a FATAL from the server, connection status bad) -> broken (it may have
/// run); everything else -> none.
inline Failure classify_exception(const std::exception& error) noexcept {
    const auto* own = dynamic_cast<const Error*>(&error);
    if (own == nullptr) return Failure::none;
    if (own->native_code() == native(ClientError::not_sent)) return Failure::broken_not_sent;
    if (own->native_code() == native(ClientError::lost) ||
        own->native_code() == native(ClientError::timed_out) ||
        own->code() == ErrorCode::connection_lost) {
        return Failure::broken;
    }
    return Failure::none;
}

namespace detail {

// A usage error detected on the client side (wrong argument, bad conversion, ...).
[[noreturn]] inline void raise_usage(const std::string& message) {
    throw Error(ErrorCode::usage, "pg: " + message);
}

// libpq's messages end with a newline and may span several lines; one line reads better in
// an exception, and the detail lines keep their content.
inline std::string one_line(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool pending = false;  // a line break was seen: the next word starts after one space
    for (char c : text) {
        if (c == '\n' || c == '\r' || c == '\t') {
            pending = !out.empty();
            continue;
        }
        if (pending) {
            if (c == ' ') continue;
            out += ' ';
            pending = false;
        }
        out += c;
    }
    return out;
}

}  // namespace detail

}  // namespace dbpool::pg

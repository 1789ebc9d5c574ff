#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace dbpool {

/// What went wrong, in a form the caller can branch on.
enum class ErrorCode {
    invalid_options,   ///< An option is out of range or contradicts another; the message names it.
    pool_exhausted,    ///< Non-blocking acquire at maxconnections ("too many connections").
    timeout,           ///< A blocking acquire waited acquire_timeout without getting a connection.
    pool_closed,       ///< The pool was closed; no connection will be handed out.
    handle_closed,     ///< A handle was used after close() or after being moved from.
    connect_failed,    ///< The creator could not open a connection.
    connection_lost,   ///< The connection broke; it has been replaced or closed.
    transaction_lost,  ///< The connection broke inside a transaction; the server rolled it back.
    database,          ///< The database rejected a statement (native number and SQLSTATE kept).
    usage,             ///< The program misused the API (e.g. NULL read into a non-optional).
};

/// Short stable name of an error code, e.g. "pool_exhausted".
inline const char* to_string(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::invalid_options: return "invalid_options";
        case ErrorCode::pool_exhausted: return "pool_exhausted";
        case ErrorCode::timeout: return "timeout";
        case ErrorCode::pool_closed: return "pool_closed";
        case ErrorCode::handle_closed: return "handle_closed";
        case ErrorCode::connect_failed: return "connect_failed";
        case ErrorCode::connection_lost: return "connection_lost";
        case ErrorCode::transaction_lost: return "transaction_lost";
        case ErrorCode::database: return "database";
        case ErrorCode::usage: return "usage";
    }
    return "unknown";
}

/// The one exception type dbpool throws; backends keep the server's native error number and
/// SQLSTATE in it. Messages never contain a password.
class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message, int native_code = 0,
          std::string sqlstate = {})
        : std::runtime_error(message),
          code_(code),
          native_code_(native_code),
          sqlstate_(std::move(sqlstate)) {}

    /// The category of the failure.
    ErrorCode code() const noexcept { return code_; }
    /// The backend's own error number (e.g. MySQL 2013), or 0.
    int native_code() const noexcept { return native_code_; }
    /// The SQLSTATE reported by the server, or empty.
    const std::string& sqlstate() const noexcept { return sqlstate_; }

private:
    ErrorCode code_;
    int native_code_;
    std::string sqlstate_;
};

}  // namespace dbpool

#pragma once

/// \file
/// dbpool::Error, the one exception type dbpool throws, and ErrorCode, what a caller branches on.

#include <stdexcept>
#include <string>
#include <utility>

namespace dbpool {

/// What went wrong, in a form the caller can branch on.
enum class ErrorCode {
    /// An option is out of range or contradicts another; the message names it.
    invalid_options,
    /// Non-blocking acquire at maxconnections ("too many connections").
    pool_exhausted,
    /// A blocking acquire waited acquire_timeout without getting a connection.
    timeout,
    /// The pool was closed; no connection will be handed out.
    pool_closed,
    /// A handle was used after close() or after being moved from, or, in a child after
    /// fork(), a pooled handle borrowed before the fork.
    handle_closed,
    /// The creator could not open a connection.
    connect_failed,
    /// The connection broke; the statement may or may not have run.
    connection_lost,
    /// The connection broke inside a transaction; the server rolled it back: redo it.
    transaction_lost,
    /// The database rejected a statement (native number and SQLSTATE kept).
    database,
    /// The program misused the API (e.g. NULL read into a non-optional).
    usage,
    /// The connection broke during COMMIT: the transaction may or may not have committed.
    commit_unknown,
    /// The server rolled the transaction back (deadlock, certification or serialization
    /// failure): retry it from its start.
    transaction_conflict,
    /// The server refuses writes (a read-only replica): send writes to a primary.
    read_only,
    /// The server is up but not ready to serve (e.g. a Galera node not synced); the statement
    /// did not run: use another node or retry later.
    node_unavailable,
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
        case ErrorCode::commit_unknown: return "commit_unknown";
        case ErrorCode::transaction_conflict: return "transaction_conflict";
        case ErrorCode::read_only: return "read_only";
        case ErrorCode::node_unavailable: return "node_unavailable";
    }
    return "unknown";
}

/// The one exception type dbpool throws; backends keep the server's native error number and
/// SQLSTATE in it. Messages never contain a password.
class Error : public std::runtime_error {
public:
    /// An error of kind `code`; `message` is what() (say what failed and how to fix it, never a
    /// password); backends pass the server's or client library's number and SQLSTATE.
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

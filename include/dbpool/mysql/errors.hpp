#pragma once

/// \file
/// How MySQL/MariaDB errors are classified for callers (ErrorCode) and pools (Failure).

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/redact.hpp>
#include <dbpool/error.hpp>
#include <dbpool/mysql/server_info.hpp>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <string>
#include <string_view>

namespace dbpool::mysql {

/// What an error from the client library or the server means: the ErrorCode a caller branches
/// on, and the Failure class that tells a pool whether the connection is still usable.
struct ErrorClass {
    ErrorCode code = ErrorCode::database;  ///< What the caller sees.
    Failure failure = Failure::none;       ///< What the pool does with the connection.
};

/// Classifies a native error number with its SQLSTATE and message, for the server `server`.
///
/// - 2006 (could not send): connection_lost, broken_not_sent: the statement never ran.
/// - 1213 (deadlock; also a Galera certification failure): transaction_conflict; the server
///   rolled the transaction back and the connection is fine: retry the transaction.
/// - 1290 naming the read-only option, 1836 (read-only mode): read_only; the connection is fine.
/// - 1047 from Galera ("WSREP has not yet prepared node for application use"): node_unavailable
///   with Failure::none. Its SQLSTATE is 08S01 but the connection is not broken and the
///   statement did not run; reconnecting to the same node would not help, so the caller decides
///   (another node, or later). Behind a load balancer, map it to broken_not_sent through the
///   pool's `failures` option to get a fresh connection and one retry.
/// - 4031 on MySQL 8.0.24 or later (disconnected for inactivity): connection_lost, broken. On
///   MariaDB 4031 is an ordinary statement error (a referenced trigger does not exist).
/// - Every other broken-connection number (2013, 2055, 1053, 1927, ...) and every SQLSTATE of
///   class 08 (e.g. 1153 packet too big, after which the server closes the connection):
///   connection_lost, broken.
/// - Anything else: database, Failure::none.
inline ErrorClass classify_error(int native_code, std::string_view sqlstate,
                                 std::string_view message, const ServerInfo& server) noexcept {
    const auto says = [&](std::string_view text) {
        return message.find(text) != std::string_view::npos;
    };
    switch (native_code) {
        case 2006: return {ErrorCode::connection_lost, Failure::broken_not_sent};
        case 1213: return {ErrorCode::transaction_conflict, Failure::none};
        case 1290:  // ER_OPTION_PREVENTS_STATEMENT: also --secure-file-priv and others
            if (says("read-only") || says("read_only"))
                return {ErrorCode::read_only, Failure::none};
            break;
        case 1836: return {ErrorCode::read_only, Failure::none};  // ER_READ_ONLY_MODE
        case 1047:  // ER_UNKNOWN_COM_ERROR: Galera uses it for "node not ready"
            if (says("WSREP")) return {ErrorCode::node_unavailable, Failure::none};
            break;
        case 4031:  // MySQL ER_CLIENT_INTERACTION_TIMEOUT; MariaDB ER_REFERENCED_TRG_DOES_NOT_EXIST
            if (server.is_mysql_at_least(80024)) {
                return {ErrorCode::connection_lost, Failure::broken};
            }
            return {ErrorCode::database, Failure::none};
        case 1053:  // ER_SERVER_SHUTDOWN
        case 1152:  // ER_ABORTING_CONNECTION
        case 1153:  // ER_NET_PACKET_TOO_LARGE: the server closes the connection
        case 1158:  // ER_NET_READ_ERROR
        case 1159:  // ER_NET_READ_INTERRUPTED
        case 1160:  // ER_NET_ERROR_ON_WRITE
        case 1161:  // ER_NET_WRITE_INTERRUPTED
        case 1184:  // ER_NEW_ABORTING_CONNECTION
        case 1927:  // ER_CONNECTION_KILLED (MariaDB): KILL or shutdown
        case 2001:  // CR_SOCKET_CREATE_ERROR
        case 2002:  // CR_CONNECTION_ERROR (refused, or no socket file)
        case 2003:  // CR_CONN_HOST_ERROR
        case 2004:  // CR_IPSOCK_ERROR
        case 2011:  // CR_TCP_CONNECTION
        case 2013:  // CR_SERVER_LOST: lost during the query; it may have run
        case 2014:  // CR_COMMANDS_OUT_OF_SYNC: the protocol state is unusable
        case 2026:  // CR_SSL_CONNECTION_ERROR
        case 2048:  // CR_INVALID_CONN_HANDLE
        case 2055:  // CR_SERVER_LOST_EXTENDED
            return {ErrorCode::connection_lost, Failure::broken};
        default: break;
    }
    if (sqlstate.size() == 5 && sqlstate.substr(0, 2) == "08") {
        return {ErrorCode::connection_lost, Failure::broken};
    }
    return {ErrorCode::database, Failure::none};
}

/// Whether `native_code` (with its SQLSTATE, on `server`) means the connection is broken.
inline bool is_connection_error(int native_code, std::string_view sqlstate = {},
                                const ServerInfo& server = {}) noexcept {
    return classify_error(native_code, sqlstate, {}, server).failure != Failure::none;
}

/// The failure class of an exception thrown by a `dbpool::mysql::Connection`: the backend
/// classifies when it throws (it knows the server), so connection_lost is broken (2006:
/// broken_not_sent) and everything else leaves the connection usable.
inline Failure classify_exception(const std::exception& error) noexcept {
    const auto* own = dynamic_cast<const Error*>(&error);
    if (own == nullptr || own->code() != ErrorCode::connection_lost) return Failure::none;
    return own->native_code() == 2006 ? Failure::broken_not_sent : Failure::broken;
}

namespace detail {

// The longest statement excerpt put into a message.
inline constexpr std::size_t statement_excerpt_limit = 100;

// `sql` for an error message: whitespace runs collapsed, the contents of every quoted literal
// replaced by "..." (a literal may be a secret: IDENTIFIED BY '...'), cut at
// statement_excerpt_limit characters on a UTF-8 boundary.
inline std::string statement_excerpt(std::string_view sql) {
    std::string out;
    out.reserve(std::min(sql.size(), statement_excerpt_limit) + 8);
    char quote = 0;
    bool space = false;
    std::size_t i = 0;
    for (; i < sql.size() && out.size() < statement_excerpt_limit; ++i) {
        const char c = sql[i];
        if (quote != 0) {
            if (c == '\\' && i + 1 < sql.size()) {
                ++i;  // an escaped character never ends the literal
            } else if (c == quote) {
                if (i + 1 < sql.size() && sql[i + 1] == quote) {
                    ++i;  // '' inside '...'
                } else {
                    out += "...";
                    out += c;
                    quote = 0;
                }
            }
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = !out.empty();
            continue;
        }
        if (space) {
            out += ' ';
            space = false;
        }
        out += c;
        if (c == '\'' || c == '"') quote = c;
    }
    if (quote != 0) {
        out += "...";  // an unterminated or cut literal: none of its text is shown
        return out;
    }
    if (i >= sql.size() || sql.find_first_not_of(" \t\r\n", i) == std::string_view::npos) {
        return out;
    }
    // Cut: drop a partial UTF-8 character (continuation bytes, then their lead byte).
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) {
        out.pop_back();
    }
    if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
    out += "...";
    return out;
}

// `text` with `secret` replaced by "<password>"; a library or server message may echo what it
// was given, and a password must never reach a message. The rules are the backends' shared
// ones (detail/redact.hpp): a 1-2 character secret only where it is quoted on its own, and a
// user name `user` that holds the password reads "<user>" as a whole, so user "app" with
// password "app" gives "<user>@host", never "<password>@host" (which would tell the password).
inline std::string redact(const std::string& text, std::string_view secret,
                          std::string_view user = {}) {
    dbpool::detail::Secrets secrets;
    secrets.whole.emplace_back(secret);
    secrets.users.emplace_back(user);
    return dbpool::detail::redact(text, secrets, "<password>");
}

// One formatted, classified Error for a failed step. `sql` may be empty; it is shown as an
// excerpt (never with parameter values: those are bound separately).
inline Error make_error(std::string_view step, std::string_view sql, int native_code,
                        std::string_view sqlstate, std::string_view message,
                        const ServerInfo& server, std::string_view secret = {},
                        std::string_view user = {}) {
    std::string text = "mysql: ";
    text += step;
    if (!sql.empty()) {
        text += " of \"";
        text += statement_excerpt(sql);
        text += '"';
    }
    text += " failed: [" + std::to_string(native_code);
    if (!sqlstate.empty()) {
        text += '/';
        text += sqlstate;
    }
    text += "] ";
    text += message.empty() ? std::string_view("(no message)") : message;
    const ErrorClass what = classify_error(native_code, sqlstate, message, server);
    return Error(what.code, redact(text, secret, user), native_code, std::string(sqlstate));
}

// A usage error detected on the client side (wrong argument count, bad conversion, ...).
[[noreturn]] inline void raise_usage(const std::string& message) {
    throw Error(ErrorCode::usage, "mysql: " + message);
}

}  // namespace detail

}  // namespace dbpool::mysql

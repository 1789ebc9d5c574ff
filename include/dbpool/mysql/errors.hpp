#pragma once

#include <dbpool/connection_traits.hpp>
#include <dbpool/error.hpp>

#include <mysql.h>

#include <exception>
#include <string>
#include <string_view>

namespace dbpool::mysql {

/// Numbers meaning "the connection is broken" (client CR_* codes and server codes alike).
///
/// 2006 is special: the client reports it when it could not send, so the statement never ran.
/// The list covers MariaDB Connector/C and Oracle's libmysqlclient (whose numbers differ for
/// a refused connection: 2002 vs 2003).
inline bool is_connection_error(int native_code) noexcept {
    switch (native_code) {
        case 1053:  // ER_SERVER_SHUTDOWN: the server is shutting down
        case 1152:  // ER_ABORTING_CONNECTION
        case 1158:  // ER_NET_READ_ERROR
        case 1159:  // ER_NET_READ_INTERRUPTED
        case 1160:  // ER_NET_ERROR_ON_WRITE
        case 1161:  // ER_NET_WRITE_INTERRUPTED
        case 1184:  // ER_NEW_ABORTING_CONNECTION
        case 1927:  // ER_CONNECTION_KILLED (MariaDB): KILL or shutdown
        case 2001:  // CR_SOCKET_CREATE_ERROR
        case 2002:  // CR_CONNECTION_ERROR (refused, or socket missing)
        case 2003:  // CR_CONN_HOST_ERROR
        case 2004:  // CR_IPSOCK_ERROR
        case 2006:  // CR_SERVER_GONE_ERROR: could not send
        case 2011:  // CR_TCP_CONNECTION
        case 2013:  // CR_SERVER_LOST: lost during the query
        case 2014:  // CR_COMMANDS_OUT_OF_SYNC: the protocol state is unusable
        case 2026:  // CR_SSL_CONNECTION_ERROR
        case 2048:  // CR_INVALID_CONN_HANDLE
        case 2055:  // CR_SERVER_LOST_EXTENDED
        case 4031:  // MySQL 8.0.24+: disconnected by the server after an idle timeout
            return true;
        default: return false;
    }
}

/// The failure class of a native error number (SPEC 2.3).
inline Failure classify_native(int native_code) noexcept {
    if (native_code == 2006) return Failure::broken_not_sent;
    return is_connection_error(native_code) ? Failure::broken : Failure::none;
}

/// The failure class of an exception thrown by a `dbpool::mysql::Connection`.
inline Failure classify_exception(const std::exception& error) noexcept {
    const auto* own = dynamic_cast<const Error*>(&error);
    if (own == nullptr) return Failure::none;
    if (own->native_code() != 0) return classify_native(own->native_code());
    return own->code() == ErrorCode::connection_lost ? Failure::broken : Failure::none;
}

namespace detail {

inline Error make_error(const char* what, unsigned number, const char* sqlstate,
                        const char* message) {
    const int code = static_cast<int>(number);
    std::string text = std::string("mysql: ") + what + " failed: [" + std::to_string(code);
    if (sqlstate != nullptr && *sqlstate != '\0') text += std::string("/") + sqlstate;
    text += "] ";
    text += message != nullptr ? message : "(no message)";
    return Error(is_connection_error(code) ? ErrorCode::connection_lost : ErrorCode::database, text,
                 code, sqlstate != nullptr ? sqlstate : "");
}

// Raises the last error of a connection handle.
[[noreturn]] inline void raise(MYSQL* handle, const char* what) {
    throw make_error(what, mysql_errno(handle), mysql_sqlstate(handle), mysql_error(handle));
}

// Raises the last error of a statement handle.
[[noreturn]] inline void raise(MYSQL_STMT* statement, const char* what) {
    throw make_error(what, mysql_stmt_errno(statement), mysql_stmt_sqlstate(statement),
                     mysql_stmt_error(statement));
}

// A usage error detected on the client side (wrong argument count, bad conversion, ...).
[[noreturn]] inline void raise_usage(const std::string& message) {
    throw Error(ErrorCode::usage, "mysql: " + message);
}

}  // namespace detail

}  // namespace dbpool::mysql

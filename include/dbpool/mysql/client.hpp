#pragma once

/// \file
/// The one place that knows which C client library dbpool was compiled against: MariaDB
/// Connector/C or Oracle's libmysqlclient (MySQL 8.0 and later). Everything else in the backend
/// calls these wrappers instead of testing the library itself.

#include <mysql.h>

#include <string>
#include <type_traits>

// MariaDB defines MYSQL_VERSION_ID too (as its server version), so it is tested first.
#if defined(LIBMARIADB) || defined(MARIADB_PACKAGE_VERSION_ID)
/// 1 when compiled against MariaDB Connector/C, 0 for Oracle's libmysqlclient.
#define DBPOOL_MYSQL_MARIADB_CLIENT 1
#elif defined(LIBMYSQL_VERSION_ID) || defined(MYSQL_VERSION_ID)
#define DBPOOL_MYSQL_MARIADB_CLIENT 0
#else
#error "dbpool::mysql: <mysql.h> is neither MariaDB Connector/C nor Oracle's libmysqlclient"
#endif

#if !DBPOOL_MYSQL_MARIADB_CLIENT
#if defined(LIBMYSQL_VERSION_ID)
/// Oracle's client library version as a number (80036 for 8.0.36); 0 for Connector/C.
#define DBPOOL_MYSQL_ORACLE_VERSION_ID LIBMYSQL_VERSION_ID
#else
/// Oracle's client library version as a number (older headers: MYSQL_VERSION_ID).
#define DBPOOL_MYSQL_ORACLE_VERSION_ID MYSQL_VERSION_ID
#endif
#if DBPOOL_MYSQL_ORACLE_VERSION_ID < 80000
#error "dbpool::mysql needs Oracle's libmysqlclient 8.0 or later (or MariaDB Connector/C)"
#endif
#else
/// 0: compiled against MariaDB Connector/C, not Oracle's library.
#define DBPOOL_MYSQL_ORACLE_VERSION_ID 0
#endif

namespace dbpool::mysql::detail {

// The flag type the C API uses for MYSQL_BIND::is_null/error and boolean options: my_bool (a
// char) in Connector/C, bool in Oracle's library since 8.0 (where my_bool no longer exists).
using ClientBool = std::remove_pointer_t<decltype(MYSQL_BIND::is_null)>;

inline constexpr bool mariadb_client = DBPOOL_MYSQL_MARIADB_CLIENT != 0;

// "MariaDB Connector/C 3.3.20" or "libmysqlclient 9.1.0", for messages and docs.
inline std::string client_library() {
#if DBPOOL_MYSQL_MARIADB_CLIENT
    return std::string("MariaDB Connector/C ") + mysql_get_client_info();
#else
    return std::string("libmysqlclient ") + mysql_get_client_info();
#endif
}

// The connection's socket descriptor, or -1: only for closing this process's copy after fork().
// Connector/C has mysql_get_socket() (-1 once the connection is gone); Oracle's library keeps
// the descriptor in MYSQL::net.fd, and after a lost connection its end_server()
// (sql-common/client.cc) deletes the Vio, closing the socket, and sets net.vio to null "as a
// marker", but net_end() leaves net.fd as it was: that number may by now belong to another
// file, which abandon() would close. So net.fd counts only while net.vio is set.
inline int native_socket(MYSQL* mysql) noexcept {
#if DBPOOL_MYSQL_MARIADB_CLIENT
    return static_cast<int>(mysql_get_socket(mysql));
#else
    return mysql->net.vio != nullptr ? static_cast<int>(mysql->net.fd) : -1;
#endif
}

// Binds the parameters of a prepared statement. Oracle deprecated mysql_stmt_bind_param in 8.2
// (its header warns from 8.3) in favour of mysql_stmt_bind_named_param, which takes unnamed
// parameters when `names` is null. The new call exists from 8.2.0 but works reliably only from
// 8.3.0 (MySQL bug #112893; DBD::mysql, Connector/C++ and TinyORM gate it at 80300 for that
// reason), and the old one still works in 8.2 without a warning: so 8.2 keeps the old call.
// Returns true on failure, like the C API.
inline bool bind_parameters(MYSQL_STMT* statement, MYSQL_BIND* binds, unsigned count) {
#if DBPOOL_MYSQL_MARIADB_CLIENT || DBPOOL_MYSQL_ORACLE_VERSION_ID < 80300
    (void)count;
    return mysql_stmt_bind_param(statement, binds) != 0;
#else
    return mysql_stmt_bind_named_param(statement, binds, count, nullptr) != 0;
#endif
}

// Whether the handle has results that nobody read (a statement left half-done, e.g. through
// native_handle()); the next command would fail with 2014 "Commands out of sync".
inline bool has_pending_results(MYSQL* mysql) noexcept {
    return mysql->status != MYSQL_STATUS_READY || mysql_more_results(mysql);
}

}  // namespace dbpool::mysql::detail

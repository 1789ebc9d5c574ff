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
// Connector/C has mysql_get_socket(); Oracle's library keeps the descriptor in MYSQL::net.fd.
inline int native_socket(MYSQL* mysql) noexcept {
#if DBPOOL_MYSQL_MARIADB_CLIENT
    return static_cast<int>(mysql_get_socket(mysql));
#else
    return static_cast<int>(mysql->net.fd);
#endif
}

// Binds the parameters of a prepared statement. Oracle deprecated mysql_stmt_bind_param in 8.2
// (and later removed it) in favour of mysql_stmt_bind_named_param, which takes unnamed
// parameters when `names` is null. Returns true on failure, like the C API.
inline bool bind_parameters(MYSQL_STMT* statement, MYSQL_BIND* binds, unsigned count) {
#if DBPOOL_MYSQL_MARIADB_CLIENT || DBPOOL_MYSQL_ORACLE_VERSION_ID < 80200
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

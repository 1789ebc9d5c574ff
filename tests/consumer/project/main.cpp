// A program a dbpool user could write, built against the installed package.
#include <dbpool/error.hpp>
#include <dbpool/options.hpp>
#include <dbpool/version.hpp>

#if __has_include(<dbpool/dbpool.hpp>)
#include <dbpool/dbpool.hpp>
#endif

#if defined(DBPOOL_CONSUMER_WITH_MYSQL)
#if __has_include(<dbpool/mysql.hpp>)
#include <dbpool/mysql.hpp>
#endif
#include <mysql.h>
#endif

#if defined(DBPOOL_CONSUMER_WITH_PG)
#include <dbpool/pg.hpp>

#include <libpq-fe.h>
#endif

#include <cstdio>
#include <cstring>

int main() {
    // One version everywhere: the package find_package found and the installed headers agree.
    if (std::strcmp(DBPOOL_CONSUMER_PACKAGE_VERSION, DBPOOL_VERSION_STRING) != 0) {
        std::printf("dbpool consumer: package version %s but headers say %s\n",
                    DBPOOL_CONSUMER_PACKAGE_VERSION, DBPOOL_VERSION_STRING);
        return 1;
    }

    const dbpool::Error error(dbpool::ErrorCode::pool_exhausted, "too many connections");
    if (error.code() != dbpool::ErrorCode::pool_exhausted) return 1;

    dbpool::PoolOptions options;
    options.maxconnections = 4;
    std::printf("dbpool consumer: dbpool %s, %s, maxconnections=%d\n", DBPOOL_VERSION_STRING,
                dbpool::to_string(error.code()), options.maxconnections);

#if defined(DBPOOL_CONSUMER_WITH_MYSQL)
    // Links against the client library through dbpool::mysql; connects to nothing.
    std::printf("dbpool consumer: MySQL client %s\n", mysql_get_client_info());
#endif
#if defined(DBPOOL_CONSUMER_WITH_PG)
    // Links against libpq through dbpool::pg; parses a connection string, connects to nothing.
    const auto pg = dbpool::pg::ConnectOptions::from_url("postgresql://app@db.example/shop");
    std::printf("dbpool consumer: libpq %d, %s\n", PQlibVersion(), pg.describe().c_str());
#endif
    return 0;
}

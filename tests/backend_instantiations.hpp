#pragma once

// The pool templates the backends' test programs use, instantiated once per test tree instead of
// once in every test file (as tests/core/instantiations.hpp does for the fake connection): the
// pool family for each backend's Connection and CheckedConnection, its PersistentPool and its
// cluster Router. tests/CMakeLists.txt puts this header in front of every test file that links
// a backend (in its precompiled header, or with -include) with DBPOOL_TEST_MYSQL and/or
// DBPOOL_TEST_PG defined, and links the definitions (backend_instantiations.cpp, one library per
// backend). Measured on tests/mysql/pool_test.cpp under Clang's ASan+UBSan: 7.1 s of CPU
// without, 4.8 s with.
//
// This changes where the code is compiled, not what runs: the tests call the header's
// definitions, and a type not listed here is instantiated in the file that uses it, as in a
// user's program.

#include <dbpool/persistent_pool.hpp>
#include <dbpool/pooled_connection.hpp>
#include <dbpool/pooled_pool.hpp>
#include <dbpool/router.hpp>
#include <dbpool/steady_connection.hpp>

#include <chrono>

#ifdef DBPOOL_TEST_INSTANTIATE
#define DBPOOL_TEST_EXTERN
#else
#define DBPOOL_TEST_EXTERN extern
#endif

// One pool family per connection: the core, the public pool, its handle, the SteadyConnection
// it keeps (the default clock, as the backends' pools use it).
#define DBPOOL_TEST_POOL_FAMILY(Connection)                                                      \
    DBPOOL_TEST_EXTERN template class dbpool::detail::PooledCore<Connection,                     \
                                                                 std::chrono::steady_clock>;     \
    DBPOOL_TEST_EXTERN template class dbpool::PooledPool<Connection, std::chrono::steady_clock>; \
    DBPOOL_TEST_EXTERN template class dbpool::PooledConnection<Connection,                       \
                                                               std::chrono::steady_clock>;       \
    DBPOOL_TEST_EXTERN template class dbpool::SteadyConnection<Connection,                       \
                                                               std::chrono::steady_clock>

#ifdef DBPOOL_TEST_MYSQL
#include <dbpool/mysql.hpp>
#include <dbpool/mysql/cluster.hpp>

DBPOOL_TEST_POOL_FAMILY(dbpool::mysql::Connection);
DBPOOL_TEST_POOL_FAMILY(dbpool::mysql::CheckedConnection);
DBPOOL_TEST_EXTERN template class dbpool::PersistentPool<dbpool::mysql::Connection>;
DBPOOL_TEST_EXTERN template class dbpool::Router<dbpool::mysql::ClusterPool>;
#endif

#ifdef DBPOOL_TEST_PG
#include <dbpool/pg.hpp>
#include <dbpool/pg/cluster.hpp>

DBPOOL_TEST_POOL_FAMILY(dbpool::pg::Connection);
DBPOOL_TEST_POOL_FAMILY(dbpool::pg::CheckedConnection);
DBPOOL_TEST_EXTERN template class dbpool::PersistentPool<dbpool::pg::Connection>;
DBPOOL_TEST_EXTERN template class dbpool::Router<dbpool::pg::ClusterPool>;
#endif

#undef DBPOOL_TEST_POOL_FAMILY
#undef DBPOOL_TEST_EXTERN

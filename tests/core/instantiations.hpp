#pragma once

// The pool templates most core tests use, instantiated once per test tree instead of once in
// every test file. Implicit instantiation of the pool for a fake connection costs about 4 s of a
// sanitizer compile, and some 20 files paid it again in each of three trees; with these explicit
// instantiation declarations a file instantiates only what is not listed here.
// instantiations.cpp (compiled into dbpool_test_main's support library) holds the definitions,
// which also shows that every member of these classes compiles for the fake connection.
//
// This changes where the code is compiled, not what runs: the tests still call the header's
// definitions, and a type not listed here is instantiated in the file that uses it, as in a
// user's program.

#include "fake_connection.hpp"

#include <dbpool/persistent_pool.hpp>
#include <dbpool/pooled_connection.hpp>
#include <dbpool/pooled_pool.hpp>
#include <dbpool/steady_connection.hpp>

#include <chrono>

#ifdef DBPOOL_TEST_INSTANTIATE
#define DBPOOL_TEST_EXTERN
#else
#define DBPOOL_TEST_EXTERN extern
#endif

// One pool family per connection and clock: the core, the public pool, its handle, the
// SteadyConnection it keeps.
#define DBPOOL_TEST_POOL_FAMILY(Connection, Clock)                                   \
    DBPOOL_TEST_EXTERN template class dbpool::detail::PooledCore<Connection, Clock>; \
    DBPOOL_TEST_EXTERN template class dbpool::PooledPool<Connection, Clock>;         \
    DBPOOL_TEST_EXTERN template class dbpool::PooledConnection<Connection, Clock>;   \
    DBPOOL_TEST_EXTERN template class dbpool::SteadyConnection<Connection, Clock>

DBPOOL_TEST_POOL_FAMILY(fake::FakeConnection, std::chrono::steady_clock);
DBPOOL_TEST_POOL_FAMILY(fake::FakeConnection, fake::ManualClock);
DBPOOL_TEST_POOL_FAMILY(fake::SharedFakeConnection, fake::ManualClock);
DBPOOL_TEST_EXTERN template class dbpool::PersistentPool<fake::FakeConnection, fake::ManualClock>;

#undef DBPOOL_TEST_POOL_FAMILY
#undef DBPOOL_TEST_EXTERN

#pragma once

/// \file
/// The PostgreSQL backend of dbpool (namespace dbpool::pg), with the core: DBUtils' Pg family
/// (SteadyPg, PersistentPg, PooledPg) is SteadyConnection, PersistentPool and PooledPool over
/// dbpool::pg::Connection. This is the only part of dbpool that includes <libpq-fe.h>; link
/// libpq (the CMake target dbpool::pg does this).

/// \namespace dbpool::pg
/// The PostgreSQL backend: Connection over libpq, ConnectOptions (a libpq connection string),
/// Connector, ResultSet, and error classification.

#if __has_include(<dbpool/dbpool.hpp>)
#include <dbpool/dbpool.hpp>
#endif

#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/connection.hpp>
#include <dbpool/pg/connector.hpp>
#include <dbpool/pg/errors.hpp>
#include <dbpool/pg/params.hpp>
#include <dbpool/pg/result_set.hpp>
#include <dbpool/pg/session.hpp>
#include <dbpool/pg/sql_scan.hpp>
#include <dbpool/pg/statement_cache.hpp>
#include <dbpool/pg/statements.hpp>
#include <dbpool/pg/transaction_status.hpp>
#include <dbpool/pg/wire.hpp>

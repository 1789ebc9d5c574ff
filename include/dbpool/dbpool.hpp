#pragma once

/// \file
/// The core of dbpool: everything except the database backends (<dbpool/mysql.hpp>,
/// <dbpool/pg.hpp>), which include it.

/// \namespace dbpool
/// dbpool's core: SteadyConnection, PersistentPool and PooledPool over any connection type,
/// their options, handles, errors and statistics. The backends live in dbpool::mysql and
/// dbpool::pg.

#include <dbpool/connection_traits.hpp>
#include <dbpool/error.hpp>
#include <dbpool/options.hpp>
#include <dbpool/persistent_context.hpp>
#include <dbpool/persistent_pool.hpp>
#include <dbpool/pool_events.hpp>
#include <dbpool/pool_stats.hpp>
#include <dbpool/pooled_connection.hpp>
#include <dbpool/pooled_pool.hpp>
#include <dbpool/steady_connection.hpp>
#include <dbpool/transaction.hpp>
#include <dbpool/version.hpp>

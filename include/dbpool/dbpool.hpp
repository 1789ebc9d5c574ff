#pragma once

/// The core of dbpool: everything except database backends (see <dbpool/mysql.hpp>).

#include <dbpool/connection_traits.hpp>
#include <dbpool/error.hpp>
#include <dbpool/options.hpp>
#include <dbpool/persistent_pool.hpp>
#include <dbpool/pool_events.hpp>
#include <dbpool/pool_stats.hpp>
#include <dbpool/pooled_connection.hpp>
#include <dbpool/pooled_pool.hpp>
#include <dbpool/steady_connection.hpp>
#include <dbpool/transaction.hpp>
#include <dbpool/version.hpp>

#pragma once

/// \file
/// The MySQL/MariaDB backend of dbpool (namespace dbpool::mysql), with the core.
/// This is the only part of dbpool that includes <mysql.h>; link MySQLClient::MySQLClient
/// (the CMake target dbpool::mysql does this). Builds against MariaDB Connector/C and Oracle's
/// libmysqlclient 8.0 or later.

/// \namespace dbpool::mysql
/// The MySQL/MariaDB backend: Connection (over MariaDB Connector/C or Oracle's libmysqlclient),
/// ConnectOptions and the `mysql://` URL, Connector, ResultSet, and error classification.

#if __has_include(<dbpool/dbpool.hpp>)
#include <dbpool/dbpool.hpp>
#endif

#include <dbpool/mysql/binding.hpp>
#include <dbpool/mysql/client.hpp>
#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/connection.hpp>
#include <dbpool/mysql/connector.hpp>
#include <dbpool/mysql/errors.hpp>
#include <dbpool/mysql/library.hpp>
#include <dbpool/mysql/result_set.hpp>
#include <dbpool/mysql/server_info.hpp>
#include <dbpool/mysql/session.hpp>
#include <dbpool/mysql/statement_cache.hpp>
#include <dbpool/mysql/statements.hpp>
#include <dbpool/mysql/url.hpp>

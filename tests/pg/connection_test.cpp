// dbpool::pg::Connection against the throwaway server (scripts/postgres.sh).
#include <dbpool/pg.hpp>

#include <catch2/catch.hpp>

#include "test_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::pg::Blob;
using dbpool::pg::ClientError;
using dbpool::pg::Connection;
using dbpool::pg::ConnectOptions;
using dbpool::pg::TransactionStatus;
using dbpool_pg_test::test_server;

namespace {

using Clock = std::chrono::steady_clock;

// Connects with `options`; returns the connect_failed error and how long it took.
std::pair<Error, double> connect_error(const ConnectOptions& options) {
    const auto start = Clock::now();
    try {
        Connection connection(options);
    } catch (const Error& error) {
        return {error, std::chrono::duration<double>(Clock::now() - start).count()};
    }
    FAIL("connecting succeeded unexpectedly");
    return {Error(ErrorCode::database, ""), 0.0};
}

// A loopback TCP socket: listening (accepts through the kernel backlog, never answers) or not.
struct Listener {
    int fd = -1;
    std::uint16_t port = 0;
    explicit Listener(bool listening) {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port = ntohs(address.sin_port);
        if (listening) REQUIRE(::listen(fd, 8) == 0);
    }
    ~Listener() { ::close(fd); }
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
};

ConnectOptions with_port(ConnectOptions options, std::uint16_t port) {
    options.conninfo = "host=127.0.0.1 port=" + std::to_string(port) +
                       " user=" + test_server().user + " dbname=" + test_server().database +
                       " sslmode=disable";
    return options;
}

int prepared_on_server(Connection& connection) {
    return connection.query("SELECT count(*) FROM pg_prepared_statements").scalar<int>();
}

}  // namespace

TEST_CASE("connects over TCP, the unix socket, a URL and keywords", "[pg]") {
    Connection tcp(test_server().tcp());
    CHECK(tcp.is_open());
    CHECK(tcp.ping());
    CHECK(tcp.server_version().find('.') != std::string::npos);
    CHECK(tcp.backend_pid() == tcp.query("SELECT pg_backend_pid()").scalar<int>());
    CHECK(tcp.query("SELECT current_database()").scalar<std::string>() == test_server().database);
    CHECK(tcp.query("SHOW client_encoding").scalar<std::string>() == "UTF8");
    CHECK(tcp.query("SHOW application_name").scalar<std::string>() == "dbpool");
    CHECK_FALSE(tcp.ssl_in_use());
    CHECK(PQisnonblocking(tcp.native_handle()) == 1);

    Connection socket(test_server().unix_socket());
    CHECK(socket.query("SELECT 1").scalar<int>() == 1);

    Connection from_url(test_server().url);
    CHECK(from_url.ping());
    ConnectOptions keywords = test_server().tcp();
    keywords.conninfo += " application_name=shop options='-c search_path=pg_catalog'";
    Connection named(keywords);
    CHECK(named.query("SHOW application_name").scalar<std::string>() == "shop");
    CHECK(named.query("SHOW search_path").scalar<std::string>() == "pg_catalog");

    Connection moved = std::move(tcp);
    CHECK(moved.ping());
    CHECK_FALSE(tcp.is_open());  // NOLINT(bugprone-use-after-move): checking the moved-from state
    CHECK(tcp.backend_pid() == 0);
    moved.close();
    CHECK_FALSE(moved.ping());
    try {
        moved.query("SELECT 1");
        FAIL("query on a closed connection succeeded");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::connection_lost);
        CHECK(error.native_code() == dbpool::pg::native(ClientError::not_sent));
        CHECK(Connection::classify_failure(error) == Failure::broken_not_sent);
    }
}

TEST_CASE("init statements run after connecting", "[pg]") {
    ConnectOptions options = test_server().tcp();
    options.init_statements = {"SET search_path = pg_catalog, public",
                               "SET statement_timeout = '7s'"};
    Connection connection(options);
    CHECK(connection.query("SHOW statement_timeout").scalar<std::string>() == "7s");

    options.init_statements = {"SELECT * FROM no_such_table_here"};
    const auto [error, seconds] = connect_error(options);
    CHECK(error.code() == ErrorCode::connect_failed);
    CHECK(error.sqlstate() == "42P01");
    CHECK_THAT(error.what(), Catch::Contains("init statement"));
    (void)seconds;
}

TEST_CASE("connect failures are typed, fast and never show the password", "[pg]") {
    const ConnectOptions good = test_server().tcp();
    const std::string real_password = good.password;
    const std::string wrong_password = "not-the-password-Xq7";
    const auto no_password = [&](const Error& error) {
        const std::string what = error.what();
        return what.find(real_password) == std::string::npos &&
               what.find(wrong_password) == std::string::npos;
    };

    SECTION("wrong password, as an option and inside a URL") {
        ConnectOptions options = good;
        options.password = wrong_password;
        auto [error, seconds] = connect_error(options);
        INFO(error.what());
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK(error.sqlstate() == "28P01");
        CHECK_THAT(error.what(), Catch::Contains("password authentication failed"));
        CHECK(no_password(error));
        CHECK(seconds < 3.5);

        options =
            ConnectOptions::from_url("postgresql://" + test_server().user + ":" + wrong_password +
                                     "@127.0.0.1:" + std::to_string(test_server().port) + "/" +
                                     test_server().database + "?sslmode=disable");
        std::tie(error, seconds) = connect_error(options);
        CHECK(error.sqlstate() == "28P01");
        CHECK(no_password(error));
    }
    SECTION("unknown user and unknown database") {
        ConnectOptions options = good;
        options.conninfo += " user=nobody_here";
        auto [error, seconds] = connect_error(options);
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK(error.sqlstate() == "28P01");
        CHECK(no_password(error));
        options = good;
        options.conninfo += " dbname=no_such_db";
        std::tie(error, seconds) = connect_error(options);
        CHECK(error.sqlstate() == "3D000");
        CHECK_THAT(error.what(), Catch::Contains("no_such_db"));
        CHECK(no_password(error));
        CHECK(seconds < 3.5);
    }
    SECTION("closed loopback port") {
        Listener closed(false);  // bound, not listening: connections are refused
        const auto [error, seconds] = connect_error(with_port(good, closed.port));
        INFO(error.what());
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK_THAT(error.what(), Catch::Contains("refused"));
        CHECK(no_password(error));
        CHECK(seconds < 1.0);
    }
    SECTION("a listener that accepts and never answers: bounded by connect_timeout") {
        Listener silent(true);
        ConnectOptions options = with_port(good, silent.port);
        options.connect_timeout = std::chrono::milliseconds(800);
        const auto [error, seconds] = connect_error(options);
        INFO(error.what());
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK_THAT(error.what(), Catch::Contains("timed out after 800 ms"));
        CHECK(no_password(error));
        CHECK(seconds >= 0.75);
        CHECK(seconds < 2.0);
    }
    SECTION("connect_timeout in the connection string wins") {
        Listener silent(true);
        ConnectOptions options = with_port(good, silent.port);
        options.conninfo += " connect_timeout=1";
        options.connect_timeout = std::chrono::seconds(30);
        const auto [error, seconds] = connect_error(options);
        CHECK_THAT(error.what(), Catch::Contains("timed out after 1000 ms"));
        CHECK(seconds < 2.5);
    }
    SECTION("missing unix socket") {
        ConnectOptions options = good;
        options.conninfo = "host=/tmp/dbpool-no-such-dir port=5432 user=x";
        const auto [error, seconds] = connect_error(options);
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK_THAT(error.what(), Catch::Contains("/tmp/dbpool-no-such-dir"));
        (void)seconds;
    }
    SECTION("a NUL in the password is refused before connecting") {
        ConnectOptions options = good;
        options.password = std::string("pw\0", 3) + wrong_password;
        try {
            Connection connection(options);
            FAIL("connected");
        } catch (const Error& error) {
            CHECK(error.code() == ErrorCode::invalid_options);
            CHECK(no_password(error));
        }
    }
}

TEST_CASE("binds and reads back every supported type, NULLs as std::optional", "[pg]") {
    Connection connection(test_server().tcp());
    connection.execute(
        "CREATE TEMP TABLE t_types (id serial PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, "
        "f4 real, f8 double precision, num numeric(12,3), b boolean, s text, vc varchar(200000), "
        "bin bytea, ts timestamptz, day date, js jsonb, u uuid, n integer)");
    const std::string long_text(100000, 'x');
    Blob blob;
    for (int i = 0; i < 300000; ++i)
        blob.push_back(static_cast<std::byte>(i % 256));
    const std::string_view view = "2024-03-01";

    const auto inserted = connection.execute(
        "INSERT INTO t_types (i2, i4, i8, f4, f8, num, b, s, vc, bin, ts, day, js, u, n) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        std::int16_t{-32768}, std::int32_t{-2147483647 - 1},
        std::numeric_limits<std::int64_t>::min(), 1.5F, 0.1, "12.345", true,
        std::string("héllo ✓ 'quoted'"), long_text, blob, "2024-02-29 13:14:15+00", view,
        R"({"k": [1, 2]})", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", std::nullopt);
    CHECK(inserted.affected_rows == 1);
    CHECK(inserted.command_tag == "INSERT 0 1");
    const auto second = connection.query(
        "INSERT INTO t_types (i4, s, n, f8, i8) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        std::optional<int>(5), std::optional<std::string>(), std::optional<int>(),
        std::optional<double>(std::numeric_limits<double>::infinity()),
        std::numeric_limits<std::int64_t>::max());
    CHECK(second.scalar<int>() == 2);

    // Read through both protocols: extended (arguments) and simple (none).
    for (const bool extended : {true, false}) {
        INFO((extended ? "extended" : "simple"));
        const auto rows =
            extended ? connection.query("SELECT * FROM t_types WHERE id >= $1 ORDER BY id", 1)
                     : connection.query("SELECT * FROM t_types ORDER BY id");
        REQUIRE(rows.size() == 2);
        const auto row = rows[0];
        CHECK(row.get<std::int16_t>("i2") == -32768);
        CHECK(row.get<std::int32_t>("i4") == -2147483647 - 1);
        CHECK(row.get<std::int64_t>("i8") == std::numeric_limits<std::int64_t>::min());
        CHECK(row.get<float>("f4") == 1.5F);
        CHECK(row.get<double>("f8") == 0.1);
        CHECK(row.get<std::string>("num") == "12.345");
        CHECK(row.get<double>("num") == Approx(12.345));
        CHECK(row.get<bool>("b"));
        CHECK(row.get<std::string>("s") == "héllo ✓ 'quoted'");
        CHECK(row.get<std::string_view>("s") == "héllo ✓ 'quoted'");
        CHECK(row.get<std::string>("vc") == long_text);
        CHECK(row.get<Blob>("bin") == blob);
        CHECK(row.get<std::string>("ts") == "2024-02-29 13:14:15+00");
        CHECK(row.get<std::string>("day") == "2024-03-01");
        CHECK(row.get<std::string>("js") == R"({"k": [1, 2]})");
        CHECK(row.get<std::string>("u") == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        CHECK(row.is_null(rows.column_index("n")));
        CHECK_FALSE(row.get<std::optional<int>>("n").has_value());
        CHECK_THROWS_WITH(row.get<int>("n"), Catch::Contains("NULL"));
        CHECK_THROWS_WITH(row.get<std::int8_t>("i2"), Catch::Contains("range"));
        CHECK(rows.column_type(rows.column_index("i8")) == dbpool::pg::oid::int8);
        CHECK(rows.column_type(rows.column_index("bin")) == dbpool::pg::oid::bytea);

        const auto other = rows[1];
        CHECK(other.get<int>("i4") == 5);
        CHECK(other.is_null(rows.column_index("s")));
        CHECK(other.get<double>("f8") == std::numeric_limits<double>::infinity());
        CHECK(other.get<std::int64_t>("i8") == std::numeric_limits<std::int64_t>::max());
    }
    CHECK(connection.query("SELECT $1::date", view).scalar<std::string>() == "2024-03-01");
    CHECK(connection.query("SELECT $1", 'c').scalar<std::string>() == "c");
    CHECK(connection.query("SELECT $1 + 1", 41L).scalar<long>() == 42);
    CHECK(connection.query("SELECT $1 + $2", 40, 2).scalar<int>() == 42);  // typed: no cast
    CHECK(connection.query("SELECT $1::int IS NULL", nullptr).scalar<bool>());
    CHECK(std::isnan(connection.query("SELECT $1::float8", std::nan("")).scalar<double>()));
    CHECK(connection.query("SELECT $1", std::string("tab\there")).scalar<std::string>() ==
          "tab\there");
    // A row keeps its result alive after the ResultSet is gone; so does an rvalue row.
    const dbpool::pg::Row kept = connection.query("SELECT 'kept'::text AS v")[0];
    CHECK(kept.get<std::string_view>("v") == "kept");
    CHECK(connection.query("SELECT 7 AS v")[0].get<int>("v") == 7);
    // A view from a named result is fine (from a temporary it does not compile, see
    // tests/pg/dangling_row.cpp).
    const auto named = connection.query("SELECT 'abc'::text");
    CHECK(named.scalar<std::string_view>() == "abc");
    for (const auto& row : connection.query("SELECT generate_series(1, 3) AS v")) {
        CHECK(row.get<int>(0) >= 1);
    }
}

TEST_CASE("affected rows, command tags and statement errors", "[pg]") {
    Connection connection(test_server().tcp());
    connection.execute("CREATE TEMP TABLE t_rows (id int PRIMARY KEY, v int)");
    CHECK(connection.execute("INSERT INTO t_rows VALUES (1, 1), (2, 2), (3, 3)").affected_rows ==
          3);
    CHECK(connection.execute("UPDATE t_rows SET v = v + 10 WHERE v > $1", 1).affected_rows == 2);
    CHECK(connection.execute("DELETE FROM t_rows WHERE id = $1", 99).affected_rows == 0);
    CHECK(connection.query("SELECT * FROM t_rows").affected_rows() == 3);
    CHECK(connection.execute("DELETE FROM t_rows").command_tag == "DELETE 3");
    // Several statements in one simple query: the last result is returned.
    CHECK(connection.query("SELECT 1; SELECT 2 AS two").scalar<int>() == 2);

    try {
        connection.execute("INSERT INTO t_rows VALUES ($1, $2)", 1, 1);
        connection.execute("INSERT INTO t_rows VALUES ($1, $2)", 1, 1);
        FAIL("duplicate key accepted");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::database);
        CHECK(error.sqlstate() == "23505");
        CHECK(error.native_code() == 0);
        CHECK_THAT(error.what(), Catch::Contains("already exists"));
        CHECK(Connection::classify_failure(error) == Failure::none);
    }
    CHECK_THROWS_WITH(connection.query("SELEKT 1"), Catch::Contains("42601"));
    CHECK_THROWS_WITH(connection.query("SELECT 1; SELEKT 2; SELECT 3"), Catch::Contains("42601"));
    // Fewer arguments than placeholders: refused before sending (the server would answer the
    // bind with an ERROR-level 08P01, which must not be mistaken for a lost connection).
    try {
        connection.query("SELECT $1::int + $2::int", 1);
        FAIL("bind with a missing argument accepted");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.code() == ErrorCode::usage);
        CHECK(Connection::classify_failure(error) == Failure::none);
    }
    CHECK_THROWS_WITH(connection.query(std::string("SELECT 1\0", 9)), Catch::Contains("NUL"));
    // A server-side statement_timeout cancels the statement, not the session.
    connection.execute("SET statement_timeout = 100");
    try {
        connection.query("SELECT pg_sleep(2)");
        FAIL("statement_timeout did not fire");
    } catch (const Error& error) {
        CHECK(error.sqlstate() == "57014");
        CHECK(Connection::classify_failure(error) == Failure::none);
    }
    connection.execute("SET statement_timeout = 0");
    CHECK(connection.query("SELECT 2").scalar<int>() == 2);  // still usable
    CHECK(connection.transaction_status() == TransactionStatus::idle);
}

TEST_CASE("prepared statements are cached per connection and per argument types", "[pg]") {
    Connection connection(test_server().tcp());
    for (int i = 0; i < 20; ++i) {
        CHECK(connection.query("SELECT $1 * 2", i).scalar<int>() == i * 2);
    }
    CHECK(connection.cached_statements() == 1);
    CHECK(prepared_on_server(connection) == 1);
    // Another argument type is another statement (int8 instead of int4).
    CHECK(connection.query("SELECT $1 * 2", std::int64_t{5}).scalar<std::int64_t>() == 10);
    CHECK(connection.cached_statements() == 2);

    SECTION("the least recently used is evicted and deallocated on the server") {
        ConnectOptions options = test_server().tcp();
        options.statement_cache_size = 4;
        Connection small(options);
        for (int i = 0; i < 10; ++i)
            small.query("SELECT $1 + " + std::to_string(i), 1);
        CHECK(small.cached_statements() == 4);
        CHECK(prepared_on_server(small) == 4);
    }
    SECTION("statement_cache_size 0 prepares nothing") {
        ConnectOptions options = test_server().tcp();
        options.statement_cache_size = 0;
        Connection uncached(options);
        CHECK(uncached.query("SELECT $1 + $2", 1, 2).scalar<int>() == 3);
        CHECK(uncached.cached_statements() == 0);
        CHECK(prepared_on_server(uncached) == 0);
    }
    SECTION("a DISCARD ALL or DEALLOCATE ALL sent by hand empties the cache") {
        connection.execute("DEALLOCATE ALL");
        CHECK(connection.cached_statements() == 0);
        connection.begin();  // prepared afresh, also inside a transaction: no 26000
        CHECK(connection.query("SELECT $1 * 2", 21).scalar<int>() == 42);
        connection.commit();
        CHECK(connection.cached_statements() == 1);
        connection.execute("SELECT 1; DEALLOCATE ALL; SELECT 2");  // one of several statements
        CHECK(connection.cached_statements() == 0);
        CHECK(connection.query("SELECT $1 * 2", 3).scalar<int>() == 6);
        connection.execute("DISCARD ALL");
        CHECK(connection.cached_statements() == 0);
        connection.begin();
        CHECK(connection.query("SELECT $1 * 2", 2).scalar<int>() == 4);
        connection.commit();
        CHECK_FALSE(connection.transaction_pooling_detected());
    }
    SECTION("a cached statement gone otherwise is a pooler's sign: unnamed statements on") {
        // A DEALLOCATE of dbpool's own name stands in for a pooler in transaction mode running
        // the statement on another server connection (tests/pg/cluster_test.cpp, [pgbouncer]).
        const auto drop_cached = [&connection] {
            const std::string name =
                connection.query("SELECT name FROM pg_prepared_statements LIMIT 1")
                    .scalar<std::string>();
            connection.execute("DEALLOCATE " + connection.quote_identifier(name));
        };
        SECTION("outside a transaction it runs again, unnamed") {
            drop_cached();
            drop_cached();
            CHECK(connection.query("SELECT $1 * 2", 21).scalar<int>() == 42);
            CHECK(connection.transaction_pooling_detected());
            CHECK(connection.cached_statements() == 0);
            CHECK(connection.query("SELECT $1 * 3", 2).scalar<int>() == 6);
            CHECK(prepared_on_server(connection) == 0);  // nothing prepared any more
        }
        SECTION("inside a transaction: transaction_conflict, and the retry works") {
            drop_cached();
            drop_cached();
            connection.begin();
            try {
                connection.query("SELECT $1 * 2", 1);
                FAIL("a missing statement ran");
            } catch (const Error& error) {
                CHECK(error.code() == ErrorCode::transaction_conflict);
                CHECK(error.sqlstate() == "26000");
                CHECK(Connection::classify_failure(error) == Failure::none);
                CHECK_THAT(error.what(), Catch::Contains("pool_mode = transaction") &&
                                             Catch::Contains("run it again") &&
                                             Catch::Contains("statement_cache_size"));
            }
            CHECK(connection.transaction_status() == TransactionStatus::failed);
            CHECK(connection.transaction_pooling_detected());
            connection.rollback();
            connection.begin();
            CHECK(connection.query("SELECT $1 * 2", 2).scalar<int>() == 4);
            connection.commit();
            CHECK(connection.cached_statements() == 0);
        }
        SECTION("evicting a lost statement inside a transaction: transaction_conflict") {
            // The eviction's DEALLOCATE runs inside the caller's transaction; the server's 26000
            // there fails the transaction, so swallowing it (as outside) left the caller with
            // 25P02 "current transaction is aborted" and no word of a pooler.
            ConnectOptions options = test_server().tcp();
            options.statement_cache_size = 1;
            Connection small(options);
            CHECK(small.query("SELECT $1 + 1", 1).scalar<int>() == 2);
            const std::string name =
                small.query("SELECT name FROM pg_prepared_statements").scalar<std::string>();
            small.execute("DEALLOCATE " + small.quote_identifier(name));
            small.begin();
            try {
                small.query("SELECT $1 + 2", 1);  // evicts the lost one
                FAIL("ran in a failed transaction");
            } catch (const Error& error) {
                CHECK(error.code() == ErrorCode::transaction_conflict);
                CHECK(error.sqlstate() == "26000");
                CHECK_THAT(error.what(), Catch::Contains(name));
            }
            CHECK(small.transaction_pooling_detected());
            small.rollback();
            CHECK(small.query("SELECT $1 + 2", 1).scalar<int>() == 3);
            // Outside a transaction the same finding costs nothing.
            Connection other(options);
            CHECK(other.query("SELECT $1 + 1", 1).scalar<int>() == 2);
            other.execute(
                "DEALLOCATE " +
                other.quote_identifier(
                    other.query("SELECT name FROM pg_prepared_statements").scalar<std::string>()));
            CHECK(other.query("SELECT $1 + 2", 1).scalar<int>() == 3);
            CHECK(other.transaction_pooling_detected());
        }
        SECTION("the caller's own EXECUTE of a missing statement is only the server's error") {
            try {
                connection.query("EXECUTE no_such_statement($1)", 1);
                FAIL("ran");
            } catch (const Error& error) {
                CHECK(error.code() == ErrorCode::database);
                CHECK(error.sqlstate() == "26000");
            }
            CHECK_FALSE(connection.transaction_pooling_detected());
            CHECK(connection.cached_statements() == 3);
        }
    }
    SECTION("prepare() checks the SQL on the server without caching it") {
        connection.prepare("SELECT $1::int");
        CHECK_THROWS_WITH(connection.prepare("SELECT * FROM no_such_table"),
                          Catch::Contains("42P01"));
        CHECK(connection.cached_statements() == 2);
    }
}

TEST_CASE("escape, quote_literal and quote_identifier", "[pg]") {
    Connection connection(test_server().tcp());
    const std::string nasty = "it's a \"test\"\\ with\nnewline ✓";
    CHECK(connection.query("SELECT '" + connection.escape(nasty) + "'").scalar<std::string>() ==
          nasty);
    CHECK(connection.query("SELECT " + connection.quote_literal(nasty)).scalar<std::string>() ==
          nasty);
    const std::string table = "we\"ird table";
    connection.execute("CREATE TEMP TABLE " + connection.quote_identifier(table) + " (v int)");
    connection.execute("INSERT INTO " + connection.quote_identifier(table) + " VALUES (1)");
    CHECK(connection.query("SELECT count(*) FROM " + connection.quote_identifier(table))
              .scalar<int>() == 1);
    CHECK_THROWS_WITH(connection.escape(std::string("a\0b", 3)), Catch::Contains("NUL"));
}

TEST_CASE("in_transaction is exact: idle, open, failed", "[pg]") {
    Connection connection(test_server().tcp());
    connection.execute("CREATE TEMP TABLE t_tx (v int)");
    CHECK_FALSE(connection.in_transaction());
    CHECK(connection.transaction_status() == TransactionStatus::idle);
    connection.begin();
    CHECK(connection.in_transaction());
    CHECK(connection.transaction_status() == TransactionStatus::open);
    connection.execute("INSERT INTO t_tx VALUES ($1)", 1);
    connection.rollback();
    CHECK_FALSE(connection.in_transaction());
    CHECK(connection.query("SELECT count(*) FROM t_tx").scalar<int>() == 0);

    connection.begin();
    connection.execute("INSERT INTO t_tx VALUES (2)");
    connection.commit();
    CHECK_FALSE(connection.in_transaction());
    CHECK(connection.query("SELECT count(*) FROM t_tx").scalar<int>() == 1);

    // A failed statement leaves the transaction in the failed state: still "in a transaction"
    // (it must be rolled back), every statement refused with 25P02, and COMMIT rolls back.
    connection.begin();
    connection.execute("INSERT INTO t_tx VALUES (3)");
    CHECK_THROWS_AS(connection.execute("SELECT 1/0"), Error);
    CHECK(connection.transaction_status() == TransactionStatus::failed);
    CHECK(connection.in_transaction());
    try {
        connection.query("SELECT 1");
        FAIL("a statement ran in a failed transaction");
    } catch (const Error& error) {
        CHECK(error.sqlstate() == "25P02");
        CHECK(Connection::classify_failure(error) == Failure::none);
    }
    CHECK(connection.ping());  // an empty query is accepted in every state
    try {
        connection.commit();
        FAIL("COMMIT of a failed transaction reported success");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::database);
        CHECK(error.sqlstate() == "25P02");
    }
    CHECK(connection.transaction_status() == TransactionStatus::idle);
    CHECK(connection.query("SELECT count(*) FROM t_tx").scalar<int>() == 1);
    connection.rollback();  // nothing open: nothing sent, no warning
}

TEST_CASE("reset_session discards session state and keeps connection settings", "[pg]") {
    ConnectOptions options = test_server().tcp();
    options.conninfo += " application_name=kept options='-c work_mem=8MB'";
    options.init_statements = {"SET search_path = pg_catalog, public"};
    Connection connection(options);
    const int pid = connection.backend_pid();
    connection.execute("SET work_mem = '1MB'");
    connection.execute("SET search_path = public");
    connection.execute("CREATE TEMP TABLE t_reset (v int)");
    connection.query("SELECT $1::int", 1);
    connection.query("SELECT pg_advisory_lock(4242)");
    connection.begin();
    CHECK_THROWS_AS(connection.execute("SELECT 1/0"), Error);
    REQUIRE(connection.transaction_status() == TransactionStatus::failed);

    connection.reset_session();
    CHECK(connection.backend_pid() == pid);  // same session, no reconnect
    CHECK(connection.transaction_status() == TransactionStatus::idle);
    CHECK(connection.cached_statements() == 0);
    CHECK(prepared_on_server(connection) == 0);
    CHECK(connection.query("SHOW work_mem").scalar<std::string>() == "8MB");
    CHECK(connection.query("SHOW application_name").scalar<std::string>() == "kept");
    CHECK(connection.query("SHOW search_path").scalar<std::string>() == "pg_catalog, public");
    CHECK(connection
              .query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                     "pid = pg_backend_pid()")
              .scalar<int>() == 0);
    CHECK_THROWS_WITH(connection.query("SELECT * FROM t_reset"), Catch::Contains("42P01"));
    CHECK(connection.query("SELECT $1::int", 5).scalar<int>() == 5);  // prepared again
}

TEST_CASE("a terminated idle session fails before sending: safe to retry", "[pg]") {
    Connection victim(test_server().tcp());
    Connection admin(test_server().admin());
    victim.query("SELECT $1::int", 1);
    REQUIRE(dbpool_pg_test::terminate_and_wait(admin, victim.backend_pid()));
    try {
        victim.query("SELECT $1::int", 2);
        FAIL("query on a terminated session succeeded");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.code() == ErrorCode::connection_lost);
        CHECK(error.native_code() == dbpool::pg::native(ClientError::not_sent));
        CHECK(error.sqlstate() == "57P01");
        CHECK_THAT(error.what(), Catch::Contains("administrator command"));
        CHECK(Connection::classify_failure(error) == Failure::broken_not_sent);
    }
    CHECK_FALSE(victim.is_open());
    CHECK_FALSE(victim.ping());
}

TEST_CASE("a session terminated while a statement runs: it may have run", "[pg]") {
    Connection victim(test_server().tcp());
    Connection admin(test_server().admin());
    const int pid = victim.backend_pid();
    std::atomic<bool> done{false};
    std::thread killer([&] {
        // Wait until the victim is inside pg_sleep, then end it.
        dbpool_pg_test::eventually(
            [&] {
                return admin
                           .query(
                               "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND "
                               "wait_event = 'PgSleep'",
                               pid)
                           .scalar<int>() == 1;
            },
            std::chrono::seconds(10));
        admin.query("SELECT pg_terminate_backend($1)", pid);
        done = true;
    });
    try {
        victim.query("SELECT pg_sleep(10)");
        FAIL("the sleep survived pg_terminate_backend");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.code() == ErrorCode::connection_lost);
        CHECK(error.native_code() == dbpool::pg::native(ClientError::lost));
        CHECK(error.sqlstate() == "57P01");
        CHECK(Connection::classify_failure(error) == Failure::broken);
    }
    killer.join();
    CHECK(done.load());
    CHECK_FALSE(victim.ping());
}

TEST_CASE("read_timeout bounds a statement and closes the connection", "[pg]") {
    ConnectOptions options = test_server().tcp();
    options.read_timeout = std::chrono::milliseconds(500);
    Connection connection(options);
    const auto start = Clock::now();
    try {
        connection.query("SELECT pg_sleep(5)");
        FAIL("read_timeout did not fire");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.code() == ErrorCode::connection_lost);
        CHECK(error.native_code() == dbpool::pg::native(ClientError::timed_out));
        CHECK(Connection::classify_failure(error) == Failure::broken);
        CHECK_THAT(error.what(), Catch::Contains("500 ms"));
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    CHECK(seconds >= 0.45);
    CHECK(seconds < 2.0);
    CHECK_FALSE(connection.is_open());
}

TEST_CASE("notices reach on_notice and never stderr", "[pg]") {
    ConnectOptions options = test_server().tcp();
    std::vector<dbpool::pg::Notice> seen;
    options.on_notice = [&seen](const dbpool::pg::Notice& notice) { seen.push_back(notice); };
    Connection connection(options);
    connection.execute("DO $$BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END$$");
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].severity == "NOTICE");
    CHECK(seen[0].message == "hello 42");
    CHECK(seen[0].sqlstate == "00000");
    CHECK(seen[1].severity == "WARNING");
    CHECK(seen[1].sqlstate == "01000");
    // A throwing callback must not unwind through libpq.
    options.on_notice = [](const dbpool::pg::Notice&) { throw std::runtime_error("no"); };
    Connection throwing(options);
    throwing.execute("DO $$BEGIN RAISE NOTICE 'x'; END$$");
    CHECK(throwing.ping());
}

// Issue 20, defect 4: COPY FROM STDIN was sent, ended with an error by dbpool, and came back as
// `database` 57014 with the enclosing transaction failed.
TEST_CASE("COPY is refused before sending: usage, and a transaction stays usable", "[pg]") {
    Connection connection(test_server().tcp());
    connection.execute("CREATE TEMP TABLE t_copy (v int)");
    const auto usage = [&](const std::string& sql) {
        try {
            connection.execute(sql);
            FAIL("COPY accepted: " << sql);
        } catch (const Error& error) {
            INFO(error.what());
            CHECK(error.code() == ErrorCode::usage);
            CHECK_THAT(error.what(), Catch::Contains("not supported"));
            CHECK(Connection::classify_failure(error) == Failure::none);
        }
    };
    usage("COPY (SELECT generate_series(1, 1000)) TO STDOUT");
    CHECK(connection.query("SELECT 1").scalar<int>() == 1);
    usage("COPY t_copy FROM STDIN");
    CHECK(connection.transaction_status() == TransactionStatus::idle);

    connection.begin();
    connection.execute("INSERT INTO t_copy VALUES (1)");
    usage("copy t_copy (v) from stdin with (format csv)");
    usage("INSERT INTO t_copy VALUES (2); COPY t_copy FROM STDIN");  // nothing of it runs
    usage("COPY t_copy TO STDOUT");
    CHECK(connection.transaction_status() == TransactionStatus::open);  // not failed
    connection.execute("INSERT INTO t_copy VALUES (3)");
    connection.commit();
    CHECK(connection.query("SELECT string_agg(v::text, ',' ORDER BY v) FROM t_copy")
              .scalar<std::string>() == "1,3");
    // COPY to a server-side file from a query reading a table named stdin is not the client's:
    // it is sent, and the server refuses it (this user may not write server files).
    connection.execute("CREATE TEMP TABLE stdin (v int)");
    try {
        connection.execute("COPY (SELECT v FROM stdin) TO '/dev/null'");
        FAIL("a non-superuser wrote a server file");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::database);
        CHECK(error.sqlstate() == "42501");
    }
}

// Issue 20, defect 3: extra arguments were bound as parameters nothing used.
TEST_CASE("a wrong number of arguments is usage, and nothing is sent", "[pg]") {
    Connection connection(test_server().tcp());
    connection.execute("CREATE TEMP TABLE t_args (v int)");
    const auto usage = [&](auto&& run) {
        try {
            run();
            FAIL("a wrong argument count was accepted");
        } catch (const Error& error) {
            INFO(error.what());
            CHECK(error.code() == ErrorCode::usage);
            CHECK_THAT(error.what(), Catch::Contains("nothing was sent"));
        }
    };
    connection.begin();
    usage([&] { (void)connection.query("SELECT 7", 5); });
    usage([&] { (void)connection.query("SELECT $1::int", 1, 2); });
    usage([&] { (void)connection.query("SELECT $1::int + $2::int", 1); });
    usage([&] { (void)connection.execute("INSERT INTO t_args VALUES (1)", 5); });
    usage([&] { (void)connection.execute("INSERT INTO t_args VALUES ($1) -- $2", 1, 2); });
    // Nothing reached the server: the transaction is not failed and nothing was inserted.
    CHECK(connection.transaction_status() == TransactionStatus::open);
    CHECK(connection.query("SELECT count(*) FROM t_args").scalar<int>() == 0);
    connection.commit();
    // Placeholders in literals, quoted names, comments and dollar quotes do not count.
    CHECK(connection.query("SELECT '$2' || $1::text /* $3 */", "x").scalar<std::string>() == "$2x");
    CHECK(connection.query("SELECT $q$ $9 $q$ || $1::text", "y").scalar<std::string>() == " $9 y");
    CHECK(connection.query("SELECT $2::int - $1::int", 1, 10).scalar<int>() == 9);
}

// Issue 20, defect 2: now() + milliseconds::max() overflowed, so every statement timed out at once
// (and every connect with a huge connect_timeout).
TEST_CASE("a huge timeout means no limit", "[pg]") {
    using std::chrono::milliseconds;
    for (const milliseconds huge : {milliseconds::max(), std::chrono::duration_cast<milliseconds>(
                                                             std::chrono::hours(24 * 365 * 400))}) {
        ConnectOptions options = test_server().tcp();
        options.connect_timeout = huge;
        options.read_timeout = huge;
        options.write_timeout = huge;
        Connection connection(options);
        CHECK(connection.query("SELECT pg_sleep(0.05)").size() == 1);
        CHECK(connection.query("SELECT $1::int + 1", 41).scalar<int>() == 42);
        CHECK(connection.ping());
        CHECK(connection.is_open());
    }
}

// Issue 20, defect 1: libpq cuts a URL password with an unencoded '@' or '/' into a host or a
// database name, which its messages then show.
TEST_CASE("a misplaced URL password never shows in a connect error", "[pg]") {
    const std::string port = std::to_string(test_server().port);
    const auto check = [](const Error& error, std::initializer_list<const char*> pieces) {
        const std::string what = error.what();
        INFO(what);
        CHECK(error.code() == ErrorCode::connect_failed);
        for (const char* piece : pieces) {
            CHECK(what.find(piece) == std::string::npos);
        }
    };
    // libpq: password "Qv4", host "Kb2Rb@host" (reached at hostaddr 127.0.0.1): 28P01.
    auto [error, seconds] = connect_error(ConnectOptions::from_url(
        "postgresql://" + test_server().user + ":Qv4@Kb2Rb@host:" + port + "/" +
        test_server().database + "?hostaddr=127.0.0.1&sslmode=disable&connect_timeout=3"));
    check(error, {"Qv4", "Kb2", "b2R", "2Rb"});
    CHECK(error.sqlstate() == "28P01");
    (void)seconds;
    // libpq: host USER, port PORT, database "Kc3RcXz@127.0.0.1/db": unknown database (3D000),
    // whose message quotes the name.
    std::tie(error, seconds) = connect_error(ConnectOptions::from_url(
        "postgresql://" + test_server().user + ":" + port +
        "/Kc3RcXz@127.0.0.1/db?hostaddr=127.0.0.1&sslmode=disable&connect_timeout=3"));
    check(error, {"Kc3", "c3R", "3Rc", "RcX", "cXz"});
    // A user whose password is the user name: the user name reads "<user>" (neither shown,
    // which shows the password, nor masked as the password, which tells it).
    ConnectOptions same = test_server().tcp();
    same.conninfo = "host=127.0.0.1 port=" + port +
                    " user=nobody_same dbname=" + test_server().database + " sslmode=disable";
    same.password = "nobody_same";
    std::tie(error, seconds) = connect_error(same);
    INFO(error.what());
    CHECK(error.sqlstate() == "28P01");
    CHECK_THAT(error.what(), Catch::Contains("<user>@127.0.0.1"));
    CHECK_THAT(error.what(), Catch::Contains("user \"<user>\""));
    CHECK(std::string(error.what()).find("nobody_same") == std::string::npos);
    CHECK(std::string(error.what()).find("***") == std::string::npos);
}

TEST_CASE("connector opens a new connection per call", "[pg]") {
    auto connect = dbpool::pg::connector(test_server().tcp());
    Connection first = connect();
    Connection second = connect();
    CHECK(first.backend_pid() != second.backend_pid());
    auto from_url = dbpool::pg::connector(test_server().url);
    CHECK(from_url().ping());
    ConnectOptions bad = test_server().tcp();
    bad.read_timeout = std::chrono::milliseconds(-5);
    CHECK_THROWS_AS(dbpool::pg::connector(bad), Error);
}

namespace {

// Forks; the child drops its copy of `connection` with `drop` and exits. Returns the child's
// exit status (0 = it ran), or -1.
template <class Drop>
int in_child(Connection& connection, Drop drop) {
    const pid_t child = ::fork();
    if (child < 0) return -1;
    if (child == 0) {
        drop(connection);
        ::_exit(0);  // no destructors, no leak check, no atexit handlers
    }
    int status = 0;
    if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE("abandon in a forked child leaves the parent's session working", "[pg]") {
    for (const char* sslmode : {"disable", "require"}) {
        INFO(sslmode);
        ConnectOptions options = test_server().tcp();
        options.conninfo = test_server().conninfo("127.0.0.1", sslmode);
        Connection connection(options);
        connection.query("SELECT $1::int", 1);  // a prepared statement the child must not touch
        const int pid = connection.backend_pid();
        REQUIRE(in_child(connection, [](Connection& c) {
                    c.abandon();
                    if (c.is_open()) ::_exit(1);
                }) == 0);
        // No Terminate, no TLS close_notify went out: the session and its statement still work.
        CHECK(connection.ping());
        CHECK(connection.backend_pid() == pid);
        CHECK(connection.query("SELECT $1::int", 2).scalar<int>() == 2);
        CHECK(connection.query("SELECT pg_backend_pid()").scalar<int>() == pid);
    }
    // The control: a child that closes the connection the ordinary way ends the parent's session,
    // so the check above can fail.
    Connection connection(test_server().tcp());
    REQUIRE(in_child(connection, [](Connection& c) { c.close(); }) == 0);
    CHECK_FALSE(connection.ping());
}

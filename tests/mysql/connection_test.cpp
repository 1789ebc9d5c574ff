// dbpool::mysql::Connection against the throwaway server (scripts/mariadb.sh).
#include <dbpool/mysql.hpp>

#include <catch2/catch.hpp>

#include "test_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::mysql::Blob;
using dbpool::mysql::Connection;
using dbpool::mysql::ConnectOptions;
using dbpool::mysql::ResultSet;
using dbpool_test::test_server;

namespace {

// Connects with `options` and returns the connect_failed error and how long it took.
std::pair<Error, double> connect_error(const ConnectOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    try {
        Connection connection(options);
    } catch (const Error& error) {
        return {error,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
    }
    FAIL("connecting succeeded unexpectedly");
    return {Error(ErrorCode::database, ""), 0.0};
}

// A loopback TCP socket in the listening state; `accept_queue` 0 keeps the port closed.
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

}  // namespace

TEST_CASE("connects over TCP, the unix socket and a URL", "[mysql]") {
    Connection tcp(test_server().tcp());
    CHECK(tcp.is_open());
    CHECK(tcp.ping());
    CHECK(tcp.server_version().find("MariaDB") != std::string::npos);
    CHECK(tcp.connection_id() == tcp.query("SELECT CONNECTION_ID()").scalar<std::uint64_t>());
    CHECK(tcp.query("SELECT DATABASE()").scalar<std::string>() == test_server().database);
    CHECK(tcp.query("SELECT @@character_set_client").scalar<std::string>() == "utf8mb4");
    CHECK(tcp.server().flavor == dbpool::mysql::ServerFlavor::mariadb);
    CHECK(tcp.server().version >= 100000);
#if DBPOOL_MYSQL_MARIADB_CLIENT
    // MYSQL_OPT_RECONNECT must be off: dbpool reconnects itself. (Oracle's library 9.0 no longer
    // has the option, and warns whenever 8.0.34+ is given it, so dbpool never sets it.)
    dbpool::mysql::detail::ClientBool reconnect = 1;
    REQUIRE(mysql_get_option(tcp.native_handle(), MYSQL_OPT_RECONNECT, &reconnect) == 0);
    CHECK(reconnect == 0);
#endif

    Connection socket(test_server().unix_socket());
    CHECK(socket.query("SELECT 1").scalar<int>() == 1);

    Connection from_url(ConnectOptions::from_url(test_server().url));
    CHECK(from_url.ping());

    Connection moved = std::move(tcp);
    CHECK(moved.ping());
    CHECK_FALSE(tcp.is_open());  // NOLINT(bugprone-use-after-move): checking the moved-from state
    moved.close();
    CHECK_FALSE(moved.ping());
    CHECK_THROWS_AS(moved.query("SELECT 1"), Error);
}

TEST_CASE("connect failures are typed, fast and never show the password", "[mysql]") {
    const ConnectOptions good = test_server().tcp();
    const std::string password = good.password;

    SECTION("wrong password") {
        ConnectOptions options = good;
        options.password = "not-the-password-xyz";
        const auto [error, seconds] = connect_error(options);
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK(error.native_code() == 1045);
        CHECK(error.sqlstate() == "28000");
        CHECK(std::string(error.what()).find("not-the-password-xyz") == std::string::npos);
        CHECK_THAT(error.what(), Catch::Contains("[1045/28000]"));
        CHECK(seconds < 3.5);
    }
    SECTION("unknown database") {
        ConnectOptions options = good;
        options.database = "no_such_db";
        const auto [error, seconds] = connect_error(options);
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK(error.native_code() == 1044);  // access denied to a database it may not see
        CHECK_THAT(error.what(), Catch::Contains("no_such_db"));
        CHECK(std::string(error.what()).find(password) == std::string::npos);
        CHECK(seconds < 3.5);
    }
    SECTION("closed loopback port") {
        Listener closed(false);  // bound, not listening: connections are refused
        ConnectOptions options = good;
        options.port = closed.port;
        const auto [error, seconds] = connect_error(options);
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK((error.native_code() == 2002 || error.native_code() == 2003));
        CHECK(dbpool::mysql::is_connection_error(error.native_code()));
        CHECK(std::string(error.what()).find(password) == std::string::npos);
        CHECK_FALSE(error.sqlstate().empty());
        CHECK_THAT(error.what(), Catch::Contains("connection refused"));
        CHECK(seconds < 3.5);
    }
    SECTION("a listener that accepts and never answers") {
        Listener silent(true);
        ConnectOptions options = good;
        options.port = silent.port;
        options.connect_timeout = std::chrono::seconds(1);
        const auto [error, seconds] = connect_error(options);
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK(error.native_code() == 2013);
        CHECK(std::string(error.what()).find(password) == std::string::npos);
        CHECK(seconds >= 0.9);
        CHECK(seconds < 2.5);
    }
    SECTION("missing unix socket") {
        ConnectOptions options = test_server().unix_socket();
        options.unix_socket = "/tmp/dbpool-no-such.sock";
        const auto [error, seconds] = connect_error(options);
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK(error.native_code() == 2002);
        CHECK_THAT(error.what(), Catch::Contains("/tmp/dbpool-no-such.sock") &&
                                     Catch::Contains("no such file or directory"));
        (void)seconds;
    }
    SECTION("localhost without a socket path says which socket and why") {
        ConnectOptions options = good;
        options.host = "localhost";
        const auto [error, seconds] = connect_error(options);
        // Whatever the machine's default socket does, the message says the socket was used.
        CHECK_THAT(error.what(),
                   Catch::Contains("through the unix socket") && Catch::Contains("use 127.0.0.1"));
        CHECK(std::string(error.what()).find(password) == std::string::npos);
        (void)seconds;
    }
    SECTION("a password that the server echoes is masked") {
        ConnectOptions options = good;
        options.user = "no-such-user-Sekr1t";
        options.password = "Sekr1t";
        const auto [error, seconds] = connect_error(options);
        CHECK(error.native_code() == 1045);
        CHECK(std::string(error.what()).find("Sekr1t") == std::string::npos);
        (void)seconds;
    }
}

TEST_CASE("a URL with localhost and a port connects over TCP", "[mysql]") {
    // The C API would use the unix socket for "localhost" and ignore the port (there is no
    // server behind the default socket here, so that used to fail with 2002).
    const auto& server = test_server();
    Connection connection(ConnectOptions::from_url(
        "mysql://" + server.user + ":" + server.password + "@localhost:" +
        std::to_string(server.port) + "/" + server.database + "?connect_timeout=3"));
    CHECK_THAT(mysql_get_host_info(connection.native_handle()), Catch::Contains("TCP"));
    CHECK(connection.query("SELECT 1").scalar<int>() == 1);
}

TEST_CASE("binds and reads back every supported type", "[mysql]") {
    Connection connection(test_server().tcp());
    connection.execute(
        "CREATE TEMPORARY TABLE t_types (id INT AUTO_INCREMENT PRIMARY KEY, i8 TINYINT, "
        "u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED, i32 INT, u32 INT UNSIGNED, "
        "i64 BIGINT, u64 BIGINT UNSIGNED, b BOOLEAN, f FLOAT, d DOUBLE, s VARCHAR(400), "
        "t TEXT, bin BLOB, dt DATETIME, day DATE, dec1 DECIMAL(10,3), n INT) "
        "DEFAULT CHARSET = utf8mb4");
    const std::string long_text(5000, 'x');
    Blob blob;
    for (int i = 0; i < 300; ++i)
        blob.push_back(static_cast<std::byte>(i % 256));
    const std::string_view view = "2024-03-01";

    const auto inserted = connection.execute(
        "INSERT INTO t_types (i8, u8, i16, u16, i32, u32, i64, u64, b, f, d, s, t, bin, dt, day, "
        "dec1, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        std::int8_t{-128}, std::uint8_t{255}, std::int16_t{-32768}, std::uint16_t{65535},
        std::int32_t{-2147483647 - 1}, std::uint32_t{4294967295U},
        std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::uint64_t>::max(), true,
        1.5F, 0.1, std::string("héllo ✓"), long_text, blob, "2024-02-29 13:14:15", view, "12.345",
        std::nullopt);
    CHECK(inserted.affected_rows == 1);
    CHECK(inserted.last_insert_id == 1);
    const auto second = connection.execute("INSERT INTO t_types (i32, s, n, d) VALUES (?, ?, ?, ?)",
                                           std::optional<int>(5), std::optional<std::string>(),
                                           std::optional<int>(), std::optional<double>(2.25));
    CHECK(second.last_insert_id == 2);

    // Read through both protocols: prepared (binary) and text.
    for (const bool prepared : {true, false}) {
        INFO((prepared ? "prepared" : "text"));
        const auto rows =
            prepared ? connection.query("SELECT * FROM t_types WHERE id >= ? ORDER BY id", 1)
                     : connection.query("SELECT * FROM t_types ORDER BY id");
        REQUIRE(rows.size() == 2);
        const auto row = rows[0];
        CHECK(row.get<std::int8_t>("i8") == -128);
        CHECK(row.get<std::uint8_t>("u8") == 255);
        CHECK(row.get<std::int16_t>("i16") == -32768);
        CHECK(row.get<std::uint16_t>("u16") == 65535);
        CHECK(row.get<std::int32_t>("i32") == -2147483647 - 1);
        CHECK(row.get<std::uint32_t>("u32") == 4294967295U);
        CHECK(row.get<std::int64_t>("i64") == std::numeric_limits<std::int64_t>::min());
        CHECK(row.get<std::uint64_t>("u64") == std::numeric_limits<std::uint64_t>::max());
        CHECK(row.get<bool>("b"));
        CHECK(row.get<float>("f") == 1.5F);
        CHECK(row.get<double>("d") == 0.1);
        CHECK(row.get<std::string>("s") == "héllo ✓");
        CHECK(row.get<std::string>("t") == long_text);
        CHECK(row.get<Blob>("bin") == blob);
        CHECK(row.get<std::string>("dt") == "2024-02-29 13:14:15");
        CHECK(row.get<std::string>("day") == "2024-03-01");
        CHECK(row.get<std::string>("dec1") == "12.345");
        CHECK(row.get<double>("dec1") == Approx(12.345));
        CHECK(row.is_null(rows.column_index("n")));
        CHECK_FALSE(row.get<std::optional<int>>("n").has_value());
        CHECK_THROWS_WITH(row.get<int>("n"), Catch::Contains("NULL"));

        const auto other = rows[1];
        CHECK(other.get<int>("i32") == 5);
        CHECK(other.is_null(rows.column_index("s")));
        CHECK(other.get<std::optional<double>>("d") == std::optional<double>(2.25));
    }
    CHECK(connection.query("SELECT ? AS v", view).scalar<std::string>() == "2024-03-01");
    CHECK(connection.query("SELECT ?", 'c').scalar<std::string>() == "c");
    CHECK(connection.query("SELECT ? + 1", 41L).scalar<long>() == 42);
    CHECK(connection.query("SELECT ?", nullptr).row(0).is_null(0));
}

TEST_CASE("affected rows, last insert id and statement errors", "[mysql]") {
    Connection connection(test_server().tcp());
    connection.execute("CREATE TEMPORARY TABLE t_rows (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
    CHECK(connection.execute("INSERT INTO t_rows (v) VALUES (1), (2), (3)").affected_rows == 3);
    CHECK(connection.execute("INSERT INTO t_rows (v) VALUES (4)").last_insert_id == 4);
    CHECK(connection.execute("UPDATE t_rows SET v = v + 10 WHERE v > ?", 1).affected_rows == 3);
    CHECK(connection.execute("DELETE FROM t_rows WHERE id = ?", 99).affected_rows == 0);
    CHECK(connection.execute("DELETE FROM t_rows").affected_rows == 4);
    CHECK(connection.query("UPDATE t_rows SET v = 1").affected_rows() == 0);

    try {
        connection.execute("INSERT INTO t_rows (id, v) VALUES (?, ?)", 1, 1);
        connection.execute("INSERT INTO t_rows (id, v) VALUES (?, ?)", 1, 1);
        FAIL("duplicate key accepted");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::database);
        CHECK(error.native_code() == 1062);
        CHECK(error.sqlstate() == "23000");
        CHECK(Connection::classify_failure(error) == Failure::none);
    }
    CHECK_THROWS_WITH(connection.query("SELEKT 1"), Catch::Contains("1064"));
    CHECK_THROWS_WITH(connection.query("SELECT ? + ?", 1),
                      Catch::Contains("has 2 placeholders but 1 argument was given"));
    CHECK_THROWS_WITH(connection.query("SELECT ?", 1, 2),
                      Catch::Contains("has 1 placeholder but 2 arguments were given"));
    CHECK(connection.query("SELECT 2").scalar<int>() == 2);  // still usable
}

TEST_CASE("prepared statements are cached per connection", "[mysql]") {
    Connection connection(test_server().tcp());
    const auto prepared_count = [&] {
        return connection.query("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'").row(0).get<int>(1);
    };
    const int before = prepared_count();
    for (int i = 0; i < 20; ++i) {
        CHECK(connection.query("SELECT ? * 2", i).scalar<int>() == i * 2);
    }
    CHECK(prepared_count() - before == 1);
    CHECK(connection.cached_statements() == 1);
    for (int i = 0; i < 70; ++i)
        connection.query("SELECT ? + " + std::to_string(i), 1);
    CHECK(connection.cached_statements() == 64);
}

TEST_CASE("a cached statement is bound once and its values rewritten in place", "[mysql]") {
    // Oracle's client allocates from the statement's memory on every bind call in 8.4
    // (binding.hpp, ParamBinding): a cached statement must not be bound on every execution.
    namespace detail = dbpool::mysql::detail;
    detail::Session session(test_server().tcp());
    session.connect();
    detail::Statements statements;
    using Keep = detail::Keep;
    const auto scalar = [](const detail::Results& results) {
        REQUIRE(results.sets.size() == 1);
        return results.sets[0].row(0);
    };

    // Fixed-size values: one bind for 200 executions.
    for (int i = 0; i < 200; ++i) {
        const auto row = scalar(statements.run_prepared(session, "SELECT ? * 2, ? + 0.5",
                                                        Keep::first, i, static_cast<double>(i)));
        CHECK(row.get<int>(0) == i * 2);
        CHECK(row.get<double>(1) == i + 0.5);
    }
    CHECK(statements.parameter_binds() == 1);

    // Text that grows, shrinks and turns NULL and back: a text's buffer moves only when the
    // copy outgrows its capacity, so the binds stay few (one, plus one per growth).
    const std::size_t before = statements.parameter_binds();
    for (std::size_t i = 0; i < 300; ++i) {
        const std::size_t size = (i * 37) % 2000;
        const std::optional<std::string> text =
            i % 5 == 0 ? std::nullopt : std::optional<std::string>(std::string(size, 'a' + i % 26));
        const auto row = scalar(statements.run_prepared(
            session, "SELECT ?, LENGTH(?), ?", Keep::first, text, text, static_cast<int>(i)));
        if (text) {
            CHECK(row.get<std::string>(0) == *text);
            CHECK(row.get<std::size_t>(1) == size);
        } else {
            CHECK(row.is_null(0));
            CHECK(row.is_null(1));
        }
        CHECK(row.get<std::size_t>(2) == i);
    }
    CHECK(statements.parameter_binds() - before <= 2 * 12);

    // Other argument types for the same SQL: bound again, and the values are right.
    const std::size_t typed = statements.parameter_binds();
    CHECK(scalar(statements.run_prepared(session, "SELECT ? * 2, ? + 0.5", Keep::first,
                                         std::int64_t{1} << 40, 1.0F))
              .get<std::int64_t>(0) == std::int64_t{1} << 41);
    CHECK(statements.parameter_binds() == typed + 1);
    CHECK(scalar(statements.run_prepared(session, "SELECT ? * 2, ? + 0.5", Keep::first, 7, 1.0))
              .get<int>(0) == 14);
    CHECK(statements.parameter_binds() == typed + 2);
    const char* none = nullptr;
    CHECK(scalar(statements.run_prepared(session, "SELECT ?, LENGTH(?), ?", Keep::first, none,
                                         "abc", 1))
              .is_null(0));
}

TEST_CASE("escape quotes special characters", "[mysql]") {
    Connection connection(test_server().tcp());
    const std::string nasty = "it's a \"test\"\\ with\nnewline and \0 nul";
    const std::string text(nasty.data(), nasty.size());
    const std::string escaped = connection.escape(text);
    CHECK(escaped.find("\\'") != std::string::npos);
    CHECK(connection.query("SELECT '" + escaped + "'").scalar<std::string>() == text);
}

TEST_CASE("in_transaction follows the server status", "[mysql]") {
    Connection connection(test_server().tcp());
    connection.execute("CREATE TEMPORARY TABLE t_tx (v INT) ENGINE=InnoDB");
    CHECK_FALSE(connection.in_transaction());
    connection.begin();
    CHECK(connection.in_transaction());
    connection.execute("INSERT INTO t_tx VALUES (?)", 1);
    CHECK(connection.in_transaction());
    connection.rollback();
    CHECK_FALSE(connection.in_transaction());
    CHECK(connection.query("SELECT COUNT(*) FROM t_tx").scalar<int>() == 0);

    connection.begin();
    connection.execute("INSERT INTO t_tx VALUES (2)");
    connection.commit();
    CHECK_FALSE(connection.in_transaction());
    CHECK(connection.query("SELECT COUNT(*) FROM t_tx").scalar<int>() == 1);

    // An implicit transaction (autocommit off) is seen too, without begin().
    connection.execute("SET autocommit = 0");
    connection.execute("INSERT INTO t_tx VALUES (3)");
    CHECK(connection.in_transaction());
    connection.rollback();
    CHECK_FALSE(connection.in_transaction());
}

TEST_CASE("reset_session clears variables, temp tables and statements", "[mysql]") {
    Connection connection(test_server().tcp());
    const auto id = connection.connection_id();
    connection.execute("SET @user_var = 7");
    connection.execute("CREATE TEMPORARY TABLE t_reset (v INT)");
    connection.query("SELECT ?", 1);
    connection.begin();
    REQUIRE(connection.cached_statements() == 1);

    connection.reset_session();
    CHECK(connection.connection_id() == id);  // same connection, no reconnect
    CHECK_FALSE(connection.in_transaction());
    CHECK(connection.cached_statements() == 0);
    CHECK(connection.query("SELECT @user_var").row(0).is_null(0));
    CHECK(connection.query("SELECT @@character_set_client").scalar<std::string>() == "utf8mb4");
    CHECK_THROWS_WITH(connection.query("SELECT * FROM t_reset"), Catch::Contains("1146"));
    CHECK(connection.query("SELECT ?", 5).scalar<int>() == 5);  // re-prepared
}

TEST_CASE("a killed connection reports a broken-connection error", "[mysql]") {
    Connection victim(test_server().tcp());
    Connection admin(test_server().tcp());
    victim.query("SELECT ?", 1);
    admin.execute("KILL " + std::to_string(victim.connection_id()));
    REQUIRE(dbpool_test::eventually(
        [&] { return !dbpool_test::server_has_connection(admin, victim.connection_id()); }));
    try {
        victim.query("SELECT ?", 2);
        FAIL("query on a killed connection succeeded");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.code() == ErrorCode::connection_lost);
        CHECK(Connection::classify_failure(error) != Failure::none);
    }
    CHECK_FALSE(victim.ping());
    // Once the client knows the socket is gone, nothing is sent: 2006, safe to retry.
    try {
        victim.execute("SELECT 1");
        FAIL("query on a dead connection succeeded");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.native_code() == 2006);
        CHECK(Connection::classify_failure(error) == Failure::broken_not_sent);
    }
}

TEST_CASE("connector opens a new connection per call", "[mysql]") {
    auto connect = dbpool::mysql::connector(test_server().tcp());
    Connection first = connect();
    Connection second = connect();
    CHECK(first.connection_id() != second.connection_id());
    auto from_url = dbpool::mysql::connector(test_server().url);
    CHECK(from_url().ping());
    ConnectOptions bad = test_server().tcp();
    bad.port = 0;
    CHECK_THROWS_AS(dbpool::mysql::connector(bad), Error);
}

TEST_CASE("abandon in a forked child leaves the parent's connection working", "[mysql]") {
    Connection connection(test_server().tcp());
    connection.query("SELECT ?", 1);  // a cached statement the child must not close either
    const auto id = connection.connection_id();
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // What a pool does after fork(): drop the inherited connection without a word to the
        // server. The MYSQL struct is leaked on purpose; _exit skips leak checks and atexit.
        connection.abandon();
        ::_exit(connection.is_open() ? 1 : 0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    // No COM_QUIT and no COM_STMT_CLOSE went out: the session and its statement still work.
    CHECK(connection.ping());
    CHECK(connection.connection_id() == id);
    CHECK(connection.query("SELECT ?", 2).scalar<int>() == 2);
}

namespace {

// A stored procedure in the test database, dropped at the end of the test.
struct Procedure {
    Connection& connection;
    std::string name;
    Procedure(Connection& owner, const std::string& stem, const std::string& signature,
              const std::string& body)
        : connection(owner), name(dbpool_test::unique_table(stem)) {
        connection.execute("DROP PROCEDURE IF EXISTS " + name);
        connection.execute("CREATE PROCEDURE " + name + signature + " " + body);
    }
    ~Procedure() {
        try {
            connection.execute("DROP PROCEDURE IF EXISTS " + name);
        } catch (...) {
            // Cleanup only: a failure here must not hide the test's own result.
        }
    }
    Procedure(const Procedure&) = delete;
    Procedure& operator=(const Procedure&) = delete;
};

}  // namespace

TEST_CASE("a CALL is read to the end over both protocols", "[mysql][call]") {
    // Regression: a prepared CALL left its final status result unread, and the next command on
    // the connection failed with 2014 "Commands out of sync".
    Connection connection(test_server().tcp());
    Procedure procedure(connection, "p_two_sets", "(IN a INT)",
                        "BEGIN SELECT a AS first; SELECT a * 2 AS second, 'x' AS tag; END");

    CHECK(connection.query("CALL " + procedure.name + "(?)", 7).scalar<int>() == 7);
    CHECK(connection.query("SELECT 1").scalar<int>() == 1);
    CHECK(connection.execute("CALL " + procedure.name + "(?)", 8).affected_rows == 0);
    CHECK(connection.query("SELECT ?", 2).scalar<int>() == 2);
    CHECK(connection.query("CALL " + procedure.name + "(9)").scalar<int>() == 9);
    CHECK(connection.query("SELECT 3").scalar<int>() == 3);
    connection.execute("CALL " + procedure.name + "(10)");
    CHECK(connection.query("SELECT 4").scalar<int>() == 4);
}

TEST_CASE("query_all returns every result set of a CALL", "[mysql][call]") {
    Connection connection(test_server().tcp());
    Procedure procedure(connection, "p_sets", "(IN a INT)",
                        "BEGIN SELECT a AS first; SELECT a * 2 AS second, 'x' AS tag "
                        "UNION ALL SELECT a * 3, 'y'; END");
    for (const bool prepared : {true, false}) {
        INFO((prepared ? "prepared" : "text"));
        const auto sets = prepared ? connection.query_all("CALL " + procedure.name + "(?)", 5)
                                   : connection.query_all("CALL " + procedure.name + "(5)");
        REQUIRE(sets.size() == 2);
        CHECK(sets[0].columns() == std::vector<std::string>{"first"});
        CHECK(sets[0].scalar<int>() == 5);
        REQUIRE(sets[1].size() == 2);
        CHECK(sets[1][0].get<int>("second") == 10);
        CHECK(sets[1][1].get<std::string>("tag") == "y");
        CHECK(connection.query("SELECT 1").scalar<int>() == 1);
    }
    // OUT parameters of a prepared CALL arrive as one more result set.
    Procedure out(connection, "p_out", "(IN a INT, OUT b INT)",
                  "BEGIN SELECT a AS first; SET b = a * 3; END");
    const auto sets = connection.query_all("CALL " + out.name + "(?, ?)", 4, std::nullopt);
    REQUIRE(sets.size() == 2);
    CHECK(sets[0].scalar<int>() == 4);
    CHECK(sets[1].scalar<int>() == 12);
    CHECK(connection.query("SELECT 2").scalar<int>() == 2);
    // A statement without result sets: none, and query() reports no rows.
    CHECK(connection.query_all("DO 1").empty());
    CHECK(connection.query("DO ?", 1).empty());
}

TEST_CASE("an error in a later result of a CALL leaves the connection in sync", "[mysql][call]") {
    Connection connection(test_server().tcp());
    Procedure procedure(connection, "p_fails", "(IN a INT)",
                        "BEGIN SELECT a AS first; SELECT * FROM no_such_table_here; END");
    for (const bool prepared : {true, false}) {
        INFO((prepared ? "prepared" : "text"));
        try {
            if (prepared) {
                connection.query("CALL " + procedure.name + "(?)", 1);
            } else {
                connection.query("CALL " + procedure.name + "(1)");
            }
            FAIL("the CALL did not fail");
        } catch (const Error& error) {
            CHECK(error.native_code() == 1146);
            CHECK(error.code() == ErrorCode::database);
            CHECK_THAT(error.what(), Catch::Contains("CALL " + procedure.name));
        }
        CHECK(connection.is_open());
        CHECK(connection.query("SELECT ?", 5).scalar<int>() == 5);
        CHECK(connection.query("SELECT 6").scalar<int>() == 6);
    }
}

TEST_CASE("results left unread through native_handle never reach the next statement",
          "[mysql][call]") {
    Connection connection(test_server().tcp());
    // A caller that used the raw handle and never read its result...
    REQUIRE(mysql_real_query(connection.native_handle(), "SELECT 41", 9) == 0);
    // ...does not make the next statement fail with 2014.
    CHECK(connection.query("SELECT 42").scalar<int>() == 42);
    REQUIRE(mysql_real_query(connection.native_handle(), "SELECT 43", 9) == 0);
    CHECK(connection.query("SELECT ?", 44).scalar<int>() == 44);
    REQUIRE(mysql_real_query(connection.native_handle(), "SELECT 45", 9) == 0);
    connection.begin();
    connection.commit();
    CHECK(connection.query("SELECT 46").scalar<int>() == 46);
}

TEST_CASE("error 4031 from MariaDB is a statement error, not a lost connection", "[mysql]") {
    // Regression: 4031 (MySQL 8.0.24+'s idle disconnect) was treated as a broken connection on
    // every server; on MariaDB it is ER_REFERENCED_TRG_DOES_NOT_EXIST.
    Connection connection(test_server().tcp());
    const std::string table = dbpool_test::unique_table("t_trg");
    connection.execute("DROP TABLE IF EXISTS " + table);
    connection.execute("CREATE TABLE " + table + " (v INT)");
    try {
        connection.execute("CREATE TRIGGER " + table + "_t BEFORE INSERT ON " + table +
                           " FOR EACH ROW FOLLOWS no_such_trigger SET NEW.v = 1");
        FAIL("the trigger was created");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.native_code() == 4031);
        CHECK(error.code() == ErrorCode::database);
        CHECK(Connection::classify_failure(error) == Failure::none);
    }
    CHECK(connection.ping());
    CHECK(connection.query("SELECT 1").scalar<int>() == 1);
    connection.execute("DROP TABLE " + table);
}

TEST_CASE("statement errors name the statement, never the parameter values", "[mysql]") {
    Connection connection(test_server().tcp());
    try {
        connection.query("SELECT * FROM no_such_accounts WHERE name = ?", "secret-value");
        FAIL("prepare succeeded");
    } catch (const Error& error) {
        CHECK(error.native_code() == 1146);
        CHECK(error.sqlstate() == "42S02");
        CHECK_THAT(error.what(),
                   Catch::Contains("prepare of \"SELECT * FROM no_such_accounts WHERE name = ?\""));
        CHECK(std::string(error.what()).find("secret-value") == std::string::npos);
    }
    try {
        connection.execute("INSERT INTO no_such_accounts VALUES ('literal-secret', 1)");
        FAIL("insert succeeded");
    } catch (const Error& error) {
        CHECK_THAT(error.what(), Catch::Contains("INSERT INTO no_such_accounts VALUES ('...', 1)"));
        CHECK(std::string(error.what()).find("literal-secret") == std::string::npos);
    }
}

TEST_CASE("numbers out of the requested type's range fail the same way over both protocols",
          "[mysql]") {
    Connection connection(test_server().tcp());
    // 1e300 as float: inf over the binary protocol and "not a number" over text, before.
    const ResultSet text = connection.query("SELECT 1e300 AS big");
    const ResultSet binary = connection.query("SELECT ? AS big", 1e300);
    for (const ResultSet* rows : {&text, &binary}) {
        CHECK_THROWS_WITH(rows->row(0).get<float>("big"),
                          Catch::Contains("'big'") && Catch::Contains("out of the range"));
        CHECK(rows->row(0).get<double>("big") == 1e300);
    }
    // A DOUBLE of 2^63 read as int64_t: undefined behaviour before (the range check passed).
    const ResultSet power = connection.query("SELECT POW(2, 63) * ? AS v", 1);
    CHECK_THROWS_WITH(power[0].get<std::int64_t>("v"), Catch::Contains("range"));
    CHECK(power[0].get<std::uint64_t>("v") == (std::uint64_t{1} << 63));
    CHECK_THROWS_WITH(connection.query("SELECT POW(2, 63) AS v")[0].get<std::int64_t>("v"),
                      Catch::Contains("range"));
}

TEST_CASE("a row taken from a temporary result stays valid", "[mysql]") {
    // Regression: this read freed memory (stack-use-after-scope under ASan).
    Connection connection(test_server().tcp());
    auto row = connection.query("SELECT 'ann' AS name, ? AS id", 7)[0];
    CHECK(row.get<std::string>("name") == "ann");
    CHECK(row.get<std::string_view>("name") == "ann");
    CHECK(row.get<int>("id") == 7);
    auto text_row = connection.query("SELECT 'bob' AS name")[0];
    CHECK(text_row.get<std::string>("name") == "bob");
}

TEST_CASE("a deadlock is transaction_conflict and the connection stays usable", "[mysql]") {
    Connection first(test_server().tcp());
    Connection second(test_server().tcp());
    const std::string table = dbpool_test::unique_table("t_deadlock");
    first.execute("DROP TABLE IF EXISTS " + table);
    first.execute("CREATE TABLE " + table + " (id INT PRIMARY KEY, v INT) ENGINE=InnoDB");
    first.execute("INSERT INTO " + table + " VALUES (1, 0), (2, 0)");
    first.execute("SET SESSION innodb_lock_wait_timeout = 10");
    second.execute("SET SESSION innodb_lock_wait_timeout = 10");
    first.begin();
    second.begin();
    first.execute("UPDATE " + table + " SET v = 1 WHERE id = 1");
    second.execute("UPDATE " + table + " SET v = 2 WHERE id = 2");
    const auto first_id = first.connection_id();  // `first` belongs to the thread from here on
    std::optional<Error> blocked_error;
    std::thread blocked([&] {
        Connection::prepare_thread();
        try {
            first.execute("UPDATE " + table + " SET v = 1 WHERE id = 2");  // waits for second
        } catch (const Error& error) {
            blocked_error = error;
        }
    });
    // Joined on every path: a failed REQUIRE below must not leave a joinable thread behind.
    struct Joiner {
        std::thread& thread;
        ~Joiner() {
            if (thread.joinable()) thread.join();
        }
    } joiner{blocked};
    // Let the first connection start waiting, then close the cycle.
    Connection probe(test_server().tcp());
    const bool waiting = dbpool_test::eventually(
        [&] {
            return probe
                       .query(
                           "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE "
                           "trx_state = 'LOCK WAIT' AND trx_mysql_thread_id = ?",
                           first_id)
                       .scalar<int>() > 0;
        },
        std::chrono::seconds(8));
    std::optional<Error> closing_error;
    try {
        second.execute("UPDATE " + table + " SET v = 2 WHERE id = 1");
    } catch (const Error& error) {
        closing_error = error;
    }
    blocked.join();
    INFO("the first connection was seen waiting: " << waiting);
    const std::optional<Error>& deadlock = closing_error ? closing_error : blocked_error;
    REQUIRE(deadlock.has_value());
    CHECK(deadlock->native_code() == 1213);
    CHECK(deadlock->code() == ErrorCode::transaction_conflict);
    CHECK(Connection::classify_failure(*deadlock) == Failure::none);
    first.rollback();
    second.rollback();
    CHECK(first.query("SELECT 1").scalar<int>() == 1);
    CHECK(second.query("SELECT 1").scalar<int>() == 1);
    first.execute("DROP TABLE " + table);
}

TEST_CASE("a packet too big for the server is a broken connection", "[mysql][serial]") {
    // Regression: 1153 (SQLSTATE 08S01) closes the connection on the server's side but was not
    // in the broken-connection list, so the dead connection went back to the pool.
    //
    // The server answers 1153 after reading only the packet header and closes at once with the
    // rest unread, which sends a reset: when the reset reaches the client before it reads the
    // answer, the answer is dropped and the client reports 2006. Both must be broken. Which one
    // comes is a race (30 attempts in a row gave 2006 on a loaded machine), so this test does
    // not require a 1153; its classification is pinned by the unit test "classify_failure
    // follows the error numbers" (result_set_test.cpp).
    Connection root(test_server().root());
    const auto saved = root.query("SELECT @@GLOBAL.max_allowed_packet").scalar<std::uint64_t>();
    const std::string restore = "SET GLOBAL max_allowed_packet = " + std::to_string(saved);
    int seen_1153 = 0;
    for (int attempt = 0; attempt < 30 && seen_1153 == 0; ++attempt) {
        root.execute("SET GLOBAL max_allowed_packet = 16384");
        std::optional<Connection> victim;
        try {
            victim.emplace(test_server().tcp());  // takes the small limit at connect
        } catch (...) {
            root.execute(restore);
            throw;
        }
        root.execute(restore);
        try {
            victim->query("SELECT LENGTH('" + std::string(17000, 'x') + "')");
            FAIL("a packet over max_allowed_packet was accepted");
        } catch (const Error& error) {
            INFO(error.what());
            CHECK(error.code() == ErrorCode::connection_lost);
            CHECK(Connection::classify_failure(error) != Failure::none);
            if (error.native_code() == 1153) {
                ++seen_1153;
                CHECK(error.sqlstate() == "08S01");
                CHECK(Connection::classify_failure(error) == Failure::broken);
            } else {
                CHECK(error.native_code() == 2006);
            }
        }
        CHECK_FALSE(victim->ping());
    }
    if (seen_1153 == 0) WARN("no attempt of 30 saw 1153: the reset came first every time");
}

TEST_CASE("a write on a read-only server is read_only", "[mysql][serial]") {
    Connection root(test_server().root());
    Connection connection(test_server().tcp());
    const std::string table = dbpool_test::unique_table("t_read_only");
    connection.execute("DROP TABLE IF EXISTS " + table);
    connection.execute("CREATE TABLE " + table + " (v INT)");
    root.execute("SET GLOBAL read_only = 1");
    std::optional<Error> refused;
    try {
        connection.execute("INSERT INTO " + table + " VALUES (?)", 1);
    } catch (const Error& error) {
        refused = error;
    }
    root.execute("SET GLOBAL read_only = 0");
    REQUIRE(refused.has_value());
    CHECK(refused->native_code() == 1290);
    CHECK(refused->code() == ErrorCode::read_only);
    CHECK(Connection::classify_failure(*refused) == Failure::none);
    CHECK(connection.query("SELECT 1").scalar<int>() == 1);
    connection.execute("DROP TABLE " + table);
}

TEST_CASE("prepare_thread is cheap once done, and a prepared thread can use a connection",
          "[mysql][concurrency][timing]") {
    Connection::prepare_thread();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 100000; ++i)
        Connection::prepare_thread();  // a thread-local check after the first call
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));

    // What a pool does: a connection opened on one thread, used on another that prepared.
    Connection connection(test_server().tcp());
    int answer = 0;
    std::thread worker([&] {
        Connection::prepare_thread();
        Connection::prepare_thread();
        answer = connection.query("SELECT ?", 42).scalar<int>();
    });
    worker.join();
    CHECK(answer == 42);
    CHECK(connection.query("SELECT 1").scalar<int>() == 1);
}

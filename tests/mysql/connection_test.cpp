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
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::mysql::Blob;
using dbpool::mysql::Connection;
using dbpool::mysql::ConnectOptions;
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
    // MYSQL_OPT_RECONNECT must be off: dbpool reconnects itself.
    my_bool reconnect = 1;
    REQUIRE(mysql_get_option(tcp.native_handle(), MYSQL_OPT_RECONNECT, &reconnect) == 0);
    CHECK(reconnect == 0);

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

TEST_CASE("init statements run after connecting", "[mysql]") {
    ConnectOptions options = test_server().tcp();
    options.init_statements = {"SET @dbpool_init = 42", "SET SESSION sql_mode = 'ANSI_QUOTES'"};
    Connection connection(options);
    CHECK(connection.query("SELECT @dbpool_init").scalar<int>() == 42);
    CHECK(connection.query("SELECT @@sql_mode").scalar<std::string>() == "ANSI_QUOTES");

    options.init_statements = {"SELECT * FROM no_such_table_here"};
    const auto [error, seconds] = connect_error(options);
    CHECK(error.code() == ErrorCode::connect_failed);
    CHECK(error.native_code() == 1146);
    (void)seconds;
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
        (void)seconds;
    }
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
                      Catch::Contains("2 placeholders but 1 arguments"));
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
    ConnectOptions options = test_server().tcp();
    options.init_statements = {"SET @from_init = 'yes'"};
    Connection connection(options);
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
    CHECK(connection.query("SELECT @from_init").scalar<std::string>() == "yes");
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

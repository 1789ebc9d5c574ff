// dbpool's pools over the PostgreSQL backend, against the throwaway server: DBUtils' Pg family
// (SteadyPg, PersistentPg, PooledPg) checked on a real server rather than a mock.
#include <dbpool/pg.hpp>

#include <catch2/catch.hpp>

#include "test_server.hpp"

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::PersistentPool;
using dbpool::Ping;
using dbpool::PooledPool;
using dbpool::PoolOptions;
using dbpool::Reset;
using dbpool::pg::Connection;
using dbpool_pg_test::backend_alive;
using dbpool_pg_test::eventually;
using dbpool_pg_test::terminate_and_wait;
using dbpool_pg_test::test_server;
using namespace std::chrono_literals;

namespace {

using Pool = PooledPool<Connection>;

// A pool of one connection that is always reused, pinged on every hand-out.
PoolOptions one_connection() {
    PoolOptions options;
    options.mincached = 1;
    options.maxcached = 1;
    options.maxconnections = 1;
    options.blocking = true;
    options.acquire_timeout = 5s;
    options.ping = Ping::on_request;
    options.ping_bypass = 0ms;
    return options;
}

int pid_of(dbpool::SteadyConnection<Connection>& steady) {
    return steady.query("SELECT pg_backend_pid()").scalar<int>();
}

// A real table shared by the connections of this process (made by the superuser, usable by the
// test user), dropped at the end of the test.
struct Table {
    Connection& admin;
    std::string name;
    Table(Connection& admin_connection, const std::string& stem)
        : admin(admin_connection), name(dbpool_pg_test::unique_table(stem)) {
        admin.execute("DROP TABLE IF EXISTS " + name);
        admin.execute("CREATE TABLE " + name + " (id int PRIMARY KEY, v int)");
        admin.execute("GRANT ALL ON " + name + " TO " + test_server().user);
    }
    ~Table() {
        try {
            admin.execute("DROP TABLE IF EXISTS " + name);
        } catch (...) {
            // Cleanup only: a failure here must not hide the test's own result.
        }
    }
    int count() { return admin.query("SELECT count(*) FROM " + name).scalar<int>(); }
};

}  // namespace

TEST_CASE("PooledPool replaces a connection terminated while idle", "[pg][pool]") {
    Connection admin(test_server().admin());
    Pool pool(dbpool::pg::connector(test_server().tcp()), one_connection());
    int first = 0;
    {
        auto handle = pool.connection();
        first = pid_of(*handle);
    }
    REQUIRE(terminate_and_wait(admin, first));
    auto handle = pool.connection();  // the on-request ping finds it dead: a new one
    CHECK(pid_of(*handle) != first);
    CHECK(handle->query("SELECT $1 + 1", 1).scalar<int>() == 2);
}

TEST_CASE("without pings, a statement on a terminated idle connection runs once, elsewhere",
          "[pg][pool]") {
    Connection admin(test_server().admin());
    Table table(admin, "t_retry");
    PoolOptions options = one_connection();
    options.ping = Ping::never;
    Pool pool(dbpool::pg::connector(test_server().tcp()), options);
    int first = 0;
    {
        auto handle = pool.connection();
        first = pid_of(*handle);
    }
    REQUIRE(terminate_and_wait(admin, first));
    // The server had closed the session before the INSERT was sent (not_sent): certainly not
    // run, so it is sent again on a new connection, and the caller sees success.
    {
        auto handle = pool.connection();
        CHECK(
            handle->execute("INSERT INTO " + table.name + " VALUES ($1, $2)", 1, 1).affected_rows ==
            1);
    }
    CHECK(table.count() == 1);
    auto handle = pool.connection();
    CHECK(pid_of(*handle) != first);
}

TEST_CASE("a statement cut off by pg_terminate_backend is raised, never run twice", "[pg][pool]") {
    Connection admin(test_server().admin());
    const std::string sequence = dbpool_pg_test::unique_table("s_once");
    admin.execute("DROP SEQUENCE IF EXISTS " + sequence);
    admin.execute("CREATE SEQUENCE " + sequence);
    admin.execute("GRANT ALL ON SEQUENCE " + sequence + " TO " + test_server().user);
    PoolOptions options = one_connection();
    options.ping = Ping::never;
    Pool pool(dbpool::pg::connector(test_server().tcp()), options);
    int pid = 0;
    {
        auto handle = pool.connection();
        pid = pid_of(*handle);
    }
    std::thread killer([&] {
        eventually(
            [&] {
                return admin
                           .query(
                               "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND "
                               "wait_event = 'PgSleep'",
                               pid)
                           .scalar<int>() == 1;
            },
            10s);
        admin.query("SELECT pg_terminate_backend($1)", pid);
    });
    try {
        auto handle = pool.connection();
        // nextval is not transactional: a second run would show in the sequence.
        handle->query("SELECT nextval('" + sequence + "'), pg_sleep(10)");
        FAIL("the statement survived pg_terminate_backend");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.code() == ErrorCode::connection_lost);
        CHECK(error.sqlstate() == "57P01");
    }
    killer.join();
    CHECK(admin.query("SELECT last_value FROM " + sequence).scalar<int>() == 1);
    auto handle = pool.connection();
    CHECK(pid_of(*handle) != pid);
    admin.execute("DROP SEQUENCE " + sequence);
}

TEST_CASE("maxusage reopens the connection after N statements", "[pg][pool]") {
    PoolOptions options = one_connection();
    options.maxusage = 3;
    Pool pool(dbpool::pg::connector(test_server().tcp()), options);
    auto handle = pool.connection();
    const int first = pid_of(*handle);
    CHECK(pid_of(*handle) == first);
    CHECK(pid_of(*handle) == first);
    const int second = pid_of(*handle);  // the fourth statement runs on a new one
    CHECK(second != first);
    CHECK(pid_of(*handle) == second);
}

TEST_CASE("setsession survives a reconnect", "[pg][pool]") {
    Connection admin(test_server().admin());
    PoolOptions options = one_connection();
    options.setsession = {"SET application_name = 'orders'", "SET TIME ZONE 'UTC'"};
    Pool pool(dbpool::pg::connector(test_server().tcp()), options);
    int first = 0;
    {
        auto handle = pool.connection();
        CHECK(handle->query("SHOW application_name").scalar<std::string>() == "orders");
        first = pid_of(*handle);
    }
    REQUIRE(terminate_and_wait(admin, first));
    auto handle = pool.connection();
    CHECK(pid_of(*handle) != first);
    CHECK(handle->query("SHOW application_name").scalar<std::string>() == "orders");
    CHECK(handle->query("SHOW TimeZone").scalar<std::string>() == "UTC");
}

TEST_CASE("a connection returned in a failed transaction is rolled back before reuse",
          "[pg][pool]") {
    Connection admin(test_server().admin());
    Table table(admin, "t_failed");
    Pool pool(dbpool::pg::connector(test_server().tcp()), one_connection());
    int first = 0;
    {
        auto handle = pool.connection();
        first = pid_of(*handle);
        handle->begin();
        handle->execute("INSERT INTO " + table.name + " VALUES ($1, $2)", 1, 1);
        CHECK_THROWS_AS(handle->execute("SELECT 1/0"), Error);
        CHECK(handle->raw().transaction_status() == dbpool::pg::TransactionStatus::failed);
    }
    {
        // A transaction opened with plain SQL (no begin()) is seen through the server too.
        auto handle = pool.connection();
        CHECK(pid_of(*handle) == first);
        CHECK_FALSE(handle->in_transaction());
        handle->execute("BEGIN");
        handle->execute("INSERT INTO " + table.name + " VALUES ($1, $2)", 2, 2);
        CHECK(handle->in_transaction());
    }
    CHECK(table.count() == 0);
    auto handle = pool.connection();
    CHECK(pid_of(*handle) == first);
    CHECK_FALSE(handle->in_transaction());
}

TEST_CASE("Reset::none closes a connection returned inside a transaction", "[pg][pool]") {
    PoolOptions options = one_connection();
    options.reset = Reset::none;
    Pool pool(dbpool::pg::connector(test_server().tcp()), options);
    int first = 0;
    {
        auto handle = pool.connection();
        first = pid_of(*handle);
        handle->execute("BEGIN");
    }
    auto handle = pool.connection();
    CHECK(pid_of(*handle) != first);
    CHECK_FALSE(handle->in_transaction());
}

TEST_CASE("Reset::full clears session state with DISCARD ALL", "[pg][pool]") {
    PoolOptions options = one_connection();
    options.reset = Reset::full;
    options.setsession = {"SET application_name = 'from_setsession'"};
    Pool pool(dbpool::pg::connector(test_server().tcp()), options);
    int first = 0;
    {
        auto handle = pool.connection();
        first = pid_of(*handle);
        handle->execute("SET application_name = 'leaked'");
        handle->execute("SET search_path = leaked_schema");
        handle->execute("CREATE TEMP TABLE t_leak (v int)");
        handle->query("SELECT $1::int", 1);  // a cached prepared statement, gone after the reset
    }
    auto handle = pool.connection();
    CHECK(pid_of(*handle) == first);  // same server session, no reconnect
    CHECK(handle->query("SHOW application_name").scalar<std::string>() == "from_setsession");
    CHECK(handle->query("SHOW search_path").scalar<std::string>() == "\"$user\", public");
    CHECK_THROWS_WITH(handle->query("SELECT * FROM t_leak"), Catch::Contains("42P01"));
    CHECK(handle->query("SELECT $1::int", 2).scalar<int>() == 2);
}

TEST_CASE("a connection lost inside a transaction raises transaction_lost", "[pg][pool]") {
    Connection admin(test_server().admin());
    Table table(admin, "t_lost");
    Pool pool(dbpool::pg::connector(test_server().tcp()), one_connection());
    int first = 0;
    {
        auto handle = pool.connection();
        first = pid_of(*handle);
        handle->begin();
        handle->execute("INSERT INTO " + table.name + " VALUES ($1, $2)", 1, 1);
        REQUIRE(terminate_and_wait(admin, first));
        try {
            handle->execute("INSERT INTO " + table.name + " VALUES ($1, $2)", 2, 2);
            FAIL("statement after the termination succeeded");
        } catch (const Error& error) {
            INFO(error.what());
            CHECK(error.code() == ErrorCode::transaction_lost);
            CHECK(error.sqlstate() == "57P01");
        }
        CHECK_FALSE(handle->in_transaction());
    }
    CHECK(table.count() == 0);
    auto handle = pool.connection();
    CHECK(pid_of(*handle) != first);
}

TEST_CASE("Transaction rolls back when an exception leaves the scope", "[pg][pool]") {
    Connection admin(test_server().admin());
    Table table(admin, "t_raii");
    Pool pool(dbpool::pg::connector(test_server().tcp()), one_connection());
    auto handle = pool.connection();
    try {
        dbpool::Transaction tx(handle);
        handle->execute("INSERT INTO " + table.name + " VALUES ($1, $2)", 1, 1);
        throw std::runtime_error("fail mid-transaction");
    } catch (const std::runtime_error&) {
    }
    CHECK(table.count() == 0);
    {
        dbpool::Transaction tx(handle);
        handle->execute("INSERT INTO " + table.name + " VALUES ($1, $2)", 2, 2);
        tx.commit();
    }
    CHECK(table.count() == 1);
}

TEST_CASE("idle_session_timeout: keepalive, ping on request and the not-sent retry",
          "[pg][pool][timing]") {
    // The server ends sessions idle for 1 s (57P05), as MySQL's wait_timeout does. [timing]: a
    // keepalive every 300 ms must reach the server within that second, which a loaded machine
    // (ctest -j4 beside a build) once failed to do.
    PoolOptions base;
    base.maxconnections = 1;
    base.blocking = true;
    base.acquire_timeout = 5s;
    base.setsession = {"SET idle_session_timeout = '1s'"};

    PoolOptions keepalive = base;
    keepalive.ping = Ping::never;
    keepalive.keepalive_interval = 300ms;
    PoolOptions pinging = base;  // default ping_bypass (500 ms) is shorter than the idle time
    pinging.ping = Ping::on_request;
    PoolOptions dbutils = base;  // DBUtils with ping=0: nothing checks the idle connection
    dbutils.ping = Ping::never;
    // The same, for a classifier that cannot tell "not sent" from "lost": it must raise.
    PoolOptions unsure = dbutils;
    unsure.failures = [](const std::exception& error) {
        const dbpool::Failure failure = dbpool::pg::classify_exception(error);
        return failure == dbpool::Failure::broken_not_sent ? dbpool::Failure::broken : failure;
    };
    Pool keepalive_pool(dbpool::pg::connector(test_server().tcp()), keepalive);
    Pool ping_pool(dbpool::pg::connector(test_server().tcp()), pinging);
    Pool dbutils_pool(dbpool::pg::connector(test_server().tcp()), dbutils);
    Pool unsure_pool(dbpool::pg::connector(test_server().tcp()), unsure);

    int keepalive_pid = 0;
    int ping_pid = 0;
    int dbutils_pid = 0;
    {
        auto a = keepalive_pool.connection();
        auto b = ping_pool.connection();
        auto c = dbutils_pool.connection();
        auto d = unsure_pool.connection();
        keepalive_pid = pid_of(*a);
        ping_pid = pid_of(*b);
        dbutils_pid = pid_of(*c);
        CHECK(d->query("SHOW idle_session_timeout").scalar<std::string>() == "1s");
    }
    std::this_thread::sleep_for(2500ms);  // > idle_session_timeout

    {
        auto conn = keepalive_pool.connection();
        CHECK(pid_of(*conn) == keepalive_pid);  // kept alive: the same session
    }
    {
        auto conn = ping_pool.connection();
        CHECK(pid_of(*conn) != ping_pid);  // replaced at hand-out, no error
    }
    {
        auto conn = dbutils_pool.connection();
        CHECK(pid_of(*conn) != dbutils_pid);  // not sent, so sent again on a new connection
    }
    try {
        auto conn = unsure_pool.connection();
        conn->query("SELECT 1");
        FAIL("a statement on a timed-out session succeeded without the not-sent retry");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.code() == ErrorCode::connection_lost);
        CHECK(error.sqlstate() == "57P05");
    }
    auto conn = unsure_pool.connection();
    CHECK(conn->query("SELECT 1").scalar<int>() == 1);
}

TEST_CASE("PersistentPool closes a thread's connection when the thread exits",
          "[pg][pool][concurrency]") {
    Connection admin(test_server().admin());
    PersistentPool<Connection> pool(dbpool::pg::connector(test_server().tcp()));
    int pid = 0;
    std::thread worker([&] {
        auto handle = pool.connection();
        pid = pid_of(*handle);
        handle.close();  // ends the handle; the connection stays (not closeable by default)
        auto again = pool.connection();  // a named handle: `*` on a temporary may go away
        CHECK(pid_of(*again) == pid);
    });
    worker.join();
    REQUIRE(pid != 0);
    CHECK(eventually([&] { return !backend_alive(admin, pid); }));
    CHECK(pool.open_connections() == 0);
}

TEST_CASE("PersistentPool close() closes every thread's connection", "[pg][pool][concurrency]") {
    Connection admin(test_server().admin());
    PersistentPool<Connection> pool(dbpool::pg::connector(test_server().tcp()));
    auto handle = pool.connection();
    const int pid = pid_of(*handle);
    CHECK(pool.open_connections() == 1);
    pool.close();  // a connection in use is closed when its handle ends
    CHECK(backend_alive(admin, pid));
    handle.close();
    CHECK_THROWS_AS(pool.connection(), Error);
    CHECK(eventually([&] { return !backend_alive(admin, pid); }));
}

TEST_CASE("SteadyConnection over pg: the DBUtils SteadyPg", "[pg][pool]") {
    Connection admin(test_server().admin());
    dbpool::SteadyOptions options;
    options.ping = Ping::never;
    dbpool::SteadyConnection<Connection> steady(dbpool::pg::connector(test_server().tcp()),
                                                options);
    const int first = pid_of(steady);
    REQUIRE(terminate_and_wait(admin, first));
    CHECK(steady.query("SELECT $1::int * 2", 21).scalar<int>() == 42);  // retried: not sent
    CHECK(pid_of(steady) != first);
    CHECK(steady.reconnects() == 1);
}

// The Router over a real PostgreSQL primary + 2 streaming replicas (scripts/pg-replication.sh):
// role routing, a standby refusing writes, read-your-writes, a replica whose replay is paused
// leaving and rejoining the reads, a stopped replica, and a killed primary. Every loop is
// bounded in count and time; every test prints what it measured ("[pg-cluster] ...").
#include <dbpool/dbpool.hpp>
#include <dbpool/pg.hpp>
#include <dbpool/pg/cluster.hpp>
#include <dbpool/pg/node_check.hpp>
#include <dbpool/router.hpp>

#include <catch2/catch.hpp>

#include "../fault_support.hpp"
#include "../server_support.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef DBPOOL_PG_REPLICATION_SCRIPT
#error "DBPOOL_PG_REPLICATION_SCRIPT must name scripts/pg-replication.sh (tests/pg/CMakeLists.txt)"
#endif

using dbpool::Access;
using dbpool::Error;
using dbpool::ErrorCode;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;
using CheckedPool = dbpool::PooledPool<dbpool::pg::CheckedConnection>;
using PgRouter = dbpool::Router<CheckedPool>;

long long ms(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

void report(const std::string& test, const std::string& text) {
    std::cout << "[pg-cluster] " << test << ": " << text << std::endl;
}

// The bed named by DBPOOL_PG_REPLICATION_DIR (its DIR/env), nodes 1-based as in the script.
struct Bed {
    std::string dir;
    std::string user;
    std::string password;
    std::string database;
    std::string url;  // every node in one postgresql:// URL, the primary first
    std::vector<int> ports;
    bool bouncers = false;  // PgBouncers in front of node 1 (pgbouncer installed)
    int transaction_bouncer = 0;
    int session_bouncer = 0;

    int port(int n) const { return ports.at(static_cast<std::size_t>(n - 1)); }

    // Through a PgBouncer in front of the primary (`port`: one of the bouncer ports).
    dbpool::pg::ConnectOptions bouncer(int bouncer_port, std::size_t statement_cache_size) const {
        dbpool::pg::ConnectOptions options = node(1);
        options.conninfo = "host=127.0.0.1 port=" + std::to_string(bouncer_port) + " user=" + user +
                           " dbname=" + database + " sslmode=disable";
        options.statement_cache_size = statement_cache_size;
        return options;
    }

    // TCP to node n as the plain test user, 2 s timeouts: faults show within seconds.
    dbpool::pg::ConnectOptions node(int n) const {
        dbpool::pg::ConnectOptions options;
        options.conninfo = "host=127.0.0.1 port=" + std::to_string(port(n)) + " user=" + user +
                           " dbname=" + database + " sslmode=disable";
        options.password = password;
        options.connect_timeout = 2s;
        options.read_timeout = 2s;
        options.write_timeout = 2s;
        return options;
    }

    // The superuser over node n's unix socket.
    dbpool::pg::ConnectOptions admin(int n) const {
        dbpool::pg::ConnectOptions options;
        options.conninfo = "host=" + dir + "/n" + std::to_string(n) +
                           " port=" + std::to_string(port(n)) + " user=postgres dbname=" + database;
        options.connect_timeout = 2s;
        return options;
    }

    int run(const std::string& command, int node = 0, std::chrono::seconds limit = 60s) const {
        std::vector<std::string> args = {DBPOOL_PG_REPLICATION_SCRIPT, command, dir};
        if (node > 0) args.push_back(std::to_string(node));
        return dbpool_test::run_bash(std::move(args), limit);
    }

    // Brings back what an earlier (failed) test left broken; true when the bed is whole.
    bool ensure_up() const {
        if (run("status", 0, 15s) == 0) return true;
        return run("rebuild", 0, 120s) == 0 && run("status", 0, 15s) == 0;
    }
};

const Bed& bed() {
    static const Bed loaded = [] {
        const char* dir = std::getenv("DBPOOL_PG_REPLICATION_DIR");
        if (dir == nullptr || *dir == '\0') {
            throw std::runtime_error(
                "DBPOOL_PG_REPLICATION_DIR is not set: run `scripts/pg-replication.sh start DIR`"
                " and export it (ctest does this through its fixture)");
        }
        std::map<std::string, std::string> values;
        std::ifstream in(std::string(dir) + "/env");
        if (!in) throw std::runtime_error(std::string("cannot read ") + dir + "/env");
        std::string line;
        while (std::getline(in, line)) {
            const auto eq = line.find('=');
            if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
        }
        Bed b;
        b.dir = dir;
        b.user = values["DBPOOL_CLUSTER_USER"];
        b.password = values["DBPOOL_CLUSTER_PASSWORD"];
        b.database = values["DBPOOL_CLUSTER_DATABASE"];
        b.url = values["DBPOOL_CLUSTER_URL"];
        for (int n = 1; n <= 3; ++n)
            b.ports.push_back(std::stoi(values["DBPOOL_NODE" + std::to_string(n) + "_PORT"]));
        b.bouncers = values["DBPOOL_PGBOUNCER_RUNNING"] == "1";
        if (b.bouncers) {
            b.transaction_bouncer = std::stoi(values["DBPOOL_PGBOUNCER_TRANSACTION_PORT"]);
            b.session_bouncer = std::stoi(values["DBPOOL_PGBOUNCER_SESSION_PORT"]);
        }
        return b;
    }();
    return loaded;
}

// Small pools that ping on every hand-out (ping_bypass 0): a connection to a dead node is
// noticed before it is used.
dbpool::PoolOptions test_pool_options() {
    dbpool::PoolOptions options;
    options.maxconnections = 8;
    options.blocking = true;
    options.acquire_timeout = 3s;
    options.ping_bypass = 0ms;
    options.connect_backoff_min = 100ms;
    options.connect_backoff_max = 1s;
    return options;
}

// Three clients of a PgBouncer (in transaction mode the bed gives it two server connections): c1
// prepares "SELECT $1::int + 100", c2 prepares "... + 200" while c3 holds c1's server in a
// transaction, then c1 runs its statement again while c3 holds that server once more. The
// value c1 gets back, or the error it raises and then the value of running its transaction
// again; " [detected]" when c1 found out about transaction pooling.
std::string third_client_scenario(int bouncer_port, std::size_t statement_cache_size,
                                  bool in_transaction = false) {
    const auto options = bed().bouncer(bouncer_port, statement_cache_size);
    dbpool::pg::Connection c1(options);
    dbpool::pg::Connection c2(options);
    dbpool::pg::Connection c3(options);
    if (c1.query("SELECT $1::int + 100", 1).scalar<int>() != 101) return "first run wrong";
    c3.begin();
    c3.query("SELECT 1");
    const int c2_value = c2.query("SELECT $1::int + 200", 1).scalar<int>();
    c3.rollback();
    c3.begin();
    c3.query("SELECT 1");
    std::string outcome;
    try {
        if (in_transaction) c1.begin();
        outcome = std::to_string(c1.query("SELECT $1::int + 100", 1).scalar<int>());
        if (in_transaction) c1.rollback();
    } catch (const Error& error) {
        if (in_transaction) c1.rollback();
        outcome = std::string(dbpool::to_string(error.code())) + " " + error.sqlstate() + ": " +
                  error.what();
        if (in_transaction && error.code() == ErrorCode::transaction_conflict) {
            c1.begin();  // what a caller's retry of the transaction does
            outcome +=
                "; run again: " + std::to_string(c1.query("SELECT $1::int + 100", 2).scalar<int>());
            c1.commit();
        }
    }
    c3.rollback();
    if (c1.transaction_pooling_detected()) outcome += " [detected]";
    return outcome + (c2_value == 201 ? "" : " (c2 got " + std::to_string(c2_value) + ")");
}

// A router over the bed, nodes named n1 (primary), n2, n3, built as a user would.
std::unique_ptr<PgRouter> make_router(dbpool::RouterOptions router_options,
                                      std::chrono::milliseconds max_replica_lag = 2s) {
    std::vector<dbpool::RouterNode<CheckedPool>> nodes;
    for (int n = 1; n <= 3; ++n) {
        dbpool::pg::NodeCheck check;
        check.health = std::make_shared<dbpool::NodeHealth>();
        check.primary = n == 1;
        check.replica = n > 1;
        check.max_replica_lag = max_replica_lag;
        dbpool::RouterNode<CheckedPool> node;
        node.name = "n" + std::to_string(n);
        node.role = n == 1 ? dbpool::NodeRole::primary : dbpool::NodeRole::replica;
        node.health = check.health;
        node.pool = std::make_unique<CheckedPool>(
            dbpool::pg::CheckedConnector(bed().node(n), std::move(check)), test_pool_options());
        nodes.push_back(std::move(node));
    }
    return std::make_unique<PgRouter>(std::move(nodes), router_options);
}

void prepare_table() {
    dbpool::pg::Connection primary(bed().node(1));
    primary.execute("CREATE TABLE IF NOT EXISTS router_items (id serial PRIMARY KEY, note text)");
}

int server_port(PgRouter::handle_type& conn) {
    return conn->query("SELECT inet_server_port()").scalar<int>();
}

}  // namespace

TEST_CASE("pg: writes go to the primary, reads spread over the replicas",
          "[cluster][pg_replication]") {
    REQUIRE(bed().ensure_up());
    prepare_table();
    dbpool::RouterOptions options;
    options.health_interval = 250ms;
    auto router = make_router(options);
    {
        auto conn = router->connection(Access::write);
        CHECK(conn.node_name() == "n1");
        CHECK(server_port(conn) == bed().port(1));
        conn->execute("INSERT INTO router_items (note) VALUES ($1)", "from the router");
    }
    std::map<int, int> served;
    for (int i = 0; i < 40; ++i) {
        auto conn = router->connection(Access::read);
        ++served[server_port(conn)];
    }
    CHECK(served[bed().port(1)] == 0);
    CHECK(served[bed().port(2)] == 20);
    CHECK(served[bed().port(3)] == 20);

    // A standby refuses a write with 25006, typed read_only.
    {
        auto conn = router->connection(Access::read);
        try {
            conn->execute("INSERT INTO router_items (note) VALUES ($1)", "must fail");
            FAIL("a write on a hot standby succeeded");
        } catch (const Error& error) {
            CHECK(error.code() == ErrorCode::read_only);
            CHECK(error.sqlstate() == "25006");
        }
    }
    const auto stats = router->stats();
    REQUIRE(stats.size() == 3);
    CHECK(stats[0].writes == 1);
    CHECK(stats[0].reads == 0);
    CHECK(stats[1].health.state == dbpool::NodeState::healthy);
    CHECK(stats[2].health.state == dbpool::NodeState::healthy);
    CHECK(stats[1].health.lag.count() >= 0);

    // A standby configured as the primary is refused at connect: writes never reach it.
    {
        dbpool::pg::NodeCheck check;
        check.primary = true;
        check.health = std::make_shared<dbpool::NodeHealth>();
        try {
            dbpool::pg::CheckedConnection wrong(bed().node(2), check);
            FAIL("a standby passed the primary check");
        } catch (const Error& error) {
            CHECK(error.code() == ErrorCode::node_unavailable);
            CHECK(check.health->state() == dbpool::NodeState::unavailable);
        }
    }

    // libpq's own multi-host strings pick a node by its role: a creator can use them.
    const auto multi = [](int first, int second, const char* attrs) {
        dbpool::pg::ConnectOptions hosts = bed().node(1);
        hosts.conninfo = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(bed().port(first)) +
                         "," + std::to_string(bed().port(second)) + " user=" + bed().user +
                         " dbname=" + bed().database +
                         " sslmode=disable target_session_attrs=" + attrs;
        return dbpool::pg::Connection(hosts).query("SELECT inet_server_port()").scalar<int>();
    };
    CHECK(multi(1, 2, "prefer-standby") == bed().port(2));
    CHECK(multi(2, 1, "read-write") == bed().port(1));
    CHECK(multi(1, 3, "standby") == bed().port(3));

    // make_cluster_router: the same over plain ConnectOptions, names without the password.
    dbpool::pg::ClusterOptions cluster;
    cluster.pool = test_pool_options();
    cluster.router.health_interval = 250ms;
    auto made =
        dbpool::pg::make_cluster_router({bed().node(1), bed().node(2), bed().node(3)}, cluster);
    CHECK(made->connection(Access::write)->query("SELECT pg_is_in_recovery()").scalar<bool>() ==
          false);
    CHECK(made->connection(Access::read)->query("SELECT pg_is_in_recovery()").scalar<bool>() ==
          true);
    CHECK(made->name(0).find(bed().password) == std::string::npos);
    report("roles", "40 reads: n2=" + std::to_string(served[bed().port(2)]) +
                        " n3=" + std::to_string(served[bed().port(3)]) +
                        " n1=" + std::to_string(served[bed().port(1)]) +
                        "; replica lag n2=" + std::to_string(stats[1].health.lag.count()) +
                        " ms n3=" + std::to_string(stats[2].health.lag.count()) +
                        " ms (primary idle)");
}

TEST_CASE("pg: make_cluster_router from the bed's one multi-host URL",
          "[cluster][pg_replication]") {
    REQUIRE(bed().ensure_up());
    REQUIRE(bed().url.find(',') != std::string::npos);
    dbpool::pg::ClusterOptions cluster;
    cluster.pool = test_pool_options();
    cluster.router.health_interval = 250ms;
    auto router = dbpool::pg::make_cluster_router(bed().url, cluster);
    REQUIRE(router->size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        INFO(router->name(i));
        CHECK(router->name(i).find(bed().password) == std::string::npos);
        CHECK(router->name(i).find(":" + std::to_string(bed().port(static_cast<int>(i) + 1))) !=
              std::string::npos);
    }
    for (int i = 0; i < 5; ++i) {
        auto w = router->connection(Access::write);
        CHECK(w->query("SELECT inet_server_port()").scalar<int>() == bed().port(1));
    }
    std::map<int, int> served;
    for (int i = 0; i < 20; ++i) {
        auto r = router->connection(Access::read);
        ++served[r->query("SELECT inet_server_port()").scalar<int>()];
    }
    CHECK(served[bed().port(1)] == 0);
    CHECK(served[bed().port(2)] > 0);
    CHECK(served[bed().port(3)] > 0);
    report("one-url", "20 reads: n2=" + std::to_string(served[bed().port(2)]) +
                          " n3=" + std::to_string(served[bed().port(3)]) +
                          " n1=" + std::to_string(served[bed().port(1)]) + "; names " +
                          router->name(0) + ", " + router->name(1) + ", " + router->name(2));
}

TEST_CASE("pg: read-your-writes sends a session's reads to the primary for a while",
          "[cluster][pg_replication]") {
    REQUIRE(bed().ensure_up());
    prepare_table();
    dbpool::RouterOptions options;
    options.health_interval = 250ms;
    // The window is what the router measures from the write; on a loaded machine under a
    // sanitizer the read after it came 400 ms later once, so it is 1 s, and a read that still
    // comes too late is not held against the router.
    constexpr auto kWindow = 1s;
    options.read_your_writes = kWindow;
    auto router = make_router(options);
    dbpool::RouterSession session;
    CHECK(router->connection(Access::read, session).node_name() != "n1");
    std::int64_t id = 0;
    {
        auto conn = router->connection(Access::write, session);
        id = conn->query("INSERT INTO router_items (note) VALUES ($1) RETURNING id", "mine")
                 .scalar<std::int64_t>();
    }
    const auto written = session.last_write();
    {
        auto conn = router->connection(Access::read, session);
        const auto on = conn.node_name();
        if (Clock::now() - written < kWindow) {
            CHECK(on == "n1");
            CHECK(conn->query("SELECT count(*) FROM router_items WHERE id = $1", id)
                      .scalar<std::int64_t>() == 1);
        } else {
            WARN("the read came after the read-your-writes window; not checked");
        }
    }
    CHECK(router->connection(Access::read).node_name() != "n1");  // other callers unaffected
    std::this_thread::sleep_until(written + kWindow + 50ms);
    CHECK(router->connection(Access::read, session).node_name() != "n1");
}

TEST_CASE("pg: a replica whose replay is paused leaves the reads and comes back",
          "[cluster][pg_replication][lag]") {
    REQUIRE(bed().ensure_up());
    prepare_table();
    constexpr auto kInterval = 200ms;
    constexpr auto kMaxLag = 500ms;
    dbpool::RouterOptions options;
    options.health_interval = kInterval;
    auto router = make_router(options, kMaxLag);

    // The primary writes every 20 ms: a paused replica falls behind only while it does.
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        dbpool::pg::Connection primary(bed().node(1));
        for (int i = 0; i < 2000 && !stop.load(); ++i) {
            primary.execute("INSERT INTO router_items (note) VALUES ('tick')");
            std::this_thread::sleep_for(20ms);
        }
    });
    REQUIRE(bed().run("pause", 2) == 0);
    const auto paused = Clock::now();
    Clock::time_point last_on_n2 = paused;
    long reads = 0;
    long failures = 0;
    const auto read_once = [&](Clock::time_point& on_n2) {
        try {
            auto conn = router->connection(Access::read);
            conn->query("SELECT 1");
            ++reads;
            if (conn.node_name() == "n2") {
                on_n2 = Clock::now();
                return true;
            }
        } catch (const Error&) {
            ++failures;
        }
        return false;
    };
    for (int i = 0; i < 1000 && Clock::now() < paused + 5s; ++i) {
        read_once(last_on_n2);
        if (Clock::now() > last_on_n2 + kMaxLag + 2 * kInterval) break;  // gone for a while
        std::this_thread::sleep_for(10ms);
    }
    const auto lagging = router->stats()[1].health;
    CHECK(lagging.state == dbpool::NodeState::lagging);
    const auto left_after = last_on_n2 - paused;

    REQUIRE(bed().run("resume", 2) == 0);
    const auto resumed = Clock::now();
    std::optional<Clock::time_point> back;
    for (int i = 0; i < 1000 && Clock::now() < resumed + 5s; ++i) {
        Clock::time_point on_n2{};
        if (read_once(on_n2)) {
            back = on_n2;
            break;
        }
        std::this_thread::sleep_for(10ms);
    }
    stop = true;
    writer.join();
    REQUIRE(back);
    report("lag", "replay paused under writes every 20 ms: last read on n2 " +
                      std::to_string(ms(left_after)) + " ms after the pause (max_replica_lag " +
                      std::to_string(kMaxLag.count()) + " ms, health interval " +
                      std::to_string(kInterval.count()) + " ms; n2 reported " +
                      std::to_string(lagging.lag.count()) + " ms); after resume reads were on n2 " +
                      std::to_string(ms(*back - resumed)) + " ms later; " + std::to_string(reads) +
                      " reads, " + std::to_string(failures) + " failed");
    CHECK(failures == 0);
    // The lag must pass max_replica_lag, then one health interval; the slack is what one probe
    // round and a read take on a busy 2-core machine under a sanitizer.
    CHECK(left_after <= kMaxLag + kInterval + 700ms);
    CHECK(*back - resumed <= kInterval + 700ms);
}

TEST_CASE("pg: a heartbeat table measures replica lag in time, also with the primary down",
          "[cluster][pg_replication][lag]") {
    REQUIRE(bed().ensure_up());
    {
        dbpool::pg::Connection primary(bed().node(1));
        primary.execute(
            "CREATE TABLE IF NOT EXISTS router_heartbeat (id int PRIMARY KEY, ts timestamptz NOT "
            "NULL)");
    }
    constexpr auto kInterval = 200ms;
    constexpr auto kMaxLag = 500ms;
    dbpool::pg::ClusterOptions cluster;
    cluster.pool = test_pool_options();
    cluster.router.health_interval = kInterval;
    cluster.check.max_replica_lag = kMaxLag;
    cluster.check.heartbeat_table = "router_heartbeat";
    auto router = dbpool::pg::make_cluster_router(bed().url, cluster);

    // The primary's writer: every 100 ms, reconnecting while the primary is down.
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        std::optional<dbpool::pg::Connection> primary;
        for (int i = 0; i < 3000 && !stop.load(); ++i) {
            try {
                if (!primary) primary.emplace(bed().node(1));
                primary->execute(
                    "INSERT INTO router_heartbeat VALUES (1, clock_timestamp())"
                    " ON CONFLICT (id) DO UPDATE SET ts = excluded.ts");
            } catch (const Error&) {
                primary.reset();
            }
            std::this_thread::sleep_for(100ms);
        }
    });
    const auto replicas_are = [&](dbpool::NodeState state, bool lag_known_above_max) {
        const auto stats = router->stats();
        for (std::size_t i = 1; i < 3; ++i) {
            if (stats[i].health.state != state) return false;
            if (lag_known_above_max && stats[i].health.lag <= kMaxLag) return false;
        }
        return true;
    };
    const bool healthy = dbpool_test::eventually(
        [&] { return replicas_are(dbpool::NodeState::healthy, false); }, 5s);
    const auto before = router->stats();

    REQUIRE(bed().run("halt", 1) == 0);
    const auto halted = Clock::now();
    const bool measured =
        dbpool_test::eventually([&] { return replicas_are(dbpool::NodeState::lagging, true); }, 5s);
    const auto lagging_after = Clock::now() - halted;
    std::this_thread::sleep_for(500ms);
    const auto down = router->stats();
    long reads_failed = 0;
    for (int i = 0; i < 20; ++i) {
        try {
            router->connection(Access::read)->query("SELECT 1");
        } catch (const Error&) {
            ++reads_failed;  // lagging replicas still serve reads with the primary down
        }
    }

    REQUIRE(bed().run("restart", 1) == 0);
    const auto restarted = Clock::now();
    const bool back = dbpool_test::eventually(
        [&] { return replicas_are(dbpool::NodeState::healthy, false); }, 10s);
    const auto back_after = Clock::now() - restarted;
    stop = true;
    writer.join();
    report("heartbeat", "lag n2=" + std::to_string(before[1].health.lag.count()) +
                            " ms n3=" + std::to_string(before[2].health.lag.count()) +
                            " ms (writer every 100 ms); primary stopped: both lagging with a "
                            "known lag after " +
                            std::to_string(ms(lagging_after)) +
                            " ms, 500 ms later n2=" + std::to_string(down[1].health.lag.count()) +
                            " ms n3=" + std::to_string(down[2].health.lag.count()) + " ms (" +
                            down[1].health.reason + "); healthy again " +
                            std::to_string(ms(back_after)) + " ms after the restart");
    CHECK(healthy);
    CHECK(before[1].health.lag < kMaxLag);
    CHECK(measured);
    CHECK(down[1].health.lag > kMaxLag);  // a time, not "unknown" (-1) as the WAL check says
    CHECK(down[2].health.lag > kMaxLag);
    CHECK(reads_failed == 0);
    CHECK(back);
    // A missing table fails the check: the node is not taken for healthy.
    dbpool::pg::NodeCheck missing;
    missing.replica = true;
    missing.heartbeat_table = "no_such_heartbeat";
    missing.health = std::make_shared<dbpool::NodeHealth>();
    CHECK_THROWS_AS(dbpool::pg::CheckedConnection(bed().node(2), missing), Error);
    CHECK(missing.health->status().state == dbpool::NodeState::unavailable);
    CHECK(missing.health->status().reason.find("no_such_heartbeat") != std::string::npos);
}

TEST_CASE("pg: a stopped replica leaves the reads at once and returns after a restart",
          "[cluster][pg_replication][kill]") {
    REQUIRE(bed().ensure_up());
    constexpr auto kInterval = 200ms;
    dbpool::RouterOptions options;
    options.health_interval = kInterval;
    auto router = make_router(options);
    for (int i = 0; i < 4; ++i)
        router->connection(Access::read)->query("SELECT 1");  // both replicas have connections
    REQUIRE(bed().run("halt", 3) == 0);
    const auto halted = Clock::now();
    long failures = 0;
    long on_n3 = 0;
    long reads = 0;
    for (int i = 0; i < 40; ++i) {
        try {
            auto conn = router->connection(Access::read);
            conn->query("SELECT 1");
            ++reads;
            if (conn.node_name() == "n3") ++on_n3;
        } catch (const Error&) {
            ++failures;
        }
    }
    const auto forty_reads = Clock::now() - halted;
    CHECK(failures == 0);
    CHECK(on_n3 == 0);
    REQUIRE(bed().run("restart", 3) == 0);
    const auto restarted = Clock::now();
    std::optional<Clock::time_point> back;
    for (int i = 0; i < 1000 && Clock::now() < restarted + 5s; ++i) {
        auto conn = router->connection(Access::read);
        if (conn.node_name() == "n3") {
            back = Clock::now();
            break;
        }
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(back);
    report("stopped-replica",
           "40 reads right after n3 stopped took " + std::to_string(ms(forty_reads)) +
               " ms: " + std::to_string(on_n3) + " on n3, " + std::to_string(failures) +
               " failed; after its restart reads were on n3 again " +
               std::to_string(ms(*back - restarted)) + " ms later");
    CHECK(*back - restarted <= 2s);
}

TEST_CASE("pg: kill -9 of the primary: writes fail fast and typed, reads go on",
          "[cluster][pg_replication][kill]") {
    REQUIRE(bed().ensure_up());
    prepare_table();
    dbpool::RouterOptions options;
    options.health_interval = 250ms;
    auto router = make_router(options);
    router->connection(Access::write)->execute("INSERT INTO router_items (note) VALUES ('x')");

    std::atomic<bool> stop{false};
    std::atomic<long> reads_ok{0};
    std::atomic<long> reads_failed{0};
    std::thread reader([&] {
        for (int i = 0; i < 100000 && !stop.load(); ++i) {
            try {
                auto conn = router->connection(Access::read);
                conn->query("SELECT count(*) FROM router_items");
                ++reads_ok;
            } catch (const Error&) {
                ++reads_failed;
            }
            std::this_thread::sleep_for(2ms);
        }
    });
    REQUIRE(bed().run("kill9", 1) == 0);
    const auto killed = Clock::now();
    std::map<std::string, int> codes;
    Clock::duration slowest{};
    int writes = 0;
    for (int i = 0; i < 200 && Clock::now() < killed + 1500ms; ++i) {
        const auto began = Clock::now();
        try {
            router->run(Access::write, [](PgRouter::handle_type& conn) {
                conn->execute("INSERT INTO router_items (note) VALUES ('after')");
                return 0;
            });
            ++codes["succeeded"];
        } catch (const Error& error) {
            ++codes[dbpool::to_string(error.code())];
        }
        slowest = std::max(slowest, Clock::now() - began);
        ++writes;
        std::this_thread::sleep_for(5ms);
    }
    const auto replica_state = router->stats()[1].health;
    const long reads_during = reads_ok.load();

    REQUIRE(bed().run("restart", 1) == 0);
    const auto restarted = Clock::now();
    std::optional<Clock::time_point> writable;
    for (int i = 0; i < 500 && Clock::now() < restarted + 5s; ++i) {
        try {
            router->connection(Access::write)
                ->execute("INSERT INTO router_items (note) VALUES ('back')");
            writable = Clock::now();
            break;
        } catch (const Error&) {
            std::this_thread::sleep_for(20ms);
        }
    }
    stop = true;
    reader.join();
    std::string seen;
    for (const auto& [code, count] : codes)
        seen += (seen.empty() ? "" : ", ") + code + " " + std::to_string(count);
    report("kill-primary", std::to_string(writes) + " writes in 1.5 s after kill -9: " + seen +
                               "; slowest " + std::to_string(ms(slowest)) + " ms; " +
                               std::to_string(reads_during) + " reads ok meanwhile, " +
                               std::to_string(reads_failed.load()) + " failed; n2 " +
                               dbpool::to_string(replica_state.state) + " (" +
                               replica_state.reason + "); writes back " +
                               (writable ? std::to_string(ms(*writable - restarted)) : "never") +
                               " ms after the restart");
    CHECK(codes.count("succeeded") == 0);
    for (const auto& [code, count] : codes) {
        CHECK(
            (code == "connect_failed" || code == "connection_lost" || code == "node_unavailable"));
    }
    CHECK(slowest < 500ms);
    CHECK(reads_failed.load() == 0);
    CHECK(reads_during > 50);
    CHECK(writable);
    CHECK(bed().ensure_up());
}

TEST_CASE("pg: through PgBouncer, session and transaction pooling with the statement cache off",
          "[cluster][pgbouncer]") {
    REQUIRE(bed().ensure_up());
    if (!bed().bouncers) FAIL("pgbouncer is not installed (scripts/install-deps.sh installs it)");
    prepare_table();
    // Session pooling: a client keeps its server connection, so the cache works as direct.
    const std::string session = third_client_scenario(bed().session_bouncer, 64);
    CHECK(session == "101");
    // Transaction pooling with statement_cache_size = 0: every statement with arguments goes
    // through the unnamed statement, parsed and run in one exchange, on one server connection.
    const std::string transaction = third_client_scenario(bed().transaction_bouncer, 0);
    CHECK(transaction == "101");
    // A pool through the transaction-mode bouncer: statements, transactions and the pool's
    // reset (a rollback) across 40 acquires on two threads.
    dbpool::PoolOptions options = test_pool_options();
    options.maxconnections = 4;
    dbpool::PooledPool<dbpool::pg::Connection> pool(
        dbpool::pg::connector(bed().bouncer(bed().transaction_bouncer, 0)), options);
    std::atomic<long> wrong{0};
    std::atomic<long> failed{0};
    const auto work = [&](int base) {
        for (int i = 0; i < 20; ++i) {
            try {
                auto conn = pool.connection();
                conn.begin();
                const auto id =
                    conn->query("INSERT INTO router_items (note) VALUES ($1) RETURNING id",
                                "bouncer " + std::to_string(base + i))
                        .scalar<std::int64_t>();
                if (conn->query("SELECT note FROM router_items WHERE id = $1", id)
                        .scalar<std::string>() != "bouncer " + std::to_string(base + i)) {
                    ++wrong;
                }
                conn.commit();
            } catch (const Error&) {
                ++failed;
            }
        }
    };
    std::thread other(work, 1000);
    work(0);
    other.join();
    CHECK(wrong.load() == 0);
    CHECK(failed.load() == 0);
    report("pgbouncer", "session mode, cache on: c1 got " + session +
                            "; transaction mode, cache off: c1 got " + transaction +
                            "; 40 transactions through the transaction-mode bouncer: " +
                            std::to_string(failed.load()) + " failed, " +
                            std::to_string(wrong.load()) + " wrong");
}

// With transaction pooling, each connection's statement names must differ from every other's
// (statement_cache.hpp): with "dbpool_1" in every connection a client got another client's
// statement's answer (1 + 100 gave 201). Now the name is missing on the other server session,
// and the connection takes that as the sign of transaction pooling: outside a transaction it
// runs the statement again, unnamed; inside one it raises transaction_conflict (the transaction
// has failed on the server), and the transaction run again works. Never another client's
// statement, and never PostgreSQL's bare "does not exist".
TEST_CASE(
    "pg: through a transaction-mode PgBouncer the statement cache detects transaction pooling",
    "[cluster][pgbouncer]") {
    REQUIRE(bed().ensure_up());
    REQUIRE(bed().bouncers);
    const auto started = Clock::now();
    const std::string outside = third_client_scenario(bed().transaction_bouncer, 64);
    const std::string inside = third_client_scenario(bed().transaction_bouncer, 64, true);
    const std::string session = third_client_scenario(bed().session_bouncer, 64, true);
    report("pgbouncer-cache", "transaction mode, cache on (64): c1 asked for 1 + 100 and got " +
                                  outside + "; inside a transaction: " + inside +
                                  "; session mode, inside a transaction: " + session);
    CHECK(outside == "101 [detected]");
    CHECK_THAT(inside, Catch::StartsWith("transaction_conflict 26000: ") &&
                           Catch::Contains("pool_mode = transaction") &&
                           Catch::Contains("run it again") &&
                           Catch::Contains("statement_cache_size") &&
                           Catch::EndsWith("; run again: 102 [detected]"));
    CHECK(inside.find("does not exist") == std::string::npos);
    CHECK(session == "101");  // session pooling: the cache works, nothing detected
    CHECK(Clock::now() - started < 20s);
}

// What a user behind transaction pooling writes: the default cache, a pool, and a retry of
// transaction_conflict (README, "Errors"). Each connection can fail at most one transaction, the
// one in which it finds out; every retry succeeds. The URL's statement_cache_size=0 avoids even
// that.
TEST_CASE("pg: a pool through a transaction-mode PgBouncer: retry on conflict, or the URL option",
          "[cluster][pgbouncer]") {
    REQUIRE(bed().ensure_up());
    REQUIRE(bed().bouncers);
    prepare_table();
    const auto started = Clock::now();
    const auto run = [](dbpool::PooledPool<dbpool::pg::Connection>& pool, long& conflicts,
                        long& wrong, long& failed) {
        std::atomic<long> conflicted{0};
        std::atomic<long> wrong_rows{0};
        std::atomic<long> failures{0};
        const auto work = [&](int base) {
            for (int i = 0; i < 20; ++i) {
                const std::string note = "bouncer retry " + std::to_string(base + i);
                for (int attempt = 0;; ++attempt) {
                    try {
                        auto conn = pool.connection();
                        dbpool::Transaction transaction(conn);
                        const auto id =
                            conn->query("INSERT INTO router_items (note) VALUES ($1) RETURNING id",
                                        note)
                                .scalar<std::int64_t>();
                        if (conn->query("SELECT note FROM router_items WHERE id = $1", id)
                                .scalar<std::string>() != note) {
                            ++wrong_rows;
                        }
                        transaction.commit();
                        break;
                    } catch (const Error& error) {
                        if (error.code() == ErrorCode::transaction_conflict && attempt < 3) {
                            ++conflicted;
                            continue;
                        }
                        ++failures;
                        break;
                    }
                }
            }
        };
        std::thread other(work, 1000);
        work(0);
        other.join();
        conflicts = conflicted.load();
        wrong = wrong_rows.load();
        failed = failures.load();
    };
    dbpool::PoolOptions options = test_pool_options();
    options.maxconnections = 4;
    long conflicts = 0;
    long wrong = 0;
    long failed = 0;
    {
        dbpool::PooledPool<dbpool::pg::Connection> pool(
            dbpool::pg::connector(bed().bouncer(bed().transaction_bouncer, 64)), options);
        run(pool, conflicts, wrong, failed);
    }
    long url_conflicts = 0;
    long url_wrong = 0;
    long url_failed = 0;
    {
        const std::string url = "postgresql://" + bed().user + ":" + bed().password +
                                "@127.0.0.1:" + std::to_string(bed().transaction_bouncer) + "/" +
                                bed().database + "?sslmode=disable&statement_cache_size=0";
        dbpool::pg::ConnectOptions from_url = dbpool::pg::ConnectOptions::from_url(url);
        CHECK(from_url.statement_cache_size == 0);
        from_url.read_timeout = 2s;
        dbpool::PooledPool<dbpool::pg::Connection> pool(dbpool::pg::connector(from_url), options);
        run(pool, url_conflicts, url_wrong, url_failed);
    }
    report("pgbouncer-pool",
           "40 transactions on 2 threads, pool of 4, cache on: " + std::to_string(conflicts) +
               " transaction_conflict retried, " + std::to_string(failed) + " failed, " +
               std::to_string(wrong) + " wrong; with ?statement_cache_size=0: " +
               std::to_string(url_conflicts) + " retried, " + std::to_string(url_failed) +
               " failed, " + std::to_string(url_wrong) + " wrong");
    CHECK(conflicts <= 4);
    CHECK(failed == 0);
    CHECK(wrong == 0);
    CHECK(url_conflicts == 0);
    CHECK(url_failed == 0);
    CHECK(url_wrong == 0);
    CHECK(Clock::now() - started < 30s);
}

// Session state through each pool_mode, as dbpool's setsession/init_statements and
// reset_session() (Reset::full) produce it. c1 opens with an init statement setting a custom
// parameter (dbpool.mark, harmless wherever it lands), then c3 holds a server connection in a
// transaction while c1 reads the parameter, and c3 reads it too. In transaction mode the
// setting stays on the server connection the SET ran on: c1 loses it and another client's
// transaction sees it. Parameters PgBouncer tracks (TimeZone among them) follow the client, and
// reset_session()'s DISCARD ALL resets them too.
TEST_CASE("pg: through PgBouncer, SET, init_statements and reset_session in each pool_mode",
          "[cluster][pgbouncer]") {
    REQUIRE(bed().ensure_up());
    REQUIRE(bed().bouncers);
    const auto started = Clock::now();
    struct Seen {
        std::string c1;          // c1's mark while c3 holds a server
        std::string c3;          // what c3's transaction sees
        std::string c1_after;    // c1's mark after reset_session()
        std::string zone;        // c1's TimeZone after SET TimeZone
        std::string zone_reset;  // ... and after reset_session()
        bool detected = false;
    };
    const auto scenario = [](int port, std::size_t cache) {
        const std::string mark =
            "m" + std::to_string(Clock::now().time_since_epoch().count() % 1000000007);
        dbpool::pg::ConnectOptions options = bed().bouncer(port, cache);
        options.init_statements = {"SET dbpool.mark = '" + mark + "'"};
        const auto read_mark = [&mark](dbpool::pg::Connection& conn) {
            const std::string value =
                conn.query("SELECT coalesce(current_setting('dbpool.mark', true), '')")
                    .scalar<std::string>();
            return value == mark ? std::string("set") : value.empty() ? "unset" : "other";
        };
        dbpool::pg::Connection c1(options);
        dbpool::pg::Connection c3(bed().bouncer(port, cache));
        Seen seen;
        c3.begin();
        seen.c3 = read_mark(c3);
        seen.c1 = read_mark(c1);
        c3.rollback();
        c1.execute("SET TimeZone = 'Asia/Tokyo'");
        seen.zone = c1.query("SHOW TimeZone").scalar<std::string>();
        c1.reset_session();
        seen.zone_reset = c1.query("SHOW TimeZone").scalar<std::string>();
        seen.c1_after = read_mark(c1);
        seen.detected = c1.transaction_pooling_detected();
        // Leave no mark behind on the bouncer's server connections: each client holds one in a
        // transaction and resets the parameter there (committed, so it stays reset).
        c3.begin();
        c1.begin();
        c3.execute("RESET dbpool.mark");
        c1.execute("RESET dbpool.mark");
        c1.commit();
        c3.commit();
        return seen;
    };
    const Seen session = scenario(bed().session_bouncer, 64);
    const Seen transaction = scenario(bed().transaction_bouncer, 0);
    const auto text = [](const Seen& seen) {
        return "c1's own SET " + seen.c1 + ", in another client's transaction " + seen.c3 +
               "; TimeZone " + seen.zone + ", after reset_session " + seen.zone_reset +
               "; c1's SET after reset_session " + seen.c1_after;
    };
    report("pgbouncer-session-state",
           "session mode: " + text(session) + "; transaction mode: " + text(transaction));
    // Session mode: a client keeps its server connection, as direct.
    CHECK(session.c1 == "set");
    CHECK(session.c3 == "unset");
    CHECK(session.zone == "Asia/Tokyo");
    CHECK(session.zone_reset != "Asia/Tokyo");
    CHECK(session.c1_after == "set");
    // Transaction mode: c1's SET ran on the server connection c3 now holds.
    CHECK(transaction.c1 != "set");  // "other": a mark an earlier run left behind
    CHECK(transaction.c3 == "set");
    CHECK(transaction.zone == "Asia/Tokyo");        // tracked by PgBouncer: follows the client
    CHECK(transaction.zone_reset != "Asia/Tokyo");  // DISCARD ALL resets it for the client
    CHECK_FALSE(transaction.detected);              // cache off: nothing to detect
    CHECK(Clock::now() - started < 20s);
}

TEST_CASE("pg: promotion: kill -9 the primary under writes, promote a replica, writes resume",
          "[cluster][pg_replication][kill][promote]") {
    REQUIRE(bed().ensure_up());
    prepare_table();
    // Synchronous replication to n2, the replica promoted below: a commit is acknowledged only
    // once n2 has flushed it, so nothing acknowledged may be missing after the promotion. (With
    // asynchronous replication, the default, a failover may lose the last acknowledged commits.)
    {
        dbpool::pg::Connection admin(bed().admin(1));
        admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'n2'");
        admin.query("SELECT pg_reload_conf()");
        const auto until = Clock::now() + 10s;
        while (admin
                   .query("SELECT count(*) FROM pg_stat_replication"
                          " WHERE application_name = 'n2' AND sync_state = 'sync'")
                   .scalar<std::int64_t>() != 1) {
            REQUIRE(Clock::now() < until);
            std::this_thread::sleep_for(20ms);
        }
    }
    // The primary node's pool connects through libpq's multi-host list to whichever host is
    // read-write now: the Router's roles stay as configured, the primary's address moves.
    dbpool::pg::ConnectOptions primary = bed().node(1);
    primary.conninfo = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(bed().port(1)) + "," +
                       std::to_string(bed().port(2)) + " user=" + bed().user +
                       " dbname=" + bed().database +
                       " sslmode=disable target_session_attrs=read-write";
    constexpr auto kInterval = 250ms;
    std::vector<dbpool::RouterNode<CheckedPool>> nodes;
    for (int n = 1; n <= 3; ++n) {
        dbpool::pg::NodeCheck check;
        check.health = std::make_shared<dbpool::NodeHealth>();
        check.primary = n == 1;
        check.replica = n > 1;
        dbpool::RouterNode<CheckedPool> node;
        node.name = n == 1 ? "primary" : "n" + std::to_string(n);
        node.role = n == 1 ? dbpool::NodeRole::primary : dbpool::NodeRole::replica;
        node.health = check.health;
        node.pool = std::make_unique<CheckedPool>(
            dbpool::pg::CheckedConnector(n == 1 ? primary : bed().node(n), std::move(check)),
            test_pool_options());
        nodes.push_back(std::move(node));
    }
    dbpool::RouterOptions options;
    options.health_interval = kInterval;
    PgRouter router(std::move(nodes), options);

    std::atomic<bool> stop{false};
    std::atomic<bool> killed{false};
    std::vector<std::int64_t> acknowledged;        // writer thread only, read after join
    std::map<std::string, int> failures;           // writer thread only
    std::optional<Clock::time_point> first_after;  // writer thread only, read after join
    std::atomic<bool> wrote_after{false};          // what the main thread polls
    std::atomic<std::int64_t> promoted_at{0};      // steady ticks, 0 = not yet
    int first_port = 0;
    std::thread writer([&] {
        for (int i = 0; i < 20000 && !stop.load(); ++i) {
            try {
                const auto [id, port] = router.run(Access::write, [](PgRouter::handle_type& conn) {
                    const auto row = conn->query(
                                             "INSERT INTO router_items (note) VALUES "
                                             "('load') RETURNING id, inet_server_port()")
                                         .row(0);
                    return std::make_pair(row.get<std::int64_t>(0), row.get<int>(1));
                });
                acknowledged.push_back(id);
                const auto at = promoted_at.load();
                if (at != 0 && !first_after) {
                    first_after = Clock::now();
                    wrote_after = true;
                    first_port = port;
                }
            } catch (const Error& error) {
                if (killed.load())
                    ++failures[dbpool::to_string(error.code())];
                else
                    ++failures[std::string("before the kill: ") + error.what()];
            }
            if (first_after) break;
            std::this_thread::sleep_for(5ms);
        }
    });
    std::this_thread::sleep_for(300ms);
    const auto kill_started = Clock::now();
    killed = true;
    REQUIRE(bed().run("kill9", 1) == 0);
    const auto kill_done = Clock::now();
    REQUIRE(bed().run("promote", 2) == 0);
    const auto promoted = Clock::now();
    promoted_at = promoted.time_since_epoch().count();
    for (int i = 0; i < 1000 && !wrote_after.load() && Clock::now() < promoted + 10s; ++i)
        std::this_thread::sleep_for(10ms);
    stop = true;
    writer.join();

    REQUIRE(first_after);
    CHECK(first_port == bed().port(2));
    std::int64_t missing = 0;
    {
        dbpool::pg::Connection n2(bed().node(2));
        CHECK(n2.query("SELECT pg_is_in_recovery()").scalar<bool>() == false);
        for (const std::int64_t id : acknowledged) {
            if (n2.query("SELECT count(*) FROM router_items WHERE id = $1", id)
                    .scalar<std::int64_t>() != 1) {
                ++missing;
            }
        }
    }
    std::string seen;
    for (const auto& [code, count] : failures)
        seen += (seen.empty() ? "" : ", ") + code + " " + std::to_string(count);
    const auto stats = router.stats();
    report("promote",
           std::to_string(acknowledged.size()) + " writes acknowledged, " +
               std::to_string(missing) + " of them missing on the promoted n2; " +
               "failed writes: " + (seen.empty() ? "none" : seen) + "; the kill -9 script took " +
               std::to_string(ms(kill_done - kill_started)) + " ms; pg_ctl promote " +
               std::to_string(ms(promoted - kill_done)) + " ms; first write on n2 " +
               std::to_string(ms(*first_after - promoted)) +
               " ms after the promotion (health interval " + std::to_string(kInterval.count()) +
               " ms); n2 now " + dbpool::to_string(stats[1].health.state) + ", n3 " +
               dbpool::to_string(stats[2].health.state));
    CHECK(missing == 0);
    for (const auto& [code, count] : failures) {
        CHECK((code == "connect_failed" || code == "connection_lost" || code == "commit_unknown" ||
               code == "node_unavailable"));
    }
    CHECK(*first_after - promoted <= 1500ms);
    // The bed is left with n1 dead and n3 following it: a test that runs after this one
    // rebuilds it (ensure_up, 6-13 s), and the fixture's stop removes it. Declared last, it runs
    // last in a fresh build tree; once ctest has timings it may run it first (the longest), and
    // the next test pays the rebuild: never more than rebuilding here would cost.
}

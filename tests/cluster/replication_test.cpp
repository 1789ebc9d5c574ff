// The Router over a real primary + 2 GTID replicas (scripts/replication.sh): role routing,
// read-your-writes, a lagging replica leaving and rejoining the reads, and a killed primary.
// Every loop is bounded in count and time; every test prints what it measured.
#include <dbpool/dbpool.hpp>
#include <dbpool/mysql.hpp>
#include <dbpool/mysql/cluster.hpp>
#include <dbpool/mysql/multi_host.hpp>
#include <dbpool/router.hpp>

#include <catch2/catch.hpp>

#include "cluster_env.hpp"
#include "router_support.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using dbpool::Access;
using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::mysql::Connection;
using namespace dbpool_cluster;

namespace {

long server_id(ClusterRouter::handle_type& conn) {
    return conn->query("SELECT @@server_id").scalar<long>();
}

// The replica's real lag from its own heartbeat row, as root (not through dbpool's check).
long long true_lag_ms(Connection& admin) {
    return admin.query("SELECT TIMESTAMPDIFF(MICROSECOND, MAX(ts), NOW(6)) DIV 1000 FROM heartbeat")
        .scalar<long long>();
}

void prepare_table(const TestBed& bed) {
    Connection admin(bed.admin(1));
    admin.execute(
        "CREATE TABLE IF NOT EXISTS router_items (id INT AUTO_INCREMENT PRIMARY KEY,"
        " note VARCHAR(64) NOT NULL) ENGINE=InnoDB");
    admin.execute("DELETE FROM router_items");
}

}  // namespace

TEST_CASE("writes go to the primary, reads spread over the replicas", "[cluster][replication]") {
    const TestBed& bed = replication();
    REQUIRE(bed.ensure_up());
    prepare_table(bed);
    dbpool::RouterOptions options;
    options.health_interval = 250ms;
    auto router = replication_router(options);

    {
        auto conn = router->connection(Access::write);
        CHECK(conn.node_name() == "n1");
        CHECK(server_id(conn) == 1);
        conn->execute("INSERT INTO router_items (note) VALUES (?)", "from the router");
    }
    std::map<long, int> served;
    for (int i = 0; i < 40; ++i) {
        auto conn = router->connection(Access::read);
        ++served[server_id(conn)];
    }
    CHECK(served[1] == 0);
    CHECK(served[2] >= 15);
    CHECK(served[3] >= 15);

    // A replica refuses writes from a user without READ ONLY ADMIN: 1290, typed.
    {
        auto conn = router->connection(Access::read);
        try {
            conn->execute("INSERT INTO router_items (note) VALUES (?)", "must fail");
            FAIL("a write on a read_only replica succeeded");
        } catch (const Error& error) {
            CHECK(error.native_code() == 1290);
            CHECK(error.code() == ErrorCode::read_only);
        }
    }
    const auto stats = router->stats();
    REQUIRE(stats.size() == 3);
    CHECK(stats[0].writes == 1);
    CHECK(stats[0].reads == 0);
    CHECK(stats[1].reads + stats[2].reads == 41);
    CHECK(stats[1].health.state == dbpool::NodeState::healthy);
    CHECK(stats[1].health.lag.count() >= 0);
    report("roles", "40 reads: n2=" + std::to_string(served[2]) +
                        " n3=" + std::to_string(served[3]) + " n1=" + std::to_string(served[1]) +
                        "; replica lag n2=" + std::to_string(stats[1].health.lag.count()) +
                        " ms n3=" + std::to_string(stats[2].health.lag.count()) + " ms");
}

TEST_CASE("make_cluster_router(url): a password with '?', '/', '@', ',' and '#' connects",
          "[cluster][replication]") {
    const TestBed& bed = replication();
    REQUIRE(bed.ensure_up());
    prepare_table(bed);
    // A user of its own with such a password (created on the primary, replicated).
    const std::string password = "p?w/d@x:#,1";
    {
        Connection admin(bed.admin(1));
        admin.execute("CREATE OR REPLACE USER 'dbpool_odd'@'127.0.0.1' IDENTIFIED BY '" + password +
                      "'");
        admin.execute("GRANT ALL PRIVILEGES ON `" + bed.database +
                      "`.* TO 'dbpool_odd'@'127.0.0.1'");
        admin.execute("GRANT PROCESS, SLAVE MONITOR ON *.* TO 'dbpool_odd'@'127.0.0.1'");
    }
    Connection admin3(bed.admin(3));
    REQUIRE(eventually([&] {
        return admin3.query("SELECT COUNT(*) FROM mysql.user WHERE user = 'dbpool_odd'")
                   .scalar<long>() == 1;
    }));
    std::string url = "mysql://dbpool_odd:" + password + "@";
    for (int n = 1; n <= bed.nodes(); ++n)
        url += (n > 1 ? "," : "") + std::string("127.0.0.1:") + std::to_string(bed.ports.at(n - 1));
    url += "/" + bed.database + "?connect_timeout=2";

    dbpool::mysql::ClusterOptions options;
    options.pool = test_pool_options();
    options.router.health_interval = 250ms;
    options.check.heartbeat_table = "heartbeat";
    auto router = dbpool::mysql::make_cluster_router(url, options);
    {
        auto conn = router->connection(Access::write);
        conn->execute("INSERT INTO router_items (note) VALUES (?)", "odd password");
        CHECK(conn.node_name() == "127.0.0.1:" + std::to_string(bed.ports.at(0)));
    }
    std::map<std::string, int> served;
    for (int i = 0; i < 20; ++i)
        ++served[router->connection(Access::read).node_name()];
    CHECK(served.size() == 2);
    // The same URL with one host: one grammar.
    const auto one = dbpool::mysql::ConnectOptions::from_url(
        "mysql://dbpool_odd:" + password + "@127.0.0.1:" + std::to_string(bed.ports.at(0)) + "/" +
        bed.database);
    CHECK(Connection(one).query("SELECT 1").scalar<long>() == 1);
    // A password equal to the user name: the message names the user, and masking must neither
    // turn that into "<password>" (which would tell the reader the password) nor show it: the
    // user name reads "<user>" (detail/redact.hpp).
    {
        Connection admin(bed.admin(1));
        admin.execute(
            "CREATE OR REPLACE USER 'dbpool_same'@'127.0.0.1' IDENTIFIED BY 'dbpool_same'");
    }
    auto same = bed.node(1);
    same.user = "dbpool_same";
    same.password = "dbpool_same";
    same.database = "dbpool_no_such_db";
    try {
        Connection refused(same);
        FAIL("connected to a database the user may not use");
    } catch (const Error& error) {
        const std::string what = error.what();
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK(what.find("<user>@127.0.0.1") != std::string::npos);
        CHECK(what.find("dbpool_same") == std::string::npos);
        CHECK(what.find("<password>") == std::string::npos);
        report("odd-password", "user = password: " + what);
    }
    report("odd-password", "make_cluster_router with password '" + std::string("p?w/d@x:#,1") +
                               "' wrote to n1 and read from " + std::to_string(served.size()) +
                               " replicas");
}

TEST_CASE("max() durations and close(): no busy probe, nothing opened after close",
          "[cluster][replication]") {
    const TestBed& bed = replication();
    REQUIRE(bed.ensure_up());
    dbpool::RouterOptions options;
    options.health_interval = std::chrono::milliseconds::max();
    options.down_backoff = std::chrono::milliseconds::max();
    std::vector<std::shared_ptr<std::atomic<long>>> connects;
    auto router = replication_router(options, 2s, test_pool_options(), &connects);
    const auto checks = [&] {
        std::uint64_t total = 0;
        for (const auto& node : router->stats())
            total += static_cast<std::uint64_t>(node.health.checked_at.time_since_epoch().count());
        return total;
    };
    const auto before = checks();
    std::this_thread::sleep_for(300ms);
    CHECK(checks() == before);  // health_interval = max(): never, not a busy loop
    {
        auto conn = router->connection(Access::read);
        CHECK(conn->query("SELECT 1").scalar<long>() == 1);
    }
    std::thread other([&] { router->close(); });
    router->close();
    other.join();
    std::vector<long> opened;
    for (const auto& counter : connects)
        opened.push_back(counter->load());
    router->check_health();
    for (std::size_t i = 0; i < connects.size(); ++i)
        CHECK(connects[i]->load() == opened[i]);
    CHECK_THROWS_AS(router->connection(Access::read), Error);
}

TEST_CASE("read-your-writes sends a session's reads to the primary for a while",
          "[cluster][replication]") {
    const TestBed& bed = replication();
    REQUIRE(bed.ensure_up());
    prepare_table(bed);
    dbpool::RouterOptions options;
    options.health_interval = 250ms;
    options.read_your_writes = 400ms;
    auto router = replication_router(options);

    dbpool::RouterSession session;
    {
        auto conn = router->connection(Access::read, session);
        CHECK(conn.node_name() != "n1");  // nothing written yet
    }
    {
        auto conn = router->connection(Access::write, session);
        conn->execute("INSERT INTO router_items (note) VALUES (?)", "mine");
    }
    {
        auto conn = router->connection(Access::read, session);
        CHECK(conn.node_name() == "n1");
        CHECK(conn->query("SELECT COUNT(*) FROM router_items WHERE note = 'mine'").scalar<long>() ==
              1);
    }
    // Another session (or none) is not affected.
    {
        auto conn = router->connection(Access::read);
        CHECK(conn.node_name() != "n1");
    }
    std::this_thread::sleep_for(450ms);
    {
        auto conn = router->connection(Access::read, session);
        CHECK(conn.node_name() != "n1");
    }
}

TEST_CASE("a lagging replica leaves the reads within one health interval and comes back",
          "[cluster][replication][lag]") {
    const TestBed& bed = replication();
    REQUIRE(bed.ensure_up());
    constexpr auto kInterval = 250ms;
    constexpr auto kMaxLag = 1500ms;
    dbpool::RouterOptions options;
    options.health_interval = kInterval;
    auto router = replication_router(options, kMaxLag);
    Connection admin2(bed.admin(2));

    REQUIRE(bed.run("stop-sql", 2) == 0);
    const auto stopped = Clock::now();
    std::optional<Clock::time_point> crossed;  // true lag first above max_replica_lag
    Clock::time_point last_on_n2 = stopped;
    long reads = 0;
    long failures = 0;
    for (int i = 0; i < 1000 && Clock::now() < stopped + 12s; ++i) {
        const long long lag = true_lag_ms(admin2);
        const auto now = Clock::now();
        if (!crossed && lag > kMaxLag.count()) crossed = now;
        try {
            auto conn = router->connection(Access::read);
            conn->query("SELECT 1");
            ++reads;
            if (conn.node_name() == "n2") last_on_n2 = Clock::now();
        } catch (const Error&) {
            ++failures;
        }
        if (crossed && now > *crossed + 1500ms) break;
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(crossed);
    const auto left_after = last_on_n2 - *crossed;
    const auto state_lagging = router->stats()[1].health;
    CHECK(state_lagging.state == dbpool::NodeState::lagging);

    REQUIRE(bed.run("start-sql", 2) == 0);
    const auto restarted = Clock::now();
    std::optional<Clock::time_point> caught_up;
    std::optional<Clock::time_point> back_on_n2;
    for (int i = 0; i < 1000 && Clock::now() < restarted + 12s; ++i) {
        const long long lag = true_lag_ms(admin2);
        const auto now = Clock::now();
        if (!caught_up && lag <= kMaxLag.count()) caught_up = now;
        try {
            auto conn = router->connection(Access::read);
            conn->query("SELECT 1");
            ++reads;
            if (conn.node_name() == "n2") {
                back_on_n2 = Clock::now();
                break;
            }
        } catch (const Error&) {
            ++failures;
        }
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(caught_up);
    REQUIRE(back_on_n2);
    const auto returned_after = *back_on_n2 - *caught_up;
    report("lag", "SQL thread stopped; true lag passed " + std::to_string(kMaxLag.count()) +
                      " ms after " + std::to_string(ms(*crossed - stopped)) +
                      " ms; last read on n2 " + std::to_string(ms(left_after)) +
                      " ms after that (health interval " + std::to_string(kInterval.count()) +
                      " ms); after START SLAVE the lag was back under the limit in " +
                      std::to_string(ms(*caught_up - restarted)) + " ms and reads returned to n2 " +
                      std::to_string(ms(returned_after)) + " ms later; " + std::to_string(reads) +
                      " reads, " + std::to_string(failures) + " failed");
    CHECK(failures == 0);
    // One health interval, plus what one probe round, one read and this loop's own lag query
    // take on a busy 2-core machine under a sanitizer (measured: tens of ms).
    CHECK(left_after <= kInterval + 500ms);
    CHECK(returned_after <= kInterval + 500ms);
}

TEST_CASE("kill -9 of the primary: writes fail fast and typed, reads go on from the replicas",
          "[cluster][replication][kill]") {
    const TestBed& bed = replication();
    REQUIRE(bed.ensure_up());
    prepare_table(bed);
    dbpool::RouterOptions options;
    options.health_interval = 250ms;
    options.read_your_writes = 1h;
    std::vector<std::shared_ptr<std::atomic<long>>> connects;
    auto router = replication_router(options, 2s, test_pool_options(), &connects);
    dbpool::RouterSession session;  // wrote before the kill: its reads need the primary
    {
        auto conn = router->connection(Access::write, session);
        conn->execute("INSERT INTO router_items (note) VALUES (?)", "before");
    }
    // A second router whose replicas measure Seconds_Behind_Master: it turns NULL ("lagging")
    // on both the moment the primary dies, so no replica qualifies; reads must still skip the
    // dead primary and stay spread (they went 98.5 % to one replica, each after trying it).
    std::vector<std::shared_ptr<std::atomic<long>>> sbm_connects;
    dbpool::RouterOptions sbm_options;
    sbm_options.health_interval = 250ms;
    auto sbm = replication_router(sbm_options, 2s, test_pool_options(), &sbm_connects, "");
    std::atomic<bool> sbm_killed{false};
    std::array<std::atomic<long>, 3> sbm_after_kill{};
    std::atomic<long> sbm_failed{0};
    std::thread sbm_reader([&] {
        for (int i = 0; i < 100000 && !sbm_killed.load(); ++i) {
            std::this_thread::sleep_for(2ms);  // runs until the kill, then the loop below
        }
        const auto until = Clock::now() + 3s;
        while (Clock::now() < until) {
            try {
                auto conn = sbm->connection(Access::read);
                conn->query("SELECT COUNT(*) FROM router_items");
                ++sbm_after_kill.at(conn.node());
            } catch (const Error&) {
                ++sbm_failed;
            }
            std::this_thread::sleep_for(2ms);
        }
    });

    std::atomic<bool> stop{false};
    std::atomic<long> reads_ok{0};
    std::atomic<long> reads_failed{0};
    std::thread reader([&] {
        for (int i = 0; i < 100000 && !stop.load(); ++i) {
            try {
                auto conn = router->connection(Access::read);
                conn->query("SELECT COUNT(*) FROM router_items");
                ++reads_ok;
            } catch (const Error&) {
                ++reads_failed;
            }
            std::this_thread::sleep_for(2ms);
        }
    });

    REQUIRE(bed.run("kill9", 1) == 0);
    const auto killed = Clock::now();
    sbm_killed = true;
    const long connects_before = connects[0]->load();
    const auto sbm_primary_failures_before = sbm->stats()[0].failed_acquires;

    // Eight threads at once through a multi-host creator whose only host is the dead primary:
    // one attempt per back-off period (500 ms, then 1 s), however many callers; and the
    // first wave's failures count once, so the second attempt comes 500 ms later, not 5 s.
    dbpool::mysql::MultiHostOptions dead;
    dead.hosts.push_back(bed.node(1));
    dead.host_backoff = 500ms;
    dead.host_backoff_max = 5s;
    dbpool::mysql::MultiHostConnector<> creator(dead);
    std::atomic<long> first_wave{-1};
    std::vector<std::thread> burst;
    for (int t = 0; t < 8; ++t) {
        burst.emplace_back([&] {
            for (int i = 0; i < 1000 && Clock::now() < killed + 2500ms; ++i) {
                try {
                    (void)creator();
                } catch (const Error&) {
                }
                std::this_thread::sleep_for(5ms);
            }
        });
    }
    std::thread first_wave_reader([&] {
        std::this_thread::sleep_for(250ms);
        first_wave = static_cast<long>(creator.attempts());
    });

    // A read-your-writes read needs the primary: it fails, and says it was such a read.
    try {
        (void)router->connection(Access::read, session);
        FAIL("a read-your-writes read was served without the primary");
    } catch (const Error& error) {
        const std::string what = error.what();
        CHECK(what.find("no node could serve a read-your-writes read") != std::string::npos);
        CHECK(what.find("serve a write") == std::string::npos);
    }
    long writes_failed = 0;
    long writes_ok = 0;
    std::map<std::string, long> codes;
    Clock::duration slowest{0};
    while (Clock::now() < killed + 3s) {
        const auto began = Clock::now();
        try {
            auto conn = router->connection(Access::write);
            conn->execute("INSERT INTO router_items (note) VALUES (?)", "during");
            ++writes_ok;
        } catch (const Error& error) {
            ++writes_failed;
            ++codes[dbpool::to_string(error.code())];
            CHECK(std::string(error.what()).find(bed.password) == std::string::npos);
        }
        slowest = std::max(slowest, Clock::now() - began);
        std::this_thread::sleep_for(5ms);
    }
    const long reads_during = reads_ok.load();
    // Creator calls for the primary: the pools' and the router probe's together.
    const long attempts = connects[0]->load() - connects_before;
    for (auto& thread : burst)
        thread.join();
    first_wave_reader.join();
    sbm_reader.join();
    const long burst_attempts = static_cast<long>(creator.attempts());
    const auto sbm_primary_failures = sbm->stats()[0].failed_acquires - sbm_primary_failures_before;
    const auto sbm_stats = sbm->stats();

    REQUIRE(bed.run("restart", 1) == 0);
    const auto restarted = Clock::now();
    bool written_again = eventually(
        [&] {
            try {
                auto conn = router->connection(Access::write);
                conn->execute("INSERT INTO router_items (note) VALUES (?)", "after");
                return true;
            } catch (const Error&) {
                return false;
            }
        },
        10s);
    const auto writes_back_after = Clock::now() - restarted;
    // The replicas reconnect to the restarted primary (MASTER_CONNECT_RETRY=1) and catch up.
    Connection admin3(bed.admin(3));
    const bool replicated = eventually(
        [&] {
            return admin3.query("SELECT COUNT(*) FROM router_items WHERE note = 'after'")
                       .scalar<long>() >= 1;
        },
        10s);
    stop = true;
    reader.join();

    std::string code_text;
    for (const auto& [code, n] : codes)
        code_text += " " + code + "=" + std::to_string(n);
    const long sbm_reads = sbm_after_kill[0] + sbm_after_kill[1] + sbm_after_kill[2];
    report("kill-primary",
           "Seconds_Behind_Master router, 3 s after the kill: replicas " +
               std::string(dbpool::to_string(sbm_stats[1].health.state)) + "/" +
               dbpool::to_string(sbm_stats[2].health.state) + "; " + std::to_string(sbm_reads) +
               " reads: n1=" + std::to_string(sbm_after_kill[0]) + " n2=" +
               std::to_string(sbm_after_kill[1]) + " n3=" + std::to_string(sbm_after_kill[2]) +
               ", " + std::to_string(sbm_failed.load()) + " failed; " +
               std::to_string(sbm_primary_failures) + " failed acquires on n1");
    report("kill-primary",
           "8 threads through a multi-host creator of the dead primary for 2.5 s: " +
               std::to_string(first_wave.load()) + " attempts in the first 250 ms, " +
               std::to_string(burst_attempts) + " in all");
    report("kill-primary", std::to_string(writes_failed) + " writes failed in 3 s (" + code_text +
                               " ), slowest " + std::to_string(ms(slowest)) + " ms, " +
                               std::to_string(attempts) +
                               " connect attempts to the dead primary; " +
                               std::to_string(reads_during) + " reads succeeded meanwhile, " +
                               std::to_string(reads_failed.load()) + " failed; writes back " +
                               std::to_string(ms(writes_back_after)) + " ms after the restart");
    CHECK(writes_ok == 0);
    CHECK(writes_failed > 0);
    for (const auto& [code, n] : codes) {
        CHECK((code == "connect_failed" || code == "connection_lost"));
    }
    CHECK(slowest < 1s);
    CHECK(reads_failed.load() == 0);
    CHECK(reads_during > 100);
    // The pool's back-off (100 ms doubling to 1 s) and the probe (every 250 ms) bound the
    // attempts over 3 s: no connect storm.
    CHECK(attempts <= 30);
    CHECK(written_again);
    CHECK(replicated);
    // Known down: reads never tried the dead primary first, and stayed spread.
    CHECK(sbm_failed.load() == 0);
    CHECK(sbm_after_kill[0] == 0);
    CHECK(sbm_primary_failures <= 1);
    CHECK(sbm_reads > 100);
    CHECK(sbm_after_kill[1] >= sbm_reads / 3);
    CHECK(sbm_after_kill[2] >= sbm_reads / 3);
    // One attempt per back-off period after the first wave: 0.5 s and 1.5 s -> 2 more; the
    // first wave's failures counted once, so the retry at 0.5 s did happen.
    CHECK(first_wave.load() >= 1);
    CHECK(burst_attempts > first_wave.load());
    CHECK(burst_attempts <= first_wave.load() + 3);
}

TEST_CASE("kill -9 of a replica: reads move to the other replica without errors, then return",
          "[cluster][replication][kill]") {
    const TestBed& bed = replication();
    REQUIRE(bed.ensure_up());
    dbpool::RouterOptions options;
    options.health_interval = 250ms;
    auto router = replication_router(options);

    constexpr int kThreads = 4;
    std::atomic<bool> stop{false};
    std::atomic<bool> killed{false};
    std::atomic<long> reads_ok{0};
    std::atomic<long> on_n3_after_kill{0};
    std::atomic<long> failed{0};
    std::atomic<long> untyped{0};  // anything but connection_lost
    std::vector<std::thread> readers;
    for (int t = 0; t < kThreads; ++t) {
        readers.emplace_back([&] {
            for (int i = 0; i < 1000000 && !stop.load(); ++i) {
                try {
                    auto conn = router->connection(Access::read);
                    conn->query("SELECT @@server_id");
                    ++reads_ok;
                    if (killed.load() && conn.node_name() == "n3") ++on_n3_after_kill;
                } catch (const Error& error) {
                    ++failed;
                    if (error.code() != ErrorCode::connection_lost) ++untyped;
                }
                std::this_thread::sleep_for(1ms);
            }
        });
    }
    std::this_thread::sleep_for(500ms);
    REQUIRE(bed.run("kill9", 3) == 0);
    killed = true;
    std::this_thread::sleep_for(2s);
    const long failed_while_down = failed.load();
    const long stray = on_n3_after_kill.load();
    const auto down = router->stats()[2];
    REQUIRE(bed.run("restart", 3) == 0);
    const auto restarted = Clock::now();
    const long before = static_cast<long>(router->stats()[2].reads);
    const bool back =
        eventually([&] { return static_cast<long>(router->stats()[2].reads) > before; }, 10s);
    const auto back_after = Clock::now() - restarted;
    stop = true;
    for (auto& reader : readers)
        reader.join();
    report("kill-replica",
           std::to_string(reads_ok.load()) + " reads from " + std::to_string(kThreads) +
               " threads, " + std::to_string(failed.load()) + " failed (" +
               std::to_string(failed_while_down) + " while n3 was down); n3 " +
               dbpool::to_string(down.health.state) + " (" + down.health.reason +
               "); reads on n3 again " + std::to_string(ms(back_after)) + " ms after its restart");
    // Only a read in flight on n3 when it died can fail (2013, connection_lost): a ping on
    // every hand-out (ping_bypass 0) finds a dead connection before it is used, and the router
    // moves on to n2.
    CHECK(failed.load() <= kThreads);
    CHECK(untyped.load() == 0);
    CHECK(stray == 0);
    CHECK(down.health.state == dbpool::NodeState::unavailable);
    CHECK(back);
}

TEST_CASE("multi-host connector against the real nodes: failover and round robin",
          "[cluster][replication][multi]") {
    const TestBed& bed = replication();
    REQUIRE(bed.ensure_up());
    // A host where nothing listens first: in_order skips it after its first failure.
    dbpool::mysql::MultiHostOptions failover;
    failover.hosts = {bed.node(1), bed.node(2)};
    failover.hosts[0].port = 1;  // nothing listens on port 1 of 127.0.0.1
    failover.host_backoff = 5s;
    dbpool::mysql::MultiHostConnector<> first_alive(failover);
    for (int i = 0; i < 5; ++i) {
        Connection conn = first_alive();
        CHECK(conn.query("SELECT @@server_id").scalar<long>() == 2);
    }
    CHECK(first_alive.attempts() == 6);  // one failure, then the dead host is skipped

    // The same from a URL, round robin over all three nodes.
    std::string url = "mysql://" + bed.user + ":" + bed.password + "@";
    for (int n = 1; n <= bed.nodes(); ++n) {
        url += (n > 1 ? "," : "") + std::string("127.0.0.1:") + std::to_string(bed.ports[n - 1]);
    }
    url += "/" + bed.database + "?policy=round_robin&connect_timeout=2";
    auto spread = dbpool::mysql::multi_host_connector(url);
    std::vector<long> ids;
    for (int i = 0; i < 6; ++i)
        ids.push_back(spread().query("SELECT @@server_id").scalar<long>());
    CHECK(ids == std::vector<long>{1, 2, 3, 1, 2, 3});
    report("multi-host", "in_order with a dead first host: 5 connects, " +
                             std::to_string(first_alive.attempts()) +
                             " attempts; round robin server ids: 1 2 3 1 2 3");
}

// The Router over a real three-node Galera cluster (scripts/galera.sh): balance transfers
// from 8 threads while the write node is killed with -9 and later restarted, and a node
// partitioned with gmcast.isolate. Every loop is bounded in count and time; every test prints
// what it measured.
#include <dbpool/dbpool.hpp>
#include <dbpool/mysql.hpp>
#include <dbpool/router.hpp>

#include <catch2/catch.hpp>

#include "cluster_env.hpp"
#include "router_support.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using dbpool::Access;
using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::mysql::Connection;
using namespace dbpool_cluster;

namespace {

constexpr int kAccounts = 20;
constexpr long long kStartBalance = 1000;

std::int64_t since_ns(Clock::time_point origin) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - origin).count();
}

void reset_accounts(const TestBed& bed) {
    Connection admin(bed.admin(1));
    admin.execute(
        "CREATE TABLE IF NOT EXISTS galera_accounts (id INT PRIMARY KEY,"
        " balance BIGINT NOT NULL) ENGINE=InnoDB");
    admin.execute("DELETE FROM galera_accounts");
    for (int id = 0; id < kAccounts; ++id) {
        admin.execute("INSERT INTO galera_accounts VALUES (?, ?)", id, kStartBalance);
    }
}

long long total_on(const TestBed& bed, int node) {
    Connection admin(bed.admin(node));
    // wsrep_sync_wait: the read waits until the node applied everything committed before it.
    admin.execute("SET SESSION wsrep_sync_wait = 1");
    return admin.query("SELECT CAST(SUM(balance) AS SIGNED) FROM galera_accounts")
        .scalar<long long>();
}

// What happened to transactions, by where they ran and how they failed.
struct Outcomes {
    std::mutex mutex;
    std::map<std::string, long> by_code;  // "code/native"
    std::map<std::string, long> by_node;  // node name of failed transactions
    long on_dead_node = 0;                // failed while holding a connection to the victim
    long conflicts_elsewhere = 0;         // 1213 on a surviving node (failover/failback)
    long unexpected = 0;                  // anything else
    std::string unexpected_example;

    void add(const Error& error, const std::string& node, bool on_victim) {
        std::lock_guard<std::mutex> lock(mutex);
        ++by_code[std::string(dbpool::to_string(error.code())) + "/" +
                  std::to_string(error.native_code())];
        ++by_node[node.empty() ? "(acquire)" : node];
        if (on_victim) {
            ++on_dead_node;
        } else if (error.code() == dbpool::ErrorCode::transaction_conflict) {
            ++conflicts_elsewhere;
        } else {
            ++unexpected;
            if (unexpected_example.empty()) unexpected_example = node + ": " + error.what();
        }
    }
};

}  // namespace

TEST_CASE("Galera: kill -9 of the write node under 8 threads of transfers, then restart",
          "[cluster][galera][kill]") {
    const TestBed& bed = galera();
    REQUIRE(bed.ensure_up());
    reset_accounts(bed);

    dbpool::RouterOptions options;
    options.health_interval = 250ms;
    options.down_backoff = 2s;
    auto router = galera_router(options);
    const std::string victim = "g1";  // the first peer: the write node while it is healthy
    {
        auto conn = router->connection(Access::write);
        REQUIRE(conn.node_name() == victim);
    }

    constexpr int kThreads = 8;
    const auto origin = Clock::now();
    const auto hard_deadline = origin + 60s;
    std::atomic<bool> stop{false};
    std::atomic<bool> killed{false};
    std::atomic<std::int64_t> killed_at{std::numeric_limits<std::int64_t>::max()};
    std::atomic<std::int64_t> first_commit_after_kill{std::numeric_limits<std::int64_t>::max()};
    std::atomic<std::int64_t> last_commit{0};
    std::atomic<std::int64_t> longest_gap{0};
    std::atomic<long> commits{0};
    std::atomic<long> reads{0};
    std::atomic<long> read_failures{0};
    Outcomes outcomes;

    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
        workers.emplace_back([&, t] {
            std::minstd_rand random(static_cast<unsigned>(t + 1));
            std::uniform_int_distribution<int> account(0, kAccounts - 1);
            for (long i = 0; i < 1000000 && !stop.load() && Clock::now() < hard_deadline; ++i) {
                int from = account(random);
                int to = account(random);
                if (from == to) to = (to + 1) % kAccounts;
                std::string node;
                bool on_victim = false;
                try {
                    auto conn = router->connection(Access::write);
                    node = conn.node_name();
                    on_victim = node == victim;
                    conn.begin();
                    const int first = std::min(from, to);
                    const int second = std::max(from, to);
                    conn->execute("UPDATE galera_accounts SET balance = balance + ? WHERE id = ?",
                                  first == from ? -1 : 1, first);
                    conn->execute("UPDATE galera_accounts SET balance = balance + ? WHERE id = ?",
                                  second == from ? -1 : 1, second);
                    conn.commit();
                    const std::int64_t now = since_ns(origin);
                    const std::int64_t previous = last_commit.exchange(now);
                    if (killed.load() && !on_victim) {
                        std::int64_t seen = first_commit_after_kill.load();
                        while (now < seen &&
                               !first_commit_after_kill.compare_exchange_weak(seen, now)) {
                        }
                        std::int64_t gap = longest_gap.load();
                        while (now - previous > gap &&
                               !longest_gap.compare_exchange_weak(gap, now - previous)) {
                        }
                    }
                    ++commits;
                } catch (const Error& error) {
                    outcomes.add(error, node, on_victim);
                }
                try {
                    auto conn = router->connection(Access::read);
                    conn->query("SELECT balance FROM galera_accounts WHERE id = ?", from);
                    ++reads;
                } catch (const Error& error) {
                    ++read_failures;
                }
            }
        });
    }

    std::this_thread::sleep_for(3s);
    const long commits_before = commits.load();
    const auto before_stats = router->stats();
    REQUIRE(bed.run("kill9", 1) == 0);
    killed_at = since_ns(origin);
    killed = true;
    std::this_thread::sleep_for(6s);
    const auto dead_stats = router->stats();
    const auto restart_began = Clock::now();
    const int restarted = bed.run("restart", 1);
    const auto rejoin_time = Clock::now() - restart_began;
    // The restarted node must be seen healthy and take work again.
    const bool back = eventually(
        [&] { return router->stats()[0].health.state == dbpool::NodeState::healthy; }, 10s);
    const auto at_rejoin = router->stats();
    std::this_thread::sleep_for(3s);
    stop = true;
    for (auto& worker : workers)
        worker.join();
    const auto after = router->stats();

    const long long recovery_ms = (first_commit_after_kill.load() - killed_at.load()) / 1000000;
    std::string codes;
    for (const auto& [code, n] : outcomes.by_code)
        codes += " " + code + ":" + std::to_string(n);
    std::string nodes;
    for (const auto& [name, n] : outcomes.by_node)
        nodes += " " + name + ":" + std::to_string(n);
    const long g1_writes_after = static_cast<long>(after[0].writes - at_rejoin[0].writes);
    const long g1_reads_after = static_cast<long>(after[0].reads - at_rejoin[0].reads);
    report("galera-kill",
           std::to_string(commits.load()) + " transfers committed (" +
               std::to_string(commits_before) + " before the kill), " +
               std::to_string(reads.load()) + " reads (" + std::to_string(read_failures.load()) +
               " failed); failed transfers:" + codes + " by node:" + nodes + "; on the dead node " +
               std::to_string(outcomes.on_dead_node) + ", certification conflicts elsewhere " +
               std::to_string(outcomes.conflicts_elsewhere) + ", unexpected " +
               std::to_string(outcomes.unexpected) + "; first commit on another node " +
               std::to_string(recovery_ms) + " ms after the kill, longest gap between commits " +
               std::to_string(longest_gap.load() / 1000000) + " ms; restart+IST rejoin took " +
               std::to_string(ms(rejoin_time)) + " ms; after the rejoin g1 served " +
               std::to_string(g1_writes_after) + " writes and " + std::to_string(g1_reads_after) +
               " reads in 3 s");
    if (!outcomes.unexpected_example.empty()) {
        report("galera-kill", "unexpected: " + outcomes.unexpected_example);
    }

    CHECK(restarted == 0);
    CHECK(back);
    CHECK(commits.load() > commits_before);
    CHECK(outcomes.unexpected == 0);
    CHECK(recovery_ms < 10000);
    CHECK(dead_stats[0].health.state == dbpool::NodeState::unavailable);
    CHECK(dead_stats[1].writes > before_stats[1].writes);  // the writes moved to g2
    CHECK(g1_writes_after > 0);                            // and came back to g1
    CHECK(g1_reads_after > 0);
    // Every transfer moves money between two accounts in one transaction: whatever committed,
    // the total is exact on every node.
    const long long expected = kAccounts * kStartBalance;
    for (int n = 1; n <= 3; ++n)
        CHECK(total_on(bed, n) == expected);
}

TEST_CASE("Galera: an isolated node leaves the reads and comes back after rejoining",
          "[cluster][galera][isolate]") {
    const TestBed& bed = galera();
    REQUIRE(bed.ensure_up());
    dbpool::RouterOptions options;
    options.health_interval = 250ms;
    auto router = galera_router(options);
    // A router that learns only from its reads: no probe, and connections handed out without
    // a check (ping_bypass), so only the statement finds g3 not ready (1047). run() must mark
    // g3 down at once and run the read again elsewhere.
    dbpool::RouterOptions lazy_options;
    lazy_options.health_interval = 0ms;
    auto lazy_pool = test_pool_options();
    lazy_pool.ping_bypass = std::chrono::hours(1);
    auto lazy = galera_router(lazy_options, lazy_pool);
    const auto lazy_read = [&] {
        return lazy->run(Access::read, [](ClusterRouter::handle_type& conn) {
            conn->query("SELECT 1 FROM galera_accounts LIMIT 1");
            return conn.node_name();
        });
    };
    for (int i = 0; i < 6; ++i)
        (void)lazy_read();  // an idle connection to every node
    const auto lazy_g3_reads_before = lazy->stats()[2].reads;

    REQUIRE(bed.run("isolate", 3) == 0);
    const auto isolated = Clock::now();
    // The node notices it lost the cluster (suspect timeout), then says wsrep_ready = OFF.
    const bool noticed = eventually(
        [&] { return router->stats()[2].health.state == dbpool::NodeState::unavailable; }, 15s);
    const auto noticed_after = Clock::now() - isolated;
    long on_g3 = 0;
    long failures = 0;
    for (int i = 0; i < 60; ++i) {
        try {
            auto conn = router->connection(Access::read);
            conn->query("SELECT 1 FROM galera_accounts LIMIT 1");
            if (conn.node_name() == "g3") ++on_g3;
        } catch (const Error&) {
            ++failures;
        }
    }
    const auto reason = router->stats()[2].health.reason;
    long lazy_on_g3 = 0;
    long lazy_failures = 0;
    std::string lazy_error;
    for (int i = 0; i < 60; ++i) {
        try {
            if (lazy_read() == "g3") ++lazy_on_g3;
        } catch (const Error& error) {
            ++lazy_failures;
            lazy_error = error.what();
        }
    }
    const auto lazy_g3 = lazy->stats()[2];
    REQUIRE(bed.run("rejoin", 3) == 0);
    const auto rejoined = Clock::now();
    const bool used_again = eventually(
        [&] {
            auto conn = router->connection(Access::read);
            return conn.node_name() == "g3";
        },
        10s);
    report("galera-isolate",
           "isolated g3 reported unavailable after " + std::to_string(ms(noticed_after)) + " ms (" +
               reason + "); " + std::to_string(on_g3) + " of 60 reads on g3 meanwhile, " +
               std::to_string(failures) + " failed; used again " +
               std::to_string(ms(Clock::now() - rejoined)) + " ms after it was Synced");
    report("galera-isolate",
           "without a probe: 60 reads through run(), " + std::to_string(lazy_failures) +
               " failed, " + std::to_string(lazy_g3.reads - lazy_g3_reads_before) +
               " handed out on g3 (refused, run again elsewhere), g3 then " +
               dbpool::to_string(lazy_g3.health.state) + " (" + lazy_g3.health.reason + ")" +
               (lazy_error.empty() ? "" : "; last error: " + lazy_error));
    CHECK(noticed);
    CHECK(on_g3 == 0);
    CHECK(failures == 0);
    CHECK(used_again);
    CHECK(lazy_failures == 0);
    CHECK(lazy_on_g3 == 0);
    CHECK(lazy_g3.reads - lazy_g3_reads_before <= 1);
    CHECK(lazy_g3.health.state == dbpool::NodeState::unavailable);
}

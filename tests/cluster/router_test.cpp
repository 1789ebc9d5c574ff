// The Router's decisions without a server: a fake pool per node whose availability and health
// the test sets. Covers option checks, read/write routing, fallbacks, back-off,
// read-your-writes and concurrent use (run under TSan by scripts/test.sh).
#include <dbpool/error.hpp>
#include <dbpool/node_health.hpp>
#include <dbpool/pool_stats.hpp>
#include <dbpool/router.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using dbpool::Access;
using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::NodeHealth;
using dbpool::NodeRole;
using namespace std::chrono_literals;

namespace {

// A stand-in for PooledPool: hands out tokens while `up`, throws connect_failed otherwise.
class FakePool {
public:
    struct Connection {
        std::string node;
        const FakePool* pool = nullptr;
        // The node's name, or node_unavailable (1047) while the pool is `refusing`, as a
        // Galera node that is not Synced answers a statement on an open connection.
        std::string query() const {
            if (pool != nullptr && pool->refusing) {
                throw Error(ErrorCode::node_unavailable, node + " is not ready", 1047, "08S01");
            }
            return node;
        }
    };

    class handle_type {
    public:
        handle_type() = default;
        explicit handle_type(FakePool* pool) : pool_(pool), connection_{pool->name_, pool} {
            ++pool_->in_use_;
        }
        handle_type(handle_type&& other) noexcept
            : pool_(std::exchange(other.pool_, nullptr)), connection_(other.connection_) {}
        handle_type& operator=(handle_type&& other) noexcept {
            close();
            pool_ = std::exchange(other.pool_, nullptr);
            connection_ = other.connection_;
            return *this;
        }
        handle_type(const handle_type&) = delete;
        handle_type& operator=(const handle_type&) = delete;
        ~handle_type() { close(); }

        const Connection* operator->() const { return &connection_; }
        const Connection& operator*() const { return connection_; }
        void begin() {}
        void commit() {}
        void rollback() {}
        void close() noexcept {
            if (pool_ != nullptr) --std::exchange(pool_, nullptr)->in_use_;
        }
        explicit operator bool() const noexcept { return pool_ != nullptr; }

    private:
        FakePool* pool_ = nullptr;
        Connection connection_;
    };

    // What the router's probe uses: its ping reports the node's health like a real check.
    struct Steady {
        FakePool* pool;
        bool ping() {
            if (!pool->up) {
                pool->health_->report_unavailable("down");
                return false;
            }
            ++pool->pings;
            if (pool->refusing) {
                pool->health_->report_unavailable("not ready");
                return true;
            }
            if (pool->lag.load() < 0) {
                pool->health_->report_lagging(-1ms, "replication stopped");
            } else {
                pool->health_->report_healthy(std::chrono::milliseconds(pool->lag.load()));
            }
            return true;
        }
    };

    FakePool(std::string name, std::shared_ptr<NodeHealth> health)
        : name_(std::move(name)), health_(std::move(health)) {}

    handle_type connection() {
        ++acquires;
        if (!up) throw Error(ErrorCode::connect_failed, name_ + " is down", 2002);
        if (busy) throw Error(ErrorCode::timeout, name_ + " is busy");
        return handle_type(this);
    }
    std::unique_ptr<Steady> steady_connection() const {
        ++probe_connects;
        if (!up) throw Error(ErrorCode::connect_failed, name_ + " is down", 2003);
        return std::make_unique<Steady>(Steady{const_cast<FakePool*>(this)});
    }
    dbpool::PoolStats stats() const {
        dbpool::PoolStats stats;
        stats.in_use = static_cast<std::size_t>(in_use_.load());
        return stats;
    }
    void close() noexcept { closed = true; }

    std::atomic<bool> up{true};
    std::atomic<bool> busy{false};
    std::atomic<bool> refusing{false};
    mutable std::atomic<long> probe_connects{0};
    std::atomic<long> lag{0};  // ms; negative = unknown
    std::atomic<long> acquires{0};
    std::atomic<long> pings{0};
    std::atomic<bool> closed{false};

private:
    std::string name_;
    std::shared_ptr<NodeHealth> health_;
    std::atomic<int> in_use_{0};
};

using Router = dbpool::Router<FakePool>;

struct Cluster {
    std::vector<FakePool*> pools;
    std::unique_ptr<Router> router;
};

// Nodes "n1".."nN" with the given roles; no probe thread unless `interval` > 0.
Cluster make_cluster(const std::vector<NodeRole>& roles, dbpool::RouterOptions options = {},
                     bool with_health = true) {
    if (options.health_interval == std::chrono::seconds(1)) options.health_interval = 0ms;
    Cluster cluster;
    std::vector<dbpool::RouterNode<FakePool>> nodes;
    for (std::size_t i = 0; i < roles.size(); ++i) {
        dbpool::RouterNode<FakePool> node;
        node.name = "n" + std::to_string(i + 1);
        node.role = roles[i];
        if (with_health) node.health = std::make_shared<NodeHealth>();
        node.pool = std::make_unique<FakePool>(node.name, node.health);
        cluster.pools.push_back(node.pool.get());
        nodes.push_back(std::move(node));
    }
    cluster.router = std::make_unique<Router>(std::move(nodes), options);
    return cluster;
}

std::map<std::string, int> spread(Router& router, Access access, int count) {
    std::map<std::string, int> served;
    for (int i = 0; i < count; ++i)
        ++served[router.connection(access)->query()];
    return served;
}

const auto primary = NodeRole::primary;
const auto replica = NodeRole::replica;
const auto peer = NodeRole::peer;

}  // namespace

TEST_CASE("router options: contradictory node sets are refused with a clear error",
          "[cluster][router]") {
    const auto refused = [](const std::vector<NodeRole>& roles, const std::string& words) {
        try {
            make_cluster(roles);
            FAIL("accepted");
        } catch (const Error& error) {
            CHECK(error.code() == ErrorCode::invalid_options);
            CHECK(std::string(error.what()).find(words) != std::string::npos);
        }
    };
    refused({}, "no nodes");
    refused({replica, replica}, "exactly one primary");
    refused({primary, primary}, "exactly one primary");
    refused({peer, primary}, "cannot be mixed");

    std::vector<dbpool::RouterNode<FakePool>> nodes(2);
    nodes[0].name = "same";
    nodes[0].role = primary;
    nodes[0].pool = std::make_unique<FakePool>("same", nullptr);
    nodes[1].name = "same";
    nodes[1].pool = std::make_unique<FakePool>("same", nullptr);
    CHECK_THROWS_AS(Router(std::move(nodes)), Error);
}

TEST_CASE("router: writes to the primary, reads round robin over healthy replicas",
          "[cluster][router]") {
    auto cluster = make_cluster({primary, replica, replica});
    auto& router = *cluster.router;
    CHECK(spread(router, Access::write, 5) == std::map<std::string, int>{{"n1", 5}});
    CHECK(spread(router, Access::read, 10) == std::map<std::string, int>{{"n2", 5}, {"n3", 5}});

    // A replica over its lag limit (or with unknown lag) gets no reads; the other takes all.
    cluster.pools[1]->lag = -1;
    router.check_health();
    CHECK(spread(router, Access::read, 6) == std::map<std::string, int>{{"n3", 6}});

    // Lag within lag_tolerance of the best shares the reads; beyond it, only as a fallback.
    cluster.pools[1]->lag = 500;
    cluster.pools[2]->lag = 0;
    router.check_health();
    CHECK(spread(router, Access::read, 6) == std::map<std::string, int>{{"n2", 3}, {"n3", 3}});
    cluster.pools[1]->lag = 3000;
    router.check_health();
    CHECK(spread(router, Access::read, 6) == std::map<std::string, int>{{"n3", 6}});
    cluster.pools[2]->busy = true;  // n3 times out: the lagging-but-healthy n2 is next
    CHECK(spread(router, Access::read, 2) == std::map<std::string, int>{{"n2", 2}});
    cluster.pools[2]->busy = false;

    // No replica qualifies: the primary serves reads, counted as fallbacks.
    cluster.pools[1]->up = false;
    cluster.pools[2]->lag = -1;
    router.check_health();
    CHECK(spread(router, Access::read, 4) == std::map<std::string, int>{{"n1", 4}});
    const auto stats = router.stats();
    CHECK(stats[0].fallback_reads == 4);
    CHECK(stats[0].writes == 5);
    CHECK(stats[1].health.state == dbpool::NodeState::unavailable);
    CHECK(stats[2].health.state == dbpool::NodeState::lagging);
}

TEST_CASE("router: a dead primary fails writes with a typed error naming it", "[cluster][router]") {
    auto cluster = make_cluster({primary, replica, replica});
    cluster.pools[0]->up = false;
    try {
        (void)cluster.router->connection(Access::write);
        FAIL("wrote to a dead primary");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK(error.native_code() == 2002);
        CHECK(std::string(error.what()).find("n1: n1 is down") != std::string::npos);
    }
    // dbpool never promotes: a replica does not become a writer.
    CHECK(cluster.pools[1]->acquires == 0);
    CHECK(spread(*cluster.router, Access::read, 4).count("n1") == 0);
}

TEST_CASE("router: a replica that fails to connect is tried last for down_backoff",
          "[cluster][router]") {
    dbpool::RouterOptions options;
    options.down_backoff = 200ms;
    auto cluster = make_cluster({primary, replica, replica}, options, false);
    cluster.pools[1]->up = false;
    // Without a NodeHealth the router learns from the failed acquire and moves on.
    CHECK(spread(*cluster.router, Access::read, 6) == std::map<std::string, int>{{"n3", 6}});
    CHECK(cluster.pools[1]->acquires == 1);
    CHECK(cluster.router->stats()[1].backing_off);
    std::this_thread::sleep_for(250ms);
    cluster.pools[1]->up = true;
    CHECK(spread(*cluster.router, Access::read, 4) ==
          std::map<std::string, int>{{"n2", 2}, {"n3", 2}});
}

TEST_CASE("router: Galera peers write to the first healthy one and read from all",
          "[cluster][router]") {
    auto cluster = make_cluster({peer, peer, peer});
    auto& router = *cluster.router;
    CHECK(spread(router, Access::write, 4) == std::map<std::string, int>{{"n1", 4}});
    CHECK(spread(router, Access::read, 9) ==
          std::map<std::string, int>{{"n1", 3}, {"n2", 3}, {"n3", 3}});
    cluster.pools[0]->up = false;
    CHECK(spread(router, Access::write, 4) == std::map<std::string, int>{{"n2", 4}});
    router.check_health();
    CHECK(spread(router, Access::read, 4) == std::map<std::string, int>{{"n2", 2}, {"n3", 2}});
    // Back and healthy: every router agrees on the first node again.
    cluster.pools[0]->up = true;
    router.check_health();
    CHECK(spread(router, Access::write, 2) == std::map<std::string, int>{{"n1", 2}});
    // All down: the error names each node.
    for (auto* pool : cluster.pools)
        pool->up = false;
    try {
        (void)router.connection(Access::write);
        FAIL("wrote to a dead cluster");
    } catch (const Error& error) {
        const std::string what = error.what();
        CHECK(error.code() == ErrorCode::connect_failed);
        for (const char* name : {"n1: ", "n2: ", "n3: "}) {
            CHECK(what.find(name) != std::string::npos);
        }
    }
}

TEST_CASE("router: read-your-writes keeps a session's reads on the write node",
          "[cluster][router]") {
    dbpool::RouterOptions options;
    options.read_your_writes = 150ms;
    auto cluster = make_cluster({primary, replica}, options);
    auto& router = *cluster.router;
    dbpool::RouterSession session;
    CHECK(router.connection(Access::read, session)->query() == "n2");
    CHECK(router.connection(Access::write, session)->query() == "n1");
    CHECK(router.connection(Access::read, session)->query() == "n1");
    CHECK(router.connection(Access::read)->query() == "n2");
    std::this_thread::sleep_for(200ms);
    CHECK(router.connection(Access::read, session)->query() == "n2");
}

TEST_CASE("router: concurrent routing while health changes and the probe runs",
          "[cluster][router][concurrency]") {
    dbpool::RouterOptions options;
    options.health_interval = 1ms;
    options.down_backoff = 1ms;
    auto cluster = make_cluster({primary, replica, replica}, options);
    // make_cluster turned the probe off for the default interval only; this one runs.
    auto& router = *cluster.router;
    std::atomic<bool> stop{false};
    std::atomic<long> served{0};
    std::atomic<long> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t) {
        threads.emplace_back([&, t] {
            dbpool::RouterSession session;
            for (int i = 0; i < 200000 && !stop.load(); ++i) {
                try {
                    auto conn =
                        router.connection(i % 5 == 0 ? Access::write : Access::read, session);
                    if (!conn->query().empty()) ++served;
                } catch (const Error&) {
                    ++failed;
                }
                if (t == 0 && i % 100 == 0) (void)router.stats();
            }
        });
    }
    const auto until = std::chrono::steady_clock::now() + 500ms;
    for (int i = 0; std::chrono::steady_clock::now() < until && i < 100000; ++i) {
        cluster.pools[1 + i % 2]->up = i % 3 != 0;
        cluster.pools[1 + (i + 1) % 2]->lag = i % 4 == 0 ? -1 : 10;
        std::this_thread::sleep_for(1ms);
    }
    stop = true;
    for (auto& thread : threads)
        thread.join();
    CHECK(served.load() > 0);
    // The primary is always up: reads fall back to it and writes succeed, so nothing fails.
    CHECK(failed.load() == 0);
    router.close();
    for (auto* pool : cluster.pools)
        CHECK(pool->closed);
}

TEST_CASE("router: with the primary down, reads skip it and stay spread over the replicas",
          "[cluster][router]") {
    auto cluster = make_cluster({primary, replica, replica});
    auto& router = *cluster.router;
    // The primary dies; with Seconds_Behind_Master both replicas turn "lagging" (NULL) at once.
    cluster.pools[0]->up = false;
    cluster.pools[1]->lag = -1;
    cluster.pools[2]->lag = -1;
    router.check_health();
    const auto served = spread(router, Access::read, 1000);
    CHECK(served.count("n1") == 0);
    CHECK(served.at("n2") == 500);
    CHECK(served.at("n3") == 500);
    // Known down: not one read tried the primary first.
    CHECK(cluster.pools[0]->acquires == 0);

    // Without a NodeHealth the first failed acquire is what tells the router.
    auto bare = make_cluster({primary, replica, replica}, {}, false);
    bare.pools[0]->up = false;
    bare.pools[1]->lag = -1;
    const auto bare_served = spread(*bare.router, Access::read, 100);
    CHECK(bare_served.count("n1") == 0);
    CHECK(bare_served.at("n2") == 50);
    CHECK(bare.pools[0]->acquires == 0);  // healthy replicas come before the primary anyway

    // Every replica down too: the known-down nodes are still tried, last, and taking turns.
    cluster.pools[1]->up = false;
    cluster.pools[2]->up = false;
    router.check_health();
    CHECK_THROWS_AS(router.connection(Access::read), Error);
    CHECK(cluster.pools[0]->acquires == 1);
}

TEST_CASE("router: Galera writes skip a known-down peer", "[cluster][router]") {
    auto cluster = make_cluster({peer, peer, peer});
    cluster.pools[0]->refusing = true;  // answers, but not Synced
    cluster.router->check_health();
    CHECK(spread(*cluster.router, Access::write, 4) == std::map<std::string, int>{{"n2", 4}});
    CHECK(cluster.pools[0]->acquires == 0);
}

TEST_CASE("router: a read refused with node_unavailable runs once more elsewhere",
          "[cluster][router]") {
    dbpool::RouterOptions options;
    options.down_backoff = std::chrono::hours(1);
    auto cluster = make_cluster({peer, peer, peer}, options);
    auto& router = *cluster.router;
    const auto read = [&] {
        return router.run(Access::read, [](auto& conn) { return conn->query(); });
    };
    // The probe has not run since the node stopped being Synced: only the statement tells.
    cluster.pools[1]->refusing = true;
    std::map<std::string, int> served;
    for (int i = 0; i < 30; ++i)
        ++served[read()];
    CHECK(served.count("n2") == 0);
    CHECK(served["n1"] + served["n3"] == 30);
    // One refused statement marked the node down at once, health included.
    CHECK(router.stats()[1].health.state == dbpool::NodeState::unavailable);
    CHECK(router.stats()[1].backing_off);
    CHECK(cluster.pools[1]->acquires == 1);

    // Writes are not run again (the refused statement may be a transaction's later one), but
    // mark the node down too.
    cluster.pools[0]->refusing = true;
    CHECK_THROWS_WITH(router.run(Access::write, [](auto& conn) { return conn->query(); }),
                      Catch::Contains("n1 is not ready"));
    CHECK(router.stats()[0].health.state == dbpool::NodeState::unavailable);
    CHECK(spread(router, Access::write, 2) == std::map<std::string, int>{{"n3", 2}});

    // Nowhere else to go: the original error.
    cluster.pools[2]->refusing = true;
    try {
        (void)read();
        FAIL("read from a refusing node");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::node_unavailable);
    }
    // report_failure for callers that run statements themselves; other errors change nothing.
    auto replication = make_cluster({primary, replica, replica}, options);
    auto conn = replication.router->connection(Access::read);
    const std::size_t node = conn.node();
    replication.router->report_failure(conn, Error(ErrorCode::timeout, "slow"));
    CHECK_FALSE(replication.router->stats()[node].backing_off);
    replication.router->report_failure(conn, Error(ErrorCode::node_unavailable, "not ready"));
    CHECK(replication.router->stats()[node].backing_off);
    CHECK(replication.router->stats()[node].health.state == dbpool::NodeState::unavailable);
}

TEST_CASE("router: max() durations saturate: no busy probe, no overflow", "[cluster][router]") {
    dbpool::RouterOptions options;
    options.health_interval = std::chrono::milliseconds::max();
    options.down_backoff = std::chrono::milliseconds::max();
    options.read_your_writes = std::chrono::milliseconds::max();
    options.lag_tolerance = std::chrono::milliseconds::max();
    auto cluster = make_cluster({primary, replica, replica}, options);
    auto& router = *cluster.router;
    const long pings = cluster.pools[1]->pings.load();  // the constructor's check
    std::this_thread::sleep_for(100ms);
    CHECK(cluster.pools[1]->pings.load() == pings);  // no probe thread spinning

    // A failed acquire backs the node off "forever": until a health check finds it healthy.
    auto bare = make_cluster({primary, replica, replica}, options, false);
    bare.pools[1]->up = false;
    (void)spread(*bare.router, Access::read, 4);
    bare.pools[1]->up = true;
    CHECK(spread(*bare.router, Access::read, 4) == std::map<std::string, int>{{"n3", 4}});
    CHECK(bare.router->stats()[1].backing_off);

    // read_your_writes = max(): a session's reads follow its write for good.
    dbpool::RouterSession session;
    (void)router.connection(Access::write, session);
    CHECK(router.connection(Access::read, session)->query() == "n1");

    dbpool::RouterOptions negative;
    negative.down_backoff = -1ms;
    CHECK_THROWS_WITH(make_cluster({primary, replica}, negative),
                      Catch::Contains("down_backoff must be >= 0"));
}

TEST_CASE("router: close() from two threads, and check_health() after close() opens nothing",
          "[cluster][router][concurrency]") {
    for (int round = 0; round < 20; ++round) {
        dbpool::RouterOptions options;
        options.health_interval = 1ms;
        auto cluster = make_cluster({primary, replica, replica}, options);
        auto& router = *cluster.router;
        for (auto* pool : cluster.pools)
            pool->lag = -1;  // the probe keeps reporting (and its connections keep going)
        std::thread other([&] { router.close(); });
        router.close();
        other.join();
        std::vector<long> connects;
        for (auto* pool : cluster.pools) {
            CHECK(pool->closed);
            pool->up = false;  // a dropped probe connection would be reopened: count it
            connects.push_back(pool->probe_connects.load());
        }
        router.check_health();
        for (std::size_t i = 0; i < cluster.pools.size(); ++i)
            CHECK(cluster.pools[i]->probe_connects.load() == connects[i]);
    }
}

TEST_CASE("router: a read-your-writes read that finds no node says so", "[cluster][router]") {
    dbpool::RouterOptions options;
    options.read_your_writes = 1s;
    auto cluster = make_cluster({primary, replica}, options);
    dbpool::RouterSession session;
    (void)cluster.router->connection(Access::write, session);
    cluster.pools[0]->up = false;
    try {
        (void)cluster.router->connection(Access::read, session);
        FAIL("read from a dead primary");
    } catch (const Error& error) {
        const std::string what = error.what();
        CHECK(what.find("no node could serve a read-your-writes read") != std::string::npos);
        CHECK(what.find("serve a write") == std::string::npos);
    }
}

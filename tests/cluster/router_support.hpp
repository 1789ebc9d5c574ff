#pragma once

// Routers over the test beds, built the way a user would: one PooledPool of CheckedConnection
// per node, each reporting to its NodeHealth.
#include <dbpool/dbpool.hpp>
#include <dbpool/mysql.hpp>
#include <dbpool/mysql/node_check.hpp>
#include <dbpool/router.hpp>

#include "cluster_env.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dbpool_cluster {

using CheckedPool = dbpool::PooledPool<dbpool::mysql::CheckedConnection>;
using ClusterRouter = dbpool::Router<CheckedPool>;

/// Options every test pool starts from: small, fail-fast back-off, a ping on every hand-out
/// (ping_bypass 0) so a connection to a dead node is noticed before it is used.
inline dbpool::PoolOptions test_pool_options() {
    dbpool::PoolOptions options;
    options.maxconnections = 8;
    options.blocking = true;
    options.acquire_timeout = 3s;
    options.ping_bypass = 0ms;
    options.connect_backoff_min = 100ms;
    options.connect_backoff_max = 1s;
    return options;
}

/// A router over the replication bed: node 1 primary, 2 and 3 replicas measured with the
/// heartbeat table (or, with `heartbeat_table` empty, Seconds_Behind_Master).
/// `attempts`, when given, receives one counter of creator calls per node.
inline std::unique_ptr<ClusterRouter> replication_router(
    dbpool::RouterOptions router_options, std::chrono::milliseconds max_replica_lag = 2s,
    dbpool::PoolOptions pool_options = test_pool_options(),
    std::vector<std::shared_ptr<std::atomic<long>>>* attempts = nullptr,
    const std::string& heartbeat_table = "heartbeat") {
    const TestBed& bed = replication();
    std::vector<dbpool::RouterNode<CheckedPool>> nodes;
    for (int n = 1; n <= bed.nodes(); ++n) {
        dbpool::mysql::NodeCheck check;
        check.health = std::make_shared<dbpool::NodeHealth>();
        if (n > 1) {
            check.replica = true;
            check.heartbeat_table = heartbeat_table;
            check.max_replica_lag = max_replica_lag;
        }
        dbpool::RouterNode<CheckedPool> node;
        node.name = "n" + std::to_string(n);
        node.role = n == 1 ? dbpool::NodeRole::primary : dbpool::NodeRole::replica;
        node.health = check.health;
        auto counter = std::make_shared<std::atomic<long>>(0);
        if (attempts != nullptr) attempts->push_back(counter);
        node.pool = std::make_unique<CheckedPool>(
            [connector = dbpool::mysql::CheckedConnector(bed.node(n), std::move(check)), counter] {
                ++*counter;
                return connector();
            },
            pool_options);
        nodes.push_back(std::move(node));
    }
    return std::make_unique<ClusterRouter>(std::move(nodes), router_options);
}

/// A router over the Galera bed: three peers checked for wsrep_ready and Synced.
inline std::unique_ptr<ClusterRouter> galera_router(
    dbpool::RouterOptions router_options, dbpool::PoolOptions pool_options = test_pool_options(),
    std::chrono::seconds read_timeout = 10s) {
    const TestBed& bed = galera();
    std::vector<dbpool::RouterNode<CheckedPool>> nodes;
    for (int n = 1; n <= bed.nodes(); ++n) {
        dbpool::mysql::NodeCheck check;
        check.galera = true;
        check.health = std::make_shared<dbpool::NodeHealth>();
        auto options = bed.node(n);
        // Longer than Galera's failure detection: a write on a surviving node waits that long.
        options.read_timeout = read_timeout;
        options.write_timeout = read_timeout;
        dbpool::RouterNode<CheckedPool> node;
        node.name = "g" + std::to_string(n);
        node.role = dbpool::NodeRole::peer;
        node.health = check.health;
        node.pool = std::make_unique<CheckedPool>(
            dbpool::mysql::CheckedConnector(options, std::move(check)), pool_options);
        nodes.push_back(std::move(node));
    }
    return std::make_unique<ClusterRouter>(std::move(nodes), router_options);
}

/// Node index (0-based) a router's stats name `name`.
inline std::size_t node_index(const ClusterRouter& router, const std::string& name) {
    for (std::size_t i = 0; i < router.size(); ++i) {
        if (router.name(i) == name) return i;
    }
    return router.size();
}

}  // namespace dbpool_cluster

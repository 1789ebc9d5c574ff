#pragma once

#include <dbpool/error.hpp>
#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/multi_host.hpp>
#include <dbpool/mysql/node_check.hpp>
#include <dbpool/node_health.hpp>
#include <dbpool/options.hpp>
#include <dbpool/pooled_pool.hpp>
#include <dbpool/router.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbpool::mysql {

/// How the servers of a cluster relate.
enum class ClusterKind {
    replication,  ///< The first host is the primary, the others are its replicas.
    galera,       ///< Every host is a Galera peer; writes go to the first healthy one.
};

/// Everything make_cluster_router needs besides the hosts.
struct ClusterOptions {
    /// The relation between the hosts.
    ClusterKind kind = ClusterKind::replication;
    /// Options of each node's pool (the same for every node).
    PoolOptions pool;
    /// Options of the router.
    RouterOptions router;
    /// Replication: the lag limit and source of the replicas' check (`replica` is set for
    /// them; `galera` and `health` are ignored: each node gets its own NodeHealth).
    NodeCheck check;
};

/// The pool type of each node: checked connections reporting to the node's NodeHealth.
using ClusterPool = PooledPool<CheckedConnection>;
/// The router make_cluster_router returns.
using ClusterRouter = Router<ClusterPool>;

/// A Router with one pool of CheckedConnections per host, named "host:port". Throws
/// Error{invalid_options} for bad options; connects as the pools' mincached asks.
inline std::unique_ptr<ClusterRouter> make_cluster_router(const std::vector<ConnectOptions>& hosts,
                                                          const ClusterOptions& options) {
    if (hosts.empty()) {
        throw Error(ErrorCode::invalid_options, "mysql make_cluster_router: no hosts were given");
    }
    std::vector<RouterNode<ClusterPool>> nodes;
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        NodeCheck check;
        check.health = std::make_shared<NodeHealth>();
        if (options.kind == ClusterKind::galera) {
            check.galera = true;
        } else if (i > 0) {
            check.replica = true;
            check.max_replica_lag = options.check.max_replica_lag;
            check.heartbeat_table = options.check.heartbeat_table;
        }
        RouterNode<ClusterPool> node;
        node.name = hosts[i].host + ":" + std::to_string(hosts[i].port);
        node.role = options.kind == ClusterKind::galera ? NodeRole::peer
                    : i == 0                            ? NodeRole::primary
                                                        : NodeRole::replica;
        node.health = check.health;
        node.pool = std::make_unique<ClusterPool>(CheckedConnector(hosts[i], std::move(check)),
                                                  options.pool);
        nodes.push_back(std::move(node));
    }
    return std::make_unique<ClusterRouter>(std::move(nodes), options.router);
}

/// make_cluster_router for a multi-host URL, `mysql://user:pw@primary,replica1,replica2/db`.
inline std::unique_ptr<ClusterRouter> make_cluster_router(std::string_view url,
                                                          const ClusterOptions& options) {
    return make_cluster_router(multi_host_options_from_url(url).hosts, options);
}

}  // namespace dbpool::mysql

#pragma once

/// \file
/// pg::make_cluster_router: a Router over a PostgreSQL primary and its streaming replicas.

#include <dbpool/error.hpp>
#include <dbpool/node_health.hpp>
#include <dbpool/options.hpp>
#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/node_check.hpp>
#include <dbpool/pooled_pool.hpp>
#include <dbpool/router.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dbpool::pg {

/// Everything make_cluster_router needs besides the nodes.
struct ClusterOptions {
    /// Options of each node's pool (the same for every node).
    PoolOptions pool;
    /// Options of the router.
    RouterOptions router;
    /// The replicas' lag limit (`max_replica_lag`); `primary`, `replica` and `health` are
    /// ignored: each node gets its own NodeHealth and the check its role asks for.
    NodeCheck check;
};

/// The pool type of each node: checked connections reporting to the node's NodeHealth.
using ClusterPool = PooledPool<CheckedConnection>;
/// The router make_cluster_router returns.
using ClusterRouter = Router<ClusterPool>;

/// A Router with one pool of CheckedConnections per node: `nodes[0]` is the primary (checked
/// not to be in recovery), the others its streaming replicas (lag measured as NodeCheck says).
/// Each node is named by its ConnectOptions::describe() ("user@host:port/db", no password).
/// The primary's conninfo may list several hosts with `target_session_attrs=read-write`: its
/// pool then connects to whichever of them is the primary now (libpq tries them in order), so
/// writes find a promoted replica without a change here. Throws Error{invalid_options} for bad
/// options; connects as the pools' mincached asks.
inline std::unique_ptr<ClusterRouter> make_cluster_router(const std::vector<ConnectOptions>& nodes,
                                                          const ClusterOptions& options) {
    if (nodes.empty()) {
        throw Error(ErrorCode::invalid_options, "pg make_cluster_router: no nodes were given");
    }
    std::vector<RouterNode<ClusterPool>> routed;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        NodeCheck check;
        check.health = std::make_shared<NodeHealth>();
        check.primary = i == 0;
        check.replica = i > 0;
        check.max_replica_lag = options.check.max_replica_lag;
        RouterNode<ClusterPool> node;
        node.name = nodes[i].describe();
        node.role = i == 0 ? NodeRole::primary : NodeRole::replica;
        node.health = check.health;
        node.pool = std::make_unique<ClusterPool>(CheckedConnector(nodes[i], std::move(check)),
                                                  options.pool);
        routed.push_back(std::move(node));
    }
    return std::make_unique<ClusterRouter>(std::move(routed), options.router);
}

}  // namespace dbpool::pg

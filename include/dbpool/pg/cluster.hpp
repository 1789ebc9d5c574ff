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

#include <libpq-fe.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbpool::pg {

namespace detail {

[[noreturn]] inline void hosts_error(const std::string& what) {
    // `what` never carries text from the connection string, so no password can leak.
    throw Error(ErrorCode::invalid_options, "pg split_hosts: " + what);
}

// The entries of a libpq list ("a,b,c"); none for an empty value.
inline std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> items;
    if (text.empty()) return items;
    std::size_t start = 0;
    for (;;) {
        const std::size_t comma = text.find(',', start);
        items.push_back(text.substr(start, comma == std::string::npos ? comma : comma - start));
        if (comma == std::string::npos) return items;
        start = comma + 1;
    }
}

// `key='value'` as libpq's keyword/value grammar reads it back exactly.
inline void append_keyword(std::string& conninfo, std::string_view key, std::string_view value) {
    if (!conninfo.empty()) conninfo += ' ';
    conninfo.append(key);
    conninfo += "='";
    for (const char c : value) {
        if (c == '\\' || c == '\'') conninfo += '\\';
        conninfo += c;
    }
    conninfo += '\'';
}

// Keywords that choose among several hosts: with one host per node they could only refuse the
// node (`read-write` on a replica), and the router checks each node's role itself.
inline bool chooses_host(std::string_view keyword) {
    return keyword == "target_session_attrs" || keyword == "load_balance_hosts";
}

}  // namespace detail

/// One ConnectOptions per host of a libpq multi-host connection string
/// (`postgresql://user:pw@h1:5432,h2:5433/db?...` or `host=h1,h2 port=5432,5433 ...`), in the
/// order given. Each is a copy of `options` whose conninfo names that one host (its `host`,
/// `hostaddr` and `port` entries; a single port applies to every host) with every other
/// setting as written; the password libpq parsed moves to ConnectOptions::password (one set
/// there already wins). `target_session_attrs` and `load_balance_hosts` are dropped: they
/// choose among hosts. A string without hosts gives one node on libpq's defaults.
///
/// Throws Error{invalid_options}, never echoing the string: for what validate() refuses, lists
/// of different lengths, an empty host in a list, and a URL password that libpq did not read
/// whole (an unencoded '/', '@', ':' or '?' in it: percent-encode them, %2F %40 %3A %3F; an '@'
/// later in the URL counts too). Any thread; no effect when it throws.
inline std::vector<ConnectOptions> split_hosts(const ConnectOptions& options) {
    options.validate();
    const detail::Conninfo parsed = detail::parse_conninfo(options.conninfo);
    const std::string password = detail::conninfo_value(parsed, "password");
    const std::string_view written = detail::url_password_text(options.conninfo);
    if (!written.empty() && detail::percent_decoded(written) != password) {
        // libpq cut the password into other fields: copied into single-host strings, its
        // pieces could no longer be told apart from a host name.
        detail::hosts_error(
            "libpq did not read the URL's password whole: percent-encode a '/', '@', ':' or "
            "'?' in it (%2F, %40, %3A, %3F), and an '@' anywhere after it (%40)");
    }
    const std::vector<std::string> hosts =
        detail::split_list(detail::conninfo_value(parsed, "host"));
    const std::vector<std::string> addresses =
        detail::split_list(detail::conninfo_value(parsed, "hostaddr"));
    const std::vector<std::string> ports =
        detail::split_list(detail::conninfo_value(parsed, "port"));
    const std::size_t count = std::max({std::size_t{1}, hosts.size(), addresses.size()});
    if (!hosts.empty() && !addresses.empty() && hosts.size() != addresses.size()) {
        detail::hosts_error("host lists " + std::to_string(hosts.size()) + " hosts but hostaddr " +
                            std::to_string(addresses.size()) + "; give as many of each");
    }
    if (ports.size() > 1 && ports.size() != count) {
        detail::hosts_error("port lists " + std::to_string(ports.size()) + " ports for " +
                            std::to_string(count) + " hosts; give one port, or one per host");
    }
    std::string common;  // every setting but the host's, in libpq's order
    for (const PQconninfoOption* o = parsed.get(); o != nullptr && o->keyword != nullptr; ++o) {
        const std::string_view keyword = o->keyword;
        if (o->val == nullptr || keyword == "host" || keyword == "hostaddr" || keyword == "port" ||
            keyword == "password" || detail::chooses_host(keyword)) {
            continue;
        }
        detail::append_keyword(common, keyword, o->val);
    }
    std::vector<ConnectOptions> nodes;
    for (std::size_t i = 0; i < count; ++i) {
        const std::string host = i < hosts.size() ? hosts[i] : std::string();
        const std::string address = i < addresses.size() ? addresses[i] : std::string();
        if (count > 1 && host.empty() && address.empty()) {
            detail::hosts_error("host " + std::to_string(i + 1) + " of the host list is empty");
        }
        ConnectOptions node = options;
        node.conninfo = common;
        if (!host.empty()) detail::append_keyword(node.conninfo, "host", host);
        if (!address.empty()) detail::append_keyword(node.conninfo, "hostaddr", address);
        if (!ports.empty()) {
            detail::append_keyword(node.conninfo, "port", ports.size() == 1 ? ports[0] : ports[i]);
        }
        if (node.password.empty()) node.password = password;
        nodes.push_back(std::move(node));
    }
    return nodes;
}

/// Everything make_cluster_router needs besides the nodes.
struct ClusterOptions {
    /// Options of each node's pool (the same for every node).
    PoolOptions pool;
    /// Options of the router.
    RouterOptions router;
    /// The replicas' lag limit and source (`max_replica_lag`, `heartbeat_table`); `primary`,
    /// `replica` and `health` are ignored: each node gets its own NodeHealth and the check its
    /// role asks for.
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
        if (i > 0) check.heartbeat_table = options.check.heartbeat_table;
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

/// make_cluster_router for one libpq multi-host connection string,
/// `postgresql://user:pw@primary,replica1,replica2/db` or `host=primary,replica1 ...`: the first
/// host is the primary, the others its replicas (the rule of mysql::make_cluster_router(url)),
/// each node a single-host copy as split_hosts makes it (which also says what it throws).
/// Following a promotion needs the primary's own multi-host string: use the list overload.
inline std::unique_ptr<ClusterRouter> make_cluster_router(std::string_view conninfo,
                                                          const ClusterOptions& options) {
    ConnectOptions all;
    all.conninfo = std::string(conninfo);
    return make_cluster_router(split_hosts(all), options);
}

}  // namespace dbpool::pg

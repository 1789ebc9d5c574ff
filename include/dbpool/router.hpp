#pragma once

#include <dbpool/detail/pool_lock.hpp>
#include <dbpool/detail/saturating.hpp>
#include <dbpool/error.hpp>
#include <dbpool/node_health.hpp>
#include <dbpool/pool_stats.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace dbpool {

/// What a routed connection will be used for.
enum class Access {
    read,   ///< Only reads: any healthy replica (or peer) will do.
    write,  ///< Writes (or reads that must see the latest data): the primary or chosen peer.
};

/// The part a node plays in a Router.
enum class NodeRole {
    primary,  ///< Replication source: takes writes, and reads when no replica qualifies.
    replica,  ///< Read-only copy: takes reads while healthy and not lagging.
    peer,     ///< Multi-primary cluster node (Galera): takes reads; writes go to one peer.
};

/// Short stable name of a role, e.g. "replica".
inline const char* to_string(NodeRole role) noexcept {
    switch (role) {
        case NodeRole::primary: return "primary";
        case NodeRole::replica: return "replica";
        case NodeRole::peer: return "peer";
    }
    return "unknown";
}

/// Options of a Router. Every duration must be >= 0; milliseconds::max() means "forever" (or
/// "never" for health_interval) and is saturated, never overflowed.
struct RouterOptions {
    /// After a session writes, its reads go to the node it wrote to for this long (0 = off).
    std::chrono::milliseconds read_your_writes{0};
    /// How often the router's probe thread checks every node that has a NodeHealth, through a
    /// connection of its own (0 or max() = no probe thread; health then comes only from the
    /// pools' connects and validation pings, and from check_health()).
    std::chrono::milliseconds health_interval{std::chrono::seconds(1)};
    /// A node whose pool failed to connect (or found it not ready, or whose read was refused
    /// with node_unavailable) is tried after every other node for this long, unless a health
    /// check finds it healthy sooner (max(): until a health check does).
    std::chrono::milliseconds down_backoff{std::chrono::seconds(1)};
    /// Replicas whose lag is within this of the least-lagging one share the reads (round
    /// robin); the others are used only when those fail.
    std::chrono::milliseconds lag_tolerance{std::chrono::seconds(1)};
};

/// One node of a Router: a name for messages and stats, its role, its pool and (optionally)
/// the NodeHealth that its connections' health checks report to.
template <class Pool>
struct RouterNode {
    std::string name;                    ///< Shown in stats and error messages (no password).
    NodeRole role = NodeRole::replica;   ///< What the node is used for.
    std::unique_ptr<Pool> pool;          ///< The node's pool; the router owns it.
    std::shared_ptr<NodeHealth> health;  ///< Null: the node counts as healthy while it connects.
};

/// Per-node counters of a Router, with the node's health and its pool's own stats.
struct RouterNodeStats {
    std::string name;                   ///< The node's name.
    NodeRole role = NodeRole::replica;  ///< The node's role.
    NodeStatus health;                  ///< Its last health verdict (unknown without a NodeHealth).
    PoolStats pool;                     ///< Its pool's counters.
    std::uint64_t reads = 0;            ///< Read connections handed out (read-your-writes too).
    std::uint64_t writes = 0;           ///< Write connections handed out from this node.
    std::uint64_t fallback_reads = 0;   ///< Reads served here because no replica qualified.
    std::uint64_t failed_acquires = 0;  ///< Acquires from its pool that threw.
    bool backing_off = false;           ///< Currently tried after the others (down_backoff).
};

/// A connection handed out by a Router: the pool's handle plus the node it came from.
/// Move-only; returns the connection to its node's pool when destroyed.
template <class Pool>
class RoutedConnection {
public:
    /// The pool's own handle type.
    using handle_type = typename Pool::handle_type;

    /// An empty handle.
    RoutedConnection() = default;

    /// The pool handle's `->` (the protected connection).
    auto operator->() const -> decltype(std::declval<const handle_type&>().operator->()) {
        return handle_.operator->();
    }
    /// The pool handle's `*`.
    decltype(auto) operator*() const { return *handle_; }

    /// The pool's handle (begin/commit/rollback/close/discard).
    handle_type& handle() noexcept { return handle_; }
    /// Index of the node in the router (as given to its constructor).
    std::size_t node() const noexcept { return node_; }
    /// The node's name.
    const std::string& node_name() const noexcept { return *name_; }

    /// Starts a transaction.
    void begin() { handle_.begin(); }
    /// Commits.
    void commit() { handle_.commit(); }
    /// Rolls back.
    void rollback() { handle_.rollback(); }
    /// Returns the connection to its pool; idempotent.
    void close() noexcept { handle_.close(); }
    /// Whether the handle still holds a connection.
    explicit operator bool() const noexcept { return static_cast<bool>(handle_); }

private:
    template <class>
    friend class Router;

    RoutedConnection(handle_type handle, std::size_t node, const std::string* name) noexcept
        : handle_(std::move(handle)), node_(node), name_(name) {}

    handle_type handle_;
    std::size_t node_ = 0;
    const std::string* name_ = nullptr;
};

/// A read-your-writes scope: reads through a session that wrote recently go to the node it
/// wrote to (see RouterOptions::read_your_writes). Cheap; use one per request or per user
/// session, from one thread at a time.
class RouterSession {
public:
    /// When this session last took a write connection (epoch = never).
    std::chrono::steady_clock::time_point last_write() const noexcept { return last_write_; }

private:
    template <class>
    friend class Router;

    std::chrono::steady_clock::time_point last_write_{};
};

/// Routes connections over the pools of a cluster's nodes: writes to the primary (replication)
/// or to one chosen peer (multi-primary, e.g. Galera, to avoid certification conflicts between
/// nodes), reads to the healthiest replica, falling back to the primary when none qualifies.
/// Node health comes from the NodeHealth each node's connections report to (at connect, at
/// validation pings, and from the router's own probe every health_interval).
///
/// dbpool never promotes a replica: when the primary is down, writes fail with the pool's
/// typed error (connect_failed) while reads go on from the replicas.
///
/// Thread-safety: connection(), run(), report_failure(), stats(), check_health() and close()
/// may be called from any thread, close() from several at once. Destroying the router closes
/// its pools; return every handle first.
template <class Pool>
class Router {
    using SteadyPtr = decltype(std::declval<const Pool&>().steady_connection());

public:
    /// The handle connection() returns.
    using handle_type = RoutedConnection<Pool>;

    /// Takes the nodes; throws Error{invalid_options} unless they are one primary and any
    /// number of replicas, or one or more peers (and every node has a pool and a unique name).
    /// Checks every node with a NodeHealth once before returning (each check bounded by the
    /// connection type's connect timeout), then starts the probe thread.
    explicit Router(std::vector<RouterNode<Pool>> nodes, RouterOptions options = {})
        : options_(options),
          read_your_writes_(detail::saturating_cast<Clock::duration>(options.read_your_writes)),
          health_interval_(detail::saturating_cast<Clock::duration>(options.health_interval)),
          down_backoff_(detail::saturating_cast<Clock::duration>(options.down_backoff)) {
        validate(nodes, options_);
        for (auto& node : nodes) {
            auto state = std::make_unique<Entry>();
            state->node = std::move(node);
            nodes_.push_back(std::move(state));
        }
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            if (nodes_[i]->node.role == NodeRole::primary) primary_ = i;
        }
        check_health();
        if (health_interval_.count() > 0 && health_interval_ != Clock::duration::max()) {
            probe_thread_ = std::thread([this] { probe_loop(); });
        }
    }

    Router(const Router&) = delete;
    Router& operator=(const Router&) = delete;

    /// Stops the probe thread and closes every pool.
    ~Router() { close(); }

    /// A connection for `access`; throws the last node's Error (connect_failed, timeout, ...)
    /// with every node tried named in the message when no node could serve it.
    handle_type connection(Access access) { return route(access, nullptr, nodes_.size()); }

    /// Like connection(access), recording writes in `session` for read-your-writes.
    handle_type connection(Access access, RouterSession& session) {
        return route(access, &session, nodes_.size());
    }

    /// Calls `work(connection)` with a connection for `access` and returns its result. A read
    /// that fails with node_unavailable (the node refused it without running it, e.g. a Galera
    /// node that is not Synced: 1047) marks the node down at once (report_failure) and runs
    /// once more on another node; any other error, and every write's, is rethrown as is
    /// (a write's node_unavailable marks the node down too). Throws what connection() or
    /// `work` throws.
    template <class Work>
    auto run(Access access, Work&& work) -> std::invoke_result_t<Work&, handle_type&> {
        return run_routed(access, nullptr, work);
    }

    /// Like run(access, work), recording writes in `session` for read-your-writes.
    template <class Work>
    auto run(Access access, RouterSession& session, Work&& work)
        -> std::invoke_result_t<Work&, handle_type&> {
        return run_routed(access, &session, work);
    }

    /// Feeds an error seen on a routed connection to its node's health at once: for
    /// node_unavailable the node's NodeHealth reports it unavailable and the node is tried
    /// after the others for down_backoff (until a health check finds it healthy). Other
    /// errors change nothing. Never throws.
    void report_failure(const handle_type& connection, const Error& error) noexcept {
        if (error.code() != ErrorCode::node_unavailable || connection.node_ >= nodes_.size()) {
            return;
        }
        mark_down(*nodes_[connection.node_], error.what(), true);
    }

    /// Checks every node that has a NodeHealth now, through the router's probe connections;
    /// after close() it does nothing.
    void check_health() {
        std::lock_guard<std::mutex> lock(probe_mutex_);
        if (closed_) return;
        for (auto& state : nodes_)
            probe(*state);
    }

    /// Per-node counters, health and pool stats, in the order the nodes were given.
    std::vector<RouterNodeStats> stats() const {
        std::vector<RouterNodeStats> out;
        const auto now = std::chrono::steady_clock::now();
        for (const auto& state : nodes_) {
            RouterNodeStats s;
            s.name = state->node.name;
            s.role = state->node.role;
            if (state->node.health) s.health = state->node.health->status();
            s.pool = state->node.pool->stats();
            s.reads = state->reads.load();
            s.writes = state->writes.load();
            s.fallback_reads = state->fallback_reads.load();
            s.failed_acquires = state->failed_acquires.load();
            s.backing_off = backing_off(*state, now);
            out.push_back(std::move(s));
        }
        return out;
    }

    /// Number of nodes.
    std::size_t size() const noexcept { return nodes_.size(); }
    /// The pool of node `index` (as given to the constructor).
    Pool& pool(std::size_t index) { return *nodes_.at(index)->node.pool; }
    /// The name of node `index`.
    const std::string& name(std::size_t index) const { return nodes_.at(index)->node.name; }

    /// Stops the probe thread and closes every pool; idempotent, never throws; safe from
    /// several threads at once (a second caller returns when the first one is done).
    void close() noexcept {
        std::lock_guard<std::mutex> closing(close_mutex_);
        {
            std::lock_guard<std::mutex> lock(stop_mutex_);
            stopping_ = true;
        }
        stop_cv_.notify_all();
        if (probe_thread_.joinable()) probe_thread_.join();
        {
            // From here check_health() opens nothing: it sees closed_ under the same lock.
            std::lock_guard<std::mutex> lock(probe_mutex_);
            closed_ = true;
            for (auto& state : nodes_)
                state->probe.reset();
        }
        for (auto& state : nodes_)
            state->node.pool->close();
    }

private:
    using Clock = std::chrono::steady_clock;

    // How the router keeps node health and back-off (checked by check_order() in test builds,
    // and by tests/cluster/router_test.cpp):
    //  1. A node is "known down" while its down_until lies ahead or its NodeHealth says
    //     unavailable. No route tries a known-down node before every node that is not: reads,
    //     Galera writes and retries alike (a primary/replica write has only the primary).
    //  2. down_until is set to now + down_backoff (saturated: max() = until a health check
    //     clears it) by every acquire that fails with connect_failed or node_unavailable and by
    //     every node_unavailable a caller reports (run(), report_failure()); only a health
    //     check that finds the node healthy clears it early. So a dead node costs one failed
    //     attempt per back-off period, not one per request.
    //  3. Within each rank (qualifying readers within lag_tolerance; other qualifying ones;
    //     the primary; readers that answer but do not qualify; known-down nodes) equal nodes
    //     take turns through one shared counter: no rank piles its reads onto its first node.
    //  4. Once closed_ is set (under probe_mutex_) no probe connection is opened again.
    //
    // A node plus what the router keeps about it. Not movable (atomics): held by unique_ptr.
    struct Entry {
        RouterNode<Pool> node;
        std::atomic<std::int64_t> down_until{0};  // steady ticks; 0 = not backing off
        std::atomic<std::uint64_t> reads{0};
        std::atomic<std::uint64_t> writes{0};
        std::atomic<std::uint64_t> fallback_reads{0};
        std::atomic<std::uint64_t> failed_acquires{0};
        SteadyPtr probe;  // only under probe_mutex_
    };

    static void validate(const std::vector<RouterNode<Pool>>& nodes, const RouterOptions& options) {
        const auto fail = [](const std::string& what) {
            throw Error(ErrorCode::invalid_options, "dbpool Router: " + what);
        };
        const std::pair<const char*, std::chrono::milliseconds> durations[] = {
            {"read_your_writes", options.read_your_writes},
            {"health_interval", options.health_interval},
            {"down_backoff", options.down_backoff},
            {"lag_tolerance", options.lag_tolerance}};
        for (const auto& [name, value] : durations) {
            if (value.count() < 0) fail(std::string(name) + " must be >= 0");
        }
        if (nodes.empty()) fail("no nodes were given");
        std::size_t primaries = 0;
        std::size_t replicas = 0;
        std::size_t peers = 0;
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            const auto& node = nodes[i];
            if (!node.pool)
                fail("node " + std::to_string(i) + " ('" + node.name + "') has no pool");
            if (node.name.empty()) fail("node " + std::to_string(i) + " has an empty name");
            for (std::size_t j = 0; j < i; ++j) {
                if (nodes[j].name == node.name) fail("two nodes are called '" + node.name + "'");
            }
            primaries += node.role == NodeRole::primary ? 1 : 0;
            replicas += node.role == NodeRole::replica ? 1 : 0;
            peers += node.role == NodeRole::peer ? 1 : 0;
        }
        if (peers > 0 && peers != nodes.size()) {
            fail("peers (multi-primary nodes) cannot be mixed with primary or replica nodes");
        }
        if (peers == 0 && primaries != 1) {
            fail("a primary/replica cluster needs exactly one primary (got " +
                 std::to_string(primaries) + " with " + std::to_string(replicas) + " replicas)");
        }
    }

    bool multi_primary() const noexcept { return nodes_.front()->node.role == NodeRole::peer; }

    static bool backing_off(const Entry& state, Clock::time_point now) noexcept {
        return now.time_since_epoch().count() < state.down_until.load();
    }

    // Invariant 1's "known down".
    static bool known_down(const Entry& state, Clock::time_point now) noexcept {
        return backing_off(state, now) ||
               (state.node.health && state.node.health->state() == NodeState::unavailable);
    }

    // Healthy enough to be tried before the others: not backing off, and its last health
    // verdict (if it has a NodeHealth) is healthy.
    static bool qualifies(const Entry& state, Clock::time_point now) noexcept {
        if (backing_off(state, now)) return false;
        return !state.node.health || state.node.health->state() == NodeState::healthy;
    }

    // What one route decides from, read once: health changes under it from other threads,
    // and the order and its check (invariant 1) must see the same values.
    struct Seen {
        bool down = false;        // known down
        bool qualifies = false;   // tried first
        std::int64_t lag_ms = 0;  // when it qualifies
    };

    std::vector<Seen> observe(Clock::time_point now) const {
        std::vector<Seen> seen(nodes_.size());
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            const Entry& state = *nodes_[i];
            seen[i].down = known_down(state, now);
            seen[i].qualifies = !seen[i].down && qualifies(state, now);
            if (seen[i].qualifies && state.node.health) {
                seen[i].lag_ms = std::max<std::int64_t>(0, state.node.health->lag().count());
            }
        }
        return seen;
    }

    // Invariant 2: the node is tried after the others for down_backoff; with `tell_health`,
    // its NodeHealth hears of it too (a checked connection's own report already did).
    void mark_down(Entry& state, const char* reason, bool tell_health) noexcept {
        state.down_until.store(
            detail::saturating_add(Clock::now(), down_backoff_).time_since_epoch().count());
        if (tell_health && state.node.health) {
            try {
                state.node.health->report_unavailable(reason);
            } catch (...) {
                // Out of memory for the reason text: down_until alone keeps it last.
            }
        }
    }

    template <class Work>
    auto run_routed(Access access, RouterSession* session, Work& work)
        -> std::invoke_result_t<Work&, handle_type&> {
        handle_type connection = route(access, session, nodes_.size());
        std::exception_ptr refused;
        std::size_t failed = 0;
        try {
            return work(connection);
        } catch (const Error& error) {
            if (error.code() != ErrorCode::node_unavailable) throw;
            failed = connection.node_;
            report_failure(connection, error);
            connection.close();
            // The statement never ran, so a read runs again once, elsewhere. A write is the
            // caller's to retry: it may have been a transaction's later statement.
            if (access != Access::read) throw;
            refused = std::current_exception();
        }
        handle_type retry;
        try {
            retry = route(access, session, failed);
        } catch (const Error&) {
            std::rethrow_exception(refused);  // nowhere else to go: the refusal says why
        }
        return work(retry);
    }

    // A connection for `access` from the first node of the route that gives one; `exclude`
    // (an index, or size() for none) is left out.
    handle_type route(Access access, RouterSession* session, std::size_t exclude) {
        const auto now = Clock::now();
        const bool recent_write = session != nullptr && read_your_writes_.count() > 0 &&
                                  session->last_write_.time_since_epoch().count() != 0 &&
                                  now - session->last_write_ < read_your_writes_;
        const bool write = access == Access::write || recent_write;
        const std::vector<Seen> seen = observe(now);
        std::vector<std::size_t> order = write ? write_order(seen) : read_order(seen);
        if (exclude < nodes_.size()) {
            order.erase(std::remove(order.begin(), order.end(), exclude), order.end());
        }
        check_order(order, seen);
        const char* what = access == Access::write ? "write"
                           : recent_write          ? "read-your-writes read (on the write node)"
                                                   : "read";
        std::string tried;
        for (std::size_t k = 0; k < order.size(); ++k) {
            const std::size_t index = order[k];
            Entry& state = *nodes_[index];
            const bool last = k + 1 == order.size();
            try {
                handle_type handle(state.node.pool->connection(), index, &state.node.name);
                if (access == Access::write) {
                    state.writes.fetch_add(1, std::memory_order_relaxed);
                } else {
                    state.reads.fetch_add(1, std::memory_order_relaxed);
                    // A read-your-writes read on the primary is by design, not a fallback.
                    if (!write && state.node.role == NodeRole::primary) {
                        state.fallback_reads.fetch_add(1, std::memory_order_relaxed);
                    }
                }
                if (access == Access::write && session != nullptr) session->last_write_ = now;
                return handle;
            } catch (const Error& error) {
                state.failed_acquires.fetch_add(1, std::memory_order_relaxed);
                if (error.code() == ErrorCode::connect_failed) {
                    mark_down(state, error.what(), false);
                } else if (error.code() == ErrorCode::node_unavailable) {
                    mark_down(state, error.what(), true);
                } else if (error.code() != ErrorCode::timeout &&
                           error.code() != ErrorCode::pool_exhausted) {
                    throw;  // closed, or misuse: not a reason to try another node
                }
                tried += (tried.empty() ? "" : "; ") + state.node.name + ": " + error.what();
                if (last) {
                    throw Error(error.code(),
                                std::string("dbpool Router: no node could serve a ") + what + " (" +
                                    tried + ")",
                                error.native_code(), error.sqlstate());
                }
            }
        }
        throw Error(ErrorCode::connect_failed,
                    std::string("dbpool Router: no node can serve this ") + what);
    }

    // Invariant 1, in test builds: no known-down node before one that is not.
    static void check_order(const std::vector<std::size_t>& order,
                            const std::vector<Seen>& seen) noexcept {
        if constexpr (detail::checking_invariants) {
            bool seen_down = false;
            for (const std::size_t index : order) {
                const bool down = seen[index].down;
                if (seen_down && !down) {
                    std::fprintf(stderr,
                                 "dbpool Router: invariant violated: a known-down node is tried "
                                 "before one that is not\n");
                    std::abort();
                }
                seen_down = seen_down || down;
            }
        }
    }

    // Primary/replica: only the primary. Multi-primary: the qualifying peers in the order
    // given (so every writer agrees on one node while it is healthy), then the peers that
    // answer but do not qualify, then the known-down ones.
    std::vector<std::size_t> write_order(const std::vector<Seen>& seen) const {
        if (!multi_primary()) return {primary_};
        std::vector<std::size_t> order;
        for (int rank = 0; rank < 3; ++rank) {
            for (std::size_t i = 0; i < nodes_.size(); ++i) {
                const int r = seen[i].qualifies ? 0 : seen[i].down ? 2 : 1;
                if (r == rank) order.push_back(i);
            }
        }
        return order;
    }

    // The ranks of invariant 3: qualifying readers (replicas, or peers) within lag_tolerance
    // of the least lagging one, taking turns; the other qualifying ones by lag; the primary
    // unless known down; readers that answer but do not qualify (lagging, unknown), taking
    // turns; last the known-down nodes, taking turns (so a read still finds a node whose
    // health is stale, but never tries a dead node first).
    std::vector<std::size_t> read_order(const std::vector<Seen>& seen) {
        const NodeRole reader = multi_primary() ? NodeRole::peer : NodeRole::replica;
        const std::size_t turn = next_.fetch_add(1, std::memory_order_relaxed);
        const auto rotated = [turn](std::vector<std::size_t>& out,
                                    const std::vector<std::size_t>& equal) {
            for (std::size_t k = 0; k < equal.size(); ++k)
                out.push_back(equal[(turn + k) % equal.size()]);
        };
        std::vector<std::pair<std::int64_t, std::size_t>> ready;
        std::vector<std::size_t> answering;
        std::vector<std::size_t> down;
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            if (seen[i].down) {
                down.push_back(i);
            } else if (nodes_[i]->node.role != reader) {
                continue;  // the primary: a rank of its own
            } else if (seen[i].qualifies) {
                ready.emplace_back(seen[i].lag_ms, i);
            } else {
                answering.push_back(i);
            }
        }
        std::vector<std::size_t> order;
        order.reserve(nodes_.size());
        if (!ready.empty()) {
            std::stable_sort(ready.begin(), ready.end(),
                             [](const auto& a, const auto& b) { return a.first < b.first; });
            const std::int64_t best = ready.front().first;
            std::vector<std::size_t> equal;
            std::size_t k = 0;
            for (; k < ready.size() && ready[k].first - best <= options_.lag_tolerance.count();
                 ++k) {
                equal.push_back(ready[k].second);
            }
            rotated(order, equal);
            for (; k < ready.size(); ++k)
                order.push_back(ready[k].second);
        }
        if (!multi_primary() && !seen[primary_].down) order.push_back(primary_);
        rotated(order, answering);
        rotated(order, down);
        return order;
    }

    // One health check of a node through the router's own connection to it (under
    // probe_mutex_). The connection type's ping runs the check and reports to NodeHealth.
    void probe(Entry& state) noexcept {
        if (!state.node.health) return;
        try {
            if (!state.probe) state.probe = state.node.pool->steady_connection();
            if (!state.probe->ping()) {
                state.probe.reset();  // reconnect (and so re-check) next time
            }
        } catch (const std::exception& error) {
            state.probe.reset();
            // A creator that reports to the NodeHealth already did; one that does not is
            // covered here, so a dead node is never left looking healthy.
            if (state.node.health->state() != NodeState::unavailable) {
                try {
                    state.node.health->report_unavailable(error.what());
                } catch (...) {
                    // Out of memory for the reason text: nothing better to do.
                }
            }
        }
        if (state.node.health->state() == NodeState::healthy) state.down_until.store(0);
    }

    void probe_loop() noexcept {
        for (;;) {
            {
                // A deadline, not wait_for: health_interval is saturated, so a huge interval
                // waits until close() rather than wrapping around into a busy loop.
                const auto next = detail::saturating_add(Clock::now(), health_interval_);
                std::unique_lock<std::mutex> lock(stop_mutex_);
                if (stop_cv_.wait_until(lock, next, [this] { return stopping_; })) return;
            }
            std::lock_guard<std::mutex> lock(probe_mutex_);
            for (auto& state : nodes_)
                probe(*state);
        }
    }

    RouterOptions options_;
    // The options' durations in the clock's unit, saturated (max() stays "forever").
    Clock::duration read_your_writes_;
    Clock::duration health_interval_;
    Clock::duration down_backoff_;
    std::vector<std::unique_ptr<Entry>> nodes_;
    std::size_t primary_ = 0;
    std::atomic<std::size_t> next_{0};
    std::mutex probe_mutex_;
    bool closed_ = false;     // under probe_mutex_: invariant 4
    std::mutex close_mutex_;  // one close() at a time
    std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;
    std::thread probe_thread_;
};

}  // namespace dbpool

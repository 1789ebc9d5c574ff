#pragma once

/// \file
/// pg::NodeCheck, pg::CheckedConnection and pg::CheckedConnector: PostgreSQL connections that
/// check their node (primary or streaming replica, and the replica's replay lag) and report to a
/// NodeHealth that a Router reads.

#include <dbpool/error.hpp>
#include <dbpool/node_health.hpp>
#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/connection.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace dbpool::pg {

/// What a CheckedConnection verifies about its node, at connect and at every ping (the pool's
/// validation: on-request pings and keepalive).
///
/// How replica lag is measured (one query, no table, nothing written): a standby that has
/// replayed everything it has received (`pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn()`)
/// has lag 0; otherwise the lag is the age of the last replayed transaction
/// (`clock_timestamp() - pg_last_xact_replay_timestamp()`). The timestamp alone would be wrong
/// while the primary is idle: it keeps growing although nothing is missing. The LSN comparison
/// alone gives bytes, not time. Together: 0 while the primary is idle and the replica is caught up;
/// while it writes, the age of what the replica last applied (which overstates the lag for one
/// check when the primary writes after a long idle spell: the replica then leaves the reads for
/// one health interval, it never serves stale reads as fresh). A standby without a WAL receiver
/// (the primary is gone, or replication is broken) cannot know what it misses: it is reported
/// `lagging` with unknown lag.
///
/// With `heartbeat_table` set, the lag is instead the age of the newest `ts` in that table,
/// which a writer of yours updates on the primary (see the field): it measures time whatever
/// the WAL receiver does, so a replica of a dead primary reports how old its data is.
struct NodeCheck {
    /// Primary: the node must not be in recovery (`pg_is_in_recovery()` false). A standby is
    /// refused at connect (Error{node_unavailable}) and fails its pings, so writes never go to
    /// a node that would refuse them with 25006.
    bool primary = false;
    /// Replica: measure replication lag (see above). The connection stays usable whatever the
    /// lag; the node is reported `lagging` when the lag is unknown or above max_replica_lag. A
    /// node that is no longer in recovery (promoted) is reported healthy with lag 0.
    bool replica = false;
    /// Replica lag above this marks the node `lagging` (0 = any measured lag is fine).
    std::chrono::milliseconds max_replica_lag{std::chrono::seconds(5)};
    /// Replica: measure lag as `clock_timestamp()` minus the newest `ts` (timestamptz) of this
    /// table ("table" or "schema.table"), which the primary's writer sets to its own
    /// `clock_timestamp()` regularly, e.g. every second (pt-heartbeat style). The lag then
    /// includes up to one writer interval and the clock difference between the servers; it
    /// keeps growing while replication is stopped or the primary is down, where the default
    /// check says "unknown". An empty table reads as unknown lag; a missing one fails the
    /// check (the node is reported unavailable with the server's error). Empty: the check
    /// described above the struct.
    std::string heartbeat_table;
    /// Where every check's verdict goes (a Router reads it); null = not reported.
    std::shared_ptr<NodeHealth> health;

    /// Throws Error{invalid_options} naming the field that is wrong.
    void validate() const {
        if (max_replica_lag.count() < 0) {
            throw Error(ErrorCode::invalid_options,
                        "pg NodeCheck: max_replica_lag must not be negative");
        }
        if (primary && replica) {
            throw Error(ErrorCode::invalid_options,
                        "pg NodeCheck: primary and replica cannot both be set");
        }
        if (!heartbeat_table.empty()) {
            int dots = 0;
            for (const char c : heartbeat_table) {
                if (c == '.') {
                    ++dots;
                } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || c == '_')) {
                    throw Error(ErrorCode::invalid_options,
                                "pg NodeCheck: heartbeat_table must be a plain name or "
                                "schema.table (letters, digits, '_')");
                }
            }
            if (dots > 1 || heartbeat_table.front() == '.' || heartbeat_table.back() == '.') {
                throw Error(ErrorCode::invalid_options,
                            "pg NodeCheck: heartbeat_table must be a plain name or schema.table");
            }
            if (!replica) {
                throw Error(ErrorCode::invalid_options,
                            "pg NodeCheck: heartbeat_table is set but replica is false");
            }
        }
    }
};

/// A Connection that checks its node at connect and on every ping, and reports each verdict to
/// `NodeCheck::health`. Use it as a pool's connection type for cluster nodes; plain Connection
/// pays nothing for this.
///
/// Thread-safety: one thread at a time, like Connection; the shared NodeHealth is thread-safe.
class CheckedConnection : public Connection {
public:
    /// Connects and checks; throws Error{invalid_options} (before connecting),
    /// Error{connect_failed} when the node cannot be reached and Error{node_unavailable} when it
    /// answers but cannot serve its role (a standby where a primary is expected).
    CheckedConnection(ConnectOptions options, NodeCheck check)
        : Connection((check.validate(), std::move(options))), check_(std::move(check)) {
        if (!check_node()) {
            const std::string why = last_reason_;
            const std::string where = this->options().describe();
            close();
            throw Error(ErrorCode::node_unavailable, "pg: " + where + " cannot serve: " + why);
        }
    }

    /// Pings and checks the node: false when the server does not answer or (primary) is in
    /// recovery, so a pool replaces the connection. A lagging replica still answers true: the
    /// connection works; routing decides whether to use it. Never throws.
    bool ping() noexcept {
        if (!Connection::ping()) {
            report_unavailable("the server does not answer a ping");
            return false;
        }
        return check_node();
    }

    /// Runs the check now and reports it; false when the node is not usable at all.
    bool check_node() noexcept {
        try {
            if (!check_.primary && !check_.replica) {
                if (check_.health) check_.health->report_healthy();
                return true;
            }
            if (check_.replica && !check_.heartbeat_table.empty()) {
                const auto row = query(
                                     "SELECT pg_is_in_recovery(), (SELECT (extract(epoch FROM"
                                     " clock_timestamp() - max(ts)) * 1000)::bigint FROM " +
                                     check_.heartbeat_table + ")")
                                     .row(0);
                report_heartbeat(row.get<bool>(0), row.get<std::optional<long long>>(1));
                return true;
            }
            const auto rows = query(
                "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pg_stat_wal_receiver),"
                " pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn(),"
                " (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
                " * 1000)::bigint");
            const auto row = rows.row(0);
            const bool in_recovery = row.get<bool>(0);
            if (check_.primary) {
                if (in_recovery) {
                    report_unavailable(
                        "it is a standby (pg_is_in_recovery() is true) and refuses writes");
                    return false;
                }
                if (check_.health) check_.health->report_healthy();
                return true;
            }
            report_replica(in_recovery, row.get<bool>(1), row.get<std::optional<bool>>(2),
                           row.get<std::optional<long long>>(3));
            return true;
        } catch (const std::exception& error) {
            report_unavailable(std::string("the health check failed: ") + error.what());
            return false;
        }
    }

    /// The check this connection runs.
    const NodeCheck& check() const noexcept { return check_; }

private:
    void report_replica(bool in_recovery, bool receiving, std::optional<bool> caught_up,
                        std::optional<long long> replay_age_ms) {
        if (!check_.health) return;
        if (!in_recovery) {
            // Promoted: it is a primary now, nothing to replay.
            check_.health->report_healthy(std::chrono::milliseconds(0));
            return;
        }
        if (!receiving) {
            check_.health->report_lagging(std::chrono::milliseconds(-1),
                                          "the standby has no WAL receiver (the primary is "
                                          "unreachable or replication is broken): lag unknown");
            return;
        }
        std::chrono::milliseconds lag(0);
        if (!caught_up.value_or(false)) {
            if (!replay_age_ms) {
                check_.health->report_lagging(std::chrono::milliseconds(-1),
                                              "the standby has WAL to replay and has replayed no "
                                              "transaction since it started: lag unknown");
                return;
            }
            lag = std::chrono::milliseconds(*replay_age_ms < 0 ? 0 : *replay_age_ms);
        }
        report_lag(lag);
    }

    void report_heartbeat(bool in_recovery, std::optional<long long> age_ms) {
        if (!check_.health) return;
        if (!in_recovery) {
            check_.health->report_healthy(std::chrono::milliseconds(0));  // promoted
            return;
        }
        if (!age_ms) {
            check_.health->report_lagging(
                std::chrono::milliseconds(-1),
                "the heartbeat table " + check_.heartbeat_table + " is empty: lag unknown");
            return;
        }
        // Negative when the replica's clock is behind the primary's.
        report_lag(std::chrono::milliseconds(*age_ms < 0 ? 0 : *age_ms));
    }

    void report_lag(std::chrono::milliseconds lag) {
        if (check_.max_replica_lag.count() > 0 && lag > check_.max_replica_lag) {
            check_.health->report_lagging(lag, "replica lag " + std::to_string(lag.count()) +
                                                   " ms is above max_replica_lag " +
                                                   std::to_string(check_.max_replica_lag.count()) +
                                                   " ms");
        } else {
            check_.health->report_healthy(lag);
        }
    }

    void report_unavailable(std::string reason) noexcept {
        try {
            last_reason_ = reason;
            if (check_.health) check_.health->report_unavailable(std::move(reason));
        } catch (...) {
            // Out of memory while recording a reason: the state is still what matters.
        }
    }

    NodeCheck check_;
    std::string last_reason_;
};

/// A creator of CheckedConnections for dbpool's pools; a connect failure is also reported to
/// the NodeHealth.
///
/// Thread-safety: copyable and callable from any thread.
class CheckedConnector {
public:
    /// Validates both now, so a pool fails at construction rather than at first use; throws
    /// Error{invalid_options}.
    CheckedConnector(ConnectOptions options, NodeCheck check)
        : options_(std::move(options)), check_(std::move(check)) {
        options_.validate();
        check_.validate();
    }

    /// Opens and checks a new connection; throws Error{connect_failed} or
    /// Error{node_unavailable}.
    CheckedConnection operator()() const {
        try {
            return CheckedConnection(options_, check_);
        } catch (const Error& error) {
            if (check_.health && error.code() != ErrorCode::node_unavailable) {
                check_.health->report_unavailable(error.what());
            }
            throw;
        }
    }

    /// The options every connection is opened with.
    const ConnectOptions& options() const noexcept { return options_; }
    /// The check every connection runs.
    const NodeCheck& check() const noexcept { return check_; }

private:
    ConnectOptions options_;
    NodeCheck check_;
};

}  // namespace dbpool::pg

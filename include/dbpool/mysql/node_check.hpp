#pragma once

#include <dbpool/error.hpp>
#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/connection.hpp>
#include <dbpool/node_health.hpp>

#include <cctype>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace dbpool::mysql {

/// What a CheckedConnection verifies about its node, at connect and at every ping (the pool's
/// validation: on-request pings and keepalive).
struct NodeCheck {
    /// Galera: the node must report wsrep_ready = ON and wsrep_local_state = 4 (Synced). A node
    /// that does not is refused at connect (Error{node_unavailable}) and fails its pings.
    bool galera = false;
    /// Replica: measure replication lag. The connection stays usable whatever the lag; the
    /// node is reported `lagging` when the lag is unknown or above max_replica_lag.
    bool replica = false;
    /// Replica lag above this marks the node `lagging` (0 = any measured lag is fine).
    std::chrono::milliseconds max_replica_lag{std::chrono::seconds(5)};
    /// Measure lag as NOW(6) minus the newest `ts` column of this table ("db.table"), which the
    /// primary updates regularly (pt-heartbeat style; sub-second resolution, keeps counting
    /// while replication is stopped). Empty: Seconds_Behind_Master of SHOW SLAVE STATUS
    /// (whole seconds; NULL, i.e. unknown, while the SQL thread is stopped).
    std::string heartbeat_table;
    /// Where every check's verdict goes (a Router reads it); null = not reported.
    std::shared_ptr<NodeHealth> health;

    /// Throws Error{invalid_options} naming the field that is wrong.
    void validate() const {
        if (max_replica_lag.count() < 0) {
            throw Error(ErrorCode::invalid_options,
                        "mysql NodeCheck: max_replica_lag must not be negative");
        }
        if (!heartbeat_table.empty()) {
            int dots = 0;
            for (const char c : heartbeat_table) {
                if (c == '.') {
                    ++dots;
                } else if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_') {
                    throw Error(ErrorCode::invalid_options,
                                "mysql NodeCheck: heartbeat_table must be a plain name or "
                                "db.table (letters, digits, '_')");
                }
            }
            if (dots > 1 || heartbeat_table.front() == '.' || heartbeat_table.back() == '.') {
                throw Error(ErrorCode::invalid_options,
                            "mysql NodeCheck: heartbeat_table must be a plain name or db.table");
            }
            if (!replica) {
                throw Error(ErrorCode::invalid_options,
                            "mysql NodeCheck: heartbeat_table is set but replica is false");
            }
        }
    }
};

/// A Connection that checks its node's health at connect and on every ping, and reports each
/// verdict to `NodeCheck::health`. Use it as a pool's connection type for cluster nodes; plain
/// Connection pays nothing for this.
///
/// Not thread-safe (one thread at a time, like Connection); the shared NodeHealth is.
class CheckedConnection : public Connection {
public:
    /// Connects and checks; throws Error{invalid_options} (before connecting),
    /// Error{connect_failed} when the node cannot be reached and Error{node_unavailable} when it
    /// answers but is not ready (a Galera node not Synced).
    CheckedConnection(ConnectOptions options, NodeCheck check)
        : Connection((check.validate(), std::move(options))), check_(std::move(check)) {
        if (!check_node()) {
            const std::string why = last_reason_;
            close();
            throw Error(ErrorCode::node_unavailable,
                        "mysql: " + this->options().describe() + " is not ready: " + why, 1047,
                        "08S01");
        }
    }

    /// Pings and checks the node: false when the server does not answer or (Galera) is not
    /// Synced, so a pool replaces the connection. A lagging replica still answers true: the
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
            if (check_.galera && !check_galera()) return false;
            if (check_.replica) {
                check_replica();
            } else if (check_.health) {
                check_.health->report_healthy();
            }
            return true;
        } catch (const std::exception& error) {
            report_unavailable(std::string("the health check failed: ") + error.what());
            return false;
        }
    }

    /// The check this connection runs.
    const NodeCheck& check() const noexcept { return check_; }

private:
    bool check_galera() {
        const auto rows =
            query("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state')");
        std::string ready;
        std::string state;
        for (const auto& row : rows) {
            const auto name = row.get<std::string>(0);
            if (name == "wsrep_ready") ready = row.get<std::string>(1);
            if (name == "wsrep_local_state") state = row.get<std::string>(1);
        }
        if (ready == "ON" && state == "4") return true;
        report_unavailable(ready.empty() ? "wsrep is not enabled on this server"
                                         : "Galera node not ready (wsrep_ready=" + ready +
                                               ", wsrep_local_state=" + state + ", 4 = Synced)");
        return false;
    }

    void check_replica() {
        std::optional<long long> lag_ms;
        std::string why;
        if (!check_.heartbeat_table.empty()) {
            const auto value = query("SELECT TIMESTAMPDIFF(MICROSECOND, MAX(ts), NOW(6)) FROM " +
                                     check_.heartbeat_table)
                                   .scalar<std::optional<long long>>();
            if (value) {
                lag_ms = *value < 0 ? 0 : *value / 1000;
            } else {
                why = "the heartbeat table " + check_.heartbeat_table + " is empty";
            }
        } else {
            const auto rows = query("SHOW SLAVE STATUS");
            if (rows.empty()) {
                why = "not a replica (SHOW SLAVE STATUS is empty)";
            } else {
                const auto seconds = rows[0].get<std::optional<long long>>("Seconds_Behind_Master");
                if (seconds) {
                    lag_ms = *seconds * 1000;
                } else {
                    why = "replication is not running (Seconds_Behind_Master is NULL)";
                }
            }
        }
        if (!check_.health) return;
        if (!lag_ms) {
            check_.health->report_lagging(std::chrono::milliseconds(-1), why);
            return;
        }
        const std::chrono::milliseconds lag(*lag_ms);
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
        last_reason_ = reason;
        if (!check_.health) return;
        try {
            check_.health->report_unavailable(std::move(reason));
        } catch (...) {
            // Out of memory while recording a reason: the state is still what matters.
        }
    }

    NodeCheck check_;
    std::string last_reason_;
};

/// A creator of CheckedConnections for dbpool's pools; a connect failure is also reported to
/// the NodeHealth. Copyable and callable from any thread.
class CheckedConnector {
public:
    /// Validates both option sets now, so a pool fails at construction rather than at first use.
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

}  // namespace dbpool::mysql

#pragma once

/// \file
/// PoolStats, a snapshot of a pool's gauges and counters, and to_prometheus().

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dbpool {

/// Count, total and longest of a set of durations.
struct DurationSummary {
    std::uint64_t count = 0;            ///< How many durations were recorded.
    std::chrono::nanoseconds total{0};  ///< Their sum.
    std::chrono::nanoseconds max{0};    ///< The longest.

    /// The mean, or zero when nothing was recorded.
    std::chrono::nanoseconds mean() const noexcept {
        return count == 0 ? std::chrono::nanoseconds(0) : total / static_cast<std::int64_t>(count);
    }
};

/// A consistent-enough snapshot of a pool, taken under its lock; cheap, meant for scraping.
struct PoolStats {
    std::size_t total = 0;              ///< Open or being opened: idle + in_use + connecting.
    std::size_t idle = 0;               ///< Open and not handed out (keepalive pings included).
    std::size_t in_use = 0;             ///< Handed out (shared ones once), returning or closing.
    std::size_t connecting = 0;         ///< New connections being opened for the pool.
    std::size_t waiting = 0;            ///< Threads waiting for a connection.
    std::size_t maxconnections = 0;     ///< The limit (0 = none).
    std::uint64_t acquired = 0;         ///< Connections handed out since start.
    std::uint64_t created = 0;          ///< Connects that succeeded (reconnects included).
    std::uint64_t closed = 0;           ///< Connections closed (replaced ones included).
    std::uint64_t reconnects = 0;       ///< Borrowed connections replaced (broken, maxusage).
    std::uint64_t timeouts = 0;         ///< Blocking acquires that hit acquire_timeout.
    std::uint64_t exhausted = 0;        ///< Non-blocking acquires refused at the limit.
    std::uint64_t failed_connects = 0;  ///< Connects that failed (every attempt counted).
    std::uint64_t leaks = 0;            ///< Connections reported as held past leak_threshold.
    DurationSummary acquire_wait;       ///< Time spent waiting in acquire (slow path only).
    DurationSummary usage;              ///< Time connections were held by borrowers.
    bool connects_failing = false;      ///< The last connect attempt failed (back-off is on).
};

namespace detail {

inline void prometheus_metric(std::string& out, std::string_view prefix, std::string_view name,
                              std::string_view type, std::string_view help, std::string_view labels,
                              double value) {
    std::string full(prefix);
    full += '_';
    full += name;
    out += "# HELP " + full + ' ' + std::string(help) + '\n';
    out += "# TYPE " + full + ' ' + std::string(type) + '\n';
    out += full;
    if (!labels.empty()) out += '{' + std::string(labels) + '}';
    out += ' ' + std::to_string(value) + '\n';
}

}  // namespace detail

/// Renders a snapshot in the Prometheus text exposition format; `labels` is inserted as is,
/// e.g. `pool="orders"`. A pure function of its arguments: any thread.
inline std::string to_prometheus(const PoolStats& stats, std::string_view prefix = "dbpool",
                                 std::string_view labels = {}) {
    using detail::prometheus_metric;
    const auto seconds = [](std::chrono::nanoseconds d) {
        return std::chrono::duration<double>(d).count();
    };
    std::string out;
    prometheus_metric(out, prefix, "connections", "gauge", "Connections open or opening.", labels,
                      double(stats.total));
    prometheus_metric(out, prefix, "connections_idle", "gauge", "Idle connections.", labels,
                      double(stats.idle));
    prometheus_metric(out, prefix, "connections_in_use", "gauge", "Connections handed out.", labels,
                      double(stats.in_use));
    prometheus_metric(out, prefix, "connections_connecting", "gauge", "Connections being opened.",
                      labels, double(stats.connecting));
    prometheus_metric(out, prefix, "waiting_threads", "gauge", "Threads waiting to acquire.",
                      labels, double(stats.waiting));
    prometheus_metric(out, prefix, "max_connections", "gauge", "Configured limit (0 = none).",
                      labels, double(stats.maxconnections));
    prometheus_metric(out, prefix, "acquired_total", "counter", "Connections handed out.", labels,
                      double(stats.acquired));
    prometheus_metric(out, prefix, "created_total", "counter", "Connections opened.", labels,
                      double(stats.created));
    prometheus_metric(out, prefix, "closed_total", "counter", "Connections closed.", labels,
                      double(stats.closed));
    prometheus_metric(out, prefix, "reconnects_total", "counter", "Connections replaced.", labels,
                      double(stats.reconnects));
    prometheus_metric(out, prefix, "acquire_timeouts_total", "counter", "Acquires that timed out.",
                      labels, double(stats.timeouts));
    prometheus_metric(out, prefix, "exhausted_total", "counter",
                      "Non-blocking acquires refused at the limit.", labels,
                      double(stats.exhausted));
    prometheus_metric(out, prefix, "connect_failures_total", "counter", "Failed connects.", labels,
                      double(stats.failed_connects));
    prometheus_metric(out, prefix, "connects_failing", "gauge",
                      "1 while the last connect attempt failed.", labels,
                      stats.connects_failing ? 1.0 : 0.0);
    prometheus_metric(out, prefix, "leaks_total", "counter", "Connections held too long.", labels,
                      double(stats.leaks));
    prometheus_metric(out, prefix, "acquire_wait_seconds_total", "counter",
                      "Time spent waiting to acquire.", labels, seconds(stats.acquire_wait.total));
    prometheus_metric(out, prefix, "acquire_wait_seconds_max", "gauge", "Longest wait to acquire.",
                      labels, seconds(stats.acquire_wait.max));
    prometheus_metric(out, prefix, "usage_seconds_total", "counter", "Time connections were held.",
                      labels, seconds(stats.usage.total));
    prometheus_metric(out, prefix, "usage_seconds_max", "gauge",
                      "Longest time a connection was held.", labels, seconds(stats.usage.max));
    return out;
}

}  // namespace dbpool

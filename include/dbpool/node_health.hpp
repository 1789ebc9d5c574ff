#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

namespace dbpool {

/// What the last health check of a database node found.
enum class NodeState {
    unknown,      ///< Not checked yet.
    healthy,      ///< Usable; for a replica, its lag was measured (see NodeStatus::lag).
    lagging,      ///< Up, but its replication lag is unknown (replication stopped) or too high.
    unavailable,  ///< Down, unreachable, or not ready to serve (e.g. a Galera node not Synced).
};

/// Short stable name of a node state, e.g. "healthy".
inline const char* to_string(NodeState state) noexcept {
    switch (state) {
        case NodeState::unknown: return "unknown";
        case NodeState::healthy: return "healthy";
        case NodeState::lagging: return "lagging";
        case NodeState::unavailable: return "unavailable";
    }
    return "unknown";
}

/// A snapshot of a node's health.
struct NodeStatus {
    NodeState state = NodeState::unknown;  ///< The verdict of the last check.
    /// Replication lag measured by the last check; negative when unknown or not measured.
    std::chrono::milliseconds lag{-1};
    /// When the last check finished (steady clock); epoch when never checked.
    std::chrono::steady_clock::time_point checked_at{};
    /// Why the node is not healthy (empty when it is); never contains a password.
    std::string reason;
};

/// The shared health record of one node, written by the health checks of its connections
/// (at connect, at validation, by a router's probe) and read by a router on every request.
///
/// Thread-safety: every member may be called from any thread. Reading the state and lag is
/// lock-free; the reason text is kept under a small mutex.
class NodeHealth {
public:
    /// Records a usable node; `lag` is the measured replication lag (negative = not measured).
    void report_healthy(std::chrono::milliseconds lag = std::chrono::milliseconds(-1)) {
        store(NodeState::healthy, lag, {});
    }

    /// Records a node that answers but whose lag is unknown or above what its check allows.
    void report_lagging(std::chrono::milliseconds lag, std::string reason) {
        store(NodeState::lagging, lag, std::move(reason));
    }

    /// Records a node that cannot serve (down, or not ready); `reason` says why.
    void report_unavailable(std::string reason) {
        store(NodeState::unavailable, std::chrono::milliseconds(-1), std::move(reason));
    }

    /// The current state, lock-free.
    NodeState state() const noexcept { return static_cast<NodeState>(state_.load()); }

    /// The lag of the last check (negative = unknown), lock-free.
    std::chrono::milliseconds lag() const noexcept {
        return std::chrono::milliseconds(lag_ms_.load());
    }

    /// When the last check finished, lock-free.
    std::chrono::steady_clock::time_point checked_at() const noexcept {
        return std::chrono::steady_clock::time_point(
            std::chrono::steady_clock::duration(checked_at_.load()));
    }

    /// How many checks reported anything since construction.
    std::uint64_t checks() const noexcept { return checks_.load(); }

    /// A full snapshot (takes the reason's mutex).
    NodeStatus status() const {
        NodeStatus status;
        std::lock_guard<std::mutex> lock(mutex_);
        status.state = state();
        status.lag = lag();
        status.checked_at = checked_at();
        status.reason = reason_;
        return status;
    }

private:
    void store(NodeState state, std::chrono::milliseconds lag, std::string reason) {
        std::lock_guard<std::mutex> lock(mutex_);
        reason_ = std::move(reason);
        lag_ms_.store(lag.count());
        checked_at_.store(std::chrono::steady_clock::now().time_since_epoch().count());
        state_.store(static_cast<int>(state));
        checks_.fetch_add(1);
    }

    std::atomic<int> state_{static_cast<int>(NodeState::unknown)};
    std::atomic<std::int64_t> lag_ms_{-1};
    std::atomic<std::int64_t> checked_at_{0};
    std::atomic<std::uint64_t> checks_{0};
    mutable std::mutex mutex_;
    std::string reason_;
};

}  // namespace dbpool

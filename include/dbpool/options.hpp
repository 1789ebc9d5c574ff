#pragma once

/// \file
/// The options of the three classes (SteadyOptions, PersistentOptions, PoolOptions) with
/// DBUtils' names, and the Ping bits and Reset policies.

#include <dbpool/connection_traits.hpp>
#include <dbpool/pool_events.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace dbpool {

/// Ping bits, with DBUtils' meaning; combine with `|`.
struct Ping {
    static constexpr unsigned never = 0;       ///< Never ping.
    static constexpr unsigned on_request = 1;  ///< When a pool hands the connection out.
    static constexpr unsigned on_cursor = 2;   ///< When a statement object is prepared.
    static constexpr unsigned on_execute = 4;  ///< Before each statement.
    static constexpr unsigned always = 7;      ///< All of the above.
};

/// What a pool does to a connection when it comes back.
enum class Reset {
    none,      ///< Nothing is sent; a connection returned inside a transaction is closed instead.
    rollback,  ///< Roll back when a transaction is open (begin() or server status); else free.
    always,    ///< Roll back on every return, one round trip each (DBUtils' reset=True).
    full,      ///< Full session reset (MySQL COM_RESET_CONNECTION), then setsession again.
};

/// Classifies a statement's exception; empty means "ask ConnectionTraits".
using FailureClassifier = std::function<Failure(const std::exception&)>;

/// Options of one SteadyConnection (and of each connection of a PersistentPool).
struct SteadyOptions {
    /// Statements before the connection is reopened (0 = unlimited); never inside a transaction.
    int maxusage = 0;
    /// Statements run after every (re)connect, e.g. "SET time_zone = '+00:00'".
    std::vector<std::string> setsession;
    /// Ping bits (see Ping); on_cursor and on_execute are skipped inside a transaction.
    unsigned ping = Ping::on_request;
    /// When false, close() only rolls back an open transaction and keeps the connection.
    bool closeable = true;
    /// Overrides which errors mean "connection broken".
    FailureClassifier failures;
    /// Skip a ping when the connection was used successfully this recently (0 = DBUtils counts).
    std::chrono::milliseconds ping_bypass{500};
};

/// Options of a PersistentPool: those of its per-thread steady connections.
struct PersistentOptions : SteadyOptions {
    /// Persistent connections ignore close() unless this is set (DBUtils' default).
    PersistentOptions() { closeable = false; }
};

/// Where a pooled connection was acquired, for leak reports.
struct AcquireSite {
    const char* file = nullptr;  ///< Source file of the acquiring call, or null if unknown.
    int line = 0;                ///< Line of the acquiring call, or 0.
};

/// Reported once when a connection is held past leak_threshold, and again when it returns.
struct LeakReport {
    std::chrono::milliseconds held{0};  ///< How long it had been held when reported.
    AcquireSite acquired_at;            ///< Where it was acquired.
    bool returned = false;              ///< False when first reported, true when it came back.
};

/// Options of a PooledPool: DBUtils' names first, then what DBUtils lacks.
struct PoolOptions {
    /// Idle connections opened at start-up and kept open by maintenance.
    int mincached = 0;
    /// The most idle connections kept; a returned one beyond it is closed (0 = no limit).
    int maxcached = 0;
    /// The most connections shared between threads (only for thread-safe-sharing types).
    int maxshared = 0;
    /// The most connections open at once (0 = no limit).
    int maxconnections = 0;
    /// At the limit: wait (true) or throw pool_exhausted at once (false).
    bool blocking = false;
    /// Statements before a connection is reopened (0 = unlimited).
    int maxusage = 0;
    /// Statements run after every (re)connect.
    std::vector<std::string> setsession;
    /// What happens to a connection when it is returned.
    Reset reset = Reset::rollback;
    /// Ping bits (see Ping).
    unsigned ping = Ping::on_request;
    /// Overrides which errors mean "connection broken".
    FailureClassifier failures;

    /// The longest a connection() call takes, pings and connects made for it included
    /// (0 or milliseconds::max() = forever).
    std::chrono::milliseconds acquire_timeout{std::chrono::seconds(30)};
    /// Once the oldest waiter has waited this long, a returned connection is handed to it
    /// directly; before that, a thread already running may take it (no context switch per
    /// hand-off). Waiters are always served in arrival order. 0 = strict hand-off.
    std::chrono::microseconds handoff_after{1000};
    /// Skip the on-request ping when the connection was used this recently (0 = always ping).
    std::chrono::milliseconds ping_bypass{500};
    /// Idle connections above mincached are closed after this long idle (0 = never).
    std::chrono::milliseconds idle_timeout{0};
    /// Connections are retired after living this long, minus up to 2.5% jitter (0 = never).
    std::chrono::milliseconds max_lifetime{0};
    /// Idle connections are pinged this often so the server never idles them out (0 = never).
    std::chrono::milliseconds keepalive_interval{0};
    /// A connection held longer than this is reported to on_leak (0 = off).
    std::chrono::milliseconds leak_threshold{0};
    /// Receives leak reports; called from the maintenance thread or the returning thread,
    /// never after close() returns.
    std::function<void(const LeakReport&)> on_leak;
    /// Receives pool events (connects, failures, timeouts, ...) on the thread that did the
    /// work, never under the pool's lock and never after close() returns; must not block.
    std::function<void(const PoolEvent&)> on_event;
    /// First wait after a failed connect before the next attempt; it doubles per failure.
    std::chrono::milliseconds connect_backoff_min{100};
    /// Longest wait between connect attempts while they fail: about one attempt per this long.
    std::chrono::milliseconds connect_backoff_max{std::chrono::seconds(1)};
    /// How often maintenance runs (0 = derived from the options above, 10 ms to 1 s); without
    /// mincached, idle_timeout, max_lifetime, keepalive_interval or leak_threshold there is
    /// no maintenance thread at all.
    std::chrono::milliseconds maintenance_interval{0};
    /// Run maintenance on a background thread; when false, call run_maintenance() yourself
    /// (connects and hand-out pings for acquirers still run on pool workers).
    bool background_maintenance = true;

    /// The options of each steady connection in the pool.
    SteadyOptions steady_options() const {
        SteadyOptions steady;
        steady.maxusage = maxusage;
        steady.setsession = setsession;
        steady.ping = ping;
        steady.failures = failures;
        steady.ping_bypass = ping_bypass;
        return steady;
    }
};

}  // namespace dbpool

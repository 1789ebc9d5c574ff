#pragma once

/// \file
/// PooledPool (DBUtils' PooledDB): a pool of steady connections shared by all threads.

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/options.hpp>
#include <dbpool/pool_stats.hpp>
#include <dbpool/pooled_connection.hpp>
#include <dbpool/steady_connection.hpp>

#include <chrono>
#include <memory>
#include <type_traits>
#include <utility>

// The acquiring call site, recorded for leak reports at no cost (GCC and Clang builtins).
// The builtins must be default arguments of a function called from a default argument: GCC
// evaluates them in a braced initializer at the declaration, not at the caller.
#if defined(__GNUC__) || defined(__clang__)
namespace dbpool::detail {
inline AcquireSite caller_site(const char* file = __builtin_FILE(),
                               int line = __builtin_LINE()) noexcept {
    return AcquireSite{file, line};
}
}  // namespace dbpool::detail
/// The caller's file and line as an AcquireSite: the default argument of PooledPool::connection().
#define DBPOOL_CALLER_SITE ::dbpool::detail::caller_site()
#else
/// An unknown AcquireSite: compilers without __builtin_FILE cannot name the caller.
#define DBPOOL_CALLER_SITE \
    ::dbpool::AcquireSite {}
#endif

namespace dbpool {

/// A pool of steady connections shared by all threads (DBUtils' PooledDB), with acquire
/// timeouts, idle/lifetime/keepalive maintenance, leak detection and metrics.
///
/// Thread-safety: every member may be called from any thread. Not movable; keep it where its
/// users can reach it (or in a shared_ptr). Destroying it closes it (see close()): a thread
/// waiting in connection() gets Error{pool_closed}, and connections still borrowed are closed
/// when their handles return them, which stays safe after the pool object is gone.
///
/// Where connections are opened: connects, hand-out pings and keepalives run on the pool's
/// worker threads, and a caller waits for them only up to its acquire_timeout. One exception:
/// when nothing is idle, nobody is waiting, the pool is below maxconnections, no setsession
/// statements are configured and the creator promises a bound (a `connect_bound()` member, as
/// pg::Connector has when no host name must be resolved; a wrapper around a
/// connector must forward it, as examples/pg_scenarios.cpp does) that fits the caller's
/// deadline, the caller opens its connection itself, as DBUtils does. The wait is then just as
/// bounded, and a connection starts on the thread that uses it, which the OS scheduler rewards
/// (measured in docs/benchmarks.md).
template <class Connection, class Clock = std::chrono::steady_clock>
class PooledPool {
    using Core = detail::PooledCore<Connection, Clock>;

public:
    /// The handle connection() returns.
    using handle_type = PooledConnection<Connection, Clock>;
    /// The protected connection type.
    using steady_type = SteadyConnection<Connection, Clock>;

    /// Validates the options and opens mincached connections; throws Error{invalid_options}
    /// naming the field, or Error{connect_failed}.
    ///
    /// \par Exception safety
    /// Strong: when it throws, the connections it opened are closed (one still being opened on a
    /// pool thread is closed when its connect ends) and nothing of the pool stays in use.
    template <class Creator,
              class = std::enable_if_t<!std::is_same_v<std::decay_t<Creator>, PooledPool>>>
    explicit PooledPool(Creator&& creator, PoolOptions options = {})
        : core_(std::make_shared<Core>(std::forward<Creator>(creator), std::move(options))) {
        try {
            core_->start();
        } catch (...) {
            core_->close();
            throw;
        }
    }

    PooledPool(const PooledPool&) = delete;
    PooledPool& operator=(const PooledPool&) = delete;

    /// Closes the pool (see close()).
    ~PooledPool() { core_->close(); }

    /// Borrows a connection; with `shareable` and a thread-safe-sharing connection type it may
    /// be shared with other threads (maxshared). Throws Error{pool_exhausted} (non-blocking, at
    /// the limit), Error{timeout}, Error{pool_closed} or Error{connect_failed}.
    ///
    /// Keep the handle in a variable: `*pool.connection()` and `pool.connection()->...` do not
    /// compile, because the temporary would return the connection at the end of the statement.
    ///
    /// \par Exception safety
    /// Strong: when it throws, the caller holds nothing and the pool serves others as before
    /// (a connection found dead on the way has been closed; stats() counts what was tried).
    /// Never waits longer than acquire_timeout, pings and connects made for it included.
    ///
    /// \par Thread-safety
    /// Any thread; waiters are served first come, first served.
    handle_type connection(bool shareable = true, AcquireSite site = DBPOOL_CALLER_SITE) {
        Core* core = core_.get();  // the pool object may be destroyed while this call waits
        if (shareable && core->options().maxshared > 0) {
            return handle_type(core, &core->acquire_shared(site), true);
        }
        return handle_type(core, &core->acquire(site), false);
    }

    /// Borrows a connection that is never shared.
    handle_type dedicated_connection(AcquireSite site = DBPOOL_CALLER_SITE) {
        Core* core = core_.get();
        return handle_type(core, &core->acquire(site), false);
    }

    /// A new unpooled steady connection with the pool's creator and options.
    std::unique_ptr<steady_type> steady_connection() const {
        return std::make_unique<steady_type>(creator(), core_->options().steady_options());
    }

    /// Refuses new requests, wakes waiters with Error{pool_closed}, stops maintenance and
    /// closes idle connections; borrowed ones are closed when returned, and connections in the
    /// middle of a ping or connect when that ends. Waits at most half a second for a ping or
    /// connect in flight (so that no pool thread is inside the client library when the process
    /// exits right after); one that takes longer, on a dead network, finishes in the background.
    /// Idempotent; never throws.
    ///
    /// \par Thread-safety
    /// Any thread, also from an on_event or on_leak callback of this pool. After it returns, no
    /// callback of this pool runs any more.
    void close() noexcept { core_->close(); }

    /// A snapshot of the pool's counters, taken under the pool's lock (cheap: meant for scraping).
    ///
    /// \par Thread-safety
    /// Any thread, also from a callback.
    PoolStats stats() const { return core_->stats(); }

    /// One maintenance pass now (needed only with background_maintenance = false).
    void run_maintenance() { core_->run_maintenance(); }

    /// The validated options.
    const PoolOptions& options() const noexcept { return core_->options(); }

private:
    friend struct detail::PoolInvariants<Core>;  // the tests' quiescent check reads the core

    auto creator() const { return core_->creator(); }

    std::shared_ptr<Core> core_;
};

}  // namespace dbpool

#pragma once

/// \file
/// PooledConnection, the move-only handle that PooledPool::connection() returns.

#include <dbpool/detail/handle_forwarding.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/error.hpp>
#include <dbpool/steady_connection.hpp>

#include <chrono>
#include <utility>

namespace dbpool {

template <class Connection, class Clock>
class PooledPool;

/// A connection borrowed from a PooledPool: move-only; returned to the pool by close() or by
/// its destructor. `->` and `*` reach the SteadyConnection.
///
/// Thread-safety: use a handle from one thread at a time. It stays valid after its pool is
/// closed or destroyed; the connection is then closed when the handle returns it.
template <class Connection, class Clock = std::chrono::steady_clock>
class PooledConnection
    : public detail::HandleForwarding<PooledConnection<Connection, Clock>,
                                      SteadyConnection<Connection, Clock>> {
    using Core = detail::PooledCore<Connection, Clock>;
    using Slot = typename Core::Slot;
    using Forwarding =
        detail::HandleForwarding<PooledConnection, SteadyConnection<Connection, Clock>>;

public:
    /// The protected connection type reached through `->`.
    using steady_type = SteadyConnection<Connection, Clock>;

    /// An empty handle, as left behind by a move.
    PooledConnection() noexcept = default;

    /// Takes over `other`'s connection; `other` is left empty.
    PooledConnection(PooledConnection&& other) noexcept
        : Forwarding(),
          core_(std::exchange(other.core_, nullptr)),
          slot_(std::exchange(other.slot_, nullptr)),
          shared_(other.shared_) {}

    /// Returns this handle's connection, then takes over `other`'s.
    PooledConnection& operator=(PooledConnection&& other) noexcept {
        if (this != &other) {
            close();
            core_ = std::exchange(other.core_, nullptr);
            slot_ = std::exchange(other.slot_, nullptr);
            shared_ = other.shared_;
        }
        return *this;
    }

    PooledConnection(const PooledConnection&) = delete;
    PooledConnection& operator=(const PooledConnection&) = delete;

    /// Returns the connection to the pool.
    ~PooledConnection() { close(); }

    /// Returns the connection to the pool (PoolOptions::reset decides what is sent: by default a
    /// ROLLBACK, and only when a transaction was left open); further use throws
    /// Error{handle_closed}. Idempotent; never throws: a connection that cannot be reset is
    /// closed instead of returned.
    void close() noexcept { give_back(false); }

    /// Returns the connection and has the pool close it (e.g. after a protocol error). On a
    /// shared connection the other sharers keep it until they return it; nobody gets it again.
    void discard() noexcept { give_back(true); }

    /// Whether this handle still holds a connection.
    bool is_open() const noexcept { return slot_ != nullptr; }
    /// Whether this handle still holds a connection.
    explicit operator bool() const noexcept { return is_open(); }
    /// Whether the connection may be shared with other threads (maxshared).
    bool is_shared() const noexcept { return shared_; }

private:
    friend class PooledPool<Connection, Clock>;
    friend Forwarding;

    PooledConnection(Core* core, Slot* slot, bool shared) noexcept
        : core_(core), slot_(slot), shared_(shared) {}

    steady_type& checked_steady() const {
        if (slot_ == nullptr) {
            throw Error(ErrorCode::handle_closed,
                        "dbpool: this pooled connection was already closed (returned to its pool)");
        }
        core_->check_fork();
        if (Core::orphaned(*slot_)) {
            throw Error(ErrorCode::handle_closed,
                        "dbpool: this pooled connection was borrowed before fork(), and this "
                        "process is the child: its connection belongs to the parent. Close this "
                        "handle and acquire a new connection");
        }
        return *slot_->steady;
    }

    void give_back(bool discard) noexcept {
        if (slot_ == nullptr) return;
        Core* core = std::exchange(core_, nullptr);
        Slot* slot = std::exchange(slot_, nullptr);
        core->give_back(*slot, shared_, discard);
    }

    // The slot holds the pool's state alive while this handle has it, so a raw pointer will do.
    Core* core_ = nullptr;
    Slot* slot_ = nullptr;
    bool shared_ = false;
};

}  // namespace dbpool

#pragma once

#include <dbpool/detail/pool_slot.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/error.hpp>
#include <dbpool/steady_connection.hpp>

#include <utility>

namespace dbpool {

template <class Connection, class Clock>
class PooledPool;

/// A connection borrowed from a PooledPool: move-only; returned to the pool by close() or by
/// its destructor. `->` and `*` reach the SteadyConnection. Use it from one thread at a time.
template <class Connection, class Clock = std::chrono::steady_clock>
class PooledConnection {
    using Core = detail::PooledCore<Connection, Clock>;
    using Slot = detail::PoolSlot<SteadyConnection<Connection, Clock>>;

public:
    /// The protected connection type reached through `->`.
    using steady_type = SteadyConnection<Connection, Clock>;

    /// An empty handle, as left behind by a move.
    PooledConnection() noexcept = default;

    PooledConnection(PooledConnection&& other) noexcept
        : core_(std::exchange(other.core_, nullptr)),
          slot_(std::exchange(other.slot_, nullptr)),
          shared_(other.shared_) {}

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

    /// The steady connection; throws Error{handle_closed} after close().
    steady_type* operator->() const { return &steady(); }
    /// The steady connection; throws Error{handle_closed} after close().
    steady_type& operator*() const { return steady(); }

    /// The steady connection; throws Error{handle_closed} after close().
    steady_type& steady() const {
        if (slot_ == nullptr) {
            throw Error(ErrorCode::handle_closed,
                        "dbpool: this pooled connection was already closed (returned to its pool)");
        }
        return *slot_->steady;
    }

    /// Starts a transaction (see SteadyConnection::begin).
    void begin() { steady().begin(); }
    /// Commits (see SteadyConnection::commit).
    void commit() { steady().commit(); }
    /// Rolls back (see SteadyConnection::rollback).
    void rollback() { steady().rollback(); }

    /// Returns the connection to the pool; further use throws. Idempotent; never throws.
    void close() noexcept { give_back(false); }

    /// Returns the connection and has the pool close it (e.g. after a protocol error).
    void discard() noexcept { give_back(true); }

    /// Whether this handle still holds a connection.
    bool is_open() const noexcept { return slot_ != nullptr; }
    /// Whether this handle still holds a connection.
    explicit operator bool() const noexcept { return is_open(); }
    /// Whether the connection may be shared with other threads (maxshared).
    bool is_shared() const noexcept { return shared_; }

private:
    friend class PooledPool<Connection, Clock>;

    PooledConnection(Core* core, Slot* slot, bool shared) noexcept
        : core_(core), slot_(slot), shared_(shared) {}

    void give_back(bool discard) noexcept {
        if (slot_ == nullptr) return;
        Core* core = std::exchange(core_, nullptr);
        Slot* slot = std::exchange(slot_, nullptr);
        if (shared_ && !discard) {
            core->release_shared(*slot);
        } else {
            core->give_back(*slot, discard);
        }
    }

    Core* core_ = nullptr;
    Slot* slot_ = nullptr;
    bool shared_ = false;
};

}  // namespace dbpool

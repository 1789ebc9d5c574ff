#pragma once

namespace dbpool::detail {

// What every connection handle forwards to its SteadyConnection, written once. `Handle`
// provides `Steady& checked_steady() const`, which throws Error{handle_closed} when empty.
//
// `*`, `->` and steady() are refused on a temporary handle: the temporary returns its
// connection to the pool at the end of the full expression, so anything that keeps the
// reference dangles (`dbpool::Transaction tx(*pool.connection());` would roll back, or run on,
// a connection another thread has borrowed meanwhile). Name the handle first:
// `auto conn = pool.connection(); conn->execute(...);`.
template <class Handle, class Steady>
class HandleForwarding {
public:
    /// The steady connection; throws Error{handle_closed} after close().
    Steady* operator->() const& { return &self().checked_steady(); }
    /// Deleted: a pointer into a temporary handle dangles; name the handle first.
    Steady* operator->() && = delete;
    /// The steady connection; throws Error{handle_closed} after close().
    Steady& operator*() const& { return self().checked_steady(); }
    /// Deleted: a reference into a temporary handle dangles; name the handle first.
    Steady& operator*() && = delete;

    /// The steady connection; throws Error{handle_closed} after close().
    Steady& steady() const& { return self().checked_steady(); }
    /// Deleted: a reference into a temporary handle dangles; name the handle first.
    Steady& steady() && = delete;

    /// Starts a transaction (see SteadyConnection::begin).
    void begin() { self().checked_steady().begin(); }
    /// Commits (see SteadyConnection::commit).
    void commit() { self().checked_steady().commit(); }
    /// Rolls back (see SteadyConnection::rollback).
    void rollback() { self().checked_steady().rollback(); }

protected:
    HandleForwarding() = default;
    ~HandleForwarding() = default;
    HandleForwarding(const HandleForwarding&) = default;
    HandleForwarding(HandleForwarding&&) noexcept = default;
    HandleForwarding& operator=(const HandleForwarding&) = default;
    HandleForwarding& operator=(HandleForwarding&&) noexcept = default;

private:
    const Handle& self() const noexcept { return static_cast<const Handle&>(*this); }
};

}  // namespace dbpool::detail

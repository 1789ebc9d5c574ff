#pragma once

namespace dbpool::detail {

// What every connection handle forwards to its SteadyConnection, written once. `Handle`
// provides `Steady& checked_steady() const`, which throws Error{handle_closed} when empty.
//
// `*handle` and steady() are refused on a temporary handle: `*pool.connection()` would
// return the connection to the pool at the end of the full expression and leave a dangling
// reference (`dbpool::Transaction tx(*pool.connection());` would roll back someone else's
// work). `pool.connection()->execute(...)` stays allowed: the temporary lives until the
// statement is done.
template <class Handle, class Steady>
class HandleForwarding {
public:
    /// The steady connection; throws Error{handle_closed} after close().
    Steady* operator->() const& { return &self().checked_steady(); }
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
    HandleForwarding& operator=(const HandleForwarding&) = default;

private:
    const Handle& self() const noexcept { return static_cast<const Handle&>(*this); }
};

}  // namespace dbpool::detail

#pragma once

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/creator.hpp>
#include <dbpool/error.hpp>

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dbpool::detail {

// Where a SteadyConnection gets its connections and where it gives them back. A standalone
// steady connection (and each of a PersistentPool's) calls its creator directly; a pooled one
// goes through its pool, which counts every attempt, reports events and applies its connect
// back-off. One interface, so no code path can open or close a connection behind the pool.
template <class Connection>
class ConnectionSource {
public:
    ConnectionSource() = default;
    ConnectionSource(const ConnectionSource&) = delete;
    ConnectionSource& operator=(const ConnectionSource&) = delete;
    virtual ~ConnectionSource() = default;

    // A new connection with setsession run; `replacing` when it replaces one the caller had.
    // Throws Error (connect_failed, or pool_closed for a closed pool).
    virtual std::unique_ptr<Connection> connect(bool replacing) = 0;

    // Closes a connection this source opened (network I/O: never under a pool lock).
    virtual void disconnect(std::unique_ptr<Connection> connection) noexcept = 0;

    // Forgets a connection this source opened without sending anything (in a child after
    // fork(), its socket is the parent's). Types without abandon() are leaked, not closed.
    // A source that counts its open connections overrides this to count it too.
    virtual void abandon(std::unique_ptr<Connection> connection) noexcept {
        if (!connection) return;
        if constexpr (ConnectionTraits<Connection>::can_abandon) {
            ConnectionTraits<Connection>::abandon(*connection);
        } else {
            static_cast<void>(connection.release());
        }
    }
};

// Calls the creator and runs the setsession statements; every failure becomes
// Error{connect_failed} keeping the native code and SQLSTATE of the cause.
template <class Connection>
std::unique_ptr<Connection> open_connection(const Creator<Connection>& creator,
                                            const std::vector<std::string>& setsession) {
    using Traits = ConnectionTraits<Connection>;
    std::unique_ptr<Connection> fresh;
    try {
        fresh = creator();
    } catch (const Error& error) {
        // A server that is up but not ready (e.g. a cluster node not synced) says so: a router
        // may go to another node. Everything else is a failed connect.
        if (error.code() == ErrorCode::connect_failed ||
            error.code() == ErrorCode::node_unavailable) {
            throw;
        }
        throw Error(ErrorCode::connect_failed,
                    std::string("dbpool: could not open a connection: ") + error.what(),
                    error.native_code(), error.sqlstate());
    } catch (const std::exception& error) {
        throw Error(ErrorCode::connect_failed,
                    std::string("dbpool: could not open a connection: ") + error.what());
    } catch (...) {
        throw Error(ErrorCode::connect_failed,
                    "dbpool: could not open a connection: the creator threw an exception not "
                    "derived from std::exception");
    }
    if (!fresh)
        throw Error(ErrorCode::connect_failed, "dbpool: the creator returned no connection");
    try {
        for (const auto& statement : setsession)
            Traits::run_session_statement(*fresh, statement);
    } catch (const std::exception& error) {
        Traits::close(*fresh);
        const auto* own = dynamic_cast<const Error*>(&error);
        throw Error(
            ErrorCode::connect_failed,
            std::string("dbpool: a setsession statement failed after connecting: ") + error.what(),
            own ? own->native_code() : 0, own ? own->sqlstate() : std::string());
    }
    return fresh;
}

// The source of a connection that is not pooled: its creator, nothing counted elsewhere.
template <class Connection>
class CreatorSource final : public ConnectionSource<Connection> {
public:
    CreatorSource(std::shared_ptr<const Creator<Connection>> creator,
                  std::vector<std::string> setsession)
        : creator_(std::move(creator)), setsession_(std::move(setsession)) {}

    std::unique_ptr<Connection> connect(bool /*replacing*/) override {
        return open_connection(*creator_, setsession_);
    }

    void disconnect(std::unique_ptr<Connection> connection) noexcept override {
        if (connection) ConnectionTraits<Connection>::close(*connection);
    }

private:
    std::shared_ptr<const Creator<Connection>> creator_;
    std::vector<std::string> setsession_;
};

}  // namespace dbpool::detail

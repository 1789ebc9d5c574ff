#pragma once

/// \file
/// pg::Connector, the creator the pools take, made by pg::connector().

#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/connection.hpp>

#include <string_view>
#include <utility>

namespace dbpool::pg {

/// A creator for dbpool's pools: each call opens a new Connection with the same options.
///
/// Thread-safety: copyable and callable from any thread (it only reads its options;
/// on_notice, if set, is shared by every connection it opens, so it must be thread-safe).
class Connector {
public:
    /// Validates `options` now, so a pool fails at construction rather than at first use.
    explicit Connector(ConnectOptions options) : options_(std::move(options)) {
        options_.validate();
    }

    /// Opens a new connection; throws Error{connect_failed}.
    Connection operator()() const { return Connection(options_); }

    /// The options every connection is opened with.
    const ConnectOptions& options() const noexcept { return options_; }

private:
    ConnectOptions options_;
};

/// A Connector for `options`:
/// `dbpool::PooledPool<dbpool::pg::Connection> pool(dbpool::pg::connector(opts), {});`
inline Connector connector(ConnectOptions options) { return Connector(std::move(options)); }

/// A Connector for a `postgresql://` URL or keyword/value connection string.
inline Connector connector(std::string_view conninfo) {
    return Connector(ConnectOptions::from_url(conninfo));
}

}  // namespace dbpool::pg

#pragma once

/// \file
/// mysql::Connector, the creator the pools take, made by mysql::connector().

#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/connection.hpp>

#include <string_view>
#include <utility>

namespace dbpool::mysql {

/// A creator for dbpool's pools: each call opens a new Connection with the same options.
///
/// Thread-safety: copyable and callable from any thread (it only reads its options).
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
/// `dbpool::PooledPool<dbpool::mysql::Connection> pool(dbpool::mysql::connector(opts), {});`
inline Connector connector(ConnectOptions options) { return Connector(std::move(options)); }

/// A Connector for a `mysql://user:pass@host:port/db?...` URL (see ConnectOptions::from_url).
inline Connector connector(std::string_view url) {
    return Connector(ConnectOptions::from_url(url));
}

}  // namespace dbpool::mysql

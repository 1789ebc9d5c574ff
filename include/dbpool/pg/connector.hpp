#pragma once

/// \file
/// pg::Connector, the creator the pools take, made by pg::connector().

#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/connection.hpp>

#include <arpa/inet.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace dbpool::pg {

namespace detail {

// Whether libpq reaches `host` without name resolution: a unix socket directory (or abstract
// socket), libpq's default (a socket), or an IP address.
inline bool needs_no_resolution(std::string_view host) {
    if (host.empty() || host.front() == '/' || host.front() == '@') return true;
    const std::string text(host);
    unsigned char address[16];
    return inet_pton(AF_INET, text.c_str(), address) == 1 ||
           inet_pton(AF_INET6, text.c_str(), address) == 1;
}

// How long opening a connection with `options` can block, when every step has a bound: the
// connect bound, plus a write and a read bound per init statement. None when a host name has
// to be resolved (resolution has no bound) or a statement may wait forever.
inline std::optional<std::chrono::milliseconds> connect_bound(const ConnectOptions& options) {
    const Conninfo parsed = parse_conninfo(options.conninfo);
    if (conninfo_value(parsed, "hostaddr").empty()) {
        std::string hosts = conninfo_value(parsed, "host");
        if (hosts.empty()) {
            const char* from_environment = std::getenv("PGHOST");
            if (from_environment != nullptr) hosts = from_environment;
        }
        std::string_view rest = hosts;
        for (;;) {
            const std::size_t comma = rest.find(',');
            if (!needs_no_resolution(rest.substr(0, comma))) return std::nullopt;
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    auto bound = options.effective_connect_timeout();
    if (!options.init_statements.empty()) {
        if (options.read_timeout.count() == 0 || options.write_timeout.count() == 0) {
            return std::nullopt;
        }
        // Saturating: a timeout of milliseconds::max() means no limit, never a negative sum.
        using std::chrono::milliseconds;
        const auto plus = [](milliseconds a, milliseconds b) {
            return b > milliseconds::max() - a ? milliseconds::max() : a + b;
        };
        const milliseconds each = plus(options.read_timeout, options.write_timeout);
        for (std::size_t i = 0; i < options.init_statements.size(); ++i)
            bound = plus(bound, each);
    }
    return bound;
}

}  // namespace detail

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

    /// The longest one call can block, when known: the connect bound (plus a write and a read
    /// bound per init statement) if every host is an IP address or a unix socket; none when a
    /// name must be resolved. A pool uses it to open a connection on the acquiring thread when
    /// it fits that thread's deadline (PooledPool: "Where connections are opened").
    std::optional<std::chrono::milliseconds> connect_bound() const {
        return detail::connect_bound(options_);
    }

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

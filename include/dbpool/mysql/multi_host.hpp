#pragma once

#include <dbpool/detail/pool_lock.hpp>
#include <dbpool/detail/saturating.hpp>
#include <dbpool/error.hpp>
#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/connection.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbpool::mysql {

/// Which host a MultiHostConnector tries first.
enum class HostPolicy {
    in_order,     ///< The first host that works, in the order given (failover).
    random,       ///< A random host first, then the others in order after it.
    round_robin,  ///< The next host after the one used last, then the others in order.
};

/// Options of a MultiHostConnector.
struct MultiHostOptions {
    /// The hosts, each with its complete connect options (user, database, timeouts, ...).
    std::vector<ConnectOptions> hosts;
    /// Which host is tried first.
    HostPolicy policy = HostPolicy::in_order;
    /// A host that failed is skipped for this long, doubling on each further failed attempt up
    /// to host_backoff_max; a success resets it. Failures of attempts that were in flight
    /// together count once. milliseconds::max() means "until a restart" (saturated, never an
    /// overflow).
    std::chrono::milliseconds host_backoff{std::chrono::milliseconds(500)};
    /// The longest a failed host is skipped (milliseconds::max(): no limit).
    std::chrono::milliseconds host_backoff_max{std::chrono::seconds(5)};

    /// Throws Error{invalid_options} naming the first wrong field (each host's too).
    void validate() const {
        if (hosts.empty()) {
            throw Error(ErrorCode::invalid_options, "mysql MultiHostOptions: hosts is empty");
        }
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            try {
                hosts[i].validate();
            } catch (const Error& error) {
                throw Error(
                    ErrorCode::invalid_options,
                    "mysql MultiHostOptions: host " + std::to_string(i + 1) + ": " + error.what());
            }
        }
        if (host_backoff.count() < 0 || host_backoff_max < host_backoff) {
            throw Error(ErrorCode::invalid_options,
                        "mysql MultiHostOptions: host_backoff must be >= 0 and <= "
                        "host_backoff_max");
        }
    }
};

/// A creator that connects to one of several hosts: by policy, skipping hosts that failed
/// recently, and when every host fails (or is being skipped) throwing Error{connect_failed}
/// that names every host and its last error (never a password).
///
/// When all hosts are backing off it fails at once without connecting: many callers against
/// a dead cluster cause no connect storm, only one attempt per host per back-off period, also
/// under a burst (see the invariants in the class).
///
/// `Conn` is the connection type made (Connection, or CheckedConnection through `open`).
/// Copies share the back-off state. Thread-safe: call it from any thread.
template <class Conn = Connection>
class MultiHostConnector {
public:
    /// Opens one connection to the given host's options.
    using Open = std::function<Conn(const ConnectOptions&)>;

    /// Validates the options; `open` defaults to constructing `Conn(options)`.
    // NOLINTNEXTLINE(performance-unnecessary-value-param): moved into the shared state below
    explicit MultiHostConnector(MultiHostOptions options, Open open = {})
        : state_(std::make_shared<State>()) {
        options.validate();
        state_->options = std::move(options);
        state_->open =
            open ? std::move(open) : Open([](const ConnectOptions& o) { return Conn(o); });
        state_->hosts.resize(state_->options.hosts.size());
    }

    /// Connects to the first host (by policy) that is not backing off and works.
    Conn operator()() const {
        State& s = *state_;
        const std::size_t n = s.hosts.size();
        std::size_t first = 0;
        {
            std::lock_guard<std::mutex> lock(s.mutex);
            if (s.options.policy == HostPolicy::random) {
                first = std::uniform_int_distribution<std::size_t>(0, n - 1)(s.random);
            } else if (s.options.policy == HostPolicy::round_robin) {
                first = s.next++ % n;
            }
        }
        std::vector<std::string> errors(n);
        int native = 0;
        std::string sqlstate;
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t i = (first + k) % n;
            Attempt attempt{i, 0, false};
            {
                // Decided host by host, just before the attempt: a half-open slot is claimed
                // only by a caller that uses it at once.
                std::lock_guard<std::mutex> lock(s.mutex);
                Host& host = s.hosts[i];
                attempt.wave = host.wave;
                if (host.down()) {
                    if (host.retry_at > Clock::now() || host.probing) continue;  // skipped
                    host.probing = true;  // half-open: this caller retries it, others skip it
                    attempt.probe = true;
                }
                check_invariants_locked();
            }
            s.attempts.fetch_add(1, std::memory_order_relaxed);
            try {
                Conn connection = s.open(s.options.hosts[i]);
                std::lock_guard<std::mutex> lock(s.mutex);
                Host& host = s.hosts[i];
                host.backoff = std::chrono::milliseconds(0);
                host.retry_at = {};
                host.probing = false;  // up: nothing to probe (a stale prober finds wave moved)
                host.last_error.clear();
                ++host.wave;
                check_invariants_locked();
                return connection;
            } catch (const Error& error) {
                errors[i] = error.what();
                native = error.native_code();
                sqlstate = error.sqlstate();
                note_failure(attempt, error.what());
            } catch (const std::exception& error) {
                errors[i] = error.what();
                note_failure(attempt, error.what());
            } catch (...) {
                errors[i] = "an exception not derived from std::exception";
                note_failure(attempt, errors[i].c_str());
            }
        }
        std::string message =
            "mysql: could not connect to any of " + std::to_string(s.hosts.size()) + " hosts";
        std::lock_guard<std::mutex> lock(s.mutex);
        const auto now = Clock::now();
        for (std::size_t i = 0; i < s.hosts.size(); ++i) {
            message += i == 0 ? ": " : "; ";
            message += s.options.hosts[i].describe() + " ";
            if (!errors[i].empty()) {
                message += "failed: " + errors[i];
            } else if (s.hosts[i].retry_at <= now) {
                message +=
                    "skipped while another caller retries it after: " + s.hosts[i].last_error;
            } else {
                const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
                    s.hosts[i].retry_at - now);
                message += "skipped for " +
                           std::to_string(std::max<std::int64_t>(0, wait.count())) +
                           " ms more after: " + s.hosts[i].last_error;
            }
        }
        throw Error(ErrorCode::connect_failed, message, native, sqlstate);
    }

    /// Connect attempts made so far (all copies together), for metrics and tests.
    std::uint64_t attempts() const noexcept { return state_->attempts.load(); }

    /// The options.
    const MultiHostOptions& options() const noexcept { return state_->options; }

private:
    using Clock = std::chrono::steady_clock;

    // Per host, under State::mutex. Invariants (checked at the end of each locked section in
    // test builds):
    //  - down() (backoff > 0) iff the last recorded outcome was a failure; then retry_at is
    //    when one caller may try it again, and until then nobody does.
    //  - probing only while down: at most one attempt started while the host was known down is
    //    in flight (the half-open probe). Attempts started while it was up may still be in
    //    flight; a host not known down is never throttled.
    //  - wave counts recorded outcomes. An attempt remembers the wave it started in, and its
    //    failure doubles the back-off only if no outcome was recorded since it started: the
    //    failures of attempts in flight together count once, so a burst of first failures
    //    waits host_backoff, not host_backoff * 2^burst.
    struct Host {
        Clock::time_point retry_at{};
        std::chrono::milliseconds backoff{0};
        std::string last_error;
        std::uint64_t wave = 0;
        bool probing = false;  // one caller is retrying it after a failure

        bool down() const noexcept { return backoff.count() > 0; }
    };

    struct Attempt {
        std::size_t host;
        std::uint64_t wave;  // the host's wave when this attempt started
        bool probe;          // it holds the host's half-open slot (Host::probing)
    };

    struct State {
        MultiHostOptions options;
        Open open;
        std::mutex mutex;
        std::vector<Host> hosts;
        std::size_t next = 0;
        std::minstd_rand random{std::random_device{}()};
        std::atomic<std::uint64_t> attempts{0};
    };

    void note_failure(const Attempt& attempt, const char* what) const {
        State& s = *state_;
        const auto now = Clock::now();
        std::lock_guard<std::mutex> lock(s.mutex);
        Host& host = s.hosts[attempt.host];
        host.last_error = what;
        if (attempt.wave == host.wave) {
            // The first outcome recorded since this attempt started: it counts (and a probe
            // still holds the half-open slot). Later failures of the same wave only update
            // the text.
            if (attempt.probe) host.probing = false;
            const auto max = s.options.host_backoff_max;
            host.backoff = host.backoff.count() == 0 ? s.options.host_backoff
                           : host.backoff > max / 2  ? max
                                                     : host.backoff * 2;
            host.retry_at = dbpool::detail::saturating_add(now, host.backoff);
            ++host.wave;
        }
        check_invariants_locked();
    }

    void check_invariants_locked() const noexcept {
        if constexpr (dbpool::detail::checking_invariants) {
            const auto fail = [](const char* what) {
                std::fprintf(stderr, "dbpool MultiHostConnector: invariant violated: %s\n", what);
                std::abort();
            };
            for (const Host& host : state_->hosts) {
                if (host.probing && !host.down()) fail("a host that is up is being probed");
                if (host.down() && (host.backoff < state_->options.host_backoff ||
                                    host.backoff > state_->options.host_backoff_max)) {
                    fail("a back-off outside [host_backoff, host_backoff_max]");
                }
            }
        }
    }

    std::shared_ptr<State> state_;
};

namespace detail {

[[noreturn]] inline void multi_url_error(const std::string& what) {
    // `what` never carries text from the user-info part, so no password can leak.
    throw Error(ErrorCode::invalid_options, "mysql URL: " + what);
}

inline std::chrono::milliseconds parse_millis(std::string_view text, const char* what) {
    std::uint64_t value = 0;
    if (text.empty() || text.size() > 9) {
        multi_url_error(std::string(what) + " must be a number of milliseconds");
    }
    for (const char c : text) {
        if (c < '0' || c > '9') {
            multi_url_error(std::string(what) + " must be a number of milliseconds");
        }
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(value));
}

}  // namespace detail

/// Parses a URL with several hosts, `mysql://user:pw@h1:3306,h2:3307,[::1]/db?...`, into one
/// ConnectOptions per host, each exactly as ConnectOptions::from_url reads the URL with that
/// one host in place of the list: one grammar for one host and many, so a password may hold
/// any character here too ('/', '?', '@', ':' and '#' unencoded; the last '@' ends it). Three
/// extra parameters are taken out first: `policy` (in_order, random, round_robin),
/// `host_backoff` and `host_backoff_max` (milliseconds). Throws Error{invalid_options} naming
/// the wrong part, never echoing the password.
inline MultiHostOptions multi_host_options_from_url(std::string_view url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos || url.find('\0') != std::string_view::npos) {
        (void)ConnectOptions::from_url(url);  // throws the single-host parser's error
        detail::multi_url_error("must start with mysql:// or mariadb://");
    }
    const std::string_view scheme = url.substr(0, scheme_end + 3);
    const std::string_view rest = url.substr(scheme_end + 3);
    // The single-host grammar's rule (mysql/url.hpp): everything up to the last '@' is the
    // user-info, whatever it holds; the host list starts after it and ends at the path or
    // the query. Only what follows the user-info is cut here; the user-info is passed on
    // untouched, so its errors (and its password) are the single-host parser's to handle.
    std::string_view userinfo;
    std::string_view after = rest;
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        userinfo = rest.substr(0, at + 1);
        after = rest.substr(at + 1);
    }
    const auto list_end = std::min(after.find('/'), after.find('?'));
    const std::string_view host_list = after.substr(0, list_end);
    std::string_view path;  // "/db", or empty
    std::string_view query;
    if (list_end != std::string_view::npos) {
        std::string_view tail = after.substr(list_end);
        const auto q = tail.find('?');
        path = tail.substr(0, q);
        if (q != std::string_view::npos) query = tail.substr(q + 1);
    }

    MultiHostOptions options;
    std::string kept;  // the query without our own parameters
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const auto eq = item.find('=');
        const std::string_view name = item.substr(0, eq);
        const std::string_view value =
            eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
        if (name == "policy") {
            if (value == "in_order" || value == "failover") {
                options.policy = HostPolicy::in_order;
            } else if (value == "random") {
                options.policy = HostPolicy::random;
            } else if (value == "round_robin") {
                options.policy = HostPolicy::round_robin;
            } else {
                detail::multi_url_error("policy must be in_order, random or round_robin");
            }
        } else if (name == "host_backoff") {
            options.host_backoff = detail::parse_millis(value, "host_backoff");
        } else if (name == "host_backoff_max") {
            options.host_backoff_max = detail::parse_millis(value, "host_backoff_max");
        } else if (!item.empty()) {
            kept += kept.empty() ? "?" : "&";
            kept += item;
        }
    }

    std::size_t start = 0;
    for (std::size_t index = 1;; ++index) {
        const auto comma = host_list.find(',', start);
        const std::string_view host = host_list.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (host.empty() && (comma != std::string_view::npos || index > 1)) {
            detail::multi_url_error("host " + std::to_string(index) + " of the host list is empty");
        }
        std::string single(scheme);
        single += userinfo;
        single += host;
        single += path;
        single += kept;
        try {
            options.hosts.push_back(ConnectOptions::from_url(single));
        } catch (const Error& error) {
            if (comma == std::string_view::npos && index == 1) throw;  // one host: from_url's
            // from_url's messages never echo the user-info, so neither does this one.
            std::string_view what = error.what();
            const std::string_view prefix = "mysql URL: ";
            if (what.substr(0, prefix.size()) == prefix) what.remove_prefix(prefix.size());
            detail::multi_url_error("host " + std::to_string(index) + ": " + std::string(what));
        }
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    options.validate();
    return options;
}

/// A MultiHostConnector of plain Connections.
inline MultiHostConnector<Connection> multi_host_connector(MultiHostOptions options) {
    return MultiHostConnector<Connection>(std::move(options));
}

/// A MultiHostConnector of plain Connections for a multi-host URL (see
/// multi_host_options_from_url).
inline MultiHostConnector<Connection> multi_host_connector(std::string_view url) {
    return MultiHostConnector<Connection>(multi_host_options_from_url(url));
}

}  // namespace dbpool::mysql

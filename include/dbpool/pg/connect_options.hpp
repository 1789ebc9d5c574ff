#pragma once

/// \file
/// pg::ConnectOptions: a libpq connection string plus dbpool's timeouts, init statements and
/// notice hook.

#include <dbpool/detail/redact.hpp>
#include <dbpool/error.hpp>
#include <dbpool/pg/conninfo_params.hpp>
#include <dbpool/pg/errors.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace dbpool::pg {

/// A message the server sent outside a result: a NOTICE or WARNING, or the FATAL that comes
/// before the server closes a session.
struct Notice {
    std::string severity;  ///< Non-localised severity: "NOTICE", "WARNING", "FATAL", ...
    std::string sqlstate;  ///< The SQLSTATE, e.g. "01000".
    std::string message;   ///< The primary message.
};

/// Everything needed to open one PostgreSQL connection; validated by `validate()`.
///
/// The connection string is libpq's own: a `postgresql://user:pass@host:port/db?sslmode=...`
/// URL or `host=... port=... dbname=... sslmode=...` keywords, with libpq's defaults and PG*
/// environment variables for what it leaves out. dbpool does not parse it beyond asking libpq.
struct ConnectOptions {
    /// libpq connection string (URL or keyword/value); empty = libpq's defaults.
    std::string conninfo;
    /// Password; overrides one in conninfo. Never printed or put into messages.
    std::string password;
    /// Bound on the whole connect: TCP, TLS and authentication over every host tried (name
    /// resolution and init statements aside); positive, no upper bound (milliseconds::max()
    /// means no limit). A positive `connect_timeout=N` in conninfo replaces it (N seconds, at
    /// most one year).
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
    /// How long a statement may wait for the server's reply (0 or milliseconds::max() =
    /// forever; no upper bound); on expiry the connection is closed and Error{connection_lost}
    /// thrown.
    std::chrono::milliseconds read_timeout{std::chrono::seconds(30)};
    /// How long sending a statement may make no progress (0 or milliseconds::max() = forever).
    std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
    /// Statements run after connecting and after every session reset.
    std::vector<std::string> init_statements;
    /// Prepared statements kept per connection, least recently used evicted (0 = none: every
    /// statement with arguments is parsed again through the unnamed statement; at most 100000).
    /// Set it to 0 behind a pooler in transaction mode (PgBouncer `pool_mode = transaction`
    /// before 1.21); from_url() reads it from the connection string too.
    std::size_t statement_cache_size = 64;
    /// Receives notices and warnings (called on the thread running the statement; must not
    /// throw). Unset: they are dropped, never printed.
    std::function<void(const Notice&)> on_notice;

    /// Options for a `postgresql://` URL or a keyword/value string; throws Error{invalid_options}
    /// with libpq's complaint, never echoing what may be a password. Any thread; no effect
    /// when it throws.
    ///
    /// One parameter is dbpool's, not libpq's: `statement_cache_size=N` (0 to 100000, e.g.
    /// `postgresql://app@bouncer/db?statement_cache_size=0` or `host=bouncer
    /// statement_cache_size=0`) sets the field of that name and is taken out of `conninfo`
    /// before libpq sees it.
    static ConnectOptions from_url(std::string_view conninfo);

    /// Throws Error{invalid_options} naming the first field that is wrong (also a port in
    /// conninfo or PGPORT that is not 1..65535, which libpq would find only when connecting,
    /// and a `statement_cache_size` written into conninfo directly: only from_url() reads it).
    void validate() const;

    /// "user@host:port/database" as far as the connection string says; no password, nor any
    /// 3-character piece of what a URL has after "user:" (libpq may have cut a password with an
    /// unencoded '/' or '@' into the host, port or database: those pieces read "***").
    std::string describe() const;

    /// The connect bound: conninfo's positive connect_timeout (seconds), else connect_timeout.
    std::chrono::milliseconds effective_connect_timeout() const;
};

namespace detail {

[[noreturn]] inline void options_error(const std::string& what) {
    throw Error(ErrorCode::invalid_options, "pg ConnectOptions: " + what);
}

struct ConninfoDeleter {
    void operator()(PQconninfoOption* options) const noexcept { PQconninfoFree(options); }
};
// libpq's parsed keyword/value array.
using Conninfo = std::unique_ptr<PQconninfoOption, ConninfoDeleter>;

// Whether `word` is one of libpq's connection keywords ("host", "sslmode", ...).
inline bool is_conninfo_keyword(std::string_view word) {
    static const std::vector<std::string> keywords = [] {
        std::vector<std::string> names;
        const Conninfo defaults(PQconndefaults());
        for (const PQconninfoOption* o = defaults.get(); o != nullptr && o->keyword != nullptr;
             ++o) {
            names.emplace_back(o->keyword);
        }
        return names;
    }();
    return std::find(keywords.begin(), keywords.end(), word) != keywords.end();
}

// libpq's parse errors quote pieces of the connection string, and any of them may be (part of)
// a password: every quoted piece that is not a libpq keyword is replaced.
inline std::string redact_quoted(std::string_view message) {
    std::string out;
    std::size_t at = 0;
    while (at < message.size()) {
        const std::size_t open = message.find('"', at);
        if (open == std::string_view::npos) break;
        const std::size_t close = message.find('"', open + 1);
        if (close == std::string_view::npos) break;
        const std::string_view quoted = message.substr(open + 1, close - open - 1);
        out.append(message.substr(at, open - at));
        out += is_conninfo_keyword(quoted) ? "\"" + std::string(quoted) + "\"" : "\"...\"";
        at = close + 1;
    }
    if (at < message.size()) {
        // An unmatched quote: whatever follows it may be secret too.
        const std::string_view rest = message.substr(at);
        const std::size_t quote = rest.find('"');
        out.append(rest.substr(0, quote));
        if (quote != std::string_view::npos) out += "\"...";
    }
    return out;
}

// What the user wrote after "user:" in a postgresql:// URL: up to the last '@', since a
// password with an unencoded '/', '@', '?' or ':' is cut by libpq into a host, a port or a
// database name (postgresql://hf:Qv5/Kc3Rc@host reads as host "hf", port "Qv5"). Empty for a
// keyword/value string or a URL without "user:...@". An '@' later in the URL (in a parameter)
// makes it longer than the password: that only masks more.
inline std::string_view url_password_text(std::string_view conninfo) {
    std::size_t start = 0;
    for (const std::string_view prefix : {"postgresql://", "postgres://"}) {
        if (conninfo.substr(0, prefix.size()) == prefix) start = prefix.size();
    }
    if (start == 0) return {};
    const std::size_t at = conninfo.rfind('@');
    if (at == std::string_view::npos || at < start) return {};
    const std::size_t colon = conninfo.find(':', start);
    if (colon == std::string_view::npos || colon > at) return {};
    return conninfo.substr(colon + 1, at - colon - 1);
}

// The URL's password text, as written and decoded: every 3-character piece is secret, unless
// libpq read exactly that as the password (`parsed`, when the string parsed at all): then
// nothing of it went elsewhere, masking the whole password suffices, and ordinary messages are
// spared masks for text that merely shares three letters with it.
inline void add_url_password(dbpool::detail::Secrets& secrets, std::string_view conninfo,
                             std::string_view parsed = {}, bool was_parsed = false) {
    const std::string_view written = url_password_text(conninfo);
    if (written.empty()) return;
    std::string decoded = percent_decoded(written);
    if (was_parsed && decoded == parsed) {
        secrets.whole.push_back(std::move(decoded));
        return;
    }
    secrets.pieces.emplace_back(written);
    secrets.pieces.push_back(std::move(decoded));
}

// Parses `conninfo` with libpq; throws Error{invalid_options} with a redacted message.
inline Conninfo parse_conninfo(const std::string& conninfo) {
    char* raw_error = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &raw_error);
    if (parsed == nullptr) {
        std::string message = raw_error != nullptr ? one_line(raw_error) : "out of memory";
        if (raw_error != nullptr) PQfreemem(raw_error);
        // A '"' in the string itself makes libpq's quotes ambiguous: nothing after the first
        // quote is kept then.
        const std::size_t quote = message.find('"');
        if (conninfo.find('"') != std::string::npos && quote != std::string::npos) {
            message = message.substr(0, quote) + "\"...\"";
        } else {
            message = redact_quoted(message);
        }
        dbpool::detail::Secrets secrets;
        add_url_password(secrets, conninfo);
        options_error("the connection string is invalid: " +
                      dbpool::detail::redact(message, secrets, "***"));
    }
    return Conninfo(parsed);
}

// The value libpq parsed for `keyword`, or empty.
inline std::string conninfo_value(const Conninfo& options, std::string_view keyword) {
    for (const PQconninfoOption* o = options.get(); o != nullptr && o->keyword != nullptr; ++o) {
        if (keyword == o->keyword) return o->val != nullptr ? o->val : "";
    }
    return {};
}

// Everything a message about `options` must not show: the password option, the password
// libpq parsed, what the URL has after "user:"; and the user name libpq parsed.
inline dbpool::detail::Secrets conninfo_secrets(const ConnectOptions& options,
                                                const Conninfo& parsed) {
    dbpool::detail::Secrets secrets;
    const std::string password = conninfo_value(parsed, "password");
    secrets.whole = {options.password, password};
    add_url_password(secrets, options.conninfo, password, true);
    secrets.users.push_back(conninfo_value(parsed, "user"));
    return secrets;
}

// Whether `text` is a port list libpq accepts: comma-separated numbers from 1 to 65535 (an
// empty entry means the default); libpq itself finds out only when connecting.
inline bool valid_port_list(std::string_view text) {
    for (;;) {
        const std::size_t comma = text.find(',');
        std::string_view port = text.substr(0, comma);
        while (!port.empty() && (port.front() == ' ' || port.front() == '\t'))
            port.remove_prefix(1);
        while (!port.empty() && (port.back() == ' ' || port.back() == '\t'))
            port.remove_suffix(1);
        if (!port.empty()) {
            unsigned long number = 0;
            const char* end = port.data() + port.size();
            const auto result = std::from_chars(port.data(), end, number);
            if (result.ec != std::errc() || result.ptr != end || number < 1 || number > 65535) {
                return false;
            }
        }
        if (comma == std::string_view::npos) return true;
        text.remove_prefix(comma + 1);
    }
}

}  // namespace detail

inline ConnectOptions ConnectOptions::from_url(std::string_view conninfo) {
    detail::ConninfoParams params = detail::take_dbpool_params(conninfo);
    ConnectOptions options;
    options.conninfo = std::move(params.conninfo);
    if (params.statement_cache_size) {
        // The value is never echoed: a misplaced password may have ended up in it.
        const std::string& text = *params.statement_cache_size;
        std::size_t size = 0;
        const char* end = text.data() + text.size();
        const auto result = std::from_chars(text.data(), end, size);
        if (text.empty() || result.ec != std::errc() || result.ptr != end || size > 100000) {
            detail::options_error(
                "statement_cache_size in the connection string must be a whole number from 0 "
                "to 100000 (0: unnamed statements only, for a pooler in transaction mode)");
        }
        options.statement_cache_size = size;
    }
    options.validate();
    return options;
}

inline void ConnectOptions::validate() const {
    // A NUL would silently cut the string short when it reaches libpq as a C string.
    if (conninfo.find('\0') != std::string::npos) {
        detail::options_error("conninfo contains a NUL byte");
    }
    if (password.find('\0') != std::string::npos) {
        detail::options_error("password contains a NUL byte");
    }
    if (detail::take_dbpool_params(conninfo).statement_cache_size) {
        detail::options_error(
            "conninfo holds statement_cache_size, which is dbpool's, not libpq's: only "
            "ConnectOptions::from_url (and pg::connector or Connection given a string) reads it "
            "there; with ConnectOptions, set its statement_cache_size field");
    }
    const detail::Conninfo parsed = detail::parse_conninfo(conninfo);
    // The value is never echoed: a misplaced password may have ended up in it.
    const std::string port = detail::conninfo_value(parsed, "port");
    if (!detail::valid_port_list(port)) {
        detail::options_error(
            "the port in the connection string must be a number from 1 to 65535 (a URL "
            "password with '/', '@', ':' or '?' must be percent-encoded: %2F, %40, %3A, %3F)");
    }
    if (port.empty()) {
        const char* environment = std::getenv("PGPORT");
        if (environment != nullptr && !detail::valid_port_list(environment)) {
            detail::options_error("PGPORT must be a number from 1 to 65535");
        }
    }
    (void)effective_connect_timeout();
    if (connect_timeout.count() <= 0) detail::options_error("connect_timeout must be positive");
    if (read_timeout.count() < 0) detail::options_error("read_timeout must not be negative");
    if (write_timeout.count() < 0) detail::options_error("write_timeout must not be negative");
    if (statement_cache_size > 100000) {
        detail::options_error("statement_cache_size must be at most 100000");
    }
    for (const std::string& statement : init_statements) {
        if (statement.find('\0') != std::string::npos) {
            detail::options_error("init_statements contains a NUL byte");
        }
        if (statement.find_first_not_of(" \t\r\n;") == std::string::npos) {
            detail::options_error("init_statements contains an empty statement");
        }
    }
}

inline std::chrono::milliseconds ConnectOptions::effective_connect_timeout() const {
    const std::string text =
        detail::conninfo_value(detail::parse_conninfo(conninfo), "connect_timeout");
    if (text.empty()) return connect_timeout;
    long seconds = 0;
    const char* end = text.data() + text.size();
    const auto result = std::from_chars(text.data(), end, seconds);
    if (result.ec != std::errc() || result.ptr != end || seconds > 86400L * 365) {
        detail::options_error(
            "connect_timeout in the connection string must be a number of "
            "seconds");
    }
    // libpq reads zero or less as "forever"; dbpool never waits forever, so it keeps its own.
    return seconds > 0 ? std::chrono::milliseconds(std::chrono::seconds(seconds)) : connect_timeout;
}

inline std::string ConnectOptions::describe() const {
    detail::Conninfo parsed;
    try {
        parsed = detail::parse_conninfo(conninfo);
    } catch (const Error&) {
        return "(invalid connection string)";
    }
    const std::string user = detail::conninfo_value(parsed, "user");
    std::string host = detail::conninfo_value(parsed, "host");
    if (host.empty()) host = detail::conninfo_value(parsed, "hostaddr");
    const std::string port = detail::conninfo_value(parsed, "port");
    const std::string database = detail::conninfo_value(parsed, "dbname");
    std::string text = user.empty() ? std::string() : user + "@";
    text += host.empty() ? std::string("(default host)") : host;
    if (!port.empty()) text += ":" + port;
    if (!database.empty()) text += "/" + database;
    // libpq may have put pieces of a misplaced URL password into the host, port or database.
    return dbpool::detail::redact(text, detail::conninfo_secrets(*this, parsed), "***");
}

}  // namespace dbpool::pg

#pragma once

/// \file
/// mysql::ConnectOptions (where and how to connect, TLS), and the `mysql://` URL that fills it
/// (docs/mysql.md describes every parameter).

#include <dbpool/detail/redact.hpp>
#include <dbpool/error.hpp>
#include <dbpool/mysql/url.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace dbpool::mysql {

/// How a connection uses TLS. What each mode guarantees depends on the client library.
///
/// | mode | MariaDB Connector/C | Oracle libmysqlclient |
/// |---|---|---|
/// | disabled | plain | plain (its own default would be preferred: dbpool sets DISABLED) |
/// | preferred | TLS if the server offers it, else plain; no certificate check | same |
/// | required | TLS or no connection; no certificate check (*) | same, checked before login |
/// | verify_ca | TLS, chain checked against `ca`, **and the host name** (no CA-only mode) | chain only |
/// | verify_identity | TLS, chain and host name checked | same |
///
/// (*) Connector/C does not refuse a server without TLS for `required` by itself; dbpool checks
/// right after the handshake and closes the connection before any statement is sent, but the
/// login exchange has then already happened in plain text. Use verify_ca/verify_identity where
/// that matters: both libraries refuse those before logging in.
enum class TlsMode {
    disabled,         ///< Never use TLS.
    preferred,        ///< TLS when the server offers it, else plain; no certificate check.
    required,         ///< TLS or fail; the server's certificate is not checked.
    verify_ca,        ///< TLS, the server certificate checked against `ca` (see the table).
    verify_identity,  ///< Like verify_ca, and the certificate must name the host connected to.
};

/// TLS settings of a connection; file paths are PEM files readable by the client.
struct TlsOptions {
    TlsMode mode = TlsMode::disabled;  ///< Whether and how strictly TLS is used.
    std::string ca;                    ///< CA certificate file (verify_ca / verify_identity).
    std::string cert;                  ///< Client certificate file, with `key`.
    std::string key;                   ///< Client private key file, with `cert`.
};

/// How a connection reaches the server.
enum class Protocol {
    automatic,  ///< "localhost" means the unix socket (the C API's rule); other hosts TCP.
    tcp,        ///< TCP to host:port, also for "localhost".
    socket,     ///< The unix socket (`unix_socket`, or the client library's default path).
};

/// Everything needed to open one MySQL/MariaDB connection; validated by `validate()`.
///
/// Statements to run after every (re)connect belong in the pool's or steady connection's
/// `setsession` option (PoolOptions::setsession, SteadyOptions::setsession), which is replayed
/// after every reconnect and every full session reset.
///
/// Timeouts have no upper bound of their own; the client libraries keep them in milliseconds in
/// an int, so above 2147483 s (24.8 days) a read or write timeout means none and a connect
/// timeout is taken as 2147483 s: `std::chrono::seconds::max()` means no limit.
struct ConnectOptions {
    std::string host = "localhost";           ///< Host name or IP; see `protocol` for "localhost".
    std::uint16_t port = 3306;                ///< TCP port (not used for the unix socket).
    std::string unix_socket;                  ///< Unix socket path; empty = the client's default.
    Protocol protocol = Protocol::automatic;  ///< TCP or unix socket (see Protocol).
    std::string user;                         ///< User name.
    std::string password;                     ///< Password; never printed or put into messages.
    std::string database;                     ///< Default database; empty = none.
    std::string charset = "utf8mb4";          ///< Connection character set.
    /// Bound on the connect (>= 1 s): with MariaDB Connector/C the whole connect, TLS and login
    /// included; with Oracle's libmysqlclient the TCP connect and the server's greeting only,
    /// TLS and login then run under read_timeout/write_timeout (docs/mysql.md).
    std::chrono::seconds connect_timeout{10};
    std::chrono::seconds read_timeout{30};   ///< Bound on each read (0 = none; bound above).
    std::chrono::seconds write_timeout{30};  ///< Bound on each write (0 = none; bound above).
    TlsOptions tls;                          ///< TLS settings.

    /// Parses `mysql://user:pass@host:3306/db?charset=utf8mb4&ssl-mode=required&...`; throws
    /// Error{invalid_options} naming the wrong part, never echoing the user name or password.
    /// A pure function: any thread, no effect when it throws.
    ///
    /// The last '@' ends the user-info, so the password may hold any character; percent-encode
    /// '@' elsewhere (%40). A URL that names a port means TCP, also for "localhost"; a port
    /// without a host is refused. Parameters: charset, socket, protocol (tcp or socket),
    /// connect_timeout, read_timeout, write_timeout (seconds), ssl-mode (disabled, preferred,
    /// required, verify_ca, verify_identity), ssl-ca, ssl-cert, ssl-key.
    static ConnectOptions from_url(std::string_view url);

    /// Throws Error{invalid_options} naming the first field that is out of range.
    void validate() const;

    /// Whether the connection goes through the unix socket rather than TCP.
    bool uses_unix_socket() const noexcept {
        return protocol == Protocol::socket ||
               (protocol == Protocol::automatic && host == "localhost");
    }

    /// "user@host:port/database", or "user@/path/to.sock/database" for the socket; no password
    /// (a user name that holds the password reads "<user>", the password elsewhere
    /// "<password>").
    std::string describe() const {
        std::string text = user.empty() ? std::string() : user + "@";
        if (uses_unix_socket()) {
            text += unix_socket.empty() ? std::string("localhost") : unix_socket;
        } else {
            text += host.find(':') != std::string::npos ? "[" + host + "]" : host;
            text += ":" + std::to_string(port);
        }
        if (!database.empty()) text += "/" + database;
        // Every message names the connection through here (the multi-host and cluster errors
        // too), so user "app" with password "app" must not show "app" here.
        dbpool::detail::Secrets secrets;
        secrets.whole.push_back(password);
        secrets.users.push_back(user);
        return dbpool::detail::redact(text, secrets, "<password>");
    }
};

/// The URL spelling of a TLS mode ("disabled", "preferred", ...).
inline const char* to_string(TlsMode mode) noexcept {
    switch (mode) {
        case TlsMode::disabled: return "disabled";
        case TlsMode::preferred: return "preferred";
        case TlsMode::required: return "required";
        case TlsMode::verify_ca: return "verify_ca";
        case TlsMode::verify_identity: return "verify_identity";
    }
    return "unknown";
}

/// The URL spelling of a protocol ("automatic", "tcp", "socket").
inline const char* to_string(Protocol protocol) noexcept {
    switch (protocol) {
        case Protocol::automatic: return "automatic";
        case Protocol::tcp: return "tcp";
        case Protocol::socket: return "socket";
    }
    return "unknown";
}

namespace detail {

[[noreturn]] inline void options_error(const std::string& what) {
    throw Error(ErrorCode::invalid_options, "mysql ConnectOptions: " + what);
}

inline std::string lower_ascii(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

inline unsigned long parse_unsigned(const std::string& text, unsigned long max, const char* what) {
    unsigned long value = 0;
    const char* end = text.data() + text.size();
    const auto result = std::from_chars(text.data(), end, value);
    if (text.empty() || result.ec != std::errc() || result.ptr != end || value > max) {
        url_error(std::string(what) + " must be a whole number from 0 to " + std::to_string(max));
    }
    return value;
}

inline TlsMode parse_tls_mode(const std::string& text) {
    std::string mode = lower_ascii(text);
    std::replace(mode.begin(), mode.end(), '-', '_');
    for (TlsMode m : {TlsMode::disabled, TlsMode::preferred, TlsMode::required, TlsMode::verify_ca,
                      TlsMode::verify_identity}) {
        if (mode == to_string(m)) return m;
    }
    url_error("ssl-mode '" + text +
              "' is not one of disabled, preferred, required, verify_ca, verify_identity");
}

inline Protocol parse_protocol(const std::string& text) {
    const std::string value = lower_ascii(text);
    if (value == "tcp") return Protocol::tcp;
    if (value == "socket" || value == "unix") return Protocol::socket;
    url_error("protocol '" + text + "' is not one of tcp, socket");
}

}  // namespace detail

inline ConnectOptions ConnectOptions::from_url(std::string_view url) {
    detail::UrlParts parts = detail::split_url(url);
    ConnectOptions options;
    options.user = std::move(parts.user);
    options.password = std::move(parts.password);
    if (!parts.host.empty()) options.host = std::move(parts.host);
    if (!parts.port.empty()) {
        // The message names the port but never repeats it.
        const char* end = parts.port.data() + parts.port.size();
        unsigned value = 0;
        const auto result = std::from_chars(parts.port.data(), end, value);
        if (result.ec != std::errc() || result.ptr != end || value == 0 || value > 65535) {
            detail::url_error("the port must be a number from 1 to 65535");
        }
        options.port = static_cast<std::uint16_t>(value);
        // A user who writes a port means TCP, also for "localhost" (the C API would silently
        // use the unix socket and ignore the port).
        options.protocol = Protocol::tcp;
    }
    options.database = std::move(parts.database);

    bool protocol_given = false;
    for (auto& parameter : parts.parameters) {
        // A named reference, not a structured binding: C++17 lambdas cannot capture those.
        const std::string& value = parameter.second;
        std::string name = detail::lower_ascii(parameter.first);
        std::replace(name.begin(), name.end(), '-', '_');
        const auto seconds = [&](const char* what) {
            return std::chrono::seconds(detail::parse_unsigned(value, 86400UL * 365, what));
        };
        if (name == "charset") {
            options.charset = value;
        } else if (name == "socket" || name == "unix_socket") {
            options.unix_socket = value;
        } else if (name == "protocol") {
            options.protocol = detail::parse_protocol(value);
            protocol_given = true;
        } else if (name == "connect_timeout") {
            options.connect_timeout = seconds("connect_timeout");
        } else if (name == "read_timeout") {
            options.read_timeout = seconds("read_timeout");
        } else if (name == "write_timeout") {
            options.write_timeout = seconds("write_timeout");
        } else if (name == "ssl_mode" || name == "tls_mode") {
            options.tls.mode = detail::parse_tls_mode(value);
        } else if (name == "ssl_ca" || name == "tls_ca") {
            options.tls.ca = value;
        } else if (name == "ssl_cert" || name == "tls_cert") {
            options.tls.cert = value;
        } else if (name == "ssl_key" || name == "tls_key") {
            options.tls.key = value;
        } else if (name == "init" || name == "init_command") {
            detail::url_error(
                "parameter '" + parameter.first +
                "' is not supported: statements to run after every (re)connect belong in "
                "PoolOptions::setsession or SteadyOptions::setsession, which are replayed after "
                "every reconnect and session reset");
        } else {
            detail::url_error("unknown parameter '" + parameter.first +
                              "' (known: charset, socket, protocol, connect_timeout, "
                              "read_timeout, write_timeout, ssl-mode, ssl-ca, ssl-cert, ssl-key)");
        }
    }
    if (!parts.port.empty() && !options.unix_socket.empty() && !protocol_given) {
        detail::url_error(
            "the URL names a port (TCP) and a socket: give one, or add protocol=tcp/socket");
    }
    options.validate();
    return options;
}

inline void ConnectOptions::validate() const {
    const auto no_nul = [](const std::string& value, const char* field) {
        if (value.find('\0') != std::string::npos) {
            detail::options_error(std::string(field) +
                                  " contains a NUL byte (the C API would cut it off there)");
        }
    };
    no_nul(host, "host");
    no_nul(unix_socket, "unix_socket");
    no_nul(user, "user");
    no_nul(password, "password");
    no_nul(database, "database");
    no_nul(charset, "charset");
    no_nul(tls.ca, "tls.ca");
    no_nul(tls.cert, "tls.cert");
    no_nul(tls.key, "tls.key");
    if (host.empty()) detail::options_error("host is empty (use \"localhost\" for the socket)");
    if (port == 0) detail::options_error("port must be from 1 to 65535");
    if (unix_socket.size() >= 108) {
        detail::options_error("unix_socket path is longer than 107 characters");
    }
    if (protocol == Protocol::tcp && !unix_socket.empty()) {
        detail::options_error("unix_socket is set but protocol is tcp");
    }
    if (protocol == Protocol::socket && host != "localhost") {
        detail::options_error("protocol socket needs host \"localhost\"");
    }
    if (protocol == Protocol::automatic && host != "localhost" && !unix_socket.empty()) {
        detail::options_error(
            "unix_socket is set but the host is not \"localhost\", which means TCP: set host "
            "to \"localhost\" for the socket or clear unix_socket");
    }
    if (charset.empty() || !std::all_of(charset.begin(), charset.end(), [](unsigned char c) {
            return std::isalnum(c) != 0 || c == '_';
        })) {
        detail::options_error("charset must be a character set name such as utf8mb4");
    }
    if (connect_timeout.count() < 1) {
        detail::options_error("connect_timeout must be at least 1 second");
    }
    if (read_timeout.count() < 0) detail::options_error("read_timeout must not be negative");
    if (write_timeout.count() < 0) detail::options_error("write_timeout must not be negative");
    if (tls.cert.empty() != tls.key.empty()) {
        detail::options_error("tls.cert and tls.key must be given together");
    }
    if (tls.mode == TlsMode::disabled && (!tls.ca.empty() || !tls.cert.empty())) {
        detail::options_error("TLS files are set but tls.mode is disabled");
    }
}

}  // namespace dbpool::mysql

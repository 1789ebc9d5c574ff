#pragma once

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
#include <vector>

namespace dbpool::mysql {

/// How a connection uses TLS.
enum class TlsMode {
    disabled,         ///< Never use TLS.
    preferred,        ///< Use TLS when the server offers it, without verifying the certificate.
    required,         ///< Fail unless the connection is encrypted (certificate not verified).
    verify_ca,        ///< Encrypt and verify the server certificate against `ca`.
    verify_identity,  ///< Like verify_ca, and check that the certificate names the host.
};

/// TLS settings of a connection; file paths are PEM files readable by the client.
struct TlsOptions {
    TlsMode mode = TlsMode::disabled;  ///< Whether and how strictly TLS is used.
    std::string ca;                    ///< CA certificate file (verify_ca / verify_identity).
    std::string cert;                  ///< Client certificate file, with `key`.
    std::string key;                   ///< Client private key file, with `cert`.
};

/// Everything needed to open one MySQL/MariaDB connection; validated by `validate()`.
struct ConnectOptions {
    std::string host = "localhost";   ///< Host name or IP; "localhost" means the unix socket.
    std::uint16_t port = 3306;        ///< TCP port (ignored for the unix socket).
    std::string unix_socket;          ///< Unix socket path; empty = the client's default.
    std::string user;                 ///< User name.
    std::string password;             ///< Password; never printed or put into messages.
    std::string database;             ///< Default database; empty = none.
    std::string charset = "utf8mb4";  ///< Connection character set.
    std::chrono::seconds connect_timeout{10};  ///< Bound on the whole connect (>= 1 s).
    std::chrono::seconds read_timeout{30};     ///< Bound on each read (0 = none).
    std::chrono::seconds write_timeout{30};    ///< Bound on each write (0 = none).
    TlsOptions tls;                            ///< TLS settings.
    std::vector<std::string> init_statements;  ///< Run after connect and session reset.

    /// Parses `mysql://user:pass@host:3306/db?charset=utf8mb4&socket=/path&connect_timeout=5`;
    /// throws Error{invalid_options} naming the wrong part (never echoing the password).
    static ConnectOptions from_url(std::string_view url);

    /// Throws Error{invalid_options} naming the first field that is out of range.
    void validate() const;

    /// "user@host:port/database" (or the socket path) for messages; no password.
    std::string describe() const {
        std::string text = user.empty() ? std::string() : user + "@";
        if (!unix_socket.empty() && (host.empty() || host == "localhost")) {
            text += unix_socket;
        } else {
            text += host.find(':') != std::string::npos ? "[" + host + "]" : host;
            text += ":" + std::to_string(port);
        }
        if (!database.empty()) text += "/" + database;
        return text;
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

}  // namespace detail

inline ConnectOptions ConnectOptions::from_url(std::string_view url) {
    detail::UrlParts parts = detail::split_url(url);
    ConnectOptions options;
    options.user = std::move(parts.user);
    options.password = std::move(parts.password);
    if (!parts.host.empty()) options.host = std::move(parts.host);
    if (!parts.port.empty()) {
        // The message names the port but never repeats it: a badly encoded password could end
        // up in this position.
        const char* end = parts.port.data() + parts.port.size();
        unsigned value = 0;
        const auto result = std::from_chars(parts.port.data(), end, value);
        if (result.ec != std::errc() || result.ptr != end || value == 0 || value > 65535) {
            detail::url_error(
                "the port must be a number from 1 to 65535 (percent-encode ':', '@' and '/' in "
                "a password)");
        }
        options.port = static_cast<std::uint16_t>(value);
    }
    options.database = std::move(parts.database);

    for (auto& parameter : parts.parameters) {
        // A named reference, not a structured binding: C++17 lambdas cannot capture those.
        const std::string& value = parameter.second;
        std::string name = detail::lower_ascii(parameter.first);
        std::replace(name.begin(), name.end(), '-', '_');
        const auto seconds = [&](const char* what) {
            return std::chrono::seconds(detail::parse_unsigned(value, 86400 * 365, what));
        };
        if (name == "charset") {
            options.charset = value;
        } else if (name == "socket" || name == "unix_socket") {
            options.unix_socket = value;
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
            options.init_statements.push_back(value);
        } else {
            detail::url_error("unknown parameter '" + parameter.first +
                              "' (known: charset, socket, connect_timeout, read_timeout, "
                              "write_timeout, ssl-mode, ssl-ca, ssl-cert, ssl-key, init)");
        }
    }
    options.validate();
    return options;
}

inline void ConnectOptions::validate() const {
    if (host.empty()) detail::options_error("host is empty (use \"localhost\" for the socket)");
    if (port == 0) detail::options_error("port must be from 1 to 65535");
    if (unix_socket.size() >= 108) {
        detail::options_error("unix_socket path is longer than 107 characters");
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
    for (const std::string& statement : init_statements) {
        if (statement.find_first_not_of(" \t\r\n;") == std::string::npos) {
            detail::options_error("init_statements contains an empty statement");
        }
    }
}

}  // namespace dbpool::mysql

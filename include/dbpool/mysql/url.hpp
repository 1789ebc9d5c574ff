#pragma once

#include <dbpool/error.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbpool::mysql::detail {

// The pieces of a mysql:// URL before they are interpreted as options. Kept apart from
// ConnectOptions so the grammar can be tested without a server or <mysql.h>.
struct UrlParts {
    std::string user;
    std::string password;
    bool has_password = false;
    std::string host;
    std::string port;  // digits as written; empty when absent
    std::string database;
    std::vector<std::pair<std::string, std::string>> parameters;
};

// Error messages echo no text from before the URL's last '@': everything up to it may be part
// of a password (the last '@' ends the user-info, and a password may contain '/', '?', ':',
// '@' and '#' unencoded). Text after it (parameter names and values) is safe to name.
[[noreturn]] inline void url_error(const std::string& what) {
    throw Error(ErrorCode::invalid_options, "mysql URL: " + what);
}

inline int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Decodes %XX escapes; `part` names the URL component in the error. A decoded NUL byte is
// refused: the C API takes C strings, so everything after it would be silently dropped.
inline std::string percent_decode(std::string_view text, const char* part) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size() || hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0) {
            url_error(std::string("bad percent-encoding in the ") + part +
                      " ('%' must be followed by two hex digits; write a literal '%' as %25)");
        }
        const int value = hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]);
        if (value == 0) url_error(std::string("the ") + part + " contains a NUL byte (%00)");
        out += static_cast<char>(value);
        i += 2;
    }
    return out;
}

inline bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) noexcept {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        char c = text[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != prefix[i]) return false;
    }
    return true;
}

// Splits mysql://[user[:password]@][host][:port][/database][?name=value&...].
//
// The last '@' in the URL ends the user name and password, so a password may contain any
// character, encoded or not; '@' anywhere else (a parameter value) must be written %40. The
// user name ends at the first ':'. A port needs a host: "mysql://u@:3307/db" is refused rather
// than guessed (an empty host usually means a missing variable in a template).
inline UrlParts split_url(std::string_view url) {
    if (url.find('\0') != std::string_view::npos) url_error("the URL contains a NUL byte");
    std::string_view rest;
    bool matched = false;
    for (std::string_view scheme : {"mysql://", "mariadb://"}) {
        if (starts_with_ignoring_case(url, scheme)) {
            rest = url.substr(scheme.size());
            matched = true;
        }
    }
    if (!matched) url_error("must start with mysql:// or mariadb://");

    UrlParts parts;
    std::string_view after = rest;
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        after = rest.substr(at + 1);
        const auto colon = userinfo.find(':');
        const std::string_view user = userinfo.substr(0, colon);
        if (user.find_first_of("/?#") != std::string_view::npos) {
            // No password, and the '@' came from later in the URL: "h/db?socket=/a@b".
            url_error(
                "'/', '?' or '#' before the last '@': the last '@' ends the user name and "
                "password, so write '@' elsewhere (e.g. in a parameter value) as %40");
        }
        parts.user = percent_decode(user, "user name");
        if (colon != std::string_view::npos) {
            parts.password = percent_decode(userinfo.substr(colon + 1), "password");
            parts.has_password = true;
        }
    }
    if (after.find('#') != std::string_view::npos) {
        url_error("'#' is only allowed in the password; elsewhere write it as %23");
    }

    std::string_view query;
    if (const auto q = after.find('?'); q != std::string_view::npos) {
        query = after.substr(q + 1);
        after = after.substr(0, q);
    }
    std::string_view authority = after;
    std::string_view path;
    if (const auto slash = after.find('/'); slash != std::string_view::npos) {
        authority = after.substr(0, slash);
        path = after.substr(slash + 1);
    }

    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) url_error("IPv6 host is missing its closing ']'");
        parts.host = std::string(authority.substr(1, close - 1));
        if (parts.host.empty()) url_error("empty IPv6 host '[]'");
        std::string_view tail = authority.substr(close + 1);
        if (!tail.empty()) {
            if (tail.front() != ':') url_error("unexpected text after the IPv6 host");
            parts.port = std::string(tail.substr(1));
            if (parts.port.empty()) url_error("empty port after ':'");
        }
    } else {
        const auto colon = authority.find(':');
        if (colon != std::string_view::npos &&
            authority.find(':', colon + 1) != std::string_view::npos) {
            url_error("an IPv6 host must be written in brackets, e.g. [::1]");
        }
        parts.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            parts.port = std::string(authority.substr(colon + 1));
            if (parts.port.empty()) url_error("empty port after ':'");
        }
    }
    if (parts.host.find('%') != std::string::npos) {
        url_error("the host must not be percent-encoded");
    }
    if (!parts.port.empty() && parts.host.empty()) {
        url_error(
            "the URL names a port but no host: write the host (127.0.0.1 or localhost for "
            "TCP on this machine), or leave the port out and add ?socket=PATH for a unix "
            "socket");
    }

    if (path.find('/') != std::string_view::npos) {
        url_error("the path must be a single database name (write '/' in it as %2F)");
    }
    parts.database = percent_decode(path, "database name");

    while (!query.empty()) {
        const auto amp = query.find('&');
        std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (item.empty()) continue;
        const auto eq = item.find('=');
        std::string name = percent_decode(item.substr(0, eq), "parameter name");
        if (eq == std::string_view::npos) url_error("parameter '" + name + "' has no value");
        std::string value = percent_decode(item.substr(eq + 1), "parameter value");
        parts.parameters.emplace_back(std::move(name), std::move(value));
    }
    return parts;
}

}  // namespace dbpool::mysql::detail

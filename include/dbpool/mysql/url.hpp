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

[[noreturn]] inline void url_error(const std::string& what) {
    // `what` never carries text from the user-info part, so no password can leak.
    throw Error(ErrorCode::invalid_options, "mysql URL: " + what);
}

inline int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Decodes %XX escapes; `part` names the URL component for the error message.
inline std::string percent_decode(std::string_view text, const char* part) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size() || hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0) {
            url_error(std::string("bad percent-encoding in the ") + part);
        }
        const int high = hex_value(text[i + 1]);
        const int low = hex_value(text[i + 2]);
        out += static_cast<char>(high * 16 + low);
        i += 2;
    }
    return out;
}

// Splits mysql://[user[:password]@][host][:port][/database][?name=value&...].
// Reserved characters in the user, password and database must be percent-encoded.
inline UrlParts split_url(std::string_view url) {
    UrlParts parts;
    std::string_view rest;
    for (std::string_view scheme : {"mysql://", "mariadb://"}) {
        if (url.substr(0, scheme.size()) == scheme) rest = url.substr(scheme.size());
    }
    if (rest.data() == nullptr) url_error("must start with mysql:// or mariadb://");

    std::string_view query;
    if (const auto q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    std::string_view authority = rest;
    std::string_view path;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        authority = rest.substr(0, slash);
        path = rest.substr(slash + 1);
    }

    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);
        authority = authority.substr(at + 1);
        if (const auto colon = userinfo.find(':'); colon != std::string_view::npos) {
            parts.password = percent_decode(userinfo.substr(colon + 1), "password");
            parts.has_password = true;
            userinfo = userinfo.substr(0, colon);
        }
        parts.user = percent_decode(userinfo, "user name");
    }

    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) url_error("IPv6 host is missing its closing ']'");
        parts.host = std::string(authority.substr(1, close - 1));
        if (parts.host.empty()) url_error("empty IPv6 host '[]'");
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') url_error("unexpected text after the IPv6 host");
            parts.port = std::string(after.substr(1));
            if (parts.port.empty()) url_error("empty port after ':'");
        }
    } else {
        const auto colon = authority.find(':');
        if (colon != std::string_view::npos && authority.find(':', colon + 1) != authority.npos) {
            url_error("an IPv6 host must be written in brackets, e.g. [::1]");
        }
        parts.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            parts.port = std::string(authority.substr(colon + 1));
            if (parts.port.empty()) url_error("empty port after ':'");
        }
    }

    if (path.find('/') != std::string_view::npos) {
        url_error("the path must be a single database name");
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
        parts.parameters.emplace_back(std::move(name),
                                      percent_decode(item.substr(eq + 1), "parameter value"));
    }
    return parts;
}

}  // namespace dbpool::mysql::detail

#pragma once

// dbpool's own settings written inside a libpq connection string (`statement_cache_size=N`),
// found and taken out before libpq sees the string: libpq refuses keywords it does not know.
// The scan follows libpq's own grammar (PQconninfoParse for keyword/value strings, the URI parser
// for postgresql:// URLs) far enough to find whole parameters; anything it cannot read is left
// as it is, for libpq to refuse with its own message. Internal: namespace dbpool::pg::detail.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dbpool::pg::detail {

// The one dbpool parameter a connection string may carry.
inline constexpr std::string_view statement_cache_keyword = "statement_cache_size";

// A connection string without dbpool's parameters, and what they said (the last one written
// wins, as with libpq's own keywords).
struct ConninfoParams {
    std::string conninfo;
    std::optional<std::string> statement_cache_size;  // the value as written, decoded
};

inline bool conninfo_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// `text` with %XX escapes decoded (an invalid escape is kept as written), as libpq decodes a
// URL's pieces.
inline std::string percent_decoded(std::string_view text) {
    const auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 &&
            hex(text[i + 2]) >= 0) {
            out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

// postgresql://user:password@host:port/db?key=value&... : libpq ends the user part at the first
// '@' before any '/', so a '?' in a password is not a query; the query starts at the first '?'
// after it (outside an IPv6 host's brackets), its parameters separated by '&'.
inline ConninfoParams take_uri_params(std::string_view uri, std::size_t scheme_length) {
    ConninfoParams out;
    std::size_t at = scheme_length;
    const std::size_t credentials = uri.find_first_of("@/", at);
    if (credentials != std::string_view::npos && uri[credentials] == '@') at = credentials + 1;
    std::size_t query = std::string_view::npos;
    for (bool bracket = false; at < uri.size(); ++at) {
        if (uri[at] == '[') bracket = true;
        if (uri[at] == ']') bracket = false;
        if (uri[at] == '?' && !bracket) {
            query = at;
            break;
        }
    }
    if (query == std::string_view::npos) {
        out.conninfo = std::string(uri);
        return out;
    }
    std::vector<std::string_view> kept;
    bool taken = false;
    std::string_view rest = uri.substr(query + 1);
    for (;;) {
        const std::size_t amp = rest.find('&');
        const std::string_view piece = rest.substr(0, amp);
        const std::size_t eq = piece.find('=');
        if (eq != std::string_view::npos &&
            percent_decoded(piece.substr(0, eq)) == statement_cache_keyword) {
            out.statement_cache_size = percent_decoded(piece.substr(eq + 1));
            taken = true;
        } else {
            kept.push_back(piece);
        }
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    if (!taken) {
        out.conninfo = std::string(uri);
        return out;
    }
    // The other parameters stay exactly as written; a '?' left with none is dropped.
    out.conninfo = std::string(uri.substr(0, query));
    for (std::size_t i = 0; i < kept.size(); ++i) {
        out.conninfo += i == 0 ? '?' : '&';
        out.conninfo += kept[i];
    }
    return out;
}

// key = value pairs separated by white space; a value is a run of non-space characters or a
// single-quoted string, a backslash escaping the next character in either.
inline ConninfoParams take_keyword_params(std::string_view text) {
    ConninfoParams out;
    std::size_t at = 0;
    std::size_t kept = 0;  // text[kept, at) is still to be copied
    while (at < text.size()) {
        while (at < text.size() && conninfo_space(text[at]))
            ++at;
        if (at >= text.size()) break;
        const std::size_t begin = at;
        while (at < text.size() && text[at] != '=' && !conninfo_space(text[at]))
            ++at;
        const std::string_view keyword = text.substr(begin, at - begin);
        while (at < text.size() && conninfo_space(text[at]))
            ++at;
        if (at >= text.size() || text[at] != '=') break;  // libpq's error to report
        ++at;
        while (at < text.size() && conninfo_space(text[at]))
            ++at;
        std::string value;
        if (at < text.size() && text[at] == '\'') {
            bool closed = false;
            for (++at; at < text.size(); ++at) {
                if (text[at] == '\'') {
                    closed = true;
                    ++at;
                    break;
                }
                if (text[at] == '\\' && at + 1 < text.size()) ++at;
                value += text[at];
            }
            if (!closed) break;  // unterminated: libpq's error to report
        } else {
            for (; at < text.size() && !conninfo_space(text[at]); ++at) {
                if (text[at] == '\\' && at + 1 < text.size()) ++at;
                value += text[at];
            }
        }
        if (keyword == statement_cache_keyword) {
            out.conninfo.append(text.substr(kept, begin - kept));
            out.statement_cache_size = std::move(value);
            kept = at;
        }
    }
    out.conninfo.append(text.substr(kept));
    return out;
}

// `conninfo` split into what libpq reads and dbpool's own parameters.
inline ConninfoParams take_dbpool_params(std::string_view conninfo) {
    for (const std::string_view scheme : {"postgresql://", "postgres://"}) {
        if (conninfo.substr(0, scheme.size()) == scheme) {
            return take_uri_params(conninfo, scheme.size());
        }
    }
    return take_keyword_params(conninfo);
}

}  // namespace dbpool::pg::detail

#pragma once

/// \file
/// What dbpool checks in a statement before sending it: the `$n` placeholders and COPY to or
/// from the client (internal).

#include <cstddef>
#include <string_view>

namespace dbpool::pg::detail {

// What a scan of a statement found, outside literals, quoted names and comments.
struct SqlShape {
    std::size_t highest_param = 0;  // the largest n of a `$n` placeholder, 0 without one
    bool copy_client = false;       // a COPY ... FROM STDIN or TO STDOUT statement
};

namespace scan_impl {

inline bool ident_start(char c) {
    const auto byte = static_cast<unsigned char>(c);
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || byte >= 0x80;
}

inline bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9') || c == '$'; }

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

inline bool same_word(std::string_view word, std::string_view upper) {
    if (word.size() != upper.size()) return false;
    for (std::size_t i = 0; i < word.size(); ++i) {
        char c = word[i];
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        if (c != upper[i]) return false;
    }
    return true;
}

// The end of the quoted text starting at `at` (a ' or "), past its closing quote; a doubled
// quote stays inside, and so does a backslash-escaped one when `backslashes`.
inline std::size_t skip_quoted(std::string_view sql, std::size_t at, bool backslashes) {
    const char quote = sql[at];
    std::size_t i = at + 1;
    while (i < sql.size()) {
        if (backslashes && sql[i] == '\\') {
            i += 2;
        } else if (sql[i] == quote) {
            if (i + 1 < sql.size() && sql[i + 1] == quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            ++i;
        }
    }
    return sql.size();
}

}  // namespace scan_impl

// Scans `sql` as PostgreSQL's lexer would: '...' (backslash escapes in E'...', and in every
// literal when standard_conforming_strings is off), "...", $tag$...$tag$, -- and nested /* */
// comments are skipped; `$n` is a placeholder unless it continues a name (`a$1`). A COPY
// statement reads from or writes to the client when STDIN follows its FROM, or STDOUT its TO,
// outside parentheses (so a query's FROM stdin, a table named stdin, is not mistaken for it).
inline SqlShape scan_sql(std::string_view sql, bool standard_strings = true) {
    SqlShape shape;
    std::size_t depth = 0;
    std::size_t words = 0;         // words of the current statement at depth 0
    bool copy = false;             // the current statement is a COPY
    bool after_direction = false;  // the last token was COPY's FROM or TO at depth 0
    std::size_t i = 0;
    while (i < sql.size()) {
        const char c = sql[i];
        const char next = i + 1 < sql.size() ? sql[i + 1] : '\0';
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            ++i;
            continue;
        }
        if (c == '-' && next == '-') {
            const std::size_t end = sql.find('\n', i);
            i = end == std::string_view::npos ? sql.size() : end + 1;
            continue;
        }
        if (c == '/' && next == '*') {
            std::size_t nesting = 1;
            i += 2;
            while (i < sql.size() && nesting > 0) {
                if (sql[i] == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
                    ++nesting;
                    i += 2;
                } else if (sql[i] == '*' && i + 1 < sql.size() && sql[i + 1] == '/') {
                    --nesting;
                    i += 2;
                } else {
                    ++i;
                }
            }
            continue;
        }
        bool direction = false;
        if (c == '\'') {
            i = scan_impl::skip_quoted(sql, i, !standard_strings);
        } else if (c == '"') {
            i = scan_impl::skip_quoted(sql, i, false);
        } else if (c == '$' && scan_impl::is_digit(next)) {
            std::size_t n = 0;
            for (++i; i < sql.size() && scan_impl::is_digit(sql[i]); ++i) {
                n = n < 1000000 ? n * 10 + static_cast<std::size_t>(sql[i] - '0') : n;
            }
            if (n > shape.highest_param) shape.highest_param = n;
        } else if (c == '$') {
            // A dollar-quoted string: $$...$$ or $tag$...$tag$.
            std::size_t end = i + 1;
            if (end < sql.size() && scan_impl::ident_start(sql[end])) {
                while (end < sql.size() && scan_impl::ident_char(sql[end]) && sql[end] != '$')
                    ++end;
            }
            if (end < sql.size() && sql[end] == '$') {
                const std::string_view tag = sql.substr(i, end - i + 1);
                const std::size_t close = sql.find(tag, end + 1);
                i = close == std::string_view::npos ? sql.size() : close + tag.size();
            } else {
                ++i;
            }
        } else if (scan_impl::ident_start(c)) {
            std::size_t end = i;
            while (end < sql.size() && scan_impl::ident_char(sql[end]))
                ++end;
            const std::string_view word = sql.substr(i, end - i);
            i = end;
            if (i < sql.size() && sql[i] == '\'' && scan_impl::same_word(word, "E")) {
                i = scan_impl::skip_quoted(sql, i, true);  // E'...': backslash escapes
            } else if (depth == 0) {
                if (words++ == 0) copy = scan_impl::same_word(word, "COPY");
                if (copy && after_direction &&
                    (scan_impl::same_word(word, "STDIN") || scan_impl::same_word(word, "STDOUT"))) {
                    shape.copy_client = true;
                }
                direction = copy && (scan_impl::same_word(word, "FROM") ||
                                     scan_impl::same_word(word, "TO"));
            }
        } else if (scan_impl::is_digit(c)) {
            while (i < sql.size() && (scan_impl::ident_char(sql[i]) || sql[i] == '.'))
                ++i;
        } else {
            if (c == '(') ++depth;
            if (c == ')' && depth > 0) --depth;
            if (c == ';') {
                depth = 0;
                words = 0;
                copy = false;
            }
            ++i;
        }
        after_direction = direction;
    }
    return shape;
}

}  // namespace dbpool::pg::detail

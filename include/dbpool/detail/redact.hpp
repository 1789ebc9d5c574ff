#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dbpool::detail {

// What must never reach a message, for both backends. A mask that sits where a public value
// stands tells the reader the password (user "app", password "app": "***@host"), and one for a
// 1-character password turns every "1" into a pointer at it; so matches inside a shown value
// stay, and short secrets are masked only where a library quoted them on their own.
struct Secrets {
    // Masked wherever they occur; one of 1 or 2 characters only where it stands alone between
    // quotes (as a library echoes a value: `"ab"`).
    std::vector<std::string> whole;
    // Text a parser may have cut apart (what followed "user:" in a URL): every 3-character
    // piece of it is masked wherever it occurs, whatever field it ended up in.
    std::vector<std::string> pieces;
    // Values shown on purpose (the user name): a match lying inside one of their occurrences
    // is left alone, so it cannot single the value out as the password.
    std::vector<std::string> shown;
};

namespace redact_impl {

struct Span {
    std::size_t begin;
    std::size_t end;
};

inline bool inside_any(const std::vector<Span>& spans, std::size_t begin, std::size_t end) {
    for (const Span& span : spans) {
        if (span.begin <= begin && end <= span.end) return true;
    }
    return false;
}

inline void cover(std::string_view text, std::string_view piece, const std::vector<Span>& shown,
                  std::vector<bool>& covered) {
    if (piece.empty()) return;
    for (std::size_t at = text.find(piece); at != std::string_view::npos;
         at = text.find(piece, at + 1)) {
        if (inside_any(shown, at, at + piece.size())) continue;
        for (std::size_t i = at; i < at + piece.size(); ++i)
            covered[i] = true;
    }
}

// A short secret counts only as a whole quoted value: "ab" or 'ab'.
inline void cover_quoted(std::string_view text, std::string_view secret,
                         const std::vector<Span>& shown, std::vector<bool>& covered) {
    for (std::size_t at = text.find(secret); at != std::string_view::npos;
         at = text.find(secret, at + 1)) {
        const std::size_t end = at + secret.size();
        if (at == 0 || end >= text.size()) continue;
        const char quote = text[at - 1];
        if ((quote != '"' && quote != '\'') || text[end] != quote) continue;
        if (inside_any(shown, at, end)) continue;
        for (std::size_t i = at; i < end; ++i)
            covered[i] = true;
    }
}

}  // namespace redact_impl

// `text` with every run of characters covered by a secret replaced by `marker`.
inline std::string redact(std::string_view text, const Secrets& secrets, std::string_view marker) {
    constexpr std::size_t piece = 3;  // shorter pieces occur in ordinary text by chance
    std::vector<redact_impl::Span> shown;
    for (const std::string& value : secrets.shown) {
        if (value.empty()) continue;
        for (std::size_t at = text.find(value); at != std::string_view::npos;
             at = text.find(value, at + 1)) {
            shown.push_back({at, at + value.size()});
        }
    }
    std::vector<bool> covered(text.size(), false);
    for (const std::string& secret : secrets.whole) {
        if (secret.size() < piece) {
            redact_impl::cover_quoted(text, secret, shown, covered);
        } else {
            redact_impl::cover(text, secret, shown, covered);
        }
    }
    for (const std::string& secret : secrets.pieces) {
        if (secret.size() < piece) {
            redact_impl::cover_quoted(text, secret, shown, covered);
            continue;
        }
        const std::string_view whole = secret;
        for (std::size_t i = 0; i + piece <= whole.size(); ++i) {
            redact_impl::cover(text, whole.substr(i, piece), shown, covered);
        }
    }
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        if (!covered[i]) {
            out += text[i++];
            continue;
        }
        out += marker;
        while (i < text.size() && covered[i])
            ++i;
    }
    return out;
}

}  // namespace dbpool::detail

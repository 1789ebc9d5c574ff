#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dbpool::detail {

// What must never reach a message, for both backends. Two ways a mask can itself tell the
// password are avoided: a mask where the user name stands (user "app", password "app" gave
// "<password>@host"), and masks for a 1-character password at every "1" in a message.
struct Secrets {
    // Masked wherever they occur; one of 1 or 2 characters only where it stands alone between
    // quotes (as a library echoes a value: `"ab"`) or as a URL's password (`:ab@`).
    std::vector<std::string> whole;
    // Text a parser may have cut apart (what followed "user:" in a URL): every 3-character
    // piece of it is masked wherever it occurs, whatever field it ended up in.
    std::vector<std::string> pieces;
    // User names: shown as they are, unless one holds a secret (or a piece of one, or is a
    // short secret); then each occurrence of it as a word of its own reads as the user marker,
    // so the message neither shows the password nor marks the user name as the password.
    std::vector<std::string> users;
};

namespace redact_impl {

// Marks every occurrence of `piece` in `text`.
inline void cover(std::string_view text, std::string_view piece, std::vector<bool>& covered) {
    if (piece.empty()) return;
    for (std::size_t at = text.find(piece); at != std::string_view::npos;
         at = text.find(piece, at + 1)) {
        for (std::size_t i = at; i < at + piece.size(); ++i)
            covered[i] = true;
    }
}

// A short secret counts only as a whole quoted value, "ab" or 'ab', or as the password of a
// URL a message echoes, ":ab@".
inline void cover_quoted(std::string_view text, std::string_view secret,
                         std::vector<bool>& covered) {
    for (std::size_t at = text.find(secret); at != std::string_view::npos;
         at = text.find(secret, at + 1)) {
        const std::size_t end = at + secret.size();
        if (at == 0 || end >= text.size()) continue;
        const char before = text[at - 1];
        const char after = text[end];
        const bool quoted = (before == '"' || before == '\'') && after == before;
        const bool userinfo = before == ':' && after == '@';
        if (!quoted && !userinfo) continue;
        for (std::size_t i = at; i < end; ++i)
            covered[i] = true;
    }
}

inline constexpr std::size_t piece_size = 3;  // shorter pieces occur in ordinary text by chance

// Which characters of `text` the secrets cover.
inline std::vector<bool> covered_by(std::string_view text, const Secrets& secrets) {
    std::vector<bool> covered(text.size(), false);
    for (const std::string& secret : secrets.whole) {
        if (secret.size() < piece_size) {
            cover_quoted(text, secret, covered);
        } else {
            cover(text, secret, covered);
        }
    }
    for (const std::string& secret : secrets.pieces) {
        if (secret.size() < piece_size) {
            cover_quoted(text, secret, covered);
            continue;
        }
        const std::string_view whole = secret;
        for (std::size_t i = 0; i + piece_size <= whole.size(); ++i) {
            cover(text, whole.substr(i, piece_size), covered);
        }
    }
    return covered;
}

// Marks every occurrence of `name` in `text` that stands as a word of its own (no letter, digit
// or '_' on either side): "ab@host", 'ab', but not the "ab" of "tab".
inline void cover_word(std::string_view text, std::string_view name, std::vector<bool>& covered) {
    const auto word = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    };
    for (std::size_t at = text.find(name); at != std::string_view::npos;
         at = text.find(name, at + 1)) {
        const std::size_t end = at + name.size();
        if ((at > 0 && word(text[at - 1])) || (end < text.size() && word(text[end]))) continue;
        for (std::size_t i = at; i < end; ++i)
            covered[i] = true;
    }
}

// Whether showing `user` would show a secret (a short secret only when it is the whole name).
inline bool holds_secret(std::string_view user, const Secrets& secrets) {
    for (const bool bit : covered_by(user, secrets)) {
        if (bit) return true;
    }
    for (const std::vector<std::string>* list : {&secrets.whole, &secrets.pieces}) {
        for (const std::string& secret : *list) {
            if (!secret.empty() && secret.size() < piece_size && user == secret) return true;
        }
    }
    return false;
}

}  // namespace redact_impl

// `text` with every run of characters covered by a secret replaced by `marker`, and every
// occurrence of a user name that holds a secret replaced by `user_marker`.
inline std::string redact(std::string_view text, const Secrets& secrets, std::string_view marker,
                          std::string_view user_marker = "<user>") {
    std::vector<bool> covered = redact_impl::covered_by(text, secrets);
    std::vector<bool> user(text.size(), false);
    for (const std::string& name : secrets.users) {
        if (name.empty() || !redact_impl::holds_secret(name, secrets)) continue;
        redact_impl::cover_word(text, name, user);
    }
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        if (user[i]) {
            out += user_marker;
            while (i < text.size() && user[i])
                ++i;
        } else if (covered[i]) {
            out += marker;
            while (i < text.size() && covered[i] && !user[i])
                ++i;
        } else {
            out += text[i++];
        }
    }
    return out;
}

}  // namespace dbpool::detail

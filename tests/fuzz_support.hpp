#pragma once

// What the URL fuzz tests of both backends share (tests/mysql/url_fuzz_test.cpp,
// tests/pg/conninfo_fuzz_test.cpp): a seeded generator, the marker alphabet that tells a piece
// of the password apart from any other text, and the leak check built on it.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>

namespace fuzz {

// The password's letters come from here and from nowhere else in a generated URL or in a fixed
// message, so a text holding a 3-character piece of the password with a marker letter in it can
// only have copied it from the password.
constexpr std::string_view marker_letters = "QWXZJKVY";
constexpr std::string_view plain_alphabet = "abcdefghijklmnopqrstuvwxyz0123456789._-";

struct Random {
    std::mt19937_64 engine;
    explicit Random(std::uint64_t seed) : engine(seed) {}
    std::size_t below(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(engine);
    }
    bool chance(int percent) { return below(100) < static_cast<std::size_t>(percent); }
    char pick(std::string_view from) { return from[below(from.size())]; }
    std::string word(std::string_view from, std::size_t min, std::size_t max) {
        std::string out;
        const std::size_t length = min + below(max - min + 1);
        for (std::size_t i = 0; i < length; ++i)
            out += pick(from);
        return out;
    }
};

inline std::string percent_encode(char c) {
    static constexpr char hex[] = "0123456789ABCDEF";
    const auto byte = static_cast<unsigned char>(c);
    return std::string("%") + hex[byte >> 4] + hex[byte & 15];
}

// Whether `text` holds a 3-character piece of `secret` that has a marker letter in it.
inline bool leaks(std::string_view text, std::string_view secret) {
    for (std::size_t i = 0; i + 3 <= secret.size(); ++i) {
        const std::string_view piece = secret.substr(i, 3);
        if (piece.find_first_of(marker_letters) == std::string_view::npos) continue;
        if (text.find(piece) != std::string_view::npos) return true;
    }
    return false;
}

// `text` with every byte outside printable ASCII percent-encoded, for a failure message.
inline std::string printable(std::string_view text) {
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        out += byte >= 32 && byte < 127 ? std::string(1, c) : percent_encode(c);
    }
    return out;
}

// DBPOOL_FUZZ_SECONDS, the time a fuzz test may run (default 2 s).
inline double env_seconds() {
    const char* text = std::getenv("DBPOOL_FUZZ_SECONDS");
    return text != nullptr ? std::atof(text) : 2.0;
}

}  // namespace fuzz

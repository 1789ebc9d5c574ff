// Fuzz test of the mysql:// URL parser: random and mutated URLs, bounded in time. No error
// message may contain the password or any 3-character piece of it, whatever the input; NUL
// bytes are refused in every component; nothing crashes (run under ASan/UBSan in CI).
//
// How "a piece of the password" is told apart from other text: the password's letters come from
// a marker alphabet used nowhere else (not in the other URL parts, not in any fixed message),
// so a message holding a 3-character piece of the password with a marker letter in it can only
// have copied it from the password.
//
// The multi-host parser gets the same URLs: it must agree with the single-host one on every
// URL with one host (one grammar), read the same user and password from a list of hosts, and
// never leak either.
//
// DBPOOL_FUZZ_SECONDS (default 2) bounds the run; DBPOOL_FUZZ_SEED replays a seed.
#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/multi_host.hpp>

#include <catch2/catch.hpp>

#include "../fuzz_support.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::mysql::ConnectOptions;

namespace {

using fuzz::env_seconds;
using fuzz::leaks;
using fuzz::marker_letters;
using fuzz::percent_encode;
using fuzz::plain_alphabet;
using fuzz::printable;
using fuzz::Random;

constexpr std::string_view password_specials = "?/@:#%&=[]+!$'()*,;~ ";

// A generated URL and where its password sits (as written, before decoding).
struct Sample {
    std::string url;
    std::string user;
    std::string password;            // decoded
    std::size_t password_begin = 0;  // [begin, end) in url; url[end] is the '@' ending it
    std::size_t password_end = 0;
    std::size_t hosts_end = 0;  // where a second host could be added (unmutated samples)
    bool plain = true;          // every part well-formed: the parse must succeed and agree
};

Sample generate(Random& random) {
    Sample sample;
    std::string url =
        random.chance(90) ? "mysql://" : (random.chance(50) ? "mariadb://" : "mysq://");
    sample.plain = url != "mysq://";
    sample.user = random.word(plain_alphabet, 1, 8);
    url += sample.user + ":";
    sample.password_begin = url.size();
    const std::size_t length = 1 + random.below(16);
    for (std::size_t i = 0;
         i < length || sample.password.find_first_of(marker_letters) == std::string::npos; ++i) {
        const char c =
            random.chance(50) ? random.pick(marker_letters) : random.pick(password_specials);
        sample.password += c;
        url += (c == '%' || random.chance(15)) ? percent_encode(c) : std::string(1, c);
    }
    sample.password_end = url.size();
    url += '@';
    if (random.chance(10)) {
        url += "[::1]";
    } else if (random.chance(95)) {
        url += random.word("abcdefghijklmnopqrstuvwxyz0123456789.-", 1, 12);
    } else {
        sample.plain = false;  // no host
    }
    if (random.chance(40)) {
        if (random.chance(90)) {
            url += ":" + std::to_string(1 + random.below(65535));
        } else {
            url += ":" + random.word(plain_alphabet, 0, 6);
            sample.plain = false;
        }
    }
    sample.hosts_end = url.size();
    if (random.chance(80)) url += "/" + random.word("abcdefghijklmnopqrstuvwxyz0123456789_", 0, 10);
    if (random.chance(60)) {
        static const char* const names[] = {
            "charset", "connect_timeout", "read_timeout", "ssl-mode",
            "ssl-ca",  "protocol",        "colour",       "init"};
        static const char* const values[] = {"utf8mb4", "5", "required", "/ca.pem", "tcp", "x", ""};
        char separator = '?';
        for (std::size_t i = 0, count = 1 + random.below(3); i < count; ++i) {
            url += separator;
            separator = '&';
            url += random.chance(85) ? names[random.below(std::size(names))]
                                     : random.word(plain_alphabet, 1, 8);
            if (random.chance(95))
                url += std::string("=") + values[random.below(std::size(values))];
        }
        sample.plain = false;  // parameters may be unknown or invalid
    }
    sample.url = std::move(url);
    return sample;
}

// Random edits that never touch the '@' ending the password and put marker letters only inside
// the password span (whose bounds move with the edits).
void mutate(Random& random, Sample& sample) {
    std::string& url = sample.url;
    const std::size_t edits = 1 + random.below(4);
    for (std::size_t edit = 0; edit < edits; ++edit) {
        const std::size_t at = random.below(url.size() + 1);
        const bool inside = at >= sample.password_begin && at <= sample.password_end;
        switch (random.below(4)) {
            case 0: {  // insert a byte
                // Any byte, '@' and NUL included ('@' anywhere only moves the end of the
                // user-info to the right, so the password stays inside it).
                char c = static_cast<char>(random.below(256));
                if (marker_letters.find(c) != std::string_view::npos && !inside) c = 'a';
                if (random.chance(30)) {
                    c = random.pick(inside ? std::string_view("?/@:#%&=QX")
                                           : std::string_view("?/@:#%&=\0", 9));
                }
                url.insert(at, 1, c);
                if (at <= sample.password_begin && !inside) ++sample.password_begin;
                if (at <= sample.password_end) ++sample.password_end;
                break;
            }
            case 1: {  // insert an escape, valid or not
                static const char* const escapes[] = {"%00", "%", "%4", "%zz", "%40", "%2F"};
                const std::string text = escapes[random.below(std::size(escapes))];
                url.insert(at, text);
                if (at <= sample.password_begin && !inside) sample.password_begin += text.size();
                if (at <= sample.password_end) sample.password_end += text.size();
                break;
            }
            case 2: {  // delete a byte
                if (at >= url.size() || at == sample.password_end) break;
                url.erase(at, 1);
                if (at < sample.password_begin) --sample.password_begin;
                if (at < sample.password_end) --sample.password_end;
                break;
            }
            default: {  // replace a byte outside the password with a structural one
                if (at >= url.size() || inside) break;
                url[at] = random.pick(":/?&=#[]");
                break;
            }
        }
    }
    sample.plain = false;
    sample.hosts_end = 0;
}

// Whether the URL (as the grammar reads it: the host list runs from after the last '@' to the
// first '/' or '?') names one host: then the multi-host parser must agree with from_url.
bool one_host(std::string_view url) {
    const auto at = url.rfind('@');
    std::string_view after = at == std::string_view::npos ? url : url.substr(at + 1);
    if (at == std::string_view::npos) {
        const auto scheme = url.find("://");
        if (scheme != std::string_view::npos) after = url.substr(scheme + 3);
    }
    return after.substr(0, std::min(after.find('/'), after.find('?'))).find(',') ==
           std::string_view::npos;
}

// Where `url` differs from `single`: both parsed alike, or both refused with one message.
std::string disagreement(const std::string& url) {
    std::string single;
    std::string multi;
    try {
        const auto options = ConnectOptions::from_url(url);
        single = "ok " + options.describe() + " " + options.password;
    } catch (const Error& error) {
        single = error.what();
    }
    try {
        const auto options = dbpool::mysql::multi_host_options_from_url(url);
        multi = options.hosts.size() == 1
                    ? "ok " + options.hosts[0].describe() + " " + options.hosts[0].password
                    : "several hosts";
    } catch (const Error& error) {
        if (error.code() != ErrorCode::invalid_options) return "not invalid_options";
        multi = error.what();
    }
    return single == multi ? std::string() : "from_url: " + single + "\n  multi: " + multi;
}

}  // namespace

TEST_CASE("URL parser fuzz: messages never hold a piece of the password", "[mysql][url][fuzz]") {
    const std::uint64_t seed =
        std::getenv("DBPOOL_FUZZ_SEED") != nullptr
            ? std::strtoull(std::getenv("DBPOOL_FUZZ_SEED"), nullptr, 10)
            : static_cast<std::uint64_t>(
                  std::chrono::steady_clock::now().time_since_epoch().count());
    INFO("seed " << seed << " (replay with DBPOOL_FUZZ_SEED)");
    Random random(seed);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(env_seconds()));
    std::uint64_t runs = 0;
    std::uint64_t refused = 0;
    std::uint64_t parsed_plain = 0;
    std::uint64_t compared = 0;
    std::uint64_t parsed_multi = 0;
    for (; runs < 2000000; ++runs) {
        if ((runs & 255) == 0 && std::chrono::steady_clock::now() >= deadline) break;
        Sample sample = generate(random);
        if (random.chance(50)) mutate(random, sample);
        const std::string raw_password =
            sample.url.substr(sample.password_begin, sample.password_end - sample.password_begin);
        if (one_host(sample.url)) {
            ++compared;
            const std::string differs = disagreement(sample.url);
            if (!differs.empty()) {
                FAIL("the multi-host parser reads " << printable(sample.url) << " differently\n  "
                                                    << differs);
            }
        }
        try {
            // Several hosts: for an unmutated URL a second host is added to the list.
            std::string url = sample.url;
            if (sample.hosts_end > 0) url.insert(sample.hosts_end, ",db2.example:3307");
            const auto options = dbpool::mysql::multi_host_options_from_url(url);
            if (sample.plain) {
                ++parsed_multi;
                if (options.hosts.size() != 2 || options.hosts[1].password != sample.password ||
                    options.hosts[1].user != sample.user || options.hosts[1].port != 3307) {
                    FAIL("the multi-host parser read the wrong hosts or password from "
                         << printable(url));
                }
            }
        } catch (const Error& error) {
            const std::string message = error.what();
            if (error.code() != ErrorCode::invalid_options) {
                FAIL("not invalid_options for " << printable(sample.url) << ": " << message);
            }
            if (leaks(message, sample.password) || leaks(message, raw_password)) {
                FAIL("the multi-host message holds a piece of the password\n  url: "
                     << printable(sample.url) << "\n  message: " << message);
            }
        }
        try {
            const ConnectOptions options = ConnectOptions::from_url(sample.url);
            if (sample.plain) {
                ++parsed_plain;
                if (options.password != sample.password || options.user != sample.user) {
                    FAIL("parsed the wrong user or password from " << printable(sample.url));
                }
            }
        } catch (const Error& error) {
            ++refused;
            const std::string message = error.what();
            if (error.code() != ErrorCode::invalid_options) {
                FAIL("not invalid_options for " << printable(sample.url) << ": " << message);
            }
            if (leaks(message, sample.password) || leaks(message, raw_password)) {
                FAIL("the message holds a piece of the password\n  url: "
                     << printable(sample.url) << "\n  message: " << message);
            }
        }
    }
    INFO(runs << " URLs, " << refused << " refused, " << parsed_plain << " plain ones parsed, "
              << compared << " compared with the multi-host parser, " << parsed_multi
              << " parsed with two hosts");
    CHECK(runs > 1000);
    CHECK(compared > 1000);
    CHECK(parsed_multi > 0);
    CHECK(refused > 0);
    CHECK(parsed_plain > 0);
}

TEST_CASE("URL parser fuzz: a NUL byte in any component is refused", "[mysql][url][fuzz]") {
    Random random(12345);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    int checked = 0;
    for (; checked < 20000 && std::chrono::steady_clock::now() < deadline; ++checked) {
        const std::string user = random.word(plain_alphabet, 1, 6);
        const std::string password = random.word("QWXZJKVY", 1, 6);
        const std::string host = random.word("abcdefghij", 1, 6);
        const std::string database = random.word("abcdefghij", 1, 6);
        std::string parts[] = {user, password, host, "3306", database, "charset", "utf8mb4"};
        const std::size_t part = random.below(std::size(parts));
        const std::size_t at = random.below(parts[part].size() + 1);
        const bool encoded = part != 2 && part != 3 && random.chance(50);  // no %XX in host/port
        parts[part].insert(at, encoded ? std::string("%00") : std::string(1, '\0'));
        const std::string url = "mysql://" + parts[0] + ":" + parts[1] + "@" + parts[2] + ":" +
                                parts[3] + "/" + parts[4] + "?" + parts[5] + "=" + parts[6];
        try {
            (void)ConnectOptions::from_url(url);
            FAIL("a NUL byte was accepted in " << printable(url));
        } catch (const Error& error) {
            const std::string message = error.what();
            if (error.code() != ErrorCode::invalid_options ||
                message.find("NUL") == std::string::npos) {
                FAIL("unexpected error for " << printable(url) << ": " << message);
            }
            if (leaks(message, password)) FAIL("the message holds a piece of the password");
        }
    }
    CHECK(checked > 100);
}

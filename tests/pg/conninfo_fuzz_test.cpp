// Fuzz test of what dbpool says about a postgresql:// URL: random and mutated URLs whose
// password holds unencoded '/', '@', ':', '?' ..., which libpq cuts into a host, a port or a
// database name. No text dbpool produces (validate()'s message, describe(), a connect error,
// and every value libpq parsed as a connect error could echo it; the same for each node
// pg::split_hosts makes of a host list, and its message) may contain a 3-character piece of
// what followed "user:", whatever libpq made of it. Bounded in time and count, and
// deterministic (a fixed seed) so a failure replays; run under ASan/UBSan in CI.
//
// How "a piece of the password" is told apart from other text: the password's letters come from
// a marker alphabet used nowhere else (not in the other URL parts, not in any fixed message),
// so a text holding a 3-character piece of the password with a marker letter in it can only
// have copied it from the password.
//
// DBPOOL_FUZZ_SECONDS (default 2) bounds the run; DBPOOL_FUZZ_SEED picks another seed.
// Connects go only to 127.0.0.1 port 1 (refused at once) and only when libpq parsed exactly that.
#include <dbpool/pg/cluster.hpp>
#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/connection.hpp>

#include <catch2/catch.hpp>

#include "../fuzz_support.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::pg::ConnectOptions;

namespace {

using fuzz::env_seconds;
using fuzz::leaks;
using fuzz::marker_letters;
using fuzz::percent_encode;
using fuzz::plain_alphabet;
using fuzz::printable;
using fuzz::Random;

// No '*': the mask is "***", and "W,***" would read as the piece "W,*".
constexpr std::string_view password_specials = "?/@:#%&=[]+!$'(),;~ ";

constexpr std::string_view scheme = "postgresql://";

struct Sample {
    std::string url;
    std::string password;            // decoded
    std::size_t password_begin = 0;  // [begin, end) in url; url[end] is the '@' ending it
    std::size_t password_end = 0;
};

Sample generate(Random& random) {
    Sample sample;
    std::string url(scheme);
    url += random.word(plain_alphabet, 1, 8) + ":";
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
    if (random.chance(40)) {
        url += "127.0.0.1:1";
    } else if (random.chance(10)) {
        url += "[::1]";
    } else {
        url += random.word("abcdefghijklmnopqrstuvwxyz0123456789.-", 1, 12);
        if (random.chance(40)) url += ":" + std::to_string(1 + random.below(65535));
    }
    // A host list, as pg::split_hosts takes it apart.
    for (std::size_t i = 0, more = random.chance(25) ? 1 + random.below(2) : 0; i < more; ++i) {
        url += "," + random.word("abcdefghijklmnopqrstuvwxyz0123456789.-", 0, 8);
        if (random.chance(50)) url += ":" + std::to_string(1 + random.below(65535));
    }
    if (random.chance(80)) url += "/" + random.word("abcdefghijklmnopqrstuvwxyz0123456789_", 0, 10);
    if (random.chance(40)) {
        static const char* const parameters[] = {"sslmode=disable",
                                                 "connect_timeout=1",
                                                 "application_name=fz",
                                                 "target_session_attrs=any",
                                                 "options=-c%20x.y=1",
                                                 "colour=x",
                                                 "port=1",
                                                 "statement_cache_size=0",
                                                 "statement_cache_size=x"};
        char separator = '?';
        for (std::size_t i = 0, count = 1 + random.below(3); i < count; ++i) {
            url += separator;
            separator = '&';
            url += parameters[random.below(std::size(parameters))];
        }
    }
    sample.url = std::move(url);
    return sample;
}

// Random edits that never touch the "user:" colon or the '@' ending the password, and put marker
// letters only inside the password span (whose bounds move with the edits).
void mutate(Random& random, Sample& sample) {
    std::string& url = sample.url;
    const std::size_t edits = 1 + random.below(4);
    for (std::size_t edit = 0; edit < edits; ++edit) {
        const std::size_t at = random.below(url.size() + 1);
        const bool inside = at >= sample.password_begin && at <= sample.password_end;
        switch (random.below(4)) {
            case 0: {  // insert a byte
                char c = static_cast<char>(random.below(256));
                if (marker_letters.find(c) != std::string_view::npos && !inside) c = 'a';
                if (random.chance(40)) {
                    c = random.pick(inside ? std::string_view("?/@:#%&=,QX")
                                           : std::string_view("?/@:#%&=,\0", 10));
                }
                url.insert(at, 1, c);
                if (at < sample.password_begin) ++sample.password_begin;
                if (at <= sample.password_end) ++sample.password_end;
                break;
            }
            case 1: {  // insert an escape, valid or not
                static const char* const escapes[] = {"%00", "%", "%4", "%zz", "%40", "%2F"};
                const std::string text = escapes[random.below(std::size(escapes))];
                url.insert(at, text);
                if (at < sample.password_begin) sample.password_begin += text.size();
                if (at <= sample.password_end) sample.password_end += text.size();
                break;
            }
            case 2: {  // delete a byte
                if (at >= url.size() || at == sample.password_end ||
                    at + 1 == sample.password_begin) {
                    break;
                }
                url.erase(at, 1);
                if (at < sample.password_begin) --sample.password_begin;
                if (at < sample.password_end) --sample.password_end;
                break;
            }
            default: {  // replace a byte outside the password with a structural one
                if (at >= url.size() || inside || at + 1 == sample.password_begin) break;
                url[at] = random.pick(":/?&=#[],@");
                break;
            }
        }
    }
}

// Every value libpq parsed, quoted as its messages quote them: what a connect error could echo.
std::string echo_of(const dbpool::pg::detail::Conninfo& parsed) {
    std::string text;
    for (const PQconninfoOption* o = parsed.get(); o != nullptr && o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        text += std::string(o->keyword) + " \"" + o->val + "\"; ";
    }
    return text;
}

}  // namespace

TEST_CASE("conninfo fuzz: no text holds a piece of a URL password", "[pg][unit][fuzz]") {
    const char* seed_text = std::getenv("DBPOOL_FUZZ_SEED");
    const std::uint64_t seed = seed_text != nullptr ? std::strtoull(seed_text, nullptr, 10) : 20;
    INFO("seed " << seed << " (replay with DBPOOL_FUZZ_SEED)");
    Random random(seed);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(env_seconds()));
    std::uint64_t runs = 0;
    std::uint64_t refused = 0;
    std::uint64_t parsed = 0;
    std::uint64_t connects = 0;
    std::uint64_t nodes = 0;
    std::uint64_t split_refused = 0;
    for (; runs < 20000; ++runs) {
        if ((runs & 63) == 0 && std::chrono::steady_clock::now() >= deadline) break;
        Sample sample = generate(random);
        if (random.chance(60)) mutate(random, sample);
        const std::string written =
            sample.url.substr(sample.password_begin, sample.password_end - sample.password_begin);
        const auto check = [&](std::string_view what, std::string_view text) {
            if (leaks(text, sample.password) || leaks(text, written)) {
                FAIL(what << " holds a piece of the password\n  url: " << printable(sample.url)
                          << "\n  text: " << printable(text));
            }
        };
        ConnectOptions options;
        options.conninfo = sample.url;
        options.connect_timeout = std::chrono::seconds(1);
        check("describe()", options.describe());
        bool valid = true;
        try {
            options.validate();
        } catch (const Error& error) {
            valid = false;
            ++refused;
            if (error.code() != ErrorCode::invalid_options) {
                FAIL("not invalid_options for " << printable(sample.url) << ": " << error.what());
            }
            check("validate()'s message", error.what());
        }
        // dbpool's own parameter: from_url() takes it out (or refuses its value) before
        // libpq parses the rest.
        try {
            const ConnectOptions from_url = ConnectOptions::from_url(sample.url);
            check("from_url()'s conninfo, described", from_url.describe());
        } catch (const Error& error) {
            if (error.code() != ErrorCode::invalid_options) {
                FAIL("not invalid_options for " << printable(sample.url) << ": " << error.what());
            }
            check("from_url()'s message", error.what());
        }
        if (!valid) continue;
        ++parsed;
        try {
            for (const ConnectOptions& node : dbpool::pg::split_hosts(options)) {
                ++nodes;
                check("a node's describe()", node.describe());
                const dbpool::pg::detail::Conninfo node_values =
                    dbpool::pg::detail::parse_conninfo(node.conninfo);
                check("a node's parsed value, masked as in a connect error",
                      dbpool::detail::redact(
                          echo_of(node_values),
                          dbpool::pg::detail::conninfo_secrets(node, node_values), "***"));
            }
        } catch (const Error& error) {
            ++split_refused;
            if (error.code() != ErrorCode::invalid_options) {
                FAIL("split_hosts: not invalid_options for " << printable(sample.url) << ": "
                                                             << error.what());
            }
            check("split_hosts' message", error.what());
        }
        const dbpool::pg::detail::Conninfo values =
            dbpool::pg::detail::parse_conninfo(options.conninfo);
        check("a parsed value, masked as in a connect error",
              dbpool::detail::redact(echo_of(values),
                                     dbpool::pg::detail::conninfo_secrets(options, values), "***"));
        const std::string host = dbpool::pg::detail::conninfo_value(values, "host");
        const std::string hostaddr = dbpool::pg::detail::conninfo_value(values, "hostaddr");
        const std::string port = dbpool::pg::detail::conninfo_value(values, "port");
        if (connects < 200 && host == "127.0.0.1" && (hostaddr.empty() || hostaddr == host) &&
            port == "1") {
            ++connects;
            try {
                dbpool::pg::Connection connection(options);
                FAIL("connected to 127.0.0.1 port 1");
            } catch (const Error& error) {
                CHECK(error.code() == ErrorCode::connect_failed);
                check("the connect error", error.what());
            }
        }
    }
    INFO(runs << " URLs, " << refused << " refused, " << parsed << " parsed, " << connects
              << " connects, " << nodes << " nodes split off, " << split_refused
              << " host lists refused");
    CHECK(runs > 500);
    CHECK(refused > 0);
    CHECK(parsed > 0);
    CHECK(connects > 0);
    CHECK(nodes > parsed - split_refused);  // some lists had several hosts
    CHECK(split_refused > 0);
}

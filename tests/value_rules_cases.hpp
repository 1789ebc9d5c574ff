#pragma once

// The value rules both backends share (include/dbpool/detail/value_rules.hpp) as one table of
// cases, run by each backend's unit tests through its own wire format
// (tests/mysql/result_set_test.cpp, tests/pg/unit_test.cpp): a rule fixed once holds for both.

#include <dbpool/error.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace value_rules {

// The message of the Error{usage} that `read` throws, or "" when it throws none.
template <class Read>
std::string error_of(Read read) {
    try {
        read();
    } catch (const dbpool::Error& error) {
        CHECK(error.code() == dbpool::ErrorCode::usage);
        return error.what();
    }
    return {};
}

// Reader: `template <class T> T text(const std::string&) const` reads a non-NULL value the
// server wrote as that text (MySQL's text protocol, PostgreSQL's text format), and
// `template <class T> T null() const` reads a NULL; the column is called "c" and messages
// start with `backend`.
template <class Reader>
void check(const Reader& reader, const std::string& backend) {
    const auto text_error = [&](auto type_tag, const std::string& text) {
        using T = decltype(type_tag);
        return error_of([&] { (void)reader.template text<T>(text); });
    };
    // Integers: decimal text in range; a decimal number that is whole, by the double rule.
    CHECK(reader.template text<int>("42") == 42);
    CHECK(reader.template text<std::int64_t>("-9223372036854775808") ==
          std::numeric_limits<std::int64_t>::min());
    CHECK(reader.template text<std::uint64_t>("18446744073709551615") ==
          std::numeric_limits<std::uint64_t>::max());
    CHECK(reader.template text<int>("12.000") == 12);
    CHECK(reader.template text<std::int64_t>("9.2e18") == 9200000000000000000);
    CHECK(reader.template text<int>("-0") == 0);
    CHECK_THAT(text_error(int{}, "12.5"), Catch::Contains("non-integral"));
    CHECK_THAT(text_error(std::int8_t{}, "300"), Catch::Contains("range"));
    CHECK_THAT(text_error(std::uint32_t{}, "-1"), Catch::Contains("range"));
    CHECK_THAT(text_error(std::int64_t{}, "99999999999999999999"), Catch::Contains("range"));
    CHECK_THAT(text_error(std::int64_t{}, "9223372036854775808.0"), Catch::Contains("range"));
    CHECK_THAT(text_error(std::uint64_t{}, "1e20"), Catch::Contains("range"));
    CHECK_THAT(text_error(int{}, "abc"), Catch::Contains("not an integer"));
    CHECK_THAT(text_error(int{}, " 1"), Catch::Contains("not an integer"));
    // Floating point: the decimal grammar, then the requested type's finite range.
    CHECK(reader.template text<double>("0.1") == 0.1);
    CHECK(reader.template text<double>("+1.5e3") == 1500.0);
    CHECK(reader.template text<float>("-2.5") == -2.5F);
    CHECK(reader.template text<double>("1e300") == 1e300);
    CHECK_THAT(text_error(float{}, "1e300"), Catch::Contains("out of the range"));
    CHECK_THAT(text_error(double{}, "1e400"), Catch::Contains("out of the range of double"));
    CHECK_THAT(text_error(double{}, "abc"), Catch::Contains("not a number"));
    CHECK_THAT(text_error(double{}, "e5"), Catch::Contains("not a number"));
    // NULL goes only into std::optional; the message names the column, never the value.
    CHECK_FALSE(reader.template null<std::optional<int>>().has_value());
    CHECK_FALSE(reader.template null<std::optional<double>>().has_value());
    CHECK(reader.template text<std::optional<int>>("5") == 5);
    const std::string null_message = error_of([&] { (void)reader.template null<int>(); });
    CHECK_THAT(null_message, Catch::StartsWith(backend + ": column 'c'") &&
                                 Catch::Contains("is NULL; read it as std::optional<T>"));
    CHECK_THAT(error_of([&] { (void)reader.template null<double>(); }), Catch::Contains("NULL"));
    const std::string range_message = text_error(std::int8_t{}, "12345");
    CHECK_THAT(range_message, Catch::StartsWith(backend + ": column 'c'"));
    CHECK(range_message.find("12345") == std::string::npos);
}

}  // namespace value_rules

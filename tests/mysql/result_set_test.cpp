// ResultSet conversions and failure classification: no server needed.
#include <dbpool/mysql/errors.hpp>
#include <dbpool/mysql/result_set.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::mysql::Blob;
using dbpool::mysql::Cell;
using dbpool::mysql::ResultSet;

namespace {

ResultSet sample() {
    // Two rows of (id, name, score, note): binary-protocol cells in row 0, text in row 1.
    return ResultSet(
        {"id", "name", "score", "note"},
        {Cell(std::int64_t{7}), Cell(std::string("ann")), Cell(2.5), Cell(), Cell(std::string("8")),
         Cell(std::string("bob")), Cell(std::string("-1.25")), Cell(std::string("hi"))},
        0);
}

std::string error_of(const std::function<void()>& action) {
    try {
        action();
    } catch (const Error& error) {
        return error.what();
    }
    return "";
}

}  // namespace

TEST_CASE("ResultSet gives rows and columns by index and name", "[mysql][result]") {
    const ResultSet rows = sample();
    REQUIRE(rows.size() == 2);
    CHECK(rows.columns() == std::vector<std::string>{"id", "name", "score", "note"});
    CHECK(rows.column_index("score") == 2);
    CHECK(rows[0].get<int>("id") == 7);
    CHECK(rows[1].get<long>("id") == 8);
    CHECK(rows[0].get<std::string>(1) == "ann");
    CHECK(rows[1].get<double>("score") == -1.25);
    CHECK(rows[0].get<float>("score") == 2.5F);
    CHECK(rows[0].is_null(3));
    CHECK_FALSE(rows[0].get<std::optional<std::string>>("note").has_value());
    CHECK(rows[1].get<std::optional<std::string>>("note") == std::optional<std::string>("hi"));
    CHECK(rows[0].get<std::string>("id") == "7");
    CHECK(rows[0].get<std::string>("score") == "2.5");
    CHECK(rows.scalar<int>() == 7);
    int seen = 0;
    for (const auto row : rows)
        seen += row.get<int>(0);
    CHECK(seen == 15);
}

TEST_CASE("ResultSet reports NULL, range and conversion errors clearly", "[mysql][result]") {
    const ResultSet rows = sample();
    CHECK_THAT(error_of([&] { (void)rows[0].get<std::string>("note"); }),
               Catch::Contains("'note' is NULL") && Catch::Contains("std::optional"));
    CHECK_THAT(error_of([&] { (void)rows[0].get<int>("name"); }),
               Catch::Contains("'name'") && Catch::Contains("not an integer"));
    CHECK_THAT(error_of([&] { (void)rows[0].get<int>("score"); }), Catch::Contains("non-integral"));
    CHECK_THAT(error_of([&] { (void)rows[0].get<int>("missing"); }),
               Catch::Contains("no column 'missing'"));
    CHECK_THAT(error_of([&] { (void)rows[5]; }), Catch::Contains("row 5 out of range"));
    CHECK_THAT(error_of([&] { (void)rows[0].get<int>(9); }), Catch::Contains("column 9"));

    const ResultSet big({"v"}, {Cell(std::int64_t{300}), Cell(std::uint64_t{1} << 63)}, 0);
    CHECK_THAT(error_of([&] { (void)big[0].get<std::int8_t>(0); }), Catch::Contains("range"));
    CHECK_THAT(error_of([&] { (void)big[1].get<std::int64_t>(0); }), Catch::Contains("range"));
    CHECK(big[1].get<std::uint64_t>(0) == (std::uint64_t{1} << 63));
    CHECK(big[0].get<std::uint16_t>(0) == 300);

    try {
        (void)rows[0].get<std::string>("note");
        FAIL("NULL read into a non-optional");
    } catch (const Error& error) {
        CHECK(error.code() == dbpool::ErrorCode::usage);  // a program error, not the server's
    }
}

TEST_CASE("ResultSet converts bool and blobs", "[mysql][result]") {
    const ResultSet rows(
        {"flag", "data"},
        {Cell(std::int64_t{1}), Cell(std::string("\x00\xff", 2)), Cell(std::string("0")), Cell()},
        0);
    CHECK(rows[0].get<bool>(0));
    CHECK_FALSE(rows[1].get<bool>(0));
    const Blob data = rows[0].get<Blob>(1);
    REQUIRE(data.size() == 2);
    CHECK(data[0] == std::byte{0});
    CHECK(data[1] == std::byte{0xff});
    CHECK_FALSE(rows[1].get<std::optional<Blob>>(1).has_value());
}

TEST_CASE("classify_failure follows the error numbers", "[mysql][classify]") {
    using dbpool::mysql::classify_exception;
    const auto with = [](int number) {
        return classify_exception(Error(dbpool::mysql::is_connection_error(number)
                                            ? ErrorCode::connection_lost
                                            : ErrorCode::database,
                                        "x", number));
    };
    CHECK(with(2006) == Failure::broken_not_sent);
    for (int number : {2013, 2055, 4031, 1053, 1927, 2002, 2003, 2014, 2026, 1158}) {
        INFO(number);
        CHECK(with(number) == Failure::broken);
    }
    for (int number : {1064, 1062, 1146, 1213, 1205, 1045, 0}) {
        INFO(number);
        CHECK(with(number) == Failure::none);
    }
    CHECK(classify_exception(std::runtime_error("other")) == Failure::none);
    CHECK(classify_exception(Error(ErrorCode::connection_lost, "no number")) == Failure::broken);
    CHECK(classify_exception(Error(ErrorCode::timeout, "pool")) == Failure::none);
}

// ResultSet conversions, failure classification and message building: no server needed.
#include <dbpool/mysql/errors.hpp>
#include <dbpool/mysql/result_set.hpp>
#include <dbpool/mysql/server_info.hpp>
#include <dbpool/mysql/session.hpp>

#include <catch2/catch.hpp>

#include "../value_rules_cases.hpp"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::mysql::Blob;
using dbpool::mysql::Cell;
using dbpool::mysql::ResultSet;
using dbpool::mysql::Row;
using dbpool::mysql::ServerFlavor;
using dbpool::mysql::ServerInfo;

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
    for (int number : {2013, 2055, 1053, 1153, 1927, 2002, 2003, 2014, 2026, 1158}) {
        INFO(number);
        CHECK(with(number) == Failure::broken);
    }
    for (int number : {1064, 1062, 1146, 1213, 1205, 1045, 4031, 0}) {
        INFO(number);
        CHECK(with(number) == Failure::none);
    }
    CHECK(classify_exception(std::runtime_error("other")) == Failure::none);
    CHECK(classify_exception(Error(ErrorCode::connection_lost, "no number")) == Failure::broken);
    CHECK(classify_exception(Error(ErrorCode::timeout, "pool")) == Failure::none);
}

TEST_CASE("classify_error: server flavour, SQLSTATE class 08 and cluster errors",
          "[mysql][classify]") {
    using dbpool::mysql::classify_error;
    const ServerInfo mariadb = ServerInfo::parse("10.11.6-MariaDB-0+deb12u1");
    const ServerInfo mysql_8_0_23 = ServerInfo::parse("8.0.23");
    const ServerInfo mysql_8_0_24 = ServerInfo::parse("8.0.24-log");
    const ServerInfo mysql_9 = ServerInfo::parse("9.1.0");

    // 4031: an idle disconnect only on MySQL 8.0.24+; a trigger error on MariaDB.
    CHECK(classify_error(4031, "HY000", "", mysql_8_0_24).code == ErrorCode::connection_lost);
    CHECK(classify_error(4031, "HY000", "", mysql_8_0_24).failure == Failure::broken);
    CHECK(classify_error(4031, "HY000", "", mysql_9).failure == Failure::broken);
    CHECK(classify_error(4031, "HY000", "", mysql_8_0_23).failure == Failure::none);
    CHECK(classify_error(4031, "HY000", "", mariadb).code == ErrorCode::database);
    CHECK(classify_error(4031, "HY000", "", mariadb).failure == Failure::none);
    CHECK(classify_error(4031, "HY000", "", ServerInfo{}).failure == Failure::none);

    // SQLSTATE class 08 is broken whatever the number; 1153 closes the connection.
    CHECK(classify_error(1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes",
                         mariadb)
              .failure == Failure::broken);
    CHECK(classify_error(9999, "08004", "", mariadb).failure == Failure::broken);
    CHECK(classify_error(9999, "08S01", "", mariadb).code == ErrorCode::connection_lost);
    CHECK(classify_error(9999, "HY000", "", mariadb).failure == Failure::none);

    // Galera's "node not ready" is 1047/08S01 but neither broken nor a statement error.
    const auto wsrep = classify_error(
        1047, "08S01", "WSREP has not yet prepared node for application use", mariadb);
    CHECK(wsrep.code == ErrorCode::node_unavailable);
    CHECK(wsrep.failure == Failure::none);
    CHECK(classify_error(1047, "08S01", "Unknown command", mariadb).failure == Failure::broken);

    CHECK(classify_error(1213, "40001", "Deadlock found", mariadb).code ==
          ErrorCode::transaction_conflict);
    CHECK(classify_error(1213, "40001", "Deadlock found", mariadb).failure == Failure::none);
    const auto read_only = classify_error(
        1290, "HY000",
        "The MariaDB server is running with the --read-only option so it cannot execute this "
        "statement",
        mariadb);
    CHECK(read_only.code == ErrorCode::read_only);
    CHECK(read_only.failure == Failure::none);
    CHECK(classify_error(1290, "HY000", "... --secure-file-priv option ...", mariadb).code ==
          ErrorCode::database);
    CHECK(classify_error(1836, "HY000", "Running in read-only mode", mariadb).code ==
          ErrorCode::read_only);
    CHECK(classify_error(2006, "HY000", "", mariadb).failure == Failure::broken_not_sent);
}

TEST_CASE("ServerInfo parses MySQL and MariaDB version strings", "[mysql][classify]") {
    const auto mariadb = ServerInfo::parse("10.11.6-MariaDB-0+deb12u1");
    CHECK(mariadb.flavor == ServerFlavor::mariadb);
    CHECK(mariadb.version == 101106);
    // What MariaDB sends to clients that are not its own.
    const auto prefixed = ServerInfo::parse("5.5.5-10.6.12-MariaDB-log");
    CHECK(prefixed.flavor == ServerFlavor::mariadb);
    CHECK(prefixed.version == 100612);
    const auto mysql = ServerInfo::parse("8.0.36-0ubuntu0.22.04.1");
    CHECK(mysql.flavor == ServerFlavor::mysql);
    CHECK(mysql.version == 80036);
    CHECK(mysql.is_mysql_at_least(80024));
    CHECK_FALSE(mariadb.is_mysql_at_least(80024));
    CHECK(ServerInfo::parse("").version == 0);
    CHECK(ServerInfo::parse("garbage").version == 0);
}

TEST_CASE("error messages name the statement without literals or the password",
          "[mysql][classify]") {
    using dbpool::mysql::detail::make_error;
    using dbpool::mysql::detail::statement_excerpt;
    CHECK(statement_excerpt("SELECT *\n  FROM accounts\tWHERE id = ?") ==
          "SELECT * FROM accounts WHERE id = ?");
    CHECK(statement_excerpt("CREATE USER u IDENTIFIED BY 's3cr''et' -- x") ==
          "CREATE USER u IDENTIFIED BY '...' -- x");
    CHECK(statement_excerpt("SET PASSWORD = \"a\\\"b\"") == "SET PASSWORD = \"...\"");
    CHECK(statement_excerpt("SELECT 'unterminated") == "SELECT '...");
    const std::string long_sql = "SELECT " + std::string(300, 'x');
    const std::string excerpt = statement_excerpt(long_sql);
    CHECK(excerpt.size() <= dbpool::mysql::detail::statement_excerpt_limit + 3);
    CHECK(excerpt.substr(excerpt.size() - 3) == "...");
    // A cut never splits a UTF-8 character ("\xC3\xA9" is one).
    std::string accents = "SELECT '";
    accents += "x";
    for (int i = 0; i < 200; ++i)
        accents += "\xC3\xA9";
    for (int shift = 0; shift < 2; ++shift) {
        std::string sql = "SELECT " + std::string(static_cast<std::size_t>(shift), 'y') + " ";
        for (int i = 0; i < 200; ++i)
            sql += "\xC3\xA9";
        const std::string cut = statement_excerpt(sql);
        REQUIRE(cut.size() > 3);
        const std::string body = cut.substr(0, cut.size() - 3);
        for (std::size_t i = 0; i < body.size(); ++i) {
            const auto byte = static_cast<unsigned char>(body[i]);
            if (byte == 0xC3) {
                REQUIRE(i + 1 < body.size());
                CHECK(static_cast<unsigned char>(body[i + 1]) == 0xA9);
            }
            if (byte == 0xA9) CHECK((i > 0 && static_cast<unsigned char>(body[i - 1]) == 0xC3));
        }
    }
    CHECK(statement_excerpt(accents) == "SELECT '...");

    const Error error = make_error("prepare", "SELECT * FROM accounts WHERE name = 'x'", 1146,
                                   "42S02", "Table 'shop.accounts' doesn't exist",
                                   ServerInfo::parse("10.11.6-MariaDB"), "hunter22");
    CHECK(std::string(error.what()) ==
          "mysql: prepare of \"SELECT * FROM accounts WHERE name = '...'\" failed: [1146/42S02] "
          "Table 'shop.accounts' doesn't exist");
    CHECK(error.code() == ErrorCode::database);
    CHECK(error.native_code() == 1146);
    CHECK(error.sqlstate() == "42S02");
    const Error echoed = make_error("query", "", 1064, "42000", "near 'hunter22' at line 1",
                                    ServerInfo{}, "hunter22");
    CHECK(std::string(echoed.what()).find("hunter22") == std::string::npos);
    CHECK_THAT(echoed.what(), Catch::Contains("<password>"));

    // Issue 20: user "app" with password "app" must not read "<password>@host" (nor show the
    // password as the user name), and a short password is masked where a message quotes it on
    // its own, never inside other text.
    using dbpool::mysql::detail::redact;
    CHECK(redact("mysql: cannot connect to app@db:3306: Access denied for user 'app'@'db'", "app",
                 "app") ==
          "mysql: cannot connect to <user>@db:3306: Access denied for user '<user>'@'db'");
    CHECK(redact("cannot connect to shop@db: user 'shop'", "Sekr1t", "shop") ==
          "cannot connect to shop@db: user 'shop'");
    CHECK(redact("for user 'ab'@'db'", "ab", "ab") == "for user '<user>'@'db'");
    CHECK(redact("near 'app' and xappx", "app", "bob") == "near '<password>' and x<password>x");
    CHECK(redact("near 'ab' at 127.0.0.1 tab", "ab", "u") == "near '<password>' at 127.0.0.1 tab");
    CHECK(redact("near '1' at 127.0.0.1", "1", "u") == "near '<password>' at 127.0.0.1");
    const Error same = make_error("query", "", 1064, "42000", "near 'app' for user 'app'",
                                  ServerInfo{}, "app", "app");
    CHECK(std::string(same.what()).find("<password>") == std::string::npos);
    CHECK(std::string(same.what()).find("app") == std::string::npos);
    // A message echoing a URL: the password's position is masked, whatever its length.
    for (const char* secret : {"hunter22", "pw", "x", "p@:/?s"}) {
        const Error url =
            make_error("connect", "", 2005, "HY000",
                       std::string("bad host in mysql://app:") + secret + "@db:3306/shop",
                       ServerInfo{}, secret);
        CHECK_THAT(url.what(), Catch::Contains("mysql://app:<password>@db:3306/shop"));
    }
}

TEST_CASE("connect errors say the errno in words", "[mysql][classify]") {
    using dbpool::mysql::detail::errno_in_words;
    CHECK(errno_in_words("Can't connect to server on '127.0.0.1' (111)") == "connection refused");
    CHECK(errno_in_words("Can't connect to local server through socket '/x.sock' (2)") ==
          "no such file or directory");
    CHECK(errno_in_words("Access denied for user 'u'@'h' (using password: YES)").empty());
    CHECK(errno_in_words("").empty());
    CHECK(errno_in_words("(x)").empty());
}

TEST_CASE("rows keep their result alive", "[mysql][result]") {
    // The one-liners from the issue: a Row taken from a temporary ResultSet used to point into
    // it (stack-use-after-scope under ASan).
    const auto make = [] {
        return ResultSet({"name"}, {Cell(std::string("ann")), Cell(std::string("bob"))}, 0);
    };
    auto row = make()[0];
    CHECK(row.get<std::string>("name") == "ann");
    CHECK(row.get<std::string_view>("name") == "ann");  // a view into data `row` keeps alive
    Row copy = make().row(1);
    CHECK(copy.get<std::string>(0) == "bob");
    CHECK(make()[1].get<std::string>(0) == "bob");
    const Cell& cell = make()[0].cell(0);  // a copy, its lifetime extended
    CHECK(std::get<std::string>(cell) == "ann");
    CHECK(make().columns() == std::vector<std::string>{"name"});
    std::vector<Row> kept;
    for (auto each : make())
        kept.push_back(each);
    CHECK(kept.at(1).get<std::string>("name") == "bob");
    const ResultSet rows = make();
    const auto first = rows[0];
    CHECK(first.get<std::string_view>(0) == "ann");  // a named row: views are fine
    for (const auto& each : rows)
        CHECK(!each.get<std::string_view>(0).empty());
    CHECK(ResultSet().empty());
    CHECK(ResultSet().columns().empty());
    CHECK_THROWS_AS(ResultSet({"a", "b"}, {Cell(std::int64_t{1})}, 0), Error);
}

TEST_CASE("floating-point columns: one range rule for both protocols", "[mysql][result]") {
    // 1e300 as a float used to be inf over the binary protocol and "not a number" over text.
    const ResultSet rows({"big", "small", "text_big", "text_small", "huge_text"},
                         {Cell(1e300), Cell(2.5), Cell(std::string("1e300")),
                          Cell(std::string("-2.5")), Cell(std::string("1e400"))},
                         0);
    const auto row = rows[0];
    CHECK_THAT(error_of([&] { (void)row.get<float>("big"); }),
               Catch::Contains("'big'") && Catch::Contains("out of the range"));
    CHECK_THAT(error_of([&] { (void)row.get<float>("text_big"); }),
               Catch::Contains("'text_big'") && Catch::Contains("out of the range"));
    CHECK(row.get<double>("big") == 1e300);
    CHECK(row.get<double>("text_big") == 1e300);
    CHECK(row.get<float>("small") == 2.5F);
    CHECK(row.get<float>("text_small") == -2.5F);
    CHECK(row.get<long double>("text_small") == -2.5L);
    CHECK_THAT(error_of([&] { (void)row.get<double>("huge_text"); }),
               Catch::Contains("'huge_text'") && Catch::Contains("out of the range"));
    try {
        (void)row.get<float>("big");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::usage);
    }
    const ResultSet text({"v"},
                         {Cell(std::string("1.5e3")), Cell(std::string("abc")),
                          Cell(std::string("inf")), Cell(std::string(" 1"))},
                         0);
    CHECK(text[0].get<float>(0) == 1500.0F);
    for (std::size_t i = 1; i < 4; ++i) {
        INFO(i);
        CHECK_THAT(error_of([&] { (void)text[i].get<double>(0); }),
                   Catch::Contains("not a number"));
    }
}

TEST_CASE("integer reads of DOUBLE cells check the exact range", "[mysql][result]") {
    // 2^63 passed the old check (double(INT64_MAX) rounds up to 2^63) and the cast was undefined
    // behaviour (clang's -fsanitize=float-cast-overflow reports it).
    const double two_63 = 9223372036854775808.0;
    const double two_64 = 18446744073709551616.0;
    const ResultSet rows({"v"},
                         {Cell(two_63), Cell(-two_63), Cell(two_64), Cell(-1.0), Cell(1.5),
                          Cell(std::nan("")), Cell(4294967296.0), Cell(-0.0)},
                         0);
    CHECK_THAT(error_of([&] { (void)rows[0].get<std::int64_t>(0); }), Catch::Contains("range"));
    CHECK(rows[0].get<std::uint64_t>(0) == (std::uint64_t{1} << 63));
    CHECK(rows[1].get<std::int64_t>(0) == std::numeric_limits<std::int64_t>::min());
    CHECK_THAT(error_of([&] { (void)rows[2].get<std::uint64_t>(0); }), Catch::Contains("range"));
    CHECK_THAT(error_of([&] { (void)rows[3].get<std::uint32_t>(0); }), Catch::Contains("range"));
    CHECK_THAT(error_of([&] { (void)rows[4].get<int>(0); }), Catch::Contains("non-integral"));
    CHECK_THAT(error_of([&] { (void)rows[5].get<long>(0); }), Catch::Contains("non-integral"));
    CHECK_THAT(error_of([&] { (void)rows[6].get<std::int32_t>(0); }), Catch::Contains("range"));
    CHECK(rows[6].get<std::int64_t>(0) == 4294967296);
    CHECK(rows[7].get<unsigned>(0) == 0U);
    // Around 2^52 (from there on every double is whole) and infinities (whole, out of range).
    const double inf = std::numeric_limits<double>::infinity();
    const ResultSet edges({"v"},
                          {Cell(4503599627370495.5), Cell(4503599627370496.0), Cell(-inf),
                           Cell(inf), Cell(-4503599627370497.0), Cell(0.5), Cell(-1e-300)},
                          0);
    CHECK_THAT(error_of([&] { (void)edges[0].get<std::int64_t>(0); }),
               Catch::Contains("non-integral"));
    CHECK(edges[1].get<std::int64_t>(0) == 4503599627370496);
    CHECK_THAT(error_of([&] { (void)edges[2].get<std::int64_t>(0); }), Catch::Contains("range"));
    CHECK_THAT(error_of([&] { (void)edges[3].get<std::uint64_t>(0); }), Catch::Contains("range"));
    CHECK(edges[4].get<std::int64_t>(0) == -4503599627370497);
    CHECK_THAT(error_of([&] { (void)edges[5].get<int>(0); }), Catch::Contains("non-integral"));
    CHECK_THAT(error_of([&] { (void)edges[6].get<int>(0); }), Catch::Contains("non-integral"));
    // Infinity is a float too; only finite numbers beyond the type's range are refused.
    CHECK(edges[3].get<float>(0) == std::numeric_limits<float>::infinity());
    CHECK(edges[2].get<double>(0) == -inf);
    const ResultSet text({"v"}, {Cell(std::string("99999999999999999999"))}, 0);
    CHECK_THAT(error_of([&] { (void)text[0].get<std::int64_t>(0); }), Catch::Contains("range"));
}

// Issue 20 (as for PostgreSQL): a huge timeout must mean no limit. A cast to unsigned int
// wrapped (2^32 + 5 s became 5 s) and MariaDB Connector/C overflows above INT_MAX / 1000 s.
TEST_CASE("client timeouts: a huge one is no limit, never a wrapped small one", "[mysql]") {
    using dbpool::mysql::detail::client_timeout;
    using dbpool::mysql::detail::longest_client_timeout;
    using std::chrono::seconds;
    CHECK(client_timeout(seconds(30), false) == 30);
    CHECK(client_timeout(seconds(0), false) == 0);
    CHECK(client_timeout(longest_client_timeout, false) == 2147483);
    CHECK(client_timeout(seconds((1LL << 32) + 5), false) == 0);  // not 5
    CHECK(client_timeout(seconds::max(), false) == 0);            // read/write: none
    CHECK(client_timeout(seconds::max(), true) == 2147483);       // connect: the longest
    CHECK(client_timeout(seconds((1LL << 32) + 5), true) == 2147483);
    CHECK(client_timeout(seconds(10), true) == 10);
}

// The rules shared with the PostgreSQL backend (tests/value_rules_cases.hpp), through the text
// protocol's cells; the binary protocol's numbers meet the same rules in the tests above.
struct MysqlTextReader {
    template <class T>
    T text(const std::string& value) const {
        const ResultSet rows({"c"}, {Cell(value)}, 0);
        return rows[0].get<T>(0);
    }
    template <class T>
    T null() const {
        const ResultSet rows({"c"}, {Cell()}, 0);
        return rows[0].get<T>(0);
    }
};

TEST_CASE("values follow the rules shared with the PostgreSQL backend", "[mysql][result]") {
    value_rules::check(MysqlTextReader{}, "mysql");
}

// The PostgreSQL backend without a server: connection strings (and that no password ever shows
// up in a message), how arguments are encoded, how fields convert, how failures classify, and
// the statement cache's bookkeeping.
#include <dbpool/pg.hpp>

#include <catch2/catch.hpp>

#include "../value_rules_cases.hpp"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::pg::ClientError;
using dbpool::pg::ConnectOptions;

namespace {

// The message of the invalid_options error `options.validate()` throws.
std::string invalid(const ConnectOptions& options) {
    try {
        options.validate();
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::invalid_options);
        return error.what();
    }
    FAIL("validate() accepted the options");
    return {};
}

dbpool::pg::detail::Field field(const std::string& text, Oid type, const std::string& column,
                                bool null = false) {
    return dbpool::pg::detail::Field{text.data(), text.size(), type, null, column};
}

template <class T>
T convert(const std::string& text, Oid type = dbpool::pg::oid::text, bool null = false) {
    static const std::string column = "c";
    return dbpool::pg::detail::convert<T>(field(text, type, column, null));
}

ConnectOptions conninfo(const std::string& text) {
    ConnectOptions options;
    options.conninfo = text;
    return options;
}

template <class T>
dbpool::pg::detail::Param encoded(const T& value) {
    dbpool::pg::detail::Param param;
    dbpool::pg::detail::encode(param, value);
    return param;
}

std::string text_of(const dbpool::pg::detail::Param& param) {
    return param.value == nullptr ? "<NULL>" : std::string(param.value);
}

}  // namespace

TEST_CASE("connection strings: URLs and keywords pass, libpq's complaints are redacted",
          "[pg][unit]") {
    CHECK_NOTHROW(ConnectOptions::from_url("postgresql://u:pw@127.0.0.1:5432/db?sslmode=require"));
    CHECK_NOTHROW(ConnectOptions::from_url("host=/tmp port=5432 user=u dbname=db"));
    CHECK_NOTHROW(ConnectOptions::from_url(""));  // libpq's defaults and PG* variables

    const std::string secret = "s3cr3t-Pa55word";
    for (const std::string& bad :
         {"postgresql://u:" + secret + "@[::1/db", "host=h password " + secret,
          "host=h password='" + secret, "postgresql://u:" + secret + "@h/db?" + secret + "=1",
          "postgresql://u:%zz" + secret + "@h/db", std::string("host=h ") + secret + "=x"}) {
        INFO(bad);
        const std::string message = invalid(conninfo(bad));
        CHECK(message.find("connection string is invalid") != std::string::npos);
        CHECK(message.find(secret) == std::string::npos);
        CHECK(message.find("s3cr3t") == std::string::npos);
    }
    // A misspelt keyword is named when it cannot be a password: libpq keywords stay readable.
    CHECK_THAT(invalid(conninfo("host=h sslmode")), Catch::Contains("\"sslmode\""));
}

TEST_CASE("ConnectOptions::validate names the wrong field", "[pg][unit]") {
    ConnectOptions good = conninfo("host=h");
    CHECK_NOTHROW(good.validate());

    ConnectOptions bad = good;
    bad.conninfo = std::string("host=h\0 password=x", 18);
    CHECK_THAT(invalid(bad), Catch::Contains("NUL"));
    bad = good;
    bad.password = std::string("pw\0rest", 7);
    const std::string message = invalid(bad);
    CHECK_THAT(message, Catch::Contains("password contains a NUL"));
    CHECK(message.find("rest") == std::string::npos);
    bad = good;
    bad.connect_timeout = std::chrono::milliseconds(0);
    CHECK_THAT(invalid(bad), Catch::Contains("connect_timeout"));
    bad = good;
    bad.read_timeout = std::chrono::milliseconds(-1);
    CHECK_THAT(invalid(bad), Catch::Contains("read_timeout"));
    bad = good;
    bad.write_timeout = std::chrono::milliseconds(-1);
    CHECK_THAT(invalid(bad), Catch::Contains("write_timeout"));
    bad = good;
    bad.init_statements = {"SET x = 1", " ; "};
    CHECK_THAT(invalid(bad), Catch::Contains("empty statement"));
    bad = good;
    bad.statement_cache_size = 1000000;
    CHECK_THAT(invalid(bad), Catch::Contains("statement_cache_size"));
    bad = good;
    bad.conninfo = "host=h connect_timeout=soon";
    CHECK_THAT(invalid(bad), Catch::Contains("connect_timeout"));
}

TEST_CASE("describe() and the connect timeout come from the connection string", "[pg][unit]") {
    ConnectOptions options =
        conninfo("postgresql://app:hunter22@db.example:6543/shop?connect_timeout=7");
    CHECK(options.describe() == "app@db.example:6543/shop");
    CHECK(options.effective_connect_timeout() == std::chrono::seconds(7));
    options.conninfo = "host=/run/pg dbname=x";
    CHECK(options.describe() == "/run/pg/x");
    options.conninfo = "dbname=x connect_timeout=0";  // libpq: forever; dbpool keeps its own
    CHECK(options.effective_connect_timeout() == options.connect_timeout);
    options.conninfo = "port=5";
    CHECK(options.describe() == "(default host):5");
}

TEST_CASE("the connector's bound: known only when no host name must be resolved", "[pg][unit]") {
    using std::chrono::seconds;
    const auto bound = [](const ConnectOptions& options) {
        return dbpool::pg::connector(options).connect_bound();
    };
    ConnectOptions options = conninfo("postgresql://app:pw@127.0.0.1:5432/shop");
    CHECK(bound(options) == options.connect_timeout);
    options.conninfo = "postgresql://app@[::1]:5432/shop?connect_timeout=3";
    CHECK(bound(options) == seconds(3));
    options.conninfo = "host=/run/postgresql dbname=x";  // a unix socket directory
    CHECK(bound(options) == options.connect_timeout);
    options.conninfo = "host=10.0.0.1,/run/pg,::1 dbname=x";  // every host of a list
    CHECK(bound(options).has_value());
    options.conninfo = "host=db.example hostaddr=10.0.0.1 dbname=x";  // hostaddr: no lookup
    CHECK(bound(options).has_value());
    // A name has to be resolved, and resolution has no bound: connects stay on pool workers.
    options.conninfo = "postgresql://app@db.example/shop";
    CHECK_FALSE(bound(options).has_value());
    options.conninfo = "host=10.0.0.1,localhost dbname=x";
    CHECK_FALSE(bound(options).has_value());
    // Init statements add a write and a read bound each; without those bounds, none at all.
    options.conninfo = "host=127.0.0.1";
    options.init_statements = {"SET a = 1", "SET b = 2"};
    CHECK(bound(options) ==
          options.connect_timeout + 2 * (options.read_timeout + options.write_timeout));
    options.read_timeout = seconds(0);
    CHECK_FALSE(bound(options).has_value());
}

TEST_CASE("server errors map to error codes and failure classes", "[pg][unit]") {
    using dbpool::pg::classify_exception;
    using dbpool::pg::error_code_for;
    using dbpool::pg::is_connection_sqlstate;
    for (const char* state :
         {"08000", "08003", "08006", "08P01", "57P01", "57P02", "57P03", "57P04", "57P05"}) {
        INFO(state);
        CHECK(is_connection_sqlstate(state));
        CHECK(error_code_for(state) == ErrorCode::connection_lost);
    }
    for (const char* state : {"57014", "57P06", "23505", "42601", "", "0800"}) {
        INFO(state);
        CHECK_FALSE(is_connection_sqlstate(state));
    }
    CHECK(error_code_for("40001") == ErrorCode::transaction_conflict);
    CHECK(error_code_for("40P01") == ErrorCode::transaction_conflict);
    CHECK(error_code_for("25006") == ErrorCode::read_only);
    CHECK(error_code_for("23505") == ErrorCode::database);
    CHECK(error_code_for("57014") == ErrorCode::database);  // statement_timeout, cancel

    const auto error = [](ErrorCode code, ClientError client, const char* state) {
        return Error(code, "x", dbpool::pg::native(client), state);
    };
    CHECK(classify_exception(error(ErrorCode::connection_lost, ClientError::not_sent, "57P01")) ==
          Failure::broken_not_sent);
    CHECK(classify_exception(error(ErrorCode::connection_lost, ClientError::lost, "")) ==
          Failure::broken);
    CHECK(classify_exception(error(ErrorCode::connection_lost, ClientError::timed_out, "")) ==
          Failure::broken);
    CHECK(classify_exception(error(ErrorCode::connection_lost, ClientError::none, "57P01")) ==
          Failure::broken);
    // An ERROR-level 08P01 (a bind with the wrong argument count) leaves the session usable.
    CHECK(classify_exception(error(ErrorCode::database, ClientError::none, "08P01")) ==
          Failure::none);
    CHECK(classify_exception(error(ErrorCode::transaction_conflict, ClientError::none, "40001")) ==
          Failure::none);
    CHECK(classify_exception(std::runtime_error("other")) == Failure::none);
    CHECK(dbpool::pg::Connection::classify_failure(error(
              ErrorCode::connection_lost, ClientError::not_sent, "")) == Failure::broken_not_sent);
}

TEST_CASE("messages: SQLSTATE taken from verbose connect errors, passwords masked", "[pg][unit]") {
    std::string message =
        "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  28P01: password "
        "authentication failed for user \"app\"\nLOCATION:  auth_failed, auth.c:323\n";
    CHECK(dbpool::pg::detail::take_sqlstate(message) == "28P01");
    CHECK(dbpool::pg::detail::one_line(message) ==
          "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password "
          "authentication failed for user \"app\"");
    std::string plain = "could not connect: Connection refused";
    CHECK(dbpool::pg::detail::take_sqlstate(plain).empty());
    CHECK(plain == "could not connect: Connection refused");

    dbpool::detail::Secrets secrets;
    secrets.whole = {"hunter22", ""};  // an empty secret masks nothing
    CHECK(dbpool::detail::redact("user=app password=hunter22 and hunter22 again", secrets, "***") ==
          "user=app password=*** and *** again");
    CHECK(dbpool::pg::detail::one_line("a\n\tb\n  c\n") == "a b c");
}

TEST_CASE("arguments: typed numbers and booleans, inferred text, NULLs keep their type",
          "[pg][unit]") {
    namespace oid = dbpool::pg::oid;
    using dbpool::pg::detail::type_oid;
    static_assert(type_oid<std::int16_t>() == oid::int2);
    static_assert(type_oid<std::int32_t>() == oid::int4);
    static_assert(type_oid<std::int64_t>() == oid::int8);
    static_assert(type_oid<std::uint8_t>() == oid::int2);
    static_assert(type_oid<std::uint16_t>() == oid::int4);
    static_assert(type_oid<std::uint32_t>() == oid::int8);
    static_assert(type_oid<bool>() == oid::boolean);
    static_assert(type_oid<float>() == oid::float4);
    static_assert(type_oid<double>() == oid::float8);
    static_assert(type_oid<std::string>() == oid::unspecified);
    static_assert(type_oid<std::optional<int>>() == oid::int4);
    static_assert(type_oid<dbpool::pg::Blob>() == oid::bytea);

    CHECK(text_of(encoded(std::numeric_limits<std::int64_t>::min())) == "-9223372036854775808");
    CHECK(text_of(encoded(std::uint64_t{9223372036854775807ULL})) == "9223372036854775807");
    CHECK_THROWS_WITH(encoded(std::numeric_limits<std::uint64_t>::max()),
                      Catch::Contains("does not fit bigint"));
    CHECK(text_of(encoded(true)) == "t");
    CHECK(text_of(encoded(false)) == "f");
    CHECK(text_of(encoded(0.1)) == "0.1");  // shortest text that reads back exactly
    CHECK(text_of(encoded(1.5F)) == "1.5");
    CHECK(text_of(encoded(std::numeric_limits<double>::infinity())) == "inf");
    CHECK(text_of(encoded(std::string("it's"))) == "it's");
    CHECK(text_of(encoded(std::string_view("view"))) == "view");
    CHECK(text_of(encoded('c')) == "c");
    CHECK(text_of(encoded(std::optional<int>())) == "<NULL>");
    CHECK(encoded(std::optional<int>()).type == oid::int4);
    CHECK(text_of(encoded(std::nullopt)) == "<NULL>");
    CHECK(text_of(encoded(nullptr)) == "<NULL>");
    const char* none = nullptr;
    CHECK(text_of(encoded(none)) == "<NULL>");
    CHECK(text_of(encoded(dbpool::pg::Blob{std::byte{0}, std::byte{0xAB}, std::byte{0x10}})) ==
          "\\x00ab10");
    CHECK_THROWS_WITH(encoded(std::string("a\0b", 3)), Catch::Contains("NUL"));
    CHECK_THROWS_AS(encoded(std::string_view("a\0b", 3)), Error);
}

TEST_CASE("fields convert from the server's text format", "[pg][unit]") {
    namespace oid = dbpool::pg::oid;
    CHECK(convert<int>("42", oid::int4) == 42);
    CHECK(convert<std::int64_t>("-9223372036854775808", oid::int8) ==
          std::numeric_limits<std::int64_t>::min());
    CHECK(convert<std::int16_t>("-32768", oid::int2) == -32768);
    CHECK_THROWS_WITH(convert<std::int8_t>("300", oid::int4), Catch::Contains("range"));
    CHECK_THROWS_WITH(convert<int>("12.5", oid::numeric), Catch::Contains("non-integral"));
    CHECK(convert<int>("12.000", oid::numeric) == 12);
    CHECK_THROWS_WITH(convert<int>("t", oid::boolean), Catch::Contains("read it as bool"));
    CHECK(convert<bool>("t", oid::boolean));
    CHECK_FALSE(convert<bool>("f", oid::boolean));
    CHECK_THROWS_AS(convert<bool>("maybe"), Error);
    CHECK(convert<double>("0.1", oid::float8) == 0.1);
    CHECK(convert<double>("12.345", oid::numeric) == Approx(12.345));
    CHECK(std::isnan(convert<double>("NaN", oid::float8)));
    CHECK(convert<double>("Infinity", oid::float8) == std::numeric_limits<double>::infinity());
    CHECK(convert<float>("-Infinity", oid::float4) == -std::numeric_limits<float>::infinity());
    CHECK_THROWS_AS(convert<double>("abc"), Error);
    CHECK(convert<std::string>("héllo ✓") == "héllo ✓");
    CHECK(convert<std::string_view>("view") == "view");
    CHECK(convert<std::string>("\\x00ff41", oid::bytea) == std::string("\0\xff"
                                                                       "A",
                                                                       3));
    CHECK(convert<dbpool::pg::Blob>("\\x00ff", oid::bytea) ==
          dbpool::pg::Blob{std::byte{0}, std::byte{0xff}});
    CHECK(convert<std::vector<unsigned char>>("ab") == std::vector<unsigned char>{'a', 'b'});
    CHECK(convert<std::string>("a\\\\b\\001", oid::bytea) == std::string("a\\b\x01", 4));
    CHECK_THROWS_WITH(convert<std::string>("\\x0", oid::bytea), Catch::Contains("bytea"));
    CHECK_THROWS_WITH(convert<std::string>("\\xzz", oid::bytea), Catch::Contains("bytea"));
    CHECK_THROWS_WITH(convert<std::string_view>("\\x00", oid::bytea), Catch::Contains("Blob"));

    CHECK_FALSE(convert<std::optional<int>>("", oid::int4, true).has_value());
    CHECK(convert<std::optional<int>>("5", oid::int4) == 5);
    try {
        convert<int>("", oid::int4, true);
        FAIL("NULL read as int");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::usage);
        CHECK_THAT(error.what(), Catch::Contains("NULL") && Catch::Contains("'c'"));
    }
}

TEST_CASE("an empty ResultSet has no rows, columns or tag", "[pg][unit]") {
    const dbpool::pg::ResultSet empty;
    CHECK(empty.empty());
    CHECK(empty.columns().empty());
    CHECK(empty.command_tag().empty());
    CHECK(empty.native_handle() == nullptr);
    CHECK(empty.begin() == empty.end());
    CHECK_THROWS_AS(empty.row(0), Error);
    CHECK_THROWS_AS(empty.scalar<int>(), Error);
    CHECK_THROWS_AS(empty.column_index("x"), Error);
}

TEST_CASE("statement_cache_size in the connection string is dbpool's, taken out for libpq",
          "[pg][unit][pgbouncer]") {
    using dbpool::pg::detail::take_dbpool_params;
    // URLs: the parameter anywhere in the query, percent-encoded or not; the rest as written.
    const auto url = take_dbpool_params(
        "postgresql://app:pw@bouncer:6432/shop?sslmode=disable&statement_cache_size=0&x=%41");
    CHECK(url.conninfo == "postgresql://app:pw@bouncer:6432/shop?sslmode=disable&x=%41");
    CHECK(url.statement_cache_size == std::optional<std::string>("0"));
    CHECK(take_dbpool_params("postgres://h/db?statement_cache_size=12").conninfo ==
          "postgres://h/db");
    CHECK(take_dbpool_params("postgresql://h?statement%5Fcache_size=3").statement_cache_size ==
          std::optional<std::string>("3"));
    // Last one wins, as with libpq's keywords.
    CHECK(take_dbpool_params("postgresql://h?statement_cache_size=1&statement_cache_size=2")
              .statement_cache_size == std::optional<std::string>("2"));
    // A '?' inside the user part is a password's, not a query (libpq ends it at the first '@').
    const auto in_password = take_dbpool_params("postgresql://u:p?statement_cache_size=0@h/db");
    CHECK(in_password.conninfo == "postgresql://u:p?statement_cache_size=0@h/db");
    CHECK_FALSE(in_password.statement_cache_size);
    // Keyword/value strings: bare, quoted, escaped values; other keywords untouched.
    const auto keywords = take_dbpool_params(
        "host=bouncer statement_cache_size = 0 password='a statement_cache_size=9 b' port=6432");
    CHECK(keywords.conninfo == "host=bouncer  password='a statement_cache_size=9 b' port=6432");
    CHECK(keywords.statement_cache_size == std::optional<std::string>("0"));
    CHECK(take_dbpool_params("statement_cache_size='1\\0'").statement_cache_size ==
          std::optional<std::string>("10"));
    // What libpq would refuse is left to libpq.
    CHECK(take_dbpool_params("host=h statement_cache_size").conninfo ==
          "host=h statement_cache_size");
    CHECK(take_dbpool_params("").conninfo.empty());

    // from_url() sets the field and libpq never sees the parameter.
    const ConnectOptions options =
        ConnectOptions::from_url("postgresql://app@127.0.0.1:6432/shop?statement_cache_size=0");
    CHECK(options.statement_cache_size == 0);
    CHECK(options.conninfo == "postgresql://app@127.0.0.1:6432/shop");
    CHECK(ConnectOptions::from_url("host=h statement_cache_size=7").statement_cache_size == 7);
    CHECK(ConnectOptions::from_url("host=h").statement_cache_size == 64);

    // Refused with a message naming the parameter, never echoing the value (a misplaced
    // password may be there).
    for (const char* text :
         {"postgresql://h?statement_cache_size=", "postgresql://h?statement_cache_size=-1",
          "postgresql://h?statement_cache_size=100001", "host=h statement_cache_size=1e3",
          "postgresql://u@h?statement_cache_size=Qv5Kc3Rc"}) {
        try {
            (void)ConnectOptions::from_url(text);
            FAIL("accepted " << text);
        } catch (const Error& error) {
            CHECK(error.code() == ErrorCode::invalid_options);
            CHECK_THAT(error.what(),
                       Catch::Contains("statement_cache_size") && Catch::Contains("0 to 100000"));
            CHECK(std::string(error.what()).find("Qv5") == std::string::npos);
            CHECK(std::string(error.what()).find("1e3") == std::string::npos);
        }
    }
    // Written into ConnectOptions::conninfo directly it would reach libpq: refused, saying where
    // it belongs.
    CHECK_THAT(invalid(conninfo("postgresql://h/db?statement_cache_size=0")),
               Catch::Contains("statement_cache_size field"));
    CHECK_THAT(invalid(conninfo("host=h statement_cache_size=0")), Catch::Contains("from_url"));
}

TEST_CASE("only a 26000 naming the cached statement is taken for a pooler's doing",
          "[pg][unit][pgbouncer]") {
    using dbpool::pg::detail::names_missing_statement;
    const std::string name = "dbpool_0123456789abcdef_1";
    const auto server = [](const std::string& message, const std::string& sqlstate = "26000") {
        return Error(ErrorCode::database, "pg: execute failed: [" + sqlstate + "] " + message, 0,
                     sqlstate);
    };
    CHECK(names_missing_statement(
        server("ERROR:  prepared statement \"" + name + "\" does not exist"), name));
    // Another of this connection's statements (_12), the caller's own EXECUTE, another SQLSTATE.
    CHECK_FALSE(names_missing_statement(
        server("ERROR:  prepared statement \"" + name + "2\" does not exist"), name));
    CHECK_FALSE(names_missing_statement(
        server("ERROR:  prepared statement \"mine\" does not exist"), name));
    CHECK_FALSE(names_missing_statement(
        server("ERROR:  prepared statement \"" + name + "\" already exists", "42P05"), name));
    // A broken connection is never a missing statement.
    CHECK_FALSE(
        names_missing_statement(Error(ErrorCode::connection_lost, "pg: execute failed: " + name,
                                      dbpool::pg::native(ClientError::lost), "26000"),
                                name));
    // The error raised inside a transaction is a conflict (retry it), not a broken connection.
    CHECK(dbpool::pg::classify_exception(
              Error(ErrorCode::transaction_conflict, "pooler", 0, "26000")) == Failure::none);
}

TEST_CASE("statement names differ between connections", "[pg][unit]") {
    // Behind PgBouncer in transaction mode, connections share server sessions: equal names let
    // one client run another's statement.
    dbpool::pg::detail::StatementCache one;
    dbpool::pg::detail::StatementCache two;
    const std::string a = one.next_name();
    const std::string b = two.next_name();
    CHECK(a != b);
    CHECK(a.size() <= 63);  // NAMEDATALEN - 1
    CHECK(a.rfind("dbpool_", 0) == 0);
    for (const char c : a)
        CHECK((std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'));
    CHECK(one.next_name() != a);
}

TEST_CASE("the statement cache evicts the least recently used name", "[pg][unit]") {
    dbpool::pg::detail::StatementCache cache(2);
    CHECK(cache.find("a") == nullptr);
    const std::string a = cache.next_name();
    const std::string b = cache.next_name();
    CHECK(a != b);
    CHECK(cache.insert("a", a).empty());
    CHECK(cache.insert("b", b).empty());
    REQUIRE(cache.find("a") != nullptr);  // a is now the most recently used
    CHECK(*cache.find("a") == a);
    const std::string c = cache.next_name();
    CHECK(cache.insert("c", c) == std::vector<std::string>{b});
    CHECK(cache.find("b") == nullptr);
    CHECK(cache.size() == 2);
    // Replacing a key hands back the old name so it can be deallocated.
    const std::string d = cache.next_name();
    CHECK(cache.insert("c", d) == std::vector<std::string>{c});
    CHECK(*cache.find("c") == d);
    cache.erase("c");
    CHECK(cache.size() == 1);
    cache.clear();
    CHECK(cache.size() == 0);
    CHECK(cache.find("a") == nullptr);
}

// Issue 20, defect 5: libpq checks the port only when connecting; dbpool promises
// invalid_options at construction.
TEST_CASE("a port that is not 1..65535 is refused by validate(), without echoing it",
          "[pg][unit]") {
    for (const std::string bad :
         {"host=h port=abc", "host=h port=99999", "host=h port=-1", "host=h port=0",
          "postgresql://h:Xq9/db", "host=a,b port=5432,x7Q", "host=h port=65536"}) {
        INFO(bad);
        const std::string message = invalid(conninfo(bad));
        CHECK_THAT(message, Catch::Contains("port"));
        CHECK_THAT(message, Catch::Contains("1 to 65535"));
        for (const char* value : {"abc", "99999", "-1", "Xq9", "x7Q", "65536"}) {
            CHECK(message.find(value) == std::string::npos);
        }
    }
    for (const std::string good :
         {"host=h port=1", "host=h port=65535", "host=a,b port=5432,", "host=a,b port=5432,5433",
          "postgresql://h:5432/db", "host=h port=' 5432 '"}) {
        INFO(good);
        CHECK_NOTHROW(conninfo(good).validate());
    }
}

// Issue 20, defect 1: libpq cuts a URL password with an unencoded '/' or '@' into a port, a
// host or a database name, where masking the password it parsed does not reach.
TEST_CASE("describe() never shows a piece of a misplaced URL password", "[pg][unit]") {
    // Port "Qv5", database "Kc3Rc@127.0.0.1:5432/db" as libpq reads it.
    ConnectOptions options = conninfo("postgresql://hf:Qv5/Kc3Rc@127.0.0.1:5432/db");
    std::string text = options.describe();
    INFO(text);
    for (const char* piece : {"Qv5", "Kc3", "3Rc", "Qv5/Kc3Rc"}) {
        CHECK(text.find(piece) == std::string::npos);
    }
    CHECK_THAT(invalid(options), Catch::Contains("percent-encoded"));
    // User "hf", password "Qv4", host "Kb2Rb@host".
    options.conninfo = "postgresql://hf:Qv4@Kb2Rb@host/db";
    text = options.describe();
    INFO(text);
    CHECK(text.find("Kb2") == std::string::npos);
    CHECK(text.find("Qv4") == std::string::npos);
    CHECK_THAT(text, Catch::StartsWith("hf"));
    CHECK_THAT(text, Catch::EndsWith("/db"));
    // Encoded as the documents say, it reads back whole and describe() is unchanged.
    options.conninfo = "postgresql://hf:Qv5%2FKc3Rc@127.0.0.1:5432/db";
    CHECK_NOTHROW(options.validate());
    CHECK(options.describe() == "hf@127.0.0.1:5432/db");
}

TEST_CASE("masking: a password equal to the user name or short does not point at itself",
          "[pg][unit]") {
    using dbpool::detail::redact;
    using dbpool::detail::Secrets;
    // User "app" with password "app": "***@host" would tell the reader the password, "app@host"
    // would show it. The user name reads "<user>" wherever it occurs.
    ConnectOptions options = conninfo("postgresql://app:app@db.example:5432/shop");
    CHECK(options.describe() == "<user>@db.example:5432/shop");
    Secrets secrets;
    secrets.whole = {"app"};
    secrets.users = {"app"};
    CHECK(redact("password authentication failed for user \"app\"", secrets, "***") ==
          "password authentication failed for user \"<user>\"");
    // A user name holding the password hides whole; one that does not stays readable.
    secrets.users = {"no-such-user-Sekr1t", "bob"};
    secrets.whole = {"Sekr1t"};
    CHECK(redact("no-such-user-Sekr1t@h: user \"bob\" value \"Sekr1t\" xSekr1tx", secrets, "***") ==
          "<user>@h: user \"bob\" value \"***\" x***x");
    // A short password: masked where a library quotes it alone, never inside other text, and a
    // user name equal to it hides.
    secrets = Secrets{};
    secrets.whole = {"1", "ab"};
    secrets.users = {"u"};
    CHECK(redact("host \"127.0.0.1\" value \"1\" 'ab' tab \"abc\"", secrets, "***") ==
          "host \"127.0.0.1\" value \"***\" '***' tab \"abc\"");
    secrets.users = {"ab"};
    CHECK(redact("user \"ab\" on tab", secrets, "***") == "user \"<user>\" on tab");
    // A URL password libpq read whole is masked whole: a message naming a table "secrets" is
    // left alone. Cut apart (an unencoded '/'), every piece of it is masked.
    const auto masked_by = [](const std::string& url, const std::string& text) {
        ConnectOptions with;
        with.conninfo = url;
        const auto parsed = dbpool::pg::detail::parse_conninfo(with.conninfo);
        return redact(text, dbpool::pg::detail::conninfo_secrets(with, parsed), "***");
    };
    CHECK(masked_by("postgresql://u:secretpw@h/db", "relation \"secrets\" has secretpw") ==
          "relation \"secrets\" has ***");
    CHECK(masked_by("postgresql://u:sec%2Fretpw@h/db", "relation \"secrets\" has sec/retpw") ==
          "relation \"secrets\" has ***");
    CHECK(masked_by("postgresql://u:sec/retpw@h/db", "relation \"secrets\"") ==
          "relation \"***s\"");
    // Pieces: every 3-character piece, so a cut-apart password is covered in each field.
    secrets = Secrets{};
    secrets.pieces = {"Qv5/Kc3Rc"};
    CHECK(redact("port \"Qv5\" dbname \"Kc3Rc@x\" other \"Kc\"", secrets, "***") ==
          "port \"***\" dbname \"***@x\" other \"Kc\"");
}

// Issue 20, defect 2: a deadline of now() + milliseconds::max() overflowed into the past.
TEST_CASE("a huge timeout means no limit, never an overflow", "[pg][unit]") {
    using dbpool::pg::detail::deadline_after;
    using std::chrono::milliseconds;
    CHECK_FALSE(deadline_after(milliseconds::max()).bounded);
    CHECK_FALSE(
        deadline_after(std::chrono::duration_cast<milliseconds>(std::chrono::hours(24 * 365 * 400)))
            .bounded);
    CHECK_FALSE(deadline_after(milliseconds(0)).bounded);
    const auto soon = deadline_after(milliseconds(500));
    CHECK(soon.bounded);
    CHECK(soon.at > dbpool::pg::detail::Clock::now());

    ConnectOptions options = conninfo("host=127.0.0.1");
    options.connect_timeout = milliseconds::max();
    options.read_timeout = milliseconds::max();
    options.write_timeout = milliseconds::max();
    options.init_statements = {"SET a.b = 1", "SET a.c = 2"};
    CHECK_NOTHROW(options.validate());
    const auto bound = dbpool::pg::connector(options).connect_bound();
    REQUIRE(bound.has_value());
    CHECK(*bound == milliseconds::max());  // saturated, not wrapped negative
}

// Issue 20, defects 3 and 4: what check_statement() sees in a statement.
TEST_CASE("statement scan: placeholders and COPY outside literals, names and comments",
          "[pg][unit]") {
    using dbpool::pg::detail::scan_sql;
    struct Row {
        const char* sql;
        std::size_t highest;
        bool copy;
    };
    const Row rows[] = {
        {"SELECT 7", 0, false},
        {"SELECT $1::int", 1, false},
        {"SELECT $1 + $2, $1", 2, false},
        {"SELECT $3", 3, false},
        {"SELECT $10 -- $11\n", 10, false},
        {"SELECT '$2', \"$3\", $1", 1, false},
        {"SELECT 'it''s $2', $1", 1, false},
        {"SELECT E'\\' $2', $1", 1, false},
        {"SELECT e'a\\'b $2' || $1", 1, false},
        {"SELECT $$ $2 $$, $1", 1, false},
        {"SELECT $fn$ $2 $x$ $fn$, $1", 1, false},
        {"SELECT /* $2 /* nested $3 */ $4 */ $1", 1, false},
        {"SELECT a$1 FROM t", 0, false},
        {"SELECT x1$2", 0, false},
        {"SELECT arr[$1]", 1, false},
        {"SELECT 1.5e3, $1", 1, false},
        {"COPY t FROM STDIN", 0, true},
        {"copy t (a, b) from stdin with (format csv)", 0, true},
        {"COPY t TO STDOUT", 0, true},
        {"COPY (SELECT * FROM stdin) TO '/tmp/x'", 0, false},
        {"COPY t FROM '/tmp/stdin'", 0, false},
        {"COPY stdin FROM '/tmp/x'", 0, false},
        {"SELECT 1; COPY t FROM /* c */ STDIN; SELECT 2", 0, true},
        {"SELECT 'COPY t FROM STDIN'", 0, false},
        {"SELECT 1 FROM stdin", 0, false},
        {"COPY t FROM 'x' ; SELECT stdin FROM t", 0, false},
        {"SELECT '", 0, false},
        {"SELECT $", 0, false},
        {"SELECT $1 /* unterminated", 1, false},
    };
    for (const Row& row : rows) {
        INFO(row.sql);
        const auto shape = scan_sql(row.sql);
        CHECK(shape.highest_param == row.highest);
        CHECK(shape.copy_client == row.copy);
    }
    // standard_conforming_strings = off: a backslash escapes in every literal.
    CHECK(scan_sql("SELECT 'a\\' $2', $1", false).highest_param == 1);
    CHECK(scan_sql("SELECT 'a\\', $1", true).highest_param == 1);
}

// The rules shared with the MySQL backend (tests/value_rules_cases.hpp), through the text format
// PostgreSQL sends every value in.
struct PgTextReader {
    template <class T>
    T text(const std::string& value) const {
        return convert<T>(value, dbpool::pg::oid::numeric);
    }
    template <class T>
    T null() const {
        return convert<T>("", dbpool::pg::oid::numeric, true);
    }
};

TEST_CASE("values follow the rules shared with the MySQL backend", "[pg][unit]") {
    value_rules::check(PgTextReader{}, "pg");
}

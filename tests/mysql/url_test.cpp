// ConnectOptions::from_url and validate(): no server needed.
#include <dbpool/mysql/connect_options.hpp>

#include <catch2/catch.hpp>

#include <string>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::mysql::ConnectOptions;
using dbpool::mysql::TlsMode;

namespace {

// The message of the invalid_options error `url` raises ("" when it parses).
std::string url_error(const std::string& url) {
    try {
        (void)ConnectOptions::from_url(url);
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::invalid_options);
        return error.what();
    }
    return "";
}

}  // namespace

TEST_CASE("from_url reads every part of a full URL", "[mysql][url]") {
    const auto options = ConnectOptions::from_url(
        "mysql://app:s3cret@db.example:3307/shop?charset=latin1&socket=/run/my.sock"
        "&connect_timeout=5&read_timeout=7&write_timeout=9&ssl-mode=required&ssl-ca=/ca.pem"
        "&init=SET%20time_zone%3D%27%2B00%3A00%27");
    CHECK(options.user == "app");
    CHECK(options.password == "s3cret");
    CHECK(options.host == "db.example");
    CHECK(options.port == 3307);
    CHECK(options.database == "shop");
    CHECK(options.charset == "latin1");
    CHECK(options.unix_socket == "/run/my.sock");
    CHECK(options.connect_timeout.count() == 5);
    CHECK(options.read_timeout.count() == 7);
    CHECK(options.write_timeout.count() == 9);
    CHECK(options.tls.mode == TlsMode::required);
    CHECK(options.tls.ca == "/ca.pem");
    REQUIRE(options.init_statements.size() == 1);
    CHECK(options.init_statements[0] == "SET time_zone='+00:00'");
}

TEST_CASE("from_url defaults and minimal forms", "[mysql][url]") {
    const auto minimal = ConnectOptions::from_url("mysql://localhost");
    CHECK(minimal.host == "localhost");
    CHECK(minimal.port == 3306);
    CHECK(minimal.user.empty());
    CHECK(minimal.database.empty());
    CHECK(minimal.charset == "utf8mb4");
    CHECK(minimal.connect_timeout.count() == 10);

    const auto socket_only = ConnectOptions::from_url("mariadb://root@/?socket=/tmp/x.sock");
    CHECK(socket_only.host == "localhost");
    CHECK(socket_only.user == "root");
    CHECK(socket_only.password.empty());
    CHECK(socket_only.unix_socket == "/tmp/x.sock");
    CHECK(socket_only.describe() == "root@/tmp/x.sock");
}

TEST_CASE("from_url percent-decodes user and password", "[mysql][url]") {
    const auto options = ConnectOptions::from_url("mysql://us%40er:p%3Aa%2Fs%40s%25@h/db");
    CHECK(options.user == "us@er");
    CHECK(options.password == "p:a/s@s%");
    CHECK(options.describe() == "us@er@h:3306/db");
}

TEST_CASE("from_url accepts bracketed IPv6 hosts", "[mysql][url]") {
    const auto with_port = ConnectOptions::from_url("mysql://u:p@[::1]:3310/db");
    CHECK(with_port.host == "::1");
    CHECK(with_port.port == 3310);
    CHECK(with_port.describe() == "u@[::1]:3310/db");
    const auto without_port = ConnectOptions::from_url("mysql://[fe80::1]/db");
    CHECK(without_port.host == "fe80::1");
    CHECK(without_port.port == 3306);
}

TEST_CASE("from_url rejects malformed URLs naming the part", "[mysql][url]") {
    CHECK_THAT(url_error("postgres://u:p@h/db"), Catch::Contains("mysql://"));
    CHECK_THAT(url_error("mysql://u:p@h:notaport/db"), Catch::Contains("port"));
    CHECK_THAT(url_error("mysql://u:p@h:0/db"), Catch::Contains("port"));
    CHECK_THAT(url_error("mysql://u:p@h:65536/db"), Catch::Contains("port"));
    CHECK_THAT(url_error("mysql://u:p@h:/db"), Catch::Contains("port"));
    CHECK_THAT(url_error("mysql://u:p@::1/db"), Catch::Contains("IPv6"));
    CHECK_THAT(url_error("mysql://u:p@[::1/db"), Catch::Contains("IPv6"));
    CHECK_THAT(url_error("mysql://u:p@h/db/extra"), Catch::Contains("path"));
    CHECK_THAT(url_error("mysql://u:p@h/db?colour=red"),
               Catch::Contains("unknown parameter 'colour'"));
    CHECK_THAT(url_error("mysql://u:p@h/db?charset"), Catch::Contains("'charset' has no value"));
    CHECK_THAT(url_error("mysql://u:p@h/db?connect_timeout=soon"),
               Catch::Contains("connect_timeout"));
    CHECK_THAT(url_error("mysql://u:p@h/db?connect_timeout=0"), Catch::Contains("connect_timeout"));
    CHECK_THAT(url_error("mysql://u:p@h/db?ssl-mode=maybe"), Catch::Contains("ssl-mode"));
    CHECK_THAT(url_error("mysql://u:p%zz@h/db"), Catch::Contains("password"));
    CHECK_THAT(url_error("mysql://u%2@h/db"), Catch::Contains("user name"));
}

TEST_CASE("URL errors never contain the password", "[mysql][url]") {
    const std::string secret = "Sup3rS3cret";
    for (const std::string& url : {
             "mysql://user:" + secret + "@h:badport/db",
             "mysql://user:" + secret + "@h/db?bogus=1",
             "mysql://user:" + secret + "%@h/db",
             // An unencoded '/' in the password moves it into the port position.
             "mysql://user:" + secret + "/x@h/db",
             "mysql://user:pa:" + secret + "@h:99999/db",
         }) {
        const std::string message = url_error(url);
        INFO(url);
        CHECK_FALSE(message.empty());
        CHECK(message.find(secret) == std::string::npos);
    }
}

TEST_CASE("validate names the wrong field", "[mysql][url]") {
    const auto message = [](ConnectOptions options) -> std::string {
        try {
            options.validate();
        } catch (const Error& error) {
            CHECK(error.code() == ErrorCode::invalid_options);
            return error.what();
        }
        return "";
    };
    ConnectOptions good;
    CHECK(message(good).empty());

    ConnectOptions bad = good;
    bad.host.clear();
    CHECK_THAT(message(bad), Catch::Contains("host"));
    bad = good;
    bad.port = 0;
    CHECK_THAT(message(bad), Catch::Contains("port"));
    bad = good;
    bad.connect_timeout = std::chrono::seconds(0);
    CHECK_THAT(message(bad), Catch::Contains("connect_timeout"));
    bad = good;
    bad.read_timeout = std::chrono::seconds(-1);
    CHECK_THAT(message(bad), Catch::Contains("read_timeout"));
    bad = good;
    bad.charset = "utf8; DROP";
    CHECK_THAT(message(bad), Catch::Contains("charset"));
    bad = good;
    bad.tls.mode = TlsMode::required;
    bad.tls.cert = "/c.pem";
    CHECK_THAT(message(bad), Catch::Contains("tls.key"));
    bad = good;
    bad.tls.ca = "/ca.pem";
    CHECK_THAT(message(bad), Catch::Contains("disabled"));
    bad = good;
    bad.init_statements = {"  ;"};
    CHECK_THAT(message(bad), Catch::Contains("init_statements"));
    bad = good;
    bad.unix_socket = std::string(200, 'x');
    CHECK_THAT(message(bad), Catch::Contains("unix_socket"));
}

// ConnectOptions::from_url and validate(): no server needed.
#include <dbpool/mysql/connect_options.hpp>

#include <catch2/catch.hpp>

#include <string>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::mysql::ConnectOptions;
using dbpool::mysql::Protocol;
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

// `before` + a NUL byte + `after`.
std::string with_nul(const std::string& before, const std::string& after) {
    return before + std::string(1, '\0') + after;
}

}  // namespace

TEST_CASE("from_url reads every part of a full URL", "[mysql][url]") {
    const auto options = ConnectOptions::from_url(
        "mysql://app:s3cret@db.example:3307/shop?charset=latin1"
        "&connect_timeout=5&read_timeout=7&write_timeout=9&ssl-mode=required&ssl-ca=/ca.pem"
        "&ssl-cert=/c.pem&ssl-key=/k.pem");
    CHECK(options.user == "app");
    CHECK(options.password == "s3cret");
    CHECK(options.host == "db.example");
    CHECK(options.port == 3307);
    CHECK(options.protocol == Protocol::tcp);
    CHECK(options.database == "shop");
    CHECK(options.charset == "latin1");
    CHECK(options.connect_timeout.count() == 5);
    CHECK(options.read_timeout.count() == 7);
    CHECK(options.write_timeout.count() == 9);
    CHECK(options.tls.mode == TlsMode::required);
    CHECK(options.tls.ca == "/ca.pem");
    CHECK(options.tls.cert == "/c.pem");
    CHECK(options.tls.key == "/k.pem");

    const auto socket = ConnectOptions::from_url("mysql://app@localhost/shop?socket=/run/my.sock");
    CHECK(socket.unix_socket == "/run/my.sock");
    CHECK(socket.protocol == Protocol::automatic);
    CHECK(socket.uses_unix_socket());
}

TEST_CASE("from_url: a port means TCP, also for localhost", "[mysql][url]") {
    // The C API silently uses the unix socket for "localhost" and ignores the port.
    const auto local = ConnectOptions::from_url("mysql://u:p@localhost:3307/db");
    CHECK(local.host == "localhost");
    CHECK(local.port == 3307);
    CHECK(local.protocol == Protocol::tcp);
    CHECK_FALSE(local.uses_unix_socket());
    CHECK(local.describe() == "u@localhost:3307/db");

    const auto no_port = ConnectOptions::from_url("mysql://u:p@localhost/db");
    CHECK(no_port.protocol == Protocol::automatic);
    CHECK(no_port.uses_unix_socket());

    const auto forced = ConnectOptions::from_url("mysql://u:p@localhost/db?protocol=tcp");
    CHECK(forced.protocol == Protocol::tcp);
    const auto socket = ConnectOptions::from_url("mysql://u:p@localhost/db?protocol=socket");
    CHECK(socket.protocol == Protocol::socket);
}

TEST_CASE("from_url refuses a port without a host", "[mysql][url]") {
    // Decided: an error rather than a guess (an empty host is usually an unset variable).
    CHECK_THAT(url_error("mysql://u:p@:3307/db"),
               Catch::Contains("port but no host") && Catch::Contains("127.0.0.1"));
    CHECK_THAT(url_error("mysql://:3307/db"), Catch::Contains("port but no host"));
    CHECK_THAT(url_error("mysql://u@localhost:3307/db?socket=/s.sock"),
               Catch::Contains("port (TCP) and a socket"));
}

TEST_CASE("from_url refuses init statements and points to setsession", "[mysql][url]") {
    for (const char* url : {"mysql://u:p@h/db?init=SET%20a%3D1", "mysql://u:p@h/db?init_command=x",
                            "mysql://u:p@h/db?init-command=x"}) {
        INFO(url);
        CHECK_THAT(url_error(url), Catch::Contains("PoolOptions::setsession") &&
                                       Catch::Contains("SteadyOptions::setsession"));
    }
}

TEST_CASE("from_url takes a password with unencoded reserved characters", "[mysql][url]") {
    // The last '@' ends the user-info: everything between the first ':' and it is the password.
    const auto options = ConnectOptions::from_url("mysql://app:Pa?ss@w0rd@db/shop");
    CHECK(options.user == "app");
    CHECK(options.password == "Pa?ss@w0rd");
    CHECK(options.host == "db");
    CHECK(options.database == "shop");
    const auto slashes =
        ConnectOptions::from_url("mysql://app:a/b?c#d:e@db:3307/shop?charset=utf8");
    CHECK(slashes.password == "a/b?c#d:e");
    CHECK(slashes.port == 3307);
    CHECK(slashes.charset == "utf8");
}

TEST_CASE("from_url rejects NUL bytes in every component", "[mysql][url]") {
    for (const std::string& url : {
             std::string("mysql://u%00x:p@h/db"),
             std::string("mysql://u:right%00anything@h/db"),
             std::string("mysql://u:p@h/db%00junk"),
             std::string("mysql://u:p@h/db?charset=utf8%00x"),
             std::string("mysql://u:p@h/db?socket%00=x"),
             std::string("mysql://u:p@h/db?ssl-ca=/a%00b&ssl-mode=verify_ca"),
             with_nul("mysql://u:p@h", "st/db"),
             with_nul("mysql://u:p", "w@h/db"),
             with_nul("mysql://u:p@h:33", "06/db"),
             with_nul("mysql://u:p@h/db?charset=utf8", "x"),
         }) {
        INFO(url);
        CHECK_THAT(url_error(url), Catch::Contains("NUL"));
    }
    ConnectOptions options;
    options.password = with_nul("right", "anything");
    CHECK_THROWS_WITH(options.validate(), Catch::Contains("password contains a NUL"));
    options = ConnectOptions();
    options.database = with_nul("db", "junk");
    CHECK_THROWS_WITH(options.validate(), Catch::Contains("database contains a NUL"));
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

// Issue 20: describe() names the connection in every message (multi-host and cluster errors
// too); a user name that holds the password must neither show it nor be marked as it.
TEST_CASE("describe() hides a user name that holds the password", "[mysql][url]") {
    CHECK(ConnectOptions::from_url("mysql://app:app@h/db").describe() == "<user>@h:3306/db");
    CHECK(ConnectOptions::from_url("mysql://app2024:app@h/db").describe() == "<user>@h:3306/db");
    CHECK(ConnectOptions::from_url("mysql://app:Sekr1t@h/app").describe() == "app@h:3306/app");
    CHECK(ConnectOptions::from_url("mysql://u:shop@h/shop").describe() == "u@h:3306/<password>");
    CHECK(ConnectOptions::from_url("mysql://ab:ab@h/db").describe() == "<user>@h:3306/db");
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
    CHECK_THAT(url_error("mysql://u:p@h/db#frag"), Catch::Contains("'#'"));
    CHECK_THAT(url_error("mysql://h/db?socket=/a@b"), Catch::Contains("%40"));
    CHECK_THAT(url_error("mysql://u:p@h/db?protocol=pipe"), Catch::Contains("protocol 'pipe'"));
    CHECK_THAT(url_error("mysql://u:p@h/db?socket=/s.sock"), Catch::Contains("not \"localhost\""));
    CHECK_THAT(url_error("mysql://u:p@h/db?protocol=socket"), Catch::Contains("localhost"));
    CHECK(ConnectOptions::from_url("MySQL://u@h/db").host == "h");
}

TEST_CASE("URL errors never contain the password", "[mysql][url]") {
    const std::string secret = "Sup3rS3cret";
    for (const std::string& url : {
             "mysql://user:" + secret + "@h:badport/db",
             "mysql://user:" + secret + "@h/db?bogus=1",
             "mysql://user:" + secret + "%@h/db",
             "mysql://user:" + secret + "/x@h:port/db",
             "mysql://user:pa:" + secret + "@h:99999/db",
             // The example: '?' in the password used to start the query string there.
             "mysql://app:Pa?" + secret + "@w0rd@db/shop?x",
             "mysql://app:" + secret + "?a=b@h/db?c",
             "mysql://app:" + secret + "%00@h/db",
             "mysql://app:" + secret + "@:3307/db",
             "mysql://app:" + secret + "@h/db?init=1",
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
    bad.protocol = Protocol::tcp;
    bad.unix_socket = "/s.sock";
    CHECK_THAT(message(bad), Catch::Contains("protocol is tcp"));
    bad = good;
    bad.unix_socket = std::string(200, 'x');
    CHECK_THAT(message(bad), Catch::Contains("unix_socket"));
}

// TLS through libpq's sslmode against the throwaway server, whose certificates
// scripts/postgres.sh generates: a CA, a server certificate for "localhost" only, a client
// certificate for the role dbpool_cert, and an unrelated CA. pg_hba.conf lets `dbpool` in with
// or without TLS, `dbpool_tls` only with TLS and `dbpool_cert` only with a client certificate.
#include <dbpool/pg.hpp>

#include <catch2/catch.hpp>

#include "test_server.hpp"

#include <chrono>
#include <iostream>
#include <string>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::pg::Connection;
using dbpool::pg::ConnectOptions;
using dbpool_pg_test::test_server;

namespace {

// Options for `user` over TCP to `host` with `sslmode` and extra keywords.
ConnectOptions tls_options(const std::string& user, const std::string& sslmode,
                           const std::string& extra = {}, const std::string& host = "127.0.0.1") {
    ConnectOptions options = test_server().tcp();
    options.conninfo = "host=" + host + " port=" + std::to_string(test_server().port) +
                       " user=" + user + " dbname=" + test_server().database +
                       " sslmode=" + sslmode + (extra.empty() ? "" : " " + extra);
    return options;
}

// "tls" / "plain" when it connects (the server's view, pg_stat_ssl, must agree with the
// client's), else "refused: <message>".
std::string outcome(const ConnectOptions& options) {
    try {
        Connection connection(options);
        const bool server_says =
            connection.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .scalar<bool>();
        CHECK(server_says == connection.ssl_in_use());
        return connection.ssl_in_use() ? "tls" : "plain";
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::connect_failed);
        CHECK(std::string(error.what()).find(test_server().password) == std::string::npos);
        return std::string("refused: ") + error.what();
    }
}

}  // namespace

TEST_CASE("sslmode from disable to verify-full", "[pg][tls]") {
    const std::string ca = "sslrootcert=" + test_server().tls_file("ca.crt");
    const std::string other_ca = "sslrootcert=" + test_server().tls_file("other-ca.crt");
    const std::string user = test_server().user;
    struct Case {
        const char* name;
        ConnectOptions options;
        const char* expected;  // "tls", "plain", or the start of "refused: ..."
        const char* detail;    // a piece of the refusal message
    };
    const Case cases[] = {
        {"disable", tls_options(user, "disable"), "plain", ""},
        {"allow (plain first)", tls_options(user, "allow"), "plain", ""},
        {"prefer", tls_options(user, "prefer"), "tls", ""},
        {"require", tls_options(user, "require"), "tls", ""},
        {"verify-ca", tls_options(user, "verify-ca", ca), "tls", ""},
        {"verify-full, host matches", tls_options(user, "verify-full", ca, "localhost"), "tls", ""},
        {"verify-ca, unrelated CA", tls_options(user, "verify-ca", other_ca), "refused",
         "certificate verify failed"},
        {"verify-full, host does not match", tls_options(user, "verify-full", ca), "refused",
         "does not match host name"},
        {"verify-ca, no root certificate",
         tls_options(user, "verify-ca", "sslrootcert=/nonexistent/root.crt"), "refused",
         "root certificate file"},
        {"TLS-only role, disable", tls_options("dbpool_tls", "disable"), "refused",
         "no encryption"},
        {"TLS-only role, allow (retries with TLS)", tls_options("dbpool_tls", "allow"), "tls", ""},
        {"TLS-only role, require", tls_options("dbpool_tls", "require"), "tls", ""},
        {"client certificate",
         tls_options("dbpool_cert", "verify-full",
                     ca + " sslcert=" + test_server().tls_file("client.crt") +
                         " sslkey=" + test_server().tls_file("client.key"),
                     "localhost"),
         "tls", ""},
        {"client certificate missing", tls_options("dbpool_cert", "require"), "refused", ""},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        const std::string result = outcome(c.options);
        std::cout << "[tls] " << c.name << ": " << result << "\n";
        CHECK(result.rfind(c.expected, 0) == 0);
        CHECK_THAT(result, Catch::Contains(c.detail));
    }
}

TEST_CASE("TLS: the refused certificate's role gets a SQLSTATE", "[pg][tls]") {
    try {
        Connection connection(tls_options("dbpool_tls", "disable"));
        FAIL("a TLS-only role connected without TLS");
    } catch (const Error& error) {
        CHECK(error.sqlstate() == "28000");  // invalid_authorization_specification
    }
}

TEST_CASE("TLS: large results arrive promptly (records bigger than libpq's buffer)", "[pg][tls]") {
    ConnectOptions options = tls_options(test_server().user, "require");
    options.read_timeout = std::chrono::seconds(10);
    Connection connection(options);
    REQUIRE(connection.ssl_in_use());
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < 5; ++round) {
        const auto rows = connection.query("SELECT repeat('x', $1) FROM generate_series(1, 20)",
                                           100000 + round * 4099);
        CHECK(rows.size() == 20);
        CHECK(rows[19].get<std::string>(0).size() == std::size_t(100000 + round * 4099));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "[tls] 5 x 2 MB over TLS in " << seconds << " s\n";
    CHECK(seconds < 5.0);
}

TEST_CASE("TLS: a terminated idle session is known dead before anything is sent", "[pg][tls]") {
    Connection victim(tls_options(test_server().user, "require"));
    REQUIRE(victim.ssl_in_use());
    Connection admin(test_server().admin());
    victim.query("SELECT $1::int", 1);
    REQUIRE(dbpool_pg_test::terminate_and_wait(admin, victim.backend_pid()));
    try {
        victim.query("SELECT $1::int", 2);
        FAIL("query on a terminated session succeeded");
    } catch (const Error& error) {
        INFO(error.what());
        CHECK(error.native_code() == dbpool::pg::native(dbpool::pg::ClientError::not_sent));
        CHECK(error.sqlstate() == "57P01");
        CHECK(Connection::classify_failure(error) == dbpool::Failure::broken_not_sent);
    }
}

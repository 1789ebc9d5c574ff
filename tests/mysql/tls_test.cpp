// TLS against the throwaway server, which scripts/mariadb.sh starts with throwaway certificates:
// a CA, a server certificate issued to the DNS name "localhost" only, a client certificate for a
// REQUIRE X509 user, and an unrelated CA. Every TlsMode is exercised, on both sides of its
// promise. A tiny fake server that offers no TLS covers what a real one cannot show.
#include <dbpool/mysql.hpp>

#include <catch2/catch.hpp>

#include "test_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::mysql::Connection;
using dbpool::mysql::ConnectOptions;
using dbpool::mysql::Protocol;
using dbpool::mysql::TlsMode;
using dbpool_test::test_server;

namespace {

// TCP options for `host` ("localhost" is forced onto TCP: the certificate names it).
ConnectOptions tls_options(TlsMode mode, const std::string& host = "localhost") {
    ConnectOptions options = test_server().tcp();
    options.host = host;
    options.protocol = Protocol::tcp;
    options.tls.mode = mode;
    return options;
}

Error connect_error(const ConnectOptions& options) {
    try {
        Connection connection(options);
    } catch (const Error& error) {
        return error;
    }
    FAIL("connecting succeeded unexpectedly");
    return Error(ErrorCode::database, "");
}

// A loopback listener that speaks just enough of the MySQL protocol to let a client log in
// without TLS: a handshake that does not offer TLS, then OK to whatever the client answers.
// It records whether the client sent anything after the login (it must not, when TLS was
// required).
class PlainServer {
public:
    PlainServer() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port_ = ntohs(address.sin_port);
        REQUIRE(::listen(fd_, 4) == 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~PlainServer() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    PlainServer(const PlainServer&) = delete;
    PlainServer& operator=(const PlainServer&) = delete;

    std::uint16_t port() const { return port_; }
    // Commands (after the login) the client sent, by their first byte (COM_QUIT = 1).
    std::vector<int> commands() const {
        std::vector<int> copy;
        for (int i = 0; i < count_.load(); ++i)
            copy.push_back(commands_[i].load());
        return copy;
    }

private:
    static bool read_exactly(int fd, unsigned char* out, std::size_t size) {
        std::size_t done = 0;
        while (done < size) {
            pollfd ready{fd, POLLIN, 0};
            if (::poll(&ready, 1, 2000) <= 0) return false;
            const ssize_t got = ::read(fd, out + done, size - done);
            if (got <= 0) return false;
            done += static_cast<std::size_t>(got);
        }
        return true;
    }

    static std::vector<unsigned char> read_packet(int fd) {
        unsigned char header[4];
        if (!read_exactly(fd, header, 4)) return {};
        const std::size_t size = header[0] | (header[1] << 8) | (header[2] << 16);
        std::vector<unsigned char> payload(size);
        if (size > 0 && !read_exactly(fd, payload.data(), size)) return {};
        return payload;
    }

    static void write_packet(int fd, unsigned char sequence,
                             const std::vector<unsigned char>& data) {
        std::vector<unsigned char> packet = {static_cast<unsigned char>(data.size() & 0xff),
                                             static_cast<unsigned char>((data.size() >> 8) & 0xff),
                                             static_cast<unsigned char>(data.size() >> 16),
                                             sequence};
        packet.insert(packet.end(), data.begin(), data.end());
        (void)!::write(fd, packet.data(), packet.size());
    }

    void serve() {
        while (!stop_) {
            pollfd ready{fd_, POLLIN, 0};
            if (::poll(&ready, 1, 50) <= 0) continue;
            const int client = ::accept(fd_, nullptr, nullptr);
            if (client < 0) continue;
            greet_and_log_in(client);
            ::close(client);
        }
    }

    void greet_and_log_in(int client) {
        // Protocol 10 handshake. Capabilities: LONG_PASSWORD, LONG_FLAG, CONNECT_WITH_DB,
        // PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION, MULTI_RESULTS, PS_MULTI_RESULTS,
        // PLUGIN_AUTH; no CLIENT_SSL (2048).
        const std::uint32_t capabilities =
            1 | 4 | 8 | 512 | 8192 | 32768 | (1U << 17) | (1U << 18) | (1U << 19);
        std::vector<unsigned char> greeting = {10};
        for (const char c : std::string("8.0.36-fake"))
            greeting.push_back(static_cast<unsigned char>(c));
        greeting.push_back(0);
        greeting.insert(greeting.end(), {1, 0, 0, 0});  // thread id
        greeting.insert(greeting.end(), {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0});
        greeting.push_back(capabilities & 0xff);
        greeting.push_back((capabilities >> 8) & 0xff);
        greeting.push_back(45);                   // utf8mb4_general_ci
        greeting.insert(greeting.end(), {2, 0});  // status: autocommit
        greeting.push_back((capabilities >> 16) & 0xff);
        greeting.push_back(capabilities >> 24);
        greeting.push_back(21);                  // auth data length
        greeting.insert(greeting.end(), 10, 0);  // reserved
        for (const char c : std::string("ijklmnopqrst"))
            greeting.push_back(static_cast<unsigned char>(c));
        greeting.push_back(0);
        for (const char c : std::string("mysql_native_password"))
            greeting.push_back(static_cast<unsigned char>(c));
        greeting.push_back(0);
        write_packet(client, 0, greeting);
        if (read_packet(client).empty()) return;         // the login (or a TLS request)
        write_packet(client, 2, {0, 0, 0, 2, 0, 0, 0});  // OK
        for (int i = 0; i < 8; ++i) {
            const auto command = read_packet(client);
            if (command.empty()) return;
            const int slot = count_.fetch_add(1);
            if (slot < 16) commands_[slot] = command[0];
            if (command[0] == 1) return;  // COM_QUIT
            write_packet(client, 1, {0, 0, 0, 2, 0, 0, 0});
        }
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> count_{0};
    std::atomic<int> commands_[16] = {};
    std::thread thread_;
};

}  // namespace

TEST_CASE("TLS disabled is really plain, preferred and required encrypt", "[mysql][tls]") {
    Connection plain(tls_options(TlsMode::disabled));
    CHECK(plain.tls_cipher().empty());
    CHECK(plain.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0].get<std::string>(1).empty());

    for (const TlsMode mode : {TlsMode::preferred, TlsMode::required}) {
        INFO(dbpool::mysql::to_string(mode));
        Connection encrypted(tls_options(mode, "127.0.0.1"));
        CHECK_FALSE(encrypted.tls_cipher().empty());
        CHECK(encrypted.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0].get<std::string>(1) ==
              encrypted.tls_cipher());
    }
    // Over the unix socket too.
    ConnectOptions socket = test_server().unix_socket();
    socket.tls.mode = TlsMode::required;
    CHECK_FALSE(Connection(socket).tls_cipher().empty());
}

TEST_CASE("TLS required refuses a server without TLS; preferred falls back", "[mysql][tls]") {
    // Regression: Connector/C's "enforce" logs in over plain text when the server offers no
    // TLS, so required used to connect unencrypted.
    PlainServer server;
    ConnectOptions options = tls_options(TlsMode::required, "127.0.0.1");
    options.port = server.port();
    options.password = "fake-pw-Xq";
    const Error error = connect_error(options);
    CHECK(error.code() == ErrorCode::connect_failed);
    CHECK(error.native_code() == 2026);
    CHECK_THAT(error.what(), Catch::Contains("TLS is required"));
    CHECK(std::string(error.what()).find("fake-pw-Xq") == std::string::npos);
    // Nothing but COM_QUIT after the login: no statement went out in plain text.
    for (const int command : server.commands())
        CHECK(command == 1);

    options.tls.mode = TlsMode::preferred;
    Connection fallback(options);
    CHECK(fallback.tls_cipher().empty());
}

TEST_CASE("TLS verify_ca checks the chain against tls.ca", "[mysql][tls]") {
    ConnectOptions options = tls_options(TlsMode::verify_ca);
    options.tls.ca = test_server().tls_file("ca.pem");
    {
        Connection verified(options);
        CHECK_FALSE(verified.tls_cipher().empty());
    }
    options.tls.ca = test_server().tls_file("wrong-ca.pem");
    const Error wrong_ca = connect_error(options);
    INFO(wrong_ca.what());
    CHECK(wrong_ca.code() == ErrorCode::connect_failed);
    CHECK(wrong_ca.native_code() == 2026);
    CHECK_THAT(wrong_ca.what(), Catch::Contains("certificate") && Catch::Contains("tls.ca"));
    CHECK(std::string(wrong_ca.what()).find(test_server().password) == std::string::npos);

    // The certificate names "localhost", not "127.0.0.1": Oracle's library accepts it for
    // verify_ca (chain only); Connector/C has no CA-only mode and checks the name too.
    options.host = "127.0.0.1";
    options.tls.ca = test_server().tls_file("ca.pem");
    if (dbpool::mysql::detail::mariadb_client) {
        const Error name = connect_error(options);
        CHECK(name.native_code() == 2026);
        CHECK_THAT(name.what(), Catch::Contains("Connector/C checks the host name"));
    } else {
        CHECK_FALSE(Connection(options).tls_cipher().empty());
    }
}

TEST_CASE("TLS verify_identity refuses a certificate for another host", "[mysql][tls]") {
    ConnectOptions options = tls_options(TlsMode::verify_identity);
    options.tls.ca = test_server().tls_file("ca.pem");
    {
        Connection verified(options);
        CHECK_FALSE(verified.tls_cipher().empty());
    }
    options.host = "127.0.0.1";  // the certificate is for "localhost" only
    const Error error = connect_error(options);
    INFO(error.what());
    CHECK(error.code() == ErrorCode::connect_failed);
    CHECK(error.native_code() == 2026);
    CHECK_THAT(error.what(), Catch::Contains("names the host"));
}

TEST_CASE("TLS client certificates log in a REQUIRE X509 user", "[mysql][tls]") {
    ConnectOptions options = tls_options(TlsMode::required, "127.0.0.1");
    options.user = test_server().x509_user;
    options.password = test_server().x509_password;
    const Error refused = connect_error(options);
    CHECK(refused.native_code() == 1045);
    CHECK(std::string(refused.what()).find(options.password) == std::string::npos);

    options.tls.cert = test_server().tls_file("client-cert.pem");
    options.tls.key = test_server().tls_file("client-key.pem");
    Connection connection(options);
    CHECK_FALSE(connection.tls_cipher().empty());
    CHECK(connection.query("SELECT CURRENT_USER()").scalar<std::string>().find(options.user) == 0);

    options.tls.mode = TlsMode::verify_identity;
    options.host = "localhost";
    options.tls.ca = test_server().tls_file("ca.pem");
    CHECK_FALSE(Connection(options).tls_cipher().empty());
}

TEST_CASE("TLS failures put nothing secret into pool events or stats", "[mysql][tls]") {
    ConnectOptions options = tls_options(TlsMode::verify_ca);
    options.tls.ca = test_server().tls_file("wrong-ca.pem");
    options.tls.cert = test_server().tls_file("client-cert.pem");
    options.tls.key = test_server().tls_file("client-key.pem");
    std::vector<std::string> details;
    std::mutex mutex;
    dbpool::PoolOptions pool_options;
    pool_options.maxconnections = 1;
    pool_options.blocking = false;
    pool_options.background_maintenance = false;
    pool_options.on_event = [&](const dbpool::PoolEvent& event) {
        std::lock_guard<std::mutex> lock(mutex);
        details.push_back(std::string(dbpool::to_string(event.kind)) + ": " + event.detail);
    };
    dbpool::PooledPool<Connection> pool(dbpool::mysql::connector(options), pool_options);
    for (int attempt = 0; attempt < 2; ++attempt) {
        try {
            auto handle = pool.connection();
            FAIL("connected with the wrong CA");
        } catch (const Error& error) {
            CHECK(error.code() == ErrorCode::connect_failed);
            CHECK(std::string(error.what()).find(options.password) == std::string::npos);
        }
    }
    const std::string stats = dbpool::to_prometheus(pool.stats());
    std::lock_guard<std::mutex> lock(mutex);
    REQUIRE_FALSE(details.empty());
    for (const std::string& detail : details) {
        INFO(detail);
        CHECK(detail.find(options.password) == std::string::npos);
        CHECK(detail.find("PRIVATE KEY") == std::string::npos);
    }
    CHECK(stats.find(options.password) == std::string::npos);
}

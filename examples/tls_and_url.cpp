// Connection URLs and TLS: what a mysql:// URL means, the same in ConnectOptions, TCP or the
// unix socket, and TLS that checks the server's certificate.
//
//   tls_and_url [URL [CA-FILE [SOCKET]]]
//
// URL defaults to $DBPOOL_TEST_URL, CA-FILE to $DBPOOL_TEST_TLS_DIR/ca.pem and SOCKET to
// $DBPOOL_TEST_SOCKET (scripts/mariadb.sh writes all three into DIR/env; its server certificate
// is issued to the name "localhost" only). docs/mysql.md describes every URL parameter.
#include <dbpool/mysql.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

namespace {

using Pool = dbpool::PooledPool<dbpool::mysql::Connection>;

std::string from_env(const char* name, const std::string& suffix = {}) {
    const char* value = std::getenv(name);
    return value != nullptr ? value + suffix : std::string();
}

// How the server sees a connection: "localhost" for the unix socket, "host:port" for TCP.
constexpr const char* seen_by_server =
    "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()";

}  // namespace

int main(int argc, char** argv) {
    const std::string url = argc > 1 ? argv[1] : from_env("DBPOOL_TEST_URL");
    const std::string ca = argc > 2 ? argv[2] : from_env("DBPOOL_TEST_TLS_DIR", "/ca.pem");
    const std::string socket = argc > 3 ? argv[3] : from_env("DBPOOL_TEST_SOCKET");
    if (url.empty()) {
        std::cerr << "usage: " << argv[0]
                  << " mysql://user:password@host:port/database [ca.pem [socket]]\n";
        return 2;
    }
    int failures = 0;
    try {
        // 1. A URL is parsed into ConnectOptions; describe() never shows the password.
        const auto base = dbpool::mysql::ConnectOptions::from_url(url);
        std::cout << "URL:     " << base.describe() << " (a port in the URL means TCP)\n";

        // The last '@' ends the password, so it may hold '@', '/', ':' or '?' as they are;
        // percent-encoding (%40 for '@') works too and is needed elsewhere, e.g. in parameters.
        const auto odd = dbpool::mysql::ConnectOptions::from_url(
            "mysql://app:p@ss/w:rd?@db.example:3307/shop%2Dtest?connect_timeout=5&charset=utf8mb4");
        std::cout << "parsed:  user " << odd.user << ", host " << odd.host << ", port " << odd.port
                  << ", database " << odd.database << ", password of " << odd.password.size()
                  << " characters, connect_timeout " << odd.connect_timeout.count() << " s\n";

        // 2. The same server through a pool, over TCP as the URL says.
        {
            Pool pool(dbpool::mysql::connector(base));
            auto connection = pool.connection();
            std::cout << "TCP:     the server sees "
                      << connection->query(seen_by_server).scalar<std::string>() << "\n";
        }

        // 3. The unix socket: host "localhost" and no port (or ?socket=PATH) in a URL; in
        //    ConnectOptions, host "localhost" with protocol automatic (or socket).
        if (!socket.empty()) {
            dbpool::mysql::ConnectOptions local = base;
            local.host = "localhost";
            local.protocol = dbpool::mysql::Protocol::automatic;  // localhost = the socket
            local.unix_socket = socket;
            dbpool::mysql::Connection connection(local);
            std::cout << "socket:  the server sees "
                      << connection.query(seen_by_server).scalar<std::string>() << "\n";
        }

        // 4. TLS that checks the certificate: verify_identity needs the CA and a host name the
        //    certificate names. In a URL: ?ssl-mode=verify_identity&ssl-ca=/path/ca.pem.
        if (!ca.empty()) {
            dbpool::mysql::ConnectOptions tls = base;
            tls.host = "localhost";  // the name on the server's certificate
            tls.protocol = dbpool::mysql::Protocol::tcp;
            tls.tls.mode = dbpool::mysql::TlsMode::verify_identity;
            tls.tls.ca = ca;
            Pool pool(dbpool::mysql::connector(tls));
            auto connection = pool.connection();
            std::cout << "TLS:     " << connection->raw().tls_cipher() << ", certificate checked\n";

            // The same server by IP address: the certificate does not name 127.0.0.1, so the
            // connection is refused before anything is sent (ErrorCode::connect_failed).
            dbpool::mysql::ConnectOptions by_ip = tls;
            by_ip.host = "127.0.0.1";
            try {
                dbpool::mysql::Connection refused(by_ip);
                std::cout << "unexpected: TLS accepted a certificate for another name\n";
                ++failures;
            } catch (const dbpool::Error& error) {
                if (error.code() != dbpool::ErrorCode::connect_failed) throw;
                std::cout << "refused: " << dbpool::to_string(error.code()) << ", MySQL error "
                          << error.native_code() << "\n";
            }
        }

        // 5. A wrong URL fails at once with invalid_options, naming what is wrong (never the
        //    password): here a port without a host.
        try {
            (void)dbpool::mysql::connector("mysql://app:secret@:3307/shop");
            ++failures;
        } catch (const dbpool::Error& error) {
            if (error.code() != dbpool::ErrorCode::invalid_options) throw;
            std::cout << "invalid: " << error.what() << "\n";
        }
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return failures == 0 ? 0 : 1;
}

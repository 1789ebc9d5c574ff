#pragma once

#include <dbpool/error.hpp>
#include <dbpool/mysql/client.hpp>
#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/errors.hpp>
#include <dbpool/mysql/library.hpp>
#include <dbpool/mysql/server_info.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace dbpool::mysql::detail {

// The longest timeout the client libraries take: both keep it in milliseconds in an int.
// MariaDB Connector/C multiplies by 1000 unchecked (pvio_socket_set_timeout: signed overflow);
// Oracle's vio_timeout() reads more than INT_MAX / 1000 seconds as infinite.
inline constexpr std::chrono::seconds longest_client_timeout{std::numeric_limits<int>::max() /
                                                             1000};

// `value` as the seconds to hand to mysql_options(), 0 meaning "do not set it": beyond
// longest_client_timeout a read or write bound is none (the caller's "no limit", e.g.
// seconds::max()) and a connect bound is longest_client_timeout (24.8 days). A plain cast would
// wrap instead: 2^32 + 5 s became 5 s.
inline unsigned int client_timeout(std::chrono::seconds value, bool connect) noexcept {
    if (value.count() <= 0) return 0;
    if (value > longest_client_timeout) {
        return connect ? static_cast<unsigned int>(longest_client_timeout.count()) : 0U;
    }
    return static_cast<unsigned int>(value.count());
}

// The errno at the end of a client message ("... (111)"), or 0.
inline int trailing_errno(std::string_view message) noexcept {
    if (message.size() < 3 || message.back() != ')') return 0;
    const auto open = message.rfind('(');
    if (open == std::string_view::npos || open + 2 > message.size() - 1) return 0;
    int number = 0;
    for (std::size_t i = open + 1; i + 1 < message.size(); ++i) {
        const char c = message[i];
        if (c < '0' || c > '9' || number > 100000) return 0;
        number = number * 10 + (c - '0');
    }
    return number;
}

// An errno in words, lower case: "connection refused".
inline std::string errno_words(int number) {
    std::string words = std::generic_category().message(number);
    if (!words.empty()) {
        words[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(words[0])));
    }
    return words;
}

// The errno at the end of a client message in words, so that "connection refused" is readable
// without looking numbers up; empty when there is none.
inline std::string errno_in_words(std::string_view message) {
    const int number = trailing_errno(message);
    return number == 0 ? std::string() : errno_words(number);
}

// What a plain TCP connect to host:port gets now: 0 when it connects, else the errno of the
// first address tried (ETIMEDOUT after `limit`). Connector/C reports a refused connection as
// EINPROGRESS (115), the state of its non-blocking connect, so a failed connect asks again.
inline int probe_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds limit) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return 0;
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(found, ::freeaddrinfo);
    int first_error = 0;
    for (const addrinfo* address = found; address != nullptr; address = address->ai_next) {
        const int fd = ::socket(address->ai_family, address->ai_socktype, address->ai_protocol);
        if (fd < 0) continue;
        int error = 0;
        if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
            error = errno;
        } else if (::connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
            error = errno;
            if (error == EINPROGRESS) {
                pollfd ready{fd, POLLOUT, 0};
                error = ETIMEDOUT;
                if (::poll(&ready, 1, static_cast<int>(limit.count())) > 0) {
                    socklen_t length = sizeof error;
                    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
                }
            }
        }
        ::close(fd);
        if (error == 0) return 0;
        if (first_error == 0) first_error = error;
    }
    return first_error;
}

// One open connection to the server: connect (with TLS), ping, session reset, close, and the
// server's flavour for classifying its errors. Statements are the statement part's job.
// Not thread-safe: one thread at a time.
class Session {
public:
    explicit Session(ConnectOptions options) : options_(std::move(options)) {}
    ~Session() { close(); }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    Session(Session&& other) noexcept
        : options_(std::move(other.options_)),
          handle_(std::exchange(other.handle_, nullptr)),
          server_(std::move(other.server_)) {}
    Session& operator=(Session&& other) noexcept {
        if (this != &other) {
            close();
            options_ = std::move(other.options_);
            handle_ = std::exchange(other.handle_, nullptr);
            server_ = std::move(other.server_);
        }
        return *this;
    }

    // Opens the connection; throws Error{invalid_options} or Error{connect_failed} with the
    // native number and SQLSTATE (never the password), within options.connect_timeout.
    void connect() {
        options_.validate();
        prepare_thread();
        close();
        MYSQL* mysql = mysql_init(nullptr);
        if (mysql == nullptr) {
            throw Error(ErrorCode::connect_failed, "mysql: mysql_init failed (out of memory)");
        }
        std::unique_ptr<MYSQL, void (*)(MYSQL*)> guard(mysql, mysql_close);
        set_options(mysql);
        set_tls(mysql);
        const auto c_str = [](const std::string& text) {
            return text.empty() ? nullptr : text.c_str();
        };
        // Multi-results: a CALL answers with several results even without multi-statements.
        const unsigned long flags = CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS;
        if (mysql_real_connect(mysql, options_.host.c_str(), c_str(options_.user),
                               options_.password.c_str(), c_str(options_.database), options_.port,
                               c_str(options_.unix_socket), flags) == nullptr) {
            connect_failed(mysql);
        }
        server_ = ServerInfo::parse(mysql_get_server_info(mysql));
        if (options_.tls.mode != TlsMode::disabled && options_.tls.mode != TlsMode::preferred &&
            mysql_get_ssl_cipher(mysql) == nullptr) {
            // Connector/C does not refuse a server without TLS for "required" by itself.
            throw Error(ErrorCode::connect_failed,
                        redact("mysql: cannot connect to " + where() +
                                   ": [2026/HY000] TLS is required (tls.mode " +
                                   to_string(options_.tls.mode) +
                                   ") but the server did not switch to TLS; the connection was "
                                   "closed before any statement was sent",
                               options_.password, options_.user),
                        2026, "HY000");
        }
        handle_ = guard.release();
    }

    // Closes the connection (COM_QUIT); idempotent, never throws.
    void close() noexcept {
        if (handle_ != nullptr) mysql_close(std::exchange(handle_, nullptr));
    }

    // After fork(): closes only this process's copy of the socket and sends nothing. The MYSQL
    // struct is deliberately leaked: freeing it could write to the socket the parent still uses.
    void abandon() noexcept {
        if (handle_ == nullptr) return;
        const int socket = native_socket(handle_);
        if (socket >= 0) ::close(socket);
        handle_ = nullptr;
    }

    bool is_open() const noexcept { return handle_ != nullptr; }

    // One round trip; false when the server does not answer (never reconnects).
    bool ping() noexcept { return handle_ != nullptr && mysql_ping(handle_) == 0; }

    // COM_RESET_CONNECTION: variables, temporary tables, open transaction and prepared
    // statements are gone; the connection stays.
    void reset() {
        if (mysql_reset_connection(handle()) != 0) throw error("COM_RESET_CONNECTION");
        // The reset rolled back any open transaction, but the client library keeps the status
        // flags of the last statement: without this a pool would see a transaction and close
        // the connection it just reset.
        handle_->server_status &= ~static_cast<unsigned int>(SERVER_STATUS_IN_TRANS);
    }

    // Whether the server reported an open transaction in its last reply (no round trip).
    bool in_transaction() const noexcept {
        return handle_ != nullptr && (handle_->server_status & SERVER_STATUS_IN_TRANS) != 0;
    }

    // The handle for a command; a closed session throws what the client library reports for a
    // connection it knows is gone (2006): the command was certainly not sent.
    MYSQL* handle() const {
        if (handle_ == nullptr) {
            throw Error(ErrorCode::connection_lost, "mysql: the connection is closed", 2006,
                        "HY000");
        }
        return handle_;
    }

    MYSQL* native() const noexcept { return handle_; }
    const ConnectOptions& options() const noexcept { return options_; }
    const ServerInfo& server() const noexcept { return server_; }

    // The TLS cipher in use, or empty for a plain connection.
    std::string tls_cipher() const {
        const char* cipher = handle_ != nullptr ? mysql_get_ssl_cipher(handle_) : nullptr;
        return cipher != nullptr ? cipher : "";
    }

    // The connection's last error as a classified Error for `step` (of `sql`, if given).
    Error error(std::string_view step, std::string_view sql = {}) const {
        MYSQL* mysql = handle();
        return make_error(step, sql, static_cast<int>(mysql_errno(mysql)), mysql_sqlstate(mysql),
                          mysql_error(mysql), server_, options_.password, options_.user);
    }

    // The statement's last error as a classified Error for `step` of `sql`.
    Error error(MYSQL_STMT* statement, std::string_view step, std::string_view sql) const {
        return make_error(step, sql, static_cast<int>(mysql_stmt_errno(statement)),
                          mysql_stmt_sqlstate(statement), mysql_stmt_error(statement), server_,
                          options_.password, options_.user);
    }

private:
    void set_options(MYSQL* mysql) const {
        // Connector/C bounds the handshake by connect_timeout too, so a listener that accepts
        // and never answers fails in time (tested).
        const unsigned int connect_timeout = client_timeout(options_.connect_timeout, true);
        mysql_options(mysql, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
        const unsigned int read_timeout = client_timeout(options_.read_timeout, false);
        if (read_timeout > 0) mysql_options(mysql, MYSQL_OPT_READ_TIMEOUT, &read_timeout);
        const unsigned int write_timeout = client_timeout(options_.write_timeout, false);
        if (write_timeout > 0) mysql_options(mysql, MYSQL_OPT_WRITE_TIMEOUT, &write_timeout);
        // MYSQL_OPT_RECONNECT is off by default in both libraries and is left alone: Oracle's
        // library warns on stderr whenever it is set (8.0.34+) and no longer has it (9.0).
        mysql_options(mysql, MYSQL_SET_CHARSET_NAME, options_.charset.c_str());
        if (options_.protocol != Protocol::automatic) {
            const unsigned int protocol =
                options_.protocol == Protocol::tcp ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
            mysql_options(mysql, MYSQL_OPT_PROTOCOL, &protocol);
        }
    }

    void set_tls(MYSQL* mysql) const {
        const TlsOptions& tls = options_.tls;
#if DBPOOL_MYSQL_MARIADB_CLIENT
        // Connector/C uses no TLS unless asked (tested), so disabled sets nothing. ENFORCE makes
        // it use TLS when the server offers it (it still connects in plain text when the
        // server does not: see connect()); VERIFY_SERVER_CERT checks the chain and the host
        // name, and refuses a server without TLS.
        if (tls.mode == TlsMode::disabled) return;
        const ClientBool use = 1;
        const ClientBool verify =
            tls.mode == TlsMode::verify_ca || tls.mode == TlsMode::verify_identity ? 1 : 0;
        mysql_options(mysql, MYSQL_OPT_SSL_ENFORCE, &use);
        mysql_options(mysql, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
#else
        // Oracle's default is "preferred": disabled must be said explicitly.
        unsigned int mode = SSL_MODE_DISABLED;
        switch (tls.mode) {
            case TlsMode::disabled: mode = SSL_MODE_DISABLED; break;
            case TlsMode::preferred: mode = SSL_MODE_PREFERRED; break;
            case TlsMode::required: mode = SSL_MODE_REQUIRED; break;
            case TlsMode::verify_ca: mode = SSL_MODE_VERIFY_CA; break;
            case TlsMode::verify_identity: mode = SSL_MODE_VERIFY_IDENTITY; break;
        }
        mysql_options(mysql, MYSQL_OPT_SSL_MODE, &mode);
#endif
        if (tls.mode == TlsMode::disabled) return;
        // mysql_ssl_set is gone from Oracle's library (8.3); these options exist in both.
        if (!tls.ca.empty()) mysql_options(mysql, MYSQL_OPT_SSL_CA, tls.ca.c_str());
        if (!tls.cert.empty()) mysql_options(mysql, MYSQL_OPT_SSL_CERT, tls.cert.c_str());
        if (!tls.key.empty()) mysql_options(mysql, MYSQL_OPT_SSL_KEY, tls.key.c_str());
    }

    // Where the connect went, for messages: the address and how it was reached.
    std::string where() const {
        std::string text = options_.describe();
        if (options_.uses_unix_socket()) {
            text += " through the unix socket";
            if (options_.unix_socket.empty()) {
                text += " (the client library's default path";
                if (options_.protocol == Protocol::automatic) {
                    text +=
                        "; host \"localhost\" means the socket: use 127.0.0.1, a URL with "
                        "a port, or protocol tcp for TCP";
                }
                text += ")";
            }
        }
        if (options_.tls.mode != TlsMode::disabled) {
            text += std::string(" with TLS ") + to_string(options_.tls.mode);
        }
        return text;
    }

    [[noreturn]] void connect_failed(MYSQL* mysql) const {
        const int number = static_cast<int>(mysql_errno(mysql));
        const std::string sqlstate = mysql_sqlstate(mysql);
        const std::string message = mysql_error(mysql);
        std::string text = "mysql: cannot connect to " + where() + ": [" + std::to_string(number) +
                           "/" + sqlstate + "] " + message;
        const int reported = trailing_errno(message);
        int seen = reported;
        if ((number == 2002 || number == 2003) && !options_.uses_unix_socket() &&
            (reported == 0 || reported == EINPROGRESS)) {
            const auto limit = std::min<std::chrono::milliseconds>(options_.connect_timeout,
                                                                   std::chrono::seconds(1));
            if (const int probed = probe_tcp(options_.host, options_.port, limit); probed != 0) {
                seen = probed;
            }
        }
        if (seen != 0) {
            text += ": " + errno_words(seen);
            if (seen != reported) text += " (seen by a second connect attempt)";
        }
        if (number == 2026) {
            text +=
                " (TLS failed: check that tls.ca is the CA that signed the server's "
                "certificate";
            if (options_.tls.mode == TlsMode::verify_identity ||
                (mariadb_client && options_.tls.mode == TlsMode::verify_ca)) {
                text += " and that the certificate names the host connected to";
                if (mariadb_client && options_.tls.mode == TlsMode::verify_ca) {
                    text += "; Connector/C checks the host name for verify_ca too";
                }
            }
            text += ")";
        }
        throw Error(ErrorCode::connect_failed, redact(text, options_.password, options_.user),
                    number, sqlstate);
    }

    ConnectOptions options_;
    MYSQL* handle_ = nullptr;
    ServerInfo server_;
};

}  // namespace dbpool::mysql::detail

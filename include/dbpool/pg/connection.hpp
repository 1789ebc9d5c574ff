#pragma once

/// \file
/// pg::Connection: one PostgreSQL connection over libpq, and its TransactionStatus.

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/redact.hpp>
#include <dbpool/detail/saturating.hpp>
#include <dbpool/error.hpp>
#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/errors.hpp>
#include <dbpool/pg/params.hpp>
#include <dbpool/pg/result_set.hpp>
#include <dbpool/pg/sql_scan.hpp>
#include <dbpool/pg/statement_cache.hpp>

#include <dlfcn.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbpool::pg {

/// Where the session stands with transactions, exactly as the server last reported it.
enum class TransactionStatus {
    idle,     ///< No transaction is open.
    active,   ///< A command is in progress (never seen between calls).
    open,     ///< Inside a transaction block.
    failed,   ///< Inside a failed transaction block: only ROLLBACK (or COMMIT, which rolls
              ///< back) is accepted until it ends.
    unknown,  ///< The connection is closed or broken.
};

namespace detail {

using Clock = std::chrono::steady_clock;

// When a wait ends; `bounded` false means never (a timeout of 0).
struct Deadline {
    bool bounded = false;
    Clock::time_point at{};
};

// A timeout too large for the clock (milliseconds::max(), 400 years) means no limit: adding it
// to now() would overflow into the past and time out at once.
inline Deadline deadline_after(std::chrono::milliseconds timeout) {
    if (timeout.count() <= 0) return {};
    const Clock::time_point at = dbpool::detail::saturating_add(Clock::now(), timeout);
    if (at == Clock::time_point::max()) return {};
    return {true, at};
}

// What libpq's notice callback points at: on the heap, so moving a Connection never moves it.
struct Session {
    explicit Session(ConnectOptions connect_options)
        : options(std::move(connect_options)), statements(options.statement_cache_size) {}
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session() {
        if (conn != nullptr) PQfinish(conn);
    }

    PGconn* conn = nullptr;
    ConnectOptions options;
    StatementCache statements;
    dbpool::detail::Secrets secrets;  // masked in every message
    // The server announced (a FATAL notice while idle) that it is ending this session.
    bool closing = false;
    std::string closing_sqlstate;
    std::string closing_reason;
};

// libpq's notice receiver: hands notices to on_notice and notes a FATAL (or a shutdown
// warning), which the server sends while idle just before it closes the session
// (pg_terminate_backend, shutdown, idle_session_timeout).
inline void receive_notice(void* arg, const PGresult* result) noexcept {
    auto* session = static_cast<Session*>(arg);
    const auto field = [result](int code) {
        const char* value = PQresultErrorField(result, code);
        return std::string(value != nullptr ? value : "");
    };
    try {
        Notice notice{field(PG_DIAG_SEVERITY_NONLOCALIZED), field(PG_DIAG_SQLSTATE),
                      field(PG_DIAG_MESSAGE_PRIMARY)};
        // An immediate shutdown announces itself as a WARNING with 57P01/57P02 (quickdie).
        if (notice.severity == "FATAL" || notice.severity == "PANIC" ||
            is_connection_sqlstate(notice.sqlstate)) {
            session->closing = true;
            session->closing_sqlstate = notice.sqlstate;
            session->closing_reason = "[" + notice.sqlstate + "] " + notice.message;
        }
        if (session->options.on_notice) session->options.on_notice(notice);
    } catch (...) {
        // Nothing may unwind through libpq's C frames.
    }
}

// 1 when OpenSSL holds decrypted bytes that poll() cannot see, 0 when not (or no TLS), -1
// when unknown. libpq asks the same of its own waits; an asynchronous caller must too, or a
// TLS record bigger than libpq's free buffer space stalls until the timeout. SSL_pending is
// looked up at run time so that dbpool needs neither OpenSSL headers nor a link to libssl.
inline int ssl_read_pending(PGconn* conn) noexcept {
    if (PQsslInUse(conn) == 0) return 0;
    using Pending = int (*)(const void*);
    static const Pending pending = [] {
        void* symbol = ::dlsym(RTLD_DEFAULT, "SSL_pending");
        Pending function = nullptr;
        static_assert(sizeof function == sizeof symbol);
        std::memcpy(&function, &symbol, sizeof function);
        return function;
    }();
    void* ssl = PQsslStruct(conn, "OpenSSL");
    if (pending == nullptr || ssl == nullptr) return -1;
    return pending(ssl) > 0 ? 1 : 0;
}

// Waits until the socket of `conn` reports one of `events` or the deadline passes; returns the
// events seen (POLLIN also when OpenSSL holds unread bytes), 0 on timeout.
inline short wait_socket(PGconn* conn, short events, const Deadline& deadline) {
    const bool reading = (events & POLLIN) != 0;
    const int ssl = reading ? ssl_read_pending(conn) : 0;
    if (ssl > 0) return POLLIN;
    const int fd = PQsocket(conn);
    if (fd < 0) return events;  // libpq reports the problem on the next call
    for (;;) {
        int timeout_ms = -1;
        if (deadline.bounded) {
            const auto now = Clock::now();
            if (now >= deadline.at) return 0;
            const auto left =
                std::chrono::ceil<std::chrono::milliseconds>(deadline.at - now).count();
            timeout_ms = static_cast<int>(std::min<long long>(left, 3600LL * 1000));
        }
        // Without SSL_pending, look again every 10 ms so bytes buffered in OpenSSL are found.
        if (ssl < 0) timeout_ms = timeout_ms < 0 ? 10 : std::min(timeout_ms, 10);
        pollfd entry{fd, events, 0};
        const int ready = ::poll(&entry, 1, timeout_ms);
        if (ready > 0) return entry.revents != 0 ? entry.revents : events;
        if (ready == 0) {
            if (ssl < 0) return POLLIN;  // the caller reads (nothing, usually) and waits again
            continue;                    // the deadline is checked above
        }
        if (errno != EINTR) return events;  // let libpq meet the error
    }
}

inline void drain_notifications(PGconn* conn) noexcept {
    // dbpool does not deliver LISTEN/NOTIFY; libpq would keep them queued forever.
    for (int i = 0; i < 100000; ++i) {
        PGnotify* notification = PQnotifies(conn);
        if (notification == nullptr) return;
        PQfreemem(notification);
    }
}

}  // namespace detail

/// One PostgreSQL connection over libpq: move-only, never reconnecting by itself.
///
/// Not thread-safe: use one Connection from one thread at a time (a pool guarantees this).
/// Statements with arguments (`$1`, `$2`, ...) go through the extended protocol as named
/// prepared statements, cached per connection (ConnectOptions::statement_cache_size, least
/// recently used evicted); statements without arguments use the simple protocol (several
/// statements separated by `;` are allowed; the last one's result is returned). All I/O is
/// non-blocking and bounded by the timeouts in ConnectOptions. Every failure throws
/// `dbpool::Error`: `connection_lost` when the connection broke (native code a ClientError
/// saying whether the statement can have reached the server), else the server's SQLSTATE
/// mapped by error_code_for().
///
/// Exception safety: after Error{connection_lost} the connection is broken: close it (a
/// SteadyConnection or a pool drops it by itself and opens a new one); after any other error it
/// stays open and usable (inside a transaction the server has marked the transaction failed:
/// only ROLLBACK helps). A result is returned complete or not at all.
class Connection {
public:
    /// A PGconn must never be used by two threads at once, so pools must not share it.
    static constexpr bool thread_safe_sharing = false;

    /// Connects at once; throws Error{invalid_options} or Error{connect_failed} (with the
    /// SQLSTATE when the server sent one, never the password) within the connect timeout.
    explicit Connection(ConnectOptions options)
        : session_(std::make_unique<detail::Session>(std::move(options))) {
        session_->options.validate();
        connect();
    }

    /// Connects to a `postgresql://` URL or keyword/value connection string.
    explicit Connection(std::string_view conninfo)
        : Connection(ConnectOptions::from_url(conninfo)) {}

    /// Closes the connection (see close()).
    ~Connection() { close(); }

    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Takes over the connection of `other`, which is left closed.
    Connection(Connection&& other) noexcept = default;

    /// Closes this connection and takes over the one of `other`.
    Connection& operator=(Connection&& other) noexcept {
        if (this != &other) {
            close();
            session_ = std::move(other.session_);
        }
        return *this;
    }

    /// Closes the connection (a Terminate message, sent without waiting); idempotent.
    void close() noexcept {
        if (session_) drop();
    }

    /// Whether the connection has not been closed (it may still be broken).
    bool is_open() const noexcept { return session_ && session_->conn != nullptr; }

    /// One round trip (an empty query, accepted in every transaction state); false when the
    /// server does not answer within read_timeout. Never reconnects.
    bool ping() noexcept {
        try {
            (void)exchange("ping", [](PGconn* conn) { return PQsendQuery(conn, ""); });
            return true;
        } catch (...) {
            return false;
        }
    }

    /// BEGIN.
    void begin() { (void)simple("BEGIN"); }

    /// COMMIT. In a failed transaction the server answers COMMIT with a rollback; that is
    /// raised as Error{database} with SQLSTATE 25P02 so it is never mistaken for success.
    void commit() {
        const detail::ResultPtr result = simple("COMMIT");
        if (std::strcmp(PQcmdStatus(result.get()), "ROLLBACK") == 0) {
            throw Error(ErrorCode::database,
                        "pg: COMMIT rolled the transaction back: a statement in it had failed "
                        "(the transaction was in the failed state)",
                        0, "25P02");
        }
    }

    /// ROLLBACK; nothing is sent when the server reported no open transaction.
    void rollback() {
        if (transaction_status() == TransactionStatus::idle) return;
        (void)simple("ROLLBACK");
    }

    /// Whether a transaction is open, including a failed one that still needs its ROLLBACK
    /// (PQtransactionStatus: exact, no round trip).
    bool in_transaction() const noexcept {
        const TransactionStatus status = transaction_status();
        return status == TransactionStatus::open || status == TransactionStatus::failed ||
               status == TransactionStatus::active;
    }

    /// The transaction state the server reported in its last reply (no round trip).
    TransactionStatus transaction_status() const noexcept {
        if (!is_open()) return TransactionStatus::unknown;
        switch (PQtransactionStatus(session_->conn)) {
            case PQTRANS_IDLE: return TransactionStatus::idle;
            case PQTRANS_ACTIVE: return TransactionStatus::active;
            case PQTRANS_INTRANS: return TransactionStatus::open;
            case PQTRANS_INERROR: return TransactionStatus::failed;
            case PQTRANS_UNKNOWN: break;
        }
        return TransactionStatus::unknown;
    }

    /// Clears all session state without reconnecting: ROLLBACK when a transaction is open,
    /// then DISCARD ALL (settings made with SET, temporary tables, prepared statements,
    /// LISTEN, advisory locks, session authorization), then the init statements again.
    /// Settings given at connect time (conninfo `options`) survive it.
    void reset_session() {
        if (transaction_status() != TransactionStatus::idle) (void)simple("ROLLBACK");
        (void)simple("DISCARD ALL");
        session_->statements.clear();
        for (const std::string& statement : session_->options.init_statements) {
            (void)simple(statement.c_str());
        }
    }

    /// Failure class of an exception from this type (see dbpool::pg::classify_exception).
    static Failure classify_failure(const std::exception& error) noexcept {
        return classify_exception(error);
    }

    /// After fork(): drops this process's copy of the connection without sending anything.
    /// The socket descriptor is first replaced (dup2) by an unconnected one, so libpq's
    /// PQfinish frees everything but its Terminate message and TLS close_notify go nowhere;
    /// the parent's session is untouched. If no descriptor can be made, the socket is
    /// closed and the PGconn leaked instead.
    void abandon() noexcept {
        if (!is_open()) return;
        PGconn* conn = std::exchange(session_->conn, nullptr);
        session_->statements.clear();
        const int fd = PQsocket(conn);
        bool detached = fd < 0;
        if (!detached) {
            const int dummy = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (dummy >= 0) {
                detached = ::dup2(dummy, fd) == fd;
                ::close(dummy);
            }
        }
        if (detached) {
            PQfinish(conn);
        } else {
            ::close(fd);  // the PGconn is leaked: freeing it could write to the parent's socket
        }
    }

    /// Runs `sql` with `$1`... bound to `args` (prepared, cached) or, without args, through the
    /// simple protocol; any rows are discarded. Before anything is sent, Error{usage} when the
    /// number of args is not the highest `$n` in `sql` (literals, quoted names and comments
    /// aside) or when `sql` has a COPY FROM STDIN or COPY TO STDOUT. Arguments: integers (an
    /// unsigned one above INT64_MAX is Error{usage}), bool, float/double, std::string,
    /// std::string_view, const char* (null is NULL), Blob (bytea), std::optional of those (empty is
    /// NULL), std::nullopt.
    template <class... Args>
    ExecResult execute(std::string_view sql, const Args&... args) {
        const detail::ResultPtr result = run(sql, args...);
        ExecResult out;
        out.command_tag = PQcmdStatus(result.get());
        const char* tuples = PQcmdTuples(result.get());
        std::from_chars(tuples, tuples + std::strlen(tuples), out.affected_rows);
        return out;
    }

    /// Runs `sql` like execute() and returns all rows, stored client-side.
    template <class... Args>
    ResultSet query(std::string_view sql, const Args&... args) {
        return ResultSet(run(sql, args...));
    }

    /// Has the server parse and analyse `sql` now (through the unnamed statement, with the
    /// parameter types inferred), so errors surface early; nothing is cached.
    void prepare(std::string_view sql) {
        const std::string text = checked_sql(sql);
        (void)exchange("prepare", [&](PGconn* conn) {
            return PQsendPrepare(conn, "", text.c_str(), 0, nullptr);
        });
    }

    /// `text` escaped for use inside a single-quoted SQL string literal (the connection's
    /// encoding and standard_conforming_strings); throws Error{usage} for a NUL byte or an
    /// invalid multibyte sequence.
    std::string escape(std::string_view text) {
        PGconn* conn = usable("escape");
        reject_nul(text, "escape");
        std::string out(text.size() * 2 + 1, '\0');
        int error = 0;
        const std::size_t length =
            PQescapeStringConn(conn, out.data(), text.data(), text.size(), &error);
        if (error != 0) {
            detail::raise_usage("escape failed: " + detail::one_line(PQerrorMessage(conn)));
        }
        out.resize(length);
        return out;
    }

    /// `text` as a complete SQL string literal, quotes included (PQescapeLiteral).
    std::string quote_literal(std::string_view text) {
        return escaped(text, "quote_literal", &PQescapeLiteral);
    }

    /// `name` as a quoted SQL identifier, e.g. a table name (PQescapeIdentifier).
    std::string quote_identifier(std::string_view name) {
        return escaped(name, "quote_identifier", &PQescapeIdentifier);
    }

    /// The server process id of this session (pg_backend_pid(), pg_stat_activity.pid), or 0.
    int backend_pid() const noexcept { return is_open() ? PQbackendPID(session_->conn) : 0; }

    /// The server's version string, e.g. "15.8 (Debian 15.8-0+deb12u1)"; empty when closed.
    std::string server_version() const {
        if (!is_open()) return {};
        const char* version = PQparameterStatus(session_->conn, "server_version");
        return version != nullptr ? version : "";
    }

    /// Whether the connection is encrypted with TLS.
    bool ssl_in_use() const noexcept { return is_open() && PQsslInUse(session_->conn) != 0; }

    /// The raw PGconn, or null when closed: do not close it, make it blocking or leave a
    /// command running on it.
    PGconn* native_handle() const noexcept { return is_open() ? session_->conn : nullptr; }

    /// The options this connection was opened with.
    const ConnectOptions& options() const noexcept {
        static const ConnectOptions none;
        return session_ ? session_->options : none;
    }

    /// Prepared statements currently cached.
    std::size_t cached_statements() const noexcept {
        return session_ ? session_->statements.size() : 0;
    }

private:
    void drop() noexcept {
        session_->statements.clear();
        session_->closing = false;
        // Non-blocking mode: PQfinish queues Terminate and never waits for the socket.
        if (session_->conn != nullptr) PQfinish(std::exchange(session_->conn, nullptr));
    }

    std::string masked(const std::string& text) const {
        return session_ ? dbpool::detail::redact(text, session_->secrets, "***") : text;
    }

    // Raises a failure libpq saw without a server error.
    [[noreturn]] void raise_client(ClientError code, const char* what, const std::string& detail,
                                   const std::string& sqlstate = {}) const {
        throw Error(ErrorCode::connection_lost,
                    masked(std::string("pg: ") + what + " failed: " + detail), native(code),
                    sqlstate);
    }

    // Raises the error result of a statement. The session is over when the connection status
    // is bad or the server said FATAL (class 08, 57P0x, ...); an ERROR leaves it usable.
    [[noreturn]] void raise_result(const char* what, const PGresult* error) const {
        const auto field = [error](int code) {
            const char* value = PQresultErrorField(error, code);
            return std::string(value != nullptr ? value : "");
        };
        const std::string sqlstate = field(PG_DIAG_SQLSTATE);
        const std::string severity = field(PG_DIAG_SEVERITY_NONLOCALIZED);
        std::string text = std::string("pg: ") + what + " failed: ";
        if (!sqlstate.empty()) text += "[" + sqlstate + "] ";
        text += detail::one_line(PQresultErrorMessage(error));
        const bool ended = !is_open() || PQstatus(session_->conn) == CONNECTION_BAD ||
                           severity == "FATAL" || severity == "PANIC";
        if (ended) {
            throw Error(ErrorCode::connection_lost, masked(text), native(ClientError::lost),
                        sqlstate);
        }
        ErrorCode code = error_code_for(sqlstate);
        if (code == ErrorCode::connection_lost) code = ErrorCode::database;
        throw Error(code, masked(text), 0, sqlstate);
    }

    // Closes the connection and raises a timeout: its protocol state is unknown.
    [[noreturn]] void raise_timeout(const char* what, const char* doing,
                                    std::chrono::milliseconds limit) {
        drop();
        raise_client(ClientError::timed_out, what,
                     std::string("no progress ") + doing + " within " +
                         std::to_string(limit.count()) +
                         " ms; the connection was closed (the statement may have run)");
    }

    static void reject_nul(std::string_view text, const char* what) {
        if (text.find('\0') != std::string_view::npos) {
            detail::raise_usage(std::string(what) + ": the text contains a NUL byte");
        }
    }

    static std::string checked_sql(std::string_view sql) {
        reject_nul(sql, "the SQL");
        return std::string(sql);
    }

    std::string escaped(std::string_view text, const char* what,
                        char* (*function)(PGconn*, const char*, std::size_t)) {
        PGconn* conn = usable(what);
        reject_nul(text, what);
        char* raw = function(conn, text.data(), text.size());
        if (raw == nullptr) {
            detail::raise_usage(std::string(what) +
                                " failed: " + detail::one_line(PQerrorMessage(conn)));
        }
        std::string out(raw);
        PQfreemem(raw);
        return out;
    }

    // The connection, if a statement can be sent on it; otherwise raises not_sent.
    PGconn* usable(const char* what) {
        if (!is_open()) raise_client(ClientError::not_sent, what, "the connection is closed");
        PGconn* conn = session_->conn;
        if (PQstatus(conn) != CONNECTION_OK || session_->closing) {
            const std::string reason = session_->closing ? session_->closing_reason
                                                         : detail::one_line(PQerrorMessage(conn));
            const std::string sqlstate = session_->closing_sqlstate;
            drop();
            raise_client(
                ClientError::not_sent, what,
                "the connection was already lost (" + reason + "); the statement was not sent",
                sqlstate);
        }
        return conn;
    }

    // An idle session receives nothing unless the server is ending it (a FATAL, then EOF) or
    // reports a setting change or notification. Reading what is waiting before sending tells
    // "closed before we sent" (certainly not run: safe to retry) from "lost afterwards".
    void check_before_send(PGconn* conn, const char* what) {
        for (int round = 0; round < 16; ++round) {
            pollfd entry{PQsocket(conn), POLLIN, 0};
            if (entry.fd < 0 || ::poll(&entry, 1, 0) <= 0) break;
            const int read = PQconsumeInput(conn);
            // Parses what arrived, also after EOF (libpq keeps it): notices (the FATAL that
            // says why), ParameterStatus, notifications.
            (void)PQisBusy(conn);
            detail::drain_notifications(conn);
            if (read == 0 || session_->closing) break;
        }
        if (PQstatus(conn) == CONNECTION_BAD || session_->closing) {
            const std::string reason = session_->closing ? session_->closing_reason
                                                         : detail::one_line(PQerrorMessage(conn));
            const std::string sqlstate = session_->closing_sqlstate;
            drop();
            raise_client(ClientError::not_sent, what,
                         "the server had closed the connection before the statement was sent (" +
                             reason + "); it did not run",
                         sqlstate);
        }
    }

    // Pushes the queued request out, bounded by write_timeout.
    void flush(PGconn* conn, const char* what) {
        const detail::Deadline deadline = detail::deadline_after(session_->options.write_timeout);
        for (;;) {
            const int pending = PQflush(conn);
            if (pending == 0) return;
            if (pending < 0) {
                raise_client(ClientError::lost, what,
                             "sending failed: " + detail::one_line(PQerrorMessage(conn)));
            }
            const short ready = detail::wait_socket(conn, POLLIN | POLLOUT, deadline);
            if (ready == 0) raise_timeout(what, "sending", session_->options.write_timeout);
            if ((ready & (POLLIN | POLLHUP | POLLERR)) != 0 && PQconsumeInput(conn) == 0) {
                raise_client(ClientError::lost, what,
                             "the connection broke while sending: " +
                                 detail::one_line(PQerrorMessage(conn)));
            }
        }
    }

    // Reads COPY TO STDOUT data to its end and throws it away.
    void drain_copy(PGconn* conn, const char* what, const detail::Deadline& deadline) {
        for (;;) {
            char* buffer = nullptr;
            const int length = PQgetCopyData(conn, &buffer, 1);
            if (buffer != nullptr) PQfreemem(buffer);
            if (length > 0) continue;
            if (length < 0) return;  // done (-1) or failed (-2): PQgetResult says which
            if (detail::wait_socket(conn, POLLIN, deadline) == 0) {
                raise_timeout(what, "reading COPY data", session_->options.read_timeout);
            }
            if (PQconsumeInput(conn) == 0) return;
        }
    }

    // Reads every result of the request; returns the last one or raises the first error.
    detail::ResultPtr collect(PGconn* conn, const char* what) {
        const detail::Deadline deadline = detail::deadline_after(session_->options.read_timeout);
        detail::ResultPtr last;
        detail::ResultPtr error;
        bool copy = false;
        bool copy_in = false;
        for (int count = 0; count < 1000000; ++count) {
            while (PQisBusy(conn) != 0) {
                if (detail::wait_socket(conn, POLLIN, deadline) == 0) {
                    raise_timeout(what, "waiting for the reply", session_->options.read_timeout);
                }
                if (PQconsumeInput(conn) == 0) break;  // PQgetResult reports the failure
            }
            detail::ResultPtr result(PQgetResult(conn));
            if (!result) break;
            switch (PQresultStatus(result.get())) {
                case PGRES_COPY_IN:
                    copy = true;
                    copy_in = true;
                    (void)PQputCopyEnd(conn, "dbpool does not support COPY FROM STDIN");
                    flush(conn, what);
                    break;
                case PGRES_COPY_OUT:
                    copy = true;
                    drain_copy(conn, what, deadline);
                    break;
                case PGRES_COPY_BOTH:
                    drop();
                    detail::raise_usage(std::string(what) +
                                        ": replication (COPY BOTH) is not supported; the "
                                        "connection was closed");
                case PGRES_BAD_RESPONSE:
                case PGRES_NONFATAL_ERROR:
                case PGRES_FATAL_ERROR:
                    if (!error) error = std::move(result);
                    break;
                default: last = std::move(result); break;
            }
        }
        detail::drain_notifications(conn);
        // Only a COPY that check_statement() did not recognise gets here: ending it with an
        // error is the one way that writes nothing, and the server reports it (57014).
        if (copy_in && is_open() && PQstatus(conn) == CONNECTION_OK) {
            detail::raise_usage(
                std::string(what) +
                ": COPY FROM STDIN is not supported (dbpool ended it with an error, so nothing "
                "was copied" +
                (transaction_status() == TransactionStatus::failed
                     ? "; the enclosing transaction has failed: roll it back)"
                     : ")"));
        }
        if (error) raise_result(what, error.get());
        if (copy) {
            detail::raise_usage(std::string(what) +
                                ": COPY is not supported (the statement's COPY was ended)");
        }
        if (!last) {
            raise_client(ClientError::lost, what,
                         "no result arrived: " + detail::one_line(PQerrorMessage(conn)));
        }
        return last;
    }

    // One request: the liveness check, `send(conn)` (a PQsend* call), the flush and the reply.
    template <class Send>
    detail::ResultPtr exchange(const char* what, Send&& send) {
        PGconn* conn = usable(what);
        check_before_send(conn, what);
        if (send(conn) == 0) {
            const std::string reason = detail::one_line(PQerrorMessage(conn));
            if (PQstatus(conn) == CONNECTION_BAD) {
                raise_client(ClientError::lost, what, "sending failed: " + reason);
            }
            detail::raise_usage(std::string(what) + " could not be sent: " + reason);
        }
        flush(conn, what);
        return collect(conn, what);
    }

    detail::ResultPtr simple(const char* sql) {
        return exchange(sql, [sql](PGconn* conn) { return PQsendQuery(conn, sql); });
    }

    // The name of the prepared statement for `sql` with these argument types, preparing it on
    // a miss. Nothing here executes anything, so a failure of the connection is re-raised as
    // not_sent: the caller's statement certainly did not reach the server.
    template <std::size_t N>
    std::string statement(const std::string& sql, const std::array<Oid, N>& types) {
        std::string key = sql;
        key += '\x1f';
        for (const Oid type : types) {
            key += std::to_string(type);
            key += ',';
        }
        detail::StatementCache& cache = session_->statements;
        if (const std::string* name = cache.find(key)) return *name;
        std::string name = cache.next_name();
        try {
            (void)exchange("prepare", [&](PGconn* conn) {
                return PQsendPrepare(conn, name.c_str(), sql.c_str(), static_cast<int>(N),
                                     types.data());
            });
            for (const std::string& evicted : cache.insert(key, name)) {
                try {
                    (void)simple(("DEALLOCATE " + evicted).c_str());
                } catch (const Error& error) {
                    // A statement the server forgot already is fine; a broken link is not.
                    if (classify_exception(error) != Failure::none) throw;
                }
            }
        } catch (const Error& error) {
            if (classify_exception(error) == Failure::none) throw;
            throw Error(error.code(),
                        std::string(error.what()) + " (before the statement was executed)",
                        native(ClientError::not_sent), error.sqlstate());
        }
        return name;
    }

    // Whether the server reads '...' without backslash escapes (the default since 9.1).
    bool standard_strings() const noexcept {
        if (!is_open()) return true;
        const char* value = PQparameterStatus(session_->conn, "standard_conforming_strings");
        return value == nullptr || std::strcmp(value, "off") != 0;
    }

    // Refuses, before anything is sent, what dbpool cannot run: COPY to or from the client
    // (its data would have to flow through this call; answering COPY IN with an error would
    // fail an enclosing transaction) and a number of arguments other than the highest `$n`
    // (the server takes extra ones silently, as parameters nothing uses).
    void check_statement(std::string_view sql, std::size_t arguments) const {
        const detail::SqlShape shape = detail::scan_sql(sql, standard_strings());
        if (shape.copy_client) {
            detail::raise_usage(
                "COPY FROM STDIN and COPY TO STDOUT are not supported; nothing was sent");
        }
        if (arguments > 0 && shape.highest_param != arguments) {
            detail::raise_usage("the statement's highest placeholder is $" +
                                std::to_string(shape.highest_param) + " but " +
                                std::to_string(arguments) +
                                " argument(s) were given (one per $1..$n); nothing was sent");
        }
    }

    template <class... Args>
    detail::ResultPtr run(std::string_view sql, const Args&... args) {
        const std::string text = checked_sql(sql);
        check_statement(text, sizeof...(Args));
        if constexpr (sizeof...(Args) == 0) {
            return exchange("query",
                            [&text](PGconn* conn) { return PQsendQuery(conn, text.c_str()); });
        } else {
            constexpr std::size_t count = sizeof...(Args);
            std::array<detail::Param, count> params;
            std::size_t index = 0;
            ((detail::encode(params[index], detail::bindable(args)), ++index), ...);
            std::array<const char*, count> values{};
            std::array<Oid, count> types{};
            for (std::size_t i = 0; i < count; ++i) {
                values[i] = params[i].value;
                types[i] = params[i].type;
            }
            if (!is_open() || session_->statements.capacity() == 0) {
                return exchange("execute", [&](PGconn* conn) {
                    return PQsendQueryParams(conn, text.c_str(), static_cast<int>(count),
                                             types.data(), values.data(), nullptr, nullptr, 0);
                });
            }
            for (int attempt = 0;; ++attempt) {
                const std::string name = statement(text, types);
                try {
                    return exchange("execute", [&](PGconn* conn) {
                        return PQsendQueryPrepared(conn, name.c_str(), static_cast<int>(count),
                                                   values.data(), nullptr, nullptr, 0);
                    });
                } catch (const Error& error) {
                    // 26000: the session lost its prepared statements (a DEALLOCATE or DISCARD
                    // ALL sent through this connection). Bind failed, so nothing ran: outside a
                    // transaction, prepare again and run it once more.
                    if (error.sqlstate() != "26000" || !session_) throw;
                    session_->statements.clear();
                    if (attempt > 0 || transaction_status() != TransactionStatus::idle) throw;
                }
            }
        }
    }

    void connect();
    [[noreturn]] void connect_error(const std::string& why, bool timed_out = false);

    std::unique_ptr<detail::Session> session_;
};

namespace detail {

// In verbose mode libpq writes "FATAL:  28P01: password authentication failed ..." and a
// "LOCATION:" line: the SQLSTATE is taken out (returned) and the message keeps its usual shape.
inline std::string take_sqlstate(std::string& message) {
    std::string sqlstate;
    for (std::size_t at = message.find(":  "); at != std::string::npos;
         at = message.find(":  ", at + 1)) {
        const std::size_t code = at + 3;
        if (code + 6 > message.size() || message[code + 5] != ':') continue;
        bool valid = true;
        for (std::size_t i = code; i < code + 5; ++i) {
            const char c = message[i];
            valid = valid && ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'));
        }
        if (!valid) continue;
        if (sqlstate.empty()) sqlstate = message.substr(code, 5);
        message.erase(code, message[code + 6] == ' ' ? 7 : 6);
    }
    for (std::size_t at = message.find("LOCATION:"); at != std::string::npos;
         at = message.find("LOCATION:", at)) {
        const std::size_t end = message.find('\n', at);
        message.erase(at, end == std::string::npos ? std::string::npos : end - at + 1);
    }
    return sqlstate;
}

}  // namespace detail

inline void Connection::connect_error(const std::string& why, bool timed_out) {
    std::string message = why;
    std::string sqlstate;
    // After a timeout libpq's own message is an unfinished "connection to server ... failed: ".
    if (session_->conn != nullptr && !timed_out) {
        std::string raw = PQerrorMessage(session_->conn);
        sqlstate = detail::take_sqlstate(raw);
        if (!raw.empty()) message += (message.empty() ? "" : ": ") + detail::one_line(raw);
    }
    std::string text = "pg: cannot connect to " + session_->options.describe() + ": ";
    if (!sqlstate.empty()) text += "[" + sqlstate + "] ";
    text += message;
    text = masked(text);
    drop();
    throw Error(ErrorCode::connect_failed, text, 0, sqlstate);
}

inline void Connection::connect() {
    detail::Session& session = *session_;
    const ConnectOptions& options = session.options;
    {
        const detail::Conninfo parsed = detail::parse_conninfo(options.conninfo);
        session.secrets = detail::conninfo_secrets(options, parsed);
        // libpq never prints a password, but the one it may take from the environment is
        // masked too, should a server message ever echo it.
        if (const char* environment = std::getenv("PGPASSWORD")) {
            session.secrets.whole.emplace_back(environment);
        }
        if (const char* environment = std::getenv("PGUSER")) {
            session.secrets.users.emplace_back(environment);
        }
    }
    // Defaults first: the expanded connection string and the password override them.
    std::vector<const char*> keys = {"client_encoding", "fallback_application_name", "dbname"};
    std::vector<const char*> values = {"UTF8", "dbpool", options.conninfo.c_str()};
    if (!options.password.empty()) {
        keys.push_back("password");
        values.push_back(options.password.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);

    const detail::Deadline deadline = detail::deadline_after(options.effective_connect_timeout());
    session.conn = PQconnectStartParams(keys.data(), values.data(), 1);
    if (session.conn == nullptr) connect_error("out of memory");
    PGconn* conn = session.conn;
    PQsetNoticeReceiver(conn, &detail::receive_notice, &session);
    PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);  // puts the SQLSTATE into connect errors

    PostgresPollingStatusType state =
        PQstatus(conn) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    for (int round = 0; state != PGRES_POLLING_OK && state != PGRES_POLLING_FAILED; ++round) {
        if (round > 100000) connect_error("libpq made no progress");
        const short events = state == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        if (detail::wait_socket(conn, events, deadline) == 0) {
            connect_error("timed out after " +
                              std::to_string(options.effective_connect_timeout().count()) + " ms",
                          true);
        }
        state = PQconnectPoll(conn);
    }
    if (state == PGRES_POLLING_FAILED) connect_error("");
    PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
    if (PQsetnonblocking(conn, 1) != 0) connect_error("cannot switch to non-blocking mode");
    // The password libpq really used (it may come from PGPASSWORD or a password file).
    if (const char* used = PQpass(conn)) session.secrets.whole.emplace_back(used);

    try {
        for (const std::string& statement : options.init_statements)
            (void)simple(statement.c_str());
    } catch (const Error& error) {
        const std::string text = masked("pg: an init statement failed after connecting to " +
                                        options.describe() + ": " + error.what());
        drop();
        throw Error(ErrorCode::connect_failed, text, error.native_code(), error.sqlstate());
    }
}

}  // namespace dbpool::pg

#pragma once

// One PostgreSQL session's requests and replies: opening it, then for each request the
// liveness check, the send, the flush within write_timeout and every result within
// read_timeout, each failure raised as an Error with its failure class (not_sent, lost,
// timed_out). Statement handling (statements.hpp) and the public Connection build on it.
// Internal: namespace dbpool::pg::detail.

#include <dbpool/detail/redact.hpp>
#include <dbpool/error.hpp>
#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/errors.hpp>
#include <dbpool/pg/result_set.hpp>
#include <dbpool/pg/session.hpp>
#include <dbpool/pg/transaction_status.hpp>

#include <libpq-fe.h>
#include <poll.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbpool::pg::detail {

// The session and the request/reply steps over it. Not thread-safe. Connection derives from it
// (through Statements) and keeps the public surface; nothing here is public.
class Wire {
protected:
    explicit Wire(std::unique_ptr<Session> session) : session_(std::move(session)) {}

    bool is_open() const noexcept { return session_ && session_->conn != nullptr; }

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

    // A DISCARD ALL or DEALLOCATE ALL the caller sent dropped every prepared statement of the
    // session: the cache forgets them now, so that none of them is later found missing and taken
    // for the sign of a pooler (statements.hpp). dbpool itself sends only DEALLOCATE <name>.
    void forget_dropped_statements(const PGresult* result) noexcept {
        const char* tag = PQcmdStatus(const_cast<PGresult*>(result));
        if (tag != nullptr &&
            (std::strcmp(tag, "DISCARD ALL") == 0 || std::strcmp(tag, "DEALLOCATE ALL") == 0)) {
            session_->statements.clear();
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
                default:
                    forget_dropped_statements(result.get());
                    last = std::move(result);
                    break;
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

    void connect();
    [[noreturn]] void connect_error(const std::string& why, bool timed_out = false);

    std::unique_ptr<detail::Session> session_;
};

inline void Wire::connect_error(const std::string& why, bool timed_out) {
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

inline void Wire::connect() {
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

}  // namespace dbpool::pg::detail

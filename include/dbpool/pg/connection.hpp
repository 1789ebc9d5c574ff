#pragma once

/// \file
/// pg::Connection: one PostgreSQL connection over libpq (its session and request/reply layer
/// are in wire.hpp and session.hpp, statement handling in statements.hpp).

#include <dbpool/connection_traits.hpp>
#include <dbpool/error.hpp>
#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/errors.hpp>
#include <dbpool/pg/result_set.hpp>
#include <dbpool/pg/statements.hpp>
#include <dbpool/pg/transaction_status.hpp>

#include <libpq-fe.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace dbpool::pg {

/// One PostgreSQL connection over libpq: move-only, never reconnecting by itself.
///
/// Not thread-safe: use one Connection from one thread at a time (a pool guarantees this).
/// Statements with arguments (`$1`, `$2`, ...) go through the extended protocol as named
/// prepared statements, cached per connection (ConnectOptions::statement_cache_size, least
/// recently used evicted); statements without arguments use the simple protocol (several
/// statements separated by `;` are allowed; the last one's result is returned). A cached
/// statement found missing on the server (not dropped by dbpool, nor by a DISCARD ALL or
/// DEALLOCATE ALL sent through this connection) means a pooler in transaction mode: the
/// connection then uses the unnamed statement only (transaction_pooling_detected()), runs the
/// statement again outside a transaction, and inside one throws Error{transaction_conflict}
/// (SQLSTATE 26000): the transaction has failed and must be run again. All I/O is
/// non-blocking and bounded by the timeouts in ConnectOptions. Every failure throws
/// `dbpool::Error`: `connection_lost` when the connection broke (native code a ClientError
/// saying whether the statement can have reached the server), else the server's SQLSTATE
/// mapped by error_code_for().
///
/// Exception safety: after Error{connection_lost} the connection is broken: close it (a
/// SteadyConnection or a pool drops it by itself and opens a new one); after any other error it
/// stays open and usable (inside a transaction the server has marked the transaction failed:
/// only ROLLBACK helps). A result is returned complete or not at all.
class Connection : private detail::Statements {
public:
    /// A PGconn must never be used by two threads at once, so pools must not share it.
    static constexpr bool thread_safe_sharing = false;

    /// Connects at once; throws Error{invalid_options} or Error{connect_failed} (with the
    /// SQLSTATE when the server sent one, never the password) within the connect timeout.
    explicit Connection(ConnectOptions options)
        : detail::Statements(std::make_unique<detail::Session>(std::move(options))) {
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
    bool is_open() const noexcept { return Wire::is_open(); }

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
    TransactionStatus transaction_status() const noexcept { return Wire::transaction_status(); }

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

    /// Whether a statement this connection had prepared and cached was found missing on the
    /// server, the sign of a pooler in transaction mode (PgBouncer `pool_mode = transaction`):
    /// from then on statements with arguments go through the unnamed statement, as with
    /// `statement_cache_size = 0`. Set once, for the connection's life.
    bool transaction_pooling_detected() const noexcept {
        return session_ && session_->transaction_pooling;
    }

private:
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
};

}  // namespace dbpool::pg

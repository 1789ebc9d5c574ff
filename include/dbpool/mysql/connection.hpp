#pragma once

/// \file
/// mysql::Connection: one MySQL/MariaDB connection over the C API.

#include <dbpool/connection_traits.hpp>
#include <dbpool/error.hpp>
#include <dbpool/mysql/client.hpp>
#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/errors.hpp>
#include <dbpool/mysql/library.hpp>
#include <dbpool/mysql/result_set.hpp>
#include <dbpool/mysql/server_info.hpp>
#include <dbpool/mysql/session.hpp>
#include <dbpool/mysql/statements.hpp>

#include <cstddef>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbpool::mysql {

/// One MySQL/MariaDB connection: move-only owner of a MYSQL*, never auto-reconnecting.
///
/// Statements with arguments go through server-side prepared statements, cached per
/// connection (64, least recently used evicted); statements without arguments use the text
/// protocol. Every statement's results are read to the end (all results of a CALL included),
/// so the connection is always in sync for the next one; if that cannot be done, the
/// connection is closed and the error is connection_lost.
///
/// Errors: every failure throws `dbpool::Error` with the native number and SQLSTATE, classified
/// by classify_error() for the server connected to; statement errors name the statement
/// (shortened, literals hidden, never parameter values); no message contains the password.
///
/// Thread-safety: use one Connection from one thread at a time (a pool guarantees this); with
/// Oracle's client library, a thread must call prepare_thread() before using a connection that
/// another thread opened (dbpool's pools do).
///
/// Exception safety: after Error{connection_lost} the connection is broken: close it (a
/// SteadyConnection or a pool drops it by itself and opens a new one); after any other error it
/// stays open, in sync and usable. A result is returned complete or not at all.
class Connection {
public:
    /// A MYSQL* must never be used by two threads at once, so pools must not share it.
    static constexpr bool thread_safe_sharing = false;

    /// Connects at once; throws Error{invalid_options} or Error{connect_failed} (with the native
    /// number and SQLSTATE, never the password), within options.connect_timeout.
    explicit Connection(ConnectOptions options) : session_(std::move(options)) {
        session_.connect();
    }

    /// Closes the connection.
    ~Connection() { close(); }

    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Takes over the connection of `other`, which is left closed.
    Connection(Connection&& other) noexcept = default;

    /// Closes this connection and takes over the one of `other`.
    Connection& operator=(Connection&& other) noexcept {
        if (this != &other) {
            close();
            statements_ = std::move(other.statements_);
            session_ = std::move(other.session_);
        }
        return *this;
    }

    /// Closes the connection (COM_QUIT); idempotent, never throws.
    void close() noexcept {
        statements_.clear();
        session_.close();
    }

    /// Whether the connection has not been closed (it may still be broken).
    bool is_open() const noexcept { return session_.is_open(); }

    /// One round trip; false when the server does not answer (never reconnects).
    bool ping() noexcept { return session_.ping(); }

    /// START TRANSACTION.
    void begin() { execute("START TRANSACTION"); }

    /// COMMIT. If the connection breaks during COMMIT the outcome is unknown; the error says
    /// what the client library saw (the pool turns it into commit_unknown).
    void commit() {
        statements_.sync(session_);
        if (mysql_commit(session_.handle()) != 0) throw session_.error("COMMIT");
    }

    /// ROLLBACK.
    void rollback() {
        statements_.sync(session_);
        if (mysql_rollback(session_.handle()) != 0) throw session_.error("ROLLBACK");
    }

    /// Whether the server reported an open transaction in its last reply (no round trip).
    bool in_transaction() const noexcept { return session_.in_transaction(); }

    /// Clears all session state without reconnecting (COM_RESET_CONNECTION: variables,
    /// temporary tables, open transaction, prepared statements); only resets: the pool runs its
    /// setsession statements again afterwards.
    void reset_session() {
        statements_.sync(session_);
        // The server drops prepared statements on reset; forget ours first.
        statements_.clear();
        session_.reset();
    }

    /// Failure class of an exception from this type (see classify_exception()).
    static Failure classify_failure(const std::exception& error) noexcept {
        return classify_exception(error);
    }

    /// Initialises the client library for the calling thread (see mysql::prepare_thread()).
    static void prepare_thread() { mysql::prepare_thread(); }

    /// After fork(): closes only this process's copy of the socket and sends nothing. The MYSQL
    /// struct and its statements are deliberately leaked, because freeing them could write to
    /// the socket the parent still uses.
    void abandon() noexcept {
        statements_.leak();
        session_.abandon();
    }

    /// Runs `sql` with `?` placeholders bound to `args` (prepared, cached) or, without args,
    /// through the text protocol; every result is read and discarded. Arguments: integers,
    /// bool, float/double, std::string, std::string_view, const char* (null is NULL), Blob,
    /// std::optional of those (empty is NULL), std::nullopt; a wrong argument count is
    /// Error{usage}.
    template <class... Args>
    ExecResult execute(std::string_view sql, const Args&... args) {
        return run(sql, detail::Keep::none, args...).status;
    }

    /// Runs `sql` like execute() and returns its first result set, stored client-side (for a
    /// statement without one: no rows, and affected_rows()). Later results are read and dropped.
    template <class... Args>
    ResultSet query(std::string_view sql, const Args&... args) {
        detail::Results results = run(sql, detail::Keep::first, args...);
        if (results.sets.empty()) return ResultSet({}, {}, results.status.affected_rows);
        return std::move(results.sets.front());
    }

    /// Runs `sql` like execute() and returns every result set, in order: all the SELECTs of a
    /// CALL (with arguments, OUT parameters arrive as one more set at the end).
    template <class... Args>
    std::vector<ResultSet> query_all(std::string_view sql, const Args&... args) {
        return run(sql, detail::Keep::all, args...).sets;
    }

    /// Prepares `sql` into the statement cache now (so errors surface early).
    void prepare(std::string_view sql) { statements_.prepare(session_, sql); }

    /// `text` escaped for use inside a quoted SQL string literal (connection charset). Prefer
    /// placeholders: arguments bound to `?` need no escaping.
    std::string escape(std::string_view text) {
        std::string out(text.size() * 2 + 1, '\0');
        const unsigned long length = mysql_real_escape_string(
            session_.handle(), out.data(), text.data(), static_cast<unsigned long>(text.size()));
        if (length == static_cast<unsigned long>(-1)) throw session_.error("escape");
        out.resize(length);
        return out;
    }

    /// The server's id of this connection (CONNECTION_ID(), the Id in SHOW PROCESSLIST).
    unsigned long connection_id() { return mysql_thread_id(session_.handle()); }

    /// The raw MYSQL handle, or null when closed; do not close it or enable reconnect. Results
    /// left unread through it are drained (or the connection closed) before the next statement.
    MYSQL* native_handle() const noexcept { return session_.native(); }

    /// The server's version string, e.g. "10.11.6-MariaDB".
    std::string server_version() { return mysql_get_server_info(session_.handle()); }

    /// The server's flavour and version, detected at connect.
    const ServerInfo& server() const noexcept { return session_.server(); }

    /// The TLS cipher in use, or empty for a plain connection.
    std::string tls_cipher() const { return session_.tls_cipher(); }

    /// The options this connection was opened with.
    const ConnectOptions& options() const noexcept { return session_.options(); }

    /// Prepared statements currently cached.
    std::size_t cached_statements() const noexcept { return statements_.size(); }

private:
    template <class... Args>
    detail::Results run(std::string_view sql, detail::Keep keep, const Args&... args) {
        if constexpr (sizeof...(Args) == 0) {
            return statements_.run_text(session_, sql, keep);
        } else {
            return statements_.run_prepared(session_, sql, keep, args...);
        }
    }

    // Declared first so it is destroyed last: statements are closed before their connection.
    detail::Session session_;
    detail::Statements statements_;
};

}  // namespace dbpool::mysql

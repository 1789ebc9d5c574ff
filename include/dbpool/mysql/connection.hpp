#pragma once

#include <dbpool/connection_traits.hpp>
#include <dbpool/error.hpp>
#include <dbpool/mysql/binding.hpp>
#include <dbpool/mysql/connect_options.hpp>
#include <dbpool/mysql/errors.hpp>
#include <dbpool/mysql/library.hpp>
#include <dbpool/mysql/result_set.hpp>
#include <dbpool/mysql/statement_cache.hpp>

#include <mysql.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace dbpool::mysql {

/// One MySQL/MariaDB connection: move-only owner of a MYSQL*, never auto-reconnecting.
///
/// Not thread-safe: use one Connection from one thread at a time (a pool guarantees this).
/// Statements with arguments go through server-side prepared statements, cached per
/// connection (64, least recently used evicted); statements without arguments use the text
/// protocol. Every failure throws `dbpool::Error`: `connection_lost` for broken-connection
/// numbers, `database` otherwise, with the native number and SQLSTATE.
class Connection {
public:
    /// A MYSQL* must never be used by two threads at once, so pools must not share it.
    static constexpr bool thread_safe_sharing = false;

    /// Connects at once; throws Error{invalid_options} or Error{connect_failed} (with the native
    /// number and SQLSTATE, never the password), within options.connect_timeout.
    explicit Connection(ConnectOptions options) : options_(std::move(options)) {
        options_.validate();
        prepare_thread();
        connect();
    }

    /// Closes the connection.
    ~Connection() { close(); }

    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Takes over the connection of `other`, which is left closed.
    Connection(Connection&& other) noexcept
        : options_(std::move(other.options_)),
          handle_(std::exchange(other.handle_, nullptr)),
          statements_(std::move(other.statements_)) {}

    /// Closes this connection and takes over the one of `other`.
    Connection& operator=(Connection&& other) noexcept {
        if (this != &other) {
            close();
            options_ = std::move(other.options_);
            handle_ = std::exchange(other.handle_, nullptr);
            statements_ = std::move(other.statements_);
        }
        return *this;
    }

    /// Closes the connection (COM_QUIT); idempotent, never throws.
    void close() noexcept {
        statements_.clear();
        if (handle_ != nullptr) mysql_close(std::exchange(handle_, nullptr));
    }

    /// Whether the connection has not been closed (it may still be broken).
    bool is_open() const noexcept { return handle_ != nullptr; }

    /// One round trip; false when the server does not answer (never reconnects).
    bool ping() noexcept { return handle_ != nullptr && mysql_ping(handle_) == 0; }

    /// START TRANSACTION.
    void begin() { execute("START TRANSACTION"); }

    /// COMMIT.
    void commit() {
        if (mysql_commit(handle()) != 0) detail::raise(handle_, "COMMIT");
    }

    /// ROLLBACK.
    void rollback() {
        if (mysql_rollback(handle()) != 0) detail::raise(handle_, "ROLLBACK");
    }

    /// Whether the server reported an open transaction in its last reply (no round trip).
    bool in_transaction() const noexcept {
        return handle_ != nullptr && (handle_->server_status & SERVER_STATUS_IN_TRANS) != 0;
    }

    /// Clears all session state (mysql_reset_connection: variables, temporary tables, open
    /// transaction, prepared statements), then runs the init statements again.
    void reset_session() {
        // The server drops prepared statements on reset; forget ours first.
        statements_.clear();
        if (mysql_reset_connection(handle()) != 0) {
            detail::raise(handle_, "mysql_reset_connection");
        }
        for (const std::string& statement : options_.init_statements)
            execute(statement);
    }

    /// Failure class of an exception from this type: 2006 -> broken_not_sent; 2013, 2055,
    /// 4031, 1053, 1927 and the other connection errors -> broken; everything else none.
    static Failure classify_failure(const std::exception& error) noexcept {
        return classify_exception(error);
    }

    /// Initialises the client library for the calling thread (mysql_thread_end at its exit).
    static void prepare_thread() { mysql::prepare_thread(); }

    /// After fork(): closes only this process's copy of the socket and sends nothing. The MYSQL
    /// struct and its statements are deliberately leaked, because freeing them could write to
    /// the socket the parent still uses.
    void abandon() noexcept {
        if (handle_ == nullptr) return;
        statements_.leak();
        const auto socket = mysql_get_socket(handle_);
        if (socket >= 0) ::close(static_cast<int>(socket));
        handle_ = nullptr;
    }

    /// Runs `sql` with `?` placeholders bound to `args` (prepared, cached) or, without args,
    /// through the text protocol; any result set is discarded.
    template <class... Args>
    ExecResult execute(std::string_view sql, const Args&... args) {
        if constexpr (sizeof...(Args) == 0) {
            MYSQL* mysql = handle();
            if (mysql_real_query(mysql, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
                detail::raise(mysql, "query");
            }
            ExecResult result;
            discard_results(result);
            return result;
        } else {
            const std::string key(sql);
            MYSQL_STMT* statement = run_prepared(key, args...);
            if (mysql_stmt_field_count(statement) > 0) {
                if (mysql_stmt_store_result(statement) != 0) fail(statement, key, "fetch");
                mysql_stmt_free_result(statement);
            }
            return ExecResult{mysql_stmt_affected_rows(statement), mysql_stmt_insert_id(statement)};
        }
    }

    /// Runs `sql` like execute() and returns all rows, stored client-side.
    template <class... Args>
    ResultSet query(std::string_view sql, const Args&... args) {
        if constexpr (sizeof...(Args) == 0) {
            MYSQL* mysql = handle();
            if (mysql_real_query(mysql, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
                detail::raise(mysql, "query");
            }
            return read_text_result();
        } else {
            const std::string key(sql);
            return read_binary_result(key, run_prepared(key, args...));
        }
    }

    /// Prepares `sql` into the statement cache now (so errors surface early).
    void prepare(std::string_view sql) { (void)statement(std::string(sql)); }

    /// `text` escaped for use inside a quoted SQL string literal (connection charset).
    std::string escape(std::string_view text) {
        std::string out(text.size() * 2 + 1, '\0');
        const unsigned long length = mysql_real_escape_string(
            handle(), out.data(), text.data(), static_cast<unsigned long>(text.size()));
        if (length == static_cast<unsigned long>(-1)) detail::raise(handle_, "escape");
        out.resize(length);
        return out;
    }

    /// The server's id of this connection (CONNECTION_ID(), the Id in SHOW PROCESSLIST).
    unsigned long connection_id() { return mysql_thread_id(handle()); }

    /// The raw MYSQL handle, or null when closed; do not close it or enable reconnect.
    MYSQL* native_handle() const noexcept { return handle_; }

    /// The server's version string, e.g. "10.11.6-MariaDB".
    std::string server_version() { return mysql_get_server_info(handle()); }

    /// The options this connection was opened with.
    const ConnectOptions& options() const noexcept { return options_; }

    /// Prepared statements currently cached.
    std::size_t cached_statements() const noexcept { return statements_.size(); }

private:
    MYSQL* handle() const {
        // Same number the client library uses for a closed handle: certainly not sent.
        if (handle_ == nullptr) {
            throw Error(ErrorCode::connection_lost, "mysql: the connection is closed", 2006,
                        "HY000");
        }
        return handle_;
    }

    void connect() {
        MYSQL* mysql = mysql_init(nullptr);
        if (mysql == nullptr) {
            throw Error(ErrorCode::connect_failed, "mysql: mysql_init failed (out of memory)");
        }
        std::unique_ptr<MYSQL, void (*)(MYSQL*)> guard(mysql, mysql_close);

        const auto seconds = [](std::chrono::seconds value) {
            return static_cast<unsigned int>(value.count());
        };
        const unsigned int connect_timeout = seconds(options_.connect_timeout);
        mysql_options(mysql, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
        // Connector/C bounds the handshake by connect_timeout too, so a listener that accepts
        // and never answers fails in time (tested).
        const unsigned int read_timeout = seconds(options_.read_timeout);
        if (read_timeout > 0) mysql_options(mysql, MYSQL_OPT_READ_TIMEOUT, &read_timeout);
        const unsigned int write_timeout = seconds(options_.write_timeout);
        if (write_timeout > 0) mysql_options(mysql, MYSQL_OPT_WRITE_TIMEOUT, &write_timeout);
        // dbpool reconnects itself (and re-runs setsession); the library must never do it.
        const my_bool reconnect = 0;
        mysql_options(mysql, MYSQL_OPT_RECONNECT, &reconnect);
        mysql_options(mysql, MYSQL_SET_CHARSET_NAME, options_.charset.c_str());
        set_tls(mysql);

        const auto c_str = [](const std::string& text) {
            return text.empty() ? nullptr : text.c_str();
        };
        if (mysql_real_connect(mysql, options_.host.c_str(), c_str(options_.user),
                               options_.password.c_str(), c_str(options_.database), options_.port,
                               c_str(options_.unix_socket), 0) == nullptr) {
            const int number = static_cast<int>(mysql_errno(mysql));
            throw Error(ErrorCode::connect_failed,
                        "mysql: cannot connect to " + options_.describe() + ": [" +
                            std::to_string(number) + "/" + mysql_sqlstate(mysql) + "] " +
                            mysql_error(mysql),
                        number, mysql_sqlstate(mysql));
        }
        handle_ = guard.release();
        try {
            for (const std::string& statement : options_.init_statements)
                execute(statement);
        } catch (const Error& error) {
            close();
            throw Error(ErrorCode::connect_failed,
                        std::string("mysql: an init statement failed after connecting to ") +
                            options_.describe() + ": " + error.what(),
                        error.native_code(), error.sqlstate());
        }
    }

    void set_tls(MYSQL* mysql) {
        const TlsOptions& tls = options_.tls;
        if (tls.mode == TlsMode::disabled) return;
        const auto c_str = [](const std::string& text) {
            return text.empty() ? nullptr : text.c_str();
        };
        mysql_ssl_set(mysql, c_str(tls.key), c_str(tls.cert), c_str(tls.ca), nullptr, nullptr);
#if defined(MARIADB_PACKAGE_VERSION_ID)
        // Connector/C: enforce = "encrypted or fail"; verify checks the CA and the host name
        // (it has no CA-only mode, so verify_ca is as strict as verify_identity).
        const my_bool enforce = tls.mode != TlsMode::preferred;
        mysql_options(mysql, MYSQL_OPT_SSL_ENFORCE, &enforce);
        const my_bool verify =
            tls.mode == TlsMode::verify_ca || tls.mode == TlsMode::verify_identity;
        mysql_options(mysql, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
#else
        unsigned int mode = SSL_MODE_PREFERRED;
        if (tls.mode == TlsMode::required) mode = SSL_MODE_REQUIRED;
        if (tls.mode == TlsMode::verify_ca) mode = SSL_MODE_VERIFY_CA;
        if (tls.mode == TlsMode::verify_identity) mode = SSL_MODE_VERIFY_IDENTITY;
        mysql_options(mysql, MYSQL_OPT_SSL_MODE, &mode);
#endif
    }

    // Reads and frees every result of the last text statement, keeping the protocol in sync.
    void discard_results(ExecResult& result) {
        MYSQL* mysql = handle_;
        for (int guard = 0; guard < 1000000; ++guard) {
            MYSQL_RES* res = mysql_store_result(mysql);
            if (res != nullptr) {
                mysql_free_result(res);
            } else if (mysql_field_count(mysql) != 0) {
                detail::raise(mysql, "reading a result");
            } else {
                result.affected_rows = mysql_affected_rows(mysql);
                result.last_insert_id = mysql_insert_id(mysql);
            }
            const int next = mysql_next_result(mysql);
            if (next == -1) return;
            if (next > 0) detail::raise(mysql, "reading the next result");
        }
    }

    ResultSet read_text_result() {
        MYSQL* mysql = handle_;
        MYSQL_RES* res = mysql_store_result(mysql);
        if (res == nullptr) {
            if (mysql_field_count(mysql) != 0) detail::raise(mysql, "reading a result");
            const std::uint64_t affected = mysql_affected_rows(mysql);
            if (mysql_more_results(mysql)) discard_more_results();
            return ResultSet({}, {}, affected);
        }
        std::unique_ptr<MYSQL_RES, void (*)(MYSQL_RES*)> guard(res, mysql_free_result);
        const unsigned int count = mysql_num_fields(res);
        const MYSQL_FIELD* fields = mysql_fetch_fields(res);
        std::vector<std::string> columns;
        columns.reserve(count);
        for (unsigned int i = 0; i < count; ++i)
            columns.emplace_back(fields[i].name);
        std::vector<Cell> cells;
        cells.reserve(static_cast<std::size_t>(mysql_num_rows(res)) * count);
        while (MYSQL_ROW row = mysql_fetch_row(res)) {
            const unsigned long* lengths = mysql_fetch_lengths(res);
            for (unsigned int i = 0; i < count; ++i) {
                if (row[i] == nullptr) {
                    cells.emplace_back(std::monostate{});
                } else {
                    cells.emplace_back(std::string(row[i], lengths[i]));
                }
            }
        }
        const std::uint64_t affected = mysql_affected_rows(mysql);
        guard.reset();
        if (mysql_more_results(mysql)) discard_more_results();
        return ResultSet(std::move(columns), std::move(cells), affected);
    }

    void discard_more_results() {
        MYSQL* mysql = handle_;
        for (int guard = 0; guard < 1000000; ++guard) {
            const int next = mysql_next_result(mysql);
            if (next == -1) return;
            if (next > 0) detail::raise(mysql, "reading the next result");
            if (MYSQL_RES* res = mysql_store_result(mysql)) mysql_free_result(res);
        }
    }

    // The cached prepared statement for `sql`, preparing it on a miss.
    MYSQL_STMT* statement(const std::string& sql) {
        if (MYSQL_STMT* cached = statements_.find(sql)) return cached;
        MYSQL* mysql = handle();
        MYSQL_STMT* prepared = mysql_stmt_init(mysql);
        if (prepared == nullptr) detail::raise(mysql, "mysql_stmt_init");
        if (mysql_stmt_prepare(prepared, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
            Error error =
                detail::make_error("prepare", mysql_stmt_errno(prepared),
                                   mysql_stmt_sqlstate(prepared), mysql_stmt_error(prepared));
            mysql_stmt_close(prepared);
            throw error;
        }
        statements_.insert(sql, prepared);
        return prepared;
    }

    // Raises the statement's error and drops it from the cache (it may need re-preparing).
    [[noreturn]] void fail(MYSQL_STMT* statement, const std::string& sql, const char* what) {
        Error error =
            detail::make_error(what, mysql_stmt_errno(statement), mysql_stmt_sqlstate(statement),
                               mysql_stmt_error(statement));
        statements_.erase(sql);
        throw error;
    }

    template <class... Args>
    MYSQL_STMT* run_prepared(const std::string& sql, const Args&... args) {
        MYSQL_STMT* prepared = statement(sql);
        constexpr std::size_t count = sizeof...(Args);
        if (mysql_stmt_param_count(prepared) != count) {
            detail::raise_usage(
                "the statement has " + std::to_string(mysql_stmt_param_count(prepared)) +
                " placeholders but " + std::to_string(count) + " arguments were given");
        }
        std::array<MYSQL_BIND, count> binds{};
        std::array<detail::ParamScratch, count> scratch{};
        std::size_t index = 0;
        ((detail::bind_value(binds[index], scratch[index], detail::bindable(args)), ++index), ...);
        if (mysql_stmt_bind_param(prepared, binds.data()) != 0) fail(prepared, sql, "bind");
        if (mysql_stmt_execute(prepared) != 0) fail(prepared, sql, "execute");
        return prepared;
    }

    ResultSet read_binary_result(const std::string& sql, MYSQL_STMT* prepared) {
        MYSQL_RES* meta = mysql_stmt_result_metadata(prepared);
        if (meta == nullptr) {
            if (mysql_stmt_errno(prepared) != 0) fail(prepared, sql, "metadata");
            return ResultSet({}, {}, mysql_stmt_affected_rows(prepared));
        }
        std::unique_ptr<MYSQL_RES, void (*)(MYSQL_RES*)> guard(meta, mysql_free_result);
        const unsigned int count = mysql_num_fields(meta);
        const MYSQL_FIELD* fields = mysql_fetch_fields(meta);

        enum class Kind { integer, unsigned_integer, floating, bytes };
        using BindBool = std::remove_pointer_t<decltype(MYSQL_BIND::is_null)>;
        std::vector<std::string> columns(count);
        std::vector<MYSQL_BIND> binds(count);
        std::vector<Kind> kinds(count, Kind::bytes);
        std::vector<unsigned long> lengths(count, 0);
        std::vector<BindBool> nulls(count, 0);
        std::vector<BindBool> errors(count, 0);
        std::vector<std::int64_t> integers(count, 0);
        std::vector<double> floats(count, 0.0);
        std::vector<std::string> buffers(count);
        for (unsigned int i = 0; i < count; ++i) {
            columns[i] = fields[i].name;
            MYSQL_BIND& bind = binds[i];
            bind = MYSQL_BIND{};
            bind.length = &lengths[i];
            bind.is_null = &nulls[i];
            bind.error = &errors[i];
            switch (fields[i].type) {
                case MYSQL_TYPE_TINY:
                case MYSQL_TYPE_SHORT:
                case MYSQL_TYPE_INT24:
                case MYSQL_TYPE_LONG:
                case MYSQL_TYPE_LONGLONG:
                case MYSQL_TYPE_YEAR: {
                    const bool is_unsigned = (fields[i].flags & UNSIGNED_FLAG) != 0;
                    kinds[i] = is_unsigned ? Kind::unsigned_integer : Kind::integer;
                    bind.buffer_type = MYSQL_TYPE_LONGLONG;
                    bind.buffer = &integers[i];
                    bind.is_unsigned = is_unsigned;
                    break;
                }
                case MYSQL_TYPE_FLOAT:
                case MYSQL_TYPE_DOUBLE:
                    kinds[i] = Kind::floating;
                    bind.buffer_type = MYSQL_TYPE_DOUBLE;
                    bind.buffer = &floats[i];
                    break;
                default:
                    // Text, decimals, dates and blobs arrive as bytes; long values are fetched
                    // again with the right size below.
                    buffers[i].resize(64);
                    bind.buffer_type = MYSQL_TYPE_STRING;
                    bind.buffer = buffers[i].data();
                    bind.buffer_length = static_cast<unsigned long>(buffers[i].size());
                    break;
            }
        }
        if (mysql_stmt_bind_result(prepared, binds.data()) != 0) fail(prepared, sql, "bind");
        if (mysql_stmt_store_result(prepared) != 0) fail(prepared, sql, "fetch");

        const auto rows = static_cast<std::size_t>(mysql_stmt_num_rows(prepared));
        std::vector<Cell> cells;
        cells.reserve(rows * count);
        for (std::size_t row = 0; row <= rows; ++row) {
            const int status = mysql_stmt_fetch(prepared);
            if (status == MYSQL_NO_DATA) break;
            if (status == 1) fail(prepared, sql, "fetch");
            bool rebind = false;
            for (unsigned int i = 0; i < count; ++i) {
                if (nulls[i]) {
                    cells.emplace_back(std::monostate{});
                    continue;
                }
                switch (kinds[i]) {
                    case Kind::integer: cells.emplace_back(integers[i]); break;
                    case Kind::unsigned_integer:
                        cells.emplace_back(static_cast<std::uint64_t>(integers[i]));
                        break;
                    case Kind::floating: cells.emplace_back(floats[i]); break;
                    case Kind::bytes:
                        if (lengths[i] > buffers[i].size()) {
                            buffers[i].resize(lengths[i]);
                            binds[i].buffer = buffers[i].data();
                            binds[i].buffer_length = static_cast<unsigned long>(lengths[i]);
                            if (mysql_stmt_fetch_column(prepared, &binds[i], i, 0) != 0) {
                                fail(prepared, sql, "fetch");
                            }
                            rebind = true;
                        }
                        cells.emplace_back(std::string(buffers[i].data(), lengths[i]));
                        break;
                }
            }
            if (rebind && mysql_stmt_bind_result(prepared, binds.data()) != 0) {
                fail(prepared, sql, "bind");
            }
        }
        const std::uint64_t affected = mysql_stmt_affected_rows(prepared);
        mysql_stmt_free_result(prepared);
        return ResultSet(std::move(columns), std::move(cells), affected);
    }

    ConnectOptions options_;
    MYSQL* handle_ = nullptr;
    detail::StatementCache statements_;
};

}  // namespace dbpool::mysql

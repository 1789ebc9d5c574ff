#pragma once

#include <dbpool/error.hpp>
#include <dbpool/mysql/binding.hpp>
#include <dbpool/mysql/client.hpp>
#include <dbpool/mysql/errors.hpp>
#include <dbpool/mysql/result_set.hpp>
#include <dbpool/mysql/session.hpp>
#include <dbpool/mysql/statement_cache.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbpool::mysql::detail {

// Which result sets of a statement the caller wants; every result is read either way, so the
// connection is in sync for the next command (a CALL ends with a status result after its sets).
enum class Keep {
    none,   // execute(): only the final status
    first,  // query(): the first result set
    all,    // query_all(): every result set
};

// Everything a statement returned.
struct Results {
    std::vector<ResultSet> sets;  // the result sets kept
    ExecResult status;            // the last status-only result (affected rows, insert id)
};

// "1 placeholder", "2 placeholders".
inline std::string count_of(std::size_t count, const char* noun) {
    return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

// Text and binary statement execution on a Session, with the prepared-statement cache. Every
// path reads every result of the statement; if reading stops half-way (an exception while
// results are still pending), the connection is closed and the error reports it lost, so an
// out-of-sync connection never reaches another borrower. Not thread-safe.
class Statements {
public:
    explicit Statements(std::size_t capacity = 64) : cache_(capacity) {}

    // Runs `sql` through the text protocol.
    Results run_text(Session& session, std::string_view sql, Keep keep) {
        MYSQL* mysql = ready(session);
        if (mysql_real_query(mysql, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
            throw session.error("query", sql);
        }
        return settled(session, [&] { return read_text_results(session, sql, keep); });
    }

    // Runs `sql` as a cached prepared statement with `args` bound to its placeholders.
    template <class... Args>
    Results run_prepared(Session& session, std::string_view sql, Keep keep, const Args&... args) {
        ready(session);
        const std::string key(sql);
        PreparedStatement& entry = prepared(session, key);
        MYSQL_STMT* statement = entry.handle;
        constexpr std::size_t count = sizeof...(Args);
        const auto expected = static_cast<std::size_t>(mysql_stmt_param_count(statement));
        if (expected != count) {
            raise_usage("\"" + statement_excerpt(sql) + "\" has " +
                        count_of(expected, "placeholder") + " but " + count_of(count, "argument") +
                        (count == 1 ? " was" : " were") + " given");
        }
        // Bound once per cached statement; later executions only write the values (see
        // ParamBinding in binding.hpp for why, from Oracle's client source).
        std::array<MYSQL_BIND, count> binds{};
        if (entry.params.update(binds, bindable(args)...)) {
            if (bind_parameters(statement, binds.data(), static_cast<unsigned>(count))) {
                fail(session, statement, key, "binding the parameters");
            }
            entry.params.bound(binds);
            ++parameter_binds_;
        }
        if (mysql_stmt_execute(statement) != 0) fail(session, statement, key, "execute");
        return settled(session, [&] { return read_binary_results(session, statement, key, keep); });
    }

    // Prepares `sql` into the cache now (so errors surface early).
    void prepare(Session& session, std::string_view sql) {
        ready(session);
        (void)prepared(session, std::string(sql));
    }

    // Makes sure nothing is pending before a command that is not a statement (COMMIT, reset).
    void sync(Session& session) { ready(session); }

    void clear() noexcept { cache_.clear(); }
    void leak() noexcept { cache_.leak(); }
    std::size_t size() const noexcept { return cache_.size(); }
    // How many times the client library's bind call ran (for tests: once per cached statement
    // unless its argument types change).
    std::size_t parameter_binds() const noexcept { return parameter_binds_; }

private:
    // The handle, with no results pending from earlier use (a half-read statement, or direct
    // use of native_handle()): they are read and dropped; if that fails, the connection is
    // closed and the command reported as not sent, so a pool retries it on a new connection.
    MYSQL* ready(Session& session) {
        MYSQL* mysql = session.handle();
        if (!has_pending_results(mysql)) return mysql;
        for (int guard = 0; guard < 1000 && has_pending_results(mysql); ++guard) {
            if (mysql->status == MYSQL_STATUS_GET_RESULT) {
                if (MYSQL_RES* result = mysql_store_result(mysql)) mysql_free_result(result);
            }
            if (mysql->status != MYSQL_STATUS_READY) break;
            if (mysql_more_results(mysql) && mysql_next_result(mysql) > 0) break;
        }
        if (!has_pending_results(mysql)) return mysql;
        abandon_session(session);
        throw Error(ErrorCode::connection_lost,
                    "mysql: the connection still had unread results from earlier use and could "
                    "not be brought back in sync, so it was closed; the statement was not sent",
                    2006, "HY000");
    }

    // Runs `read`; when it throws with results still pending, the connection cannot be used
    // again: it is closed and a database error becomes connection_lost.
    template <class Read>
    Results settled(Session& session, Read read) {
        try {
            return read();
        } catch (const Error& error) {
            if (!out_of_sync(session)) throw;
            abandon_session(session);
            if (error.code() == ErrorCode::connection_lost) throw;
            throw Error(ErrorCode::connection_lost,
                        std::string(error.what()) +
                            " (results were left unread, so the connection was closed)",
                        error.native_code(), error.sqlstate());
        } catch (...) {
            if (out_of_sync(session)) abandon_session(session);
            throw;
        }
    }

    static bool out_of_sync(const Session& session) noexcept {
        return session.is_open() && has_pending_results(session.native());
    }

    // Closes an out-of-sync connection. The connection goes first: mysql_close detaches its
    // statements, so closing them afterwards only frees memory and sends nothing into a
    // protocol that is out of step.
    void abandon_session(Session& session) noexcept {
        session.close();
        cache_.clear();
    }

    Results read_text_results(Session& session, std::string_view sql, Keep keep) {
        MYSQL* mysql = session.native();
        Results results;
        // Bounded: a statement cannot return more results than the server sends; the bound
        // only keeps a misbehaving peer from looping us forever.
        for (std::size_t guard = 0; guard < 1000000; ++guard) {
            if (MYSQL_RES* result = mysql_store_result(mysql)) {
                std::unique_ptr<MYSQL_RES, void (*)(MYSQL_RES*)> owned(result, mysql_free_result);
                if (keep == Keep::all || (keep == Keep::first && results.sets.empty())) {
                    results.sets.push_back(decode_text(result, mysql_affected_rows(mysql)));
                }
            } else if (mysql_field_count(mysql) != 0) {
                throw session.error("reading the result", sql);
            } else {
                results.status = {mysql_affected_rows(mysql), mysql_insert_id(mysql)};
            }
            const int next = mysql_next_result(mysql);
            if (next == -1) break;
            if (next > 0) throw session.error("reading the next result", sql);
        }
        return results;
    }

    static ResultSet decode_text(MYSQL_RES* result, std::uint64_t affected) {
        const unsigned int count = mysql_num_fields(result);
        const MYSQL_FIELD* fields = mysql_fetch_fields(result);
        std::vector<std::string> columns;
        columns.reserve(count);
        for (unsigned int i = 0; i < count; ++i)
            columns.emplace_back(fields[i].name);
        std::vector<Cell> cells;
        cells.reserve(static_cast<std::size_t>(mysql_num_rows(result)) * count);
        while (MYSQL_ROW row = mysql_fetch_row(result)) {
            const unsigned long* lengths = mysql_fetch_lengths(result);
            for (unsigned int i = 0; i < count; ++i) {
                if (row[i] == nullptr) {
                    cells.emplace_back(std::monostate{});
                } else {
                    cells.emplace_back(std::string(row[i], lengths[i]));
                }
            }
        }
        return ResultSet(std::move(columns), std::move(cells), affected);
    }

    // The cached prepared statement for `sql`, preparing it on a miss.
    PreparedStatement& prepared(Session& session, const std::string& sql) {
        if (PreparedStatement* cached = cache_.find(sql)) return *cached;
        MYSQL* mysql = session.handle();
        MYSQL_STMT* statement = mysql_stmt_init(mysql);
        if (statement == nullptr) throw session.error("mysql_stmt_init");
        if (mysql_stmt_prepare(statement, sql.data(), static_cast<unsigned long>(sql.size())) !=
            0) {
            Error error = session.error(statement, "prepare", sql);
            mysql_stmt_close(statement);
            throw error;
        }
        return cache_.insert(sql, statement);
    }

    // Raises the statement's error and drops it from the cache (it may need re-preparing).
    [[noreturn]] void fail(Session& session, MYSQL_STMT* statement, const std::string& sql,
                           const char* step) {
        Error error = session.error(statement, step, sql);
        cache_.erase(sql);
        throw error;
    }

    Results read_binary_results(Session& session, MYSQL_STMT* statement, const std::string& sql,
                                Keep keep) {
        Results results;
        for (std::size_t guard = 0; guard < 1000000; ++guard) {
            if (mysql_stmt_field_count(statement) > 0) {
                if (keep == Keep::all || (keep == Keep::first && results.sets.empty())) {
                    results.sets.push_back(decode_binary(session, statement, sql));
                } else if (mysql_stmt_store_result(statement) != 0) {
                    fail(session, statement, sql, "reading the result");
                }
                mysql_stmt_free_result(statement);
            } else {
                results.status = {mysql_stmt_affected_rows(statement),
                                  mysql_stmt_insert_id(statement)};
            }
            // A CALL answers with its result sets and then a status result; leaving that unread
            // puts the connection out of sync ("Commands out of sync" for the next command).
            const int next = mysql_stmt_next_result(statement);
            if (next == -1) break;
            if (next > 0) fail(session, statement, sql, "reading the next result");
        }
        return results;
    }

    // Where one column of a binary-protocol row is fetched to. MYSQL_BIND wants addresses of
    // the flag type the library uses (bool in Oracle's, my_bool in Connector/C), so these live
    // in a struct per column rather than in std::vector<bool>.
    struct OutputColumn {
        enum class Kind { integer, unsigned_integer, floating, bytes };
        Kind kind = Kind::bytes;
        unsigned long length = 0;
        ClientBool is_null = 0;
        ClientBool error = 0;
        std::int64_t integer = 0;
        double floating = 0.0;
        std::string bytes;
    };

    ResultSet decode_binary(Session& session, MYSQL_STMT* statement, const std::string& sql) {
        MYSQL_RES* meta = mysql_stmt_result_metadata(statement);
        if (meta == nullptr) fail(session, statement, sql, "reading the result metadata");
        std::unique_ptr<MYSQL_RES, void (*)(MYSQL_RES*)> owned(meta, mysql_free_result);
        const unsigned int count = mysql_num_fields(meta);
        const MYSQL_FIELD* fields = mysql_fetch_fields(meta);

        using Kind = OutputColumn::Kind;
        std::vector<std::string> columns(count);
        std::vector<MYSQL_BIND> binds(count);
        std::vector<OutputColumn> out(count);  // sized once: the binds point into it
        for (unsigned int i = 0; i < count; ++i) {
            columns[i] = fields[i].name;
            MYSQL_BIND& bind = binds[i];
            OutputColumn& column = out[i];
            bind = MYSQL_BIND{};
            bind.length = &column.length;
            bind.is_null = &column.is_null;
            bind.error = &column.error;
            switch (fields[i].type) {
                case MYSQL_TYPE_TINY:
                case MYSQL_TYPE_SHORT:
                case MYSQL_TYPE_INT24:
                case MYSQL_TYPE_LONG:
                case MYSQL_TYPE_LONGLONG:
                case MYSQL_TYPE_YEAR: {
                    const bool is_unsigned = (fields[i].flags & UNSIGNED_FLAG) != 0;
                    column.kind = is_unsigned ? Kind::unsigned_integer : Kind::integer;
                    bind.buffer_type = MYSQL_TYPE_LONGLONG;
                    bind.buffer = &column.integer;
                    bind.is_unsigned = is_unsigned ? 1 : 0;
                    break;
                }
                case MYSQL_TYPE_FLOAT:
                case MYSQL_TYPE_DOUBLE:
                    column.kind = Kind::floating;
                    bind.buffer_type = MYSQL_TYPE_DOUBLE;
                    bind.buffer = &column.floating;
                    break;
                default:
                    // Text, decimals, dates and blobs arrive as bytes; long values are fetched
                    // again with the right size below.
                    column.bytes.resize(64);
                    bind.buffer_type = MYSQL_TYPE_STRING;
                    bind.buffer = column.bytes.data();
                    bind.buffer_length = static_cast<unsigned long>(column.bytes.size());
                    break;
            }
        }
        if (mysql_stmt_bind_result(statement, binds.data()) != 0) {
            fail(session, statement, sql, "binding the result");
        }
        if (mysql_stmt_store_result(statement) != 0) {
            fail(session, statement, sql, "reading the result");
        }

        const auto rows = static_cast<std::size_t>(mysql_stmt_num_rows(statement));
        std::vector<Cell> cells;
        cells.reserve(rows * count);
        for (std::size_t row = 0; row <= rows; ++row) {
            const int status = mysql_stmt_fetch(statement);
            if (status == MYSQL_NO_DATA) break;
            if (status == 1) fail(session, statement, sql, "fetch");
            // MYSQL_DATA_TRUNCATED: a byte column outgrew its buffer; fetched again below.
            bool rebind = false;
            for (unsigned int i = 0; i < count; ++i) {
                OutputColumn& column = out[i];
                if (column.is_null != 0) {
                    cells.emplace_back(std::monostate{});
                    continue;
                }
                switch (column.kind) {
                    case Kind::integer: cells.emplace_back(column.integer); break;
                    case Kind::unsigned_integer:
                        cells.emplace_back(static_cast<std::uint64_t>(column.integer));
                        break;
                    case Kind::floating: cells.emplace_back(column.floating); break;
                    case Kind::bytes:
                        if (column.length > column.bytes.size()) {
                            column.bytes.resize(column.length);
                            binds[i].buffer = column.bytes.data();
                            binds[i].buffer_length = static_cast<unsigned long>(column.length);
                            if (mysql_stmt_fetch_column(statement, &binds[i], i, 0) != 0) {
                                fail(session, statement, sql, "fetch");
                            }
                            rebind = true;
                        }
                        cells.emplace_back(std::string(column.bytes.data(), column.length));
                        break;
                }
            }
            if (rebind && mysql_stmt_bind_result(statement, binds.data()) != 0) {
                fail(session, statement, sql, "binding the result");
            }
        }
        return ResultSet(std::move(columns), std::move(cells), mysql_stmt_affected_rows(statement));
    }

    StatementCache cache_;
    std::size_t parameter_binds_ = 0;
};

}  // namespace dbpool::mysql::detail

#pragma once

// Statements on a PostgreSQL session: checked before anything is sent (NUL bytes, COPY, the
// argument count), then run through the simple protocol or, with arguments, as named prepared
// statements cached per session; a cached statement found missing means a pooler in transaction
// mode, and the session goes on with unnamed statements only. Internal: namespace
// dbpool::pg::detail.

#include <dbpool/error.hpp>
#include <dbpool/pg/errors.hpp>
#include <dbpool/pg/params.hpp>
#include <dbpool/pg/result_set.hpp>
#include <dbpool/pg/sql_scan.hpp>
#include <dbpool/pg/statement_cache.hpp>
#include <dbpool/pg/transaction_status.hpp>
#include <dbpool/pg/wire.hpp>

#include <libpq-fe.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace dbpool::pg::detail {

// Whether `error` is the server's 26000 about statement `name` (and not, say, about a
// statement the caller's own EXECUTE named). The names end in a counter: "..._1" must not
// match a message about "..._12".
inline bool names_missing_statement(const Error& error, const std::string& name) {
    if (error.sqlstate() != "26000" || error.code() != ErrorCode::database) return false;
    const std::string_view message = error.what();
    for (std::size_t at = message.find(name); at != std::string_view::npos;
         at = message.find(name, at + 1)) {
        const std::size_t after = at + name.size();
        if (after == message.size() || message[after] < '0' || message[after] > '9') {
            return true;
        }
    }
    return false;
}

// Statement execution over the Wire. Not thread-safe.
class Statements : public Wire {
protected:
    using Wire::Wire;

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
                    if (!names_missing_statement(error, evicted)) continue;
                    // Missing although cached: the sign of a pooler, as in run(). Inside a
                    // transaction the failed DEALLOCATE has failed the caller's transaction too.
                    cache.clear();
                    session_->transaction_pooling = true;
                    if (transaction_status() != TransactionStatus::idle) {
                        raise_pooled_transaction(error, evicted);
                    }
                    break;
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
            const auto unnamed = [&] {
                return exchange("execute", [&](PGconn* conn) {
                    return PQsendQueryParams(conn, text.c_str(), static_cast<int>(count),
                                             types.data(), values.data(), nullptr, nullptr, 0);
                });
            };
            if (!is_open() || session_->statements.capacity() == 0 ||
                session_->transaction_pooling) {
                return unnamed();
            }
            const std::string name = statement(text, types);
            if (session_->transaction_pooling) return unnamed();  // found out while evicting
            try {
                return exchange("execute", [&](PGconn* conn) {
                    return PQsendQueryPrepared(conn, name.c_str(), static_cast<int>(count),
                                               values.data(), nullptr, nullptr, 0);
                });
            } catch (const Error& error) {
                if (!session_ || !names_missing_statement(error, name)) throw;
                // The statement this session prepared and cached is gone, and neither dbpool
                // nor the caller dropped it (a DISCARD ALL or DEALLOCATE ALL clears the cache):
                // the server connection changed under the session, as behind a pooler in
                // transaction mode. Named statements cannot work there: unnamed ones from now on.
                session_->statements.clear();
                session_->transaction_pooling = true;
                // Bind failed, so nothing ran: outside a transaction run it again, unnamed.
                if (transaction_status() == TransactionStatus::idle) return unnamed();
                raise_pooled_transaction(error, name);
            }
        }
    }

    // The typed error for a cached statement missing inside a transaction: not a broken
    // connection (the session is fine and the server knows the transaction failed), but a
    // transaction to run again, which now works since the session has switched to unnamed
    // statements.
    [[noreturn]] void raise_pooled_transaction(const Error& error, const std::string& name) const {
        throw Error(
            ErrorCode::transaction_conflict,
            masked("pg: execute failed: [26000] prepared statement \"" + name +
                   "\", which this connection prepared and cached, was missing on the server "
                   "connection running this transaction: a pooler in transaction mode (e.g. "
                   "PgBouncer pool_mode = transaction, before 1.21) ran the transaction on "
                   "another server connection than the one it was prepared on. The transaction "
                   "has failed on the server: roll it back and run it again from its start "
                   "(this connection uses unnamed statements from now on, so the retry works). "
                   "To avoid it, set statement_cache_size = 0 (ConnectOptions, or "
                   "statement_cache_size=0 in the connection string)."),
            0, error.sqlstate());
    }
};

}  // namespace dbpool::pg::detail

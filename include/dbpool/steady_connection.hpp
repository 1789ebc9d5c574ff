#pragma once

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/cheap_clock.hpp>
#include <dbpool/detail/creator.hpp>
#include <dbpool/detail/no_mutex.hpp>
#include <dbpool/detail/validate_options.hpp>
#include <dbpool/error.hpp>
#include <dbpool/options.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace dbpool {

/// A connection that reopens itself through its creator: on broken-connection errors, after
/// maxusage statements, and when a ping finds it dead; setsession runs after every open.
///
/// Statements go through run(), execute(), query() or prepare(); raw() is the unprotected
/// escape hatch. Not thread-safe unless the connection type declares thread_safe_sharing.
template <class Connection, class Clock = std::chrono::steady_clock>
class SteadyConnection {
    using Traits = ConnectionTraits<Connection>;
    using TimePoint = typename Clock::time_point;
    using Lock = std::lock_guard<detail::MaybeMutex<Traits::thread_safe_sharing>>;

public:
    using connection_type = Connection;
    using clock_type = Clock;

    /// Opens the first connection; throws Error{invalid_options} or Error{connect_failed}.
    template <class Creator,
              class = std::enable_if_t<!std::is_same_v<std::decay_t<Creator>, SteadyConnection>>>
    explicit SteadyConnection(Creator&& creator, SteadyOptions options = {})
        : creator_(detail::make_creator<Connection>(std::forward<Creator>(creator))),
          options_(std::move(options)) {
        detail::validate(options_);
        open();
    }

    SteadyConnection(const SteadyConnection&) = delete;
    SteadyConnection& operator=(const SteadyConnection&) = delete;

    ~SteadyConnection() { force_close(); }

    /// Runs `statement(Connection&)` as one protected statement (ping bit 4, maxusage, retry
    /// only when it certainly did not reach the server).
    template <class F>
    decltype(auto) run(F&& statement) {
        Lock lock(mutex_);
        return guarded(Ping::on_execute, statement);
    }

    /// Forwards to Connection::execute as a protected statement.
    template <class... Args>
    decltype(auto) execute(Args&&... args) {
        return run([&](Connection& c) -> decltype(auto) {
            return c.execute(std::forward<Args>(args)...);
        });
    }

    /// Forwards to Connection::query as a protected statement.
    template <class... Args>
    decltype(auto) query(Args&&... args) {
        return run(
            [&](Connection& c) -> decltype(auto) { return c.query(std::forward<Args>(args)...); });
    }

    /// Forwards to Connection::prepare (ping bit 2: a statement object is created).
    template <class... Args>
    decltype(auto) prepare(Args&&... args) {
        Lock lock(mutex_);
        auto statement = [&](Connection& c) -> decltype(auto) {
            return c.prepare(std::forward<Args>(args)...);
        };
        return guarded(Ping::on_cursor, statement);
    }

    /// Starts a transaction; until commit() or rollback() the connection is never replaced
    /// silently.
    void begin() {
        Lock lock(mutex_);
        ensure_open();
        // Not inside a transaction yet, so a begin that never reached the server may be retried.
        for (int attempt = 0;; ++attempt) {
            try {
                Traits::begin(*connection_);
                break;
            } catch (const std::exception& error) {
                const Failure failure = classify(error);
                if (failure == Failure::none) throw;
                const bool reopened = replace_broken();
                if (failure != Failure::broken_not_sent || attempt > 0 || !reopened) throw;
            }
        }
        transaction_ = true;
    }

    /// Commits. If the connection breaks during COMMIT the outcome is unknown; the error is
    /// raised and the connection replaced.
    void commit() {
        Lock lock(mutex_);
        transaction_ = false;
        ensure_open();
        try {
            Traits::commit(*connection_);
        } catch (const std::exception& error) {
            if (classify(error) != Failure::none) replace_broken();
            throw;
        }
    }

    /// Rolls back. A broken connection is replaced quietly: the server already discarded the
    /// transaction, which is what rollback asks for.
    void rollback() {
        Lock lock(mutex_);
        transaction_ = false;
        if (!connection_) return;
        try {
            Traits::rollback(*connection_);
        } catch (const std::exception& error) {
            if (classify(error) == Failure::none) throw;
            replace_broken();
        }
    }

    /// True after begin() until commit()/rollback(), or while the server reports an open one.
    bool in_transaction() const noexcept {
        Lock lock(mutex_);
        return transaction_ || (connection_ && Traits::in_transaction(*connection_));
    }

    /// in_transaction(), or nothing when another thread sharing the connection is using it
    /// right now (never waits: pools call this under their own lock).
    std::optional<bool> in_transaction_if_free() const noexcept {
        std::unique_lock<detail::MaybeMutex<Traits::thread_safe_sharing>> lock(mutex_,
                                                                               std::try_to_lock);
        if (!lock.owns_lock()) return std::nullopt;
        return in_transaction();
    }

    /// Ping bit 1: pools call this when they hand the connection out.
    void check_on_request() { check_on_request(detail::cheap_now<Clock>()); }

    /// Ping bit 1, with the caller's idea of the current time (pools pass a cheap one).
    void check_on_request(TimePoint now) {
        Lock lock(mutex_);
        if (!connection_) {
            open();
            return;
        }
        if ((options_.ping & Ping::on_request) != 0) ping_check(now);
    }

    /// Closes the connection and opens a new one through the creator.
    void reconnect() {
        Lock lock(mutex_);
        force_close_locked();
        open();
    }

    /// Clears all session state (MySQL COM_RESET_CONNECTION) and runs setsession again.
    void reset_session() {
        Lock lock(mutex_);
        ensure_open();
        transaction_ = false;
        try {
            Traits::reset_session(*connection_);
            run_setsession();
            usage_ = 0;
        } catch (const std::exception& error) {
            if (classify(error) == Failure::none) throw;
            replace_broken();
        }
    }

    /// Closes, unless the connection is not closeable; then it only rolls back an open
    /// transaction. Never throws.
    void close() noexcept {
        Lock lock(mutex_);
        if (options_.closeable) {
            force_close_locked();
        } else if (in_transaction()) {
            try {
                transaction_ = false;
                Traits::rollback(*connection_);
            } catch (...) {
                force_close_locked();  // a connection that cannot roll back is not reusable
            }
        }
    }

    /// Closes regardless of closeable; the next statement reopens. Never throws.
    void force_close() noexcept {
        Lock lock(mutex_);
        force_close_locked();
    }

    /// Pings now, ignoring the bypass window; false (and nothing replaced) when it is dead.
    bool ping() noexcept {
        Lock lock(mutex_);
        if (!connection_ || !Traits::ping(*connection_)) return false;
        touch();
        return true;
    }

    /// Forgets the connection without sending anything (used in a child after fork()): the
    /// socket belongs to the parent. Connection types without abandon() are leaked instead.
    void abandon() noexcept {
        if (!connection_) return;
        if constexpr (Traits::can_abandon) {
            Traits::abandon(*connection_);
            connection_.reset();
        } else {
            static_cast<void>(connection_.release());
        }
        transaction_ = false;
    }

    /// Whether a connection is currently open.
    bool is_open() const noexcept { return connection_ != nullptr; }

    /// The raw connection, opened if needed: no ping, no counting, no reconnect.
    Connection& raw() {
        ensure_open();
        return *connection_;
    }

    /// Statements since the last (re)connect.
    std::uint64_t usage() const noexcept { return usage_; }
    /// How many times the creator succeeded for this object (first open included).
    std::uint64_t connects() const noexcept { return connects_; }
    /// How many times the connection was replaced after being opened.
    std::uint64_t reconnects() const noexcept { return connects_ > 0 ? connects_ - 1 : 0; }
    /// When the current connection was opened.
    TimePoint opened_at() const noexcept { return opened_at_; }
    /// When the last statement or ping succeeded.
    TimePoint last_success() const noexcept { return last_success_; }
    /// The options this connection was made with.
    const SteadyOptions& options() const noexcept { return options_; }

private:
    template <class F>
    decltype(auto) guarded(unsigned ping_bit, F& statement) {
        prepare_for_statement(ping_bit);
        for (int attempt = 0;; ++attempt) {
            const bool was_in_transaction = in_transaction();
            try {
                return invoke_counted(statement);
            } catch (const std::exception& error) {
                const Failure failure = classify(error);
                if (failure == Failure::none) throw;
                const bool reopened = replace_broken();
                if (was_in_transaction) throw_transaction_lost(error);
                // Only a statement that certainly never reached the server is run again.
                if (failure != Failure::broken_not_sent || attempt > 0 || !reopened) throw;
            }
        }
    }

    template <class F>
    decltype(auto) invoke_counted(F& statement) {
        if constexpr (std::is_void_v<std::invoke_result_t<F&, Connection&>>) {
            statement(*connection_);
            note_success();
        } else {
            decltype(auto) result = statement(*connection_);
            note_success();
            return result;
        }
    }

    void prepare_for_statement(unsigned ping_bit) {
        ensure_open();
        if (in_transaction()) return;  // never swap the connection under a transaction
        if (options_.maxusage > 0 && usage_ >= static_cast<std::uint64_t>(options_.maxusage)) {
            force_close_locked();
            open();
            return;
        }
        if ((options_.ping & ping_bit) != 0) ping_check(detail::cheap_now<Clock>());
    }

    void ping_check(TimePoint now) {
        if (options_.ping_bypass.count() > 0 && now - last_success_ < options_.ping_bypass) {
            return;  // used successfully a moment ago: a round trip would tell us nothing new
        }
        if (Traits::ping(*connection_)) {
            touch();
            return;
        }
        const bool was_in_transaction = in_transaction();
        replace_broken();
        if (was_in_transaction) {
            throw Error(ErrorCode::transaction_lost,
                        "dbpool: the connection was found dead inside a transaction; the server "
                        "rolled it back, so the transaction must be retried from its start");
        }
        ensure_open();  // replace_broken may have failed to reconnect: now it throws
    }

    void note_success() {
        ++usage_;
        touch();
    }

    void touch() {
        if (options_.ping_bypass.count() > 0) last_success_ = detail::cheap_now<Clock>();
    }

    Failure classify(const std::exception& error) const {
        return options_.failures ? options_.failures(error) : Traits::classify_failure(error);
    }

    [[noreturn]] static void throw_transaction_lost(const std::exception& cause) {
        const auto* own = dynamic_cast<const Error*>(&cause);
        throw Error(ErrorCode::transaction_lost,
                    std::string("dbpool: the connection broke inside a transaction; the server "
                                "rolled it back, so the transaction must be retried from its "
                                "start (") +
                        cause.what() + ")",
                    own ? own->native_code() : 0, own ? own->sqlstate() : std::string());
    }

    // Drops a broken connection and tries one reconnect; on failure the object stays closed and
    // the next use reopens (and reports the connect error).
    bool replace_broken() noexcept {
        transaction_ = false;
        force_close_locked();
        try {
            open();
            return true;
        } catch (...) {
            return false;
        }
    }

    void ensure_open() {
        if (!connection_) open();
    }

    void open() {
        std::unique_ptr<Connection> fresh;
        try {
            fresh = (*creator_)();
        } catch (const Error& error) {
            if (error.code() == ErrorCode::connect_failed) throw;
            throw Error(ErrorCode::connect_failed,
                        std::string("dbpool: could not open a connection: ") + error.what(),
                        error.native_code(), error.sqlstate());
        } catch (const std::exception& error) {
            throw Error(ErrorCode::connect_failed,
                        std::string("dbpool: could not open a connection: ") + error.what());
        } catch (...) {
            // Pools catch std::exception to free the slot; anything else would leak capacity.
            throw Error(ErrorCode::connect_failed,
                        "dbpool: could not open a connection: the creator threw an exception not "
                        "derived from std::exception");
        }
        if (!fresh) {
            throw Error(ErrorCode::connect_failed, "dbpool: the creator returned no connection");
        }
        try {
            for (const auto& statement : options_.setsession) {
                Traits::run_session_statement(*fresh, statement);
            }
        } catch (const std::exception& error) {
            Traits::close(*fresh);
            const auto* own = dynamic_cast<const Error*>(&error);
            throw Error(ErrorCode::connect_failed,
                        std::string("dbpool: a setsession statement failed after connecting: ") +
                            error.what(),
                        own ? own->native_code() : 0, own ? own->sqlstate() : std::string());
        }
        connection_ = std::move(fresh);
        usage_ = 0;
        transaction_ = false;
        ++connects_;
        opened_at_ = Clock::now();
        last_success_ = opened_at_;
    }

    void run_setsession() {
        for (const auto& statement : options_.setsession) {
            Traits::run_session_statement(*connection_, statement);
        }
    }

    void force_close_locked() noexcept {
        if (!connection_) return;
        transaction_ = false;
        Traits::close(*connection_);
        connection_.reset();
    }

    std::shared_ptr<const detail::Creator<Connection>> creator_;
    SteadyOptions options_;
    std::unique_ptr<Connection> connection_;
    std::uint64_t usage_ = 0;
    std::uint64_t connects_ = 0;
    bool transaction_ = false;
    TimePoint opened_at_{};
    TimePoint last_success_{};
    mutable detail::MaybeMutex<Traits::thread_safe_sharing> mutex_;
};

}  // namespace dbpool

#pragma once

/// \file
/// SteadyConnection (DBUtils' SteadyDB): a connection that reopens itself and never loses a
/// transaction silently.

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/cheap_clock.hpp>
#include <dbpool/detail/connection_source.hpp>
#include <dbpool/detail/creator.hpp>
#include <dbpool/detail/fork_generation.hpp>
#include <dbpool/detail/no_mutex.hpp>
#include <dbpool/detail/validate_options.hpp>
#include <dbpool/error.hpp>
#include <dbpool/options.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace dbpool {

namespace detail {
/// Selects the constructor a pool uses: connections come from (and go back to) the pool.
struct FromSource {};
}  // namespace detail

/// A connection that reopens itself: on broken-connection errors, after maxusage statements,
/// and when a ping finds it dead; setsession runs after every open.
///
/// Statements go through run(), execute(), query() or prepare(); raw() is the unprotected
/// escape hatch. A transaction is never silently lost: when the connection breaks (or is
/// closed, or inherited across fork()) inside one, the next statement or commit() raises
/// Error{transaction_lost}; a broken COMMIT raises Error{commit_unknown}. Once transaction_lost
/// was raised, commit() keeps raising it (sending nothing) until rollback() or begin(), so a
/// caller that catches the error and commits is never told the lost transaction committed.
///
/// Thread-safety: use from one thread at a time, unless the connection type declares
/// thread_safe_sharing (then every member locks). Pooled steady connections open and close
/// through their pool, which counts and throttles every attempt.
template <class Connection, class Clock = std::chrono::steady_clock>
class SteadyConnection {
    using Traits = ConnectionTraits<Connection>;
    using TimePoint = typename Clock::time_point;
    using Mutex = detail::MaybeMutex<Traits::thread_safe_sharing>;
    using Lock = std::lock_guard<Mutex>;
    using Source = detail::ConnectionSource<Connection>;

public:
    /// The raw connection type.
    using connection_type = Connection;
    /// The clock used for ping_bypass and opened_at().
    using clock_type = Clock;

    /// Opens the first connection through `creator`; throws Error{invalid_options} or
    /// Error{connect_failed}.
    template <class Creator,
              class = std::enable_if_t<!std::is_same_v<std::decay_t<Creator>, SteadyConnection>>>
    explicit SteadyConnection(Creator&& creator, SteadyOptions options = {})
        : own_source_(std::make_unique<detail::CreatorSource<Connection>>(
              detail::make_creator<Connection>(std::forward<Creator>(creator)),
              options.setsession)),
          source_(own_source_.get()),
          options_(std::move(options)) {
        detail::validate(options_);
        open(false);
    }

    /// Opens the first connection through `source` (a pool); the source must outlive this.
    SteadyConnection(detail::FromSource /*tag*/, Source& source, SteadyOptions options)
        : source_(&source), options_(std::move(options)) {
        open(false);
    }

    SteadyConnection(const SteadyConnection&) = delete;
    SteadyConnection& operator=(const SteadyConnection&) = delete;

    /// Closes the connection.
    ~SteadyConnection() {
        Lock lock(mutex_);
        drop(false);
    }

    /// Runs `statement(Connection&)` as one protected statement: ping bit 4, maxusage, and a
    /// retry only when it certainly did not reach the server (outside a transaction).
    ///
    /// \par Exception safety
    /// A failure the connection type classifies as Failure::none (a database, usage or
    /// transaction_conflict error) leaves the connection open and usable. A broken connection
    /// is dropped before the error is raised (connection_lost; transaction_lost inside a
    /// transaction), and the next statement opens a new one.
    template <class F>
    decltype(auto) run(F&& statement) {
        Lock lock(mutex_);
        return guarded(Ping::on_execute, statement, true);
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

    /// Forwards to Connection::prepare (ping bit 2); not counted toward maxusage.
    template <class... Args>
    decltype(auto) prepare(Args&&... args) {
        Lock lock(mutex_);
        auto statement = [&](Connection& c) -> decltype(auto) {
            return c.prepare(std::forward<Args>(args)...);
        };
        return guarded(Ping::on_cursor, statement, false);
    }

    /// Starts a transaction; until commit() or rollback() the connection is never replaced
    /// silently. Forgets a transaction lost earlier: a new one starts.
    void begin() {
        Lock lock(mutex_);
        notice_fork();
        tx_ = Tx::none;
        ensure_open();
        // Not inside a transaction yet, so a begin that never reached the server may be retried.
        for (int attempt = 0;; ++attempt) {
            try {
                Traits::begin(*connection_);
                break;
            } catch (const std::exception& error) {
                const Failure failure = classify(error);
                if (failure == Failure::none) throw;
                drop(false);
                if (failure != Failure::broken_not_sent || attempt > 0 || !try_open(true)) throw;
            }
        }
        tx_ = Tx::open;
    }

    /// Commits. Throws Error{transaction_lost} when the transaction was lost before (the
    /// connection broke, was closed or inherited by fork(); also when transaction_lost was
    /// raised already and neither rollback() nor begin() came since: then nothing is sent) or
    /// when COMMIT certainly never reached the server, and Error{commit_unknown} when the
    /// connection broke during COMMIT: the transaction may or may not have been committed.
    ///
    /// \par Exception safety
    /// Whatever it throws, begin()'s transaction has ended on the server: after
    /// transaction_lost and commit_unknown the connection has been dropped (and after
    /// transaction_lost every commit() raises it again until rollback() or begin()); after
    /// another error the server's status (in_transaction()) tells whether a transaction is
    /// still open.
    void commit() {
        Lock lock(mutex_);
        notice_fork();
        if (tx_ == Tx::lost || tx_ == Tx::lost_reported) throw_transaction_lost_before();
        tx_ = Tx::none;
        ensure_open();
        try {
            Traits::commit(*connection_);
            server_transaction_.store(false, std::memory_order_relaxed);
        } catch (const std::exception& error) {
            const Failure failure = classify(error);
            if (failure == Failure::none) throw;
            drop(false);
            // Not sent: the server never saw COMMIT and rolled the transaction back with the
            // connection. Otherwise it may have committed just before the connection broke.
            if (failure == Failure::broken_not_sent) throw_transaction_lost(error);
            throw_commit_unknown(error);
        }
    }

    /// Rolls back. A broken connection is dropped quietly (the server already discarded the
    /// transaction, which is what rollback asks for); the next use reopens. After
    /// transaction_lost it succeeds without sending anything when the connection is gone, and
    /// ends the lost state: commit() behaves normally again.
    void rollback() {
        Lock lock(mutex_);
        notice_fork();
        tx_ = Tx::none;
        server_transaction_.store(false, std::memory_order_relaxed);
        if (!connection_) return;
        try {
            Traits::rollback(*connection_);
        } catch (const std::exception& error) {
            if (classify(error) == Failure::none) throw;
            drop(false);
        }
    }

    /// True after begin() until commit()/rollback(), or while the server reports an open one.
    bool in_transaction() const noexcept {
        Lock lock(mutex_);
        return in_transaction_locked();
    }

    /// For pools sharing the connection: whether a transaction is open as far as this object
    /// knew when its last operation ended (begin() not yet ended, or the server's status after
    /// the last statement). Never waits for a sharer's statement and never runs the connection
    /// type's code, so a pool may ask under its own lock; a transaction another sharer starts
    /// meanwhile shows once its statement has ended.
    bool transaction_hint() const noexcept {
        return tx_.load(std::memory_order_relaxed) == Tx::open ||
               server_transaction_.load(std::memory_order_relaxed);
    }

    /// Ping bit 1 for a connection that reconnects in place (standalone, PersistentPool):
    /// reopens a closed connection, pings unless used within ping_bypass, replaces a dead one.
    void check_on_request() { check_on_request(detail::cheap_now<Clock>()); }

    /// check_on_request() with the caller's idea of the current time.
    void check_on_request(TimePoint now) {
        Lock lock(mutex_);
        notice_fork();
        if (!connection_) {
            open(connects_ > 0);
            return;
        }
        if ((options_.ping & Ping::on_request) != 0) ping_check(now);
    }

    /// Closes the connection and opens a new one.
    void reconnect() {
        Lock lock(mutex_);
        notice_fork();
        drop(true);
        open(true);
    }

    /// Clears all session state (MySQL COM_RESET_CONNECTION) and runs setsession again; a
    /// broken connection is replaced instead (a new session is a reset session).
    void reset_session() {
        Lock lock(mutex_);
        notice_fork();
        ensure_open();
        tx_ = Tx::none;
        try {
            Traits::reset_session(*connection_);
            run_setsession();
        } catch (const std::exception& error) {
            if (classify(error) == Failure::none) throw;
            drop(false);
            open(true);
        }
    }

    /// Closes, unless the connection is not closeable; then it only rolls back an open
    /// transaction. Closing inside a transaction loses it: the next statement or commit()
    /// raises Error{transaction_lost}. Never throws.
    void close() noexcept {
        Lock lock(mutex_);
        notice_fork();
        if (options_.closeable) {
            drop(true);
        } else if (in_transaction_locked()) {
            end_open_transaction();
            try {
                Traits::rollback(*connection_);
            } catch (...) {
                drop(false);  // a connection that cannot roll back is not reusable
            }
        }
    }

    /// Closes regardless of closeable (a transaction open now is lost, as with close());
    /// the next statement reopens. Never throws.
    void force_close() noexcept {
        Lock lock(mutex_);
        drop(true);
    }

    /// Pings now, ignoring the bypass window; false when dead. Never reconnects.
    bool ping() noexcept {
        Lock lock(mutex_);
        notice_fork();
        if (!connection_ || !Traits::ping(*connection_)) return false;
        touch();
        return true;
    }

    /// Forgets the connection without sending anything (in a child after fork(), the socket is
    /// the parent's). A transaction open now is reported as lost to the next statement.
    /// Connection types without abandon() are leaked instead of closed. In a child where
    /// another thread of the parent may have been using this connection at the fork, call
    /// abandon_after_fork() instead: this one takes the connection's lock.
    void abandon() noexcept {
        Lock lock(mutex_);
        fork_generation_ = detail::fork_generation();
        abandon_locked();
    }

    /// abandon() for a child process after fork(), without taking this object's lock: a
    /// thread of the parent may have held it (mid-statement) at the fork, and that thread does
    /// not exist in the child, so locking it would wait forever. The lock is created anew
    /// instead (the inherited one is never unlocked nor destroyed).
    ///
    /// \par Thread-safety
    /// Call it only in a child after fork(), before any thread of the child uses this
    /// connection, and never from inside one of its members (a run() callback): the parent's
    /// other users of this connection are gone, which is what makes skipping the lock safe.
    void abandon_after_fork() noexcept {
        if constexpr (Traits::thread_safe_sharing) {
            ::new (static_cast<void*>(&mutex_)) Mutex();  // the inherited one may be held
        }
        Lock lock(mutex_);  // uncontended: a fresh lock, no other user
        fork_generation_ = detail::fork_generation();
        abandon_locked();
    }

    /// Whether a connection is currently open.
    bool is_open() const noexcept {
        Lock lock(mutex_);
        return connection_ != nullptr;
    }

    /// For pools: whether the connection is open and can serve another borrower as it is
    /// (ConnectionTraits::is_reusable; no I/O).
    bool is_reusable() const noexcept {
        Lock lock(mutex_);
        return connection_ != nullptr && Traits::is_reusable(*connection_);
    }

    /// The raw connection, opened if needed: no ping, no counting, no reconnect.
    Connection& raw() {
        Lock lock(mutex_);
        notice_fork();
        ensure_open();
        return *connection_;
    }

    /// Statements since the last (re)connect.
    std::uint64_t usage() const noexcept { return usage_; }
    /// How many times a connection was opened for this object (first open included).
    std::uint64_t connects() const noexcept { return connects_; }
    /// How many times the connection was replaced after the first open.
    std::uint64_t reconnects() const noexcept { return connects_ > 0 ? connects_ - 1 : 0; }
    /// When the current connection was opened.
    TimePoint opened_at() const noexcept { return opened_at_; }
    /// When the last statement or ping succeeded (or the connection was opened).
    TimePoint last_success() const noexcept { return last_success_; }
    /// The options this connection was made with.
    const SteadyOptions& options() const noexcept { return options_; }

    /// For pools: whether a return under `policy` needs reset_for_return(): a rollback or
    /// reset, or (Reset::none) a decision to close a connection returned inside a transaction.
    bool needs_reset(Reset policy) const noexcept {
        Lock lock(mutex_);
        switch (policy) {
            case Reset::none:
            case Reset::rollback: return in_transaction_locked();
            case Reset::always:
            case Reset::full: return true;
        }
        return true;
    }

    /// For pools: applies `policy` to a returned connection without ever reconnecting; false
    /// when the connection must be closed instead (dead, broken reset, transaction still open,
    /// or a transaction lost and never reported). Never throws.
    bool reset_for_return(Reset policy) noexcept {
        Lock lock(mutex_);
        notice_fork();
        if (!connection_) return false;
        // The connection that lost it is gone and this borrower is done: nothing to undo.
        if (tx_ != Tx::open) tx_ = Tx::none;
        const bool open_transaction = in_transaction_locked();
        try {
            switch (policy) {
                case Reset::none:
                    if (open_transaction) return false;  // nothing may be sent: close it
                    break;
                case Reset::rollback:
                    if (open_transaction) Traits::rollback(*connection_);
                    break;
                case Reset::always: Traits::rollback(*connection_); break;
                case Reset::full:
                    Traits::reset_session(*connection_);
                    run_setsession();
                    break;
            }
        } catch (...) {
            return false;  // a connection that cannot be reset must not reach the next borrower
        }
        tx_ = Tx::none;
        return !Traits::in_transaction(*connection_);
    }

private:
    template <class F>
    decltype(auto) guarded(unsigned ping_bit, F& statement, bool counted) {
        notice_fork();
        raise_if_transaction_lost();
        prepare_for_statement(ping_bit);
        for (int attempt = 0;; ++attempt) {
            const bool was_in_transaction = in_transaction_locked();
            try {
                return invoke(statement, counted);
            } catch (const std::exception& error) {
                const Failure failure = classify(error);
                if (failure == Failure::none) throw;
                drop(false);
                if (was_in_transaction) throw_transaction_lost(error);
                // Only a statement that certainly never reached the server is run again.
                if (failure != Failure::broken_not_sent || attempt > 0 || !try_open(true)) throw;
            }
        }
    }

    template <class F>
    decltype(auto) invoke(F& statement, bool counted) {
        if constexpr (std::is_void_v<std::invoke_result_t<F&, Connection&>>) {
            statement(*connection_);
            note_success(counted);
        } else {
            decltype(auto) result = statement(*connection_);
            note_success(counted);
            return result;
        }
    }

    void prepare_for_statement(unsigned ping_bit) {
        ensure_open();
        if (in_transaction_locked()) return;  // never swap the connection under a transaction
        if (options_.maxusage > 0 && usage_ >= static_cast<std::uint64_t>(options_.maxusage)) {
            drop(false);
            open(true);
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
        const bool was_in_transaction = in_transaction_locked();
        drop(false);
        if (was_in_transaction) {
            tx_ = Tx::lost_reported;
            throw Error(ErrorCode::transaction_lost,
                        "dbpool: the connection was found dead inside a transaction; the server "
                        "rolled it back, so the transaction must be retried from its start");
        }
        open(true);
    }

    void note_success(bool counted) {
        if (counted) ++usage_;
        touch();
        if constexpr (Traits::thread_safe_sharing) {  // for sharing pools (transaction_hint())
            server_transaction_.store(connection_ && Traits::in_transaction(*connection_),
                                      std::memory_order_relaxed);
        }
    }

    void touch() {
        if (options_.ping_bypass.count() > 0) last_success_ = detail::cheap_now<Clock>();
    }

    Failure classify(const std::exception& error) const {
        return options_.failures ? options_.failures(error) : Traits::classify_failure(error);
    }

    bool in_transaction_locked() const noexcept {
        return tx_ == Tx::open || (connection_ && Traits::in_transaction(*connection_));
    }

    void end_open_transaction() noexcept {
        if (tx_ == Tx::open) tx_ = Tx::none;
    }

    // A transaction whose connection went away (closed, broken between statements, inherited
    // across fork()) is reported to the next statement; statements after it run outside any
    // transaction, while commit() keeps reporting the loss (throw_transaction_lost_before).
    void raise_if_transaction_lost() {
        if (tx_ != Tx::lost) return;
        throw_transaction_lost_before();
    }

    [[noreturn]] void throw_transaction_lost_before() {
        tx_ = Tx::lost_reported;
        throw Error(ErrorCode::transaction_lost,
                    "dbpool: the transaction was lost: its connection was closed or broke before "
                    "this statement or commit; the server rolled it back, so roll back and redo "
                    "it from its start");
    }

    [[noreturn]] void throw_transaction_lost(const std::exception& cause) {
        tx_ = Tx::lost_reported;
        const auto* own = dynamic_cast<const Error*>(&cause);
        throw Error(ErrorCode::transaction_lost,
                    std::string("dbpool: the connection broke inside a transaction; the server "
                                "rolled it back, so the transaction must be retried from its "
                                "start (") +
                        cause.what() + ")",
                    own ? own->native_code() : 0, own ? own->sqlstate() : std::string());
    }

    [[noreturn]] static void throw_commit_unknown(const std::exception& cause) {
        const auto* own = dynamic_cast<const Error*>(&cause);
        throw Error(ErrorCode::commit_unknown,
                    std::string("dbpool: the connection broke during COMMIT, so the transaction "
                                "may or may not have been committed; check its effect (e.g. by "
                                "an idempotency key) before redoing it (") +
                        cause.what() + ")",
                    own ? own->native_code() : 0, own ? own->sqlstate() : std::string());
    }

    // In a child after fork(), the connection is the parent's: forget it without a byte.
    void notice_fork() noexcept {
        if (fork_generation_ == detail::fork_generation()) return;
        fork_generation_ = detail::fork_generation();
        abandon_locked();
    }

    void abandon_locked() noexcept {
        if (!connection_) return;
        if (in_transaction_locked()) tx_ = Tx::lost;
        source_->abandon(std::move(connection_));
    }

    // Closes the current connection; `report_lost` remembers an open transaction for the next
    // statement (callers that raise their own error about it pass false).
    void drop(bool report_lost) noexcept {
        if (!connection_) return;
        if (report_lost && in_transaction_locked()) {
            tx_ = Tx::lost;
        } else {
            end_open_transaction();
        }
        server_transaction_.store(false, std::memory_order_relaxed);
        source_->disconnect(std::move(connection_));
    }

    void ensure_open() {
        if (!connection_) open(connects_ > 0);
    }

    bool try_open(bool replacing) noexcept {
        try {
            open(replacing);
            return true;
        } catch (...) {
            return false;  // the next use reopens and reports the connect error
        }
    }

    void open(bool replacing) {
        connection_ = source_->connect(replacing);
        usage_ = 0;
        end_open_transaction();
        ++connects_;
        opened_at_ = Clock::now();
        last_success_ = opened_at_;
        fork_generation_ = detail::fork_generation();
    }

    void run_setsession() {
        for (const auto& statement : options_.setsession)
            Traits::run_session_statement(*connection_, statement);
    }

    std::unique_ptr<detail::CreatorSource<Connection>> own_source_;
    Source* source_ = nullptr;
    SteadyOptions options_;
    std::unique_ptr<Connection> connection_;
    std::uint64_t usage_ = 0;
    std::uint64_t connects_ = 0;
    // The caller's transaction as this object knows it (the server's own view is
    // Traits::in_transaction). none -> open: begin(). open -> none: commit(), rollback(), a
    // drop or close that reports nothing. open (or a server-side transaction) -> lost: the
    // connection went away between statements (close(), fork()); the next statement or commit()
    // raises transaction_lost. -> lost_reported: transaction_lost was raised; statements run
    // outside any transaction, commit() raises it again and sends nothing. rollback(), begin(),
    // reset_session() and a pool's reset_for_return() end both lost states.
    enum class Tx : unsigned char { none, open, lost, lost_reported };
    // Written under mutex_; atomic only so that transaction_hint() may read it without.
    std::atomic<Tx> tx_{Tx::none};
    std::atomic<bool> server_transaction_{false};  // as of the last statement (sharing types)
    unsigned fork_generation_ = detail::fork_generation();
    TimePoint opened_at_{};
    TimePoint last_success_{};
    mutable Mutex mutex_;
};

}  // namespace dbpool

#pragma once

// A fake connection type for the core tests, in the spirit of DBUtils' mock_db: a shared
// FakeDatabase counts everything the core sends and injects failures at chosen moments.

#include <dbpool/connection_traits.hpp>
#include <dbpool/error.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fake {

/// The exception a fake statement throws; `kind` says how it left the connection.
class FakeError : public std::runtime_error {
public:
    FakeError(dbpool::Failure failure, const std::string& what)
        : std::runtime_error(what), kind(failure) {}
    dbpool::Failure kind;
};

/// A non-std exception, to check that the core wraps anything a creator throws.
struct NotAnException {};

/// How an injected connect failure is thrown.
enum class ConnectError { runtime_error, dbpool_error, non_std };

/// The server side of every fake connection one creator makes: counters, a log and failure
/// injection. Thread-safe.
class FakeDatabase {
public:
    // --- counters (every operation that reaches the "server") ---
    int opens() const { return opens_.load(); }
    int closes() const { return closes_.load(); }
    int connect_attempts() const { return connect_attempts_.load(); }
    int pings() const { return pings_.load(); }
    int statements() const { return statements_.load(); }  // attempts, failed ones included
    int executed() const { return executed_.load(); }      // statements that succeeded
    int session_statements() const { return session_statements_.load(); }
    int prepares() const { return prepares_.load(); }
    int begins() const { return begins_.load(); }
    int commits() const { return commits_.load(); }
    int rollbacks() const { return rollbacks_.load(); }
    int resets() const { return resets_.load(); }
    int abandons() const { return abandons_.load(); }
    int open_now() const { return open_now_.load(); }
    int max_open_now() const { return max_open_now_.load(); }
    int last_id() const { return next_id_.load() - 1; }

    // --- failure injection ---
    /// The next `n` connects fail (-1: until clear_connect_failures()).
    void fail_connects(int n, ConnectError how = ConnectError::runtime_error) {
        connect_error_.store(how);
        fail_connects_.store(n);
    }
    void clear_connect_failures() { fail_connects_.store(0); }
    /// The next `n` pings fail (the connection itself stays usable).
    void fail_pings(int n) { fail_pings_.store(n); }
    /// The next `n` statements throw FakeError(kind); a broken kind kills the connection.
    void fail_statements(int n, dbpool::Failure kind) {
        std::lock_guard<std::mutex> lock(mutex_);
        fail_statements_ = n;
        fail_kind_ = kind;
    }
    /// The server drops connection `id`: every later use of it fails as broken.
    void kill(int id) {
        std::lock_guard<std::mutex> lock(mutex_);
        killed_.insert(id);
    }
    bool killed(int id) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return killed_.count(id) != 0;
    }

    /// Everything that happened, in order ("open 1", "SET x", "exec y", "rollback", ...).
    std::vector<std::string> log() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return log_;
    }
    void clear_log() {
        std::lock_guard<std::mutex> lock(mutex_);
        log_.clear();
    }
    /// Logging costs a lock per operation; stress tests turn it off.
    void set_logging(bool on) { logging_.store(on); }

    /// A creator making `Connection` (FakeConnection or a subclass) on this database.
    template <class Connection>
    static auto creator(std::shared_ptr<FakeDatabase> db) {
        return [db]() { return std::make_unique<Connection>(db); };
    }

    // --- used by FakeConnection ---
    int connect() {
        connect_attempts_.fetch_add(1);
        int pending = fail_connects_.load();
        while (pending != 0) {
            const int next = pending > 0 ? pending - 1 : pending;
            if (fail_connects_.compare_exchange_weak(pending, next)) {
                switch (connect_error_.load()) {
                    case ConnectError::runtime_error:
                        throw std::runtime_error("fake: connection refused");
                    case ConnectError::dbpool_error:
                        throw dbpool::Error(dbpool::ErrorCode::database, "fake: connection refused",
                                            2003, "HY000");
                    case ConnectError::non_std: throw NotAnException{};
                }
            }
        }
        const int id = next_id_.fetch_add(1);
        opens_.fetch_add(1);
        const int now = open_now_.fetch_add(1) + 1;
        int seen = max_open_now_.load();
        while (now > seen && !max_open_now_.compare_exchange_weak(seen, now)) {
        }
        record("open " + std::to_string(id));
        return id;
    }
    void disconnect(int id) {
        closes_.fetch_add(1);
        open_now_.fetch_sub(1);
        record("close " + std::to_string(id));
    }
    void abandoned(int id) {
        abandons_.fetch_add(1);
        record("abandon " + std::to_string(id));
    }
    bool ping(int id) {
        pings_.fetch_add(1);
        record("ping " + std::to_string(id));
        int pending = fail_pings_.load();
        while (pending > 0) {
            if (fail_pings_.compare_exchange_weak(pending, pending - 1)) return false;
        }
        return !killed(id);
    }
    // Returns the injected failure for this statement, if any.
    dbpool::Failure take_statement_failure() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (fail_statements_ == 0) return dbpool::Failure::none;
        --fail_statements_;
        return fail_kind_;
    }
    void count_statement() { statements_.fetch_add(1); }
    void count_executed() { executed_.fetch_add(1); }
    void count_session_statement() { session_statements_.fetch_add(1); }
    void count_prepare() { prepares_.fetch_add(1); }
    void count_begin() { begins_.fetch_add(1); }
    void count_commit() { commits_.fetch_add(1); }
    void count_rollback() { rollbacks_.fetch_add(1); }
    void count_reset() { resets_.fetch_add(1); }
    void record(std::string event) {
        if (!logging_.load()) return;
        std::lock_guard<std::mutex> lock(mutex_);
        log_.push_back(std::move(event));
    }

private:
    std::atomic<int> opens_{0}, closes_{0}, connect_attempts_{0}, pings_{0}, statements_{0},
        executed_{0}, session_statements_{0}, prepares_{0}, begins_{0}, commits_{0}, rollbacks_{0},
        resets_{0}, abandons_{0}, open_now_{0}, max_open_now_{0};
    std::atomic<int> next_id_{1};
    std::atomic<int> fail_connects_{0};
    std::atomic<ConnectError> connect_error_{ConnectError::runtime_error};
    std::atomic<int> fail_pings_{0};
    std::atomic<bool> logging_{true};

    mutable std::mutex mutex_;
    int fail_statements_ = 0;
    dbpool::Failure fail_kind_ = dbpool::Failure::none;
    std::set<int> killed_;
    std::vector<std::string> log_;
};

/// A fake connection. Statements whose text starts with "SET " count as session statements
/// (setsession); every other execute()/query() counts as a statement.
class FakeConnection {
public:
    explicit FakeConnection(std::shared_ptr<FakeDatabase> db)
        : db_(std::move(db)), id_(db_->connect()) {}

    FakeConnection(FakeConnection&& other) noexcept
        : db_(std::move(other.db_)),
          id_(other.id_),
          open_(std::exchange(other.open_, false)),
          server_transaction_(other.server_transaction_.load()) {}
    FakeConnection& operator=(FakeConnection&&) = delete;
    FakeConnection(const FakeConnection&) = delete;
    FakeConnection& operator=(const FakeConnection&) = delete;

    ~FakeConnection() { close(); }

    /// The id the database gave this connection (1, 2, ... per database).
    int id() const { return id_; }
    bool is_open() const { return open_; }

    void close() {
        if (!open_) return;
        open_ = false;
        db_->disconnect(id_);
    }

    bool ping() {
        require_open();
        return db_->ping(id_);
    }

    int execute(const std::string& sql) {
        require_open();
        if (sql.rfind("SET ", 0) == 0) {
            require_alive(dbpool::Failure::broken_not_sent);
            db_->count_session_statement();
            db_->record(sql);
            return 0;
        }
        return statement("exec " + sql);
    }

    std::string query(const std::string& sql) {
        statement("query " + sql);
        return "result of " + sql;
    }

    int prepare(const std::string& sql) {
        require_open();
        require_alive(dbpool::Failure::broken_not_sent);
        db_->count_prepare();
        db_->record("prepare " + sql);
        return id_;
    }

    void begin() {
        require_open();
        require_alive(dbpool::Failure::broken_not_sent);
        db_->count_begin();
        db_->record("begin");
    }
    void commit() {
        require_open();
        require_alive(dbpool::Failure::broken);
        db_->count_commit();
        db_->record("commit");
        server_transaction_ = false;
    }
    void rollback() {
        require_open();
        require_alive(dbpool::Failure::broken);
        db_->count_rollback();
        db_->record("rollback");
        server_transaction_ = false;
    }
    void reset_session() {
        require_open();
        require_alive(dbpool::Failure::broken);
        db_->count_reset();
        db_->record("reset");
        server_transaction_ = false;
    }

    /// MySQL's SERVER_STATUS_IN_TRANS: a transaction the server has open (e.g. autocommit=0).
    bool in_transaction() const { return server_transaction_; }
    /// Simulates a statement that implicitly opened (or ended) a server-side transaction.
    void set_server_transaction(bool open) { server_transaction_ = open; }

    /// After fork(): forget the connection without telling the server.
    void abandon() noexcept {
        if (!open_) return;
        open_ = false;
        db_->abandoned(id_);
    }

    static dbpool::Failure classify_failure(const std::exception& error) {
        const auto* fake = dynamic_cast<const FakeError*>(&error);
        return fake != nullptr ? fake->kind : dbpool::Failure::none;
    }

    FakeDatabase& database() const { return *db_; }

private:
    void require_open() const {
        if (!open_) throw std::logic_error("fake: use of a closed connection");
    }
    void require_alive(dbpool::Failure how) const {
        if (db_->killed(id_)) throw FakeError(how, "fake: server has gone away");
    }

    int statement(const std::string& text) {
        require_open();
        db_->count_statement();
        db_->record(text);
        if (db_->killed(id_)) {
            throw FakeError(dbpool::Failure::broken_not_sent, "fake: server has gone away");
        }
        const dbpool::Failure failure = db_->take_statement_failure();
        if (failure != dbpool::Failure::none) db_->kill(id_);
        switch (failure) {
            case dbpool::Failure::none: break;
            case dbpool::Failure::broken_not_sent:
                throw FakeError(failure, "fake: server has gone away (not sent)");
            case dbpool::Failure::broken:
                throw FakeError(failure, "fake: lost connection during query");
        }
        if (fail_ordinary_) {
            fail_ordinary_ = false;
            throw FakeError(dbpool::Failure::none, "fake: syntax error");
        }
        db_->count_executed();
        return 1;
    }

public:
    /// The next statement on this connection fails with an ordinary (non-broken) error.
    void fail_next_statement_ordinarily() { fail_ordinary_ = true; }

private:
    std::shared_ptr<FakeDatabase> db_;
    int id_;
    bool open_ = true;
    std::atomic<bool> server_transaction_{false};  // read by pools without the owner's lock
    bool fail_ordinary_ = false;
};

/// The same fake, declared safe to use from several threads at once (enables maxshared).
class SharedFakeConnection : public FakeConnection {
public:
    using FakeConnection::FakeConnection;
    static constexpr bool thread_safe_sharing = true;
};

/// A steady_clock look-alike that moves only when a test says so.
struct ManualClock {
    using rep = std::chrono::steady_clock::rep;
    using period = std::chrono::steady_clock::period;
    using duration = std::chrono::steady_clock::duration;
    using time_point = std::chrono::time_point<ManualClock, duration>;
    static constexpr bool is_steady = true;

    static time_point now() noexcept { return time_point(duration(ticks().load())); }
    template <class Rep, class Period>
    static void advance(std::chrono::duration<Rep, Period> by) noexcept {
        ticks().fetch_add(std::chrono::duration_cast<duration>(by).count());
    }

private:
    static std::atomic<rep>& ticks() noexcept {
        // Far from the epoch, so a default-constructed time_point always looks long ago.
        static std::atomic<rep> value{
            std::chrono::duration_cast<duration>(std::chrono::hours(24)).count()};
        return value;
    }
};

}  // namespace fake

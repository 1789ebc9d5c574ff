#pragma once

// A fake connection type for the core tests, in the spirit of DBUtils' mock_db: a shared
// FakeDatabase counts everything the core sends and injects failures at chosen moments.

#include <dbpool/connection_traits.hpp>
#include <dbpool/error.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
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
enum class ConnectError {
    runtime_error,         ///< std::runtime_error("fake: connection refused")
    dbpool_error,          ///< dbpool::Error{database}, native 2003, SQLSTATE HY000 (refused)
    non_std,               ///< NotAnException
    too_many_connections,  ///< dbpool::Error{database}, native 1040, SQLSTATE 08004 (server full)
};

/// MySQL's "Too many connections": the server is up but at max_connections.
inline constexpr int too_many_connections_code = 1040;
inline constexpr const char* too_many_connections_sqlstate = "08004";

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
    /// Connect attempts that threw (connect_attempts() - failed_connects() succeeded).
    int failed_connects() const { return failed_connects_.load(); }
    /// Connects and pings running right now (inside an injected delay, typically).
    int connects_in_flight() const { return connects_in_flight_.load(); }
    int pings_in_flight() const { return pings_in_flight_.load(); }
    /// Pings that reached connection `id`.
    int pings_on(int id) const {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = pings_by_id_.find(id);
        return it == pings_by_id_.end() ? 0 : it->second;
    }
    /// What happened on connection `id` only, in order (same texts as log(); kept while logging).
    std::vector<std::string> log_of(int id) const {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = log_by_id_.find(id);
        return it == log_by_id_.end() ? std::vector<std::string>{} : it->second;
    }

    // --- failure injection ---
    /// The next `n` connects fail (-1: until clear_connect_failures()).
    void fail_connects(int n, ConnectError how = ConnectError::runtime_error) {
        connect_error_.store(how);
        fail_connects_.store(n);
    }
    void clear_connect_failures() { fail_connects_.store(0); }
    /// The server accepts at most `n` open connections (0 = no limit); connects beyond it fail
    /// as ConnectError::too_many_connections (MySQL 1040, SQLSTATE 08004) while the server is up.
    void set_max_connections(int n) { max_connections_.store(n); }

    // --- network delays (a black-holed network: calls hang, then go on as usual) ---
    /// Every connect waits `delay` before it succeeds or fails.
    void delay_connects(std::chrono::milliseconds delay) { connect_delay_ms_.store(delay.count()); }
    /// Every ping waits `delay` before it answers.
    void delay_pings(std::chrono::milliseconds delay) { ping_delay_ms_.store(delay.count()); }
    /// Pings on connection `id` wait `delay` before they answer (overrides delay_pings).
    void delay_pings_on(int id, std::chrono::milliseconds delay) {
        std::lock_guard<std::mutex> lock(delay_mutex_);
        ping_delay_by_id_[id] = delay.count();
    }
    /// Removes every delay and wakes the calls waiting in one now.
    void end_delays() {
        std::lock_guard<std::mutex> lock(delay_mutex_);
        connect_delay_ms_.store(0);
        ping_delay_ms_.store(0);
        ping_delay_by_id_.clear();
        ++delay_generation_;
        delay_ended_.notify_all();
    }
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
        const InFlight in_flight(connects_in_flight_);
        stall(std::chrono::milliseconds(connect_delay_ms_.load()));
        int pending = fail_connects_.load();
        while (pending != 0) {
            const int next = pending > 0 ? pending - 1 : pending;
            if (fail_connects_.compare_exchange_weak(pending, next)) {
                failed_connects_.fetch_add(1);
                switch (connect_error_.load()) {
                    case ConnectError::runtime_error:
                        throw std::runtime_error("fake: connection refused");
                    case ConnectError::dbpool_error:
                        throw dbpool::Error(dbpool::ErrorCode::database, "fake: connection refused",
                                            2003, "HY000");
                    case ConnectError::non_std: throw NotAnException{};
                    case ConnectError::too_many_connections: throw too_many_connections();
                }
            }
        }
        const int limit = max_connections_.load();
        int now = open_now_.load();
        do {
            if (limit > 0 && now >= limit) {
                failed_connects_.fetch_add(1);
                throw too_many_connections();
            }
        } while (!open_now_.compare_exchange_weak(now, now + 1));
        ++now;
        const int id = next_id_.fetch_add(1);
        opens_.fetch_add(1);
        int seen = max_open_now_.load();
        while (now > seen && !max_open_now_.compare_exchange_weak(seen, now)) {
        }
        record(id, "open " + std::to_string(id));
        return id;
    }
    void disconnect(int id) {
        closes_.fetch_add(1);
        open_now_.fetch_sub(1);
        record(id, "close " + std::to_string(id));
    }
    void abandoned(int id) {
        abandons_.fetch_add(1);
        record(id, "abandon " + std::to_string(id));
    }
    bool ping(int id) {
        const InFlight in_flight(pings_in_flight_);
        stall(ping_delay(id));
        pings_.fetch_add(1);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++pings_by_id_[id];
        }
        record(id, "ping " + std::to_string(id));
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
    /// Records an event of connection `id` in log() and in log_of(id).
    void record(int id, std::string event) {
        if (!logging_.load()) return;
        std::lock_guard<std::mutex> lock(mutex_);
        log_by_id_[id].push_back(event);
        log_.push_back(std::move(event));
    }

private:
    struct InFlight {
        explicit InFlight(std::atomic<int>& counter) : counter_(counter) { counter_.fetch_add(1); }
        InFlight(const InFlight&) = delete;
        InFlight& operator=(const InFlight&) = delete;
        ~InFlight() { counter_.fetch_sub(1); }
        std::atomic<int>& counter_;
    };

    static dbpool::Error too_many_connections() {
        return dbpool::Error(dbpool::ErrorCode::database, "fake: Too many connections",
                             too_many_connections_code, too_many_connections_sqlstate);
    }

    std::chrono::milliseconds ping_delay(int id) const {
        std::lock_guard<std::mutex> lock(delay_mutex_);
        const auto it = ping_delay_by_id_.find(id);
        return std::chrono::milliseconds(it != ping_delay_by_id_.end() ? it->second
                                                                       : ping_delay_ms_.load());
    }

    // Waits `delay`, or less when end_delays() is called meanwhile.
    void stall(std::chrono::milliseconds delay) {
        if (delay.count() <= 0) return;
        std::unique_lock<std::mutex> lock(delay_mutex_);
        const std::uint64_t generation = delay_generation_;
        delay_ended_.wait_for(lock, delay, [&] { return delay_generation_ != generation; });
    }

    std::atomic<int> opens_{0}, closes_{0}, connect_attempts_{0}, pings_{0}, statements_{0},
        executed_{0}, session_statements_{0}, prepares_{0}, begins_{0}, commits_{0}, rollbacks_{0},
        resets_{0}, abandons_{0}, open_now_{0}, max_open_now_{0};
    std::atomic<int> failed_connects_{0}, connects_in_flight_{0}, pings_in_flight_{0};
    std::atomic<int> max_connections_{0};
    std::atomic<long long> connect_delay_ms_{0}, ping_delay_ms_{0};
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
    std::map<int, std::vector<std::string>> log_by_id_;
    std::map<int, int> pings_by_id_;

    mutable std::mutex delay_mutex_;
    std::condition_variable delay_ended_;
    std::uint64_t delay_generation_ = 0;
    std::map<int, long long> ping_delay_by_id_;
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
            db_->record(id_, sql);
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
        db_->record(id_, "prepare " + sql);
        return id_;
    }

    void begin() {
        require_open();
        require_alive(dbpool::Failure::broken_not_sent);
        db_->count_begin();
        db_->record(id_, "begin");
    }
    void commit() {
        require_open();
        require_alive(dbpool::Failure::broken);
        db_->count_commit();
        db_->record(id_, "commit");
        server_transaction_ = false;
    }
    void rollback() {
        require_open();
        require_alive(dbpool::Failure::broken);
        db_->count_rollback();
        db_->record(id_, "rollback");
        server_transaction_ = false;
    }
    void reset_session() {
        require_open();
        require_alive(dbpool::Failure::broken);
        db_->count_reset();
        db_->record(id_, "reset");
        server_transaction_ = false;
    }

    /// MySQL's SERVER_STATUS_IN_TRANS: a transaction the server has open (e.g. autocommit=0).
    bool in_transaction() const { return server_transaction_; }
    /// Simulates a statement that implicitly opened (or ended) a server-side transaction.
    void set_server_transaction(bool open) { server_transaction_ = open; }

    /// Whether the connection could serve another borrower as it is (e.g. no unread results).
    bool is_reusable() const noexcept { return reusable_; }
    /// Simulates a connection left in a state the next borrower must not inherit.
    void set_reusable(bool reusable) { reusable_ = reusable; }

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
        db_->record(id_, text);
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
    bool reusable_ = true;
};

/// The same fake, declared safe to use from several threads at once (enables maxshared).
class SharedFakeConnection : public FakeConnection {
public:
    using FakeConnection::FakeConnection;
    static constexpr bool thread_safe_sharing = true;
};

/// The same fake with a per-thread set-up hook (like Oracle libmysqlclient's mysql_thread_init):
/// records which threads called prepare_thread() and counts statements run on a thread that
/// did not.
class ThreadPreparedConnection : public FakeConnection {
public:
    using FakeConnection::FakeConnection;

    static void prepare_thread() {
        std::lock_guard<std::mutex> lock(registry().mutex);
        registry().prepared.push_back(std::this_thread::get_id());
    }

    /// A statement, counted as unprepared when this thread never called prepare_thread().
    int execute(const std::string& sql) {
        if (prepare_calls_on(std::this_thread::get_id()) == 0) registry().unprepared_uses += 1;
        return FakeConnection::execute(sql);
    }

    /// How often prepare_thread() ran on `thread` since reset().
    static int prepare_calls_on(std::thread::id thread) {
        std::lock_guard<std::mutex> lock(registry().mutex);
        const auto& all = registry().prepared;
        return static_cast<int>(std::count(all.begin(), all.end(), thread));
    }
    /// Statements run on a thread that had not called prepare_thread().
    static int unprepared_uses() { return registry().unprepared_uses.load(); }
    static void reset() {
        std::lock_guard<std::mutex> lock(registry().mutex);
        registry().prepared.clear();
        registry().unprepared_uses.store(0);
    }

private:
    struct Registry {
        std::mutex mutex;
        std::vector<std::thread::id> prepared;
        std::atomic<int> unprepared_uses{0};
    };
    static Registry& registry() {
        static Registry instance;
        return instance;
    }
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

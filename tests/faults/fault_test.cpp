// Fault tolerance of dbpool's pools against a real MariaDB that the tests hurt on purpose:
// kill -9 and restart, server-side KILL, wait_timeout, exhaustion, exceptions in transactions,
// unreachable servers, many short-lived threads and fork(). Every loop is bounded in count and
// time; every test prints what it observed ("[faults] ..." lines on stdout).
#include <dbpool/dbpool.hpp>
#include <dbpool/mysql.hpp>

#include <catch2/catch.hpp>

#include "../fork_support.hpp"
#include "fault_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::Ping;
using dbpool::PoolOptions;
using dbpool::mysql::Connection;
using dbpool::mysql::ConnectOptions;
using namespace dbpool_faults;

using Pool = dbpool::PooledPool<Connection>;

namespace {

constexpr int kAccounts = 10;
constexpr long long kStartBalance = 1000;

// Nanoseconds since a fixed origin, so worker threads can publish times through atomics.
std::int64_t now_ns(Clock::time_point origin) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - origin).count();
}

void atomic_min(std::atomic<std::int64_t>& target, std::int64_t value) {
    std::int64_t seen = target.load();
    while (value < seen && !target.compare_exchange_weak(seen, value)) {
    }
}

void atomic_max(std::atomic<std::int64_t>& target, std::int64_t value) {
    std::int64_t seen = target.load();
    while (value > seen && !target.compare_exchange_weak(seen, value)) {
    }
}

void reset_accounts(Connection& admin) {
    admin.execute(
        "CREATE TABLE IF NOT EXISTS fault_accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)"
        " ENGINE=InnoDB");
    admin.execute("DELETE FROM fault_accounts");
    for (int id = 0; id < kAccounts; ++id) {
        admin.execute("INSERT INTO fault_accounts VALUES (?, ?)", id, kStartBalance);
    }
}

long long total_balance(Connection& admin) {
    return admin.query("SELECT CAST(SUM(balance) AS SIGNED) FROM fault_accounts")
        .scalar<long long>();
}

// Moves `amount` between two rows in one transaction, locking rows in id order (no deadlock).
void transfer(Pool& pool, int from, int to, long long amount) {
    auto conn = pool.connection();
    dbpool::Transaction tx(conn);
    const int first = std::min(from, to);
    const int second = std::max(from, to);
    conn->execute("UPDATE fault_accounts SET balance = balance + ? WHERE id = ?",
                  first == from ? -amount : amount, first);
    conn->execute("UPDATE fault_accounts SET balance = balance + ? WHERE id = ?",
                  second == from ? -amount : amount, second);
    tx.commit();
}

std::uint64_t connection_id(Pool::handle_type& conn) {
    return conn->query("SELECT CONNECTION_ID()").scalar<std::uint64_t>();
}

// Waits until the server no longer lists any of `ids` (a KILL is asynchronous).
bool gone_from_server(Connection& admin, const std::vector<std::uint64_t>& ids) {
    return eventually([&] {
        const auto live = user_connection_ids(admin);
        return std::none_of(ids.begin(), ids.end(), [&](std::uint64_t id) {
            return std::find(live.begin(), live.end(), id) != live.end();
        });
    });
}

using dbpool_test::LoopbackSocket;

// Restores a global server variable when the test ends, even when it fails.
class GlobalVariableGuard {
public:
    GlobalVariableGuard(const std::string& name, const std::string& value) : name_(name) {
        Connection admin = admin_connection();
        old_ = admin.query("SELECT @@GLOBAL." + name_).scalar<std::string>();
        admin.execute("SET GLOBAL " + name_ + " = " + value);
    }
    ~GlobalVariableGuard() {
        try {
            Connection admin = admin_connection();
            admin.execute("SET GLOBAL " + name_ + " = " + old_);
        } catch (...) {
            report("guard", "could not restore " + name_ + " to " + old_);
        }
    }
    GlobalVariableGuard(const GlobalVariableGuard&) = delete;
    GlobalVariableGuard& operator=(const GlobalVariableGuard&) = delete;

private:
    std::string name_;
    std::string old_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// 1. kill -9 and restart under load
// ---------------------------------------------------------------------------------------------
TEST_CASE("kill -9 and restart of the server under load", "[faults][restart]") {
    REQUIRE(ensure_server_up());
    {
        Connection admin = admin_connection();
        reset_accounts(admin);
    }

    PoolOptions options;
    options.maxconnections = 8;
    options.blocking = true;
    options.acquire_timeout = 3s;
    options.keepalive_interval = 1s;  // lets idle connections that died be noticed and dropped
    options.connect_backoff_min = 100ms;
    options.connect_backoff_max = 1s;
    Pool pool(dbpool::mysql::connector(fault_server().tcp()), options);

    constexpr int kThreads = 8;
    constexpr long kMaxIterations = 200000;
    const auto origin = Clock::now();
    const auto hard_deadline = origin + 45s;
    std::atomic<bool> stop{false};
    std::atomic<std::int64_t> killed_at{std::numeric_limits<std::int64_t>::max()};
    std::atomic<std::int64_t> first_success_after_kill{std::numeric_limits<std::int64_t>::max()};
    std::atomic<std::int64_t> longest_request{0};
    std::atomic<long> successes{0};
    std::atomic<long> transfers_committed{0};
    std::atomic<long> transfers_failed{0};
    std::atomic<long> plain_failed{0};
    ErrorTally plain_errors;
    ErrorTally transfer_errors;

    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
        workers.emplace_back([&, t] {
            std::mt19937 random(static_cast<unsigned>(t) * 7919u + 1u);
            std::uniform_int_distribution<int> account(0, kAccounts - 1);
            for (long i = 0; i < kMaxIterations && !stop.load() && Clock::now() < hard_deadline;
                 ++i) {
                const bool is_transfer = i % 2 == 1;
                const std::int64_t started = now_ns(origin);
                bool ok = false;
                try {
                    if (is_transfer) {
                        int from = account(random);
                        int to = account(random);
                        if (to == from) to = (from + 1) % kAccounts;
                        transfer(pool, from, to, 1 + i % 7);
                        ++transfers_committed;
                    } else {
                        auto conn = pool.connection();
                        conn->query("SELECT COUNT(*) FROM fault_accounts WHERE balance > ?", -1)
                            .scalar<long>();
                    }
                    ok = true;
                } catch (const Error& error) {
                    (is_transfer ? transfer_errors : plain_errors).add(error);
                    ++(is_transfer ? transfers_failed : plain_failed);
                } catch (const std::exception& error) {
                    (is_transfer ? transfer_errors : plain_errors).add_untyped(error);
                }
                const std::int64_t finished = now_ns(origin);
                atomic_max(longest_request, finished - started);
                if (ok) {
                    ++successes;
                    if (started >= killed_at.load()) atomic_min(first_success_after_kill, finished);
                } else {
                    std::this_thread::sleep_for(5ms);  // do not spin while the server is down
                }
            }
        });
    }

    std::this_thread::sleep_for(1500ms);
    const long before_kill = successes.load();
    const int kill_status = run_script("kill9");
    killed_at = now_ns(origin);
    std::this_thread::sleep_for(1s);
    const std::int64_t restart_begin = now_ns(origin);
    const int restart_status = run_script("restart");
    const std::int64_t restart_done = now_ns(origin);
    std::this_thread::sleep_for(3s);
    stop = true;
    for (auto& worker : workers)
        worker.join();
    const std::int64_t loop_end = now_ns(origin);

    REQUIRE(kill_status == 0);
    REQUIRE(restart_status == 0);
    Connection admin = admin_connection();
    const long long sum = total_balance(admin);

    long server_count = -1;
    std::size_t pool_total = 0;
    const auto settle_start = Clock::now();
    const bool settled = eventually(
        [&] {
            pool_total = pool.stats().total;
            server_count = user_connections(admin);
            return server_count == static_cast<long>(pool_total);
        },
        10s);
    const auto settle_time = Clock::now() - settle_start;
    const auto stats = pool.stats();

    const double ms = 1e-6;
    std::ostringstream out;
    out << "successes=" << successes << " (before kill " << before_kill << ")"
        << ", transfers committed=" << transfers_committed << " failed=" << transfers_failed
        << ", plain requests failed=" << plain_failed << "\n    restart script took "
        << (restart_done - restart_begin) * ms << " ms"
        << "; first success after kill at +" << (first_success_after_kill - killed_at) * ms
        << " ms after kill9 returned, " << (first_success_after_kill - restart_begin) * ms
        << " ms after `restart` began, " << (first_success_after_kill - restart_done) * ms
        << " ms after it returned (negative: before the script noticed the server)"
        << "\n    longest request " << longest_request * ms << " ms; load ran " << loop_end * ms
        << " ms"
        << "\n    plain errors: " << plain_errors.summary()
        << "\n    transfer errors: " << transfer_errors.summary() << "\n"
        << plain_errors.examples() << transfer_errors.examples() << "    balance sum=" << sum
        << " (expected " << kAccounts * kStartBalance << ")"
        << "; server connections=" << server_count << " pool total=" << pool_total
        << " (settled in " << seconds(settle_time) << " s)"
        << "; created=" << stats.created << " closed=" << stats.closed
        << " reconnects=" << stats.reconnects << " failed_connects=" << stats.failed_connects
        << " timeouts=" << stats.timeouts;
    report("kill9+restart", out.str());

    CHECK(plain_errors.untyped() == 0);
    CHECK(transfer_errors.untyped() == 0);
    CHECK(before_kill > 0);
    REQUIRE(first_success_after_kill.load() != std::numeric_limits<std::int64_t>::max());
    // Bounded: acquire_timeout (3 s) + two connects (2 s each) + a read (2 s), with slack.
    CHECK(longest_request.load() < std::int64_t(12e9));
    // Back within the connect backoff (at most 1 s here) of the server answering, plus slack.
    CHECK(first_success_after_kill.load() - restart_done < std::int64_t(3e9));
    CHECK(sum == kAccounts * kStartBalance);
    CHECK(settled);
}

// ---------------------------------------------------------------------------------------------
// 2. Connections killed from the server side
// ---------------------------------------------------------------------------------------------
TEST_CASE("server-side KILL of pool connections under load", "[faults][kill]") {
    REQUIRE(ensure_server_up());
    PoolOptions options;
    options.maxconnections = 8;
    options.blocking = true;
    options.acquire_timeout = 3s;
    options.ping = Ping::on_request;
    options.ping_bypass = 0ms;
    Pool pool(dbpool::mysql::connector(fault_server().tcp()), options);

    constexpr int kThreads = 6;
    const auto deadline = Clock::now() + 3s;
    std::atomic<long> successes{0};
    std::atomic<std::int64_t> longest_request{0};
    ErrorTally errors;
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
        workers.emplace_back([&] {
            for (long i = 0; i < 200000 && Clock::now() < deadline; ++i) {
                const auto started = Clock::now();
                try {
                    auto conn = pool.connection();
                    conn->query("SELECT ?", i).scalar<long>();
                    ++successes;
                } catch (const Error& error) {
                    errors.add(error);
                } catch (const std::exception& error) {
                    errors.add_untyped(error);
                }
                atomic_max(longest_request, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                Clock::now() - started)
                                                .count());
            }
        });
    }
    long kills = 0;
    {
        Connection admin = admin_connection();
        std::mt19937 random(42);
        for (int round = 0; round < 200 && Clock::now() < deadline; ++round) {
            const auto ids = user_connection_ids(admin);
            if (!ids.empty()) {
                const auto victim = ids[random() % ids.size()];
                try {
                    admin.execute("KILL CONNECTION " + std::to_string(victim));
                    ++kills;
                } catch (const Error&) {
                    // 1094: it ended on its own meanwhile.
                }
            }
            std::this_thread::sleep_for(50ms);
        }
    }
    for (auto& worker : workers)
        worker.join();
    const auto stats = pool.stats();

    // Part B: idle connections killed, then used: the on-request ping must hide every kill.
    PoolOptions idle_options = options;
    idle_options.maxconnections = 4;
    Pool idle_pool(dbpool::mysql::connector(fault_server().tcp()), idle_options);
    Connection admin = admin_connection();
    ErrorTally idle_errors;
    long idle_requests = 0;
    long replaced = 0;
    constexpr int kRounds = 10;
    for (int round = 0; round < kRounds; ++round) {
        std::vector<std::uint64_t> ids;
        {
            std::vector<Pool::handle_type> held;
            for (int i = 0; i < 4; ++i)
                held.push_back(idle_pool.connection());
            for (auto& conn : held)
                ids.push_back(connection_id(conn));
        }
        for (std::uint64_t id : ids)
            admin.execute("KILL CONNECTION " + std::to_string(id));
        REQUIRE(gone_from_server(admin, ids));
        std::vector<Pool::handle_type> held;
        for (int i = 0; i < 4; ++i) {
            ++idle_requests;
            try {
                held.push_back(idle_pool.connection());
                const auto id = connection_id(held.back());
                if (std::find(ids.begin(), ids.end(), id) == ids.end()) ++replaced;
            } catch (const Error& error) {
                idle_errors.add(error);
            }
        }
    }

    std::ostringstream out;
    out << "under load: " << kills << " KILLs in 3 s, " << successes << " successful requests, "
        << "errors " << errors.summary() << ", longest request "
        << seconds(std::chrono::nanoseconds(longest_request.load())) * 1e3 << " ms"
        << ", pool reconnects=" << stats.reconnects << " created=" << stats.created << "\n"
        << errors.examples() << "    idle-then-used: " << idle_requests << " requests on "
        << kRounds << "x4 killed idle connections, " << replaced
        << " transparently replaced, errors " << idle_errors.summary();
    report("server KILL", out.str());

    CHECK(errors.untyped() == 0);
    CHECK(successes.load() > 0);
    // A statement that certainly did not run (2006) is retried, never reported.
    CHECK(errors.native(2006) == 0);
    CHECK(longest_request.load() < std::int64_t(10e9));
    CHECK(idle_errors.total() == 0);
    CHECK(replaced == idle_requests);
    // Recovered: a request now works and the server agrees with the pool's count.
    {
        auto conn = pool.connection();
        CHECK(conn->query("SELECT 1").scalar<int>() == 1);
    }
    // A connection killed while idle is still counted until the pool looks at it: borrow every
    // connection once (ping on request replaces the dead ones), then the counts must agree.
    const auto touch_all = [](Pool& target) {
        std::vector<Pool::handle_type> all;
        for (std::size_t i = 0, n = target.stats().total; i < n; ++i) {
            all.push_back(target.connection());
        }
    };
    touch_all(pool);
    touch_all(idle_pool);
    CHECK(eventually([&] {
        return user_connections(admin) == long(pool.stats().total + idle_pool.stats().total);
    }));
}

// ---------------------------------------------------------------------------------------------
// 3. wait_timeout: keepalive and ping-on-request survive it; DBUtils' defaults do not
// ---------------------------------------------------------------------------------------------
TEST_CASE("wait_timeout=2 with keepalive, with ping on request, and without either",
          "[faults][wait_timeout]") {
    REQUIRE(ensure_server_up());
    GlobalVariableGuard wait_timeout("wait_timeout", "2");  // new sessions only

    PoolOptions keepalive;
    keepalive.ping = Ping::never;  // keepalive alone must keep it alive
    keepalive.keepalive_interval = 1s;
    PoolOptions pinging;
    pinging.ping = Ping::on_request;  // default ping_bypass (500 ms) is shorter than the idle 3 s
    PoolOptions dbutils;
    dbutils.ping = Ping::never;  // DBUtils with ping=0: nothing checks the idle connection
    // The same, for a client that cannot tell "not sent" from "lost during the query" (MySQL 8
    // reports an idle kill as 4031): every connection error counts as "may have run".
    PoolOptions unsure = dbutils;
    unsure.failures = [](const std::exception& error) {
        const dbpool::Failure failure = dbpool::mysql::classify_exception(error);
        return failure == dbpool::Failure::broken_not_sent ? dbpool::Failure::broken : failure;
    };
    Pool keepalive_pool(dbpool::mysql::connector(fault_server().tcp()), keepalive);
    Pool ping_pool(dbpool::mysql::connector(fault_server().tcp()), pinging);
    Pool dbutils_pool(dbpool::mysql::connector(fault_server().tcp()), dbutils);
    Pool unsure_pool(dbpool::mysql::connector(fault_server().tcp()), unsure);

    std::uint64_t keepalive_id = 0;
    std::uint64_t ping_id = 0;
    {
        auto a = keepalive_pool.connection();
        auto b = ping_pool.connection();
        auto c = dbutils_pool.connection();
        auto d = unsure_pool.connection();
        d->query("SELECT 1");
        keepalive_id = connection_id(a);
        ping_id = connection_id(b);
        CHECK(c->query("SELECT @@SESSION.wait_timeout").scalar<int>() == 2);
    }
    std::this_thread::sleep_for(3500ms);  // > wait_timeout: the server drops idle sessions

    std::string keepalive_result;
    std::string ping_result;
    std::uint64_t keepalive_after = 0;
    std::uint64_t ping_after = 0;
    try {
        auto conn = keepalive_pool.connection();
        keepalive_after = connection_id(conn);
        keepalive_result = "ok";
    } catch (const Error& error) {
        keepalive_result = std::string(to_string(error.code())) + ": " + error.what();
    }
    try {
        auto conn = ping_pool.connection();
        ping_after = connection_id(conn);
        ping_result = "ok";
    } catch (const Error& error) {
        ping_result = std::string(to_string(error.code())) + ": " + error.what();
    }
    // Two requests in a row on each of the ping=0 pools, as (code, native, message) or "ok".
    const auto two_requests = [](Pool& pool) {
        std::vector<std::string> results;
        std::vector<ErrorCode> codes;
        for (int i = 0; i < 2; ++i) {
            try {
                auto conn = pool.connection();
                conn->query("SELECT 1").scalar<int>();
                results.push_back("ok");
                codes.push_back(ErrorCode::database);
            } catch (const Error& error) {
                results.push_back(std::string(to_string(error.code())) + " [" +
                                  std::to_string(error.native_code()) + "]: " + error.what());
                codes.push_back(error.code());
            }
        }
        return std::make_pair(results, codes);
    };
    const auto [dbutils_results, dbutils_codes] = two_requests(dbutils_pool);
    const auto [unsure_results, unsure_codes] = two_requests(unsure_pool);

    std::ostringstream out;
    out << "keepalive 1 s (ping=0): " << keepalive_result << ", same server connection "
        << (keepalive_id == keepalive_after ? "yes" : "no") << " (" << keepalive_id << " -> "
        << keepalive_after << ")\n    ping on request: " << ping_result << ", replaced "
        << (ping_id != ping_after ? "yes" : "no") << " (" << ping_id << " -> " << ping_after
        << "), stats().reconnects=" << ping_pool.stats().reconnects
        << "\n    ping=0, no keepalive: first request -> " << dbutils_results[0] << "; second -> "
        << dbutils_results[1] << "; stats().reconnects=" << dbutils_pool.stats().reconnects
        << "\n    ping=0, no keepalive, 2006 treated as 'may have run' (DBUtils' failure mode):"
        << "\n        first request -> " << unsure_results[0] << "\n        second -> "
        << unsure_results[1];
    report("wait_timeout", out.str());

    CHECK(keepalive_result == "ok");
    CHECK(keepalive_id == keepalive_after);
    CHECK(ping_result == "ok");
    CHECK(ping_id != ping_after);
    // The dead idle connection was retired at hand-out and a new one opened through the
    // pool's create path (counted as created, not as a reconnect in place).
    CHECK(ping_pool.stats().created == 2);
    CHECK(ping_pool.stats().reconnects == 0);
    // MariaDB Connector/C reports a statement on an idle-killed connection as 2006 ("gone
    // away", not sent), so dbpool reruns it on a new connection: the caller sees nothing...
    CHECK(dbutils_results[0] == "ok");
    CHECK(dbutils_results[1] == "ok");
    CHECK(dbutils_pool.stats().reconnects == 1);
    // ...but when the error cannot be known to be "not sent" (MySQL 8's 4031, or a kill during
    // the statement) the next request fails and only the one after it works: keepalive (or
    // ping on request) prevents that.
    CHECK(unsure_codes[0] == ErrorCode::connection_lost);
    CHECK(unsure_results[1] == "ok");
}

// ---------------------------------------------------------------------------------------------
// 4. Exhaustion
// ---------------------------------------------------------------------------------------------
TEST_CASE("64 threads on 4 connections never deadlock and a non-blocking pool refuses",
          "[faults][exhaustion]") {
    REQUIRE(ensure_server_up());
    PoolOptions options;
    options.maxconnections = 4;
    options.blocking = true;
    options.acquire_timeout = 10s;
    Pool pool(dbpool::mysql::connector(fault_server().tcp()), options);

    constexpr int kThreads = 64;
    const auto started = Clock::now();
    const auto deadline = started + 3s;
    std::atomic<long> completed{0};
    std::atomic<std::int64_t> longest_wait{0};
    ErrorTally errors;
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
        workers.emplace_back([&] {
            for (long i = 0; i < 100000 && Clock::now() < deadline; ++i) {
                errors.record([&] {
                    const auto asked = Clock::now();
                    auto conn = pool.connection();
                    atomic_max(longest_wait, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 Clock::now() - asked)
                                                 .count());
                    conn->query("SELECT 1").scalar<int>();
                    ++completed;
                });
            }
        });
    }
    for (auto& worker : workers)
        worker.join();
    const auto elapsed = Clock::now() - started;
    const auto stats = pool.stats();

    // Non-blocking at the limit: refused at once.
    PoolOptions refusing = options;
    refusing.blocking = false;
    Pool small(dbpool::mysql::connector(fault_server().tcp()), refusing);
    std::vector<Pool::handle_type> held;
    for (int i = 0; i < 4; ++i)
        held.push_back(small.connection());
    std::string refusal;
    ErrorCode refusal_code = ErrorCode::database;
    const auto asked = Clock::now();
    try {
        auto extra = small.connection();
    } catch (const Error& error) {
        refusal_code = error.code();
        refusal = error.what();
    }
    const auto refusal_time = Clock::now() - asked;

    std::ostringstream out;
    out << completed << " requests by " << kThreads << " threads on 4 connections in "
        << seconds(elapsed) << " s; longest wait "
        << seconds(std::chrono::nanoseconds(longest_wait.load())) * 1e3
        << " ms (pool's acquire_wait.max " << seconds(stats.acquire_wait.max) * 1e3 << " ms, mean "
        << seconds(stats.acquire_wait.mean()) * 1e3 << " ms); errors " << errors.summary()
        << "; created=" << stats.created
        << "\n    non-blocking 5th acquire: " << to_string(refusal_code) << " after "
        << seconds(refusal_time) * 1e3 << " ms: " << refusal;
    report("exhaustion", out.str());

    CHECK(errors.total() == 0);
    CHECK(errors.untyped() == 0);
    CHECK(completed.load() >= kThreads);
    CHECK(stats.created <= 4);
    CHECK(longest_wait.load() < std::int64_t(5e9));  // well under the 10 s acquire_timeout
    CHECK(seconds(elapsed) < 8.0);
    CHECK(refusal_code == ErrorCode::pool_exhausted);
    CHECK(refusal.find("too many connections") != std::string::npos);
    CHECK(small.stats().exhausted == 1);
}

// Database up but full: the server is at max_connections (MariaDB error 1040). The pool must
// serve its callers with the connections it got, back off its connects, and never tell a
// caller the database is down while a connection it holds can come back.
TEST_CASE("database up but full: a pool at the server's max_connections serves its callers",
          "[faults][full]") {
    REQUIRE(ensure_server_up());
    Connection admin = admin_connection();
    // A user without CONNECTION ADMIN, which the test user has and which lifts the limit.
    const std::string crowd_password = "crowd-test-pw";
    for (const char* host : {"127.0.0.1", "localhost"}) {
        admin.execute(std::string("CREATE USER IF NOT EXISTS 'dbpool_crowd'@'") + host +
                      "' IDENTIFIED BY '" + crowd_password + "'");
        admin.execute("GRANT SELECT ON " + fault_server().database + ".* TO 'dbpool_crowd'@'" +
                      host + "'");
    }
    ConnectOptions crowd = fault_server().tcp();
    crowd.user = "dbpool_crowd";
    crowd.password = crowd_password;

    const long saved_limit = admin.query("SELECT @@GLOBAL.max_connections").scalar<long>();
    struct Restore {  // also when a REQUIRE below fails
        Connection& admin;
        long limit;
        ~Restore() {
            try {
                admin.execute("SET GLOBAL max_connections = " + std::to_string(limit));
            } catch (...) {
            }
        }
    } restore{admin, saved_limit};
    admin.execute("SET GLOBAL max_connections = 10");  // MariaDB's smallest

    // Fill the server until it refuses, then free exactly 3 places.
    std::vector<Connection> fillers;
    int refused_number = 0;
    for (int i = 0; i < 20 && refused_number == 0; ++i) {
        try {
            fillers.emplace_back(crowd);
        } catch (const Error& error) {
            refused_number = error.native_code();
        }
    }
    REQUIRE(refused_number == 1040);
    REQUIRE(fillers.size() >= 3);
    fillers.erase(fillers.end() - 3, fillers.end());
    // The server notices the closes asynchronously: wait until a connect gets through again.
    REQUIRE(eventually(
        [&] {
            try {
                Connection probe(crowd);
                return true;
            } catch (const Error&) {
                return false;
            }
        },
        5s));

    dbpool_test::FullServerRun run;
    dbpool_test::run_against_full(
        [&](const PoolOptions& options) {
            return std::make_unique<Pool>(dbpool::mysql::connector(crowd), options);
        },
        run);
    fillers.clear();
    report("database full", run.describe("3 places left on the server"));

    CHECK(run.errors.total() == 0);  // every caller was served by a connection coming back
    CHECK(run.errors.untyped() == 0);
    CHECK(run.served >= 50);
    CHECK(run.stats.created >= 1);
    CHECK(run.stats.created <= 3);
    CHECK(run.stats.failed_connects >= 1);  // it tried for more, and was refused
    REQUIRE_FALSE(run.connect_failures.empty());
    for (const std::string& detail : run.connect_failures) {
        CHECK(detail.find("1040") != std::string::npos);
        CHECK(detail.find(crowd_password) == std::string::npos);
    }
}

// ---------------------------------------------------------------------------------------------
// 5. An exception in user code inside a transaction
// ---------------------------------------------------------------------------------------------
TEST_CASE("an exception mid-transaction rolls back and returns a clean connection",
          "[faults][transaction]") {
    REQUIRE(ensure_server_up());
    {
        Connection admin = admin_connection();
        admin.execute(
            "CREATE TABLE IF NOT EXISTS fault_rows (id INT PRIMARY KEY, note VARCHAR(32))"
            " ENGINE=InnoDB");
        admin.execute("DELETE FROM fault_rows");
    }
    PoolOptions options;
    options.maxconnections = 1;  // the next borrower gets the very same connection
    options.blocking = true;
    options.acquire_timeout = 3s;
    Pool pool(dbpool::mysql::connector(fault_server().tcp()), options);

    std::uint64_t first_id = 0;
    bool threw = false;
    try {
        auto conn = pool.connection();
        first_id = connection_id(conn);
        dbpool::Transaction tx(conn);
        conn->execute("INSERT INTO fault_rows VALUES (?, ?)", 1, "must vanish");
        throw std::runtime_error("user code failed mid-transaction");
    } catch (const std::runtime_error&) {
        threw = true;
    }
    const auto stats = pool.stats();

    auto next = pool.connection();
    const auto next_id = connection_id(next);
    const bool steady_in_tx = next->in_transaction();
    const int server_in_tx = next->query("SELECT @@in_transaction").scalar<int>();
    const long rows_seen_by_pool = next->query("SELECT COUNT(*) FROM fault_rows").scalar<long>();
    long rows_seen_by_admin = -1;
    {
        Connection admin = admin_connection();
        rows_seen_by_admin = admin.query("SELECT COUNT(*) FROM fault_rows").scalar<long>();
    }

    std::ostringstream out;
    out << "after the throw: in_use=" << stats.in_use << " idle=" << stats.idle
        << " total=" << stats.total << "; next borrower got connection " << next_id
        << (next_id == first_id ? " (the same one)" : " (a different one)")
        << ", in_transaction()=" << steady_in_tx << ", @@in_transaction=" << server_in_tx
        << ", rows=" << rows_seen_by_pool << " (admin sees " << rows_seen_by_admin << ")";
    report("exception in transaction", out.str());

    CHECK(threw);
    CHECK(stats.in_use == 0);
    CHECK(stats.idle == 1);
    CHECK(next_id == first_id);
    CHECK_FALSE(steady_in_tx);
    CHECK(server_in_tx == 0);
    CHECK(rows_seen_by_pool == 0);
    CHECK(rows_seen_by_admin == 0);
}

// ---------------------------------------------------------------------------------------------
// 6. Unreachable or refusing servers
// ---------------------------------------------------------------------------------------------
TEST_CASE("connect failures are typed, bounded in time, backed off and never leak the password",
          "[faults][connect]") {
    REQUIRE(ensure_server_up());
    const std::string wrong_password = "wrong-secret-Xq7!pw";
    const std::string real_password = fault_server().password;

    const LoopbackSocket closed(false);  // bound, never listening: connecting is refused
    const std::uint16_t closed_port = closed.port();
    LoopbackSocket black_hole(true);  // accepts (kernel backlog), never answers

    struct Case {
        const char* name;
        ConnectOptions options;
    };
    std::vector<Case> cases;
    {
        ConnectOptions o = fault_server().tcp();
        o.password = wrong_password;
        cases.push_back({"wrong password", o});
    }
    {
        ConnectOptions o = fault_server().tcp();
        o.database = "no_such_database_here";
        cases.push_back({"unknown database", o});
    }
    {
        ConnectOptions o = fault_server().tcp();
        o.port = closed_port;
        cases.push_back({"closed port", o});
    }
    {
        ConnectOptions o = fault_server().tcp();
        o.port = black_hole.port();
        cases.push_back({"silent listener", o});
    }

    const auto contains_password = [&](const std::string& text) {
        return text.find(wrong_password) != std::string::npos ||
               text.find(real_password) != std::string::npos;
    };

    for (const Case& c : cases) {
        INFO(c.name);
        // One connect, directly.
        const auto started = Clock::now();
        ErrorCode code = ErrorCode::database;
        int native = 0;
        std::string what;
        try {
            Connection connection(c.options);
        } catch (const Error& error) {
            code = error.code();
            native = error.native_code();
            what = error.what();
        }
        const double elapsed = seconds(Clock::now() - started);

        // A pool hammered by 4 threads for 2 s: creator calls must follow the backoff.
        std::atomic<long> creator_calls{0};
        std::atomic<std::int64_t> longest_connect{0};
        auto counting = [&creator_calls, &longest_connect,
                         connector = dbpool::mysql::connector(c.options)] {
            ++creator_calls;
            const auto begun = Clock::now();
            try {
                return connector();
            } catch (...) {
                atomic_max(longest_connect, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                Clock::now() - begun)
                                                .count());
                throw;
            }
        };
        PoolOptions options;
        options.maxconnections = 4;
        options.blocking = true;
        options.acquire_timeout = 3s;
        options.connect_backoff_min = 100ms;
        options.connect_backoff_max = 1s;
        Pool pool(counting, options);
        ErrorTally errors;
        std::atomic<long> attempts{0};
        std::atomic<bool> leaked{false};
        std::atomic<std::int64_t> longest{0};
        const auto hammer_end = Clock::now() + 2s;
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                for (int i = 0; i < 100000 && Clock::now() < hammer_end; ++i) {
                    ++attempts;
                    const auto asked = Clock::now();
                    try {
                        auto conn = pool.connection();
                    } catch (const Error& error) {
                        errors.add(error);
                        if (contains_password(error.what())) leaked = true;
                    } catch (const std::exception& error) {
                        errors.add_untyped(error);
                    }
                    atomic_max(longest, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            Clock::now() - asked)
                                            .count());
                    std::this_thread::sleep_for(1ms);
                }
            });
        }
        for (auto& thread : threads)
            thread.join();
        const double hammer_time = seconds(Clock::now() - (hammer_end - 2s));

        std::ostringstream out;
        out << to_string(code) << " [" << native << "] after " << elapsed * 1e3 << " ms: " << what
            << "\n    pool under 4 threads for " << hammer_time << " s: " << attempts
            << " acquires, " << creator_calls << " creator calls (longest "
            << seconds(std::chrono::nanoseconds(longest_connect.load())) * 1e3 << " ms), errors "
            << errors.summary() << ", longest acquire "
            << seconds(std::chrono::nanoseconds(longest.load())) * 1e3
            << " ms, failed_connects=" << pool.stats().failed_connects;
        report(std::string("connect: ") + c.name, out.str());

        CHECK(code == ErrorCode::connect_failed);
        CHECK(elapsed < 2.0 + 1.5);  // connect_timeout 2 s, plus slack for sanitizers
        CHECK_FALSE(contains_password(what));
        CHECK_FALSE(leaked.load());
        CHECK(errors.untyped() == 0);
        CHECK(errors.total() == errors.count(ErrorCode::connect_failed));
        // Backoff 100 ms doubling to 1 s gives about 5 windows in 2 s; at most 4 concurrent
        // connects per window. A storm would be thousands.
        CHECK(creator_calls.load() <= 4 * 6);
        CHECK(hammer_time < 2.0 + 2.0 + 1.5);
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Many short-lived threads on a PersistentPool
// ---------------------------------------------------------------------------------------------
TEST_CASE("1000 short-lived threads on a PersistentPool leave no connection behind",
          "[faults][persistent]") {
    REQUIRE(ensure_server_up());
    Connection admin = admin_connection();
    long baseline = 0;
    eventually([&] {
        baseline = user_connections(admin);
        return baseline == 0;
    });

    dbpool::PersistentPool<Connection> pool(dbpool::mysql::connector(fault_server().tcp()));
    constexpr int kBatches = 50;
    constexpr int kPerBatch = 20;
    const auto started = Clock::now();
    const auto deadline = started + 60s;
    ErrorTally errors;
    std::atomic<long> used{0};
    long peak_server = 0;
    long peak_pool = 0;
    int batches_run = 0;
    for (int batch = 0; batch < kBatches && Clock::now() < deadline; ++batch) {
        std::vector<std::thread> threads;
        std::atomic<int> ready{0};
        std::atomic<bool> release{false};
        for (int t = 0; t < kPerBatch; ++t) {
            threads.emplace_back([&] {
                try {
                    auto conn = pool.connection();
                    conn->query("SELECT 1").scalar<int>();
                    ++used;
                } catch (const Error& error) {
                    errors.add(error);
                } catch (const std::exception& error) {
                    errors.add_untyped(error);
                }
                ++ready;
                // Every 10th batch holds its threads alive a moment so the peak is visible.
                for (int i = 0; i < 200 && !release.load(); ++i) {
                    std::this_thread::sleep_for(5ms);
                }
            });
        }
        if (batch % 10 == 0) {
            eventually([&] { return ready.load() == kPerBatch; }, 5s);
            peak_pool = std::max(peak_pool, long(pool.open_connections()));
            peak_server = std::max(peak_server, user_connections(admin));
        }
        release = true;
        for (auto& thread : threads)
            thread.join();
        ++batches_run;
    }
    const auto elapsed = Clock::now() - started;
    const std::size_t open_after = pool.open_connections();
    long server_after = -1;
    const auto settle_start = Clock::now();
    const bool settled = eventually([&] {
        server_after = user_connections(admin);
        return server_after == baseline;
    });
    const auto settle_time = Clock::now() - settle_start;

    std::ostringstream out;
    out << batches_run * kPerBatch << " threads in " << batches_run << " batches, " << used
        << " used their connection in " << seconds(elapsed) << " s; errors " << errors.summary()
        << "; peak open " << peak_pool << " (server " << peak_server << ")"
        << "; after: pool open_connections=" << open_after << ", server count " << server_after
        << " (baseline " << baseline << ", settled in " << seconds(settle_time) << " s)";
    report("persistent threads", out.str());

    CHECK(batches_run == kBatches);
    CHECK(used.load() == kBatches * kPerBatch);
    CHECK(errors.total() == 0);
    CHECK(open_after == 0);
    CHECK(settled);
}

// ---------------------------------------------------------------------------------------------
// 8. fork()
// ---------------------------------------------------------------------------------------------
namespace {

struct ChildResult {
    bool exited = false;   // false: still running at the limit (killed)
    int status = -1;       // exit status: 0 = it used its own new connection successfully
    std::string child_id;  // the server connection id it used
};

// Forks; the child borrows from `pool`, checks it got a new connection (not `parent_id`), closes
// the pool and _exits. The parent waits at most `limit`.
ChildResult run_child(Pool& pool, std::uint64_t parent_id, std::chrono::milliseconds limit) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) return {};
    const pid_t child = ::fork();
    if (child < 0) return {};
    if (child == 0) {
        // The child: no Catch2 here; report through the exit status and the pipe.
        ::close(pipe_fds[0]);
        std::uint64_t child_id = 0;
        int status = 1;
        try {
            auto conn = pool.connection();
            child_id = connection_id(conn);
            status = child_id != parent_id && conn->query("SELECT 1").scalar<int>() == 1 ? 0 : 2;
        } catch (...) {
            status = 3;
        }
        pool.close();  // closes the child's own connection only
        const std::string id_text = std::to_string(child_id);
        if (::write(pipe_fds[1], id_text.data(), id_text.size()) < 0) status = 4;
        ::close(pipe_fds[1]);
        ::_exit(status);  // no destructors, no leak check: the inherited handles stay leaked
    }
    ::close(pipe_fds[1]);
    ChildResult result;
    result.exited = eventually(
        [&] {
            int raw = 0;
            if (::waitpid(child, &raw, WNOHANG) != child) return false;
            result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
            return true;
        },
        limit);
    if (!result.exited) {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
    }
    char buffer[32] = {};
    const auto length = ::read(pipe_fds[0], buffer, sizeof buffer - 1);
    ::close(pipe_fds[0]);
    result.child_id = length > 0 ? std::string(buffer, std::size_t(length)) : "?";
    return result;
}

}  // namespace

TEST_CASE("a pool used in a forked child leaves the parent's connection intact", "[faults][fork]") {
    DBPOOL_SKIP_FORK_UNDER_SANITIZERS();
    REQUIRE(ensure_server_up());
    Pool pool(dbpool::mysql::connector(fault_server().tcp()), PoolOptions{});
    std::uint64_t parent_id = 0;
    {
        auto conn = pool.connection();
        parent_id = connection_id(conn);
    }
    const ChildResult child = run_child(pool, parent_id, 15s);

    std::uint64_t after_id = 0;
    std::string parent_result;
    try {
        auto conn = pool.connection();
        after_id = connection_id(conn);
        parent_result = conn->query("SELECT 1").scalar<int>() == 1 ? "ok" : "wrong answer";
    } catch (const Error& error) {
        parent_result = std::string(to_string(error.code())) + ": " + error.what();
    }
    std::ostringstream out;
    out << "parent connection " << parent_id << ", child used " << child.child_id
        << (child.exited ? " and exited with " + std::to_string(child.status) : " and HUNG")
        << "; parent afterwards: " << parent_result << " on connection " << after_id
        << " (reconnects=" << pool.stats().reconnects << ")";
    report("fork", out.str());

    CHECK(child.exited);
    CHECK(child.status == 0);
    CHECK(parent_result == "ok");
    CHECK(after_id == parent_id);
}

// When another thread holds a pool's mutex at the moment of fork(), the child must not inherit
// it locked (pools hold their mutexes across fork() through pthread_atfork).
TEST_CASE("fork while another thread uses the pool: the child must not hang", "[faults][fork]") {
    DBPOOL_SKIP_CONCURRENT_FORK_UNDER_SANITIZERS();
    REQUIRE(ensure_server_up());
    PoolOptions options;
    options.maxconnections = 4;
    options.blocking = true;
    options.acquire_timeout = 3s;
    Pool pool(dbpool::mysql::connector(fault_server().tcp()), options);
    std::uint64_t parent_id = 0;
    {
        auto conn = pool.connection();
        parent_id = connection_id(conn);
    }
    std::atomic<bool> stop{false};
    std::atomic<long> busy_requests{0};
    std::thread busy([&] {
        // What a web worker and a metrics scraper do; bounded by `stop` and a count.
        for (long i = 0; i < 10000000 && !stop.load(); ++i) {
            try {
                auto conn = pool.connection();
                (void)pool.stats();
                ++busy_requests;
            } catch (const Error&) {
            }
        }
    });
    constexpr int kForks = 20;
    int hung = 0;
    int failed = 0;
    const auto started = Clock::now();
    for (int i = 0; i < kForks && Clock::now() < started + 40s; ++i) {
        const ChildResult child = run_child(pool, parent_id, 1500ms);
        if (!child.exited) {
            ++hung;
        } else if (child.status != 0) {
            ++failed;
        }
    }
    stop = true;
    busy.join();
    std::ostringstream out;
    out << kForks << " forks while another thread used the pool (" << busy_requests
        << " acquires + stats()): " << hung << " children hung (killed after 1.5 s), " << failed
        << " failed otherwise";
    report("fork under concurrent use", out.str());
    CHECK(hung == 0);
    CHECK(failed == 0);
}

// PersistentPool keyed by Boost.Fiber fibers: many fibers on a few threads, each with a
// connection of its own, closed when the fiber ends.
//
//   fiber_transfers [mysql://user:password@host:port/database]   (default: $DBPOOL_TEST_URL)
//   build: link Boost.Fiber (-lboost_fiber -lboost_context); <dbpool/contexts/boost_fiber.hpp>
//   is not in the umbrella header.
//
// 100 fibers on 2 threads each move money between two accounts in a transaction, and yield in
// the middle of it, so every other fiber of the thread runs its own transaction meanwhile. On a
// fiber-keyed pool each fiber has its own connection: the balances come out exact. On the
// default thread-keyed pool the fibers of a thread would share one connection and one
// transaction; the pool refuses the second begin() with ErrorCode::usage instead.
#include <dbpool/contexts/boost_fiber.hpp>
#include <dbpool/mysql.hpp>

#include <boost/fiber/all.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using FiberPool = dbpool::PersistentPool<dbpool::mysql::Connection, std::chrono::steady_clock,
                                         dbpool::BoostFiberContext>;
using ThreadPool = dbpool::PersistentPool<dbpool::mysql::Connection>;

constexpr int thread_count = 2;
constexpr int fibers_per_thread = 50;
constexpr int fiber_count = thread_count * fibers_per_thread;
constexpr int opening_balance = 1000;
constexpr int amount = 10;

struct Results {
    std::mutex mutex;
    std::set<std::int64_t> connection_ids;  // the server connection each fiber used
    std::size_t most_open = 0;              // the pool's open connections, at most
    int failures = 0;
};

// Fiber `n` moves `amount` from account 2n to account 2n+1. Each fiber has its own accounts: a
// fiber waiting for a row lock another fiber of its thread holds would block the whole thread.
void transfer(FiberPool& pool, int n, Results& results) {
    try {
        auto connection = pool.connection();  // this fiber's connection, opened now
        dbpool::Transaction<FiberPool::handle_type> transaction(connection);
        connection->execute("UPDATE dbpool_fiber_accounts SET balance = balance - ? WHERE id = ?",
                            amount, 2 * n);
        boost::this_fiber::yield();  // the thread's other fibers run their transactions now
        connection->execute("UPDATE dbpool_fiber_accounts SET balance = balance + ? WHERE id = ?",
                            amount, 2 * n + 1);
        const auto id = connection->query("SELECT CAST(CONNECTION_ID() AS SIGNED) AS id");
        transaction.commit();
        std::lock_guard<std::mutex> lock(results.mutex);
        results.connection_ids.insert(id[0].get<std::int64_t>("id"));
        results.most_open = std::max(results.most_open, pool.open_connections());
    } catch (const dbpool::Error& error) {
        std::lock_guard<std::mutex> lock(results.mutex);
        ++results.failures;
        std::cerr << "fiber " << n << " failed (" << dbpool::to_string(error.code())
                  << "): " << error.what() << "\n";
    }
    // The fiber ends here, and its connection closes.
}

void reset_accounts(dbpool::SteadyConnection<dbpool::mysql::Connection>& admin) {
    admin.execute(
        "CREATE TABLE IF NOT EXISTS dbpool_fiber_accounts "
        "(id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB");
    admin.execute("DELETE FROM dbpool_fiber_accounts");
    for (int id = 0; id < 2 * fiber_count; ++id) {
        admin.execute("INSERT INTO dbpool_fiber_accounts (id, balance) VALUES (?, ?)", id,
                      opening_balance);
    }
}

// Accounts whose balance is not what the transfers that committed should have left.
std::int64_t wrong_balances(dbpool::SteadyConnection<dbpool::mysql::Connection>& admin,
                            int transferred_pairs) {
    const auto rows = admin.query(
        "SELECT COUNT(*) AS wrong FROM dbpool_fiber_accounts WHERE balance <> "
        "IF(id >= ?, ?, IF(id % 2 = 0, ?, ?))",
        2 * transferred_pairs, opening_balance, opening_balance - amount, opening_balance + amount);
    return rows[0].get<std::int64_t>("wrong");
}

}  // namespace

int main(int argc, char** argv) {
    const char* url = argc > 1 ? argv[1] : std::getenv("DBPOOL_TEST_URL");
    if (url == nullptr) {
        std::cerr << "usage: " << argv[0] << " mysql://user:password@host:port/database\n";
        return 2;
    }
    try {
        FiberPool pool(dbpool::mysql::connector(url));
        auto admin = pool.steady_connection();  // outside the pool: set-up and checks
        reset_accounts(*admin);

        // 1. The fiber-keyed pool: 2 threads, 50 fibers each.
        Results results;
        std::vector<std::thread> threads;
        for (int t = 0; t < thread_count; ++t) {
            threads.emplace_back([&, t] {
                std::vector<boost::fibers::fiber> fibers;
                for (int i = 0; i < fibers_per_thread; ++i) {
                    fibers.emplace_back(
                        [&, n = t * fibers_per_thread + i] { transfer(pool, n, results); });
                }
                for (auto& fiber : fibers)
                    fiber.join();
            });
        }
        for (auto& thread : threads)
            thread.join();
        const std::size_t open_after = pool.open_connections();
        const std::int64_t wrong = wrong_balances(*admin, fiber_count);
        std::cout << fiber_count << " transfers by " << fiber_count << " fibers on " << thread_count
                  << " threads: " << results.connection_ids.size()
                  << " server connections, at most " << results.most_open << " open at once, "
                  << open_after << " open after the fibers ended; " << wrong << " wrong balances, "
                  << results.failures << " failures\n";

        // 2. The same two-fibers-on-one-thread shape on the thread-keyed default: fiber one
        // opens its transaction and yields in the middle of it; this thread's main fiber then
        // begins its own on the same (shared) connection, and is refused.
        reset_accounts(*admin);
        ThreadPool shared(dbpool::mysql::connector(url));
        std::string refusal;
        bool one_committed = false;
        boost::fibers::fiber first([&] {
            auto connection = shared.connection();
            dbpool::Transaction<ThreadPool::handle_type> transaction(connection);
            connection->execute(
                "UPDATE dbpool_fiber_accounts SET balance = balance - ? WHERE id = 0", amount);
            boost::this_fiber::yield();
            connection->execute(
                "UPDATE dbpool_fiber_accounts SET balance = balance + ? WHERE id = 1", amount);
            transaction.commit();
            one_committed = true;
        });
        boost::this_fiber::yield();  // the first fiber is now inside its transaction
        try {
            auto connection = shared.connection();
            dbpool::Transaction<ThreadPool::handle_type> transaction(connection);
            refusal = "none: the second transaction began";
        } catch (const dbpool::Error& error) {
            if (error.code() == dbpool::ErrorCode::usage) refusal = error.what();
        }
        first.join();
        const std::int64_t wrong_shared = wrong_balances(*admin, 1);
        std::cout << "thread-keyed pool, a second fiber's transaction: refused with \""
                  << refusal.substr(0, refusal.find(". ")) << "\"; the first fiber's "
                  << (one_committed ? "committed" : "did not commit") << ", " << wrong_shared
                  << " wrong balances\n";
        admin->execute("DROP TABLE dbpool_fiber_accounts");

        // What this example promises; the test suite runs it and relies on the exit status.
        if (results.failures != 0 || wrong != 0 ||
            results.connection_ids.size() != static_cast<std::size_t>(fiber_count) ||
            results.most_open < static_cast<std::size_t>(fibers_per_thread) || open_after != 0 ||
            refusal.rfind("dbpool: begin()", 0) != 0 || !one_committed || wrong_shared != 0) {
            std::cerr << "unexpected result\n";
            return 1;
        }
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

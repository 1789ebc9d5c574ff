// What to do with each error: branch on dbpool::Error::code(), never on the message.
//
//   error_handling [mysql://user:password@host:port/database]   (default: $DBPOOL_TEST_URL)
//
// run_transaction() below is the pattern to copy: it retries a transaction the server rolled
// back (transaction_conflict: a deadlock here) or lost with its connection (transaction_lost:
// the server kills the connection here), checks an idempotency key after commit_unknown, and
// gives every other error back to the caller. connection_with_backoff() backs off while a
// non-blocking pool is exhausted. Each case is staged against the server and shown.
#include <dbpool/mysql.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>

namespace {

using Pool = dbpool::PooledPool<dbpool::mysql::Connection>;
using Handle = Pool::handle_type;

std::mutex output_mutex;
std::atomic<int> retried_conflicts{0};  // what the staged cases provoked, checked at the end
std::atomic<int> retried_lost{0};

void say(const std::string& text) {
    std::lock_guard<std::mutex> lock(output_mutex);
    std::cout << text << "\n";
}

// A growing pause with jitter, so transactions that collided do not collide again in step.
void pause_before_retry(int attempt) {
    thread_local std::minstd_rand random(std::random_device{}());
    const int base_ms = 10 << std::min(attempt, 6);
    std::uniform_int_distribution<int> jitter(0, base_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(base_ms + jitter(random)));
}

// Whether the transfer with this idempotency key committed.
bool committed(Pool& pool, const std::string& transfer_id) {
    auto connection = pool.connection();
    return !connection->query("SELECT 1 FROM dbpool_example_transfers WHERE id = ?", transfer_id)
                .empty();
}

// Runs body(connection, attempt) and records `transfer_id` as one transaction. Retried from its
// start while the server rolled it back (transaction_conflict) or the connection broke inside it
// (transaction_lost); after commit_unknown the key says whether it committed. Everything else
// (a constraint violated, a syntax error, the pool closed, ...) goes back to the caller: running
// it again would not help.
template <class Body>
void run_transaction(Pool& pool, const std::string& transfer_id, Body body, int attempts = 5) {
    for (int attempt = 1;; ++attempt) {
        try {
            auto connection = pool.connection();
            dbpool::Transaction transaction(connection);  // rolled back if we leave early
            body(connection, attempt);
            // The idempotency key: a second run of the same transfer fails on the primary key.
            connection->execute("INSERT INTO dbpool_example_transfers (id) VALUES (?)",
                                transfer_id);
            transaction.commit();
            return;
        } catch (const dbpool::Error& error) {
            switch (error.code()) {
                case dbpool::ErrorCode::transaction_conflict:  // deadlock, serialization failure
                case dbpool::ErrorCode::transaction_lost:      // connection broke inside it
                    // The server rolled it back: nothing of it happened, so run it again.
                    if (attempt == attempts) throw;
                    ++(error.code() == dbpool::ErrorCode::transaction_conflict ? retried_conflicts
                                                                               : retried_lost);
                    say("  " + transfer_id + ": attempt " + std::to_string(attempt) + " got " +
                        dbpool::to_string(error.code()) + ", retrying");
                    pause_before_retry(attempt);
                    break;
                case dbpool::ErrorCode::commit_unknown:
                    // The connection broke during COMMIT: it may have committed. Look first.
                    if (committed(pool, transfer_id)) return;
                    if (attempt == attempts) throw;
                    break;
                default: throw;
            }
        }
    }
}

// Moves `amount` between two accounts, row by row.
void move_money(Handle& connection, int from, int to, long amount) {
    connection->execute("UPDATE dbpool_example_balances SET balance = balance - ? WHERE id = ?",
                        amount, from);
    connection->execute("UPDATE dbpool_example_balances SET balance = balance + ? WHERE id = ?",
                        amount, to);
}

// Two threads meet here once, so that each holds its first row lock before asking for the
// other's: that is a deadlock, and the server rolls one of the two transactions back.
class Rendezvous {
public:
    void arrive() {
        std::unique_lock<std::mutex> lock(mutex_);
        ++arrived_;
        met_.notify_all();
        met_.wait_for(lock, std::chrono::seconds(10), [this] { return arrived_ >= 2; });
    }

private:
    std::mutex mutex_;
    std::condition_variable met_;
    int arrived_ = 0;
};

// Borrows from a non-blocking pool, backing off while it is at maxconnections.
Handle connection_with_backoff(Pool& pool, int& refusals) {
    auto pause = std::chrono::milliseconds(5);
    for (int attempt = 1;; ++attempt) {
        try {
            return pool.connection();
        } catch (const dbpool::Error& error) {
            if (error.code() != dbpool::ErrorCode::pool_exhausted || attempt == 10) throw;
            ++refusals;
            std::this_thread::sleep_for(pause);
            pause = std::min(pause * 2, std::chrono::milliseconds(200));
        }
    }
}

long balance(Pool& pool, int account) {
    auto connection = pool.connection();
    return connection->query("SELECT balance FROM dbpool_example_balances WHERE id = ?", account)
        .scalar<long>();
}

// Waits until the server has ended connection `id` (KILL takes effect asynchronously).
void wait_until_gone(dbpool::mysql::Connection& admin, unsigned long id) {
    for (int i = 0; i < 250; ++i) {
        const auto left =
            admin.query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id);
        if (left.scalar<int>() == 0) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace

int main(int argc, char** argv) {
    const char* url = argc > 1 ? argv[1] : std::getenv("DBPOOL_TEST_URL");
    if (url == nullptr) {
        std::cerr << "usage: " << argv[0] << " mysql://user:password@host:port/database\n";
        return 2;
    }
    try {
        dbpool::PoolOptions options;
        options.maxconnections = 4;
        options.blocking = true;
        Pool pool(dbpool::mysql::connector(url), options);
        {
            auto connection = pool.connection();
            connection->execute(
                "CREATE TABLE IF NOT EXISTS dbpool_example_balances "
                "(id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB");
            connection->execute(
                "CREATE TABLE IF NOT EXISTS dbpool_example_transfers "
                "(id VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB");
            connection->execute("REPLACE INTO dbpool_example_balances VALUES (1, 100), (2, 100)");
            connection->execute("DELETE FROM dbpool_example_transfers");
        }

        say("1. transaction_conflict: two transfers in opposite directions deadlock");
        Rendezvous rendezvous;
        const auto crossing = [&](const std::string& id, int from, int to) {
            return [&pool, &rendezvous, id, from, to] {
                try {
                    run_transaction(pool, id, [&](Handle& connection, int attempt) {
                        connection->execute(
                            "UPDATE dbpool_example_balances SET balance = balance - 10 "
                            "WHERE id = ?",
                            from);
                        if (attempt == 1) rendezvous.arrive();
                        connection->execute(
                            "UPDATE dbpool_example_balances SET balance = balance + 10 "
                            "WHERE id = ?",
                            to);
                    });
                    say("  " + id + ": committed");
                } catch (const dbpool::Error& error) {
                    say("  " + id + ": failed (" + dbpool::to_string(error.code()) +
                        "): " + error.what());
                }
            };
        };
        std::thread left(crossing("transfer-a", 1, 2));
        std::thread right(crossing("transfer-b", 2, 1));
        left.join();
        right.join();

        say("2. transaction_lost: the server kills the connection in the middle of a transfer");
        dbpool::mysql::Connection admin(dbpool::mysql::ConnectOptions::from_url(url));
        run_transaction(pool, "transfer-c", [&](Handle& connection, int attempt) {
            if (attempt == 1) {
                const auto id = connection->query("SELECT CONNECTION_ID()").scalar<unsigned long>();
                admin.execute("KILL " + std::to_string(id));
                wait_until_gone(admin, id);
            }
            move_money(connection, 1, 2, 5);
        });
        say("  transfer-c: committed");

        say("3. database: the same transfer again is refused by its idempotency key");
        try {
            run_transaction(pool, "transfer-c", [&](Handle& connection, int /*attempt*/) {
                move_money(connection, 1, 2, 5);
            });
            say("  unexpected: transfer-c ran twice");
            return 1;
        } catch (const dbpool::Error& error) {
            if (error.code() != dbpool::ErrorCode::database) throw;
            // Server errors keep their number and SQLSTATE: 1062 / 23000 is a duplicate key.
            say("  refused, not retried: MySQL error " + std::to_string(error.native_code()) +
                ", SQLSTATE " + error.sqlstate());
        }

        say("4. pool_exhausted: a non-blocking pool at its limit; the caller backs off");
        dbpool::PoolOptions small_options;
        small_options.maxconnections = 1;
        small_options.blocking = false;  // at the limit, throw pool_exhausted at once
        Pool small(dbpool::mysql::connector(url), small_options);
        auto held = small.connection();
        int refusals = 0;
        std::thread waiter([&small, &refusals] {
            try {
                auto connection = connection_with_backoff(small, refusals);
                connection->execute("DO 1");
            } catch (const dbpool::Error& error) {
                say(std::string("  failed (") + dbpool::to_string(error.code()) +
                    "): " + error.what());
            }
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        held.close();  // back to the pool: the waiter's next try succeeds
        waiter.join();
        say("  got a connection after " + std::to_string(refusals) + " pool_exhausted refusals");

        // Every transfer applied exactly once: a and b cancel out, c moved 5 from 1 to 2.
        const long first = balance(pool, 1);
        const long second = balance(pool, 2);
        say("balances: account 1 = " + std::to_string(first) +
            ", account 2 = " + std::to_string(second) + " (expected 95 and 105)");
        {
            auto connection = pool.connection();
            connection->execute("DROP TABLE dbpool_example_balances, dbpool_example_transfers");
        }
        if (first != 95 || second != 105 || retried_conflicts.load() == 0 ||
            retried_lost.load() == 0 || refusals == 0) {
            std::cerr << "unexpected: a staged case did not happen as described\n";
            return 1;
        }
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

// Moving money with dbpool::Transaction: either both balances change or neither does.
//
//   transactions [mysql://user:password@host:port/database]   (default: $DBPOOL_TEST_URL)
#include <dbpool/mysql.hpp>

#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>

namespace {

using Pool = dbpool::PooledPool<dbpool::mysql::Connection>;

// Moves `amount` from account `from` to account `to`; `fail_midway` simulates a crash of the
// application between the two updates.
void transfer(Pool& pool, int from, int to, long amount, bool fail_midway) {
    auto connection = pool.connection();
    dbpool::Transaction tx(connection);  // BEGIN; rolled back unless commit() is reached
    const auto balance = connection->query(
        "SELECT balance FROM dbpool_example_accounts WHERE id = ? FOR UPDATE", from);
    if (balance.empty() || balance.scalar<long>() < amount) {
        throw std::runtime_error("insufficient funds");
    }
    connection->execute("UPDATE dbpool_example_accounts SET balance = balance - ? WHERE id = ?",
                        amount, from);
    if (fail_midway) throw std::runtime_error("simulated failure between the two updates");
    connection->execute("UPDATE dbpool_example_accounts SET balance = balance + ? WHERE id = ?",
                        amount, to);
    tx.commit();
}

void print_balances(Pool& pool, const char* when) {
    auto connection = pool.connection();
    std::cout << when << ":";
    for (const auto row :
         connection->query("SELECT id, balance FROM dbpool_example_accounts ORDER BY id")) {
        std::cout << "  account " << row.get<int>("id") << " = " << row.get<long>("balance");
    }
    std::cout << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    const char* url = argc > 1 ? argv[1] : std::getenv("DBPOOL_TEST_URL");
    if (url == nullptr) {
        std::cerr << "usage: " << argv[0] << " mysql://user:password@host:port/database\n";
        return 2;
    }
    try {
        Pool pool(dbpool::mysql::connector(url));
        {
            auto connection = pool.connection();
            connection->execute(
                "CREATE TABLE IF NOT EXISTS dbpool_example_accounts "
                "(id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB");
            connection->execute("REPLACE INTO dbpool_example_accounts VALUES (1, 100), (2, 50)");
        }
        print_balances(pool, "start              ");

        transfer(pool, 1, 2, 30, false);
        print_balances(pool, "after transfer 30  ");

        try {
            transfer(pool, 1, 2, 20, true);
        } catch (const std::runtime_error& error) {
            std::cout << "transfer of 20 failed: " << error.what() << "\n";
        }
        print_balances(pool, "after failed 20    ");  // unchanged: the first update was undone

        auto conn = pool.connection();
        conn->execute("DROP TABLE dbpool_example_accounts");
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

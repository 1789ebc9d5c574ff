// The smallest useful dbpool program on PostgreSQL: a pool, a borrowed connection, a query,
// a transaction.
//
//   pg_quickstart postgresql://user:password@127.0.0.1:5432/database
// (or set DBPOOL_PG_URL, as scripts/postgres.sh's DIR/env does). Any libpq connection string
// works, e.g. "host=/var/run/postgresql dbname=shop sslmode=verify-full".
#include <dbpool/pg.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    const char* url = argc > 1 ? argv[1] : std::getenv("DBPOOL_PG_URL");
    if (url == nullptr) {
        std::cerr << "usage: " << argv[0] << " postgresql://user:password@host:port/database\n";
        return 2;
    }
    try {
        dbpool::PoolOptions options;
        options.maxconnections = 4;                    // at most four server sessions
        options.blocking = true;                       // wait for a free one instead of failing
        options.setsession = {"SET TIME ZONE 'UTC'"};  // after every (re)connect
        dbpool::PooledPool<dbpool::pg::Connection> pool(dbpool::pg::connector(url), options);

        auto connection = pool.connection();  // returned to the pool when it goes out of scope
        const auto rows = connection->query(
            "SELECT current_setting('server_version') AS version, $1 + $2 AS answer", 40, 2);
        std::cout << "server " << rows[0].get<std::string>("version") << ", answer "
                  << rows[0].get<int>("answer") << "\n";

        connection->execute("CREATE TEMP TABLE notes (id serial PRIMARY KEY, body text)");
        {
            dbpool::Transaction tx(connection);  // rolled back unless committed
            connection->execute("INSERT INTO notes (body) VALUES ($1), ($2)", "first", "second");
            tx.commit();
        }
        for (const auto& row : connection->query("SELECT id, body FROM notes ORDER BY id")) {
            std::cout << "note " << row.get<int>("id") << ": " << row.get<std::string>("body")
                      << "\n";
        }
    } catch (const dbpool::Error& error) {
        // The code to branch on; the SQLSTATE for server errors (e.g. 23505 duplicate key).
        std::cerr << "error (" << dbpool::to_string(error.code()) << ", SQLSTATE "
                  << (error.sqlstate().empty() ? "-" : error.sqlstate()) << "): " << error.what()
                  << "\n";
        return 1;
    }
    return 0;
}

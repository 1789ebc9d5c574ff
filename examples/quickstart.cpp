// The smallest useful dbpool program: a pool, a borrowed connection, a query.
//
//   quickstart mysql://user:password@127.0.0.1:3306/database
// (or set DBPOOL_TEST_URL, as scripts/mariadb.sh's DIR/env does)
#include <dbpool/mysql.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    const char* url = argc > 1 ? argv[1] : std::getenv("DBPOOL_TEST_URL");
    if (url == nullptr) {
        std::cerr << "usage: " << argv[0] << " mysql://user:password@host:port/database\n";
        return 2;
    }
    try {
        dbpool::PoolOptions options;
        options.maxconnections = 4;  // at most four server connections
        options.blocking = true;     // wait for a free one instead of failing
        dbpool::PooledPool<dbpool::mysql::Connection> pool(dbpool::mysql::connector(url), options);

        auto connection = pool.connection();  // returned to the pool when it goes out of scope
        const auto rows = connection->query("SELECT VERSION() AS version, ? + ? AS answer", 40, 2);
        std::cout << "server " << rows[0].get<std::string>("version") << ", answer "
                  << rows[0].get<int>("answer") << "\n";
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

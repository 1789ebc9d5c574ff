// Beyond one server: a Router over a primary and its replicas (or a Galera cluster). Writes go
// to the primary, reads to a healthy replica that is not lagging, a session that just wrote
// reads its own writes, and every node has its own stats.
//
//   cluster mysql://user:password@primary:3306,replica1:3307,replica2:3308/database
//   cluster --galera mysql://user:password@node1:3306,node2:3307,node3:3308/database
// (or set DBPOOL_CLUSTER_URL, as scripts/replication.sh's and scripts/galera.sh's DIR/env do)
#include <dbpool/mysql.hpp>
#include <dbpool/mysql/cluster.hpp>
#include <dbpool/router.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    bool galera = false;
    const char* url = std::getenv("DBPOOL_CLUSTER_URL");
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--galera") == 0) {
            galera = true;
        } else {
            url = argv[i];
        }
    }
    if (url == nullptr) {
        std::cerr << "usage: " << argv[0]
                  << " [--galera] mysql://user:pw@primary,replica1,.../db\n";
        return 2;
    }
    try {
        dbpool::mysql::ClusterOptions options;
        options.kind =
            galera ? dbpool::mysql::ClusterKind::galera : dbpool::mysql::ClusterKind::replication;
        options.pool.maxconnections = 8;
        options.pool.blocking = true;
        options.pool.acquire_timeout = 2s;
        options.router.health_interval = 500ms;  // how fast a lagging or dead node is left
        options.router.read_your_writes = 2s;    // a session that wrote reads the primary
        options.check.max_replica_lag = 5s;      // replicas further behind get no reads
        auto router = dbpool::mysql::make_cluster_router(url, options);

        {
            auto conn = router->connection(dbpool::Access::write);
            conn->execute(
                "CREATE TABLE IF NOT EXISTS cluster_demo (id INT AUTO_INCREMENT PRIMARY KEY,"
                " note VARCHAR(64) NOT NULL)");
        }

        // One session per request or user: its reads follow its writes for a while.
        dbpool::RouterSession session;
        {
            auto conn = router->connection(dbpool::Access::write, session);
            conn->execute("INSERT INTO cluster_demo (note) VALUES (?)",
                          "hello from " + conn.node_name());
        }
        {
            auto conn = router->connection(dbpool::Access::read, session);
            std::cout << "read-your-writes read on " << conn.node_name() << ": "
                      << conn->query("SELECT COUNT(*) FROM cluster_demo").scalar<long>()
                      << " rows\n";
        }
        // Reads without a session (or after read_your_writes) spread over the replicas.
        for (int i = 0; i < 6; ++i) {
            auto conn = router->connection(dbpool::Access::read);
            std::cout << "read " << i << " on " << conn.node_name() << " (server_id "
                      << conn->query("SELECT @@server_id").scalar<long>() << ")\n";
        }

        for (const auto& node : router->stats()) {
            std::cout << node.name << " " << dbpool::to_string(node.role) << ": "
                      << dbpool::to_string(node.health.state);
            if (node.health.lag.count() >= 0)
                std::cout << ", lag " << node.health.lag.count() << " ms";
            if (!node.health.reason.empty()) std::cout << " (" << node.health.reason << ")";
            std::cout << "; " << node.reads << " reads, " << node.writes << " writes, "
                      << node.pool.total << " connections open\n";
        }
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

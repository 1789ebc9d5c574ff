// Reads through a Router over a primary and two replicas against reads from the primary
// alone, as a ratio measured in one run (same machine, same data, same threads).
//
//   dbpool_cluster_reads [seconds-per-phase] [threads]
// with DBPOOL_CLUSTER_URL=mysql://user:pw@primary,replica1,replica2/db in the environment
// (scripts/replication.sh start DIR writes it to DIR/env).
//
// Two workloads, because on one machine all three servers share the same cores:
// - cpu: a query that keeps the server busy (a scan of 20,000 rows). Here the replicas take
//   the work off the primary, but not off the machine, so the ratio shows the router's
//   overhead and the cost of one machine running three servers, not scaling.
// - capacity: each node serves at most 4 reads at once (its pool's maxconnections, as a real
//   server has a capacity) and a read takes 2 ms on the server (SLEEP). This is what replicas
//   buy on separate machines: the router spreads reads so the cluster serves more at once.
#include <dbpool/mysql.hpp>
#include <dbpool/mysql/cluster.hpp>
#include <dbpool/router.hpp>

#include "cluster_reads.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

std::unique_ptr<dbpool::mysql::ClusterRouter> router_over(
    const std::vector<dbpool::mysql::ConnectOptions>& hosts, int maxconnections) {
    dbpool::mysql::ClusterOptions options;
    options.pool.maxconnections = maxconnections;
    options.pool.blocking = true;
    options.pool.acquire_timeout = 10s;
    options.router.health_interval = 500ms;
    options.check.max_replica_lag = 10s;
    return dbpool::mysql::make_cluster_router(hosts, options);
}

}  // namespace

int main(int argc, char** argv) {
    const char* url = std::getenv("DBPOOL_CLUSTER_URL");
    if (url == nullptr) {
        std::cerr << "set DBPOOL_CLUSTER_URL=mysql://user:pw@primary,replica1,replica2/db\n";
        return 2;
    }
    const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
    const int threads = argc > 2 ? std::atoi(argv[2]) : 8;
    try {
        const auto hosts = dbpool::mysql::multi_host_options_from_url(url).hosts;
        if (hosts.size() < 2) {
            std::cerr << "the URL must list the primary and at least one replica\n";
            return 2;
        }
        const std::vector<dbpool::mysql::ConnectOptions> primary_only{hosts.front()};
        {
            auto router = router_over(primary_only, 4);
            auto conn = router->connection(dbpool::Access::write);
            conn->execute("CREATE TABLE IF NOT EXISTS bench_rows (id INT PRIMARY KEY, v INT)");
            conn->execute("DELETE FROM bench_rows");
            conn->execute(
                "INSERT INTO bench_rows SELECT seq, seq * 7919 % 1000 FROM seq_1_to_20000");
        }
        std::this_thread::sleep_for(1s);  // let the replicas apply it

        dbpool_bench::compare_workloads(
            [&](bool cluster, int maxconnections) {
                return router_over(cluster ? hosts : primary_only, maxconnections);
            },
            "SELECT COUNT(*) FROM bench_rows WHERE v % 7 = ?", "SELECT SLEEP(0.002) + ?", threads,
            seconds);
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

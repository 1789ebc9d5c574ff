// PostgreSQL reads through a Router over a primary and two streaming replicas against reads
// from the primary alone, as a ratio measured in one run (same machine, same data, same
// threads); bench/cluster_reads.cpp is the MySQL one, with the same two workloads.
//
//   dbpool_pg_cluster_reads [seconds-per-phase] [threads]
// with DBPOOL_CLUSTER_URL=postgresql://user:pw@primary:p1,replica1:p2,replica2:p3/db in the
// environment (scripts/pg-replication.sh start DIR writes it to DIR/env); the router is built
// from that one string by pg::make_cluster_router.
//
// - cpu: a query that keeps the server busy (a scan of 20,000 rows). On one machine the
//   replicas take the work off the primary, but not off the machine, so the ratio shows the
//   router's overhead and the cost of one machine running three servers, not scaling.
// - capacity: each node serves at most 4 reads at once (its pool's maxconnections, as a real
//   server has a capacity) and a read takes 2 ms on the server (pg_sleep). This is what replicas
//   buy on separate machines: the router spreads reads so the cluster serves more at once.
#include <dbpool/pg.hpp>
#include <dbpool/pg/cluster.hpp>
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

dbpool::pg::ClusterOptions cluster_options(int maxconnections) {
    dbpool::pg::ClusterOptions options;
    options.pool.maxconnections = maxconnections;
    options.pool.blocking = true;
    options.pool.acquire_timeout = 10s;
    options.router.health_interval = 500ms;
    options.check.max_replica_lag = 10s;
    return options;
}

}  // namespace

int main(int argc, char** argv) {
    const char* url = std::getenv("DBPOOL_CLUSTER_URL");
    if (url == nullptr) {
        std::cerr << "set DBPOOL_CLUSTER_URL=postgresql://user:pw@primary,replica1,replica2/db\n";
        return 2;
    }
    const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
    const int threads = argc > 2 ? std::atoi(argv[2]) : 8;
    try {
        dbpool::pg::ConnectOptions all;
        all.conninfo = url;
        const auto hosts = dbpool::pg::split_hosts(all);
        if (hosts.size() < 2) {
            std::cerr << "the URL must list the primary and at least one replica\n";
            return 2;
        }
        const std::vector<dbpool::pg::ConnectOptions> primary_only{hosts.front()};
        {
            auto router = dbpool::pg::make_cluster_router(primary_only, cluster_options(4));
            auto conn = router->connection(dbpool::Access::write);
            conn->execute("CREATE TABLE IF NOT EXISTS bench_rows (id int PRIMARY KEY, v int)");
            conn->execute("TRUNCATE bench_rows");
            conn->execute(
                "INSERT INTO bench_rows SELECT g, g * 7919 % 1000 FROM generate_series(1, 20000) "
                "g");
            // Frozen on the primary and so on the replicas (the WAL carries it): a standby
            // cannot set hint bits for rows it has not seen committed durably, and would look
            // up every row's transaction status in each scan instead.
            conn->execute("VACUUM (FREEZE, ANALYZE) bench_rows");
        }
        std::this_thread::sleep_for(1s);  // let the replicas apply it

        dbpool_bench::compare_workloads(
            [&](bool cluster, int maxconnections) {
                return cluster
                           ? dbpool::pg::make_cluster_router(url, cluster_options(maxconnections))
                           : dbpool::pg::make_cluster_router(primary_only,
                                                             cluster_options(maxconnections));
            },
            "SELECT count(*) FROM bench_rows WHERE v % 7 = $1", "SELECT pg_sleep(0.002), $1::int",
            threads, seconds);
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

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

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Reads per second through `router` from `threads` threads for `seconds`.
double measure(dbpool::pg::ClusterRouter& router, const std::string& sql, int threads,
               double seconds) {
    std::atomic<long> reads{0};
    std::atomic<long> errors{0};
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (long i = 0; i < 100000000 && Clock::now() < until; ++i) {
                try {
                    auto conn = router.connection(dbpool::Access::read);
                    conn->query(sql, static_cast<int>((i + t) % 7));
                    ++reads;
                } catch (const dbpool::Error&) {
                    ++errors;
                }
            }
        });
    }
    for (auto& worker : workers)
        worker.join();
    if (errors.load() > 0) std::cerr << "  (" << errors.load() << " reads failed)\n";
    return static_cast<double>(reads.load()) / seconds;
}

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

        struct Workload {
            const char* name;
            std::string sql;
            int maxconnections;
            int threads;
        };
        const Workload workloads[] = {
            {"cpu", "SELECT count(*) FROM bench_rows WHERE v % 7 = $1", threads, threads},
            {"capacity", "SELECT pg_sleep(0.002), $1::int", 4, 3 * 4},
        };
        std::printf("%-9s %8s %14s %14s %7s\n", "workload", "threads", "primary r/s", "cluster r/s",
                    "ratio");
        for (const auto& workload : workloads) {
            double alone = 0;
            double spread = 0;
            {
                auto router = dbpool::pg::make_cluster_router(
                    primary_only, cluster_options(workload.maxconnections));
                alone = measure(*router, workload.sql, workload.threads, seconds);
            }
            {
                auto router =
                    dbpool::pg::make_cluster_router(url, cluster_options(workload.maxconnections));
                spread = measure(*router, workload.sql, workload.threads, seconds);
                for (const auto& node : router->stats()) {
                    std::printf("  %-32s %-8s %10llu reads\n", node.name.c_str(),
                                dbpool::to_string(node.role),
                                static_cast<unsigned long long>(node.reads));
                }
            }
            std::printf("%-9s %8d %14.0f %14.0f %7.2f\n", workload.name, workload.threads, alone,
                        spread, spread / alone);
        }
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

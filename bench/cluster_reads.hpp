#pragma once

// What the MySQL and PostgreSQL reads benchmarks share (bench/cluster_reads.cpp,
// bench/pg_cluster_reads.cpp): reads per second through a Router from N threads, and the two
// workloads measured over the primary alone and over the whole cluster, side by side in one run.

#include <dbpool/error.hpp>
#include <dbpool/router.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace dbpool_bench {

// Reads per second through `router` from `threads` threads for `seconds`; each read passes
// one integer argument.
template <class Router>
double reads_per_second(Router& router, const std::string& sql, int threads, double seconds) {
    using Clock = std::chrono::steady_clock;
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

// The two workloads (see cluster_reads.cpp), each over the primary alone and over the cluster:
// make_router(bool cluster, int maxconnections) returns a router over the primary alone (false)
// or over every node (true), each node's pool holding at most maxconnections.
template <class MakeRouter>
void compare_workloads(const MakeRouter& make_router, const std::string& cpu_sql,
                       const std::string& capacity_sql, int threads, double seconds) {
    struct Workload {
        const char* name;
        std::string sql;
        int maxconnections;
        int threads;
    };
    const Workload workloads[] = {
        {"cpu", cpu_sql, threads, threads},
        {"capacity", capacity_sql, 4, 3 * 4},
    };
    std::printf("%-9s %8s %14s %14s %7s\n", "workload", "threads", "primary r/s", "cluster r/s",
                "ratio");
    for (const auto& workload : workloads) {
        double alone = 0;
        double spread = 0;
        {
            auto router = make_router(false, workload.maxconnections);
            alone = reads_per_second(*router, workload.sql, workload.threads, seconds);
        }
        {
            auto router = make_router(true, workload.maxconnections);
            spread = reads_per_second(*router, workload.sql, workload.threads, seconds);
            for (const auto& node : router->stats()) {
                std::printf("  %-32s %-8s %10llu reads\n", node.name.c_str(),
                            dbpool::to_string(node.role),
                            static_cast<unsigned long long>(node.reads));
            }
        }
        std::printf("%-9s %8d %14.0f %14.0f %7.2f\n", workload.name, workload.threads, alone,
                    spread, spread / alone);
    }
}

}  // namespace dbpool_bench

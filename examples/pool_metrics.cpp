// A pool shared by threads, observed: stats() for logs and health checks, to_prometheus() for a
// /metrics endpoint.
//
//   pool_metrics [mysql://user:password@host:port/database]   (default: $DBPOOL_TEST_URL)
//
// Eight threads share a pool of at most three connections; each runs 40 requests that hold a
// connection for about 2 ms. Meanwhile the main thread samples stats() (the live gauges); at
// the end it prints the counters and the Prometheus text of the same snapshot.
#include <dbpool/mysql.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <thread>
#include <vector>

namespace {

using Pool = dbpool::PooledPool<dbpool::mysql::Connection>;

constexpr int thread_count = 8;
constexpr int requests_per_thread = 40;
constexpr int pool_size = 3;

double milliseconds(std::chrono::nanoseconds duration) {
    return std::chrono::duration<double, std::milli>(duration).count();
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
        options.maxconnections = pool_size;  // fewer connections than threads: some will wait
        options.blocking = true;             // wait for a connection (first come, first served)
        options.acquire_timeout = std::chrono::seconds(10);
        Pool pool(dbpool::mysql::connector(url), options);

        std::atomic<int> failures{0};
        std::atomic<int> running{thread_count};
        std::vector<std::thread> threads;
        for (int t = 0; t < thread_count; ++t) {
            threads.emplace_back([&pool, &failures, &running] {
                for (int i = 0; i < requests_per_thread; ++i) {
                    try {
                        auto connection = pool.connection();  // shared by all threads
                        connection->query("SELECT SLEEP(0.002)");
                    } catch (const dbpool::Error& error) {
                        ++failures;
                        std::cerr << "request failed (" << dbpool::to_string(error.code())
                                  << "): " << error.what() << "\n";
                    }
                }
                --running;
            });
        }

        // The gauges, sampled while the threads run: never more than maxconnections in use.
        std::size_t most_in_use = 0;
        std::size_t most_waiting = 0;
        while (running.load() > 0) {
            const dbpool::PoolStats now = pool.stats();
            if (now.in_use > most_in_use) most_in_use = now.in_use;
            if (now.waiting > most_waiting) most_waiting = now.waiting;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        for (auto& thread : threads)
            thread.join();

        const dbpool::PoolStats stats = pool.stats();
        std::cout << "while running: at most " << most_in_use << " connections in use and "
                  << most_waiting << " threads waiting (sampled every 5 ms)\n"
                  << "acquired " << stats.acquired << " times from " << stats.created
                  << " connections opened; " << stats.timeouts << " timeouts, "
                  << stats.failed_connects << " failed connects\n"
                  << "waits: " << stats.acquire_wait.count << ", mean "
                  << milliseconds(stats.acquire_wait.mean()) << " ms, longest "
                  << milliseconds(stats.acquire_wait.max) << " ms; held: mean "
                  << milliseconds(stats.usage.mean()) << " ms, longest "
                  << milliseconds(stats.usage.max) << " ms\n"
                  << "now: " << stats.total << " open, " << stats.idle << " idle, " << stats.in_use
                  << " in use\n\n";

        // The same snapshot for Prometheus: serve this text at /metrics. The prefix names the
        // metrics (dbpool_connections, ...); labels tell several pools apart.
        std::cout << dbpool::to_prometheus(stats, "dbpool", R"(pool="orders")");

        const auto expected = static_cast<std::uint64_t>(thread_count * requests_per_thread);
        if (failures.load() != 0 || stats.acquired != expected || stats.created > pool_size ||
            most_in_use > pool_size) {
            std::cerr << "unexpected: " << failures.load() << " failed requests\n";
            return 1;
        }
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

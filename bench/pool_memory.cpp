// The pools' own memory: bookkeeping bytes per connection (heap bytes counted by replacing
// operator new, and sizeof of the public wrapper), and resident memory before/after 10 million
// acquire/release cycles (PooledPool) and 30k short-lived threads (PersistentPool), with the
// no-op connection. Prints "key value" lines; with a path argument also writes them as JSON.

#include <dbpool/dbpool.hpp>

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_support.hpp"

namespace {

// Live heap bytes through operator new (usable sizes, so allocator rounding counts too).
std::atomic<std::int64_t> live_heap_bytes{0};

}  // namespace

// GCC 12 inlines this operator delete into callers of the matching operator new below and
// then reports std::free of "new"ed memory: a false positive for a replaced pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t size) {
    void* memory = std::malloc(size == 0 ? 1 : size);
    if (memory == nullptr) throw std::bad_alloc();
    live_heap_bytes.fetch_add(static_cast<std::int64_t>(malloc_usable_size(memory)),
                              std::memory_order_relaxed);
    return memory;
}

void operator delete(void* memory) noexcept {
    if (memory == nullptr) return;
    live_heap_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(memory)),
                              std::memory_order_relaxed);
    std::free(memory);
}

void operator delete(void* memory, std::size_t) noexcept { operator delete(memory); }

namespace {

using dbpool_bench::NoopConnection;
using Steady = dbpool::SteadyConnection<NoopConnection>;
using Clock = std::chrono::steady_clock;

std::vector<std::pair<std::string, double>> results;

void report(const std::string& key, double value) {
    std::printf("%-48s %.1f\n", key.c_str(), value);
    results.emplace_back(key, value);
}

NoopConnection make_noop() { return NoopConnection{}; }

// Heap bytes one more open pooled connection costs, averaged over `count` connections.
double pooled_heap_per_connection(int count) {
    dbpool::PoolOptions options;
    options.maxconnections = count;
    dbpool::PooledPool<NoopConnection> pool(make_noop, options);
    std::vector<dbpool::PooledPool<NoopConnection>::handle_type> held;
    held.reserve(static_cast<std::size_t>(count));
    const std::int64_t before = live_heap_bytes.load();
    for (int i = 0; i < count; ++i)
        held.push_back(pool.connection());
    // The pool's slot vector grows by doubling; its spare capacity is counted as it is.
    return static_cast<double>(live_heap_bytes.load() - before) / count;
}

// Heap bytes one more thread's persistent connection costs: threads parked with a connection
// against the same number parked without one.
double persistent_heap_per_connection(int count) {
    dbpool::PersistentPool<NoopConnection> pool(make_noop);
    const auto parked_threads = [&](bool with_connection) {
        std::mutex mutex;
        std::condition_variable changed;
        int ready = 0;
        bool release = false;
        std::vector<std::thread> threads;
        threads.reserve(static_cast<std::size_t>(count));
        for (int i = 0; i < count; ++i) {
            threads.emplace_back([&] {
                if (with_connection) (void)pool.connection();
                std::unique_lock<std::mutex> lock(mutex);
                ++ready;
                changed.notify_all();
                changed.wait_for(lock, std::chrono::seconds(30), [&] { return release; });
            });
        }
        std::int64_t live = 0;
        {
            std::unique_lock<std::mutex> lock(mutex);
            changed.wait_for(lock, std::chrono::seconds(30), [&] { return ready == count; });
            live = live_heap_bytes.load();
            release = true;
            changed.notify_all();
        }
        for (auto& thread : threads)
            thread.join();
        return live;
    };
    (void)parked_threads(true);  // first use of the thread-local tables, library statics
    const std::int64_t without = parked_threads(false);
    const std::int64_t with = parked_threads(true);
    return static_cast<double>(with - without) / count;
}

double mib(long bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

void pooled_cycles(long cycles, int threads) {
    dbpool::PoolOptions options;
    options.maxconnections = 64;
    options.blocking = true;
    dbpool::PooledPool<NoopConnection> pool(make_noop, options);
    const auto run = [&](long count) {
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&] {
                for (long i = 0; i < count / threads; ++i) {
                    auto handle = pool.connection();
                    (void)handle;
                }
            });
        }
        for (auto& worker : workers)
            worker.join();
    };
    run(100000);  // warm: connections, thread stacks, affinity tables
    const long before = dbpool_bench::resident_bytes();
    const std::int64_t heap_before = live_heap_bytes.load();
    const auto start = Clock::now();
    run(cycles);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const long after = dbpool_bench::resident_bytes();
    report("pooled_cycles", static_cast<double>(cycles));
    report("pooled_cycles_seconds", seconds);
    report("pooled_rss_before_mib", mib(before));
    report("pooled_rss_after_mib", mib(after));
    report("pooled_rss_delta_kib", static_cast<double>(after - before) / 1024.0);
    report("pooled_heap_delta_bytes", static_cast<double>(live_heap_bytes.load() - heap_before));
    report("pooled_open_connections", static_cast<double>(pool.stats().total));
}

void persistent_threads(int total, int batch) {
    dbpool::PersistentPool<NoopConnection> pool(make_noop);
    const auto run = [&](int count) {
        for (int done = 0; done < count; done += batch) {
            std::vector<std::thread> threads;
            for (int i = 0; i < batch && done + i < count; ++i) {
                threads.emplace_back([&] {
                    auto handle = pool.connection();
                    (void)handle;
                });
            }
            for (auto& thread : threads)
                thread.join();
        }
    };
    run(1000);  // warm: thread stacks cached by the C library, allocator arenas
    const long before = dbpool_bench::resident_bytes();
    const std::int64_t heap_before = live_heap_bytes.load();
    const auto start = Clock::now();
    run(total);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const long after = dbpool_bench::resident_bytes();
    report("persistent_threads", total);
    report("persistent_threads_seconds", seconds);
    report("persistent_rss_before_mib", mib(before));
    report("persistent_rss_after_mib", mib(after));
    report("persistent_rss_delta_kib", static_cast<double>(after - before) / 1024.0);
    report("persistent_heap_delta_bytes",
           static_cast<double>(live_heap_bytes.load() - heap_before));
    report("persistent_open_connections_after", static_cast<double>(pool.open_connections()));
}

}  // namespace

int main(int argc, char** argv) {
    // Public types only: the pools' internal slot types are not an API and may change.
    report("rss_start_mib", mib(dbpool_bench::resident_bytes()));
    report("sizeof_steady_connection", sizeof(Steady));
    report("sizeof_steady_options", sizeof(dbpool::SteadyOptions));
    report("pooled_heap_bytes_per_connection", pooled_heap_per_connection(1000));
    report("persistent_heap_bytes_per_connection", persistent_heap_per_connection(200));
    pooled_cycles(10000000, 2);
    persistent_threads(30000, 64);  // a leak of 35 bytes per thread would show (> 1 MiB)

    if (argc > 1) {
        std::FILE* out = std::fopen(argv[1], "w");
        if (out == nullptr) {
            std::perror(argv[1]);
            return 1;
        }
        std::fprintf(out, "{\n");
        for (std::size_t i = 0; i < results.size(); ++i) {
            std::fprintf(out, "  \"%s\": %.3f%s\n", results[i].first.c_str(), results[i].second,
                         i + 1 < results.size() ? "," : "");
        }
        std::fprintf(out, "}\n");
        std::fclose(out);
    }
    return 0;
}

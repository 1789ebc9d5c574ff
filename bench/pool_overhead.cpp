// What a pool costs per acquire+release, with a connection that does nothing: PooledPool and
// PersistentPool against one std::mutex lock+unlock pair and a textbook mutex+condvar+deque pool,
// at 1, 2, 8 and 64 threads, with enough connections for every thread and with fewer (4).
//
// Run through scripts/bench.sh, which reads the JSON output and prints the ratios; by hand:
//   dbpool_pool_overhead --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true

#include <dbpool/dbpool.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bench_support.hpp"

namespace {

using dbpool_bench::NoopConnection;
using Clock = std::chrono::steady_clock;

// "Enough connections": at least as many as the most threads any benchmark uses.
constexpr int enough_connections = 64;
// "Fewer connections than threads": the blocking case.
constexpr int few_connections = 4;

std::unique_ptr<dbpool_bench::TextbookPool<NoopConnection>> textbook_pool;
std::unique_ptr<dbpool::PooledPool<NoopConnection>> pooled_pool;
std::unique_ptr<dbpool::PersistentPool<NoopConnection>> persistent_pool;
std::mutex the_mutex;

// The longest single acquire of any thread in one run. Google Benchmark sums counters over
// threads, so every thread merges its maximum here and waits for the others; thread 0 reports.
struct LongestWait {
    std::atomic<std::int64_t> max_ns{0};
    std::atomic<int> arrived{0};

    void reset() noexcept {
        max_ns.store(0);
        arrived.store(0);
    }

    // Returns the maximum over all threads once every thread has arrived (bounded: 30 s).
    std::int64_t merge_and_wait(std::int64_t mine, int threads) noexcept {
        std::int64_t seen = max_ns.load();
        while (mine > seen && !max_ns.compare_exchange_weak(seen, mine)) {
        }
        arrived.fetch_add(1);
        const auto deadline = Clock::now() + std::chrono::seconds(30);
        while (arrived.load() < threads && Clock::now() < deadline)
            std::this_thread::yield();
        return max_ns.load();
    }
};
LongestWait longest_wait;

// Times each acquire when `measure` is set; reports max_wait_us and mean_wait_us.
template <bool measure, class Acquire>
void acquire_release_loop(benchmark::State& state, Acquire&& acquire) {
    std::int64_t local_max = 0;
    std::int64_t local_total = 0;
    for (auto _ : state) {
        if constexpr (measure) {
            const auto start = Clock::now();
            auto handle = acquire();
            const std::int64_t waited =
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
            local_max = std::max(local_max, waited);
            local_total += waited;
            benchmark::DoNotOptimize(handle);
        } else {
            auto handle = acquire();
            benchmark::DoNotOptimize(handle);
        }
    }
    state.SetItemsProcessed(state.iterations());
    if constexpr (measure) {
        const std::int64_t overall = longest_wait.merge_and_wait(local_max, state.threads());
        if (state.thread_index() == 0) state.counters["max_wait_us"] = overall / 1000.0;
        state.counters["mean_wait_us"] =
            benchmark::Counter(local_total / 1000.0, benchmark::Counter::kAvgIterations);
    }
}

// --- set-up and tear-down (called once per run, before the threads start / after they end) ---

template <int capacity>
void setup_textbook(const benchmark::State&) {
    textbook_pool = std::make_unique<dbpool_bench::TextbookPool<NoopConnection>>(capacity);
    longest_wait.reset();
}
void teardown_textbook(const benchmark::State&) { textbook_pool.reset(); }

// Realistic options: blocking at the limit, default reset (rollback only when in a
// transaction), ping bits as given with the default 500 ms bypass window.
template <int maxconnections, unsigned ping>
void setup_pooled(const benchmark::State&) {
    dbpool::PoolOptions options;
    options.maxconnections = maxconnections;
    options.blocking = true;
    options.ping = ping;
    pooled_pool = std::make_unique<dbpool::PooledPool<NoopConnection>>(
        [] { return NoopConnection{}; }, options);
    longest_wait.reset();
}
void teardown_pooled(const benchmark::State&) { pooled_pool.reset(); }

template <unsigned ping>
void setup_persistent(const benchmark::State&) {
    dbpool::PersistentOptions options;
    options.ping = ping;
    persistent_pool = std::make_unique<dbpool::PersistentPool<NoopConnection>>(
        [] { return NoopConnection{}; }, options);
}
void teardown_persistent(const benchmark::State&) { persistent_pool.reset(); }

// --- benchmarks ---------------------------------------------------------------------------

void mutex_pair(benchmark::State& state) {
    for (auto _ : state) {
        the_mutex.lock();
        the_mutex.unlock();
    }
    state.SetItemsProcessed(state.iterations());
}

// Context for the numbers: the pools read this clock on their fast paths.
void steady_clock_now(benchmark::State& state) {
    for (auto _ : state)
        benchmark::DoNotOptimize(Clock::now());
    state.SetItemsProcessed(state.iterations());
}

template <bool measure>
void textbook(benchmark::State& state) {
    acquire_release_loop<measure>(state, [] { return textbook_pool->acquire(); });
}

template <bool measure>
void pooled(benchmark::State& state) {
    acquire_release_loop<measure>(state, [] { return pooled_pool->connection(); });
}

void persistent(benchmark::State& state) {
    acquire_release_loop<false>(state, [] { return persistent_pool->connection(); });
}

template <class Register>
void for_threads(std::initializer_list<int> counts, Register&& register_one) {
    for (int threads : counts)
        register_one()->Threads(threads)->UseRealTime();
}

void register_all() {
    using benchmark::RegisterBenchmark;
    const auto all = {1, 2, 8, 64};
    const auto crowded = {8, 64};
    for_threads(all, [] { return RegisterBenchmark("mutex_pair", mutex_pair); });
    for_threads({1}, [] { return RegisterBenchmark("steady_clock_now", steady_clock_now); });
    for_threads(all, [] {
        return RegisterBenchmark("textbook/conns:64", textbook<false>)
            ->Setup(setup_textbook<enough_connections>)
            ->Teardown(teardown_textbook);
    });
    for_threads(crowded, [] {
        return RegisterBenchmark("textbook/conns:4", textbook<true>)
            ->Setup(setup_textbook<few_connections>)
            ->Teardown(teardown_textbook);
    });
    for_threads(all, [] {
        return RegisterBenchmark("pooled_ping1/conns:64", pooled<false>)
            ->Setup(setup_pooled<enough_connections, dbpool::Ping::on_request>)
            ->Teardown(teardown_pooled);
    });
    for_threads(all, [] {
        return RegisterBenchmark("pooled_ping0/conns:64", pooled<false>)
            ->Setup(setup_pooled<enough_connections, dbpool::Ping::never>)
            ->Teardown(teardown_pooled);
    });
    for_threads(crowded, [] {
        return RegisterBenchmark("pooled_ping1/conns:4", pooled<true>)
            ->Setup(setup_pooled<few_connections, dbpool::Ping::on_request>)
            ->Teardown(teardown_pooled);
    });
    for_threads(crowded, [] {
        return RegisterBenchmark("pooled_ping0/conns:4", pooled<true>)
            ->Setup(setup_pooled<few_connections, dbpool::Ping::never>)
            ->Teardown(teardown_pooled);
    });
    for_threads(all, [] {
        return RegisterBenchmark("persistent_ping1", persistent)
            ->Setup(setup_persistent<dbpool::Ping::on_request>)
            ->Teardown(teardown_persistent);
    });
    for_threads(all, [] {
        return RegisterBenchmark("persistent_ping0", persistent)
            ->Setup(setup_persistent<dbpool::Ping::never>)
            ->Teardown(teardown_persistent);
    });
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

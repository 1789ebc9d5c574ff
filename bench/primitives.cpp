// The cost of the building blocks a pool's fast path and waiting are made of, on this machine,
// measured side by side: clock reads, an uncontended mutex pair and compare-and-swap, a
// shared_ptr copy+destroy alone and with 2/8/64 threads on one control block, a futex wake
// with nobody waiting (one system call), a condition-variable and a raw-futex wake/wait round
// trip between two threads, the latency from notify_one to the waiter running, sched_yield,
// and spawning+joining a thread. Medians of repetitions (the order rotates each repetition).
//
//   dbpool_primitives [--reps N] [--scale F] [--json FILE]

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cycle_runner.hpp"

namespace {

using dbpool_bench::keep;
using dbpool_bench::run_cycles;
using Clock = std::chrono::steady_clock;

long futex(std::atomic<int>* word, int op, int value) {
    return syscall(SYS_futex, reinterpret_cast<int*>(word), op, value, nullptr, nullptr, 0);
}

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double percentile(std::vector<double> values, double p) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1));
    return values[index];
}

// ns per operation of `op` on `threads` threads for `seconds` (wall time over all threads).
template <class Op>
double ns_per_op(int threads, double seconds, Op&& op) {
    return run_cycles(threads, seconds, false, op).ns_per_cycle();
}

// Two threads hand a token back and forth `rounds` times through a mutex+condvar; returns ns
// per round trip (two wake-ups, two context switches when the waiter has to sleep).
double condvar_round_trip(double seconds) {
    std::mutex mutex;
    std::condition_variable changed;
    int turn = 0;  // 0: ping's turn, 1: pong's turn, 2: stop
    long trips = 0;
    std::thread pong([&] {
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
            changed.wait(lock, [&] { return turn != 0; });
            if (turn == 2) return;
            turn = 0;
            changed.notify_all();
        }
    });
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    {
        std::unique_lock<std::mutex> lock(mutex);
        while (Clock::now() < end) {
            turn = 1;
            changed.notify_all();
            changed.wait(lock, [&] { return turn == 0; });
            ++trips;
        }
        turn = 2;
    }
    changed.notify_all();
    const double elapsed = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    pong.join();
    return trips > 0 ? elapsed / static_cast<double>(trips) : 0;
}

// The same with one futex word and raw FUTEX_WAIT/FUTEX_WAKE (parking-lot style: the waker
// makes one system call, the waiter sleeps on its own word).
double futex_round_trip(double seconds) {
    std::atomic<int> word{0};  // 0: ping's turn, 1: pong's turn, 2: stop
    long trips = 0;
    std::thread pong([&] {
        for (;;) {
            int seen = word.load();
            while (seen == 0) {
                futex(&word, FUTEX_WAIT_PRIVATE, 0);
                seen = word.load();
            }
            if (seen == 2) return;
            word.store(0);
            futex(&word, FUTEX_WAKE_PRIVATE, 1);
        }
    });
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
        word.store(1);
        futex(&word, FUTEX_WAKE_PRIVATE, 1);
        int seen = word.load();
        while (seen == 1) {
            futex(&word, FUTEX_WAIT_PRIVATE, 1);
            seen = word.load();
        }
        ++trips;
    }
    word.store(2);
    futex(&word, FUTEX_WAKE_PRIVATE, 1);
    const double elapsed = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    pong.join();
    return trips > 0 ? elapsed / static_cast<double>(trips) : 0;
}

// From notify_one to the sleeping waiter running again: `samples` times, the waiter is given
// 200 us to fall asleep, the notifier stamps the TSC and notifies, the waiter stamps on wake.
// Returns {median, 90th percentile} in ns.
std::pair<double, double> wake_latency(int samples) {
    std::mutex mutex;
    std::condition_variable changed;
    int generation = 0;
    bool stop = false;
    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> woke{0};
    std::atomic<int> seen{0};
    std::thread waiter([&] {
        std::unique_lock<std::mutex> lock(mutex);
        int mine = 0;
        while (!stop) {
            changed.wait_for(lock, std::chrono::seconds(5), [&] { return generation != mine; });
            if (generation == mine) break;  // bounded: no notify within 5 s
            woke.store(dbpool_bench::ticks());
            mine = generation;
            seen.store(mine);
        }
    });
    std::vector<double> ns;
    for (int i = 1; i <= samples; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        {
            std::lock_guard<std::mutex> lock(mutex);
            generation = i;
            sent.store(dbpool_bench::ticks());
        }
        changed.notify_one();
        const auto deadline = Clock::now() + std::chrono::seconds(5);
        while (seen.load() != i && Clock::now() < deadline)
            std::this_thread::yield();
        if (seen.load() == i) {
            ns.push_back(static_cast<double>(woke.load() - sent.load()) /
                         dbpool_bench::ticks_per_ns());
        }
    }
    {
        std::lock_guard<std::mutex> lock(mutex);
        stop = true;
        ++generation;
    }
    changed.notify_one();
    waiter.join();
    return {median(ns), percentile(ns, 0.9)};
}

double spawn_join(double seconds) {
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    long count = 0;
    while (Clock::now() < end) {
        std::thread thread([] {});
        thread.join();
        ++count;
    }
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
           static_cast<double>(std::max(count, 1L));
}

struct Primitive {
    std::string name;
    std::string what;
    std::function<double(double seconds)> run;  // ns per operation
};

}  // namespace

int main(int argc, char** argv) {
    int reps = 5;
    double scale = 1.0;
    std::string json_path;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        const std::string value = argv[i + 1];
        if (arg == "--reps") {
            reps = std::clamp(std::atoi(value.c_str()), 1, 20);
        } else if (arg == "--scale") {
            scale = std::clamp(std::atof(value.c_str()), 0.01, 10.0);
        } else if (arg == "--json") {
            json_path = value;
        } else {
            std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
            return 2;
        }
    }
    if (argc % 2 == 0) {
        std::fprintf(stderr, "%s needs a value\n", argv[argc - 1]);
        return 2;
    }

    auto shared = std::make_shared<int>(42);
    std::mutex mutex;
    std::atomic<int> word{0};
    std::atomic<long> cell{0};
    const auto shared_copies = [&](int threads) {
        return [&shared, threads](double s) {
            return ns_per_op(threads, s, [&] {
                std::shared_ptr<int> copy = shared;
                keep(copy);
            });
        };
    };
    const std::vector<Primitive> primitives = {
        {"coarse_clock", "clock_gettime(CLOCK_MONOTONIC_COARSE)",
         [](double s) {
             return ns_per_op(1, s, [] {
                 timespec now{};
                 clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
                 keep(now);
             });
         }},
        {"steady_clock", "std::chrono::steady_clock::now()",
         [](double s) { return ns_per_op(1, s, [] { keep(Clock::now()); }); }},
        {"tsc", "rdtsc (the harness's own timestamp)",
         [](double s) { return ns_per_op(1, s, [] { keep(dbpool_bench::ticks()); }); }},
        {"mutex_pair", "uncontended std::mutex lock+unlock",
         [&](double s) {
             return ns_per_op(1, s, [&] {
                 mutex.lock();
                 mutex.unlock();
             });
         }},
        {"cas", "uncontended compare-and-swap (one locked instruction)",
         [&](double s) {
             return ns_per_op(1, s, [&] {
                 long expected = cell.load(std::memory_order_relaxed);
                 cell.compare_exchange_strong(expected, expected + 1);
             });
         }},
        {"shared_ptr_1", "shared_ptr copy+destroy, 1 thread", shared_copies(1)},
        {"shared_ptr_2", "shared_ptr copy+destroy, 2 threads on one control block (wall/op)",
         shared_copies(2)},
        {"shared_ptr_8", "shared_ptr copy+destroy, 8 threads on one control block (wall/op)",
         shared_copies(8)},
        {"shared_ptr_64", "shared_ptr copy+destroy, 64 threads on one control block (wall/op)",
         shared_copies(64)},
        {"futex_wake_nobody", "FUTEX_WAKE with no waiter (one system call)",
         [&](double s) { return ns_per_op(1, s, [&] { futex(&word, FUTEX_WAKE_PRIVATE, 1); }); }},
        {"sched_yield", "sched_yield() (nothing else runnable on this core, usually)",
         [](double s) { return ns_per_op(1, s, [] { sched_yield(); }); }},
        {"condvar_round_trip", "mutex+condvar ping-pong between 2 threads, per round trip",
         [](double s) { return condvar_round_trip(s); }},
        {"futex_round_trip", "raw futex ping-pong between 2 threads, per round trip",
         [](double s) { return futex_round_trip(s); }},
        {"thread_spawn_join", "std::thread spawn + join of an empty thread",
         [](double s) { return spawn_join(s); }},
    };

    std::printf("TSC: %.3f ticks/ns\n", dbpool_bench::ticks_per_ns());
    std::map<std::string, std::vector<double>> results;
    for (int rep = 0; rep < reps; ++rep) {
        for (std::size_t k = 0; k < primitives.size(); ++k) {
            const Primitive& p =
                primitives[(k + static_cast<std::size_t>(rep)) % primitives.size()];
            results[p.name].push_back(p.run(0.2 * scale));
        }
    }
    const auto [wake_median, wake_p90] = wake_latency(static_cast<int>(400 * scale) + 20);

    struct Row {
        std::string name;
        double ns;
        std::string what;
    };
    std::vector<Row> out;
    for (const Primitive& p : primitives)
        out.push_back({p.name, median(results[p.name]), p.what});
    out.push_back({"wake_latency_median", wake_median,
                   "notify_one -> the sleeping waiter runs (median of samples)"});
    out.push_back(
        {"wake_latency_p90", wake_p90, "notify_one -> the sleeping waiter runs (90th percentile)"});
    std::printf("%-20s %12s  %s\n", "primitive", "ns (median)", "what");
    for (const Row& row : out)
        std::printf("%-20s %12.1f  %s\n", row.name.c_str(), row.ns, row.what.c_str());

    if (!json_path.empty()) {
        std::FILE* file = std::fopen(json_path.c_str(), "w");
        if (file == nullptr) {
            std::perror(json_path.c_str());
            return 1;
        }
        std::fprintf(file, "{\n");
        for (std::size_t i = 0; i < out.size(); ++i) {
            std::fprintf(file, "  \"%s\": {\"ns\": %.2f, \"what\": \"%s\"}%s\n",
                         out[i].name.c_str(), out[i].ns, out[i].what.c_str(),
                         i + 1 < out.size() ? "," : "");
        }
        std::fprintf(file, "}\n");
        std::fclose(file);
    }
    return 0;
}

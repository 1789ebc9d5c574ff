#pragma once

// The harness of dbpool's no-op benchmarks: runs one "cycle" (acquire + release, or any other
// operation) on N threads for a fixed wall time and reports what a pool's users feel: cycles per
// second, the longest gap between two consecutive cycles of one thread, the smallest share of
// the cycles any thread got, and the context switches per cycle. Not part of the library.
//
// Why not Google Benchmark: it gives every thread the same iteration count, so a starved thread
// stretches the measurement instead of showing up as starvation, and it cannot report per-thread
// shares. Here every thread runs until one stop flag, so shares are observable.

#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace dbpool_bench {

/// Keeps `value` observable so the compiler cannot drop the work that produced it.
template <class T>
inline void keep(const T& value) noexcept {
    asm volatile("" : : "g"(&value) : "memory");
}

/// A cheap timestamp: the TSC where there is one (about 10 ns; constant_tsc on this machine),
/// else steady_clock. Converted to nanoseconds with ticks_per_ns(), calibrated once.
inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

/// Ticks per nanosecond, measured against steady_clock over 20 ms the first time it is called.
inline double ticks_per_ns() {
    static const double value = [] {
        using Clock = std::chrono::steady_clock;
        const auto start = Clock::now();
        const std::uint64_t first = ticks();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const std::uint64_t last = ticks();
        const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
        return ns > 0 ? static_cast<double>(last - first) / ns : 1.0;
    }();
    return value;
}

/// Voluntary (blocked) and involuntary (preempted) context switches of the whole process.
struct Switches {
    long voluntary = 0;
    long involuntary = 0;

    static Switches now() noexcept {
        rusage usage{};
        getrusage(RUSAGE_SELF, &usage);
        return Switches{usage.ru_nvcsw, usage.ru_nivcsw};
    }
};

/// A start line for many threads: they sleep on one futex word and one system call wakes them
/// all at once, so they become runnable together. (A mutex+condvar start would wake them one
/// after another through the mutex, each waiting for a core held by threads already running:
/// with 256 threads on 2 cores the last started hundreds of milliseconds late, which looked
/// like starvation.)
class StartLine {
public:
    /// Blocks until open() (bounded: 60 s).
    void wait() noexcept {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (word_.load() == 0 && std::chrono::steady_clock::now() < deadline) {
            timespec timeout{1, 0};
            syscall(SYS_futex, reinterpret_cast<int*>(&word_), FUTEX_WAIT_PRIVATE, 0, &timeout,
                    nullptr, 0);
        }
    }

    /// Lets every waiting thread go.
    void open() noexcept {
        word_.store(1);
        syscall(SYS_futex, reinterpret_cast<int*>(&word_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
                nullptr, 0);
    }

private:
    std::atomic<int> word_{0};
};

/// What one run of `threads` threads over `seconds` measured.
struct CellResult {
    int threads = 0;
    double seconds = 0;               ///< Wall time between the start and the stop signal.
    std::uint64_t cycles = 0;         ///< Cycles completed by all threads.
    double min_share = 0;             ///< Fewest cycles of one thread / (cycles / threads).
    double max_gap_ns = 0;            ///< Longest time one thread waited between two cycles.
    double voluntary_switches = 0;    ///< Per cycle.
    double involuntary_switches = 0;  ///< Per cycle.
    std::vector<std::uint64_t> per_thread_cycles;  ///< In thread start order.
    std::vector<double> per_thread_max_gap_ns;     ///< With `timed`.

    double cycles_per_second() const { return seconds > 0 ? cycles / seconds : 0; }
    /// Wall nanoseconds per cycle over all threads (the inverse of throughput).
    double ns_per_cycle() const { return cycles > 0 ? seconds * 1e9 / cycles : 0; }
};

/// Runs `cycle()` on `threads` threads for `seconds` of wall time. With `timed`, each thread
/// also reads the TSC after every cycle to find its longest gap (one read per cycle, about
/// 10 ns, the same for every pool). Bounded: the stop flag is set after `seconds`; a thread
/// finishes the cycle it is in (a pool that never hands a connection back would hang, which no
/// pool under test does).
template <class Cycle>
CellResult run_cycles(int threads, double seconds, bool timed, Cycle&& cycle) {
    struct alignas(64) PerThread {
        std::uint64_t cycles = 0;
        std::uint64_t max_gap = 0;
    };
    std::vector<PerThread> per_thread(static_cast<std::size_t>(threads));
    std::atomic<int> ready{0};
    StartLine start_line;
    std::atomic<bool> stop{false};

    std::vector<std::thread> workers;
    workers.reserve(static_cast<std::size_t>(threads));
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            ready.fetch_add(1);
            start_line.wait();
            std::uint64_t count = 0;
            std::uint64_t max_gap = 0;
            std::uint64_t previous = timed ? ticks() : 0;
            while (!stop.load(std::memory_order_relaxed)) {
                cycle();
                ++count;
                if (timed) {
                    const std::uint64_t now = ticks();
                    max_gap = std::max(max_gap, now - previous);
                    previous = now;
                }
            }
            per_thread[static_cast<std::size_t>(t)] = PerThread{count, max_gap};
        });
    }

    using Clock = std::chrono::steady_clock;
    Clock::time_point start;
    Switches before;
    const auto ready_deadline = Clock::now() + std::chrono::seconds(60);
    while (ready.load() < threads && Clock::now() < ready_deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    // Every thread has announced itself; give the last ones a moment to fall asleep.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    before = Switches::now();
    start = Clock::now();
    start_line.open();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop.store(true);
    const auto end = Clock::now();
    const Switches after = Switches::now();
    for (auto& worker : workers)
        worker.join();

    CellResult result;
    result.threads = threads;
    result.seconds = std::chrono::duration<double>(end - start).count();
    std::uint64_t fewest = UINT64_MAX;
    std::uint64_t longest = 0;
    for (const PerThread& p : per_thread) {
        result.per_thread_cycles.push_back(p.cycles);
        if (timed) result.per_thread_max_gap_ns.push_back(p.max_gap / ticks_per_ns());
        result.cycles += p.cycles;
        fewest = std::min(fewest, p.cycles);
        longest = std::max(longest, p.max_gap);
    }
    if (result.cycles > 0) {
        result.min_share = static_cast<double>(fewest) * threads / result.cycles;
        const double per = 1.0 / static_cast<double>(result.cycles);
        result.voluntary_switches = (after.voluntary - before.voluntary) * per;
        result.involuntary_switches = (after.involuntary - before.involuntary) * per;
    }
    result.max_gap_ns = timed ? static_cast<double>(longest) / ticks_per_ns() : 0;
    return result;
}

}  // namespace dbpool_bench

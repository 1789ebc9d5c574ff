// The fixed-time request loop shared by the real-server benchmarks (server_throughput for
// MariaDB, pg_throughput for PostgreSQL): N worker threads each prepare their request (open a
// dedicated connection, or capture a pool), warm up with one request, start together, and run
// until a stop flag; the result is requests per second of wall time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dbpool_bench {

// A tiny per-thread random id in 1..rows (xorshift; no shared state).
struct Ids {
    std::uint32_t state;
    int rows;
    int next() noexcept {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        return static_cast<int>(state % static_cast<std::uint32_t>(rows)) + 1;
    }
};

using Request = std::function<std::int64_t(int id)>;
// Runs on each worker thread before the clock starts (e.g. opens its dedicated connection).
using MakeRequest = std::function<Request()>;

struct RunResult {
    long requests = 0;
    double seconds = 0;
    long errors = 0;
    std::string first_error;
    double rps() const { return seconds > 0 ? requests / seconds : 0; }
};

struct RunSettings {
    int threads = 1;
    double seconds = 1.0;
    long max_requests = 50000000;           // per thread: a bound, never reached in practice
    int rows = 1000;                        // ids are drawn from 1..rows
    std::function<void()> on_thread_start;  // e.g. the client library's per-thread set-up
};

// Which variant runs k-th of `count` in `round`: the order rotates every other round so no
// variant always runs first or last, and reverses in between so no variant always runs right
// after the same one. (Rotation alone keeps the cyclic order: a variant that leaves the server
// busy, like connecting per request, then slows the same successor in most rounds.)
inline std::size_t run_order(std::size_t k, int round, std::size_t count) {
    const std::size_t rotated = (k + static_cast<std::size_t>(round / 2)) % count;
    return round % 2 == 0 ? rotated : count - 1 - rotated;
}

// Starts the workers, lets each prepare and warm up with one request, then measures completed
// requests for `seconds` of wall time.
inline RunResult run_requests(const RunSettings& settings, const MakeRequest& make) {
    using Clock = std::chrono::steady_clock;
    std::mutex mutex;
    std::condition_variable changed;
    int ready = 0;
    bool go = false;
    std::atomic<bool> stop{false};
    std::atomic<long> total{0};
    std::atomic<long> errors{0};
    std::string first_error;
    std::atomic<std::int64_t> sink{0};

    const auto note_error = [&](const char* what) {
        errors.fetch_add(1);
        std::lock_guard<std::mutex> lock(mutex);
        if (first_error.empty()) first_error = what;
    };

    std::vector<std::thread> workers;
    workers.reserve(static_cast<std::size_t>(settings.threads));
    for (int t = 0; t < settings.threads; ++t) {
        workers.emplace_back([&, t] {
            if (settings.on_thread_start) settings.on_thread_start();
            Ids ids{static_cast<std::uint32_t>(2654435761u * (t + 1)), settings.rows};
            Request request;
            try {
                request = make();
                sink.fetch_add(request(ids.next()));  // warm-up: connect, prepare
            } catch (const std::exception& error) {
                note_error(error.what());
            }
            {
                std::unique_lock<std::mutex> lock(mutex);
                ++ready;
                changed.notify_all();
                changed.wait_for(lock, std::chrono::seconds(120), [&] { return go; });
            }
            if (!request) return;
            long done = 0;
            std::int64_t local = 0;
            while (!stop.load(std::memory_order_relaxed) && done < settings.max_requests) {
                try {
                    local += request(ids.next());
                    ++done;
                } catch (const std::exception& error) {
                    note_error(error.what());
                    if (errors.load() > 100) break;
                }
            }
            total.fetch_add(done);
            sink.fetch_add(local);
        });
    }
    Clock::time_point start;
    {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait_for(lock, std::chrono::seconds(120),
                         [&] { return ready == settings.threads; });
        go = true;
        start = Clock::now();
        changed.notify_all();
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(settings.seconds));
    stop.store(true);
    const auto end = Clock::now();
    for (auto& worker : workers)
        worker.join();
    RunResult result;
    result.requests = total.load();
    result.seconds = std::chrono::duration<double>(end - start).count();
    result.errors = errors.load();
    result.first_error = first_error;
    if (sink.load() == -1) std::puts("");  // keeps the reads observable
    return result;
}

}  // namespace dbpool_bench

#pragma once

// dbpool::explore: a small schedule explorer for the pool core (in the manner of loom, Relacy,
// CHESS and PCT). A scenario runs many times, each time from scratch, on real threads that the
// scheduler runs one at a time in an order it chooses at every synchronisation operation.
// docs/explorer.md explains the method, how to replay a failure, and the limits.

#include "scheduler.hpp"
#include "strategies.hpp"
#include "sync_types.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dbpool::explore {

/// A failed execution: what went wrong, and the schedule that replay() runs again.
struct Failure {
    std::string message;
    std::string schedule;
    std::string found_by;  ///< strategy and execution number
};

/// What a search did: how many executions, whether it covered its whole space, the failure.
struct Result {
    std::size_t executions = 0;
    /// DFS only: every schedule within the preemption bound was run.
    bool exhausted = false;
    /// The search stopped at Options::time_limit.
    bool out_of_time = false;
    std::optional<Failure> failure;

    bool ok() const noexcept { return !failure.has_value(); }
};

/// One line for a test log.
inline std::string describe(const Result& r) {
    std::string text = std::to_string(r.executions) + " executions" +
                       (r.exhausted ? ", exhausted" : "") + (r.out_of_time ? ", out of time" : "");
    if (r.failure) {
        text += "; FAILED (" + r.failure->found_by + "): " + r.failure->message + "; replay(\"" +
                r.failure->schedule + "\", scenario)";
    }
    return text;
}

namespace detail {

// A failed execution's threads are parked for good (or still blocked outside the scheduler):
// it is kept alive until the process exits, never destroyed under them.
inline void abandon(std::unique_ptr<Execution> execution) {
    static auto* const lock = new std::mutex;
    static auto* const graveyard = new std::vector<std::unique_ptr<Execution>>;
    execution->detach_all();
    std::lock_guard<std::mutex> g(*lock);
    graveyard->push_back(std::move(execution));
}

inline Result search(Strategy& strategy, const Options& options,
                     const std::function<void()>& scenario) {
    Result result;
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        if (options.max_executions != 0 && result.executions >= options.max_executions) break;
        if (std::chrono::steady_clock::now() - start > options.time_limit) {
            result.out_of_time = true;
            break;
        }
        strategy.begin();
        auto execution = std::make_unique<Execution>(options, strategy);
        Outcome outcome = execution->run(scenario);
        ++result.executions;
        strategy.end();
        if (!outcome.ok) {
            abandon(std::move(execution));
            result.failure =
                Failure{outcome.message, encode_schedule(options, outcome.choices),
                        strategy.describe() + ", execution " + std::to_string(result.executions)};
            if (options.print_failures) {
                std::fprintf(stderr,
                             "dbpool::explore: FAILED (%s): %s\n  replay: "
                             "dbpool::explore::replay(\"%s\", scenario)\n",
                             result.failure->found_by.c_str(), result.failure->message.c_str(),
                             result.failure->schedule.c_str());
            }
            return result;
        }
        if (!strategy.next()) {
            result.exhausted = strategy.exhausted();
            break;
        }
    }
    return result;
}

}  // namespace detail

/// Depth-first search of every schedule with at most options.preemption_bound preemptions
/// (CHESS's iterative context bounding), up to options.max_executions. Stops at the first
/// failure. Call from an uncontrolled thread (a test body); the scenario runs on thread 0.
inline Result dfs(const Options& options, const std::function<void()>& scenario) {
    detail::DfsStrategy strategy(options.preemption_bound);
    return detail::search(strategy, options, scenario);
}

/// `runs` PCT executions of bug depth `depth` from `seed`; stops at the first failure.
inline Result pct(std::uint64_t seed, std::size_t runs, std::size_t depth,
                  const std::function<void()>& scenario, Options options = {}) {
    detail::PctStrategy strategy(seed, runs, depth, options.pct_steps);
    options.max_executions = 0;
    return detail::search(strategy, options, scenario);
}

/// Runs the schedule a failure printed once more, the same way; after its recorded choices the
/// threads run without preemption. Throws std::invalid_argument for a malformed string.
inline Result replay(const std::string& schedule, const std::function<void()>& scenario,
                     Options options = {}) {
    detail::ReplayStrategy strategy(detail::decode_schedule(schedule, options));
    options.max_executions = 1;
    return detail::search(strategy, options, scenario);
}

}  // namespace dbpool::explore

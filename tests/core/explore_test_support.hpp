#pragma once

// What the explorer's scenario files share: the search options of a bounded exhaustive run, and
// how a result is printed and checked.

#include "explore/explore.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>

namespace explore_test {

// Every schedule with at most `preemptions` preemptions, within 50,000 executions and 100 s.
inline dbpool::explore::Options bounded(int preemptions) {
    dbpool::explore::Options options;
    options.preemption_bound = preemptions;
    options.max_executions = 50000;
    options.time_limit = std::chrono::seconds(100);
    return options;
}

// Prints what the search did, and fails the test case with the replayable schedule if it failed.
inline void report(const char* scenario, const dbpool::explore::Result& result) {
    std::printf("explore: %s: %s\n", scenario, dbpool::explore::describe(result).c_str());
    if (!result.ok()) FAIL(dbpool::explore::describe(result));
    CHECK(result.ok());
}

}  // namespace explore_test

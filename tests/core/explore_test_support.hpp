#pragma once

// What the explorer's scenario files share: the search options of a bounded exhaustive run, how
// a result is printed and checked, and the error code a call ended with.

#include "explore/explore.hpp"

#include <dbpool/error.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <optional>

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

// The code an ErrorCode was thrown with, or nothing when the call succeeded.
template <class Fn>
std::optional<dbpool::ErrorCode> error_of(Fn&& fn) {
    try {
        fn();
        return std::nullopt;
    } catch (const dbpool::Error& error) {
        return error.code();
    }
}

}  // namespace explore_test

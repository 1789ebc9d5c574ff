// Maintenance's decisions on their own (detail/maintenance_rules.hpp): no pool, no threads, no
// clock. The pool tests (maintenance_test.cpp) check that the pool applies them.
#include <dbpool/detail/maintenance_rules.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using dbpool::PoolOptions;
using dbpool::detail::IdleVerdict;
using Rules = dbpool::detail::MaintenanceRules<std::chrono::nanoseconds>;
using namespace std::chrono_literals;

namespace {

std::string name(IdleVerdict verdict) {
    switch (verdict) {
        case IdleVerdict::keep: return "keep";
        case IdleVerdict::expire: return "expire";
        case IdleVerdict::keepalive: return "keepalive";
    }
    return "?";
}

}  // namespace

TEST_CASE("maintenance rules: the verdict for an idle connection", "[maintenance_rules]") {
    PoolOptions options;
    options.mincached = 2;
    options.idle_timeout = 10s;
    options.keepalive_interval = 4s;
    const Rules rules(options);
    struct Row {
        std::chrono::nanoseconds idle_for;
        bool lifetime_over;
        int open_kept;
        IdleVerdict verdict;
    };
    const Row table[] = {
        {1s, false, 5, IdleVerdict::keep},
        {4s, false, 5, IdleVerdict::keepalive},      // stale: ping it
        {10s, false, 5, IdleVerdict::expire},        // surplus above mincached
        {10s, false, 2, IdleVerdict::keepalive},     // at mincached: kept alive, not closed
        {10s, false, 3, IdleVerdict::expire},        // one above mincached: closed
        {1s, true, 1, IdleVerdict::expire},          // lifetime over: closed even below
        {9999ms, false, 5, IdleVerdict::keepalive},  // just below the idle timeout
    };
    for (const Row& row : table) {
        INFO("idle " << row.idle_for.count() << " ns, lifetime over " << row.lifetime_over
                     << ", kept " << row.open_kept);
        CHECK(name(rules.judge_idle(row.idle_for, row.lifetime_over, row.open_kept)) ==
              name(row.verdict));
    }
}

TEST_CASE("maintenance rules: what is off stays off", "[maintenance_rules]") {
    const Rules defaults{PoolOptions{}};
    CHECK_FALSE(defaults.needed());  // no thread at all for an idle pool with defaults
    CHECK(name(defaults.judge_idle(std::chrono::hours(24 * 365), false, 100)) == "keep");
    CHECK_FALSE(defaults.detects_leaks());
    CHECK_FALSE(defaults.leaked(std::chrono::hours(24)));

    PoolOptions forever;
    forever.idle_timeout = std::chrono::milliseconds::max();
    forever.keepalive_interval = std::chrono::milliseconds::max();
    forever.leak_threshold = std::chrono::milliseconds::max();
    const Rules saturated(forever);  // "forever" saturates: no overflow, never reached
    CHECK(saturated.needed());
    CHECK(name(saturated.judge_idle(std::chrono::hours(24 * 365), false, 100)) == "keep");
    CHECK_FALSE(saturated.leaked(std::chrono::hours(24 * 365)));
}

TEST_CASE("maintenance rules: leaks and the pass interval", "[maintenance_rules]") {
    PoolOptions options;
    options.leak_threshold = 2s;
    const Rules rules(options);
    CHECK(rules.needed());
    CHECK_FALSE(rules.leaked(1999ms));
    CHECK(rules.leaked(2s));
    CHECK(rules.interval() == 1s);  // half the threshold would be 1 s; capped at 1 s anyway

    options.leak_threshold = 100ms;
    options.keepalive_interval = 60ms;
    CHECK(Rules(options).interval() == 30ms);  // the shortest need: keepalive / 2
    options.keepalive_interval = 4ms;
    CHECK(Rules(options).interval() == 10ms);  // never below 10 ms
    options.maintenance_interval = 250ms;
    CHECK(Rules(options).interval() == 250ms);  // an explicit interval wins
}

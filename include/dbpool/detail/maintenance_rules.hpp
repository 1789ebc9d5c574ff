#pragma once

#include <dbpool/detail/saturating.hpp>
#include <dbpool/options.hpp>

#include <algorithm>
#include <chrono>

namespace dbpool::detail {

// What maintenance does with a connection, decided from its times alone: no threads, no I/O,
// no clock. PooledCore applies the verdicts (through the slot state machine); the rules are
// tested on their own (tests/core/maintenance_rules_test.cpp).
enum class IdleVerdict {
    keep,       // leave it idle
    expire,     // close it: past its lifetime, or idle too long above mincached
    keepalive,  // ping it: idle for keepalive_interval
};

template <class Duration>
class MaintenanceRules {
public:
    explicit MaintenanceRules(const PoolOptions& options)
        : idle_timeout_(saturating_cast<Duration>(options.idle_timeout)),
          keepalive_(saturating_cast<Duration>(options.keepalive_interval)),
          leak_threshold_(saturating_cast<Duration>(options.leak_threshold)),
          mincached_(options.mincached),
          has_lifetime_(options.max_lifetime.count() > 0),
          interval_(interval_of(options)) {}

    // Whether any option needs maintenance at all (else the pool has no maintenance thread).
    bool needed() const noexcept {
        return mincached_ > 0 || idle_timeout_.count() > 0 || has_lifetime_ ||
               keepalive_.count() > 0 || leak_threshold_.count() > 0;
    }

    // How often maintenance runs: the option, or the shortest period the timeouts need
    // (10 ms to 1 s).
    std::chrono::milliseconds interval() const noexcept { return interval_; }

    // An idle connection, idle for `idle_for`; `open_kept` connections would stay open if it
    // went (surplus ones are closed down to mincached, not below).
    IdleVerdict judge_idle(Duration idle_for, bool lifetime_over, int open_kept) const noexcept {
        if (lifetime_over) return IdleVerdict::expire;
        if (idle_timeout_.count() > 0 && idle_for >= idle_timeout_ && open_kept > mincached_) {
            return IdleVerdict::expire;
        }
        if (keepalive_.count() > 0 && idle_for >= keepalive_) return IdleVerdict::keepalive;
        return IdleVerdict::keep;
    }

    // Whether a connection borrowed for `held` is reported as a possible leak.
    bool leaked(Duration held) const noexcept {
        return leak_threshold_.count() > 0 && held >= leak_threshold_;
    }

    bool detects_leaks() const noexcept { return leak_threshold_.count() > 0; }

private:
    static std::chrono::milliseconds interval_of(const PoolOptions& options) noexcept {
        using std::chrono::milliseconds;
        if (options.maintenance_interval.count() > 0) return options.maintenance_interval;
        milliseconds interval = std::chrono::seconds(1);
        for (milliseconds period : {options.idle_timeout, options.max_lifetime / 4,
                                    options.keepalive_interval / 2, options.leak_threshold / 2}) {
            if (period.count() > 0) interval = std::min(interval, period);
        }
        return std::max(interval, milliseconds(10));
    }

    Duration idle_timeout_;
    Duration keepalive_;
    Duration leak_threshold_;
    int mincached_;
    bool has_lifetime_;
    std::chrono::milliseconds interval_;
};

}  // namespace dbpool::detail

#pragma once

#include <dbpool/error.hpp>
#include <dbpool/options.hpp>

#include <chrono>
#include <string>

namespace dbpool::detail {

[[noreturn]] inline void invalid_option(const std::string& field, const std::string& why) {
    throw Error(ErrorCode::invalid_options, "dbpool: invalid option '" + field + "': " + why);
}

inline void require_non_negative(const char* field, int value) {
    if (value < 0) invalid_option(field, "must be >= 0, got " + std::to_string(value));
}

inline void require_non_negative(const char* field, std::chrono::milliseconds value) {
    if (value.count() < 0) {
        invalid_option(field, "must be >= 0 ms, got " + std::to_string(value.count()) + " ms");
    }
}

inline void require_ping_bits(unsigned ping) {
    if (ping > Ping::always) {
        invalid_option("ping",
                       "must combine the bits 1, 2 and 4 (0..7), got " + std::to_string(ping));
    }
}

inline void validate(const SteadyOptions& options) {
    require_non_negative("maxusage", options.maxusage);
    require_ping_bits(options.ping);
    require_non_negative("ping_bypass", options.ping_bypass);
}

// DBUtils silently raises maxconnections to fit maxcached and deadlocks when mincached cannot
// fit; a limit the user wrote down is a promise, so contradictions are errors here.
inline void validate(const PoolOptions& options, bool shareable) {
    require_non_negative("mincached", options.mincached);
    require_non_negative("maxcached", options.maxcached);
    require_non_negative("maxshared", options.maxshared);
    require_non_negative("maxconnections", options.maxconnections);
    require_non_negative("maxusage", options.maxusage);
    require_ping_bits(options.ping);
    require_non_negative("acquire_timeout", options.acquire_timeout);
    if (options.handoff_after.count() < 0) invalid_option("handoff_after", "must be >= 0");
    require_non_negative("ping_bypass", options.ping_bypass);
    require_non_negative("idle_timeout", options.idle_timeout);
    require_non_negative("max_lifetime", options.max_lifetime);
    require_non_negative("keepalive_interval", options.keepalive_interval);
    require_non_negative("leak_threshold", options.leak_threshold);
    require_non_negative("connect_backoff_min", options.connect_backoff_min);
    require_non_negative("connect_backoff_max", options.connect_backoff_max);
    require_non_negative("maintenance_interval", options.maintenance_interval);

    if (options.maxcached > 0 && options.maxcached < options.mincached) {
        invalid_option("maxcached", "is " + std::to_string(options.maxcached) +
                                        ", below mincached (" + std::to_string(options.mincached) +
                                        "); raise maxcached or set it to 0 (no limit)");
    }
    const int limit = options.maxconnections;
    if (limit > 0) {
        if (options.mincached > limit) {
            invalid_option("mincached", std::to_string(options.mincached) +
                                            " can never be satisfied with maxconnections " +
                                            std::to_string(limit));
        }
        if (options.maxcached > limit) {
            invalid_option("maxcached", std::to_string(options.maxcached) +
                                            " exceeds maxconnections " + std::to_string(limit));
        }
        if (shareable && options.maxshared > limit) {
            invalid_option("maxshared", std::to_string(options.maxshared) +
                                            " exceeds maxconnections " + std::to_string(limit));
        }
    }
    if (options.connect_backoff_max < options.connect_backoff_min) {
        invalid_option("connect_backoff_max", "must be >= connect_backoff_min");
    }
}

}  // namespace dbpool::detail

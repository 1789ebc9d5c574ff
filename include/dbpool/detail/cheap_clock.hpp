#pragma once

#include <chrono>
#include <type_traits>

#if defined(__linux__)
#include <ctime>
#endif

namespace dbpool::detail {

// The ping-bypass window is hundreds of milliseconds, while a precise steady_clock read costs
// several times an uncontended mutex. On Linux, CLOCK_MONOTONIC_COARSE shares steady_clock's
// base at a few milliseconds' resolution for a fraction of the cost. Other clocks (tests' manual
// clocks) are read as they are.
template <class Clock>
typename Clock::time_point cheap_now() noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
        timespec now{};
        if (clock_gettime(CLOCK_MONOTONIC_COARSE, &now) == 0) {
            return typename Clock::time_point(std::chrono::duration_cast<typename Clock::duration>(
                std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec)));
        }
    }
#endif
    return Clock::now();
}

}  // namespace dbpool::detail

#pragma once

#include <chrono>
#include <ratio>

namespace dbpool::detail {

// Options use milliseconds::max() (or any huge value) to mean "forever". Converting that to a
// clock's nanoseconds, or adding it to a time point, overflows: these saturate instead.

// `duration` in `To` units, or To::max() when it does not fit.
template <class To, class Rep, class Period>
constexpr To saturating_cast(std::chrono::duration<Rep, Period> duration) noexcept {
    using Given = std::chrono::duration<Rep, Period>;
    if constexpr (std::ratio_less_equal_v<typename To::period, Period>) {
        // To is the finer unit: compare in the given one, where To's limits fit.
        if (duration >= std::chrono::duration_cast<Given>(To::max())) return To::max();
        if (duration <= std::chrono::duration_cast<Given>(To::min())) return To::min();
    }
    return std::chrono::duration_cast<To>(duration);
}

// `start + duration`, or the latest representable time when that would overflow.
template <class TimePoint, class Rep, class Period>
constexpr TimePoint saturating_add(TimePoint start,
                                   std::chrono::duration<Rep, Period> duration) noexcept {
    using Duration = typename TimePoint::duration;
    const auto step = saturating_cast<Duration>(duration);
    if (step > TimePoint::max() - start) return TimePoint::max();
    return start + step;
}

}  // namespace dbpool::detail

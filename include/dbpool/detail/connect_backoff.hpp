#pragma once

#include <dbpool/detail/saturating.hpp>
#include <dbpool/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

namespace dbpool::detail {

// The pool's memory of failed connects: bounded exponential back-off between attempts, and the
// last attempt's error, kept whole (code, native number, SQLSTATE) for the callers who are
// refused while it lasts. Guarded by the pool's mutex.
//
// An attempt remembers wave() when it starts and hands it back with its failure: only the
// first outcome recorded since it started moves the back-off, so connects that were in flight
// together (a burst before the first failure was known) double the delay once, not once each.
template <class Clock>
class ConnectBackoff {
    using TimePoint = typename Clock::time_point;

public:
    ConnectBackoff(std::chrono::milliseconds min, std::chrono::milliseconds max)
        : min_(min), max_(max), delay_(min) {}

    // Whether connects failed lately: then only one attempt at a time probes the database.
    bool failing() const noexcept { return failing_; }

    // Whether no attempt may start now.
    bool active(TimePoint now) const noexcept { return failing_ && now < next_attempt_; }

    TimePoint next_attempt() const noexcept { return next_attempt_; }

    // Outcomes recorded so far; an attempt passes the value it saw at its start to failed().
    std::uint64_t wave() const noexcept { return wave_; }

    void failed(const Error& error, TimePoint now, std::uint64_t started_in) {
        last_native_ = error.native_code();
        last_sqlstate_ = error.sqlstate();
        last_message_ = error.what();
        failed_at_ = now;
        if (started_in != wave_) return;  // its wave's failure is counted already
        ++wave_;
        failing_ = true;
        next_attempt_ = saturating_add(now, delay_);
        delay_ = delay_ >= max_ / 2 ? max_ : std::min(delay_ * 2, max_);
    }

    void succeeded() noexcept {
        ++wave_;
        failing_ = false;
        delay_ = min_;
    }

    // The error for a caller refused while the back-off lasts: the last attempt's code,
    // native number and SQLSTATE, and a message saying why and until when; `context` adds
    // why waiting would not help.
    Error refusal(TimePoint now, const std::string& context) const {
        return Error(ErrorCode::connect_failed,
                     "dbpool: no connection: connects are backing off: " + describe(now) + context,
                     last_native_, last_sqlstate_);
    }

    // "the last connect attempt failed 12 ms ago (...); the next attempt is in at most 88 ms"
    std::string describe(TimePoint now) const {
        if (!failing_) return "off (connects succeed)";
        std::string text = "the last connect attempt failed " + millis(now - failed_at_) +
                           " ago (" + last_message_ + ")";
        if (now < next_attempt_) {
            text += "; the next attempt is in at most " + millis(next_attempt_ - now);
        } else {
            text += "; the next attempt may start now";
        }
        return text;
    }

private:
    template <class Duration>
    static std::string millis(Duration d) {
        return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) +
               " ms";
    }

    std::chrono::milliseconds min_;
    std::chrono::milliseconds max_;
    std::chrono::milliseconds delay_;
    bool failing_ = false;
    std::uint64_t wave_ = 0;
    TimePoint failed_at_{};
    TimePoint next_attempt_{};
    int last_native_ = 0;
    std::string last_sqlstate_;
    std::string last_message_;
};

}  // namespace dbpool::detail

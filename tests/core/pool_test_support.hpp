#pragma once

// Helpers shared by the pool tests.

#include "fake_connection.hpp"
#include "instantiations.hpp"

#include <dbpool/error.hpp>
#include <dbpool/options.hpp>
#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fake {

/// Holds another thread at a point (inside a statement, holding a connection) until the test
/// releases it: that thread calls arrive_and_wait(), the test wait_arrived() and release().
class Gate {
public:
    void arrive_and_wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        arrived_ = true;
        changed_.notify_all();
        changed_.wait(lock, [&] { return released_; });
    }

    void wait_arrived() {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return arrived_; });
    }

    void release() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            released_ = true;
        }
        changed_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool arrived_ = false;
    bool released_ = false;
};

/// A matcher for dbpool::Error with a given code.
inline auto has_code(dbpool::ErrorCode code) {
    return Catch::Predicate<dbpool::Error>(
        [code](const dbpool::Error& e) { return e.code() == code; },
        std::string("error code ") + dbpool::to_string(code));
}

/// Pool options for deterministic tests: no background thread, DBUtils' exact ping counts.
inline dbpool::PoolOptions test_options() {
    dbpool::PoolOptions options;
    options.background_maintenance = false;
    options.ping_bypass = std::chrono::milliseconds(0);
    options.ping = dbpool::Ping::never;
    return options;
}

/// Polls `condition` for up to `limit`; true when it held.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return condition();
}

/// Collects pool events from any thread.
class EventLog {
public:
    std::function<void(const dbpool::PoolEvent&)> hook() {
        return [this](const dbpool::PoolEvent& event) {
            std::lock_guard<std::mutex> lock(mutex_);
            events_.push_back(event);
        };
    }
    int count(dbpool::EventKind kind) const {
        std::lock_guard<std::mutex> lock(mutex_);
        int n = 0;
        for (const auto& event : events_)
            n += event.kind == kind ? 1 : 0;
        return n;
    }
    std::vector<dbpool::PoolEvent> events() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return events_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<dbpool::PoolEvent> events_;
};

}  // namespace fake

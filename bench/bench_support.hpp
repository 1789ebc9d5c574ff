#pragma once

// Shared by dbpool's benchmarks: the no-op connection and the textbook pool they are compared
// with. Not part of the library.

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

namespace dbpool_bench {

/// A connection that does nothing: pool costs are all that is left to measure.
struct NoopConnection {
    /// Always alive.
    bool ping() noexcept { return true; }
};

/// The pool most people write first: one mutex, one condition variable, a deque of idle
/// connections, connections opened lazily up to `capacity`. The baseline of the ratios.
template <class Connection>
class TextbookPool {
public:
    /// Returns its connection to the pool when destroyed.
    class Handle {
    public:
        Handle(TextbookPool* pool, std::unique_ptr<Connection> connection) noexcept
            : pool_(pool), connection_(std::move(connection)) {}
        Handle(Handle&& other) noexcept = default;
        Handle& operator=(Handle&&) = delete;
        Handle(const Handle&) = delete;
        Handle& operator=(const Handle&) = delete;
        ~Handle() {
            if (connection_) pool_->release(std::move(connection_));
        }

        /// The borrowed connection.
        Connection& operator*() const noexcept { return *connection_; }
        /// The borrowed connection.
        Connection* operator->() const noexcept { return connection_.get(); }

    private:
        TextbookPool* pool_;
        std::unique_ptr<Connection> connection_;
    };

    /// A pool of at most `capacity` connections, each made by `make` (default: value-initialised).
    explicit TextbookPool(
        std::size_t capacity, std::function<std::unique_ptr<Connection>()> make =
                                  [] { return std::make_unique<Connection>(); })
        : capacity_(capacity), make_(std::move(make)) {}

    /// Waits until a connection is idle or may be opened.
    Handle acquire() {
        std::unique_lock<std::mutex> lock(mutex_);
        available_.wait(lock, [this] { return !idle_.empty() || opened_ < capacity_; });
        if (idle_.empty()) {
            ++opened_;
            lock.unlock();
            return Handle(this, make_());
        }
        std::unique_ptr<Connection> connection = std::move(idle_.front());
        idle_.pop_front();
        return Handle(this, std::move(connection));
    }

private:
    void release(std::unique_ptr<Connection> connection) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            idle_.push_back(std::move(connection));
        }
        available_.notify_one();
    }

    std::mutex mutex_;
    std::condition_variable available_;
    std::deque<std::unique_ptr<Connection>> idle_;
    std::size_t opened_ = 0;
    const std::size_t capacity_;
    const std::function<std::unique_ptr<Connection>()> make_;
};

/// Resident set size of this process in bytes (from /proc/self/statm), or 0 if unknown.
inline long resident_bytes() {
    std::FILE* file = std::fopen("/proc/self/statm", "r");
    if (file == nullptr) return 0;
    long total_pages = 0;
    long resident_pages = 0;
    const int read = std::fscanf(file, "%ld %ld", &total_pages, &resident_pages);
    std::fclose(file);
    return read == 2 ? resident_pages * sysconf(_SC_PAGESIZE) : 0;
}

}  // namespace dbpool_bench

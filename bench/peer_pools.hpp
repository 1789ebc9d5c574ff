#pragma once

// The peers dbpool is compared with, behind one small interface (`acquire()` returns a handle
// that gives the connection back when destroyed, `*handle` is the payload connection). Built
// only when the peer is installed (bench/CMakeLists.txt defines DBPOOL_BENCH_WITH_SOCI and
// DBPOOL_BENCH_WITH_MYSQLPP). Not part of the library.
//
// The payload is the benchmark's own connection (the no-op one, or dbpool::mysql::Connection
// against the server), so every pool does exactly the same work per request and the rows
// compare pooling, not client libraries.
//
// What the peers do per cycle (read in their upstream sources, soci's
// src/core/connection-pool.cpp and MySQL++'s lib/cpool.cpp; Debian ships soci 4.0.3 and
// MySQL++ 3.2.5, whose headers match what was read):
// - soci `connection_pool`: fixed size, sessions made up front; lease() = pthread mutex + a
//   linear scan from entry 0 for a free entry + pthread_cond_wait while none; give_back() =
//   mutex + flag + pthread_cond_signal after unlocking. No ping, no clock, no FIFO.
// - MySQL++ `ConnectionPool`: grab() = mutex, remove_old_connections() (time(0) and a scan of
//   the whole list), then std::max_element over the list for the most recently used free
//   connection, else create() a new one under the mutex; release() = mutex + a linear search
//   + time(0). No ping (safe_grab() pings; not used), and **no limit**: it opens a connection
//   whenever none is free. Its own example bounds grab() with a counter and sleep(1); here a
//   mutex+condvar gate bounds it, so a cycle takes two mutexes.

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#if DBPOOL_BENCH_WITH_SOCI
#include <soci/connection-pool.h>
#endif

#if DBPOOL_BENCH_WITH_MYSQLPP
#include <mysql++/connection.h>
#include <mysql++/cpool.h>
#endif

namespace dbpool_bench {

#if DBPOOL_BENCH_WITH_SOCI

/// soci's connection_pool handing out indices into the benchmark's own connections.
template <class Payload>
class SociPool {
public:
    /// Gives the leased index back when destroyed.
    class Handle {
    public:
        Handle(SociPool* pool, std::size_t position) noexcept : pool_(pool), position_(position) {}
        Handle(Handle&& other) noexcept : pool_(other.pool_), position_(other.position_) {
            other.pool_ = nullptr;
        }
        Handle& operator=(Handle&&) = delete;
        Handle(const Handle&) = delete;
        Handle& operator=(const Handle&) = delete;
        ~Handle() {
            if (pool_ != nullptr) pool_->pool_.give_back(position_);
        }

        /// The leased connection.
        Payload& operator*() const noexcept { return *pool_->payloads_[position_]; }

    private:
        SociPool* pool_;
        std::size_t position_;
    };

    /// `size` connections, all made now by `make` (soci's pool is fixed-size).
    SociPool(std::size_t size, const std::function<std::unique_ptr<Payload>()>& make)
        : pool_(size) {
        payloads_.reserve(size);
        for (std::size_t i = 0; i < size; ++i)
            payloads_.push_back(make());
    }

    /// Blocks until an entry is free (soci's lease(): no timeout).
    Handle acquire() { return Handle(this, pool_.lease()); }

private:
    soci::connection_pool pool_;
    std::vector<std::unique_ptr<Payload>> payloads_;
};

#endif  // DBPOOL_BENCH_WITH_SOCI

#if DBPOOL_BENCH_WITH_MYSQLPP

/// MySQL++'s ConnectionPool, subclassed as its documentation asks (create, destroy,
/// max_idle_time), with a gate that bounds the connections in use (MySQL++ has no limit).
template <class Payload>
class MysqlppPool : public mysqlpp::ConnectionPool {
    // An unconnected mysqlpp::Connection (mysql_init only, no network) carrying the payload.
    struct Tagged : mysqlpp::Connection {
        explicit Tagged(std::unique_ptr<Payload> p)
            : mysqlpp::Connection(false), payload(std::move(p)) {}
        std::unique_ptr<Payload> payload;
    };

public:
    /// Releases the connection and opens the gate when destroyed.
    class Handle {
    public:
        Handle(MysqlppPool* pool, Tagged* connection) noexcept
            : pool_(pool), connection_(connection) {}
        Handle(Handle&& other) noexcept : pool_(other.pool_), connection_(other.connection_) {
            other.pool_ = nullptr;
        }
        Handle& operator=(Handle&&) = delete;
        Handle(const Handle&) = delete;
        Handle& operator=(const Handle&) = delete;
        ~Handle() {
            if (pool_ != nullptr) pool_->give_back(connection_);
        }

        /// The grabbed connection.
        Payload& operator*() const noexcept { return *connection_->payload; }

    private:
        MysqlppPool* pool_;
        Tagged* connection_;
    };

    /// At most `capacity` connections in use; `make` runs in create(), under MySQL++'s mutex.
    MysqlppPool(std::size_t capacity, std::function<std::unique_ptr<Payload>()> make)
        : capacity_(capacity), make_(std::move(make)) {}
    MysqlppPool(const MysqlppPool&) = delete;
    MysqlppPool& operator=(const MysqlppPool&) = delete;
    ~MysqlppPool() override { clear(); }

    /// Waits at the gate, then grab()s the most recently used free connection.
    Handle acquire() {
        {
            std::unique_lock<std::mutex> lock(gate_mutex_);
            gate_.wait(lock, [this] { return in_use_ < capacity_; });
            ++in_use_;
        }
        return Handle(this, static_cast<Tagged*>(grab()));
    }

    /// Whether MySQL++ was built with real mutexes (otherwise its pool is not thread-safe).
    static bool thread_safe() { return mysqlpp::Connection::thread_aware(); }

protected:
    mysqlpp::Connection* create() override { return new Tagged(make_()); }
    void destroy(mysqlpp::Connection* connection) override {
        delete static_cast<Tagged*>(connection);
    }
    unsigned int max_idle_time() override { return 3600; }

private:
    void give_back(Tagged* connection) {
        release(connection);
        {
            std::lock_guard<std::mutex> lock(gate_mutex_);
            --in_use_;
        }
        gate_.notify_one();
    }

    const std::size_t capacity_;
    std::function<std::unique_ptr<Payload>()> make_;
    std::mutex gate_mutex_;
    std::condition_variable gate_;
    std::size_t in_use_ = 0;
};

#endif  // DBPOOL_BENCH_WITH_MYSQLPP

}  // namespace dbpool_bench

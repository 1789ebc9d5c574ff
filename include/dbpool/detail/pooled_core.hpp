#pragma once

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/affinity.hpp>
#include <dbpool/detail/creator.hpp>
#include <dbpool/detail/fork_generation.hpp>
#include <dbpool/detail/pool_slot.hpp>
#include <dbpool/detail/validate_options.hpp>
#include <dbpool/error.hpp>
#include <dbpool/options.hpp>
#include <dbpool/pool_events.hpp>
#include <dbpool/pool_stats.hpp>
#include <dbpool/steady_connection.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace dbpool::detail {

// The shared state of a PooledPool. It outlives the PooledPool object while handles are still
// out: the last returned connection deletes it.
template <class Connection, class Clock>
class PooledCore {
    using Traits = ConnectionTraits<Connection>;
    using Steady = SteadyConnection<Connection, Clock>;
    using Slot = PoolSlot<Steady>;
    using TimePoint = typename Clock::time_point;
    using WaitClock = std::chrono::steady_clock;

    struct Waiter {
        std::condition_variable wake;
        Slot* handed = nullptr;
        WaitClock::time_point since;
    };

public:
    template <class Creator>
    PooledCore(Creator&& creator, PoolOptions options)
        : creator_(make_creator<Connection>(std::forward<Creator>(creator))),
          options_(std::move(options)),
          steady_options_(options_.steady_options()),
          pool_id_(next_pool_id()) {
        validate(options_, Traits::thread_safe_sharing);
        if (!Traits::thread_safe_sharing) options_.maxshared = 0;  // as DBUtils: no effect
        // Returns may skip the lock only when maxcached can never be exceeded by them.
        fast_release_ = options_.maxcached == 0 || (options_.maxconnections > 0 &&
                                                    options_.maxcached >= options_.maxconnections);
        fork_generation_ = fork_generation();
        backoff_ = options_.connect_backoff_min;
    }

    PooledCore(const PooledCore&) = delete;
    PooledCore& operator=(const PooledCore&) = delete;
    PooledCore(PooledCore&&) = delete;
    PooledCore& operator=(PooledCore&&) = delete;
    ~PooledCore() = default;  // deleted through release_owner() or the last returned slot

    // Opens mincached connections and starts maintenance; throws connect_failed.
    void start() {
        for (int i = 0; i < options_.mincached; ++i) {
            Slot* slot = nullptr;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                slot = reserve_locked();
            }
            if (slot == nullptr) break;
            try {
                open_slot(*slot);
            } catch (...) {
                close();
                throw;
            }
            put_idle(*slot);
        }
        if (options_.background_maintenance) start_maintenance_thread();
    }

    const PoolOptions& options() const noexcept { return options_; }

    const std::shared_ptr<const Creator<Connection>>& creator() const noexcept { return creator_; }

    Slot& acquire(AcquireSite site) {
        check_fork();
        for (;;) {
            Slot* slot = claim_fast();
            if (slot == nullptr) slot = acquire_slow();
            if (closed_.load(std::memory_order_seq_cst)) {
                retire(*slot);
                throw closed_error();
            }
            if (hand_out(*slot, site)) return *slot;
        }
    }

    // Shared hand-out (only for thread-safe-sharing types with maxshared > 0).
    Slot& acquire_shared(AcquireSite site) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (closed_.load()) throw closed_error();
            if (static_cast<int>(shared_.size()) >= options_.maxshared) {
                Slot* least = nullptr;
                for (Slot* candidate : shared_) {
                    // A connection busy in another thread's statement is skipped rather than
                    // waited for: no network I/O, not even someone else's, under the pool lock.
                    if (candidate->steady->in_transaction_if_free().value_or(true)) continue;
                    if (least == nullptr || candidate->share_count < least->share_count) {
                        least = candidate;
                    }
                }
                if (least != nullptr) {
                    ++least->share_count;
                    ++shared_handouts_;
                    return *least;
                }
            }
        }
        Slot& slot = acquire(site);
        std::lock_guard<std::mutex> lock(mutex_);
        slot.share_count = 1;
        // When every shared connection is inside a transaction (or another thread filled the
        // shared set meanwhile), this one is used alone: sharing it would exceed maxshared.
        if (static_cast<int>(shared_.size()) < options_.maxshared) shared_.push_back(&slot);
        return slot;
    }

    void release_shared(Slot& slot) noexcept {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (--slot.share_count > 0) return;
            shared_.erase(std::remove(shared_.begin(), shared_.end(), &slot), shared_.end());
        }
        give_back(slot, false);
    }

    // Returns a borrowed slot; `discard` closes its connection. Never throws.
    void give_back(Slot& slot, bool discard) noexcept {
        const TimePoint now = time_now();
        account_usage(slot, now);
        if (!discard) discard = !prepare_for_idle(slot, now);
        count_reconnects(slot);  // after the reset, which may itself have reconnected
        if (discard) {
            retire(slot);
            return;
        }
        slot.publish(slot.idle_since, now);
        if (fast_release_ && waiters_.load(std::memory_order_seq_cst) == 0) {
            // Announce the slot, then look for anyone who needs it (Dekker-style: a waiter
            // registers before scanning, so one of the two always sees the other). While the
            // slot is `returning` nobody else may take it, so close() cannot free the pool
            // under our feet, and the final store needs no compare-and-swap.
            slot.state.store(slot_returning, std::memory_order_seq_cst);
            const bool attention = waiters_.load(std::memory_order_seq_cst) != 0 ||
                                   closed_.load(std::memory_order_seq_cst);
            if (!attention) {
                affinity_entry(pool_id_) = AffinityEntry{pool_id_, &slot};
                slot.state.store(slot_idle, std::memory_order_release);
                return;  // from here on the pool may be gone
            }
            slot.state.store(slot_in_use, std::memory_order_relaxed);  // before taking the lock
        }
        std::unique_lock<std::mutex> lock(mutex_);
        release_locked(slot, lock);
    }

    void close() noexcept {
        try {
            check_fork();  // a child must not close the parent's connections
        } catch (...) {
            // Only the maintenance thread's restart can throw; closing goes on without it.
        }
        if (closed_.exchange(true, std::memory_order_seq_cst)) return;
        std::vector<Slot*> idle;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            for (Waiter* waiter : waiting_)
                waiter->wake.notify_one();
            maintenance_wake_.notify_all();
            idle = claim_all_idle_locked(lock);
        }
        if (maintenance_.joinable() && maintenance_.get_id() != std::this_thread::get_id()) {
            maintenance_.join();
        }
        for (Slot* slot : idle)
            retire(*slot);
        emit(EventKind::pool_closed, "pool closed");
    }

    // Called by the PooledPool destructor after close(): frees now, or lets the last returned
    // connection free the core.
    void release_owner() noexcept {
        bool last = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            orphaned_ = true;
            last = open_ == 0;
        }
        if (last) delete this;
    }

    PoolStats stats() const {
        PoolStats stats;
        std::lock_guard<std::mutex> lock(mutex_);
        stats.total = static_cast<std::size_t>(open_);
        stats.waiting = waiting_.size();
        stats.maxconnections = static_cast<std::size_t>(options_.maxconnections);
        for (const auto& slot : slots_) {
            const int state = slot->state.load(std::memory_order_acquire);
            if (state == slot_idle || state == slot_returning) ++stats.idle;
            if (state == slot_in_use) ++stats.in_use;
            stats.acquired += slot->acquisitions.load(std::memory_order_relaxed);
            stats.usage.total +=
                std::chrono::nanoseconds(slot->usage_total_ns.load(std::memory_order_relaxed));
            stats.usage.max = std::max(
                stats.usage.max,
                std::chrono::nanoseconds(slot->usage_max_ns.load(std::memory_order_relaxed)));
        }
        stats.acquired += shared_handouts_;
        stats.usage.count = stats.acquired;
        stats.created = created_;
        stats.closed = closed_count_;
        stats.reconnects = reconnects_.load(std::memory_order_relaxed);
        stats.timeouts = timeouts_;
        stats.exhausted = exhausted_;
        stats.failed_connects = failed_connects_;
        stats.leaks = leaks_;
        stats.acquire_wait = acquire_wait_;
        stats.acquire_wait.count = stats.acquired;
        return stats;
    }

    // One maintenance pass: retire expired and surplus idle connections, keep idle ones alive,
    // report leaks, and open connections up to mincached. No lock is held during network I/O.
    void run_maintenance() {
        check_fork();
        const TimePoint now = Clock::now();
        std::vector<Slot*> retiring;
        std::vector<Slot*> pinging;
        std::vector<LeakReport> leaks;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            if (closed_.load()) return;
            int keep = open_;
            for (const auto& owned : slots_) {
                Slot& slot = *owned;
                const int state = slot.state.load(std::memory_order_acquire);
                if (state == slot_in_use) {
                    collect_leak(slot, now, leaks);
                    continue;
                }
                if (state != slot_idle) continue;
                const auto idle_for = since(slot.idle_since, now);
                const bool expired = lifetime_over(slot, now);
                const bool surplus = options_.idle_timeout.count() > 0 &&
                                     idle_for >= options_.idle_timeout && keep > options_.mincached;
                const bool stale = options_.keepalive_interval.count() > 0 &&
                                   idle_for >= options_.keepalive_interval;
                if (!(expired || surplus || stale)) continue;
                if (!slot.try_transition(slot_idle, slot_reserved)) continue;
                if (expired || surplus) {
                    --keep;
                    retiring.push_back(&slot);
                } else {
                    pinging.push_back(&slot);
                }
            }
        }
        for (Slot* slot : retiring)
            retire(*slot);
        for (Slot* slot : pinging) {
            if (slot->steady->ping()) {
                put_idle(*slot);
            } else {
                emit(EventKind::keepalive_failed, "an idle connection failed its keepalive ping");
                retire(*slot);
            }
        }
        for (const LeakReport& report : leaks)
            report_leak(report);
        fill_to_mincached();
    }

private:
    // --- acquiring -------------------------------------------------------------------------

    Slot* claim_fast() noexcept {
        if (waiters_.load(std::memory_order_seq_cst) != 0) return nullptr;  // keep FIFO order
        AffinityEntry& entry = affinity_entry(pool_id_);
        if (entry.pool_id != pool_id_) return nullptr;
        Slot* slot = static_cast<Slot*>(entry.slot);
        return slot->try_claim() ? slot : nullptr;
    }

    Slot* acquire_slow() {
        const auto started = WaitClock::now();
        std::unique_lock<std::mutex> lock(mutex_);
        if (closed_.load()) throw closed_error();
        // A running thread may take a free connection before the waiters only while the oldest
        // of them has waited less than handoff_after: throughput without starvation.
        if (waiting_.empty() || !options_.blocking || !front_due_locked(started)) {
            if (Slot* slot = claim_idle_locked()) return slot;
            if (Slot* slot = reserve_or_fail_locked()) return slot;
        }
        if (!options_.blocking) {
            ++exhausted_;
            lock.unlock();
            emit(EventKind::exhausted, "too many connections");
            throw Error(ErrorCode::pool_exhausted,
                        "dbpool: too many connections: all " +
                            std::to_string(options_.maxconnections) +
                            " are in use (maxconnections); set blocking = true to wait, or raise "
                            "maxconnections");
        }
        Waiter waiter;
        waiter.since = started;
        waiting_.push_back(&waiter);
        waiters_.fetch_add(1, std::memory_order_seq_cst);
        const bool bounded = options_.acquire_timeout.count() > 0;
        const auto deadline = started + options_.acquire_timeout;
        for (;;) {
            if (waiter.handed != nullptr) {
                record_wait(WaitClock::now() - started);
                return waiter.handed;  // the releaser already removed us from the queue
            }
            if (closed_.load()) {
                leave_queue_locked(waiter);
                throw closed_error();
            }
            if (waiting_.front() == &waiter) {
                Slot* slot = claim_idle_locked();
                if (slot == nullptr) {
                    try {
                        slot = reserve_or_fail_locked();
                    } catch (...) {
                        leave_queue_locked(waiter);
                        throw;
                    }
                }
                if (slot != nullptr) {
                    leave_queue_locked(waiter);
                    record_wait(WaitClock::now() - started);
                    return slot;
                }
            }
            if (bounded && WaitClock::now() >= deadline) {
                leave_queue_locked(waiter);
                ++timeouts_;
                const std::string message =
                    "dbpool: timed out after " + std::to_string(options_.acquire_timeout.count()) +
                    " ms waiting for a connection: " + std::to_string(in_use_locked()) +
                    " in use (maxconnections " + std::to_string(options_.maxconnections) + "), " +
                    std::to_string(waiting_.size()) +
                    " other threads waiting; return connections sooner or raise maxconnections";
                lock.unlock();
                emit(EventKind::acquire_timeout, message);
                throw Error(ErrorCode::timeout, message);
            }
            // The front waiter also wakes when it becomes due, in case no release comes then.
            const auto due_at = std::max(waiter.since + options_.handoff_after,
                                         last_handoff_ + options_.handoff_after / 10);
            auto until = waiting_.front() == &waiter && WaitClock::now() < due_at
                             ? due_at
                             : WaitClock::time_point::max();
            if (bounded) until = std::min(until, deadline);
            if (until == WaitClock::time_point::max()) {
                waiter.wake.wait(lock);
            } else {
                waiter.wake.wait_until(lock, until);
            }
        }
    }

    // Finishes a hand-out outside the lock: opens a reserved slot, retires an expired one, and
    // pings (bit 1). False means the slot was retired and the caller should try again.
    bool hand_out(Slot& slot, AcquireSite site) {
        const TimePoint now = time_now();
        if (!slot.steady) {
            open_slot(slot);
        } else if (lifetime_over(slot, now)) {
            retire(slot);
            return false;
        } else {
            try {
                slot.steady->check_on_request(now);
            } catch (...) {
                retire(slot);
                throw;
            }
        }
        slot.site = site;
        slot.owner = std::this_thread::get_id();
        slot.site_file.store(site.file, std::memory_order_relaxed);
        slot.site_line.store(site.line, std::memory_order_relaxed);
        slot.publish(slot.acquired_at, now);
        Slot::add_relaxed(slot.acquisitions, 1);
        return true;
    }

    void open_slot(Slot& slot) {
        try {
            slot.steady = std::make_unique<Steady>(creator_, steady_options_);
        } catch (const std::exception& error) {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                ++failed_connects_;
                note_connect_failure_locked(error.what());
                free_slot_locked(slot);
            }
            emit(EventKind::connect_failed, error.what());
            finish_release();
            throw;
        }
        slot.connects_seen = slot.steady->connects();
        slot.lifetime.store(jittered_lifetime_ticks(), std::memory_order_relaxed);
        slot.publish(slot.opened_at, slot.steady->opened_at());
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++created_;
            connect_failing_ = false;
            backoff_ = options_.connect_backoff_min;
        }
        emit(EventKind::connected, "opened a connection");
    }

    Slot* claim_idle_locked() noexcept {
        for (const auto& slot : slots_) {
            // A returning slot is a few instructions from idle (or from being handed to us by
            // its returner, which leaves `returning` before it takes the lock we hold).
            while (slot->state.load(std::memory_order_acquire) == slot_returning) {
                std::this_thread::yield();
            }
            if (slot->try_claim()) return slot.get();
        }
        return nullptr;
    }

    // Takes capacity for a new connection, or returns null at the limit. Throws connect_failed
    // at once while the database is known to be down (fail fast instead of piling up waits).
    Slot* reserve_or_fail_locked() {
        if (at_limit_locked()) return nullptr;
        if (connect_failing_ && Clock::now() < next_connect_at_) {
            throw Error(ErrorCode::connect_failed,
                        "dbpool: the database is unreachable (last error: " + last_connect_error_ +
                            "); the next connect attempt is in at most " +
                            std::to_string(backoff_.count()) + " ms");
        }
        return reserve_locked();
    }

    Slot* reserve_locked() {
        if (at_limit_locked()) return nullptr;
        Slot* free_slot = nullptr;
        for (const auto& slot : slots_) {
            if (slot->try_transition(slot_empty, slot_in_use)) {
                free_slot = slot.get();
                break;
            }
        }
        if (free_slot == nullptr) {
            slots_.push_back(std::make_unique<Slot>());
            free_slot = slots_.back().get();
            free_slot->state.store(slot_in_use, std::memory_order_relaxed);
        }
        ++open_;
        return free_slot;
    }

    bool at_limit_locked() const noexcept {
        return options_.maxconnections > 0 && open_ >= options_.maxconnections;
    }

    int in_use_locked() const noexcept {
        int count = 0;
        for (const auto& slot : slots_) {
            if (slot->state.load(std::memory_order_relaxed) == slot_in_use) ++count;
        }
        return count;
    }

    void leave_queue_locked(Waiter& waiter) noexcept {
        const bool was_front = !waiting_.empty() && waiting_.front() == &waiter;
        waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), &waiter), waiting_.end());
        waiters_.fetch_sub(1, std::memory_order_seq_cst);
        if (was_front) wake_front_locked();
    }

    void wake_front_locked() noexcept {
        if (!waiting_.empty()) waiting_.front()->wake.notify_one();
    }

    void record_wait(WaitClock::duration waited) noexcept {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(waited);
        acquire_wait_.total += ns;
        acquire_wait_.max = std::max(acquire_wait_.max, ns);
    }

    // --- returning -------------------------------------------------------------------------

    void account_usage(Slot& slot, TimePoint now) noexcept {
        const auto held = since(slot.acquired_at, now);
        const auto held_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(held).count();
        slot.usage_total_ns.store(slot.usage_total_ns.load(std::memory_order_relaxed) + held_ns,
                                  std::memory_order_relaxed);
        if (held_ns > slot.usage_max_ns.load(std::memory_order_relaxed)) {
            slot.usage_max_ns.store(held_ns, std::memory_order_relaxed);
        }
        if (slot.leak_reported.load(std::memory_order_relaxed)) {
            slot.leak_reported.store(false, std::memory_order_relaxed);
            LeakReport report;
            report.held = std::chrono::duration_cast<std::chrono::milliseconds>(held);
            report.acquired_at = slot.site;
            report.returned = true;
            report_leak(report);
        }
    }

    // Reconnects since the slot was opened or last returned: those of the borrower, of the
    // hand-out ping and of the reset on return.
    void count_reconnects(Slot& slot) noexcept {
        if (!slot.steady) return;
        const std::uint64_t connects = slot.steady->connects();
        if (connects != slot.connects_seen) {
            reconnects_.fetch_add(connects - slot.connects_seen, std::memory_order_relaxed);
        }
        slot.connects_seen = connects;
    }

    // Resets the connection per policy; false when it must be closed instead.
    bool prepare_for_idle(Slot& slot, TimePoint now) noexcept {
        Steady* steady = slot.steady.get();
        if (steady == nullptr || !steady->is_open()) return false;
        slot.publish(slot.opened_at, steady->opened_at());  // it may have reconnected meanwhile
        if (lifetime_over(slot, now)) return false;
        try {
            switch (options_.reset) {
                case Reset::none: break;
                case Reset::rollback:
                    if (steady->in_transaction()) steady->rollback();
                    break;
                case Reset::always: steady->rollback(); break;
                case Reset::full: steady->reset_session(); break;
            }
        } catch (...) {
            return false;  // a connection that cannot be reset must not reach the next borrower
        }
        return steady->is_open() && !steady->in_transaction();
    }

    void release_locked(Slot& slot, std::unique_lock<std::mutex>& lock) noexcept {
        if (closed_.load()) {
            lock.unlock();
            retire(slot);
            return;
        }
        if (!waiting_.empty() && front_due_locked(WaitClock::now())) {
            Waiter* waiter = waiting_.front();
            waiting_.pop_front();
            waiters_.fetch_sub(1, std::memory_order_seq_cst);
            waiter->handed = &slot;  // stays in_use: ownership passes straight to the waiter
            last_handoff_ = WaitClock::now();
            waiter->wake.notify_one();
            return;
        }
        if (options_.maxcached > 0 && idle_locked() >= options_.maxcached) {
            lock.unlock();
            retire(slot);
            return;
        }
        slot.state.store(slot_idle, std::memory_order_release);
        wake_front_locked();  // the oldest waiter competes for it with running threads
    }

    // Whether the oldest waiter has waited long enough to be handed the next returned
    // connection directly (always, with handoff_after = 0: strict first come, first served).
    //
    // Under sustained overload every waiter is older than handoff_after, and handing over every
    // release would cost a context switch per operation (Go's mutex "starvation mode" trap). So
    // direct hand-offs are also spaced by a tenth of handoff_after: waiters still go strictly in
    // arrival order, each waits about handoff_after + its place in the queue x that spacing, and
    // running threads keep the throughput up in between.
    bool front_due_locked(WaitClock::time_point now) const noexcept {
        if (waiting_.empty()) return false;
        const auto window = options_.handoff_after;
        return now - waiting_.front()->since >= window && now - last_handoff_ >= window / 10;
    }

    int idle_locked() const noexcept {
        int count = 0;
        for (const auto& slot : slots_) {
            const int state = slot->state.load(std::memory_order_relaxed);
            if (state == slot_idle || state == slot_returning) ++count;
        }
        return count;
    }

    // Closes an owned slot's connection (outside the lock) and frees its capacity.
    void retire(Slot& slot) noexcept {
        const bool had_connection = slot.steady != nullptr;
        slot.steady.reset();  // closes; may do network I/O, so no lock is held
        if (had_connection) emit(EventKind::closed, "closed a connection");
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (had_connection) ++closed_count_;
            free_slot_locked(slot);
        }
        finish_release();
    }

    void free_slot_locked(Slot& slot) noexcept {
        slot.steady.reset();
        slot.share_count = 0;
        slot.leak_reported.store(false, std::memory_order_relaxed);
        slot.state.store(slot_empty, std::memory_order_release);
        --open_;
        wake_front_locked();  // capacity freed: the first waiter may open a connection now
        maintenance_wake_.notify_all();
    }

    // The pool object may be gone; the last connection to leave frees the shared state.
    void finish_release() noexcept {
        bool last = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            last = orphaned_ && open_ == 0;
        }
        if (last) delete this;
    }

    std::vector<Slot*> claim_all_idle_locked(std::unique_lock<std::mutex>& lock) {
        std::vector<Slot*> claimed;
        for (;;) {
            bool returning = false;
            for (const auto& slot : slots_) {
                if (slot->try_transition(slot_idle, slot_reserved)) claimed.push_back(slot.get());
                if (slot->state.load(std::memory_order_acquire) == slot_returning) returning = true;
            }
            if (!returning) return claimed;
            // A borrower is a few instructions from finishing its return; let it finish.
            lock.unlock();
            std::this_thread::yield();
            lock.lock();
        }
    }

    // --- maintenance -----------------------------------------------------------------------

    // The hot path must not pay for a clock read (~30 ns, several times an uncontended mutex),
    // so the maintenance thread publishes a coarse time every tick; without that thread (tests
    // with a manual clock) the exact clock is read instead.
    TimePoint time_now() const noexcept {
        if (!ticking_) return Clock::now();
        return TimePoint(typename Clock::duration(coarse_now_.load(std::memory_order_relaxed)));
    }

    void publish_time() noexcept {
        coarse_now_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    }

    std::chrono::milliseconds tick() const noexcept {
        using std::chrono::milliseconds;
        return std::clamp(options_.ping_bypass / 20, milliseconds(1), milliseconds(25));
    }

    std::chrono::milliseconds maintenance_interval() const noexcept {
        using std::chrono::milliseconds;
        if (options_.maintenance_interval.count() > 0) return options_.maintenance_interval;
        milliseconds interval = std::chrono::seconds(1);
        for (milliseconds period : {options_.idle_timeout, options_.max_lifetime / 4,
                                    options_.keepalive_interval / 2, options_.leak_threshold / 2}) {
            if (period.count() > 0) interval = std::min(interval, period);
        }
        return std::max(interval, milliseconds(10));
    }

    void start_maintenance_thread() {
        publish_time();
        ticking_ = true;
        maintenance_ = std::thread([this] { maintenance_loop(); });
    }

    void maintenance_loop() noexcept {
        const auto period = maintenance_interval();
        auto next_pass = WaitClock::now() + period;
        std::unique_lock<std::mutex> lock(mutex_);
        while (!closed_.load()) {
            const bool woken =
                maintenance_wake_.wait_for(lock, tick()) == std::cv_status::no_timeout;
            publish_time();
            if (closed_.load()) break;
            // A freed slot wakes us so that mincached is refilled promptly.
            const bool refill = woken && open_ < options_.mincached;
            if (!refill && WaitClock::now() < next_pass) continue;
            next_pass = WaitClock::now() + period;
            lock.unlock();
            try {
                run_maintenance();
            } catch (...) {
                // Maintenance retries on its next pass; failures were reported as events.
            }
            lock.lock();
        }
    }

    void fill_to_mincached() {
        for (;;) {
            Slot* slot = nullptr;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (closed_.load() || open_ >= options_.mincached) return;
                if (connect_failing_ && Clock::now() < next_connect_at_) return;
                slot = reserve_locked();
            }
            if (slot == nullptr) return;
            try {
                open_slot(*slot);
            } catch (...) {
                return;  // backed off; the next pass tries again
            }
            put_idle(*slot);
        }
    }

    // Makes a slot owned by maintenance or start-up available (or hands it to a waiter).
    void put_idle(Slot& slot) noexcept {
        slot.publish(slot.idle_since, time_now());
        slot.publish(slot.opened_at, slot.steady->opened_at());
        std::unique_lock<std::mutex> lock(mutex_);
        release_locked(slot, lock);
    }

    void note_connect_failure_locked(const char* what) {
        last_connect_error_ = what;
        connect_failing_ = true;
        next_connect_at_ = Clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, options_.connect_backoff_max);
    }

    static typename Clock::duration since(const std::atomic<std::int64_t>& ticks,
                                          TimePoint now) noexcept {
        return now - TimePoint(typename Clock::duration(ticks.load(std::memory_order_relaxed)));
    }

    static bool lifetime_over(const Slot& slot, TimePoint now) noexcept {
        const std::int64_t lifetime = slot.lifetime.load(std::memory_order_relaxed);
        return lifetime > 0 && since(slot.opened_at, now).count() >= lifetime;
    }

    std::int64_t jittered_lifetime_ticks() {
        using Ticks = typename Clock::duration;
        if (options_.max_lifetime.count() <= 0) return 0;
        const auto lifetime = std::chrono::duration_cast<Ticks>(options_.max_lifetime).count();
        // Up to 2.5% earlier, so connections opened together do not all expire together.
        const std::int64_t spread = lifetime / 40;
        if (spread == 0) return lifetime;
        std::lock_guard<std::mutex> lock(mutex_);
        std::uniform_int_distribution<std::int64_t> jitter(0, spread);
        return lifetime - jitter(random_);
    }

    void collect_leak(Slot& slot, TimePoint now, std::vector<LeakReport>& leaks) {
        if (options_.leak_threshold.count() <= 0) return;
        if (slot.leak_reported.load(std::memory_order_relaxed)) return;
        const auto held = since(slot.acquired_at, now);
        if (held < options_.leak_threshold) return;
        slot.leak_reported.store(true, std::memory_order_relaxed);
        ++leaks_;
        LeakReport report;
        report.held = std::chrono::duration_cast<std::chrono::milliseconds>(held);
        report.acquired_at = AcquireSite{slot.site_file.load(std::memory_order_relaxed),
                                         slot.site_line.load(std::memory_order_relaxed)};
        leaks.push_back(report);
    }

    void report_leak(const LeakReport& report) noexcept {
        std::string where = report.acquired_at.file != nullptr
                                ? std::string(report.acquired_at.file) + ":" +
                                      std::to_string(report.acquired_at.line)
                                : std::string("an unknown place");
        const std::string detail = "connection acquired at " + where + " held for " +
                                   std::to_string(report.held.count()) + " ms" +
                                   (report.returned ? " has been returned" : "");
        emit(report.returned ? EventKind::leak_returned : EventKind::leak_suspected, detail);
        if (!options_.on_leak) return;
        try {
            options_.on_leak(report);
        } catch (...) {
            // A throwing callback must not break the pool.
        }
    }

    void emit(EventKind kind, const std::string& detail) const noexcept {
        if (!options_.on_event) return;
        try {
            options_.on_event(PoolEvent{kind, detail});
        } catch (...) {
            // A throwing callback must not break the pool.
        }
    }

    // In a child after fork(): forget every inherited connection without sending a byte.
    // Only the forking thread exists in the child: its own borrowed connections stay borrowed
    // (they reopen on next use), every other slot and waiter belonged to a thread that is gone.
    void check_fork() {
        if (fork_generation() == fork_generation_) return;
        std::lock_guard<std::mutex> lock(mutex_);
        if (fork_generation() == fork_generation_) return;
        const auto me = std::this_thread::get_id();
        open_ = 0;
        for (const auto& slot : slots_) {
            if (slot->steady) slot->steady->abandon();
            if (slot->state.load(std::memory_order_relaxed) == slot_in_use && slot->owner == me) {
                ++open_;
                continue;
            }
            slot->steady.reset();
            slot->share_count = 0;
            slot->state.store(slot_empty, std::memory_order_relaxed);
        }
        shared_.clear();
        waiting_.clear();
        waiters_.store(0, std::memory_order_relaxed);
        if (maintenance_.joinable())
            maintenance_.detach();  // that thread exists in the parent only
        fork_generation_ = fork_generation();
        if (options_.background_maintenance && !closed_.load()) start_maintenance_thread();
    }

    static Error closed_error() {
        return Error(ErrorCode::pool_closed, "dbpool: the pool is closed");
    }

    std::shared_ptr<const Creator<Connection>> creator_;
    PoolOptions options_;
    SteadyOptions steady_options_;
    const std::uint64_t pool_id_;
    bool fast_release_ = true;
    bool ticking_ = false;  // set before the maintenance thread starts, then read-only
    unsigned fork_generation_ = 0;

    alignas(64) std::atomic<int> waiters_{0};
    std::atomic<bool> closed_{false};
    std::atomic<std::int64_t> coarse_now_{0};  // Clock ticks, published by maintenance

    alignas(64) mutable std::mutex mutex_;
    ForkLockRegistration fork_lock_{mutex_};
    std::vector<std::unique_ptr<Slot>> slots_;  // never shrinks: slots are reused, not freed
    std::deque<Waiter*> waiting_;               // FIFO: first come, first served
    WaitClock::time_point last_handoff_{};
    std::vector<Slot*> shared_;
    int open_ = 0;  // connections open or being opened: the one count maxconnections bounds
    bool orphaned_ = false;
    std::condition_variable maintenance_wake_;
    std::thread maintenance_;
    std::mt19937_64 random_{std::random_device{}()};

    bool connect_failing_ = false;
    TimePoint next_connect_at_{};
    std::chrono::milliseconds backoff_{0};
    std::string last_connect_error_;

    std::uint64_t created_ = 0;
    std::uint64_t closed_count_ = 0;
    std::uint64_t timeouts_ = 0;
    std::uint64_t exhausted_ = 0;
    std::uint64_t failed_connects_ = 0;
    std::uint64_t leaks_ = 0;
    std::uint64_t shared_handouts_ = 0;
    std::atomic<std::uint64_t> reconnects_{0};
    DurationSummary acquire_wait_;
};

}  // namespace dbpool::detail

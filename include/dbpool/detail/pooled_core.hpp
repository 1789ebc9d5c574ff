#pragma once

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/affinity.hpp>
#include <dbpool/detail/callback_gate.hpp>
#include <dbpool/detail/cheap_clock.hpp>
#include <dbpool/detail/connect_backoff.hpp>
#include <dbpool/detail/connection_source.hpp>
#include <dbpool/detail/creator.hpp>
#include <dbpool/detail/fork_generation.hpp>
#include <dbpool/detail/maintenance_rules.hpp>
#include <dbpool/detail/pool_diagnostics.hpp>
#include <dbpool/detail/pool_invariants.hpp>
#include <dbpool/detail/pool_lock.hpp>
#include <dbpool/detail/pool_slot.hpp>
#include <dbpool/detail/pool_waiters.hpp>
#include <dbpool/detail/pool_workers.hpp>
#include <dbpool/detail/saturating.hpp>
#include <dbpool/detail/slot_state.hpp>
#include <dbpool/detail/slot_table.hpp>
#include <dbpool/detail/sync.hpp>
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
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace dbpool::detail {

// The shared state of a PooledPool.
//
// Ownership: the PooledPool holds it through a shared_ptr, and so does every slot that has a
// connection (from reserve to the end of its close), every running pool worker, the
// maintenance thread, and every thread waiting in connection(). Nobody frees it explicitly:
// it goes when the last of them lets go, so a pool destroyed while handles are out, while a
// handle is being returned, or while a thread waits, stays valid for exactly as long as it is
// used. A borrowed connection reaches its slot's hold, never the PooledPool object.
//
// Every change of a slot goes through the state machine in slot_state.hpp.
template <class Connection, class Clock>
class PooledCore final
    : public ConnectionSource<Connection>
    , public std::enable_shared_from_this<PooledCore<Connection, Clock>> {
public:
    using Traits = ConnectionTraits<Connection>;
    using Steady = SteadyConnection<Connection, Clock>;
    using Slot = PoolSlot<Steady, PooledCore>;

private:
    using Sync = sync_of_t<Clock>;
    using Mutex = typename Sync::mutex;
    using Lock = PoolLock<PooledCore, Mutex>;
    using CondVar = typename Sync::condition_variable;
    using WaitClock = typename Sync::wait_clock;
    using WaitPoint = typename WaitClock::time_point;
    using Workers = PoolWorkers<Sync>;
    using Waiter = PoolWaiter<Slot>;
    using Ticket = PingTicket<Slot>;
    using TimePoint = typename Clock::time_point;
    using Ticks = typename Clock::duration;
    using S = SlotState;
    using E = SlotEvent;

public:
    template <class CreatorFn>
    PooledCore(CreatorFn&& creator, PoolOptions options)
        : connect_bound_(connect_bound_of(creator)),
          creator_(make_creator<Connection>(std::forward<CreatorFn>(creator))),
          options_(std::move(options)),
          pool_id_(next_pool_id()),
          waiting_(options_.handoff_after),
          workers_(worker_limit(options_)),
          backoff_(options_.connect_backoff_min, options_.connect_backoff_max) {
        detail::validate(options_, Traits::thread_safe_sharing);
        if (!Traits::thread_safe_sharing) options_.maxshared = 0;  // as DBUtils: no effect
        // Never more than maxshared: adding one after acquiring it cannot fail.
        shared_.reserve(static_cast<std::size_t>(options_.maxshared));
        steady_options_ = options_.steady_options();
        // Returns may skip the lock only when maxcached can never be exceeded by them.
        fast_release_ = options_.maxcached == 0 || (options_.maxconnections > 0 &&
                                                    options_.maxcached >= options_.maxconnections);
        ping_bypass_ = saturating_cast<Ticks>(options_.ping_bypass);
    }

    PooledCore(const PooledCore&) = delete;
    PooledCore& operator=(const PooledCore&) = delete;
    ~PooledCore() override = default;

    // Opens mincached connections on this thread (throws connect_failed), then starts
    // maintenance if any option needs it.
    void start() {
        prepare_thread();
        for (int i = 0; i < options_.mincached; ++i) {
            Slot* slot = nullptr;
            {
                Lock lock(*this);
                if (at_limit_locked()) break;
                slot = &reserve_locked();
            }
            connect_slot(*slot, false);
        }
        Lock lock(*this);
        start_scheduler_locked();
    }

    const PoolOptions& options() const noexcept { return options_; }

    const std::shared_ptr<const Creator<Connection>>& creator() const noexcept { return creator_; }

    // --- acquiring ---------------------------------------------------------------------------

    // A connection for the calling thread, pinged per bit 1 when stale. Throws pool_closed,
    // pool_exhausted, timeout or connect_failed.
    Slot& acquire(AcquireSite site) {
        check_fork();
        prepare_thread();
        Slot* slot = claim_fast();
        if (slot != nullptr) {
            const TimePoint now = cheap_now<Clock>();
            if (ready(*slot, now) && !closed_.load(std::memory_order_seq_cst)) {
                hand_out(*slot, site, now);
                return *slot;
            }
        }
        const auto deadline = deadline_from(WaitClock::now());
        if (slot == nullptr) {
            if (Slot* own = try_connect_for_caller(deadline)) {
                hand_out(*own, site, cheap_now<Clock>());
                return *own;
            }
        }
        return acquire_slow(site, slot, deadline);
    }

    // A connection that may be shared with other threads (maxshared > 0, thread-safe types).
    Slot& acquire_shared(AcquireSite site) {
        check_fork();
        prepare_thread();
        const auto self = this->shared_from_this();
        const auto deadline = deadline_from(WaitClock::now());
        for (;;) {
            Slot* shared = nullptr;
            {
                Lock lock(*this);
                if (closed_.load()) throw closed_error();
                if (static_cast<int>(shared_.size()) >= options_.maxshared) {
                    shared = least_shared_locked();
                    if (shared != nullptr) {
                        ++shared->share_count;
                        // A pinged share counts once its ping answered (ping_shared).
                        if ((options_.ping & Ping::on_request) == 0) ++shared_handouts_;
                    }
                }
            }
            if (shared == nullptr) break;
            // DBUtils pings before sharing, too; the others keep using it meanwhile.
            if ((options_.ping & Ping::on_request) == 0 || ping_shared(*shared, deadline)) {
                return *shared;
            }
        }
        Slot& slot = acquire_slow(site, nullptr, deadline);
        Lock lock(*this);
        slot.share_count = 1;
        // When every shared connection is inside a transaction (or another thread filled the
        // shared set meanwhile), this one is used alone: sharing it would exceed maxshared.
        if (static_cast<int>(shared_.size()) < options_.maxshared) shared_.push_back(&slot);
        return slot;
    }

    // --- returning ---------------------------------------------------------------------------

    // A borrowed connection comes back (the one verb for it). `discard` closes it. Sharers
    // return their share; the last one returns the connection. Never throws.
    void give_back(Slot& slot, bool shared, bool discard) noexcept {
        check_fork();  // in a child: the connection was abandoned, the return sends nothing
        if (slot.orphaned) return let_go_of_orphan(slot, shared);
        if (shared && !last_share(slot, discard)) return;
        const TimePoint now = cheap_now<Clock>();
        account(slot, now);
        Steady& steady = *slot.steady;
        Slot::publish(slot.opened_at, steady.opened_at());  // a reconnect renews the lifetime
        if (discard || !steady.is_reusable() || lifetime_over(slot, now)) {
            slot.template move<S::in_use, E::discard>();
            retire(slot);
            return;
        }
        if (steady.needs_reset(options_.reset)) {
            slot.template move<S::in_use, E::release_dirty>();
            if (!steady.reset_for_return(options_.reset)) {
                slot.template move<S::resetting, E::reset_failed>();
                retire(slot);
                return;
            }
            slot.template move<S::resetting, E::reset_ok>();
            offer(slot, false);
            return;
        }
        // The lock-free return. While the slot is `returning` it is ours: nobody can claim it
        // and close() waits for it, so the pool's state (held by the slot) stays alive.
        //
        // It pairs with a waiter registering (WaitQueue::push, then scanning the slots) like
        // Dekker's algorithm: we store `returning` and then read the waiter count, the waiter
        // increments the count and then reads the slot states. Both sides are sequentially
        // consistent, so at least one sees the other: either we see the waiter and go through
        // the lock (which hands the connection over or wakes the waiter), or the waiter sees the
        // slot returning and waits for it to become idle. With weaker orders both could miss,
        // and the waiter would sleep beside an idle connection.
        slot.template move<S::in_use, E::release>(std::memory_order_seq_cst);
        if (fast_release_ && !closed_.load(std::memory_order_seq_cst) &&
            (waiting_.count() == 0 || waiting_.front_awake_and_not_due())) {
            // Nobody waits, or the oldest waiter is awake and will look again itself: no wake-up,
            // no lock.
            Slot::publish(slot.idle_since, now);
            affinity_list(pool_id_).remember(pool_id_, &slot);
            slot.template move<S::returning, E::shelve>(std::memory_order_release);
            return;  // from here on the pool may be gone
        }
        offer(slot, false);
    }

    // --- closing -----------------------------------------------------------------------------

    // Refuses new requests, wakes every waiter with pool_closed, stops maintenance and closes
    // idle connections; borrowed ones are closed when they come back, those in a worker's
    // hands when its I/O ends. Waits for I/O in flight at most PoolWorkers::close_grace.
    //
    // When it returns, on every thread that called it, no callback of the pool runs any more
    // (the callbacks' objects may go): a second close() waits for the first to finish. Except
    // in a callback of this pool, which the first close() itself waits for.
    void close() noexcept {
        check_fork();  // a child must not close the parent's connections
        if (closed_.exchange(true, std::memory_order_seq_cst)) {
            if (callbacks_.in_callback()) return;
            Lock lock(*this);
            while (!close_done_)
                lock.wait(*close_done_wake_);
            return;
        }
        std::vector<Slot*> idle;
        typename Sync::thread scheduler;
        auto workers = decltype(workers_.stop_all_locked()){};
        {
            Lock lock(*this);
            waiting_.wake_all();
            for (Waiter* waiter : validating_)
                waiter->wake.notify_one();
            schedule_wake_->notify_all();
            workers = workers_.stop_all_locked();
            idle = claim_all_idle(lock);
            scheduler = std::move(scheduler_);
        }
        // Idle workers end at once (tasks queued before close() end quickly: they see the pool
        // closed); busy ones after their I/O, waited for at most Workers::close_grace.
        // Joining them means none is still inside a client library (or its thread-exit
        // handlers) once close() returns, e.g. when the process exits right after.
        {
            Lock lock(*this);
            workers_.wait_stopped(lock, workers, WaitClock::now() + Workers::close_grace);
        }
        for (auto& entry : workers) {
            if (entry.second.joinable()) entry.second.join();
        }
        if (scheduler.joinable()) {
            // A callback running on the maintenance thread may close the pool.
            if (scheduler.get_id() == std::this_thread::get_id()) {
                scheduler.detach();
            } else {
                scheduler.join();  // it never does I/O: this is quick
            }
        }
        for (Slot* slot : idle)
            retire(*slot);  // COM_QUIT and the like: sent, never waited for
        emit(EventKind::pool_closed, "pool closed");
        callbacks_.stop();  // none after close() returns: the callbacks' objects may go now
        Lock lock(*this);
        close_done_ = true;
        close_done_wake_->notify_all();
    }

    // --- observing ---------------------------------------------------------------------------

    PoolStats stats() const {
        PoolStats stats;
        Lock lock(*this);
        // total = idle + in_use + connecting, always. The open and connecting counts are exact
        // under the lock; a slot may go between idle and in use meanwhile (lock-free acquire
        // and return), so in_use is what remains, and each open slot is counted once.
        stats.total = static_cast<std::size_t>(open_);
        stats.connecting = static_cast<std::size_t>(connecting_);
        for (Slot& slot : slots_) {
            const SlotState state = slot.load();
            if (state == S::idle || state == S::pinging) ++stats.idle;  // pinging: keepalive
        }
        stats.idle = std::min(stats.idle, stats.total - stats.connecting);
        stats.in_use = stats.total - stats.connecting - stats.idle;
        stats.waiting = waiting_.size();
        stats.maxconnections = static_cast<std::size_t>(options_.maxconnections);
        for (Slot& slot : slots_) {
            stats.acquired += slot.borrows.load(std::memory_order_relaxed);
            stats.usage.total += std::chrono::nanoseconds(
                static_cast<std::int64_t>(slot.usage_total_ns.load(std::memory_order_relaxed)));
            stats.usage.max =
                std::max(stats.usage.max, std::chrono::nanoseconds(static_cast<std::int64_t>(
                                              slot.usage_max_ns.load(std::memory_order_relaxed))));
        }
        stats.acquired += shared_handouts_;
        stats.usage.count = stats.acquired;
        stats.created = created_;
        stats.closed = closed_count_;
        stats.reconnects = reconnects_;
        stats.timeouts = timeouts_;
        stats.exhausted = exhausted_;
        stats.failed_connects = failed_connects_;
        stats.leaks = leaks_;
        stats.acquire_wait = acquire_wait_;
        stats.acquire_wait.count = stats.acquired;
        stats.connects_failing = backoff_.failing();
        return stats;
    }

    // --- maintenance -------------------------------------------------------------------------

    // One maintenance pass now, its I/O on this thread (for background_maintenance = false).
    void run_maintenance() { maintain(true); }

    // --- ConnectionSource: every connection of the pool opens and closes here ----------------

    std::unique_ptr<Connection> connect(bool replacing) override {
        check_fork();
        {
            Lock lock(*this);
            if (closed_.load()) throw closed_error();
            const TimePoint now = Clock::now();
            if (backoff_.active(now)) throw backoff_.refusal(now, "");  // no attempt: not counted
            ++attempting_;
        }
        try {
            auto fresh = open_connection(*creator_, options_.setsession);
            {
                Lock lock(*this);
                --attempting_;
                ++created_;
                if (replacing) ++reconnects_;
                backoff_.succeeded();
            }
            emit(replacing ? EventKind::reconnected : EventKind::connected,
                 replacing ? "replaced a broken or worn-out connection" : "opened a connection");
            return fresh;
        } catch (const Error& error) {
            // Reported before anyone can act on it: waiters give up only once it is recorded.
            emit(EventKind::connect_failed, error.what());
            {
                Lock lock(*this);
                --attempting_;
                ++failed_connects_;
                backoff_.failed(error, Clock::now());
            }
            throw;
        }
    }

    void disconnect(std::unique_ptr<Connection> connection) noexcept override {
        if (!connection) return;
        Traits::close(*connection);
        connection.reset();
        {
            Lock lock(*this);
            ++closed_count_;
        }
        emit(EventKind::closed, "closed a connection");
    }

    // fork() in one rule: in the child, every connection inherited from the parent is
    // abandoned (never closed, never freed while a handle can still reach it), and every handle
    // from before the fork, whichever thread borrowed it, fails its next use with
    // handle_closed and never shares a connection with a new borrower. Noticed by every entry
    // point and by every use of a handle; recover_after_fork() carries it out.
    void check_fork() noexcept {
        if (fork_generation_.load(std::memory_order_acquire) != fork_generation()) {
            recover_after_fork();
        }
    }

    // Whether a handle's slot was borrowed before a fork() of this process (check_fork()
    // first): the handle then fails its next use.
    static bool orphaned(const Slot& slot) noexcept { return slot.orphaned; }

private:
    struct StateCounts {
        std::size_t idle = 0;
        std::size_t in_use = 0;
        std::size_t busy = 0;  // anything that will come back on its own
    };

    static int worker_limit(const PoolOptions& options) noexcept {
        const int limit = options.maxconnections > 0 ? options.maxconnections : 64;
        return std::clamp(limit, 2, 64);
    }

    WaitPoint deadline_from(WaitPoint start) const noexcept {
        if (options_.acquire_timeout.count() <= 0) return WaitPoint::max();
        return saturating_add(start, options_.acquire_timeout);
    }

    // Per-thread set-up of the client library, once on every thread that uses a connection.
    static void prepare_thread() {
        if constexpr (Traits::has_prepare_thread) {
            thread_local bool prepared = false;
            if (!prepared) {
                Traits::prepare_thread();
                prepared = true;
            }
        }
    }

    // An idle slot, claimed without the lock: first those this thread returned last (no state
    // shared by all threads), then any. Not while the oldest waiter is due a hand-off: then the
    // next free connection is its (bounded hand-off, see WaitQueue).
    Slot* claim_fast() noexcept {
        if (waiting_.front_due()) return nullptr;
        AffinityList& mine = affinity_list(pool_id_);
        if (mine.pool_id == pool_id_) {
            for (void* remembered : mine.slots) {
                if (remembered == nullptr) break;
                Slot* slot = static_cast<Slot*>(remembered);
                if (slot->load() == S::idle && slot->template apply<S::idle, E::claim>()) {
                    return slot;
                }
            }
        }
        const std::size_t count = slots_.size();
        const std::size_t start = count == 0 ? 0 : mine.scan_start % count;
        for (std::size_t i = 0; i < count; ++i) {
            Slot& slot = slots_[(start + i) % count];
            if (slot.load() == S::idle && slot.template apply<S::idle, E::claim>()) return &slot;
        }
        return nullptr;
    }

    // Whether an owned connection may go to its borrower as it is: not past its lifetime, and
    // used recently enough to skip the hand-out ping.
    bool ready(const Slot& slot, TimePoint now) const noexcept {
        return !lifetime_over(slot, now) && !needs_ping(slot, now);
    }

    bool needs_ping(const Slot& slot, TimePoint now) const noexcept {
        // As DBUtils: a connection from the idle cache is pinged, a fresh one is not.
        if ((options_.ping & Ping::on_request) == 0 || slot.fresh) return false;
        return ping_bypass_.count() <= 0 || now - slot.steady->last_success() >= ping_bypass_;
    }

    Slot& acquire_slow(AcquireSite site, Slot* candidate, WaitPoint deadline) {
        std::shared_ptr<PooledCore> self;  // taken before waiting: a waiter keeps the state alive
        Waiter waiter;
        waiter.since = WaitClock::now();
        for (;;) {
            if (candidate == nullptr) candidate = &wait_for_slot(waiter, deadline, self);
            if (closed_.load(std::memory_order_seq_cst)) {
                candidate->template move<S::in_use, E::discard>();
                retire(*candidate);
                throw closed_error();
            }
            const TimePoint now = cheap_now<Clock>();
            if (lifetime_over(*candidate, now)) {
                candidate->template move<S::in_use, E::discard>();
                retire(*candidate);
                candidate = nullptr;
                continue;
            }
            if (needs_ping(*candidate, now) &&
                !validate_hand_out(*candidate, waiter, deadline, self)) {
                candidate = nullptr;  // it was dead and is being closed: look further
                continue;
            }
            hand_out(*candidate, site, cheap_now<Clock>());
            return *candidate;
        }
    }

    // Waits for a connection: an idle one, one handed over by a returner, or a new one opened
    // by a worker for the waiters. The result is owned (in_use). Throws pool_closed,
    // pool_exhausted, timeout or connect_failed (connects back off and nothing is in use that
    // could come back).
    //
    // Only the oldest waiter looks for a free connection; the others sleep until they are the
    // oldest. The oldest sleeps until a returner hands it a connection or wakes it, until it is
    // due a hand-off (then returners hand it the next one), or until its deadline.
    Slot& wait_for_slot(Waiter& waiter, WaitPoint deadline, std::shared_ptr<PooledCore>& self) {
        Lock lock(*this);
        bool queued = false;
        const auto leave = [&] {
            if (queued) waiting_.remove(waiter);
            queued = false;
        };
        // However this call ends, the waiter (on this thread's stack) is off the queue: also
        // when something below throws, e.g. an allocation that fails.
        struct LeaveOnThrow {
            const decltype(leave)& leave_queue;
            LeaveOnThrow(const LeaveOnThrow&) = delete;
            LeaveOnThrow& operator=(const LeaveOnThrow&) = delete;
            LeaveOnThrow(LeaveOnThrow&&) = delete;
            LeaveOnThrow& operator=(LeaveOnThrow&&) = delete;
            ~LeaveOnThrow() { leave_queue(); }
        } leave_on_throw{leave};
        for (;;) {
            if (waiter.handed != nullptr) {  // the giver took us off the queue
                record_wait_locked(waiter.since);
                return *std::exchange(waiter.handed, nullptr);
            }
            if (closed_.load()) {
                leave();
                throw closed_error();
            }
            auto now = WaitClock::now();
            const bool front = queued && waiting_.is_front(waiter);
            // Before looking: from here on a returner either sees that the oldest waiter is
            // asleep (and wakes it), or the oldest sees its slot returning (see give_back).
            if (front) waiting_.set_front_awake(false);
            bool pending = false;
            if (queued ? front : waiting_.newcomer_may_take(now)) {
                if (Slot* slot = claim_idle_locked(pending)) {
                    leave();
                    record_wait_locked(waiter.since);
                    return *slot;
                }
            }
            if (!queued) {
                if (!options_.blocking && at_limit_locked()) throw exhausted(lock);
                waiting_.push(waiter);
                queued = true;
                if (waiting_.is_front(waiter)) continue;  // look again, as the oldest
            }
            connect_for_waiters_locked();
            const TimePoint clock_now = Clock::now();
            if (backoff_.active(clock_now) &&
                (!options_.blocking || count_states_locked().busy == 0)) {
                // Nothing that is out can come back, and no connect may start: a caller that
                // waited now would wait for nothing.
                leave();
                throw backoff_.refusal(
                    clock_now, options_.blocking ? "; no borrowed connection could come back"
                                                 : "; the pool does not wait (blocking = false)");
            }
            if (now >= deadline) {
                leave();
                throw timeout(lock, waiter.since);
            }
            auto until = deadline;
            if (waiting_.is_front(waiter)) {
                // A slot mid-return is a few instructions from idle, unless its returner was
                // preempted: look again shortly rather than spin while it cannot run.
                if (pending)
                    until = std::min<WaitPoint>(until, now + std::chrono::microseconds(100));
                const auto due_at = waiting_.front_due_at();
                if (now < due_at) until = std::min(until, due_at);
                if (backoff_.active(clock_now) && !at_limit_locked()) {
                    // Wake when the next connect may start, in case nothing comes back before.
                    until = std::min<WaitPoint>(
                        until, saturating_add(now, backoff_.next_attempt() - clock_now));
                }
            }
            if (!self) self = this->shared_from_this();
            if (until == WaitPoint::max()) {
                lock.wait(waiter.wake);
            } else {
                lock.wait_until(waiter.wake, until);
            }
            now = WaitClock::now();
            if (queued && waiting_.is_front(waiter) && now >= waiting_.front_due_at()) {
                waiting_.mark_front_due();  // fast paths leave the next free connection to us
            }
        }
    }

    // Pings an owned connection on a worker before it is handed out, waiting at most until
    // `deadline`. True: alive and ours. False: dead (a worker closes it). Throws timeout or
    // pool_closed; the ping goes on, and its connection is offered to the pool when it ends.
    bool validate_hand_out(Slot& slot, Waiter& waiter, WaitPoint deadline,
                           std::shared_ptr<PooledCore>& self) {
        if (!self) self = this->shared_from_this();
        std::shared_ptr<Ticket> ticket;
        Lock lock(*this);
        try {
            ticket = std::make_shared<Ticket>();
            ticket->waiter = &waiter;
            if (!worker_ready_locked()) {
                if (closed_.load()) throw closed_error();
                throw no_worker_error("ping a connection before handing it out");
            }
            validating_.push_back(&waiter);
            try {
                workers_.push_locked([this, &slot, ticket] { run_validation(slot, *ticket); });
            } catch (...) {
                validating_.pop_back();
                throw;
            }
        } catch (...) {
            // Nothing went to a worker (no thread, no memory, closed): the connection is still
            // ours, and goes back to the pool unpinged.
            slot.template move<S::in_use, E::release>();
            offer(slot, lock, false);
            throw;
        }
        slot.template move<S::in_use, E::stale>();  // the worker's from here
        const auto stop_waiting = [&] {
            ticket->waiter = nullptr;
            validating_.erase(std::find(validating_.begin(), validating_.end(), &waiter));
        };
        for (;;) {
            if (ticket->result != Ticket::Result::pending) {
                stop_waiting();
                return ticket->result == Ticket::Result::alive;
            }
            if (closed_.load()) {
                stop_waiting();
                throw closed_error();
            }
            if (WaitClock::now() >= deadline) {
                stop_waiting();
                throw timeout(lock, waiter.since);
            }
            if (deadline == WaitPoint::max()) {
                lock.wait(waiter.wake);
            } else {
                lock.wait_until(waiter.wake, deadline);
            }
        }
    }

    void run_validation(Slot& slot, Ticket& ticket) noexcept {
        // The slot is ours while validating. After close() nobody gets it: no I/O for it then.
        const bool alive = !closed_.load() && slot.steady->ping();
        Lock lock(*this);
        Waiter* waiter = std::exchange(ticket.waiter, nullptr);
        if (alive && waiter != nullptr) {
            slot.template move<S::validating, E::ping_ok>();
            ticket.result = Ticket::Result::alive;
            waiter->wake.notify_one();
            return;
        }
        if (alive) {  // its acquirer gave up meanwhile
            slot.template move<S::validating, E::unclaimed>();
            offer(slot, lock, false);
            return;
        }
        slot.template move<S::validating, E::ping_failed>();
        if (waiter != nullptr) {
            ticket.result = Ticket::Result::dead;
            waiter->wake.notify_one();
        }
        lock.unlock();
        emit(EventKind::ping_failed, "a connection failed its hand-out ping and was closed");
        retire(slot);
    }

    // Pings a shared connection on a worker; the others keep using it meanwhile. True: alive,
    // and our share stands. False: dead, our share was returned and nobody gets it again.
    bool ping_shared(Slot& slot, WaitPoint deadline) {
        Waiter waiter;
        waiter.since = WaitClock::now();
        std::shared_ptr<Ticket> ticket;
        Lock lock(*this);
        try {
            ticket = std::make_shared<Ticket>();
            ticket->waiter = &waiter;
            if (!worker_ready_locked()) {
                if (closed_.load()) throw closed_error();
                throw no_worker_error("ping a shared connection");
            }
            validating_.push_back(&waiter);
            try {
                workers_.push_locked([this, &slot, ticket] {
                    const bool alive = slot.steady->ping();
                    {
                        Lock guard(*this);
                        ticket->result = alive ? Ticket::Result::alive : Ticket::Result::dead;
                        if (ticket->waiter != nullptr) ticket->waiter->wake.notify_one();
                    }
                    give_back(slot, true, !alive);
                });
            } catch (...) {
                validating_.pop_back();
                throw;
            }
        } catch (...) {
            lock.unlock();
            give_back(slot, true, false);  // nothing went to a worker: our share goes back
            throw;
        }
        // The worker's own share, so the connection stays while it pings (it cannot run
        // before the lock is released).
        ++slot.share_count;
        const auto stop_waiting = [&] {
            ticket->waiter = nullptr;
            validating_.erase(std::find(validating_.begin(), validating_.end(), &waiter));
        };
        for (;;) {
            if (ticket->result != Ticket::Result::pending) {
                stop_waiting();
                if (ticket->result == Ticket::Result::alive) {
                    ++shared_handouts_;
                    return true;
                }
                lock.unlock();
                give_back(slot, true, true);
                return false;
            }
            if (closed_.load() || WaitClock::now() >= deadline) {
                stop_waiting();
                const bool closed = closed_.load();
                Error error = closed ? closed_error() : timeout(lock, waiter.since);
                if (lock.owns_lock()) lock.unlock();
                give_back(slot, true, false);
                throw error;
            }
            if (deadline == WaitPoint::max()) {
                lock.wait(waiter.wake);
            } else {
                lock.wait_until(waiter.wake, deadline);
            }
        }
    }

    void hand_out(Slot& slot, AcquireSite site, TimePoint now) noexcept {
        slot.fresh = false;
        Slot::publish(slot.acquired_at, now);
        slot.site_file.store(site.file, std::memory_order_relaxed);
        slot.site_line.store(site.line, std::memory_order_relaxed);
        // After the fields above: maintenance reads the borrow number first (see collect_leak).
        const std::uint64_t borrow = slot.borrows.load(std::memory_order_relaxed) + 1;
        slot.borrows.store(borrow, std::memory_order_relaxed);
        slot.lent.store(borrow, std::memory_order_release);
    }

    // A sharer's return; true when it was the last share, so the connection itself comes back
    // (`discard` then says whether to close it).
    bool last_share(Slot& slot, bool& discard) noexcept {
        Lock lock(*this);
        if (discard && !slot.doomed) slot.doomed = true;  // others keep it until they are done
        if (slot.doomed)
            shared_.erase(std::remove(shared_.begin(), shared_.end(), &slot), shared_.end());
        if (--slot.share_count > 0) return false;
        shared_.erase(std::remove(shared_.begin(), shared_.end(), &slot), shared_.end());
        discard = slot.doomed;
        slot.doomed = false;
        return true;
    }

    Slot* least_shared_locked() const noexcept {
        Slot* least = nullptr;
        for (Slot* candidate : shared_) {
            // As far as its last operation told (no lock of the connection's, none of the
            // connection type's code under the pool's lock): one in the middle of another
            // sharer's statement is shared too, as DBUtils does; its sharers take turns.
            if (candidate->steady->transaction_hint()) continue;
            if (least == nullptr || candidate->share_count < least->share_count) {
                least = candidate;
            }
        }
        return least;
    }

    void account(Slot& slot, TimePoint now) noexcept {
        const std::uint64_t borrow = slot.lent.load(std::memory_order_relaxed);
        slot.lent.store(0, std::memory_order_relaxed);
        const auto held = now - Slot::time_of(slot.acquired_at.load(std::memory_order_relaxed));
        const auto held_ns = static_cast<std::uint64_t>(std::max<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::nanoseconds>(held).count()));
        Slot::add(slot.usage_total_ns, held_ns);
        if (held_ns > slot.usage_max_ns.load(std::memory_order_relaxed)) {
            slot.usage_max_ns.store(held_ns, std::memory_order_relaxed);
        }
        if (!rules_.detects_leaks()) return;
        if (slot.leak_reported.exchange(0, std::memory_order_acq_rel) != borrow) return;
        LeakReport report;
        report.held = std::chrono::duration_cast<std::chrono::milliseconds>(held);
        report.acquired_at = AcquireSite{slot.site_file.load(std::memory_order_relaxed),
                                         slot.site_line.load(std::memory_order_relaxed)};
        report.returned = true;
        report_leak(report);
    }

    // --- offering and retiring ---------------------------------------------------------------

    // An available connection (owned, `returning`) goes to the oldest due waiter, or idle; or
    // it is closed when the pool is closed or keeps maxcached idle ones already. `opened` says
    // it was opened for the waiters, so the oldest gets it whether due or not.
    void offer(Slot& slot, bool opened) noexcept {
        Lock lock(*this);
        offer(slot, lock, opened);
    }

    void offer(Slot& slot, Lock& lock, bool opened) noexcept {
        if (!closed_.load()) {
            // A due waiter first: closing it as a surplus idle one while someone waits would
            // only make the pool open another for the waiter.
            if (Waiter* waiter = waiting_.take_due(WaitClock::now(), opened)) {
                slot.fresh = opened;
                slot.template move<S::returning, E::hand_off>();
                waiter->handed = &slot;  // stays in_use: ownership passes straight to the waiter
                waiter->wake.notify_one();
                return;
            }
        }
        const bool surplus = options_.maxcached > 0 &&
                             static_cast<int>(count_states_locked().idle) >= options_.maxcached;
        if (closed_.load() || surplus) {
            slot.template move<S::returning, E::expire>();
            lock.unlock();
            retire(slot);
            return;
        }
        slot.fresh = false;  // from the idle cache: pinged at hand-out, however it was opened
        Slot::publish(slot.idle_since, cheap_now<Clock>());
        slot.template move<S::returning, E::shelve>();
        waiting_.wake_front_if_asleep();  // the oldest competes for it with running threads
    }

    // Closes an owned `retiring` slot's connection (network I/O, so no lock is held) and frees
    // its capacity. The slot's hold on the pool's state ends here: this may be the last one,
    // so callers never touch the pool afterwards.
    void retire(Slot& slot) noexcept {
        slot.steady.reset();  // closes through disconnect(): counted and reported
        free_capacity(slot, E::closed);
    }

    void free_capacity(Slot& slot, SlotEvent event) noexcept {
        std::shared_ptr<PooledCore> hold;  // destroyed last, after the lock is released
        Lock lock(*this);
        hold = std::move(slot.keep_alive);
        if (event == E::closed) {
            slot.template move<S::retiring, E::closed>();
        } else {
            slot.template move<S::connecting, E::connect_failed>();
        }
        slot.share_count = 0;
        slot.doomed = false;
        slot.leak_reported.store(0, std::memory_order_relaxed);
        free_slots_.push_back(&slot);
        --open_;
        if (event == E::connect_failed) {
            --connecting_;
            // Waiters decide again: with connects failing, they may have nothing to wait for.
            waiting_.wake_all();
        }
        connect_for_waiters_locked();  // capacity freed: a waiter's connect may start
        if (open_ < options_.mincached) schedule_wake_->notify_all();
    }

    // Opens the connection of a `connecting` slot (on a worker, or on the constructor's thread
    // with `rethrow`), then offers it; on failure the capacity is freed.
    void connect_slot(Slot& slot, bool for_waiters) {
        Lock lock = open_slot(slot, false);
        offer(slot, lock, for_waiters);
    }

    // Opens the connection of a `connecting` slot (`by_caller`: for the acquirer running it) and
    // returns with the lock held and the slot `returning`, for its opener to place. On failure
    // the capacity is freed and the error rethrown.
    Lock open_slot(Slot& slot, bool by_caller) {
        std::unique_ptr<Steady> steady;
        try {
            steady = std::make_unique<Steady>(FromSource{}, *this, steady_options_);
        } catch (...) {
            if (by_caller) {
                Lock lock(*this);
                --caller_connects_;
            }
            free_capacity(slot, E::connect_failed);
            throw;
        }
        Slot::publish(slot.opened_at, steady->opened_at());
        slot.lifetime.store(jittered_lifetime_ticks(), std::memory_order_relaxed);
        slot.steady = std::move(steady);
        Lock lock(*this);
        --connecting_;
        if (by_caller) --caller_connects_;
        slot.template move<S::connecting, E::connect_ok>();
        return lock;
    }

    // Opens a connection on the acquirer's own thread, for it alone, when nothing is idle, nobody
    // waits (it would be the first waiter), the pool is below its limit, connects are not
    // failing, and the creator promises to return within the acquirer's deadline: the connect
    // is then as bounded as the wait it replaces. Otherwise (null) a worker connects and the
    // acquirer waits. A connection that starts on the thread using it keeps that thread and
    // the server's end of it scheduled together: opened on a worker and handed over, 8 threads
    // on a pool of 8 served 20-30% fewer PostgreSQL requests (docs/benchmarks.md).
    // Throws connect_failed (counted, the back-off told, the capacity freed) or pool_closed.
    Slot* connect_for_caller(WaitPoint deadline) {
        if (!connect_bound_ || !options_.setsession.empty()) return nullptr;
        Slot* slot = nullptr;
        {
            Lock lock(*this);
            if (closed_.load() || waiting_.count() != 0 || at_limit_locked() ||
                backoff_.failing()) {
                return nullptr;
            }
            if (deadline != WaitPoint::max() &&
                saturating_add(WaitClock::now(), *connect_bound_) > deadline) {
                return nullptr;
            }
            slot = &reserve_locked();
            ++caller_connects_;
        }
        Lock lock = open_slot(*slot, true);
        if (closed_.load()) {
            slot->template move<S::returning, E::expire>();
            lock.unlock();
            retire(*slot);
            throw closed_error();
        }
        slot->template move<S::returning, E::hand_off>();  // ours: in_use from here
        return slot;
    }

    // connect_for_caller(), except that a refused connect does not end a blocking acquire while
    // a borrowed connection can come back: the database may be up but full (at its
    // max_connections), and the caller then waits like anyone else (wait_for_slot decides).
    Slot* try_connect_for_caller(WaitPoint deadline) {
        try {
            return connect_for_caller(deadline);
        } catch (const Error& error) {
            if (error.code() != ErrorCode::connect_failed || !options_.blocking) throw;
            Lock lock(*this);
            if (closed_.load() || count_states_locked().busy == 0) throw;
            return nullptr;
        }
    }

    // Connects for the waiters: one per waiter that no connect in flight covers yet, within
    // maxconnections. While connects fail, one attempt at a time probes the database, and none
    // starts before the back-off allows.
    void connect_for_waiters_locked() {
        while (!closed_.load() && !at_limit_locked() &&
               waiting_.size() > static_cast<std::size_t>(connecting_ - caller_connects_)) {
            if (backoff_.failing() && (connecting_ > 0 || backoff_.active(Clock::now()))) return;
            if (!worker_ready_locked()) {
                worker_refused_locked();
                return;
            }
            Slot& slot = reserve_locked();
            post_connect_locked(slot, true);
        }
    }

    // Queues the connect of a slot just reserved, for a worker that worker_ready_locked()
    // promised; when queueing fails (no memory), the reservation is undone before the error
    // goes on, so no slot stays `connecting` with no connect to run.
    void post_connect_locked(Slot& slot, bool for_waiters) {
        try {
            workers_.push_locked(
                [this, &slot, for_waiters] { connect_quietly(slot, for_waiters); });
        } catch (...) {
            unreserve_locked(slot);
            throw;
        }
    }

    // Undoes reserve_locked() (nothing was started for the slot). The slot's hold on the pool
    // is never the last one here: the caller is inside the pool, held by its own caller.
    void unreserve_locked(Slot& slot) noexcept {
        slot.template move<S::connecting, E::connect_failed>();
        slot.keep_alive.reset();
        free_slots_.push_back(&slot);  // never allocates: reserve_locked() made room
        --open_;
        --connecting_;
    }

    Slot& reserve_locked() {
        Slot* slot = nullptr;
        if (!free_slots_.empty()) {
            slot = free_slots_.back();
            free_slots_.pop_back();
        } else {
            // Room on the free list for every slot, so that giving one back never allocates.
            if (free_slots_.capacity() < slots_.size() + 1) {
                free_slots_.reserve(2 * (slots_.size() + 1));
            }
            slot = &slots_.grow();
        }
        slot->template move<S::empty, E::reserve>();  // empty slots belong to the lock holder
        slot->keep_alive = this->shared_from_this();
        ++open_;
        ++connecting_;
        return *slot;
    }

    bool at_limit_locked() const noexcept {
        return options_.maxconnections > 0 && open_ >= options_.maxconnections;
    }

    // An idle slot, claimed; `pending` when none was found but one is mid-return.
    Slot* claim_idle_locked(bool& pending) noexcept {
        for (Slot& slot : slots_) {
            const SlotState state = slot.load();
            if (state == S::returning) pending = true;
            if (state == S::idle && slot.template apply<S::idle, E::claim>()) return &slot;
        }
        return nullptr;
    }

    // Every idle slot, claimed for closing; waits for slots that are mid-return. Each slot is
    // judged by one read, the compare-and-swap's: a return that goes idle between two reads
    // would otherwise be neither claimed nor waited for, and never closed.
    std::vector<Slot*> claim_all_idle(Lock& lock) {
        std::vector<Slot*> claimed;
        for (;;) {
            bool pending = false;
            for (Slot& slot : slots_) {
                SlotState seen = S::idle;
                if (slot.template apply<S::idle, E::expire>(seen)) {
                    claimed.push_back(&slot);
                } else if (seen == S::returning) {
                    pending = true;
                }
            }
            if (!pending) return claimed;
            lock.unlock();
            Sync::yield();
            lock.lock();
        }
    }

    StateCounts count_states_locked() const noexcept {
        StateCounts counts;
        for (Slot& slot : slots_) {
            switch (slot.load()) {
                case S::idle: ++counts.idle; break;
                case S::in_use:
                case S::validating:
                case S::resetting:
                    ++counts.in_use;
                    ++counts.busy;
                    break;
                case S::connecting:
                case S::returning:
                case S::pinging: ++counts.busy; break;
                case S::empty:
                case S::retiring: break;
            }
        }
        return counts;
    }

    void record_wait_locked(WaitPoint since) noexcept {
        const auto waited =
            std::chrono::duration_cast<std::chrono::nanoseconds>(WaitClock::now() - since);
        acquire_wait_.total += waited;
        acquire_wait_.max = std::max(acquire_wait_.max, waited);
    }

    // --- errors that explain themselves ------------------------------------------------------

    PoolPicture picture_locked() const {
        const TimePoint now = cheap_now<Clock>();
        PoolPicture picture;
        picture.open = open_;
        picture.maxconnections = options_.maxconnections;
        picture.connecting = connecting_ + attempting_;
        picture.waiting = static_cast<int>(waiting_.size());
        picture.backoff = backoff_.describe(now);
        for (Slot& slot : slots_) {
            const SlotState state = slot.load();
            switch (state) {
                case S::idle: ++picture.idle; break;
                case S::validating:
                case S::pinging: ++picture.pinging; break;
                case S::in_use:
                case S::resetting: {
                    ++picture.in_use;
                    const auto held =
                        now - Slot::time_of(slot.acquired_at.load(std::memory_order_relaxed));
                    picture.held.push_back(
                        {std::chrono::duration_cast<std::chrono::milliseconds>(held),
                         AcquireSite{slot.site_file.load(std::memory_order_relaxed),
                                     slot.site_line.load(std::memory_order_relaxed)}});
                    break;
                }
                default: break;
            }
        }
        return picture;
    }

    Error timeout(Lock& lock, WaitPoint since) {
        ++timeouts_;
        const auto waited =
            std::chrono::duration_cast<std::chrono::milliseconds>(WaitClock::now() - since);
        const std::string message =
            "dbpool: timed out after " + std::to_string(waited.count()) +
            " ms waiting for a connection (acquire_timeout " +
            std::to_string(options_.acquire_timeout.count()) + " ms). " +
            describe(picture_locked()) +
            " Return connections sooner, or raise maxconnections or acquire_timeout.";
        lock.unlock();
        emit(EventKind::acquire_timeout, message);
        return Error(ErrorCode::timeout, message);
    }

    Error exhausted(Lock& lock) {
        ++exhausted_;
        const std::string message = "dbpool: too many connections: all " +
                                    std::to_string(options_.maxconnections) +
                                    " are in use (maxconnections). " + describe(picture_locked()) +
                                    " Set blocking = true to wait, or raise maxconnections.";
        lock.unlock();
        emit(EventKind::exhausted, message);
        return Error(ErrorCode::pool_exhausted, message);
    }

    static Error closed_error() {
        return Error(ErrorCode::pool_closed, "dbpool: the pool is closed");
    }

    // --- maintenance -------------------------------------------------------------------------

    // The maintenance thread decides and never does I/O: it cannot freeze on a dead network,
    // and close() joins it at once. It sleeps until the next pass; an idle pool whose options
    // need no maintenance has no such thread at all.
    void start_scheduler_locked() {
        if (!options_.background_maintenance || !rules_.needed() || closed_.load()) return;
        scheduler_ = typename Sync::thread([self = this->shared_from_this()] { self->schedule(); });
    }

    // The thread's body. What can throw here (out of memory, a failing mutex) would end the
    // process anyway once it left the thread; noexcept only says so.
    void schedule() noexcept {  // NOLINT(bugprone-exception-escape)
        const auto interval = rules_.interval();
        Lock lock(*this);
        auto next_pass = WaitClock::now() + interval;
        const unsigned generation = fork_generation_.load(std::memory_order_relaxed);
        for (;;) {
            lock.wait_until(*schedule_wake_, next_pass);
            if (closed_.load() || generation != fork_generation_.load(std::memory_order_relaxed)) {
                return;
            }
            const bool refill = open_ < options_.mincached;
            if (WaitClock::now() < next_pass && !refill) continue;
            lock.unlock();
            maintain(false);
            lock.lock();
            next_pass = WaitClock::now() + interval;
        }
    }

    // One pass: retire expired and surplus idle connections, ping stale idle ones, report leaks
    // and open connections up to mincached. Decided under the lock; the I/O runs on this thread
    // (`inline_io`) or on pool workers.
    void maintain(bool inline_io) {
        check_fork();
        prepare_thread();
        const TimePoint now = Clock::now();
        std::vector<std::function<void()>> io;
        std::vector<LeakReport> leaks;
        {
            Lock lock(*this);
            if (closed_.load()) return;
            int keep = open_;
            for (Slot& slot : slots_) {
                const SlotState state = slot.load();
                if (state == S::in_use) collect_leak(slot, now, leaks);
                if (state != S::idle) continue;
                const auto idle_for =
                    now - Slot::time_of(slot.idle_since.load(std::memory_order_relaxed));
                const IdleVerdict verdict =
                    rules_.judge_idle(idle_for, lifetime_over(slot, now), keep);
                if (verdict == IdleVerdict::keep) continue;
                // Decide only what can be carried out: without a worker, the next pass decides.
                if (!inline_io && !worker_ready_locked()) break;
                std::function<void()> task;
                if (verdict == IdleVerdict::expire) {
                    if (!slot.template apply<S::idle, E::expire>()) continue;
                    --keep;
                    task = [this, &slot] { retire(slot); };
                } else {
                    if (!slot.template apply<S::idle, E::keepalive>()) continue;
                    task = [this, &slot] { run_keepalive(slot); };
                }
                if (inline_io) {
                    io.push_back(std::move(task));
                } else {
                    workers_.push_locked(std::move(task));
                }
            }
        }
        for (auto& task : io)
            task();
        refill(inline_io);
        for (const LeakReport& report : leaks)
            report_leak(report);
    }

    // Opens connections up to mincached (retired ones no longer count once closed; with the
    // I/O on workers, each close wakes maintenance to refill). Never while connects back off.
    void refill(bool inline_io) {
        std::vector<Slot*> reserved;
        {
            Lock lock(*this);
            const TimePoint now = Clock::now();
            while (!closed_.load() && open_ < options_.mincached && !at_limit_locked() &&
                   !(backoff_.failing() && (connecting_ > 0 || backoff_.active(now)))) {
                if (inline_io) {
                    reserved.push_back(&reserve_locked());
                    continue;
                }
                if (!worker_ready_locked()) {
                    worker_refused_locked();
                    break;
                }
                Slot& slot = reserve_locked();
                post_connect_locked(slot, false);
            }
        }
        for (Slot* slot : reserved)
            connect_quietly(*slot, false);
    }

    void connect_quietly(Slot& slot, bool for_waiters) noexcept {
        try {
            connect_slot(slot, for_waiters);
        } catch (...) {
            // Counted and reported, waiters told (connect()); the back-off decides the retry.
        }
    }

    void run_keepalive(Slot& slot) noexcept {
        if (closed_.load() || slot.steady->ping()) {  // after close(), offer() closes it
            slot.template move<S::pinging, E::ping_ok>();
            offer(slot, false);
            return;
        }
        slot.template move<S::pinging, E::ping_failed>();
        emit(EventKind::keepalive_failed, "an idle connection failed its keepalive ping");
        retire(slot);
    }

    void collect_leak(Slot& slot, TimePoint now, std::vector<LeakReport>& leaks) {
        if (!rules_.detects_leaks()) return;
        // The borrow number is stored after the acquire time: read it first, and again after,
        // so a borrow that began in between is not judged by its predecessor's time.
        const std::uint64_t borrow = slot.lent.load(std::memory_order_acquire);
        if (borrow == 0) return;  // handed over, hand-out not recorded yet
        const auto acquired = Slot::time_of(slot.acquired_at.load(std::memory_order_relaxed));
        // A seqlock's second read: the fence keeps the time read above before the check below.
        std::atomic_thread_fence(std::memory_order_acquire);
        if (slot.lent.load(std::memory_order_relaxed) != borrow) return;
        const auto held = now - acquired;
        if (!rules_.leaked(held)) return;
        std::uint64_t reported = slot.leak_reported.load(std::memory_order_acquire);
        if (reported == borrow) return;
        if (!slot.leak_reported.compare_exchange_strong(reported, borrow)) return;
        ++leaks_;
        LeakReport report;
        report.held = std::chrono::duration_cast<std::chrono::milliseconds>(held);
        report.acquired_at = AcquireSite{slot.site_file.load(std::memory_order_relaxed),
                                         slot.site_line.load(std::memory_order_relaxed)};
        leaks.push_back(report);
    }

    void report_leak(const LeakReport& report) noexcept {
        emit(report.returned ? EventKind::leak_returned : EventKind::leak_suspected,
             describe(report));
        if (options_.on_leak) callbacks_.call(options_.on_leak, report);
    }

    bool lifetime_over(const Slot& slot, TimePoint now) const noexcept {
        const std::int64_t lifetime = slot.lifetime.load(std::memory_order_relaxed);
        return lifetime > 0 &&
               (now - Slot::time_of(slot.opened_at.load(std::memory_order_relaxed))).count() >=
                   lifetime;
    }

    std::int64_t jittered_lifetime_ticks() {
        if (options_.max_lifetime.count() <= 0) return 0;
        const std::int64_t lifetime = saturating_cast<Ticks>(options_.max_lifetime).count();
        // Up to 2.5% earlier, so connections opened together do not all expire together.
        const std::int64_t spread = lifetime / 40;
        if (spread == 0) return lifetime;
        Lock lock(*this);
        return lifetime -
               static_cast<std::int64_t>(next_random() % (static_cast<std::uint64_t>(spread) + 1));
    }

    // splitmix64: enough to spread expiries, and spares every includer <random>'s compile cost.
    std::uint64_t next_random() {
        std::uint64_t z = (random_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31U);
    }

    // --- workers and events ------------------------------------------------------------------

    // Whether a pool worker will run the next task queued (PoolWorkers::reserve_locked): false
    // after close(), and when no worker thread can be started and none runs. The caller queues
    // its task with workers_.push_locked() only after true, and prepares nothing before asking
    // that it could not undo.
    bool worker_ready_locked() {
        if (closed_.load()) return false;
        return workers_.reserve_locked(
            [self = this->shared_from_this()](typename Workers::Worker* worker) {
                prepare_thread();
                Lock lock(*self);
                self->workers_.run(lock, worker, [&self] { return self->closed_.load(); });
            });
    }

    // No worker could be started for a connect: counted as a failed connect attempt, so the
    // back-off spaces the retries and waiters that nothing can serve are told, as when the
    // database refuses.
    void worker_refused_locked() {
        ++failed_connects_;
        backoff_.failed(no_worker_error("open a connection"), Clock::now());
        waiting_.wake_all();
    }

    static Error no_worker_error(const char* task) {
        return Error(ErrorCode::connect_failed,
                     std::string("dbpool: could not start a pool worker thread to ") + task +
                         " (the process is out of threads or memory)");
    }

    void emit(EventKind kind, const std::string& detail) const noexcept {
        if (options_.on_event) callbacks_.call(options_.on_event, PoolEvent{kind, detail});
    }

    void recover_after_fork() noexcept {
        std::vector<std::shared_ptr<PooledCore>> released;  // dropped after the lock
        Lock lock(*this);
        const unsigned generation = fork_generation();
        if (fork_generation_.load(std::memory_order_relaxed) == generation) return;
        open_ = 0;
        connecting_ = 0;
        caller_connects_ = 0;
        attempting_ = 0;
        free_slots_.clear();
        for (Slot& slot : slots_) {
            if (slot.orphaned) continue;  // orphaned by an earlier fork (this is a grandchild)
            const bool borrowed = slot.load() == S::in_use;
            if (slot.steady) slot.steady->abandon_after_fork();  // no lock a parent thread held
            slot.steady.reset();                                 // nothing left to close
            slot.apply(E::abandon);                              // its capacity is the child's
            if (borrowed) {
                // A handle may reach it (from whichever thread it was borrowed: handles move
                // between threads): never handed out again, and its hold on the pool stays until
                // the handle lets go (give_back). Several handles may share it: then for good.
                slot.orphaned = true;
                continue;
            }
            released.push_back(std::move(slot.keep_alive));
            slot.share_count = 0;
            slot.doomed = false;
            free_slots_.push_back(&slot);  // never allocates: reserve_locked() made room
        }
        shared_.clear();
        waiting_.forget_all();
        validating_.clear();
        workers_.forget_all();
        static_cast<void>(schedule_wake_.release());  // see PoolWorkers::forget_all
        schedule_wake_ = std::make_unique<CondVar>();
        static_cast<void>(close_done_wake_.release());
        close_done_wake_ = std::make_unique<CondVar>();
        if (scheduler_.joinable()) scheduler_.detach();  // that thread exists in the parent only
        // Publishes the above to threads of the child that find the generation current
        // (check_fork's acquire) and then read a slot's `orphaned`.
        fork_generation_.store(generation, std::memory_order_release);
        try {
            start_scheduler_locked();
        } catch (...) {
            // Without a maintenance thread the child's pool still works; it is not maintained.
        }
    }

    // A handle borrowed before fork() comes back in the child: it lets go of its slot, which is
    // never reused. A dedicated one had the only handle, so its hold on the pool ends here.
    void let_go_of_orphan(Slot& slot, bool shared) noexcept {
        if (shared) return;
        std::shared_ptr<PooledCore> hold;  // destroyed last, after the lock is released
        Lock lock(*this);
        hold = std::move(slot.keep_alive);
    }

    // The lock (PoolLock) and the invariant checker (PoolInvariants) see the pool's insides.
    friend class PoolLock<PooledCore, Mutex>;
    friend struct PoolInvariants<PooledCore>;
    Mutex& pool_mutex() const noexcept { return mutex_; }
    void check_invariants_locked() const noexcept { PoolInvariants<PooledCore>::check(*this); }

    // Read by every acquire and return.
    std::optional<std::chrono::milliseconds> connect_bound_;  // the creator's promise, if any
    std::shared_ptr<const Creator<Connection>> creator_;
    PoolOptions options_;
    SteadyOptions steady_options_;
    const std::uint64_t pool_id_;
    bool fast_release_ = true;
    Ticks ping_bypass_{};
    MaintenanceRules<Ticks> rules_{options_};
    std::atomic<unsigned> fork_generation_{detail::fork_generation()};
    typename Sync::template atomic<bool> closed_{false};

    // Guarded by mutex_ (the waiter count excepted, see WaitQueue).
    alignas(64) mutable Mutex mutex_;
    ForkLockFor<Mutex> fork_lock_{mutex_};
    SlotTable<Slot> slots_;  // never shrinks: slots are reused, not freed; read without the lock
    std::vector<Slot*> free_slots_;  // empty slots, ready for reserve
    std::vector<Slot*> shared_;
    WaitQueue<Slot> waiting_;
    std::vector<Waiter*> validating_;  // acquirers waiting for a hand-out ping
    Workers workers_;
    std::unique_ptr<CondVar> schedule_wake_ = std::make_unique<CondVar>();
    bool close_done_ = false;  // the first close() has finished: later ones may return
    std::unique_ptr<CondVar> close_done_wake_ = std::make_unique<CondVar>();
    typename Sync::thread scheduler_;
    ConnectBackoff<Clock> backoff_;
    std::uint64_t random_ =  // seeded per pool and per run
        reinterpret_cast<std::uintptr_t>(this) ^
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    int open_ = 0;             // connections open or being opened: the count maxconnections bounds
    int connecting_ = 0;       // slots whose connect is in flight
    int caller_connects_ = 0;  // of those, connects run by the acquirer that will use them
    int attempting_ = 0;       // connect attempts in flight (slots' and borrowers' reconnects)

    std::uint64_t created_ = 0;
    std::uint64_t closed_count_ = 0;
    std::uint64_t reconnects_ = 0;
    std::uint64_t timeouts_ = 0;
    std::uint64_t exhausted_ = 0;
    std::uint64_t failed_connects_ = 0;
    std::uint64_t leaks_ = 0;
    std::uint64_t shared_handouts_ = 0;
    DurationSummary acquire_wait_;

    mutable CallbackGate<Sync> callbacks_;
};

}  // namespace dbpool::detail

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
    void start();

    const PoolOptions& options() const noexcept { return options_; }

    const std::shared_ptr<const Creator<Connection>>& creator() const noexcept { return creator_; }

    // --- acquiring ---------------------------------------------------------------------------

    // A connection for the calling thread, pinged per bit 1 when stale. Throws pool_closed,
    // pool_exhausted, timeout or connect_failed.
    Slot& acquire(AcquireSite site);

    // A connection that may be shared with other threads (maxshared > 0, thread-safe types).
    Slot& acquire_shared(AcquireSite site);

    // --- returning ---------------------------------------------------------------------------

    // A borrowed connection comes back (the one verb for it). `discard` closes it. Sharers
    // return their share; the last one returns the connection. Never throws.
    void give_back(Slot& slot, bool shared, bool discard) noexcept;

    // --- closing -----------------------------------------------------------------------------

    // Refuses new requests, wakes every waiter with pool_closed, stops maintenance and closes
    // idle connections; borrowed ones are closed when they come back, those in a worker's
    // hands when its I/O ends. Waits for I/O in flight at most PoolWorkers::close_grace.
    //
    // When it returns, on every thread that called it, no callback of the pool runs any more
    // (the callbacks' objects may go): a second close() waits for the first to finish. Except
    // in a callback of this pool, which the first close() itself waits for.
    void close() noexcept;

    // --- observing ---------------------------------------------------------------------------

    PoolStats stats() const;

    // --- maintenance -------------------------------------------------------------------------

    // One maintenance pass now, its I/O on this thread (for background_maintenance = false).
    void run_maintenance() { maintain(true); }

    // --- ConnectionSource: every connection of the pool opens and closes here ----------------

    std::unique_ptr<Connection> connect(bool replacing) override;

    void disconnect(std::unique_ptr<Connection> connection) noexcept override;

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
    static void prepare_thread();

    // An idle slot, claimed without the lock: first those this thread returned last (no state
    // shared by all threads), then any. Not while the oldest waiter is due a hand-off: then the
    // next free connection is its (bounded hand-off, see WaitQueue).
    Slot* claim_fast() noexcept;

    // Whether an owned connection may go to its borrower as it is: not past its lifetime, and
    // used recently enough to skip the hand-out ping.
    bool ready(const Slot& slot, TimePoint now) const noexcept {
        return !lifetime_over(slot, now) && !needs_ping(slot, now);
    }

    bool needs_ping(const Slot& slot, TimePoint now) const noexcept;

    Slot& acquire_slow(AcquireSite site, Slot* candidate, WaitPoint deadline);

    // Waits for a connection: an idle one, one handed over by a returner, or a new one opened
    // by a worker for the waiters. The result is owned (in_use). Throws pool_closed,
    // pool_exhausted, timeout or connect_failed (connects back off and nothing is in use that
    // could come back).
    //
    // Only the oldest waiter looks for a free connection; the others sleep until they are the
    // oldest. The oldest sleeps until a returner hands it a connection or wakes it, until it is
    // due a hand-off (then returners hand it the next one), or until its deadline.
    Slot& wait_for_slot(Waiter& waiter, WaitPoint deadline, std::shared_ptr<PooledCore>& self);

    // Pings an owned connection on a worker before it is handed out, waiting at most until
    // `deadline`. True: alive and ours. False: dead (a worker closes it). Throws timeout or
    // pool_closed; the ping goes on, and its connection is offered to the pool when it ends.
    bool validate_hand_out(Slot& slot, Waiter& waiter, WaitPoint deadline,
                           std::shared_ptr<PooledCore>& self);

    void run_validation(Slot& slot, Ticket& ticket) noexcept;

    // Pings a shared connection on a worker; the others keep using it meanwhile. True: alive,
    // and our share stands. False: dead, our share was returned and nobody gets it again.
    bool ping_shared(Slot& slot, WaitPoint deadline);

    void hand_out(Slot& slot, AcquireSite site, TimePoint now) noexcept;

    // A sharer's return; true when it was the last share, so the connection itself comes back
    // (`discard` then says whether to close it).
    bool last_share(Slot& slot, bool& discard) noexcept;

    Slot* least_shared_locked() const noexcept;

    void account(Slot& slot, TimePoint now) noexcept;

    // --- offering and retiring ---------------------------------------------------------------

    // An available connection (owned, `returning`) goes to the oldest due waiter, or idle; or
    // it is closed when the pool is closed or keeps maxcached idle ones already. `opened` says
    // it was opened for the waiters, so the oldest gets it whether due or not.
    void offer(Slot& slot, bool opened) noexcept {
        Lock lock(*this);
        offer(slot, lock, opened);
    }

    void offer(Slot& slot, Lock& lock, bool opened) noexcept;

    // Closes an owned `retiring` slot's connection (network I/O, so no lock is held) and frees
    // its capacity. The slot's hold on the pool's state ends here: this may be the last one,
    // so callers never touch the pool afterwards.
    void retire(Slot& slot) noexcept {
        slot.steady.reset();  // closes through disconnect(): counted and reported
        free_capacity(slot, E::closed);
    }

    void free_capacity(Slot& slot, SlotEvent event) noexcept;

    // Opens the connection of a `connecting` slot (on a worker, or on the constructor's thread
    // with `rethrow`), then offers it; on failure the capacity is freed.
    void connect_slot(Slot& slot, bool for_waiters) {
        Lock lock = open_slot(slot, false);
        offer(slot, lock, for_waiters);
    }

    // Opens the connection of a `connecting` slot (`by_caller`: for the acquirer running it) and
    // returns with the lock held and the slot `returning`, for its opener to place. On failure
    // the capacity is freed and the error rethrown.
    Lock open_slot(Slot& slot, bool by_caller);

    // Opens a connection on the acquirer's own thread, for it alone, when nothing is idle, nobody
    // waits (it would be the first waiter), the pool is below its limit, connects are not
    // failing, and the creator promises to return within the acquirer's deadline: the connect
    // is then as bounded as the wait it replaces. Otherwise (null) a worker connects and the
    // acquirer waits. A connection that starts on the thread using it keeps that thread and
    // the server's end of it scheduled together: opened on a worker and handed over, 8 threads
    // on a pool of 8 served 20-30% fewer PostgreSQL requests (docs/benchmarks.md).
    // Throws connect_failed (counted, the back-off told, the capacity freed) or pool_closed.
    Slot* connect_for_caller(WaitPoint deadline);

    // connect_for_caller(), except that a refused connect does not end a blocking acquire while
    // a borrowed connection can come back: the database may be up but full (at its
    // max_connections), and the caller then waits like anyone else (wait_for_slot decides).
    Slot* try_connect_for_caller(WaitPoint deadline);

    // Connects for the waiters: one per waiter that no connect in flight covers yet, within
    // maxconnections. While connects fail, one attempt at a time probes the database, and none
    // starts before the back-off allows.
    void connect_for_waiters_locked();

    // Queues the connect of a slot just reserved, for a worker that worker_ready_locked()
    // promised; when queueing fails (no memory), the reservation is undone before the error
    // goes on, so no slot stays `connecting` with no connect to run.
    void post_connect_locked(Slot& slot, bool for_waiters);

    // Undoes reserve_locked() (nothing was started for the slot). The slot's hold on the pool
    // is never the last one here: the caller is inside the pool, held by its own caller.
    void unreserve_locked(Slot& slot) noexcept;

    Slot& reserve_locked();

    bool at_limit_locked() const noexcept {
        return options_.maxconnections > 0 && open_ >= options_.maxconnections;
    }

    // An idle slot, claimed; `pending` when none was found but one is mid-return.
    Slot* claim_idle_locked(bool& pending) noexcept;

    // Every idle slot, claimed for closing; waits for slots that are mid-return. Each slot is
    // judged by one read, the compare-and-swap's: a return that goes idle between two reads
    // would otherwise be neither claimed nor waited for, and never closed.
    std::vector<Slot*> claim_all_idle(Lock& lock);

    StateCounts count_states_locked() const noexcept;

    void record_wait_locked(WaitPoint since) noexcept;

    // --- errors that explain themselves ------------------------------------------------------

    PoolPicture picture_locked() const;

    Error timeout(Lock& lock, WaitPoint since);

    Error exhausted(Lock& lock);

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
    void schedule() noexcept;  // NOLINT(bugprone-exception-escape): see its definition

    // One pass: retire expired and surplus idle connections, ping stale idle ones, report leaks
    // and open connections up to mincached. Decided under the lock; the I/O runs on this thread
    // (`inline_io`) or on pool workers.
    void maintain(bool inline_io);

    // Opens connections up to mincached (retired ones no longer count once closed; with the
    // I/O on workers, each close wakes maintenance to refill). Never while connects back off.
    void refill(bool inline_io);

    void connect_quietly(Slot& slot, bool for_waiters) noexcept;

    void run_keepalive(Slot& slot) noexcept;

    void collect_leak(Slot& slot, TimePoint now, std::vector<LeakReport>& leaks);

    void report_leak(const LeakReport& report) noexcept;

    bool lifetime_over(const Slot& slot, TimePoint now) const noexcept;

    std::int64_t jittered_lifetime_ticks();

    // splitmix64: enough to spread expiries, and spares every includer <random>'s compile cost.
    std::uint64_t next_random();

    // --- workers and events ------------------------------------------------------------------

    // Whether a pool worker will run the next task queued (PoolWorkers::reserve_locked): false
    // after close(), and when no worker thread can be started and none runs. The caller queues
    // its task with workers_.push_locked() only after true, and prepares nothing before asking
    // that it could not undo.
    bool worker_ready_locked();

    // No worker could be started for a connect: counted as a failed connect attempt, so the
    // back-off spaces the retries and waiters that nothing can serve are told, as when the
    // database refuses.
    void worker_refused_locked();

    static Error no_worker_error(const char* task);

    void emit(EventKind kind, const std::string& detail) const noexcept {
        if (options_.on_event) callbacks_.call(options_.on_event, PoolEvent{kind, detail});
    }

    void recover_after_fork() noexcept;

    // A handle borrowed before fork() comes back in the child: it lets go of its slot, which is
    // never reused. A dedicated one had the only handle, so its hold on the pool ends here.
    void let_go_of_orphan(Slot& slot, bool shared) noexcept;

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

// The member functions, one header per job (each also compiles on its own).
#include <dbpool/detail/pooled_core_acquire.hpp>
#include <dbpool/detail/pooled_core_close.hpp>
#include <dbpool/detail/pooled_core_connect.hpp>
#include <dbpool/detail/pooled_core_diagnostics.hpp>
#include <dbpool/detail/pooled_core_fork.hpp>
#include <dbpool/detail/pooled_core_maintenance.hpp>
#include <dbpool/detail/pooled_core_return.hpp>
#include <dbpool/detail/pooled_core_sharing.hpp>

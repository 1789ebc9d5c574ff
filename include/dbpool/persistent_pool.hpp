#pragma once

/// \file
/// PersistentPool (DBUtils' PersistentDB): one steady connection per thread (or per context of
/// a policy's choosing), and its handle PersistentConnection.

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/affinity.hpp>
#include <dbpool/detail/connection_source.hpp>
#include <dbpool/detail/creator.hpp>
#include <dbpool/detail/fork_generation.hpp>
#include <dbpool/detail/handle_forwarding.hpp>
#include <dbpool/detail/persistent_invariants.hpp>
#include <dbpool/detail/pool_lock.hpp>
#include <dbpool/detail/sync.hpp>
#include <dbpool/detail/validate_options.hpp>
#include <dbpool/error.hpp>
#include <dbpool/options.hpp>
#include <dbpool/persistent_context.hpp>
#include <dbpool/pool_stats.hpp>
#include <dbpool/steady_connection.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dbpool {

namespace detail {

// Whoever sets `closed_bit` while no handle is out closes the connection; otherwise the last
// handle does. So a thread exit and a pool close may race, and exactly one of them closes.
inline constexpr int persistent_closed_bit = 1 << 30;

// Where a PersistentPool's thread connections come from and go, and the one count of those
// open now. A SteadyConnection opens, closes and abandons only through its source, so the count
// is exact whichever path it takes: a broken statement, reconnect(), maxusage, a closeable
// close(), thread exit, pool close, fork().
template <class Connection>
class PersistentSource final : public ConnectionSource<Connection> {
public:
    PersistentSource(std::shared_ptr<const Creator<Connection>> creator,
                     std::vector<std::string> setsession)
        : creator_(std::move(creator)), setsession_(std::move(setsession)) {}

    std::unique_ptr<Connection> connect(bool replacing) override {
        std::unique_ptr<Connection> connection;
        try {
            connection = open_connection(*creator_, setsession_);
        } catch (...) {
            failed_.fetch_add(1, std::memory_order_relaxed);
            throw;
        }
        open_.fetch_add(1, std::memory_order_relaxed);
        created_.fetch_add(1, std::memory_order_relaxed);
        if (replacing) reconnects_.fetch_add(1, std::memory_order_relaxed);
        return connection;
    }

    void disconnect(std::unique_ptr<Connection> connection) noexcept override {
        if (!connection) return;
        ConnectionTraits<Connection>::close(*connection);
        count_closed();
    }

    void abandon(std::unique_ptr<Connection> connection) noexcept override {
        if (!connection) return;
        ConnectionSource<Connection>::abandon(std::move(connection));
        count_closed();
    }

    // Statistics: relaxed, exact once the threads that open and close are quiet.
    std::size_t open() const noexcept { return open_.load(std::memory_order_relaxed); }

    // The counters of PoolStats a PersistentPool keeps (see PersistentPool::stats).
    void add_counters(PoolStats& stats) const noexcept {
        stats.created = created_.load(std::memory_order_relaxed);
        stats.closed = closed_.load(std::memory_order_relaxed);
        stats.reconnects = reconnects_.load(std::memory_order_relaxed);
        stats.failed_connects = failed_.load(std::memory_order_relaxed);
    }

private:
    void count_closed() noexcept {
        open_.fetch_sub(1, std::memory_order_relaxed);
        closed_.fetch_add(1, std::memory_order_relaxed);
    }

    std::shared_ptr<const Creator<Connection>> creator_;
    std::vector<std::string> setsession_;
    std::atomic<std::size_t> open_{0};
    std::atomic<std::uint64_t> created_{0};
    std::atomic<std::uint64_t> closed_{0};
    std::atomic<std::uint64_t> reconnects_{0};
    std::atomic<std::uint64_t> failed_{0};
};

template <class Steady>
struct PersistentSlot;

// The synchronisation of a PersistentPool's shared state: its Clock's (sync.hpp), so that the
// schedule explorer of the tests can run the real registry and slot code.
template <class Steady>
using PersistentSync = sync_of_t<typename Steady::clock_type>;

// What a pool and its threads share; threads hold it weakly, so either may go first.
template <class Steady>
struct PersistentRegistry {
    using Mutex = typename PersistentSync<Steady>::mutex;

    Mutex mutex;
    ForkLockFor<Mutex> fork_lock{mutex};
    // Every open slot of a context that has not ended, once each, under `mutex`. Invariants
    // (PersistentInvariants, at the end of each locked section in test builds): a listed slot is
    // open, belongs to this pool, and has not been handed to its handles (whoever takes it out
    // does that, in the section that marks it closed or after it); a closed pool lists none.
    std::vector<std::shared_ptr<PersistentSlot<Steady>>> slots;
    bool closed = false;
    std::atomic<unsigned> fork_generation{detail::fork_generation()};

    // In a child after fork(): every inherited connection uses the parent's socket. Forget them
    // without sending anything; this thread's reopens on its next use. A parent thread may have
    // been inside another thread's connection at the fork: never take a connection's lock here.
    void check_fork() noexcept {
        const unsigned now = detail::fork_generation();
        if (fork_generation.load(std::memory_order_relaxed) == now) return;
        std::lock_guard<Mutex> lock(mutex);
        if (fork_generation.load(std::memory_order_relaxed) == now) return;
        for (const auto& slot : slots) {
            if (slot->steady) slot->steady->abandon_after_fork();
        }
        fork_generation.store(now, std::memory_order_relaxed);
    }
};

// One context's (by default one thread's) connection to one pool.
//
// Ownership: shared_ptr from the context's table (ThreadSlots, ContextSlots; for a keyed
// context the pool's map of keys) while it lives, from the registry while the pool is open,
// and from close() while it closes it. Handles hold a raw pointer, counted in `state`; it stays
// valid because the table outlives every handle counted in `state`, or, when the table ends
// first (a thread_local handle destroyed after it), the table hands its reference to
// `owner_for_handles` and the last handle gives it up. Handles and a thread's or storage
// context's table belong to one thread of control, so that hand-off needs no synchronisation;
// a keyed context's hand-off (end_context(), close()) is made under the registry's lock before
// the closed bit is set, and a handle reads it only after seeing that bit (acq_rel on `state`).
template <class Steady>
struct PersistentSlot {
    using Source = PersistentSource<typename Steady::connection_type>;
    static constexpr int closed_bit = persistent_closed_bit;

    std::shared_ptr<Source> source;  // declared before `steady`, which closes through it
    std::unique_ptr<Steady> steady;
    // Handles out on the owning thread, plus persistent_closed_bit.
    typename PersistentSync<Steady>::template atomic<int> state{0};
    // The transaction guard (PersistentConnection::begin): which handle's begin() is open: the
    // live handle's address, ended_owner() once that handle has ended with it open, or null
    // (commit() or rollback() through a handle ended it, or no handle began one). A handle moves
    // it along when it is moved, so it never names a dead handle. Only the context that owns the
    // slot touches it, one handle at a time: no synchronisation. Next to `state`, which every
    // handle's end touches anyway.
    const void* tx_owner = nullptr;
    bool thread_keyed = true;  // which pool to suggest when the guard refuses
    std::weak_ptr<PersistentRegistry<Steady>> registry;
    std::shared_ptr<PersistentSlot> owner_for_handles;  // set once the table has let go

    // tx_owner of a transaction whose handle has ended: the slot's address, which no handle has.
    const void* ended_owner() const noexcept { return this; }

    // Marks the slot closed; true when the caller must close the connection now.
    bool mark_closed() noexcept {
        const int before = state.fetch_or(persistent_closed_bit, std::memory_order_acq_rel);
        return (before & persistent_closed_bit) == 0 && before == 0;
    }

    void close_connection() noexcept { steady.reset(); }

    bool handles_out() const noexcept {
        return (state.load(std::memory_order_acquire) & ~persistent_closed_bit) != 0;
    }

    bool closed() const noexcept {
        return (state.load(std::memory_order_acquire) & persistent_closed_bit) != 0;
    }

    // Ends one handle; the last one after a close closes the connection and, when the thread's
    // table is gone, frees the slot (so nothing may touch it after this returns).
    void release_handle() noexcept {
        const int after = state.fetch_sub(1, std::memory_order_acq_rel) - 1;
        if (after != persistent_closed_bit) return;
        close_connection();
        const auto last_owner = std::move(owner_for_handles);  // may free *this on return
    }
};

// One context's slots (one per pool it used), closed when the context ends: the table of a
// thread (ThreadSlots) or of a storage-kind context (its policy's local<T>() destroys it).
template <class Steady>
class ContextSlots {
public:
    using Slot = PersistentSlot<Steady>;

    struct Entry {
        std::uint64_t pool_id;
        std::shared_ptr<Slot> slot;
    };

    ContextSlots() = default;
    ContextSlots(const ContextSlots&) = delete;
    ContextSlots& operator=(const ContextSlots&) = delete;

    ~ContextSlots() {
        for (const Entry& entry : entries)
            end_slot(entry.slot);
    }

    // This context's slot of the pool `pool_id`, or null.
    Slot* find(std::uint64_t pool_id) const noexcept {
        for (const Entry& entry : entries) {
            if (entry.pool_id == pool_id) return entry.slot.get();
        }
        return nullptr;
    }

    // Forgets the entries of destroyed pools (once this context holds no handle to their
    // connection), so a long-lived context that uses many short-lived pools keeps entries for
    // the live ones only. A destroyed pool's id is never reused, so nothing can reach them.
    void prune() noexcept {
        const auto dead = [](const Entry& entry) {
            return !entry.slot->handles_out() && entry.slot->registry.expired();
        };
        entries.erase(std::remove_if(entries.begin(), entries.end(), dead), entries.end());
    }

    std::vector<Entry> entries;

private:
    // The context ends: its pool forgets the slot, and the connection closes now, or when the
    // last of the context's handles still out ends (those are destroyed after this table, on
    // the same thread of control, so the hand-off needs no synchronisation).
    static void end_slot(const std::shared_ptr<Slot>& owned) noexcept {
        Slot& slot = *owned;
        if (auto registry = slot.registry.lock()) {
            std::lock_guard<typename PersistentRegistry<Steady>::Mutex> lock(registry->mutex);
            auto& all = registry->slots;
            all.erase(std::remove(all.begin(), all.end(), owned), all.end());
        }
        if (slot.handles_out()) slot.owner_for_handles = owned;
        if (slot.mark_closed()) slot.close_connection();
    }
};

// One per thread: the slots this thread opened, closed when the thread ends.
template <class Steady>
class ThreadSlots : public ContextSlots<Steady> {
public:
    ThreadSlots() = default;
    ThreadSlots(const ThreadSlots&) = delete;
    ThreadSlots& operator=(const ThreadSlots&) = delete;

    // The base's destructor then closes the slots.
    ~ThreadSlots() {
        // A later use on this thread (a thread_local's destructor) must not come here.
        ended() = true;
        for (const auto& entry : this->entries) {
            // The cache points into this table: a later use must not find it there.
            AffinityEntry& cached = affinity_entry(entry.pool_id);
            if (cached.pool_id == entry.pool_id) cached = AffinityEntry{};
        }
    }

    // Whether this thread's table was destroyed (the thread is ending). Trivially
    // destructible, so it can still be read by the thread_local destructors that run later.
    static bool& ended() noexcept {
        thread_local bool value = false;
        return value;
    }
};

}  // namespace detail

template <class Connection, class Clock, class Context>
class PersistentPool;

/// This context's connection of a PersistentPool (by default this thread's). Keep it in the
/// context that got it; several handles in one context share the connection. The destructor
/// leaves the connection open for the context's next use; close() closes it only when the pool
/// is closeable.
template <class Connection, class Clock = std::chrono::steady_clock>
class PersistentConnection
    : public detail::HandleForwarding<PersistentConnection<Connection, Clock>,
                                      SteadyConnection<Connection, Clock>> {
    using Slot = detail::PersistentSlot<SteadyConnection<Connection, Clock>>;
    using Forwarding =
        detail::HandleForwarding<PersistentConnection, SteadyConnection<Connection, Clock>>;

public:
    /// The protected connection type reached through `->`.
    using steady_type = SteadyConnection<Connection, Clock>;

    /// Takes over `other`'s reference (and its open transaction, for the guard of begin());
    /// `other` is left empty.
    PersistentConnection(PersistentConnection&& other) noexcept
        : Forwarding(), slot_(std::exchange(other.slot_, nullptr)) {
        take_transaction_from(other);
    }

    /// Ends this handle, then takes over `other`'s reference.
    PersistentConnection& operator=(PersistentConnection&& other) noexcept {
        if (this != &other) {
            release();
            slot_ = std::exchange(other.slot_, nullptr);
            take_transaction_from(other);
        }
        return *this;
    }

    PersistentConnection(const PersistentConnection&) = delete;
    PersistentConnection& operator=(const PersistentConnection&) = delete;

    /// Ends this handle; the context keeps its connection.
    ~PersistentConnection() { release(); }

    /// Ends the handle. Closes the connection only if the pool is closeable (DBUtils'
    /// PersistentDB ignores close() otherwise, rolling back an open transaction). Never throws.
    void close() noexcept {
        if (slot_ == nullptr) return;
        slot_->steady->close();
        release();
    }

    /// Whether this handle still refers to a connection.
    bool is_open() const noexcept { return slot_ != nullptr; }

    /// Starts a transaction (see SteadyConnection::begin), unless another handle of this
    /// connection began one that is still open, whether that handle is alive or has ended.
    /// Several handles of a context share its connection, and a helper may join the caller's
    /// transaction, but a second begin() through another live handle means two tasks (fibers,
    /// coroutines) interleave on one thread's connection; and a begin() over a transaction whose
    /// handle has ended would end that transaction with its work half done (MySQL's BEGIN
    /// commits it). commit() and rollback() through any handle stay allowed.
    ///
    /// Throws Error{usage} in those cases, sending nothing (the other transaction goes on), and
    /// whatever SteadyConnection::begin throws. The guard sees only begin() through a handle
    /// (also a Transaction over the handle), not `handle->begin()` or a Transaction over
    /// `*handle`.
    void begin() {
        Slot& slot = checked_slot();
        if (slot.tx_owner != nullptr && slot.tx_owner != this && slot.steady->in_transaction()) {
            if (slot.tx_owner == slot.ended_owner()) throw ended_owner_error(slot);
            throw interleaved_error(slot);
        }
        slot.steady->begin();
        slot.tx_owner = this;
    }

    /// Commits (see SteadyConnection::commit); any handle of the connection may end its
    /// transaction.
    void commit() {
        Slot& slot = checked_slot();
        slot.tx_owner = nullptr;
        slot.steady->commit();
    }

    /// Rolls back (see SteadyConnection::rollback); any handle of the connection may end its
    /// transaction.
    void rollback() {
        Slot& slot = checked_slot();
        slot.tx_owner = nullptr;
        slot.steady->rollback();
    }

private:
    template <class, class, class>
    friend class PersistentPool;
    friend Forwarding;

    explicit PersistentConnection(Slot* slot) noexcept : slot_(slot) {}

    Slot& checked_slot() const {
        if (slot_ == nullptr) {
            throw Error(ErrorCode::handle_closed,
                        "dbpool: this persistent connection handle was already closed");
        }
        return *slot_;
    }

    steady_type& checked_steady() const { return *checked_slot().steady; }

    static Error interleaved_error(const Slot& slot) {
        const char* owner = slot.thread_keyed ? "this thread's" : "this context's";
        return Error(
            ErrorCode::usage,
            std::string("dbpool: begin() through a PersistentConnection while another handle of ") +
                owner +
                " connection has a transaction open. The handles share one connection, so this "
                "is most likely two fibers or coroutines running on one thread (or a helper that "
                "begins its own transaction inside its caller's): their statements would "
                "interleave in one transaction. Give each task its own connection: a "
                "PersistentPool keyed by the task (dbpool::BoostFiberContext from "
                "<dbpool/contexts/boost_fiber.hpp>, or a keyed context policy, see "
                "<dbpool/persistent_context.hpp>) or a PooledPool; a helper should join the "
                "caller's transaction without calling begin().");
    }

    static Error ended_owner_error(const Slot& slot) {
        const char* owner = slot.thread_keyed ? "this thread's" : "this context's";
        return Error(
            ErrorCode::usage,
            std::string("dbpool: begin() through a PersistentConnection while a transaction "
                        "begun through another handle of ") +
                owner +
                " connection, a handle that no longer exists, is still open. A BEGIN now would "
                "end that transaction with its work half done (MySQL commits it). Most likely "
                "the handle that began it went out of scope without commit() or rollback() (an "
                "early return, or an exception past a begin(); a dbpool::Transaction over the "
                "handle rolls back on the way out), or two tasks (coroutines) take turns on one "
                "thread's connection with a handle per step (give each task its own connection: "
                "a keyed PersistentPool or a PooledPool). Commit or roll it back through any "
                "handle of the connection (this one's commit() or rollback()) before beginning "
                "again.");
    }

    // After a move: the transaction `other` began is this handle's now.
    void take_transaction_from(const PersistentConnection& other) noexcept {
        if (slot_ != nullptr && slot_->tx_owner == &other) slot_->tx_owner = this;
    }

    void release() noexcept {
        Slot* slot = std::exchange(slot_, nullptr);
        if (slot == nullptr) return;
        // An open transaction outlives the handle that began it (PersistentDB lets a later
        // handle of the context commit it, and a keyed context's next step does), but a later
        // begin() over it would end it half done: the guard remembers that its handle ended.
        if (slot->tx_owner == this) slot->tx_owner = slot->ended_owner();
        slot->release_handle();
    }

    // The handle is this pointer only, as before the guard: the guard identifies a handle by
    // its address (PersistentSlot::tx_owner).
    Slot* slot_ = nullptr;  // counted in slot_->state, which keeps it alive (PersistentSlot)
};

/// One steady connection per context per pool (DBUtils' PersistentDB, whose `threadlocal=` is
/// the `Context` policy here; see <dbpool/persistent_context.hpp>). The connection is closed
/// when its context ends (a thread exits; a storage context's local data is destroyed;
/// end_context() for a keyed context) or when the pool is closed or destroyed, whichever comes
/// first. Thread-safe.
///
/// With the default ThreadContext the per-thread lookup is a thread_local cache; with a storage
/// policy it is the policy's local<T>() and a scan of that context's few entries; with a keyed
/// policy it takes the pool's lock and a hash lookup per connection().
template <class Connection, class Clock = std::chrono::steady_clock, class Context = ThreadContext>
class PersistentPool {
    using Traits = ConnectionTraits<Connection>;
    using Steady = SteadyConnection<Connection, Clock>;
    using Slot = detail::PersistentSlot<Steady>;
    using Registry = detail::PersistentRegistry<Steady>;
    using Source = detail::PersistentSource<Connection>;
    using Kind = detail::ContextKind;
    static constexpr Kind kind = detail::context_kind<Context>();
    using Key = typename detail::ContextKey<Context>::type;
    // The registry's lock, checking the invariants at the end of each section in test builds.
    using Sync = detail::PersistentSync<Steady>;
    using Lock = detail::PoolLock<PersistentPool, typename Registry::Mutex>;
    friend Lock;
    friend struct detail::PersistentInvariants<PersistentPool>;

public:
    /// The handle connection() returns.
    using handle_type = PersistentConnection<Connection, Clock>;
    /// The protected connection type.
    using steady_type = Steady;
    /// What one context is (ThreadContext, or the application's policy).
    using context_type = Context;

    /// Validates the options; connections open lazily, one per context on first use.
    template <class Creator,
              class = std::enable_if_t<!std::is_same_v<std::decay_t<Creator>, PersistentPool>>>
    explicit PersistentPool(Creator&& creator, PersistentOptions options = {})
        : creator_(detail::make_creator<Connection>(std::forward<Creator>(creator))),
          options_(std::move(options)),
          source_(std::make_shared<Source>(creator_, options_.setsession)),
          registry_(std::make_shared<Registry>()),
          pool_id_(detail::next_pool_id()) {
        detail::validate(static_cast<const SteadyOptions&>(options_));
    }

    PersistentPool(const PersistentPool&) = delete;
    PersistentPool& operator=(const PersistentPool&) = delete;

    /// Closes every context's connection.
    ~PersistentPool() { close(); }

    /// This context's connection, opened on first use; pinged per the ping bits. Throws
    /// Error{pool_closed} or Error{connect_failed}. With ThreadContext, called while the thread
    /// ends (from a thread_local's destructor that runs after the pool's per-thread state is
    /// gone), it opens a connection that is closed when its handle ends.
    ///
    /// \par Thread-safety
    /// Any thread; each context gets its own connection, and its handle must stay in that
    /// context (a fiber or a keyed context may move between threads with its handle).
    ///
    /// \par Exception safety
    /// Strong: when it throws, the context holds no handle; a later call opens the connection
    /// again.
    handle_type connection() {
        registry_->check_fork();
        if constexpr (kind == Kind::keyed) {
            return keyed_connection();
        } else {
            Slot* slot = nullptr;
            if constexpr (kind == Kind::thread) {
                slot = find_slot();
                if (slot == nullptr) return connection_at_thread_exit();
            } else {
                slot = find_storage_slot();
            }
            int state = slot->state.load(std::memory_order_relaxed);
            do {
                if ((state & detail::persistent_closed_bit) != 0) throw closed_error();
            } while (!slot->state.compare_exchange_weak(state, state + 1, std::memory_order_acquire,
                                                        std::memory_order_relaxed));
            handle_type handle(slot);
            slot->steady->check_on_request();  // reopens after a closeable close()
            return handle;
        }
    }

    /// Keyed contexts only: the context `key` has ended; its connection is closed now, or when
    /// its last handle still out ends. A later connection() for the same key opens a new one.
    /// Does nothing for an unknown key or after close(). Never throws.
    ///
    /// \par Thread-safety
    /// Any thread.
    template <class C = Context,
              class = std::enable_if_t<detail::context_kind<C>() == detail::ContextKind::keyed>>
    void end_context(const Key& key) noexcept {
        std::shared_ptr<Slot> slot;
        {
            Lock lock(*this);
            const auto found = keyed_.find(key);
            if (found == keyed_.end()) return;
            slot = std::move(found->second);
            keyed_.erase(found);
            auto& all = registry_->slots;
            all.erase(std::remove(all.begin(), all.end(), slot), all.end());
            slot->owner_for_handles = slot;  // given up by the last handle (PersistentSlot)
            if (!slot->mark_closed()) return;
        }
        slot->close_connection();  // network I/O: no lock held
        slot->owner_for_handles.reset();
    }

    /// A new unpooled steady connection with the pool's creator and options.
    std::unique_ptr<Steady> steady_connection() const {
        return std::make_unique<Steady>(creator_, options_);
    }

    /// Closes every context's connection (a connection in use is closed when its handle ends)
    /// and refuses further requests. Idempotent; never throws.
    void close() noexcept {
        registry_->check_fork();  // a child must not close the parent's connections
        std::vector<std::shared_ptr<Slot>> closing;
        {
            Lock lock(*this);
            if (registry_->closed) return;
            registry_->closed = true;
            for (const auto& slot : registry_->slots) {
                // A keyed slot has no other owner than this pool: its handles take it over.
                if constexpr (kind == Kind::keyed) slot->owner_for_handles = slot;
                if (slot->mark_closed()) closing.push_back(slot);
            }
            registry_->slots.clear();
            if constexpr (kind == Kind::keyed) keyed_.clear();
        }
        for (const auto& slot : closing) {
            slot->close_connection();  // network I/O: no lock held
            if constexpr (kind == Kind::keyed) slot->owner_for_handles.reset();
        }
    }

    /// How many context connections are open right now (counted where they open and close).
    std::size_t open_connections() const noexcept { return source_->open(); }

    /// A snapshot, for every kind of context: `total` (open connections, as
    /// open_connections()), `in_use` (contexts holding a handle now, counted as one each),
    /// `idle` (open connections no handle holds), `created`, `closed`, `reconnects` (reopened in
    /// place: broken, maxusage, after a closeable close()) and `failed_connects`. The fields
    /// about waiting and limits stay 0: a PersistentPool has no limit and never waits.
    ///
    /// \par Thread-safety
    /// Any thread; takes the pool's lock briefly (no I/O). The counts are exact once the
    /// contexts are quiet.
    PoolStats stats() const {
        PoolStats stats;
        source_->add_counters(stats);
        stats.total = source_->open();
        {
            Lock lock(*this);
            for (const auto& slot : registry_->slots) {
                if (slot->handles_out()) ++stats.in_use;
            }
        }
        stats.in_use = std::min(stats.in_use, stats.total);
        stats.idle = stats.total - stats.in_use;
        return stats;
    }

    /// The validated options.
    const PersistentOptions& options() const noexcept { return options_; }

private:
    // This thread's slot, or null when the thread's table is gone (the thread is ending).
    Slot* find_slot() {
        detail::AffinityEntry& cached = detail::affinity_entry(pool_id_);
        if (cached.pool_id == pool_id_) return static_cast<Slot*>(cached.slot);
        if (detail::ThreadSlots<Steady>::ended()) return nullptr;
        Slot* slot = find_or_open_slot();
        cached = detail::AffinityEntry{pool_id_, slot};
        return slot;
    }

    Slot* find_or_open_slot() {
        thread_slots_guard();
        return find_or_open_in(thread_slots());
    }

    // The current storage context's slot, opened on first use. (A template, as is
    // keyed_connection(): instantiated only for the kind of Context that has it, so an explicit
    // instantiation of the pool compiles for every kind.)
    template <class C = Context>
    Slot* find_storage_slot() {
        thread_slots_guard();  // a fiber may run on any thread
        return find_or_open_in(C::template local<detail::ContextSlots<Steady>>());
    }

    Slot* find_or_open_in(detail::ContextSlots<Steady>& slots) {
        if (Slot* found = slots.find(pool_id_)) return found;
        slots.prune();
        auto slot = open_slot();
        {
            Lock lock(*this);
            if (registry_->closed) throw closed_error();  // the new connection closes on unwind
            registry_->slots.push_back(slot);
        }
        slots.entries.push_back({pool_id_, slot});
        return slot.get();
    }

    // A keyed context's slot lives in `keyed_`; it is found and counted under the registry's
    // lock, where end_context() and close() also close it, so a slot found there is open.
    template <class C = Context>
    handle_type keyed_connection() {
        thread_slots_guard();  // a keyed context may run on any thread
        const Key key = C::current();
        Slot* slot = nullptr;
        std::shared_ptr<Slot> opened;  // destroyed (closed) after the lock if another won
        {
            Lock lock(*this);
            if (registry_->closed) throw closed_error();
            const auto found = keyed_.find(key);
            if (found != keyed_.end()) slot = acquire_locked(*found->second);
        }
        if (slot == nullptr) {
            opened = open_slot();  // connects: no lock held
            Lock lock(*this);
            if (registry_->closed) throw closed_error();
            const auto placed = keyed_.emplace(key, opened);
            if (placed.second) registry_->slots.push_back(opened);
            slot = acquire_locked(*placed.first->second);
        }
        handle_type handle(slot);
        if (opened.get() != slot) opened.reset();
        slot->steady->check_on_request();  // reopens after a closeable close()
        return handle;
    }

    static Slot* acquire_locked(Slot& slot) noexcept {
        slot.state.fetch_add(1, std::memory_order_acquire);
        return &slot;
    }

    // After the thread's table is gone nothing would close a connection at thread exit: this
    // one belongs to its handle alone and is closed when the handle ends.
    handle_type connection_at_thread_exit() {
        thread_slots_guard();
        auto slot = open_slot();
        slot->state.store(1 | detail::persistent_closed_bit, std::memory_order_relaxed);
        slot->owner_for_handles = slot;
        return handle_type(slot.get());
    }

    // A new slot with its connection open (connects; may throw).
    std::shared_ptr<Slot> open_slot() {
        {
            Lock lock(*this);
            if (registry_->closed) throw closed_error();
        }
        auto slot = std::make_shared<Slot>();
        slot->registry = registry_;
        slot->source = source_;
        slot->thread_keyed = kind == Kind::thread;
        slot->steady = std::make_unique<Steady>(detail::FromSource{}, *source_, options_);
        return slot;
    }

    // The client library's per-thread state must outlive the thread's connections, and
    // thread_local objects are destroyed in reverse order of construction: set it up first.
    static void thread_slots_guard() {
        thread_local const bool prepared = [] {
            Traits::prepare_thread();
            return true;
        }();
        (void)prepared;
    }

    static detail::ThreadSlots<Steady>& thread_slots() {
        thread_local detail::ThreadSlots<Steady> slots;
        return slots;
    }

    // PoolLock's hooks.
    typename Registry::Mutex& pool_mutex() const noexcept { return registry_->mutex; }
    void check_invariants_locked() const noexcept {
        detail::PersistentInvariants<PersistentPool>::check(*this);
    }

    static Error closed_error() {
        return Error(ErrorCode::pool_closed, "dbpool: the persistent pool is closed");
    }

    // Keyed contexts only (empty otherwise): each key's slot, under registry_->mutex.
    // Invariants (PersistentInvariants, at the end of each locked section in test builds): a
    // slot found here is open, because end_context() and close() take it out in the locked
    // section that marks it closed; the slots here are exactly the registry's listed slots,
    // each under one key (one connection per live key, none for an ended key).
    using KeyedSlots =
        std::conditional_t<kind == Kind::keyed, std::unordered_map<Key, std::shared_ptr<Slot>>,
                           std::unordered_map<int, std::shared_ptr<Slot>>>;

    std::shared_ptr<const detail::Creator<Connection>> creator_;
    PersistentOptions options_;
    std::shared_ptr<Source> source_;  // shared with every slot: a connection may outlive the pool
    std::shared_ptr<Registry> registry_;
    const std::uint64_t pool_id_;
    KeyedSlots keyed_;
};

}  // namespace dbpool

#pragma once

/// \file
/// PersistentPool (DBUtils' PersistentDB): one steady connection per thread, and its handle
/// PersistentConnection.

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/affinity.hpp>
#include <dbpool/detail/connection_source.hpp>
#include <dbpool/detail/creator.hpp>
#include <dbpool/detail/fork_generation.hpp>
#include <dbpool/detail/handle_forwarding.hpp>
#include <dbpool/detail/validate_options.hpp>
#include <dbpool/error.hpp>
#include <dbpool/options.hpp>
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

    std::unique_ptr<Connection> connect(bool /*replacing*/) override {
        auto connection = open_connection(*creator_, setsession_);
        open_.fetch_add(1, std::memory_order_relaxed);
        return connection;
    }

    void disconnect(std::unique_ptr<Connection> connection) noexcept override {
        if (!connection) return;
        ConnectionTraits<Connection>::close(*connection);
        open_.fetch_sub(1, std::memory_order_relaxed);
    }

    void abandon(std::unique_ptr<Connection> connection) noexcept override {
        if (!connection) return;
        ConnectionSource<Connection>::abandon(std::move(connection));
        open_.fetch_sub(1, std::memory_order_relaxed);
    }

    // A statistic: relaxed, exact once the threads that open and close are quiet.
    std::size_t open() const noexcept { return open_.load(std::memory_order_relaxed); }

private:
    std::shared_ptr<const Creator<Connection>> creator_;
    std::vector<std::string> setsession_;
    std::atomic<std::size_t> open_{0};
};

template <class Steady>
struct PersistentSlot;

// What a pool and its threads share; threads hold it weakly, so either may go first.
template <class Steady>
struct PersistentRegistry {
    std::mutex mutex;
    ForkLockRegistration fork_lock{mutex};
    std::vector<std::shared_ptr<PersistentSlot<Steady>>> slots;
    bool closed = false;
    std::atomic<unsigned> fork_generation{detail::fork_generation()};

    // In a child after fork(): every inherited connection uses the parent's socket. Forget them
    // without sending anything; this thread's reopens on its next use. A parent thread may have
    // been inside another thread's connection at the fork: never take a connection's lock here.
    void check_fork() noexcept {
        const unsigned now = detail::fork_generation();
        if (fork_generation.load(std::memory_order_relaxed) == now) return;
        std::lock_guard<std::mutex> lock(mutex);
        if (fork_generation.load(std::memory_order_relaxed) == now) return;
        for (const auto& slot : slots) {
            if (slot->steady) slot->steady->abandon_after_fork();
        }
        fork_generation.store(now, std::memory_order_relaxed);
    }
};

// One thread's connection to one pool.
//
// Ownership: shared_ptr from the thread's table (ThreadSlots) while it lives, from the
// registry while the pool is open, and from close() while it closes it. Handles hold a raw
// pointer, counted in `state`; it stays valid because the table outlives every handle counted
// in `state`, or, when the table ends first (a thread_local handle destroyed after it), the
// table hands its reference to `owner_for_handles` and the last handle gives it up. Handles
// and the table belong to one thread, so that hand-off needs no synchronisation.
template <class Steady>
struct PersistentSlot {
    using Source = PersistentSource<typename Steady::connection_type>;

    std::shared_ptr<Source> source;  // declared before `steady`, which closes through it
    std::unique_ptr<Steady> steady;
    std::atomic<int> state{0};  // handles out on the owning thread, plus persistent_closed_bit
    std::weak_ptr<PersistentRegistry<Steady>> registry;
    std::shared_ptr<PersistentSlot> owner_for_handles;  // set once the table has let go

    // Marks the slot closed; true when the caller must close the connection now.
    bool mark_closed() noexcept {
        const int before = state.fetch_or(persistent_closed_bit, std::memory_order_acq_rel);
        return (before & persistent_closed_bit) == 0 && before == 0;
    }

    void close_connection() noexcept { steady.reset(); }

    bool handles_out() const noexcept {
        return (state.load(std::memory_order_acquire) & ~persistent_closed_bit) != 0;
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

// One per thread: the slots this thread opened, closed when the thread ends.
template <class Steady>
class ThreadSlots {
public:
    struct Entry {
        std::uint64_t pool_id;
        std::shared_ptr<PersistentSlot<Steady>> slot;
    };

    ThreadSlots() = default;
    ThreadSlots(const ThreadSlots&) = delete;
    ThreadSlots& operator=(const ThreadSlots&) = delete;

    ~ThreadSlots() {
        // A later use on this thread (a thread_local's destructor) must not come here.
        ended() = true;
        for (Entry& entry : entries) {
            // The cache points into this table: a later use must not find it there.
            AffinityEntry& cached = affinity_entry(entry.pool_id);
            if (cached.pool_id == entry.pool_id) cached = AffinityEntry{};
            PersistentSlot<Steady>& slot = *entry.slot;
            if (auto registry = slot.registry.lock()) {
                std::lock_guard<std::mutex> lock(registry->mutex);
                auto& all = registry->slots;
                all.erase(std::remove(all.begin(), all.end(), entry.slot), all.end());
            }
            // Handles of this thread still out are destroyed after this table: they own it now.
            if (slot.handles_out()) slot.owner_for_handles = entry.slot;
            if (slot.mark_closed()) slot.close_connection();
        }
    }

    // Forgets the entries of destroyed pools (once this thread holds no handle to their
    // connection), so a long-lived thread that uses many short-lived pools keeps entries for
    // the live ones only. A destroyed pool's id is never reused, so nothing can reach them.
    void prune() noexcept {
        const auto dead = [](const Entry& entry) {
            return !entry.slot->handles_out() && entry.slot->registry.expired();
        };
        entries.erase(std::remove_if(entries.begin(), entries.end(), dead), entries.end());
    }

    // Whether this thread's table was destroyed (the thread is ending). Trivially
    // destructible, so it can still be read by the thread_local destructors that run later.
    static bool& ended() noexcept {
        thread_local bool value = false;
        return value;
    }

    std::vector<Entry> entries;
};

}  // namespace detail

template <class Connection, class Clock>
class PersistentPool;

/// This thread's connection of a PersistentPool. Keep it on the thread that got it; several
/// handles on one thread share the connection. The destructor leaves the connection open for
/// the thread's next use; close() closes it only when the pool is closeable.
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

    /// Takes over `other`'s reference; `other` is left empty.
    PersistentConnection(PersistentConnection&& other) noexcept
        : Forwarding(), slot_(std::exchange(other.slot_, nullptr)) {}

    /// Ends this handle, then takes over `other`'s reference.
    PersistentConnection& operator=(PersistentConnection&& other) noexcept {
        if (this != &other) {
            release();
            slot_ = std::exchange(other.slot_, nullptr);
        }
        return *this;
    }

    PersistentConnection(const PersistentConnection&) = delete;
    PersistentConnection& operator=(const PersistentConnection&) = delete;

    /// Ends this handle; the thread keeps its connection.
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

private:
    friend class PersistentPool<Connection, Clock>;
    friend Forwarding;

    explicit PersistentConnection(Slot* slot) noexcept : slot_(slot) {}

    steady_type& checked_steady() const {
        if (slot_ == nullptr) {
            throw Error(ErrorCode::handle_closed,
                        "dbpool: this persistent connection handle was already closed");
        }
        return *slot_->steady;
    }

    void release() noexcept {
        Slot* slot = std::exchange(slot_, nullptr);
        if (slot != nullptr) slot->release_handle();
    }

    Slot* slot_ = nullptr;  // counted in slot_->state, which keeps it alive (PersistentSlot)
};

/// One steady connection per thread per pool (DBUtils' PersistentDB). The connection is closed
/// when its thread exits or when the pool is closed or destroyed, whichever comes first.
/// Thread-safe.
template <class Connection, class Clock = std::chrono::steady_clock>
class PersistentPool {
    using Traits = ConnectionTraits<Connection>;
    using Steady = SteadyConnection<Connection, Clock>;
    using Slot = detail::PersistentSlot<Steady>;
    using Registry = detail::PersistentRegistry<Steady>;
    using Source = detail::PersistentSource<Connection>;

public:
    /// The handle connection() returns.
    using handle_type = PersistentConnection<Connection, Clock>;
    /// The protected connection type.
    using steady_type = Steady;

    /// Validates the options; connections open lazily, one per thread on first use.
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

    /// Closes every thread's connection.
    ~PersistentPool() { close(); }

    /// This thread's connection, opened on first use; pinged per the ping bits. Throws
    /// Error{pool_closed} or Error{connect_failed}. Called while the thread ends (from a
    /// thread_local's destructor that runs after the pool's per-thread state is gone), it opens
    /// a connection that is closed when its handle ends.
    ///
    /// \par Thread-safety
    /// Any thread; each thread gets its own connection, and its handle must stay on that
    /// thread.
    ///
    /// \par Exception safety
    /// Strong: when it throws, the thread holds no handle; a later call opens the connection
    /// again.
    handle_type connection() {
        registry_->check_fork();
        Slot* slot = find_slot();
        if (slot == nullptr) return connection_at_thread_exit();
        int state = slot->state.load(std::memory_order_relaxed);
        do {
            if ((state & detail::persistent_closed_bit) != 0) throw closed_error();
        } while (!slot->state.compare_exchange_weak(state, state + 1, std::memory_order_acquire,
                                                    std::memory_order_relaxed));
        handle_type handle(slot);
        slot->steady->check_on_request();  // reopens after a closeable close()
        return handle;
    }

    /// A new unpooled steady connection with the pool's creator and options.
    std::unique_ptr<Steady> steady_connection() const {
        return std::make_unique<Steady>(creator_, options_);
    }

    /// Closes every thread's connection (a connection in use is closed when its handle ends)
    /// and refuses further requests. Idempotent; never throws.
    void close() noexcept {
        registry_->check_fork();  // a child must not close the parent's connections
        std::vector<std::shared_ptr<Slot>> closing;
        {
            std::lock_guard<std::mutex> lock(registry_->mutex);
            if (registry_->closed) return;
            registry_->closed = true;
            for (const auto& slot : registry_->slots) {
                if (slot->mark_closed()) closing.push_back(slot);
            }
            registry_->slots.clear();
        }
        for (const auto& slot : closing)
            slot->close_connection();  // network I/O: no lock held
    }

    /// How many thread connections are open right now (counted where they open and close).
    std::size_t open_connections() const noexcept { return source_->open(); }

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
        auto& slots = thread_slots();
        for (const auto& entry : slots.entries) {
            if (entry.pool_id == pool_id_) return entry.slot.get();
        }
        slots.prune();
        auto slot = open_slot();
        {
            std::lock_guard<std::mutex> lock(registry_->mutex);
            if (registry_->closed) throw closed_error();  // the new connection closes on unwind
            registry_->slots.push_back(slot);
        }
        slots.entries.push_back({pool_id_, slot});
        return slot.get();
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
            std::lock_guard<std::mutex> lock(registry_->mutex);
            if (registry_->closed) throw closed_error();
        }
        auto slot = std::make_shared<Slot>();
        slot->registry = registry_;
        slot->source = source_;
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

    static Error closed_error() {
        return Error(ErrorCode::pool_closed, "dbpool: the persistent pool is closed");
    }

    std::shared_ptr<const detail::Creator<Connection>> creator_;
    PersistentOptions options_;
    std::shared_ptr<Source> source_;  // shared with every slot: a connection may outlive the pool
    std::shared_ptr<Registry> registry_;
    const std::uint64_t pool_id_;
};

}  // namespace dbpool

#pragma once

// Opening and closing the pool's connections: the ConnectionSource side, slot reservation,
// the caller's own connect and the connects queued on workers for waiters. `_locked` functions
// are entered with the pool's lock and never release it; the connect itself (network I/O, the
// user's creator) always runs with no lock held.

#include <dbpool/connection_traits.hpp>
#include <dbpool/detail/connection_source.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/detail/saturating.hpp>
#include <dbpool/detail/slot_state.hpp>
#include <dbpool/error.hpp>
#include <dbpool/pool_events.hpp>
#include <dbpool/steady_connection.hpp>

#include <memory>
#include <string>
#include <utility>

namespace dbpool::detail {

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::connect(bool replacing) -> std::unique_ptr<Connection> {
    check_fork();
    std::uint64_t wave = 0;
    {
        Lock lock(*this);
        if (closed_.load()) throw closed_error();
        const TimePoint now = Clock::now();
        if (backoff_.active(now)) throw backoff_.refusal(now, "");  // no attempt: not counted
        ++attempting_;
        wave = backoff_.wave();
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
            backoff_.failed(error, Clock::now(), wave);
        }
        throw;
    }
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::disconnect(
    std::unique_ptr<Connection> connection) noexcept {
    if (!connection) return;
    Traits::close(*connection);
    connection.reset();
    {
        Lock lock(*this);
        ++closed_count_;
    }
    emit(EventKind::closed, "closed a connection");
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::open_slot(Slot& slot, bool by_caller) -> Lock {
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

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::connect_for_caller(WaitPoint deadline) -> Slot* {
    if (!connect_bound_ || !options_.setsession.empty()) return nullptr;
    Slot* slot = nullptr;
    {
        Lock lock(*this);
        if (closed_.load() || waiting_.count() != 0 || at_limit_locked() || backoff_.failing()) {
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

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::try_connect_for_caller(WaitPoint deadline) -> Slot* {
    try {
        return connect_for_caller(deadline);
    } catch (const Error& error) {
        if (error.code() != ErrorCode::connect_failed || !options_.blocking) throw;
        Lock lock(*this);
        if (closed_.load() || count_states_locked().busy == 0) throw;
        return nullptr;
    }
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::connect_for_waiters_locked() {
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

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::post_connect_locked(Slot& slot, bool for_waiters) {
    try {
        workers_.push_locked([this, &slot, for_waiters] { connect_quietly(slot, for_waiters); });
    } catch (...) {
        unreserve_locked(slot);
        throw;
    }
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::unreserve_locked(Slot& slot) noexcept {
    slot.template move<S::connecting, E::connect_failed>();
    slot.keep_alive.reset();
    free_slots_.push_back(&slot);  // never allocates: reserve_locked() made room
    --open_;
    --connecting_;
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::reserve_locked() -> Slot& {
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

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::worker_ready_locked() -> bool {
    if (closed_.load()) return false;
    return workers_.reserve_locked(
        [self = this->shared_from_this()](typename Workers::Worker* worker) {
            prepare_thread();
            Lock lock(*self);
            self->workers_.run(lock, worker, [&self] { return self->closed_.load(); });
        });
}

template <class Connection, class Clock>
inline void PooledCore<Connection, Clock>::worker_refused_locked() {
    ++failed_connects_;
    backoff_.failed(no_worker_error("open a connection"), Clock::now(), backoff_.wave());
    waiting_.wake_all();
}

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::no_worker_error(const char* task) -> Error {
    return Error(ErrorCode::connect_failed,
                 std::string("dbpool: could not start a pool worker thread to ") + task +
                     " (the process is out of threads or memory)");
}

}  // namespace dbpool::detail

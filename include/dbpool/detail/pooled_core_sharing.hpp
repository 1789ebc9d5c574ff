#pragma once

// Sharing a connection between threads (maxshared): picking the least shared one, pinging it
// while the others keep using it, and the last sharer's return. The pool's lock guards the
// shared set and share counts; pings run on a worker, and give_back() is called unlocked.

#include <dbpool/detail/pool_waiters.hpp>
#include <dbpool/detail/pooled_core.hpp>
#include <dbpool/detail/slot_state.hpp>
#include <dbpool/error.hpp>
#include <dbpool/options.hpp>

#include <algorithm>
#include <memory>

namespace dbpool::detail {

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::acquire_shared(AcquireSite site) -> Slot& {
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

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::ping_shared(Slot& slot, WaitPoint deadline) -> bool {
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

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::last_share(Slot& slot, bool& discard) noexcept -> bool {
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

template <class Connection, class Clock>
inline auto PooledCore<Connection, Clock>::least_shared_locked() const noexcept -> Slot* {
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

}  // namespace dbpool::detail

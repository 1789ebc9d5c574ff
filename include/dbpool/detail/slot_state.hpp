#pragma once

#include <cstdint>

namespace dbpool::detail {

// The lifecycle of one pooled connection as a pure function: no threads, no I/O, no clock.
// Every code path that changes a slot (acquire, return, maintenance, close, fork recovery)
// goes through slot_step(), so no path can skip a step or invent a transition. The table is
// tested on its own (tests/core/slot_state_test.cpp) and drawn in docs/design.md.
//
// Whoever moves a slot into a state owns it there; only `idle` is owned by nobody (anyone may
// claim it with one compare-and-swap). Capacity (maxconnections) counts every state but
// `empty`. Connection I/O happens only in connecting, validating, resetting, pinging and
// retiring, always by the owner and never under the pool's lock.
enum class SlotState : std::uint8_t {
    empty,       // no connection; the capacity is free
    connecting,  // a connect is in flight (on a pool worker, or in the constructor)
    idle,        // open and in the pool: claimable by anyone
    validating,  // claimed by an acquirer; its hand-out ping runs on a pool worker
    in_use,      // borrowed (by one handle, or by several sharers)
    returning,   // available again; its owner decides, in a few instructions, who gets it
    resetting,   // returned; the rollback / session reset runs on the returning thread
    pinging,     // taken from idle by maintenance for a keepalive ping (on a pool worker)
    retiring,    // being closed; the capacity is freed once the close is done
};

inline constexpr int slot_state_count = 9;

enum class SlotEvent : std::uint8_t {
    reserve,         // capacity taken for a new connection
    connect_ok,      // the connect succeeded
    connect_failed,  // the connect failed (or was refused while connects back off)
    claim,           // an acquirer takes an idle connection
    stale,           // the acquirer's connection needs its hand-out ping first
    ping_ok,         // the hand-out or keepalive ping answered
    ping_failed,     // the hand-out or keepalive ping failed
    unclaimed,       // the hand-out ping answered but its acquirer had given up
    release,         // returned with nothing to send
    release_dirty,   // returned needing a rollback or a session reset
    reset_ok,        // the reset succeeded
    reset_failed,    // the reset failed, or the connection is not reusable
    discard,         // returned for closing (discard(), dead, worn out, lifetime over)
    keepalive,       // maintenance takes an idle connection to ping it
    shelve,          // nobody is due to get it: it goes idle
    hand_off,        // it goes straight to the oldest waiter, never through idle
    expire,          // it leaves instead: idle timeout, lifetime, surplus, maxcached, close()
    closed,          // the close is done
    abandon,         // in a child after fork(): dropped without sending anything
};

inline constexpr int slot_event_count = 19;

// What the new owner of the slot must do next.
enum class SlotAction : std::uint8_t {
    none,           // nothing more (also: the transition was refused, see SlotStep::valid)
    connect,        // open a connection through the pool's create path
    offer,          // hand it to the oldest due waiter (hand_off), or shelve it, or expire it
    hand_out,       // give it to the acquirer or waiter it was meant for
    ping,           // ping it on a pool worker, then report ping_ok or ping_failed
    reset,          // roll back / reset the session, then report reset_ok or reset_failed
    close,          // close the connection, then report closed
    free_capacity,  // the slot is empty again: whoever waits for capacity may connect
};

struct SlotStep {
    SlotState next = SlotState::empty;
    SlotAction action = SlotAction::none;
    bool valid = false;
};

constexpr SlotStep slot_step(SlotState state, SlotEvent event) noexcept {
    using S = SlotState;
    using E = SlotEvent;
    using A = SlotAction;
    const auto to = [](S next, A action) { return SlotStep{next, action, true}; };
    switch (event) {
        case E::reserve:
            if (state == S::empty) return to(S::connecting, A::connect);
            break;
        case E::connect_ok:
            if (state == S::connecting) return to(S::returning, A::offer);
            break;
        case E::connect_failed:
            if (state == S::connecting) return to(S::empty, A::free_capacity);
            break;
        case E::claim:
            if (state == S::idle) return to(S::in_use, A::hand_out);
            break;
        case E::stale:
            if (state == S::in_use) return to(S::validating, A::ping);
            break;
        case E::ping_ok:
            if (state == S::validating) return to(S::in_use, A::hand_out);
            if (state == S::pinging) return to(S::returning, A::offer);
            break;
        case E::ping_failed:
            if (state == S::validating || state == S::pinging) return to(S::retiring, A::close);
            break;
        case E::unclaimed:
            if (state == S::validating) return to(S::returning, A::offer);
            break;
        case E::release:
            if (state == S::in_use) return to(S::returning, A::offer);
            break;
        case E::release_dirty:
            if (state == S::in_use) return to(S::resetting, A::reset);
            break;
        case E::reset_ok:
            if (state == S::resetting) return to(S::returning, A::offer);
            break;
        case E::reset_failed:
            if (state == S::resetting) return to(S::retiring, A::close);
            break;
        case E::discard:
            if (state == S::in_use) return to(S::retiring, A::close);
            break;
        case E::keepalive:
            if (state == S::idle) return to(S::pinging, A::ping);
            break;
        case E::shelve:
            if (state == S::returning) return to(S::idle, A::none);
            break;
        case E::hand_off:
            if (state == S::returning) return to(S::in_use, A::hand_out);
            break;
        case E::expire:
            if (state == S::idle || state == S::returning) return to(S::retiring, A::close);
            break;
        case E::closed:
            if (state == S::retiring) return to(S::empty, A::free_capacity);
            break;
        case E::abandon:
            if (state != S::empty) return to(S::empty, A::free_capacity);
            break;
    }
    return SlotStep{state, A::none, false};
}

inline const char* to_string(SlotState state) noexcept {
    switch (state) {
        case SlotState::empty: return "empty";
        case SlotState::connecting: return "connecting";
        case SlotState::idle: return "idle";
        case SlotState::validating: return "validating";
        case SlotState::in_use: return "in_use";
        case SlotState::returning: return "returning";
        case SlotState::resetting: return "resetting";
        case SlotState::pinging: return "pinging";
        case SlotState::retiring: return "retiring";
    }
    return "?";
}

inline const char* to_string(SlotEvent event) noexcept {
    switch (event) {
        case SlotEvent::reserve: return "reserve";
        case SlotEvent::connect_ok: return "connect_ok";
        case SlotEvent::connect_failed: return "connect_failed";
        case SlotEvent::claim: return "claim";
        case SlotEvent::stale: return "stale";
        case SlotEvent::ping_ok: return "ping_ok";
        case SlotEvent::ping_failed: return "ping_failed";
        case SlotEvent::unclaimed: return "unclaimed";
        case SlotEvent::release: return "release";
        case SlotEvent::release_dirty: return "release_dirty";
        case SlotEvent::reset_ok: return "reset_ok";
        case SlotEvent::reset_failed: return "reset_failed";
        case SlotEvent::discard: return "discard";
        case SlotEvent::keepalive: return "keepalive";
        case SlotEvent::shelve: return "shelve";
        case SlotEvent::hand_off: return "hand_off";
        case SlotEvent::expire: return "expire";
        case SlotEvent::closed: return "closed";
        case SlotEvent::abandon: return "abandon";
    }
    return "?";
}

inline const char* to_string(SlotAction action) noexcept {
    switch (action) {
        case SlotAction::none: return "none";
        case SlotAction::connect: return "connect";
        case SlotAction::offer: return "offer";
        case SlotAction::hand_out: return "hand_out";
        case SlotAction::ping: return "ping";
        case SlotAction::reset: return "reset";
        case SlotAction::close: return "close";
        case SlotAction::free_capacity: return "free_capacity";
    }
    return "?";
}

}  // namespace dbpool::detail

#pragma once

#include <dbpool/detail/sync.hpp>
#include <dbpool/persistent_context.hpp>

#include <algorithm>

namespace dbpool::detail {

// The invariants of a PersistentPool's shared state (its registry, and for a keyed context its
// map of keys), checked under the registry's lock at the end of every locked section of the pool
// in test builds (PoolLock). A thread's or storage context's own table is private to it and is
// not checked here; what it shares with the pool is its slot in the registry.
//
// Of a slot, the check reads only what no thread changes while the slot is listed (its source,
// registry, kind, steady pointer and hand-off to its handles are set before it is listed, or
// after it is taken out under this lock) and its state word, which handles change without the
// lock: only its closed bit is read, and that is set under this lock for a listed slot.
template <class Pool>
struct PersistentInvariants {
    static void check(const Pool& pool) noexcept {
        const auto fail = [](const char* what) { Pool::Sync::invariant_failed(what); };
        const auto& registry = *pool.registry_;
        const auto& slots = registry.slots;
        if (registry.closed && !slots.empty()) fail("a closed persistent pool still lists slots");
        const auto& keyed = pool.keyed_;
        if constexpr (Pool::kind == ContextKind::keyed) {
            // A slot found in `keyed_` under the registry's lock is open: keyed_connection()
            // relies on it when it counts a handle there without looking at the closed bit,
            // because end_context() and close() take a slot out of `keyed_` in the same locked
            // section in which they mark it closed.
            for (const auto& entry : keyed) {
                if (!entry.second) fail("a key has a null slot");
                if (closed(*entry.second)) fail("a slot found under a key is closed");
                if (std::find(slots.begin(), slots.end(), entry.second) == slots.end()) {
                    fail("a key's slot is not listed by its persistent pool");
                }
            }
        }
        // Quadratic, and allocates nothing: a test build's contexts are few.
        for (auto it = slots.begin(); it != slots.end(); ++it) {
            const auto& slot = *it;
            if (!slot) fail("a persistent pool lists a null slot");
            if (std::find(it + 1, slots.end(), slot) != slots.end()) {
                fail("a slot is listed twice by its persistent pool");
            }
            // A context's table takes its slot out under the lock before it marks it closed;
            // end_context() and close() take it out in the locked section that marks it.
            if (closed(*slot)) fail("a persistent pool lists a closed slot");
            if (slot->source != pool.source_) fail("a slot counts its connection elsewhere");
            if (slot->registry.owner_before(pool.registry_) ||
                pool.registry_.owner_before(slot->registry)) {
                fail("a persistent pool lists another pool's slot");
            }
            if (!slot->steady) fail("a listed slot has no connection");
            // Only a context's end, end_context() and close() hand a slot to its handles, once
            // it is no longer listed: a listed slot is owned by its context's table (or key).
            if (slot->owner_for_handles) fail("a listed slot was handed to its handles");
            if (slot->thread_keyed != (Pool::kind == ContextKind::thread)) {
                fail("a slot's kind of context differs from its pool's");
            }
        }
        if constexpr (Pool::kind == ContextKind::keyed) {
            // One connection per live key, and an ended key (end_context, close) holds none:
            // the listed slots and the keys' slots are the same, each under exactly one key.
            if (keyed.size() != slots.size()) fail("the keys differ from the listed slots");
            for (const auto& slot : slots) {
                const auto keys = std::count_if(keyed.begin(), keyed.end(), [&](const auto& entry) {
                    return entry.second == slot;
                });
                if (keys != 1) fail("a listed slot is not the connection of exactly one key");
            }
        } else {
            if (!keyed.empty()) fail("a persistent pool that is not keyed has keys");
        }
    }

    template <class Slot>
    static bool closed(const Slot& slot) noexcept {
        return (peek(slot.state) & Slot::closed_bit) != 0;
    }
};

}  // namespace dbpool::detail

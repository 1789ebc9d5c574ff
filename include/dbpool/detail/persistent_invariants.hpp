#pragma once

#include <dbpool/detail/sync.hpp>
#include <dbpool/persistent_context.hpp>

#include <algorithm>

namespace dbpool::detail {

// The invariants of a PersistentPool's shared state (its registry, and for a keyed context its
// map of keys), checked under the registry's lock at the end of every locked section of the pool
// in test builds (PoolLock). A thread's or storage context's own table is private to it and is
// not checked here; what it shares with the pool is its slot in the registry.
template <class Pool>
struct PersistentInvariants {
    static void check(const Pool& pool) noexcept {
        const auto fail = [](const char* what) { StdSync::invariant_failed(what); };
        const auto& registry = *pool.registry_;
        const auto& slots = registry.slots;
        if (registry.closed && !slots.empty()) fail("a closed persistent pool still lists slots");
        // Quadratic, and allocates nothing: a test build's contexts are few.
        for (auto it = slots.begin(); it != slots.end(); ++it) {
            const auto& slot = *it;
            if (!slot) fail("a persistent pool lists a null slot");
            if (std::find(it + 1, slots.end(), slot) != slots.end()) {
                fail("a slot is listed twice by its persistent pool");
            }
            // A context that ends, end_context() and close() take the slot out of the list in
            // the same locked section that marks it closed.
            if (slot->closed()) fail("a persistent pool lists a closed slot");
            if (slot->source != pool.source_) fail("a slot counts its connection elsewhere");
        }
        const auto& keyed = pool.keyed_;
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
};

}  // namespace dbpool::detail

#pragma once

/// \file
/// What "one context" is to a PersistentPool: ThreadContext (the default), or a policy the
/// application writes (context-local storage, or a key with an end-of-context call).
///
/// A context policy is a class with static members, of one of two kinds:
/// - **Storage**: `template <class T> static T& local();` returns the current context's T,
///   default-constructed on first use, and destroys it when the context ends (Boost.Fiber's
///   `fiber_specific_ptr`: dbpool::BoostFiberContext in <dbpool/contexts/boost_fiber.hpp>).
///   The pool keeps its connections in that T, so they close when the context ends.
/// - **Keyed**: `using key_type = ...;` (hashable with std::hash, equality-comparable) and
///   `static key_type current();` returns the current context's key. The pool keeps a connection
///   per key; the application ends a context with PersistentPool::end_context(key).

#include <type_traits>

namespace dbpool {

/// One connection per thread (thread_local, closed at thread exit): PersistentPool's default.
struct ThreadContext {};

namespace detail {

// Only named in an unevaluated operand, to ask whether a policy has local<T>().
struct ContextStorageProbe {};

template <class C, class = void>
struct has_context_storage : std::false_type {};
template <class C>
struct has_context_storage<C, std::void_t<decltype(C::template local<ContextStorageProbe>())>>
    : std::true_type {};

template <class C, class = void>
struct has_context_key : std::false_type {};
template <class C>
struct has_context_key<C, std::void_t<typename C::key_type, decltype(C::current())>>
    : std::true_type {};

enum class ContextKind { thread, storage, keyed };

template <class C>
constexpr ContextKind context_kind() noexcept {
    if constexpr (std::is_same_v<C, ThreadContext>) {
        return ContextKind::thread;
    } else if constexpr (has_context_storage<C>::value) {
        return ContextKind::storage;
    } else {
        static_assert(has_context_key<C>::value,
                      "dbpool: a PersistentPool context policy has either `template <class T> "
                      "static T& local()` or `using key_type` and `static key_type current()` "
                      "(see <dbpool/persistent_context.hpp>)");
        return ContextKind::keyed;
    }
}

// The key type of a keyed policy; a placeholder for the other kinds.
template <class C, bool Keyed = context_kind<C>() == ContextKind::keyed>
struct ContextKey {
    using type = int;
};
template <class C>
struct ContextKey<C, true> {
    using type = typename C::key_type;
};

}  // namespace detail
}  // namespace dbpool

#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace dbpool::detail {

/// The one shape the core stores a creator in; shared by every connection of a pool.
template <class Connection>
using Creator = std::function<std::unique_ptr<Connection>()>;

// Users may return the connection by value or as a unique_ptr; both become one shape.
template <class Connection, class F>
std::shared_ptr<const Creator<Connection>> make_creator(F&& factory) {
    using Shared = std::shared_ptr<const Creator<Connection>>;
    if constexpr (std::is_same_v<std::decay_t<F>, Shared>) {
        return std::forward<F>(factory);  // a pool handing its creator to a steady connection
    } else if constexpr (std::is_same_v<std::decay_t<std::invoke_result_t<std::decay_t<F>&>>,
                                        std::unique_ptr<Connection>>) {
        return std::make_shared<const Creator<Connection>>(std::forward<F>(factory));
    } else {
        static_assert(std::is_constructible_v<Connection, std::invoke_result_t<std::decay_t<F>&>>,
                      "a creator must return the pool's connection type or a unique_ptr to it");
        return std::make_shared<const Creator<Connection>>(
            [factory = std::forward<F>(factory)]() mutable {
                return std::make_unique<Connection>(factory());
            });
    }
}

// A creator may say how long one call can block at most, when it knows: a member
// `std::optional<std::chrono::milliseconds> connect_bound() const` (the backends' connectors
// have one). A pool then lets a caller open its own connection when that bound fits in the
// caller's deadline; without one, connects run on the pool's workers.
template <class F, class = void>
struct HasConnectBound : std::false_type {};
template <class F>
struct HasConnectBound<F, std::void_t<decltype(std::declval<const F&>().connect_bound())>>
    : std::true_type {};

template <class F>
std::optional<std::chrono::milliseconds> connect_bound_of(const F& creator) {
    if constexpr (HasConnectBound<F>::value) {
        return std::optional<std::chrono::milliseconds>(creator.connect_bound());
    } else {
        static_cast<void>(creator);
        return std::nullopt;
    }
}

}  // namespace dbpool::detail

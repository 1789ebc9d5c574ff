#pragma once

#include <functional>
#include <memory>
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

}  // namespace dbpool::detail

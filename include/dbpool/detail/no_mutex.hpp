#pragma once

#include <mutex>
#include <type_traits>

namespace dbpool::detail {

// Connections that are never shared between threads need no lock; this costs nothing.
struct NoMutex {
    void lock() noexcept {}
    bool try_lock() noexcept { return true; }
    void unlock() noexcept {}
};

template <bool Needed>
using MaybeMutex = std::conditional_t<Needed, std::recursive_mutex, NoMutex>;

}  // namespace dbpool::detail

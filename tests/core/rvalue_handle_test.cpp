// Compile-time regression test: `dbpool::Transaction tx(*pool.connection());` must not compile.
// The temporary handle returns its connection at the end of the full expression, so the
// transaction would hold a dangling reference while the pool rolls the connection back and
// may hand it to another thread. Operator* and operator-> of an rvalue handle are deleted;
// those of a named handle stay. This file only has to compile (a CTest test builds it).
#include "fake_connection.hpp"

#include <dbpool/pooled_connection.hpp>
#include <dbpool/pooled_pool.hpp>

#include <type_traits>
#include <utility>

namespace {

template <class, class = void>
struct can_dereference : std::false_type {};
template <class Handle>
struct can_dereference<Handle, std::void_t<decltype(*std::declval<Handle>())>> : std::true_type {};

template <class, class = void>
struct can_arrow : std::false_type {};
template <class Handle>
struct can_arrow<Handle, std::void_t<decltype(std::declval<Handle>().operator->())>>
    : std::true_type {};

using Handle = dbpool::PooledPool<fake::FakeConnection>::handle_type;
static_assert(std::is_same_v<Handle, dbpool::PooledConnection<fake::FakeConnection>>);

static_assert(can_dereference<Handle&>::value, "a named handle keeps operator*");
static_assert(can_arrow<Handle&>::value, "a named handle keeps operator->");
static_assert(!can_dereference<Handle&&>::value,
              "*pool.connection() must not compile: the temporary handle returns the connection "
              "at the end of the full expression (Transaction tx(*pool.connection()) dangles)");
static_assert(!can_arrow<Handle&&>::value,
              "operator-> of a temporary handle must not compile either");

}  // namespace

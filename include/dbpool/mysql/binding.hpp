#pragma once

#include <dbpool/detail/value_rules.hpp>
#include <dbpool/mysql/client.hpp>
#include <dbpool/mysql/result_set.hpp>

#include <mysql.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace dbpool::mysql::detail {

// Where one argument's value lives while its statement is cached. The statement's MYSQL_BIND
// points here, not at the caller's arguments, so the next execution can write new values in
// place without binding again (ParamBinding below).
struct ParamSlot {
    alignas(8) unsigned char fixed[8]{};  // an integer, float or double, in its own width
    std::string bytes;                    // text or blob, copied
    unsigned long length = 0;             // bytes.size(), read by the client at execute
    ClientBool is_null = 0;               // read by the client at execute
};

using dbpool::detail::bindable;
using dbpool::detail::is_byte_vector;

template <class T>
constexpr enum_field_types integer_field_type() {
    if constexpr (sizeof(T) == 1) return MYSQL_TYPE_TINY;
    if constexpr (sizeof(T) == 2) return MYSQL_TYPE_SHORT;
    if constexpr (sizeof(T) == 4) return MYSQL_TYPE_LONG;
    return MYSQL_TYPE_LONGLONG;
}

template <class U>
void bind_fixed(MYSQL_BIND& bind, ParamSlot& slot, enum_field_types type, const U& value) {
    static_assert(sizeof(U) <= sizeof(slot.fixed), "a fixed-size parameter fits in 8 bytes");
    std::memcpy(slot.fixed, &value, sizeof(U));
    bind.buffer_type = type;
    bind.buffer = slot.fixed;
}

inline void bind_bytes(MYSQL_BIND& bind, ParamSlot& slot, const char* data, std::size_t size,
                       enum_field_types type = MYSQL_TYPE_STRING) {
    if (size == 0) {
        slot.bytes.clear();  // (no copy from a null `data`)
    } else {
        slot.bytes.assign(data, size);
    }
    slot.length = static_cast<unsigned long>(size);
    bind.buffer_type = type;
    bind.buffer = slot.bytes.data();
    bind.length = &slot.length;
}

// The MySQL side of an argument (dbpool::detail::encode_argument says which kind it is): the
// value goes into the slot in its own width or as bytes, and `bind` describes it. Every field
// of `bind` depends only on the argument's type and on the slot's addresses, except a text's
// buffer when a longer value made the string reallocate: so the same call site describes the
// same binding every time, and ParamBinding can tell that nothing needs binding again. NULL of
// a known type (an empty optional, a null const char*) keeps that type and sets the null flag.
struct SlotEncoder {
    MYSQL_BIND& bind;
    ParamSlot& slot;

    void null() { bind.buffer_type = MYSQL_TYPE_NULL; }
    template <class V>
    void null_of() {
        dbpool::detail::encode_argument(*this, V{});
        slot.is_null = 1;
    }
    void boolean(bool value) {
        bind_fixed(bind, slot, MYSQL_TYPE_LONGLONG, std::int64_t{value ? 1 : 0});
    }
    template <class I>
    void integer(I value) {
        bind_fixed(bind, slot, integer_field_type<I>(), value);
        bind.is_unsigned = std::is_unsigned_v<I>;
    }
    template <class F>
    void floating(F value) {
        if constexpr (std::is_same_v<F, float>) {
            bind_fixed(bind, slot, MYSQL_TYPE_FLOAT, value);
        } else {
            bind_fixed(bind, slot, MYSQL_TYPE_DOUBLE, static_cast<double>(value));
        }
    }
    void text(std::string_view value) { bind_bytes(bind, slot, value.data(), value.size()); }
    void string(const std::string& value) { text(value); }
    void c_string(const char* value) { text(value); }
    void bytes(const unsigned char* data, std::size_t size) {
        bind_bytes(bind, slot, reinterpret_cast<const char*>(data), size, MYSQL_TYPE_BLOB);
    }
};

// Writes one argument into `slot` and describes it in `bind` (which starts zeroed).
template <class T>
void bind_value(MYSQL_BIND& bind, ParamSlot& slot, const T& value) {
    slot.is_null = 0;
    bind.is_null = &slot.is_null;
    SlotEncoder encoder{bind, slot};
    dbpool::detail::encode_argument(encoder, value);
}

// The parameters of one cached prepared statement: their slots, and the MYSQL_BIND array the
// client library was last given. A statement is bound once; an execution whose binding is the
// same (same types, same slot addresses) only writes the new values into the slots.
//
// Why not bind on every execution: in Oracle's 8.4 and 9.7 sources (libmysql/libmysql.cc),
// mysql_stmt_bind_param only calls mysql_stmt_bind_named_param, and in 8.4 that function allocates
// the MYSQL_BIND copy and the names array from stmt->mem_root on every call
// (stmt->mem_root->Alloc(sizeof(MYSQL_BIND) * n_items) and
// ->Alloc(sizeof(char*) * n_params)), and stmt->mem_root is cleared only when the statement is
// re-prepared (mysql_stmt_prepare: ClearForReuse) or closed. Rebinding a long-lived cached
// statement on every execution therefore grows its memory without bound. The 9.7 sources give
// the bind data its own MEM_ROOT (MYSQL_STMT_EXT::bind_data.mem_root), cleared at the start of
// each call; 8.0's mysql_stmt_bind_param copies into the array allocated at prepare. Binding
// once is right for all of them, and saves the call on MariaDB Connector/C too.
class ParamBinding {
public:
    // Writes `args` into the slots and fills `binds` (size sizeof...(Args), zeroed) with the
    // binding they need. Returns true when that differs from the binding last recorded, i.e.
    // the statement must be bound (then call bound(binds) once the client accepted it).
    template <std::size_t Count, class... Args>
    bool update(std::array<MYSQL_BIND, Count>& binds, const Args&... args) {
        static_assert(Count == sizeof...(Args));
        if (slots_.size() != Count) {
            // Sized once per statement: the binds point into these slots.
            slots_ = std::vector<ParamSlot>(Count);
            last_.clear();
        }
        std::size_t index = 0;
        ((bind_value(binds[index], slots_[index], args), ++index), ...);
        if (last_.size() != Count) return true;
        for (std::size_t i = 0; i < Count; ++i) {
            if (!same(binds[i], last_[i])) return true;
        }
        return false;
    }

    // Records `binds` as what the client library now holds.
    template <std::size_t Count>
    void bound(const std::array<MYSQL_BIND, Count>& binds) {
        last_.assign(binds.begin(), binds.end());
    }

private:
    static bool same(const MYSQL_BIND& a, const MYSQL_BIND& b) noexcept {
        return a.buffer_type == b.buffer_type && a.buffer == b.buffer &&
               a.buffer_length == b.buffer_length && a.length == b.length &&
               a.is_null == b.is_null && a.is_unsigned == b.is_unsigned;
    }

    std::vector<ParamSlot> slots_;
    std::vector<MYSQL_BIND> last_;
};

}  // namespace dbpool::mysql::detail

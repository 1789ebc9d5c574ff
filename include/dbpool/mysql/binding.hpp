#pragma once

#include <dbpool/mysql/result_set.hpp>

#include <mysql.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace dbpool::mysql::detail {

// Storage for a parameter whose type had to change (bool, long double) so that its MYSQL_BIND
// can point at something that outlives the call.
union ParamScratch {
    std::int64_t integer;
    double floating;
};

template <class T>
struct is_byte_vector : std::false_type {};
template <>
struct is_byte_vector<std::vector<std::byte>> : std::true_type {};
template <>
struct is_byte_vector<std::vector<unsigned char>> : std::true_type {};

template <class T>
constexpr enum_field_types integer_field_type() {
    if constexpr (sizeof(T) == 1) return MYSQL_TYPE_TINY;
    if constexpr (sizeof(T) == 2) return MYSQL_TYPE_SHORT;
    if constexpr (sizeof(T) == 4) return MYSQL_TYPE_LONG;
    return MYSQL_TYPE_LONGLONG;
}

inline void bind_null(MYSQL_BIND& bind) { bind.buffer_type = MYSQL_TYPE_NULL; }

inline void bind_text(MYSQL_BIND& bind, const char* data, std::size_t size,
                      enum_field_types type = MYSQL_TYPE_STRING) {
    bind.buffer_type = type;
    // The client only reads input buffers; the C API just lacks const.
    bind.buffer = const_cast<char*>(data != nullptr ? data : "");
    bind.buffer_length = static_cast<unsigned long>(size);
}

// Binds one argument; `value` must outlive the statement's execution.
template <class T>
void bind_value(MYSQL_BIND& bind, ParamScratch& scratch, const T& value) {
    using U = std::decay_t<T>;
    if constexpr (std::is_same_v<U, std::nullopt_t> || std::is_same_v<U, std::nullptr_t>) {
        bind_null(bind);
    } else if constexpr (is_optional<U>::value) {
        if (value.has_value()) {
            bind_value(bind, scratch, *value);
        } else {
            bind_null(bind);
        }
    } else if constexpr (std::is_same_v<U, bool>) {
        scratch.integer = value ? 1 : 0;
        bind.buffer_type = MYSQL_TYPE_LONGLONG;
        bind.buffer = &scratch.integer;
    } else if constexpr (std::is_same_v<U, char>) {
        // A single char is text, not a TINYINT.
        bind_text(bind, &value, 1);
    } else if constexpr (std::is_integral_v<U>) {
        bind.buffer_type = integer_field_type<U>();
        bind.buffer = const_cast<U*>(&value);
        bind.is_unsigned = std::is_unsigned_v<U>;
    } else if constexpr (std::is_same_v<U, float>) {
        bind.buffer_type = MYSQL_TYPE_FLOAT;
        bind.buffer = const_cast<float*>(&value);
    } else if constexpr (std::is_floating_point_v<U>) {
        scratch.floating = static_cast<double>(value);
        bind.buffer_type = MYSQL_TYPE_DOUBLE;
        bind.buffer = &scratch.floating;
    } else if constexpr (std::is_same_v<U, std::string> || std::is_same_v<U, std::string_view>) {
        bind_text(bind, value.data(), value.size());
    } else if constexpr (std::is_same_v<U, const char*> || std::is_same_v<U, char*>) {
        if (value == nullptr) {
            bind_null(bind);
        } else {
            bind_text(bind, value, std::strlen(value));
        }
    } else if constexpr (is_byte_vector<U>::value) {
        bind_text(bind, reinterpret_cast<const char*>(value.data()), value.size(), MYSQL_TYPE_BLOB);
    } else {
        static_assert(sizeof(U) == 0,
                      "parameter type not supported: use integers, bool, float/double, "
                      "std::string(_view)/const char*, Blob, std::optional or std::nullopt");
    }
}

// Decays arrays (string literals) to pointers so they bind as const char*.
template <class T>
decltype(auto) bindable(const T& value) {
    if constexpr (std::is_array_v<T>) {
        return static_cast<const std::remove_extent_t<T>*>(value);
    } else {
        return (value);
    }
}

}  // namespace dbpool::mysql::detail

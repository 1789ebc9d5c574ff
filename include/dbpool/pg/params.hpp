#pragma once

#include <dbpool/detail/value_rules.hpp>
#include <dbpool/pg/errors.hpp>
#include <dbpool/pg/result_set.hpp>

#include <libpq-fe.h>

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace dbpool::pg::detail {

// One statement argument in libpq's text format. `value` is NUL-terminated, or null for SQL
// NULL; `type` is the OID sent when the statement is prepared. Numbers and booleans are typed
// (so `$1 + $2` works); text goes as `unspecified`, so the server infers its type from the
// context exactly as for a quoted literal (dates, JSON, enums, ...).
struct Param {
    const char* value = nullptr;
    Oid type = oid::unspecified;
    std::array<char, 40> digits{};  // numbers are formatted here
    std::string text;               // text that had to be copied or encoded
};

using dbpool::detail::bindable;
using dbpool::detail::is_byte_vector;

// The OID a C++ integer is sent as: the smallest PostgreSQL integer that holds every value.
template <class T>
constexpr Oid integer_oid() {
    if constexpr (std::is_signed_v<T>) {
        if constexpr (sizeof(T) <= 2) return oid::int2;
        if constexpr (sizeof(T) <= 4) return oid::int4;
        return oid::int8;
    } else {
        if constexpr (sizeof(T) == 1) return oid::int2;
        if constexpr (sizeof(T) == 2) return oid::int4;
        return oid::int8;
    }
}

// The OID of an argument's type, also when its value is NULL (an empty optional keeps the
// same prepared statement as a present one).
template <class T>
constexpr Oid type_oid() {
    using U = std::decay_t<T>;
    if constexpr (is_optional<U>::value) {
        return type_oid<typename U::value_type>();
    } else if constexpr (std::is_same_v<U, bool>) {
        return oid::boolean;
    } else if constexpr (std::is_integral_v<U> && !std::is_same_v<U, char>) {  // char is text
        return integer_oid<U>();
    } else if constexpr (std::is_same_v<U, float>) {
        return oid::float4;
    } else if constexpr (std::is_floating_point_v<U>) {
        return oid::float8;
    } else if constexpr (is_byte_vector<U>::value) {
        return oid::bytea;
    } else {
        return oid::unspecified;
    }
}

inline void set_text(Param& param, std::string_view text) {
    if (text.find('\0') != std::string_view::npos) {
        raise_usage(
            "a text argument contains a NUL byte, which PostgreSQL text cannot hold; pass bytes "
            "as a Blob (bytea)");
    }
    param.text.assign(text.data(), text.size());
    param.value = param.text.c_str();
}

template <class T>
void set_number(Param& param, T value) {
    const auto result = std::to_chars(param.digits.data(), param.digits.data() + 39, value);
    *result.ptr = '\0';
    param.value = param.digits.data();
}

// The PostgreSQL side of an argument (dbpool::detail::encode_argument says which kind it is):
// its text format in the Param.
struct ParamEncoder {
    Param& param;

    void null() { param.value = nullptr; }
    template <class V>
    void null_of() {
        param.value = nullptr;  // the type is V's already (type_oid looks through optional)
    }
    void boolean(bool value) { param.value = value ? "t" : "f"; }
    template <class I>
    void integer(I value) {
        if constexpr (std::is_unsigned_v<I> && sizeof(I) >= 8) {
            if (value > static_cast<I>(std::numeric_limits<std::int64_t>::max())) {
                raise_usage(
                    "an unsigned argument does not fit bigint; pass it as text for numeric");
            }
        }
        set_number(param, value);
    }
    template <class F>
    void floating(F value) {
        // Shortest text that reads back to the same value; "nan" and "inf" are accepted too.
        if constexpr (std::is_same_v<F, long double>) {
            set_number(param, static_cast<double>(value));
        } else {
            set_number(param, value);
        }
    }
    void text(std::string_view value) { set_text(param, value); }
    void string(const std::string& value) {
        if (value.find('\0') != std::string::npos) set_text(param, value);  // raises
        param.value = value.c_str();
    }
    void c_string(const char* value) {
        param.value = value;  // NUL-terminated by definition
    }
    void bytes(const unsigned char* data, std::size_t size) {
        static constexpr char hex[] = "0123456789abcdef";
        param.text.assign("\\x");
        param.text.reserve(2 + size * 2);
        for (std::size_t i = 0; i < size; ++i) {
            param.text += hex[data[i] >> 4];
            param.text += hex[data[i] & 15];
        }
        param.value = param.text.c_str();
    }
};

// Encodes one argument; the Param must outlive the statement's execution.
template <class T>
void encode(Param& param, const T& value) {
    param.type = type_oid<std::decay_t<T>>();
    ParamEncoder encoder{param};
    dbpool::detail::encode_argument(encoder, value);
}

}  // namespace dbpool::pg::detail

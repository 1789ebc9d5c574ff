#pragma once

// The rules every backend reads a column value by, written once: NULL only into std::optional,
// integers and floating-point numbers checked against the requested type's exact range, text
// read as a number by one grammar. A backend turns its wire format into one of the forms below
// (a signed or unsigned 64-bit integer, a double, or text) and calls these; what a backend
// keeps for itself is only its wire format (MySQL's binary protocol, PostgreSQL's bool and
// bytea spellings, its "NaN"/"Infinity"). Messages name the column, never its value.

#include <dbpool/error.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#if !defined(__cpp_lib_to_chars) || __cpp_lib_to_chars < 201611L
#include <locale>
#include <sstream>
#endif

namespace dbpool::detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// Types whose value points into the result: reading them from a temporary would dangle.
template <class T>
struct is_view : std::is_same<T, std::string_view> {};
template <class T>
struct is_view<std::optional<T>> : is_view<T> {};

// The byte containers both backends take and give as binary data.
template <class T>
struct is_byte_vector : std::false_type {};
template <>
struct is_byte_vector<std::vector<std::byte>> : std::true_type {};
template <>
struct is_byte_vector<std::vector<unsigned char>> : std::true_type {};

// Decays arrays (string literals) to pointers so they bind as const char*.
template <class T>
decltype(auto) bindable(const T& value) {
    if constexpr (std::is_array_v<T>) {
        return static_cast<const std::remove_extent_t<T>*>(value);
    } else {
        return (value);
    }
}

// Hands one statement argument to `encoder` by its kind, the same for every backend; the
// encoder writes only its wire format. The kinds, as calls on the encoder:
//   null()               std::nullopt, nullptr: a NULL of no particular type;
//   null_of<V>()         an empty std::optional<V> (a NULL that keeps V's type), and a null
//                        const char* (as null_of<std::string>());
//   boolean(bool)
//   integer(I)           any integer type but bool and char (a char is one character of text);
//   floating(F)          float, double, long double;
//   text(string_view)    a char or a std::string_view;
//   string(const std::string&), c_string(const char*)   text the encoder may use in place;
//   bytes(const unsigned char*, size_t)                  a Blob or std::vector<unsigned char>.
// Anything else does not compile, with the same message for every backend.
template <class Encoder, class T>
void encode_argument(Encoder& encoder, const T& value) {
    using U = std::decay_t<T>;
    if constexpr (std::is_same_v<U, std::nullopt_t> || std::is_same_v<U, std::nullptr_t>) {
        encoder.null();
    } else if constexpr (is_optional<U>::value) {
        if (value.has_value()) {
            encode_argument(encoder, *value);
        } else {
            encoder.template null_of<typename U::value_type>();
        }
    } else if constexpr (std::is_same_v<U, bool>) {
        encoder.boolean(value);
    } else if constexpr (std::is_same_v<U, char>) {
        encoder.text(std::string_view(&value, 1));
    } else if constexpr (std::is_integral_v<U>) {
        encoder.integer(value);
    } else if constexpr (std::is_floating_point_v<U>) {
        encoder.floating(value);
    } else if constexpr (std::is_same_v<U, std::string>) {
        encoder.string(value);
    } else if constexpr (std::is_same_v<U, std::string_view>) {
        encoder.text(value);
    } else if constexpr (std::is_same_v<U, const char*> || std::is_same_v<U, char*>) {
        if (value == nullptr) {
            encoder.template null_of<std::string>();
        } else {
            encoder.c_string(value);
        }
    } else if constexpr (is_byte_vector<U>::value) {
        encoder.bytes(reinterpret_cast<const unsigned char*>(value.data()), value.size());
    } else {
        static_assert(sizeof(U) == 0,
                      "parameter type not supported: use integers, bool, float/double, "
                      "std::string(_view)/const char*, Blob, std::optional or std::nullopt");
    }
}

// Where a conversion happens, for its messages: "mysql" or "pg", and the column's name.
struct ValueSite {
    const char* backend;
    const std::string& column;
};

[[noreturn]] inline void conversion_error(const ValueSite& site, const char* why) {
    // Never the value itself: a column may hold a secret.
    throw Error(ErrorCode::usage,
                std::string(site.backend) + ": column '" + site.column + "' " + why);
}

[[noreturn]] inline void null_error(const ValueSite& site) {
    conversion_error(site, "is NULL; read it as std::optional<T>");
}

// Whether `text` is a decimal floating-point literal as a server writes one: an optional
// sign, digits with an optional fraction, an optional exponent.
inline bool is_decimal_number(std::string_view text) noexcept {
    std::size_t i = 0;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
    std::size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9')
        ++i, ++digits;
    if (i < text.size() && text[i] == '.') {
        ++i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9')
            ++i, ++digits;
    }
    if (digits == 0) return false;
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        ++i;
        if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
        std::size_t exponent = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9')
            ++i, ++exponent;
        if (exponent == 0) return false;
    }
    return i == text.size();
}

// Parses a decimal number into a double: invalid_argument for anything else, out_of_range
// when it does not fit. Locale-independent on every standard library.
inline std::errc parse_double(std::string_view text, double& value) {
    if (!is_decimal_number(text)) return std::errc::invalid_argument;
    // from_chars wants no leading '+'.
    if (text.front() == '+') text.remove_prefix(1);
#if defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
    const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
    return result.ec;
#else
    // libc++ (through at least version 14) has no floating-point from_chars: a stream in the
    // classic locale reads the already-validated text; failing now means out of range.
    std::istringstream in{std::string(text)};
    in.imbue(std::locale::classic());
    double parsed = 0.0;
    in >> parsed;
    if (in.fail()) return std::errc::result_out_of_range;
    value = parsed;
    return std::errc();
#endif
}

// The few floating-point tests below are written out instead of taken from <cmath>: that header
// alone costs about a tenth of the compile time of every file that includes a backend.

// Whether `value` is neither infinite nor NaN (std::isfinite).
constexpr bool is_finite(double value) noexcept { return value - value == 0.0; }

// Whether `value` equals its own truncation (value == std::trunc(value)): true for whole numbers
// and infinities, false for NaN. Doubles of magnitude 2^52 and more are all whole; below that,
// the cast to int64_t is exact and defined.
constexpr bool is_whole(double value) noexcept {
    constexpr double all_whole = 4503599627370496.0;  // 2^52
    if (!(value > -all_whole && value < all_whole)) return value == value;
    return static_cast<double>(static_cast<std::int64_t>(value)) == value;
}

// 2^digits of T, exactly (std::ldexp(1.0, digits)).
template <class T>
constexpr double two_to_the_digits() noexcept {
    double power = 1.0;
    for (int i = 0; i < std::numeric_limits<T>::digits; ++i)
        power *= 2.0;
    return power;
}

// An integer read of a double: whole, and inside T's exact range.
template <class T>
T integer_from_double(double value, const ValueSite& site) {
    static_assert(std::is_integral_v<T>);
    if (!is_whole(value)) {  // also false for NaN
        conversion_error(site, "holds a non-integral number");
    }
    // T holds exactly [-2^digits, 2^digits) (signed) or [0, 2^digits) (unsigned), and both
    // bounds are exact doubles. Comparing with double(max) instead would let 2^63 through for
    // int64_t (max rounds up to 2^63), and the cast would be undefined behaviour.
    constexpr double limit = two_to_the_digits<T>();
    const double lowest = std::is_signed_v<T> ? -limit : 0.0;
    if (value < lowest || value >= limit) {
        conversion_error(site, "holds a number out of the requested type's range");
    }
    return static_cast<T>(value);
}

// An integer read of a signed 64-bit value.
template <class T>
T integer_from_signed(std::int64_t value, const ValueSite& site) {
    static_assert(std::is_integral_v<T>);
    if constexpr (std::is_signed_v<T>) {
        if (value >= std::numeric_limits<T>::min() && value <= std::numeric_limits<T>::max()) {
            return static_cast<T>(value);
        }
    } else {
        if (value >= 0 && static_cast<std::uint64_t>(value) <= std::numeric_limits<T>::max()) {
            return static_cast<T>(value);
        }
    }
    conversion_error(site, "holds an integer out of the requested type's range");
}

// An integer read of an unsigned 64-bit value.
template <class T>
T integer_from_unsigned(std::uint64_t value, const ValueSite& site) {
    static_assert(std::is_integral_v<T>);
    if (value <= static_cast<std::make_unsigned_t<T>>(std::numeric_limits<T>::max())) {
        return static_cast<T>(value);
    }
    conversion_error(site, "holds an integer out of the requested type's range");
}

// An integer read of text: a decimal integer in T's range, or a decimal number ("12.000",
// "9.2e18", as a DECIMAL or a floating-point column is written) by the rule for doubles.
template <class T>
T integer_from_text(std::string_view text, const ValueSite& site) {
    static_assert(std::is_integral_v<T>);
    T value{};
    const char* end = text.data() + text.size();
    const auto result = std::from_chars(text.data(), end, value);
    if (result.ec == std::errc() && result.ptr == end) return value;
    if (result.ec == std::errc::result_out_of_range) {
        conversion_error(site, "holds an integer out of the requested type's range");
    }
    double number = 0.0;
    if (parse_double(text, number) == std::errc()) return integer_from_double<T>(number, site);
    conversion_error(site, "holds text that is not an integer");
}

// A floating-point read of a double: a finite value beyond T's range is refused (infinities
// and NaN pass as they are).
template <class T>
T floating_from_double(double value, const ValueSite& site) {
    static_assert(std::is_floating_point_v<T>);
    if constexpr (std::numeric_limits<T>::max() < std::numeric_limits<double>::max()) {
        constexpr double max = std::numeric_limits<T>::max();
        if (is_finite(value) && (value > max || value < -max)) {
            conversion_error(site, "holds a number out of the range of the requested type");
        }
    }
    return static_cast<T>(value);
}

// A floating-point read of text in the decimal grammar, then the rule for doubles.
template <class T>
T floating_from_text(std::string_view text, const ValueSite& site) {
    double value = 0.0;
    const std::errc parsed = parse_double(text, value);
    if (parsed == std::errc::result_out_of_range) {
        conversion_error(site, "holds a number out of the range of double");
    }
    if (parsed != std::errc()) conversion_error(site, "holds text that is not a number");
    return floating_from_double<T>(value, site);
}

}  // namespace dbpool::detail

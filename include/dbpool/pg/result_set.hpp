#pragma once

/// \file
/// pg::ResultSet and Row with get<T>() conversions; ExecResult, Blob and type OIDs.

#include <dbpool/detail/value_rules.hpp>
#include <dbpool/error.hpp>
#include <dbpool/pg/errors.hpp>

#include <libpq-fe.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace dbpool::pg {

/// Binary data for bytea parameters and columns.
using Blob = std::vector<std::byte>;

/// Type OIDs of the built-in types that parameters are sent as (pg_type.oid).
namespace oid {
inline constexpr Oid unspecified = 0;  ///< Let the server infer the type, as for a literal.
inline constexpr Oid boolean = 16;     ///< bool
inline constexpr Oid bytea = 17;       ///< bytea
inline constexpr Oid int8 = 20;        ///< bigint
inline constexpr Oid int2 = 21;        ///< smallint
inline constexpr Oid int4 = 23;        ///< integer
inline constexpr Oid text = 25;        ///< text
inline constexpr Oid float4 = 700;     ///< real
inline constexpr Oid float8 = 701;     ///< double precision
inline constexpr Oid numeric = 1700;   ///< numeric
}  // namespace oid

/// What a statement did, for statements run with execute().
struct ExecResult {
    std::uint64_t affected_rows = 0;  ///< Rows inserted, updated, deleted, selected, ...
    std::string command_tag;          ///< The server's command tag, e.g. "INSERT 0 1".
};

namespace detail {

struct ResultDeleter {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};
// An owned PGresult.
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

using dbpool::detail::is_optional;
using dbpool::detail::is_view;

// Rows of one result, shared by the ResultSet and every Row taken from it (PGresult is
// read-only once made, so sharing it across threads is safe).
struct ResultData {
    ResultPtr result;
    std::vector<std::string> columns;
    std::vector<Oid> types;
    std::size_t rows = 0;
    std::uint64_t affected_rows = 0;
    std::string command_tag;
};

// One field, in the text format the server sent it.
struct Field {
    const char* data;
    std::size_t size;
    Oid type;
    bool null;
    const std::string& column;
};

[[noreturn]] inline void conversion_error(const std::string& column, const char* why) {
    dbpool::detail::conversion_error({"pg", column}, why);
}

inline int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The bytes of a bytea field: hex format ("\x0a1b", the default bytea_output) or, under
// bytea_output = escape, the old escaped format.
inline std::string decode_bytea(const Field& field) {
    if (field.size >= 2 && field.data[0] == '\\' && field.data[1] == 'x') {
        if (field.size % 2 != 0) conversion_error(field.column, "holds malformed bytea hex");
        std::string bytes((field.size - 2) / 2, '\0');
        for (std::size_t i = 0; i < bytes.size(); ++i) {
            const int high = hex_digit(field.data[2 + 2 * i]);
            const int low = hex_digit(field.data[3 + 2 * i]);
            if (high < 0 || low < 0) conversion_error(field.column, "holds malformed bytea hex");
            bytes[i] = static_cast<char>(high * 16 + low);
        }
        return bytes;
    }
    std::size_t length = 0;
    // PQgetvalue's text is NUL-terminated, as PQunescapeBytea needs.
    unsigned char* raw =
        PQunescapeBytea(reinterpret_cast<const unsigned char*>(field.data), &length);
    if (raw == nullptr) conversion_error(field.column, "holds bytea that cannot be decoded");
    std::string bytes(reinterpret_cast<const char*>(raw), length);
    PQfreemem(raw);
    return bytes;
}

// Numbers arrive as text; the shared rules (dbpool/detail/value_rules.hpp) read them, so a
// value converts as it does from MySQL. Only the wire's own spellings are handled here: a
// boolean's "t"/"f", and float's "NaN", "Infinity" and "-Infinity".
template <class T>
T integer_from(const Field& field) {
    if (field.type == oid::boolean) {
        conversion_error(field.column, "is a boolean; read it as bool");
    }
    return dbpool::detail::integer_from_text<T>(std::string_view(field.data, field.size),
                                                {"pg", field.column});
}

template <class T>
T floating_from(const Field& field) {
    const std::string_view text(field.data, field.size);
    if (text == "NaN") return std::numeric_limits<T>::quiet_NaN();
    if (text == "Infinity") return std::numeric_limits<T>::infinity();
    if (text == "-Infinity") return -std::numeric_limits<T>::infinity();
    return dbpool::detail::floating_from_text<T>(text, {"pg", field.column});
}

inline bool bool_from(const Field& field) {
    const std::string_view text(field.data, field.size);
    if (text == "t" || text == "true" || text == "1") return true;
    if (text == "f" || text == "false" || text == "0") return false;
    conversion_error(field.column, "does not hold a boolean");
}

template <class T>
T convert(const Field& field) {
    if constexpr (is_optional<T>::value) {
        if (field.null) return std::nullopt;
        return convert<typename T::value_type>(field);
    } else {
        if (field.null) dbpool::detail::null_error({"pg", field.column});
        if constexpr (std::is_same_v<T, bool>) {
            return bool_from(field);
        } else if constexpr (std::is_integral_v<T>) {
            return integer_from<T>(field);
        } else if constexpr (std::is_floating_point_v<T>) {
            return floating_from<T>(field);
        } else if constexpr (std::is_same_v<T, std::string>) {
            if (field.type == oid::bytea) return decode_bytea(field);
            return std::string(field.data, field.size);
        } else if constexpr (std::is_same_v<T, std::string_view>) {
            if (field.type == oid::bytea) {
                conversion_error(field.column, "is bytea; read it as Blob or std::string");
            }
            return std::string_view(field.data, field.size);
        } else if constexpr (std::is_same_v<T, Blob> ||
                             std::is_same_v<T, std::vector<unsigned char>>) {
            const std::string bytes = field.type == oid::bytea
                                          ? decode_bytea(field)
                                          : std::string(field.data, field.size);
            T out(bytes.size());
            if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
            return out;
        } else {
            static_assert(sizeof(T) == 0,
                          "get<T>: T must be an integer, bool, floating point, std::string, "
                          "std::string_view, Blob, or std::optional of one of them");
        }
    }
}

}  // namespace detail

class ResultSet;

/// One row of a ResultSet. It shares ownership of the result, so it stays valid after the
/// ResultSet is gone; copying it is cheap. Safe to read from several threads.
class Row {
public:
    /// The value of column `index` as T; NULL needs std::optional<T>. Throws Error{usage} on a
    /// bad index, a NULL read as non-optional or a failed conversion.
    template <class T>
    T get(std::size_t index) const& {
        return detail::convert<T>(field(index));
    }
    /// As get(index) on a temporary row; std::string_view is refused at compile time (the row
    /// may be the result's last owner, so the view would dangle).
    template <class T>
    T get(std::size_t index) && {
        static_assert(!detail::is_view<T>::value,
                      "a string_view from a temporary Row would dangle: name the row first");
        return detail::convert<T>(field(index));
    }
    /// The value of the column called `name` (exact, case-sensitive) as T (see get(index)).
    template <class T>
    T get(std::string_view name) const& {
        return get<T>(column_index(name));
    }
    /// As get(name) on a temporary row; std::string_view is refused (see get(index) &&).
    template <class T>
    T get(std::string_view name) && {
        static_assert(!detail::is_view<T>::value,
                      "a string_view from a temporary Row would dangle: name the row first");
        return get<T>(column_index(name));
    }
    /// Whether column `index` is NULL.
    bool is_null(std::size_t index) const { return field(index).null; }
    /// The number of columns.
    std::size_t size() const noexcept { return data_->columns.size(); }

private:
    friend class ResultSet;
    Row(std::shared_ptr<const detail::ResultData> data, std::size_t row) noexcept
        : data_(std::move(data)), row_(row) {}

    std::size_t column_index(std::string_view name) const;

    detail::Field field(std::size_t index) const {
        if (index >= data_->columns.size()) {
            throw Error(ErrorCode::usage, "pg: column " + std::to_string(index) +
                                              " out of range (" +
                                              std::to_string(data_->columns.size()) + " columns)");
        }
        const PGresult* result = data_->result.get();
        const int row = static_cast<int>(row_);
        const int column = static_cast<int>(index);
        return detail::Field{PQgetvalue(result, row, column),
                             static_cast<std::size_t>(PQgetlength(result, row, column)),
                             data_->types[index], PQgetisnull(result, row, column) != 0,
                             data_->columns[index]};
    }

    std::shared_ptr<const detail::ResultData> data_;
    std::size_t row_;
};

/// All rows of a query, held client-side in libpq's result; movable, not tied to the
/// connection. Reading is thread-safe.
class ResultSet {
public:
    /// An empty result (no columns, no rows).
    ResultSet() = default;

    /// Takes over a successful PGresult (used by the connection).
    explicit ResultSet(detail::ResultPtr result) {
        auto data = std::make_shared<detail::ResultData>();
        PGresult* raw = result.get();
        const int columns = PQnfields(raw);
        data->columns.reserve(static_cast<std::size_t>(columns));
        data->types.reserve(static_cast<std::size_t>(columns));
        for (int i = 0; i < columns; ++i) {
            data->columns.emplace_back(PQfname(raw, i));
            data->types.push_back(PQftype(raw, i));
        }
        data->rows = static_cast<std::size_t>(PQntuples(raw));
        data->command_tag = PQcmdStatus(raw);
        const char* tuples = PQcmdTuples(raw);
        std::uint64_t affected = 0;
        std::from_chars(tuples, tuples + std::strlen(tuples), affected);
        data->affected_rows = affected;
        data->result = std::move(result);
        data_ = std::move(data);
    }

    /// Number of rows.
    std::size_t size() const noexcept { return data_ ? data_->rows : 0; }
    /// Whether there are no rows.
    bool empty() const noexcept { return size() == 0; }
    /// Column names, in order.
    const std::vector<std::string>& columns() const noexcept {
        static const std::vector<std::string> none;
        return data_ ? data_->columns : none;
    }
    /// The type OID of column `index` (see dbpool::pg::oid); throws Error{usage} when out of
    /// range.
    Oid column_type(std::size_t index) const {
        if (index >= columns().size()) {
            throw Error(ErrorCode::usage, "pg: column " + std::to_string(index) + " out of range");
        }
        return data_->types[index];
    }
    /// Index of the column called `name` (exact, case-sensitive); throws Error{usage}.
    std::size_t column_index(std::string_view name) const {
        const auto& names = columns();
        for (std::size_t i = 0; i < names.size(); ++i) {
            if (names[i] == name) return i;
        }
        throw Error(ErrorCode::usage, "pg: the result has no column '" + std::string(name) + "'");
    }
    /// Row `index`; throws Error{usage} when out of range.
    Row row(std::size_t index) const {
        if (index >= size()) {
            throw Error(ErrorCode::usage, "pg: row " + std::to_string(index) + " out of range (" +
                                              std::to_string(size()) + " rows)");
        }
        return Row(data_, index);
    }
    /// Row `index` (checked, like row()).
    Row operator[](std::size_t index) const { return row(index); }
    /// Rows the statement inserted, updated, deleted or returned (from its command tag).
    std::uint64_t affected_rows() const noexcept { return data_ ? data_->affected_rows : 0; }
    /// The server's command tag, e.g. "SELECT 3".
    const std::string& command_tag() const noexcept {
        static const std::string none;
        return data_ ? data_->command_tag : none;
    }
    /// The first column of the first row as T; throws Error{usage} when the result is empty.
    template <class T>
    T scalar() const& {
        const Row first = row(0);  // a view into it stays valid while this ResultSet lives
        return first.template get<T>(0);
    }
    /// As scalar() on a temporary result; std::string_view is refused (it would dangle).
    template <class T>
    T scalar() && {
        static_assert(!detail::is_view<T>::value,
                      "a string_view from a temporary ResultSet would dangle: name it first");
        const Row first = row(0);
        return first.template get<T>(0);
    }
    /// The underlying PGresult, or null for an empty ResultSet; do not PQclear it.
    const PGresult* native_handle() const noexcept { return data_ ? data_->result.get() : nullptr; }

    /// Forward iterator over rows; valid while the ResultSet lives.
    class iterator {
    public:
        using value_type = Row;                             ///< What `*it` yields.
        using difference_type = std::ptrdiff_t;             ///< Distance between rows.
        using reference = Row;                              ///< Rows are returned by value.
        using pointer = void;                               ///< No `->`: use `(*it).get<T>()`.
        using iterator_category = std::input_iterator_tag;  ///< `*it` is a value, not a reference.
        /// Row `row` of `set`.
        iterator(const ResultSet* set, std::size_t row) noexcept : set_(set), row_(row) {}
        /// The current row (it shares the result's data, so it may outlive the iterator).
        Row operator*() const { return Row(set_->data_, row_); }
        /// The next row.
        iterator& operator++() noexcept {
            ++row_;
            return *this;
        }
        /// Whether both point at the same row.
        bool operator==(const iterator& other) const noexcept { return row_ == other.row_; }
        /// Whether they point at different rows.
        bool operator!=(const iterator& other) const noexcept { return row_ != other.row_; }

    private:
        const ResultSet* set_;
        std::size_t row_;
    };
    /// First row.
    iterator begin() const noexcept { return iterator(this, 0); }
    /// Past the last row.
    iterator end() const noexcept { return iterator(this, size()); }

private:
    std::shared_ptr<const detail::ResultData> data_;
};

inline std::size_t Row::column_index(std::string_view name) const {
    const auto& names = data_->columns;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i] == name) return i;
    }
    throw Error(ErrorCode::usage, "pg: the result has no column '" + std::string(name) + "'");
}

}  // namespace dbpool::pg

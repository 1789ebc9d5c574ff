#pragma once

#include <dbpool/error.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace dbpool::mysql {

/// Binary data for BLOB / VARBINARY parameters and columns.
using Blob = std::vector<std::byte>;

/// What a statement without a result set did.
struct ExecResult {
    std::uint64_t affected_rows = 0;   ///< Rows changed (or matched, per the server's flags).
    std::uint64_t last_insert_id = 0;  ///< AUTO_INCREMENT value of the last insert, or 0.
};

/// One stored column value: NULL, an integer, a floating-point number or text/bytes.
using Cell = std::variant<std::monostate, std::int64_t, std::uint64_t, double, std::string>;

namespace detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
[[noreturn]] void conversion_error(const std::string& column, const char* why) {
    throw Error(ErrorCode::usage, "mysql: column '" + column + "' " + why);
}

template <class T>
T integer_from(const Cell& cell, const std::string& column) {
    static_assert(std::is_integral_v<T>);
    if (const auto* text = std::get_if<std::string>(&cell)) {
        T value{};
        const char* end = text->data() + text->size();
        const auto result = std::from_chars(text->data(), end, value);
        if (result.ec != std::errc() || result.ptr != end) {
            conversion_error<T>(column, "holds text that is not an integer in range");
        }
        return value;
    }
    if (const auto* number = std::get_if<std::int64_t>(&cell)) {
        if constexpr (std::is_signed_v<T>) {
            if (*number >= std::numeric_limits<T>::min() &&
                *number <= std::numeric_limits<T>::max()) {
                return static_cast<T>(*number);
            }
        } else {
            if (*number >= 0 &&
                static_cast<std::uint64_t>(*number) <= std::numeric_limits<T>::max()) {
                return static_cast<T>(*number);
            }
        }
        conversion_error<T>(column, "holds an integer out of the requested type's range");
    }
    if (const auto* number = std::get_if<std::uint64_t>(&cell)) {
        if (*number <= static_cast<std::make_unsigned_t<T>>(std::numeric_limits<T>::max())) {
            return static_cast<T>(*number);
        }
        conversion_error<T>(column, "holds an integer out of the requested type's range");
    }
    if (const auto* number = std::get_if<double>(&cell)) {
        const double value = *number;
        // Range first: casting an out-of-range double to an integer is undefined.
        if (value >= static_cast<double>(std::numeric_limits<T>::min()) &&
            value <= static_cast<double>(std::numeric_limits<T>::max()) &&
            value == static_cast<double>(static_cast<T>(value))) {
            return static_cast<T>(value);
        }
        conversion_error<T>(column, "holds a non-integral number");
    }
    conversion_error<T>(column, "is NULL; read it as std::optional<T>");
}

template <class T>
T floating_from(const Cell& cell, const std::string& column) {
    if (const auto* number = std::get_if<double>(&cell)) return static_cast<T>(*number);
    if (const auto* number = std::get_if<std::int64_t>(&cell)) return static_cast<T>(*number);
    if (const auto* number = std::get_if<std::uint64_t>(&cell)) return static_cast<T>(*number);
    if (const auto* text = std::get_if<std::string>(&cell)) {
        T value{};
        const char* end = text->data() + text->size();
        const auto result = std::from_chars(text->data(), end, value);
        if (result.ec != std::errc() || result.ptr != end) {
            conversion_error<T>(column, "holds text that is not a number");
        }
        return value;
    }
    conversion_error<T>(column, "is NULL; read it as std::optional<T>");
}

template <class T>
T convert(const Cell& cell, const std::string& column) {
    if constexpr (is_optional<T>::value) {
        if (std::holds_alternative<std::monostate>(cell)) return std::nullopt;
        return convert<typename T::value_type>(cell, column);
    } else if constexpr (std::is_same_v<T, bool>) {
        if (const auto* text = std::get_if<std::string>(&cell)) {
            if (*text == "1") return true;
            if (*text == "0") return false;
        }
        return integer_from<std::int64_t>(cell, column) != 0;
    } else if constexpr (std::is_integral_v<T>) {
        return integer_from<T>(cell, column);
    } else if constexpr (std::is_floating_point_v<T>) {
        return floating_from<T>(cell, column);
    } else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>) {
        if (const auto* text = std::get_if<std::string>(&cell)) return T(*text);
        if constexpr (std::is_same_v<T, std::string>) {
            if (const auto* number = std::get_if<std::int64_t>(&cell)) {
                return std::to_string(*number);
            }
            if (const auto* number = std::get_if<std::uint64_t>(&cell)) {
                return std::to_string(*number);
            }
            if (const auto* number = std::get_if<double>(&cell)) {
                char buffer[32];
                const auto result = std::to_chars(buffer, buffer + sizeof buffer, *number);
                return std::string(buffer, result.ptr);
            }
        } else {
            if (!std::holds_alternative<std::monostate>(cell)) {
                conversion_error<T>(column, "is numeric; read it as std::string, not a view");
            }
        }
        conversion_error<T>(column, "is NULL; read it as std::optional<T>");
    } else if constexpr (std::is_same_v<T, Blob> || std::is_same_v<T, std::vector<unsigned char>>) {
        if (const auto* text = std::get_if<std::string>(&cell)) {
            T bytes(text->size());
            if (!text->empty()) std::memcpy(bytes.data(), text->data(), text->size());
            return bytes;
        }
        if (std::holds_alternative<std::monostate>(cell)) {
            conversion_error<T>(column, "is NULL; read it as std::optional<T>");
        }
        conversion_error<T>(column, "is numeric, not binary data");
    } else {
        static_assert(sizeof(T) == 0,
                      "get<T>: T must be an integer, bool, floating point, std::string, "
                      "std::string_view, Blob, or std::optional of one of them");
    }
}

}  // namespace detail

class ResultSet;

/// A view of one row of a ResultSet; valid while the ResultSet lives.
class Row {
public:
    /// The value of column `index` as T; NULL needs std::optional<T>. Throws Error on a bad
    /// index, a NULL read as non-optional or a failed conversion.
    template <class T>
    T get(std::size_t index) const;
    /// The value of the column called `name` as T (see get(index)).
    template <class T>
    T get(std::string_view name) const;
    /// Whether column `index` is NULL.
    bool is_null(std::size_t index) const;
    /// The stored value of column `index`.
    const Cell& cell(std::size_t index) const;
    /// The number of columns.
    std::size_t size() const noexcept;

private:
    friend class ResultSet;
    Row(const ResultSet* set, std::size_t row) noexcept : set_(set), row_(row) {}
    const ResultSet* set_;
    std::size_t row_;
};

/// All rows of a query, stored client-side; movable, not tied to the connection.
class ResultSet {
public:
    ResultSet() = default;
    /// Builds a result set from column names and row-major cells (used by the connection).
    ResultSet(std::vector<std::string> columns, std::vector<Cell> cells,
              std::uint64_t affected_rows)
        : columns_(std::move(columns)), cells_(std::move(cells)), affected_rows_(affected_rows) {}

    /// Number of rows.
    std::size_t size() const noexcept {
        return columns_.empty() ? 0 : cells_.size() / columns_.size();
    }
    /// Whether there are no rows.
    bool empty() const noexcept { return size() == 0; }
    /// Column names, in order.
    const std::vector<std::string>& columns() const noexcept { return columns_; }
    /// Index of the column called `name`; throws Error when there is none.
    std::size_t column_index(std::string_view name) const {
        for (std::size_t i = 0; i < columns_.size(); ++i) {
            if (columns_[i] == name) return i;
        }
        throw Error(ErrorCode::usage,
                    "mysql: the result has no column '" + std::string(name) + "'");
    }
    /// Row `index`; throws Error when out of range.
    Row row(std::size_t index) const {
        if (index >= size()) {
            throw Error(ErrorCode::usage, "mysql: row " + std::to_string(index) +
                                              " out of range (" + std::to_string(size()) +
                                              " rows)");
        }
        return Row(this, index);
    }
    /// Row `index` (checked, like row()).
    Row operator[](std::size_t index) const { return row(index); }
    /// Rows changed by the statement, for statements without a result set.
    std::uint64_t affected_rows() const noexcept { return affected_rows_; }
    /// The first column of the first row as T; throws Error when the result is empty.
    template <class T>
    T scalar() const {
        return row(0).template get<T>(0);
    }

    /// Forward iterator over rows.
    class iterator {
    public:
        using value_type = Row;
        using difference_type = std::ptrdiff_t;
        using reference = Row;
        using pointer = void;
        using iterator_category = std::input_iterator_tag;
        iterator(const ResultSet* set, std::size_t row) noexcept : set_(set), row_(row) {}
        Row operator*() const noexcept { return Row(set_, row_); }
        iterator& operator++() noexcept {
            ++row_;
            return *this;
        }
        bool operator==(const iterator& other) const noexcept { return row_ == other.row_; }
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
    friend class Row;
    std::vector<std::string> columns_;
    std::vector<Cell> cells_;
    std::uint64_t affected_rows_ = 0;
};

inline const Cell& Row::cell(std::size_t index) const {
    if (index >= set_->columns_.size()) {
        throw Error(ErrorCode::usage, "mysql: column " + std::to_string(index) + " out of range (" +
                                          std::to_string(set_->columns_.size()) + " columns)");
    }
    return set_->cells_[row_ * set_->columns_.size() + index];
}

inline bool Row::is_null(std::size_t index) const {
    return std::holds_alternative<std::monostate>(cell(index));
}

inline std::size_t Row::size() const noexcept { return set_->columns_.size(); }

template <class T>
T Row::get(std::size_t index) const {
    const Cell& value = cell(index);
    return detail::convert<T>(value, set_->columns_[index]);
}

template <class T>
T Row::get(std::string_view name) const {
    return get<T>(set_->column_index(name));
}

}  // namespace dbpool::mysql

#pragma once

/// \file
/// mysql::ResultSet and Row with get<T>() conversions; ExecResult, Cell and Blob.

#include <dbpool/detail/value_rules.hpp>
#include <dbpool/error.hpp>

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

/// One stored column value: NULL, an integer, a floating-point number or text/bytes. The binary
/// protocol (statements with arguments) yields numbers; the text protocol yields text.
using Cell = std::variant<std::monostate, std::int64_t, std::uint64_t, double, std::string>;

namespace detail {

using dbpool::detail::is_optional;
using dbpool::detail::is_view;

[[noreturn]] inline void conversion_error(const std::string& column, const char* why) {
    dbpool::detail::conversion_error({"mysql", column}, why);
}

// The binary protocol gives numbers, the text protocol text: both are read by the shared
// rules (dbpool/detail/value_rules.hpp), so a value converts the same over either.
template <class T>
T integer_from(const Cell& cell, const std::string& column) {
    const dbpool::detail::ValueSite site{"mysql", column};
    if (const auto* text = std::get_if<std::string>(&cell)) {
        return dbpool::detail::integer_from_text<T>(*text, site);
    }
    if (const auto* number = std::get_if<std::int64_t>(&cell)) {
        return dbpool::detail::integer_from_signed<T>(*number, site);
    }
    if (const auto* number = std::get_if<std::uint64_t>(&cell)) {
        return dbpool::detail::integer_from_unsigned<T>(*number, site);
    }
    if (const auto* number = std::get_if<double>(&cell)) {
        return dbpool::detail::integer_from_double<T>(*number, site);
    }
    dbpool::detail::null_error(site);
}

template <class T>
T floating_from(const Cell& cell, const std::string& column) {
    static_assert(std::is_floating_point_v<T>);
    const dbpool::detail::ValueSite site{"mysql", column};
    if (const auto* number = std::get_if<std::int64_t>(&cell)) return static_cast<T>(*number);
    if (const auto* number = std::get_if<std::uint64_t>(&cell)) return static_cast<T>(*number);
    if (const auto* number = std::get_if<double>(&cell)) {
        return dbpool::detail::floating_from_double<T>(*number, site);
    }
    if (const auto* text = std::get_if<std::string>(&cell)) {
        return dbpool::detail::floating_from_text<T>(*text, site);
    }
    dbpool::detail::null_error(site);
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
                conversion_error(column, "is numeric; read it as std::string, not a view");
            }
        }
        conversion_error(column, "is NULL; read it as std::optional<T>");
    } else if constexpr (std::is_same_v<T, Blob> || std::is_same_v<T, std::vector<unsigned char>>) {
        if (const auto* text = std::get_if<std::string>(&cell)) {
            T bytes(text->size());
            if (!text->empty()) std::memcpy(bytes.data(), text->data(), text->size());
            return bytes;
        }
        if (std::holds_alternative<std::monostate>(cell)) {
            conversion_error(column, "is NULL; read it as std::optional<T>");
        }
        conversion_error(column, "is numeric, not binary data");
    } else {
        static_assert(sizeof(T) == 0,
                      "get<T>: T must be an integer, bool, floating point, std::string, "
                      "std::string_view, Blob, or std::optional of one of them");
    }
}

// The rows of one result, shared by the ResultSet and every Row taken from it.
struct ResultData {
    std::vector<std::string> columns;
    std::vector<Cell> cells;  // row-major
    std::uint64_t affected_rows = 0;

    std::size_t rows() const noexcept {
        return columns.empty() ? 0 : cells.size() / columns.size();
    }

    std::size_t column_index(std::string_view name) const {
        for (std::size_t i = 0; i < columns.size(); ++i) {
            if (columns[i] == name) return i;
        }
        throw Error(ErrorCode::usage,
                    "mysql: the result has no column '" + std::string(name) + "'");
    }

    const Cell& cell(std::size_t row, std::size_t column) const {
        if (column >= columns.size()) {
            throw Error(ErrorCode::usage, "mysql: column " + std::to_string(column) +
                                              " out of range (" + std::to_string(columns.size()) +
                                              " columns)");
        }
        return cells[row * columns.size() + column];
    }
};

}  // namespace detail

/// One row of a result. It shares ownership of the result's data, so it stays valid on its own:
/// `auto row = conn.query(...)[0]; row.get<std::string>("name");` is safe.
///
/// get<std::string_view> (a view into the row's data) needs a named Row (`auto row = rows[0];`
/// or `for (const auto& row : rows)`): on a temporary Row the view would dangle at the end of
/// the statement, so the compiler refuses it.
///
/// Thread-safety: a Row is immutable; copies may be used from several threads at once.
class Row {
public:
    /// The value of column `index` as T; NULL needs std::optional<T>. Throws Error{usage} on a
    /// bad index, a NULL read as non-optional or a failed conversion (naming the column).
    template <class T>
    T get(std::size_t index) const& {
        return detail::convert<T>(data_->cell(row_, index), data_->columns[index]);
    }
    /// On a temporary Row: every T except views (a view would dangle; compile error).
    template <class T>
    T get(std::size_t index) const&& {
        static_assert(!detail::is_view<T>::value,
                      "get<std::string_view> on a temporary Row: "
                      "it would dangle; keep the row in a variable "
                      "(auto row = ...;) or read std::string");
        return detail::convert<T>(data_->cell(row_, index), data_->columns[index]);
    }
    /// The value of the column called `name` as T (see get(index)).
    template <class T>
    T get(std::string_view name) const& {
        return get<T>(data_->column_index(name));
    }
    /// On a temporary Row: every T except views (see get(index) &&).
    template <class T>
    T get(std::string_view name) const&& {
        static_assert(!detail::is_view<T>::value,
                      "get<std::string_view> on a temporary Row: it would dangle; keep the row in "
                      "a variable (auto row = ...;) or read std::string");
        const std::size_t index = data_->column_index(name);
        return detail::convert<T>(data_->cell(row_, index), data_->columns[index]);
    }
    /// Whether column `index` is NULL.
    bool is_null(std::size_t index) const {
        return std::holds_alternative<std::monostate>(data_->cell(row_, index));
    }
    /// The stored value of column `index` (a reference into data this Row keeps alive).
    const Cell& cell(std::size_t index) const& { return data_->cell(row_, index); }
    /// The stored value of column `index`, copied out of a temporary Row.
    Cell cell(std::size_t index) const&& { return data_->cell(row_, index); }
    /// The number of columns.
    std::size_t size() const noexcept { return data_->columns.size(); }
    /// Column names, in order.
    const std::vector<std::string>& columns() const& noexcept { return data_->columns; }
    /// Column names, copied out of a temporary Row.
    std::vector<std::string> columns() const&& { return data_->columns; }

private:
    friend class ResultSet;
    Row(std::shared_ptr<const detail::ResultData> data, std::size_t row) noexcept
        : data_(std::move(data)), row_(row) {}
    std::shared_ptr<const detail::ResultData> data_;
    std::size_t row_;
};

/// All rows of one result, stored client-side; cheap to copy (the rows are shared and never
/// change), not tied to the connection.
///
/// Thread-safety: immutable; copies and rows may be used from several threads at once.
class ResultSet {
public:
    ResultSet() = default;
    /// Builds a result set from column names and row-major cells (used by the connection);
    /// throws Error{usage} when the cells do not fill whole rows.
    ResultSet(std::vector<std::string> columns, std::vector<Cell> cells,
              std::uint64_t affected_rows) {
        if (columns.empty() ? !cells.empty() : cells.size() % columns.size() != 0) {
            throw Error(ErrorCode::usage, "mysql: ResultSet cells do not fill whole rows");
        }
        auto data = std::make_shared<detail::ResultData>();
        data->columns = std::move(columns);
        data->cells = std::move(cells);
        data->affected_rows = affected_rows;
        data_ = std::move(data);
    }

    /// Number of rows.
    std::size_t size() const noexcept { return data_ ? data_->rows() : 0; }
    /// Whether there are no rows.
    bool empty() const noexcept { return size() == 0; }
    /// Column names, in order.
    const std::vector<std::string>& columns() const& noexcept {
        return data_ ? data_->columns : no_columns();
    }
    /// Column names, copied out of a temporary ResultSet.
    std::vector<std::string> columns() const&& { return columns(); }
    /// Index of the column called `name`; throws Error{usage} when there is none.
    std::size_t column_index(std::string_view name) const {
        if (!data_) {
            throw Error(ErrorCode::usage,
                        "mysql: the result has no column '" + std::string(name) + "'");
        }
        return data_->column_index(name);
    }
    /// Row `index`, which keeps the rows alive; throws Error{usage} when out of range.
    Row row(std::size_t index) const {
        if (index >= size()) {
            throw Error(ErrorCode::usage, "mysql: row " + std::to_string(index) +
                                              " out of range (" + std::to_string(size()) +
                                              " rows)");
        }
        return Row(data_, index);
    }
    /// Row `index` (checked, like row()).
    Row operator[](std::size_t index) const { return row(index); }
    /// Rows changed by the statement, for statements without a result set.
    std::uint64_t affected_rows() const noexcept { return data_ ? data_->affected_rows : 0; }
    /// The first column of the first row as T; throws Error{usage} when the result is empty.
    template <class T>
    T scalar() const& {
        // A named row: a view stays valid as long as this result (which shares the data).
        const Row first = row(0);
        return first.get<T>(0);
    }
    /// On a temporary ResultSet: every T except views (a view would dangle; compile error).
    template <class T>
    T scalar() const&& {
        static_assert(!detail::is_view<T>::value,
                      "scalar<std::string_view> on a temporary ResultSet: it would dangle; keep "
                      "the result in a variable or read std::string");
        return row(0).template get<T>(0);
    }

    /// Input iterator over rows; each Row it yields keeps the data alive.
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
    iterator begin() const& noexcept { return iterator(this, 0); }
    /// Past the last row.
    iterator end() const& noexcept { return iterator(this, size()); }
    /// Iterators into a temporary would dangle (range-for over a temporary is fine: it binds
    /// the temporary to a reference first).
    iterator begin() const&& = delete;
    /// See begin() &&.
    iterator end() const&& = delete;

private:
    static const std::vector<std::string>& no_columns() noexcept {
        static const std::vector<std::string> none;
        return none;
    }
    std::shared_ptr<const detail::ResultData> data_;
};

}  // namespace dbpool::mysql

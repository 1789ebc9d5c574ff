#pragma once

#include <dbpool/mysql/binding.hpp>

#include <mysql.h>

#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dbpool::mysql::detail {

// One prepared statement with the storage its parameters are bound to (binding.hpp,
// ParamBinding): the statement is bound once, and later executions write new values into the
// same slots, so the client library's bind call runs again only when an address or type changes.
struct PreparedStatement {
    MYSQL_STMT* handle = nullptr;
    ParamBinding params;
};

// Prepared statements of one connection, keyed by SQL, least recently used evicted first.
// Not thread-safe: a connection is used by one thread at a time.
class StatementCache {
public:
    explicit StatementCache(std::size_t capacity = 64) : capacity_(capacity) {}
    StatementCache(const StatementCache&) = delete;
    StatementCache& operator=(const StatementCache&) = delete;
    StatementCache(StatementCache&& other) noexcept
        : capacity_(other.capacity_),
          entries_(std::move(other.entries_)),
          index_(std::move(other.index_)) {
        other.entries_.clear();
        other.index_.clear();
    }
    StatementCache& operator=(StatementCache&& other) noexcept {
        if (this != &other) {
            clear();
            capacity_ = other.capacity_;
            entries_ = std::move(other.entries_);
            index_ = std::move(other.index_);
            other.entries_.clear();
            other.index_.clear();
        }
        return *this;
    }
    ~StatementCache() { clear(); }

    // The cached statement for `sql`, marked most recently used, or null. The entry stays at
    // its address until it is erased or evicted (list nodes do not move).
    PreparedStatement* find(const std::string& sql) {
        const auto found = index_.find(sql);
        if (found == index_.end()) return nullptr;
        entries_.splice(entries_.begin(), entries_, found->second);
        return &found->second->second;
    }

    // Takes ownership of `statement`; evicts (closes) the least recently used beyond capacity,
    // never the statement just inserted.
    PreparedStatement& insert(const std::string& sql, MYSQL_STMT* statement) {
        erase(sql);
        entries_.emplace_front(sql, PreparedStatement{statement, {}});
        index_.emplace(sql, entries_.begin());
        while (entries_.size() > capacity_ && entries_.size() > 1) {
            MYSQL_STMT* oldest = entries_.back().second.handle;
            index_.erase(entries_.back().first);
            entries_.pop_back();
            mysql_stmt_close(oldest);
        }
        return entries_.front().second;
    }

    // Closes and forgets the statement for `sql`, if cached.
    void erase(const std::string& sql) {
        const auto found = index_.find(sql);
        if (found == index_.end()) return;
        MYSQL_STMT* statement = found->second->second.handle;
        entries_.erase(found->second);
        index_.erase(found);
        mysql_stmt_close(statement);
    }

    // Closes every statement (COM_STMT_CLOSE needs no reply, so this costs no round trip).
    void clear() noexcept {
        for (auto& entry : entries_)
            mysql_stmt_close(entry.second.handle);
        entries_.clear();
        index_.clear();
    }

    // Forgets every statement without closing it: after fork() the handles belong to the
    // parent's connection and freeing them could write to its socket.
    void leak() noexcept {
        entries_.clear();
        index_.clear();
    }

    std::size_t size() const noexcept { return entries_.size(); }
    std::size_t capacity() const noexcept { return capacity_; }

private:
    using Entry = std::pair<std::string, PreparedStatement>;
    std::size_t capacity_;
    std::list<Entry> entries_;
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace dbpool::mysql::detail

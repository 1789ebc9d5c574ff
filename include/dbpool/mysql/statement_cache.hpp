#pragma once

#include <mysql.h>

#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace dbpool::mysql::detail {

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

    // The cached statement for `sql`, marked most recently used, or null.
    MYSQL_STMT* find(const std::string& sql) {
        const auto found = index_.find(sql);
        if (found == index_.end()) return nullptr;
        entries_.splice(entries_.begin(), entries_, found->second);
        return found->second->second;
    }

    // Takes ownership of `statement`; evicts (closes) the least recently used beyond capacity.
    void insert(const std::string& sql, MYSQL_STMT* statement) {
        erase(sql);
        entries_.emplace_front(sql, statement);
        index_.emplace(sql, entries_.begin());
        while (entries_.size() > capacity_) {
            MYSQL_STMT* oldest = entries_.back().second;
            index_.erase(entries_.back().first);
            entries_.pop_back();
            mysql_stmt_close(oldest);
        }
    }

    // Closes and forgets the statement for `sql`, if cached.
    void erase(const std::string& sql) {
        const auto found = index_.find(sql);
        if (found == index_.end()) return;
        MYSQL_STMT* statement = found->second->second;
        entries_.erase(found->second);
        index_.erase(found);
        mysql_stmt_close(statement);
    }

    // Closes every statement (COM_STMT_CLOSE needs no reply, so this costs no round trip).
    void clear() noexcept {
        for (auto& entry : entries_)
            mysql_stmt_close(entry.second);
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
    using Entry = std::pair<std::string, MYSQL_STMT*>;
    std::size_t capacity_;
    std::list<Entry> entries_;
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace dbpool::mysql::detail

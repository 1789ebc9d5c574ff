#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dbpool::pg::detail {

// Names of the server-side prepared statements of one connection, keyed by SQL and argument
// types, least recently used evicted first. Pure bookkeeping: the connection prepares and
// deallocates. Not thread-safe: a connection is used by one thread at a time.
class StatementCache {
public:
    explicit StatementCache(std::size_t capacity = 64) : capacity_(capacity) {}

    // The statement name for `key`, marked most recently used, or null.
    const std::string* find(const std::string& key) {
        const auto found = index_.find(key);
        if (found == index_.end()) return nullptr;
        entries_.splice(entries_.begin(), entries_, found->second);
        return &found->second->second;
    }

    // A name no statement of this connection has used yet.
    std::string next_name() { return "dbpool_" + std::to_string(++counter_); }

    // Records `name` for `key`; returns the names evicted beyond capacity, which the caller
    // deallocates on the server.
    std::vector<std::string> insert(const std::string& key, std::string name) {
        std::vector<std::string> evicted;
        if (const auto found = index_.find(key); found != index_.end()) {
            evicted.push_back(std::move(found->second->second));
            entries_.erase(found->second);
            index_.erase(found);
        }
        entries_.emplace_front(key, std::move(name));
        index_.emplace(key, entries_.begin());
        while (entries_.size() > capacity_) {
            evicted.push_back(std::move(entries_.back().second));
            index_.erase(entries_.back().first);
            entries_.pop_back();
        }
        return evicted;
    }

    // Forgets `key` (e.g. the server no longer knows its statement).
    void erase(const std::string& key) {
        const auto found = index_.find(key);
        if (found == index_.end()) return;
        entries_.erase(found->second);
        index_.erase(found);
    }

    // Forgets every statement (after DISCARD ALL, or when the session is gone).
    void clear() noexcept {
        entries_.clear();
        index_.clear();
    }

    std::size_t size() const noexcept { return entries_.size(); }
    std::size_t capacity() const noexcept { return capacity_; }

private:
    using Entry = std::pair<std::string, std::string>;  // key, statement name
    std::size_t capacity_;
    std::uint64_t counter_ = 0;
    std::list<Entry> entries_;
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace dbpool::pg::detail

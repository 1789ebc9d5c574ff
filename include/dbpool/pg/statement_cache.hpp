#pragma once

#include <chrono>
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
    explicit StatementCache(std::size_t capacity = 64)
        : capacity_(capacity), prefix_(unique_prefix()) {}

    // The statement name for `key`, marked most recently used, or null.
    const std::string* find(const std::string& key) {
        const auto found = index_.find(key);
        if (found == index_.end()) return nullptr;
        entries_.splice(entries_.begin(), entries_, found->second);
        return &found->second->second;
    }

    // A name no statement of this connection has used yet, and (with 64 bits of chance) no
    // other connection either: behind a pooler in transaction mode (PgBouncer before 1.21) a
    // client's statements run on server sessions that other clients prepare on too, and with
    // the same "dbpool_1" everywhere a client ran another client's statement of that name.
    // Distinct names turn that into "prepared statement does not exist" (26000).
    std::string next_name() { return prefix_ + std::to_string(++counter_); }

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
    // "dbpool_<16 hex digits>_": this object's address and both clocks' nanoseconds, mixed
    // (splitmix64). No <random>: this header is in every PostgreSQL user's build.
    std::string unique_prefix() const {
        const auto mix = [](std::uint64_t x) {
            x += 0x9e3779b97f4a7c15ULL;
            x = (x ^ (x >> 30U)) * 0xbf58476d1ce4e5b9ULL;
            x = (x ^ (x >> 27U)) * 0x94d049bb133111ebULL;
            return x ^ (x >> 31U);
        };
        std::uint64_t token = mix(reinterpret_cast<std::uintptr_t>(this));
        token = mix(token ^ static_cast<std::uint64_t>(
                                std::chrono::steady_clock::now().time_since_epoch().count()));
        token = mix(token ^ static_cast<std::uint64_t>(
                                std::chrono::system_clock::now().time_since_epoch().count()));
        std::string prefix = "dbpool_";
        for (int shift = 60; shift >= 0; shift -= 4)
            prefix += "0123456789abcdef"[(token >> static_cast<unsigned>(shift)) & 0xFU];
        prefix += '_';
        return prefix;
    }

    using Entry = std::pair<std::string, std::string>;  // key, statement name
    std::size_t capacity_;
    std::string prefix_;
    std::uint64_t counter_ = 0;
    std::list<Entry> entries_;
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace dbpool::pg::detail

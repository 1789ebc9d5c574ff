#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>

namespace dbpool::detail {

// A pool's slots, in chunks that never move once allocated: the lock-free acquire scans them
// without the pool's lock while the table grows under it. Chunk c holds 32 * 2^c slots, so a
// handful of chunk pointers cover any pool, and a small pool costs one chunk.
template <class Slot>
class SlotTable {
    static constexpr std::size_t first_chunk = 32;
    static constexpr std::size_t chunk_count = 26;  // 32 * (2^26 - 1) slots: never the limit

public:
    SlotTable() = default;
    SlotTable(const SlotTable&) = delete;
    SlotTable& operator=(const SlotTable&) = delete;

    ~SlotTable() {
        for (auto& chunk : chunks_)
            delete[] chunk.load(std::memory_order_relaxed);
    }

    // Slots published so far; each of them may be read without the lock.
    std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }

    Slot& operator[](std::size_t index) const noexcept {
        const std::size_t group = (index / first_chunk) + 1;  // 1-based: chunk c starts at 2^c
        const auto chunk = static_cast<std::size_t>(63 - __builtin_clzll(group));
        const std::size_t offset = index - first_chunk * ((std::size_t{1} << chunk) - 1);
        return chunks_[chunk].load(std::memory_order_acquire)[offset];
    }

    // A new slot at the end (under the owner's lock, the only writer).
    Slot& grow() {
        const std::size_t index = size_.load(std::memory_order_relaxed);
        const std::size_t group = (index / first_chunk) + 1;
        const auto chunk = static_cast<std::size_t>(63 - __builtin_clzll(group));
        if (chunks_[chunk].load(std::memory_order_relaxed) == nullptr) {
            chunks_[chunk].store(new Slot[first_chunk << chunk], std::memory_order_release);
        }
        size_.store(index + 1, std::memory_order_release);
        return (*this)[index];
    }

    // Iteration over the slots published when it begins.
    class Iterator {
    public:
        Iterator(const SlotTable& table, std::size_t index) : table_(&table), index_(index) {}
        Slot& operator*() const noexcept { return (*table_)[index_]; }
        Iterator& operator++() noexcept {
            ++index_;
            return *this;
        }
        bool operator!=(const Iterator& other) const noexcept { return index_ != other.index_; }

    private:
        const SlotTable* table_;
        std::size_t index_;
    };

    Iterator begin() const noexcept { return Iterator(*this, 0); }
    Iterator end() const noexcept { return Iterator(*this, size()); }

private:
    std::array<std::atomic<Slot*>, chunk_count> chunks_{};
    std::atomic<std::size_t> size_{0};
};

}  // namespace dbpool::detail

#pragma once

#include <dbpool/detail/sync.hpp>

#include <utility>

namespace dbpool::detail {

// Lets a pool's user callbacks (on_event, on_leak) run until close(), and never after it
// returns: pool workers may still be finishing I/O then, but the objects the callbacks refer to
// may be destroyed as soon as the pool is. A callback that throws is ignored. No lock: a
// callback may call back into the pool (stats(), even close()).
template <class Sync = StdSync>
class CallbackGate {
public:
    template <class Callback, class... Args>
    void call(const Callback& callback, Args&&... args) noexcept {
        running_.fetch_add(1, std::memory_order_seq_cst);
        if (!stopped_.load(std::memory_order_seq_cst)) {
            const Frame outer = current();
            current() = Frame{this, outer.gate == this ? outer.depth + 1 : 1};
            try {
                callback(std::forward<Args>(args)...);
            } catch (...) {
                // A throwing callback must not break the pool.
            }
            current() = outer;
        }
        running_.fetch_sub(1, std::memory_order_seq_cst);
    }

    // Refuses further calls and waits for those running on other threads (callbacks must not
    // block, so this is short); a callback that closes its own pool does not wait for itself.
    void stop() noexcept {
        stopped_.store(true, std::memory_order_seq_cst);
        const int self = current().gate == this ? current().depth : 0;
        while (running_.load(std::memory_order_seq_cst) > self)
            Sync::yield();
    }

    // Whether the calling thread is inside one of this gate's callbacks.
    bool in_callback() const noexcept { return current().gate == this; }

private:
    // The gate whose callbacks this thread is running, and how deeply nested.
    struct Frame {
        const CallbackGate* gate = nullptr;
        int depth = 0;
    };

    static Frame& current() noexcept {
        thread_local Frame frame;
        return frame;
    }

    typename Sync::template atomic<int> running_{0};
    typename Sync::template atomic<bool> stopped_{false};
};

}  // namespace dbpool::detail

#pragma once

#include <condition_variable>
#include <mutex>

namespace dbpool::detail {

// Test builds (the project's own tests define DBPOOL_CHECK_INVARIANTS) check a pool's
// invariants at the end of every locked section; other builds compile the checks away.
#if defined(DBPOOL_CHECK_INVARIANTS) && DBPOOL_CHECK_INVARIANTS
inline constexpr bool checking_invariants = true;
#else
inline constexpr bool checking_invariants = false;
#endif

// The pool's lock: a std::unique_lock on its mutex whose locked sections end with a check of
// the owner's invariants (Owner::check_invariants_locked(), in test builds): before every
// unlock, including the one at the end of its scope, and before every wait it is given to.
// A section ends there because that is where other threads start to see what it did.
template <class Owner, class Mutex>
class PoolLock : public std::unique_lock<Mutex> {
    using Base = std::unique_lock<Mutex>;

public:
    explicit PoolLock(const Owner& owner) : Base(owner.pool_mutex()), owner_(&owner) {}

    PoolLock(PoolLock&&) noexcept = default;
    PoolLock& operator=(PoolLock&&) = delete;
    PoolLock(const PoolLock&) = delete;
    PoolLock& operator=(const PoolLock&) = delete;

    ~PoolLock() {
        if (this->owns_lock()) check();
    }

    void unlock() {
        check();
        Base::unlock();
    }

    template <class CondVar>
    void wait(CondVar& condition) {
        check();
        condition.wait(*this);
    }

    template <class CondVar, class TimePoint>
    void wait_until(CondVar& condition, const TimePoint& until) {
        check();
        condition.wait_until(*this, until);
    }

private:
    void check() const noexcept {
        if constexpr (checking_invariants) owner_->check_invariants_locked();
    }

    const Owner* owner_;
};

}  // namespace dbpool::detail

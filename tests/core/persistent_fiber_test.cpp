// PersistentPool keyed by Boost.Fiber fibers (<dbpool/contexts/boost_fiber.hpp>): the lifecycle
// PersistentPool has for threads, with real fibers. Built only where Boost.Fiber is installed.
//
// Every exception here is thrown on a thread's main fiber (itself a context of the pool): Debian's
// Boost.Context switches stacks without telling AddressSanitizer (that needs Boost built with
// ucontext and BOOST_USE_ASAN), so an exception unwinding a worker fiber's stack is reported as
// a false stack-use-after-scope.
#include "pool_test_support.hpp"

#include <dbpool/contexts/boost_fiber.hpp>
#include <dbpool/persistent_pool.hpp>
#include <dbpool/transaction.hpp>

#include <boost/fiber/all.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <set>
#include <thread>
#include <vector>

using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::Ping;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::has_code;
using fake::ManualClock;
using namespace std::chrono_literals;

namespace {

using FiberPool = dbpool::PersistentPool<FakeConnection, ManualClock, dbpool::BoostFiberContext>;
using Handle = FiberPool::handle_type;

struct FiberFixture {
    std::shared_ptr<FakeDatabase> db = std::make_shared<FakeDatabase>();
    std::unique_ptr<FiberPool> pool = make();

    std::unique_ptr<FiberPool> make() {
        dbpool::PersistentOptions options;
        options.ping = Ping::never;
        options.ping_bypass = 0ms;
        return std::make_unique<FiberPool>(FakeDatabase::creator<FakeConnection>(db), options);
    }

    void check_count() const {
        CHECK(pool->open_connections() == static_cast<std::size_t>(db->open_now()));
    }
};

}  // namespace

TEST_CASE_METHOD(FiberFixture,
                 "persistent fibers: one connection per fiber, closed when the fiber ends",
                 "[persistent][context][fiber]") {
    constexpr int fibers = 10;
    std::set<int> ids;
    int live_max = 0;
    std::vector<boost::fibers::fiber> running;
    for (int i = 0; i < fibers; ++i) {
        running.emplace_back([&] {
            auto handle = pool->connection();
            dbpool::Transaction<Handle> tx(handle);  // the guard stays quiet: one fiber each
            handle->execute("debit");
            boost::this_fiber::yield();        // every other fiber runs its transaction meanwhile
            auto helper = pool->connection();  // a second handle in the fiber shares it
            CHECK(helper->raw().id() == handle->raw().id());
            helper->execute("credit");
            tx.commit();
            ids.insert(handle->raw().id());
            live_max = std::max(live_max, db->open_now());
        });
    }
    for (auto& fiber : running)
        fiber.join();
    CHECK(ids.size() == static_cast<std::size_t>(fibers));
    CHECK(live_max == fibers);
    CHECK(db->commits() == fibers);
    CHECK(db->open_now() == 0);  // each closed at its fiber's end
    check_count();
}

TEST_CASE_METHOD(FiberFixture, "persistent fibers: the pool closed or destroyed first",
                 "[persistent][context][fiber]") {
    const bool destroy = GENERATE(false, true);
    boost::fibers::mutex mutex;
    boost::fibers::condition_variable changed;
    bool ready = false;
    bool closed = false;
    boost::fibers::fiber idle([&] {
        auto handle = pool->connection();
        handle->execute("s");
    });
    idle.join();  // ended: already closed
    boost::fibers::fiber holder([&] {
        auto handle = pool->connection();
        {
            std::unique_lock<boost::fibers::mutex> lock(mutex);
            ready = true;
            changed.notify_all();
            changed.wait(lock, [&] { return closed; });
        }
        handle->execute("after close");
    });
    boost::fibers::fiber other([&] {
        {
            std::unique_lock<boost::fibers::mutex> lock(mutex);
            changed.wait(lock, [&] { return ready; });
        }
        {
            auto handle = pool->connection();  // idle in this fiber's table at the close
            handle->execute("s");
        }
        {
            std::unique_lock<boost::fibers::mutex> lock(mutex);
            changed.wait(lock, [&] { return closed; });
        }
    });
    {
        std::unique_lock<boost::fibers::mutex> lock(mutex);
        changed.wait(lock, [&] { return ready; });
    }
    while (db->opens() < 3)
        boost::this_fiber::yield();
    if (destroy) {
        pool.reset();
    } else {
        pool->close();
    }
    CHECK(db->open_now() == 1);  // the holder's, in use
    {
        std::unique_lock<boost::fibers::mutex> lock(mutex);
        closed = true;
        changed.notify_all();
    }
    if (!destroy) {
        CHECK_THROWS_MATCHES(pool->connection(), dbpool::Error, has_code(ErrorCode::pool_closed));
    }
    holder.join();
    other.join();
    CHECK(db->open_now() == 0);
    CHECK(db->opens() == 3);
    CHECK(db->closes() == 3);
}

TEST_CASE_METHOD(FiberFixture,
                 "persistent fibers: a broken connection and a lost transaction stay in their "
                 "fiber",
                 "[persistent][context][fiber]") {
    bool lost = false;
    bool other_committed = false;
    boost::fibers::fiber other([&] {
        auto handle = pool->connection();
        handle.begin();
        handle->execute("w");
        boost::this_fiber::yield();
        boost::this_fiber::yield();
        handle.commit();
        other_committed = true;
    });
    boost::this_fiber::yield();  // the other fiber begins its transaction
    {
        auto handle = pool->connection();  // this thread's main fiber: a context of its own
        handle.begin();
        db->fail_statements(1, Failure::broken);
        try {
            handle->execute("w");
        } catch (const dbpool::Error& e) {
            lost = e.code() == ErrorCode::transaction_lost;
        }
        handle.rollback();
        handle->execute("reopened");
    }
    other.join();
    CHECK(lost);
    CHECK(other_committed);
    CHECK(db->open_now() == 1);  // the main fiber's, until this thread ends or the pool closes
    check_count();
    pool->close();
    CHECK(db->open_now() == 0);
}

TEST_CASE_METHOD(FiberFixture,
                 "persistent fibers: fibers on two threads (the main fiber of each thread "
                 "included) leave nothing open",
                 "[persistent][context][fiber][concurrency]") {
    db->set_logging(false);
    std::atomic<int> transfers{0};
    const auto work = [&] {
        std::vector<boost::fibers::fiber> fibers;
        for (int i = 0; i < 50; ++i) {
            fibers.emplace_back([&] {
                auto handle = pool->connection();
                dbpool::Transaction<Handle> tx(handle);
                handle->execute("debit");
                boost::this_fiber::yield();
                handle->execute("credit");
                tx.commit();
                transfers.fetch_add(1);
            });
        }
        {
            auto handle = pool->connection();
            handle->execute("the thread's main fiber");
        }
        for (auto& fiber : fibers)
            fiber.join();
    };
    std::thread a(work);
    std::thread b(work);
    a.join();
    b.join();
    CHECK(transfers == 100);
    CHECK(db->open_now() == 0);  // the main fibers' connections closed at thread exit
    check_count();
}

// Regression tests of PersistentPool, one per bug, named after it: the count of open
// connections.
#include "pool_test_support.hpp"

#include <dbpool/persistent_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <thread>

using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::Ping;
using fake::eventually;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::has_code;
using fake::ManualClock;
using namespace std::chrono_literals;

namespace {

using Persistent = dbpool::PersistentPool<FakeConnection, ManualClock>;
using Handle = Persistent::handle_type;

struct PersistentFixture {
    std::shared_ptr<FakeDatabase> db = std::make_shared<FakeDatabase>();

    std::unique_ptr<Persistent> make(dbpool::PersistentOptions options = exact()) {
        return std::make_unique<Persistent>(FakeDatabase::creator<FakeConnection>(db),
                                            std::move(options));
    }

    static dbpool::PersistentOptions exact() {
        dbpool::PersistentOptions options;
        options.ping = Ping::never;
        options.ping_bypass = 0ms;
        return options;
    }

    // What the pool counts must be what is really open on the fake server.
    void check_count(const Persistent& pool) const {
        CHECK(pool.open_connections() == static_cast<std::size_t>(db->open_now()));
    }
};

}  // namespace

// --- open_connections() -------------------------------------------------------------------------

TEST_CASE_METHOD(PersistentFixture,
                 "regression: PersistentPool::open_connections() counts the connections really "
                 "open (broken statements, reconnects, closeable close, thread exit, pool close)",
                 "[regression][persistent]") {
    auto options = exact();
    SECTION("closeable = false") { options.closeable = false; }
    SECTION("closeable = true") { options.closeable = true; }
    auto pool = make(options);
    {
        auto handle = pool->connection();
        handle->execute("s");
        check_count(*pool);
        for (int i = 0; i < 3; ++i) {
            INFO("broken statement " << i + 1);
            db->fail_statements(1, Failure::broken);
            CHECK_THROWS(handle->execute("broken"));
            check_count(*pool);
            auto again = pool->connection();  // reopens
            check_count(*pool);
        }
        handle->reconnect();
        check_count(*pool);
        db->fail_statements(1, Failure::broken);
        CHECK_THROWS(handle->execute("broken"));
        handle.close();  // closes (closeable) or is ignored; the connection is already gone
        check_count(*pool);
    }
    {
        auto handle = pool->connection();
        handle->execute("s");
        handle.close();
        check_count(*pool);
    }
    for (int i = 0; i < 2; ++i) {
        auto handle = pool->connection();
        check_count(*pool);
    }
    std::atomic<bool> counted{false};  // assertions stay on the test's thread (Catch2)
    std::thread thread([&] {
        auto handle = pool->connection();
        handle->execute("s");
        counted = pool->open_connections() == 2 && db->open_now() == 2;
        db->fail_statements(1, Failure::broken);
        try {
            handle->execute("broken");
        } catch (const std::exception&) {
        }
        handle->execute("reopened");
    });
    thread.join();  // its connection closes at thread exit
    CHECK(counted);
    check_count(*pool);
    CHECK(pool->open_connections() == 1);
    pool->close();
    check_count(*pool);
    CHECK(pool->open_connections() == 0);
}

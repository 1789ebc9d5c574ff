// fork(): a child must not close (or use) the connections it inherited; it opens its own.
#include "../fork_support.hpp"
#include "pool_test_support.hpp"

#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

using fake::FakeConnection;
using fake::FakeDatabase;
using fake::test_options;

TEST_CASE("fork: the child opens its own connections and leaves the parent's alone", "[fork]") {
    DBPOOL_SKIP_FORK_UNDER_SANITIZERS();
    auto db = std::make_shared<FakeDatabase>();
    auto options = test_options();
    options.mincached = 2;
    dbpool::PooledPool<FakeConnection> pool(FakeDatabase::creator<FakeConnection>(db), options);
    REQUIRE(db->opens() == 2);

    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // In the child: the counters are this process's copy. Exit codes say what failed.
        int code = 0;
        try {
            auto handle = pool.connection();
            handle->execute("in the child");
            if (handle->raw().id() != 3) code = 1;
            if (db->abandons() != 2) code = 2;
            if (db->closes() != 0) code = 3;
            handle.close();
            pool.close();
            if (db->closes() != 1) code = 4;  // only the child's own connection
        } catch (...) {
            code = 5;
        }
        _exit(code);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);

    // The parent's connections are untouched and still usable.
    CHECK(db->closes() == 0);
    CHECK(db->abandons() == 0);
    auto handle = pool.connection();
    handle->execute("in the parent");
    CHECK(handle->raw().id() <= 2);
    CHECK(db->opens() == 2);
}

TEST_CASE("fork: a child never inherits a pool lock held by another thread", "[fork]") {
    DBPOOL_SKIP_CONCURRENT_FORK_UNDER_SANITIZERS();
    auto db = std::make_shared<FakeDatabase>();
    db->set_logging(false);
    auto options = test_options();
    options.maxconnections = 2;
    options.blocking = true;
    dbpool::PooledPool<FakeConnection> pool(FakeDatabase::creator<FakeConnection>(db), options);

    // Another thread takes the pool lock as often as it can (slow-path acquires and stats()).
    std::atomic<bool> stop{false};
    std::thread hammer([&] {
        for (int i = 0; i < 1000000 && !stop.load(); ++i) {
            auto first = pool.connection();
            auto second = pool.connection();  // the second one misses the fast path
            (void)pool.stats();
        }
    });
    int hung = 0;
    int failed = 0;
    for (int round = 0; round < 40; ++round) {
        const pid_t child = fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            alarm(5);  // a child stuck on an inherited lock dies of SIGALRM instead of hanging
            int code = 0;
            try {
                auto handle = pool.connection();
                handle->execute("in the child");
                (void)pool.stats();
            } catch (...) {
                code = 1;
            }
            _exit(code);
        }
        int status = 0;
        REQUIRE(waitpid(child, &status, 0) == child);
        if (WIFSIGNALED(status)) ++hung;
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0) ++failed;
    }
    stop = true;
    hammer.join();
    CHECK(hung == 0);
    CHECK(failed == 0);
}

// fork(): a child must not close (or use) the connections it inherited; it opens its own.
#include "pool_test_support.hpp"

#include <dbpool/pooled_pool.hpp>

#include <catch2/catch.hpp>

#include <memory>

#include <sys/wait.h>
#include <unistd.h>

using fake::FakeConnection;
using fake::FakeDatabase;
using fake::test_options;

TEST_CASE("fork: the child opens its own connections and leaves the parent's alone", "[fork]") {
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

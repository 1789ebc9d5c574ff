// Options validation: contradictions and out-of-range values are Error{invalid_options} naming
// the field (docs/dbutils-differences.md: contradictory limits).
#include "fake_connection.hpp"

#include <dbpool/persistent_pool.hpp>
#include <dbpool/pooled_pool.hpp>
#include <dbpool/steady_connection.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

using dbpool::ErrorCode;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::SharedFakeConnection;
using namespace std::chrono_literals;

namespace {

template <class Connection = FakeConnection>
void require_invalid_pool(const dbpool::PoolOptions& options, const std::string& field) {
    auto db = std::make_shared<FakeDatabase>();
    try {
        dbpool::PooledPool<Connection> pool(FakeDatabase::creator<Connection>(db), options);
        FAIL("accepted invalid options for " << field);
    } catch (const dbpool::Error& error) {
        CHECK(error.code() == ErrorCode::invalid_options);
        CHECK_THAT(error.what(), Catch::Contains("'" + field + "'"));
    }
    CHECK(db->opens() == 0);
}

void require_invalid_steady(const dbpool::SteadyOptions& options, const std::string& field) {
    auto db = std::make_shared<FakeDatabase>();
    try {
        dbpool::SteadyConnection<FakeConnection> steady(FakeDatabase::creator<FakeConnection>(db),
                                                        options);
        FAIL("accepted invalid options for " << field);
    } catch (const dbpool::Error& error) {
        CHECK(error.code() == ErrorCode::invalid_options);
        CHECK_THAT(error.what(), Catch::Contains("'" + field + "'"));
    }
    CHECK(db->opens() == 0);
}

dbpool::PoolOptions quiet() {
    dbpool::PoolOptions options;
    options.background_maintenance = false;
    return options;
}

}  // namespace

TEST_CASE("pool options: every negative count or duration names its field", "[options]") {
    using Setter = std::function<void(dbpool::PoolOptions&)>;
    const std::vector<std::pair<std::string, Setter>> cases = {
        {"mincached", [](auto& o) { o.mincached = -1; }},
        {"maxcached", [](auto& o) { o.maxcached = -1; }},
        {"maxshared", [](auto& o) { o.maxshared = -1; }},
        {"maxconnections", [](auto& o) { o.maxconnections = -1; }},
        {"maxusage", [](auto& o) { o.maxusage = -1; }},
        {"acquire_timeout", [](auto& o) { o.acquire_timeout = -1ms; }},
        {"handoff_after", [](auto& o) { o.handoff_after = -1us; }},
        {"ping_bypass", [](auto& o) { o.ping_bypass = -1ms; }},
        {"idle_timeout", [](auto& o) { o.idle_timeout = -1ms; }},
        {"max_lifetime", [](auto& o) { o.max_lifetime = -1ms; }},
        {"keepalive_interval", [](auto& o) { o.keepalive_interval = -1ms; }},
        {"leak_threshold", [](auto& o) { o.leak_threshold = -1ms; }},
        {"connect_backoff_min", [](auto& o) { o.connect_backoff_min = -1ms; }},
        {"connect_backoff_max", [](auto& o) { o.connect_backoff_max = -1ms; }},
        {"maintenance_interval", [](auto& o) { o.maintenance_interval = -1ms; }},
    };
    for (const auto& [field, set] : cases) {
        INFO(field);
        auto options = quiet();
        set(options);
        require_invalid_pool(options, field);
    }
}

TEST_CASE("pool options: contradictions name the field", "[options]") {
    auto options = quiet();
    SECTION("ping above 7") {
        options.ping = 8;
        require_invalid_pool(options, "ping");
    }
    SECTION("maxcached below mincached") {
        options.mincached = 3;
        options.maxcached = 2;
        require_invalid_pool(options, "maxcached");
    }
    SECTION("mincached above maxconnections") {
        options.mincached = 3;
        options.maxconnections = 2;
        require_invalid_pool(options, "mincached");
    }
    SECTION("maxcached above maxconnections") {
        options.maxcached = 3;
        options.maxconnections = 2;
        require_invalid_pool(options, "maxcached");
    }
    SECTION("maxshared above maxconnections for a shareable type") {
        options.maxshared = 3;
        options.maxconnections = 2;
        require_invalid_pool<SharedFakeConnection>(options, "maxshared");
    }
    SECTION("connect_backoff_max below connect_backoff_min") {
        options.connect_backoff_min = 200ms;
        options.connect_backoff_max = 100ms;
        require_invalid_pool(options, "connect_backoff_max");
    }
}

TEST_CASE("pool options: valid combinations are accepted", "[options]") {
    auto db = std::make_shared<FakeDatabase>();
    auto options = quiet();
    SECTION("defaults") {}
    SECTION("fixed size") {
        options.mincached = options.maxcached = options.maxconnections = 3;
        options.blocking = true;
    }
    SECTION("maxcached 0 means no limit, whatever mincached") { options.mincached = 2; }
    SECTION("ping 7, maxusage, all durations zero") {
        options.ping = dbpool::Ping::always;
        options.maxusage = 10;
        options.acquire_timeout = options.ping_bypass = 0ms;
        options.connect_backoff_min = options.connect_backoff_max = 0ms;
    }
    dbpool::PooledPool<FakeConnection> pool(FakeDatabase::creator<FakeConnection>(db), options);
    CHECK(db->opens() == options.mincached);
}

TEST_CASE("pool options: maxshared is ignored for types that cannot be shared", "[options]") {
    auto db = std::make_shared<FakeDatabase>();
    auto options = quiet();
    options.maxshared = 5;
    options.maxconnections = 2;  // would be a contradiction for a shareable type
    dbpool::PooledPool<FakeConnection> pool(FakeDatabase::creator<FakeConnection>(db), options);
    CHECK(pool.options().maxshared == 0);
    auto a = pool.connection();
    auto b = pool.connection();
    CHECK_FALSE(a.is_shared());
    CHECK(a->raw().id() != b->raw().id());
}

TEST_CASE("steady and persistent options: negative values and ping bits", "[options]") {
    dbpool::SteadyOptions options;
    SECTION("maxusage") {
        options.maxusage = -1;
        require_invalid_steady(options, "maxusage");
    }
    SECTION("ping") {
        options.ping = 8;
        require_invalid_steady(options, "ping");
    }
    SECTION("ping_bypass") {
        options.ping_bypass = -1ms;
        require_invalid_steady(options, "ping_bypass");
    }
    SECTION("persistent pool") {
        auto db = std::make_shared<FakeDatabase>();
        dbpool::PersistentOptions persistent;
        persistent.maxusage = -2;
        CHECK_THROWS_MATCHES(dbpool::PersistentPool<FakeConnection>(
                                 FakeDatabase::creator<FakeConnection>(db), persistent),
                             dbpool::Error,
                             Catch::Predicate<dbpool::Error>([](const dbpool::Error& e) {
                                 return e.code() == ErrorCode::invalid_options &&
                                        std::string(e.what()).find("maxusage") != std::string::npos;
                             }));
    }
}

// Multi-host creators without a server: loopback ports where nothing listens, so every host
// is "down" (2002/2003 at once). Checks the error names every host and never the password,
// that back-off prevents a connect storm from many threads, and the option checks.
#include <dbpool/dbpool.hpp>
#include <dbpool/mysql.hpp>
#include <dbpool/mysql/multi_host.hpp>
#include <dbpool/router.hpp>

#include <catch2/catch.hpp>

#include "../fault_support.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::mysql::ConnectOptions;
using dbpool::mysql::HostPolicy;
using dbpool::mysql::MultiHostConnector;
using dbpool::mysql::MultiHostOptions;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kPassword = "s3cret-Pa55word";

// A loopback port where connecting is refused: bound, never listening, and held until the
// program exits so that nothing else can take it meanwhile (dbpool_test::LoopbackSocket).
std::uint16_t closed_port() {
    static std::vector<std::unique_ptr<dbpool_test::LoopbackSocket>> held;
    held.push_back(std::make_unique<dbpool_test::LoopbackSocket>(false));
    return held.back()->port();
}

MultiHostOptions dead_hosts(int count) {
    MultiHostOptions options;
    for (int i = 0; i < count; ++i) {
        ConnectOptions host;
        host.host = "127.0.0.1";
        host.port = closed_port();
        host.user = "app";
        host.password = kPassword;
        host.database = "shop";
        host.connect_timeout = 1s;
        options.hosts.push_back(host);
    }
    return options;
}

}  // namespace

TEST_CASE("all hosts down: the error names every host, never the password", "[cluster][multi]") {
    MultiHostOptions options = dead_hosts(3);
    MultiHostConnector<> connector(options);
    try {
        (void)connector();
        FAIL("connected to a closed port");
    } catch (const Error& error) {
        const std::string what = error.what();
        CHECK(error.code() == ErrorCode::connect_failed);
        for (const auto& host : options.hosts) {
            CHECK(what.find("127.0.0.1:" + std::to_string(host.port)) != std::string::npos);
        }
        CHECK(what.find(kPassword) == std::string::npos);
        CHECK(what.find("s3cret") == std::string::npos);
        CHECK((error.native_code() == 2002 || error.native_code() == 2003));
    }
    CHECK(connector.attempts() == 3);
    // Right away again: every host is backing off, so nothing is tried and the error says so.
    try {
        (void)connector();
        FAIL("connected to a closed port");
    } catch (const Error& error) {
        CHECK(std::string(error.what()).find("skipped for") != std::string::npos);
        CHECK(std::string(error.what()).find(kPassword) == std::string::npos);
    }
    CHECK(connector.attempts() == 3);
}

TEST_CASE("all hosts down: many threads fail fast without a connect storm",
          "[cluster][multi][timing]") {
    MultiHostOptions options = dead_hosts(3);
    options.host_backoff = 200ms;
    options.host_backoff_max = 1s;
    MultiHostConnector<> connector(options);
    dbpool::PoolOptions pool_options;
    pool_options.maxconnections = 16;
    pool_options.blocking = true;
    pool_options.acquire_timeout = 2s;
    pool_options.connect_backoff_min = 100ms;
    pool_options.connect_backoff_max = 1s;
    dbpool::PooledPool<dbpool::mysql::Connection> pool(connector, pool_options);

    constexpr int kThreads = 8;
    const auto began = Clock::now();
    std::atomic<long> calls{0};
    std::atomic<long> typed{0};
    std::atomic<std::int64_t> slowest_us{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 100000 && Clock::now() < began + 2s; ++i) {
                const auto start = Clock::now();
                try {
                    auto conn = pool.connection();
                } catch (const Error& error) {
                    if (error.code() == ErrorCode::connect_failed) ++typed;
                }
                ++calls;
                const auto took =
                    std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start)
                        .count();
                std::int64_t seen = slowest_us.load();
                while (took > seen && !slowest_us.compare_exchange_weak(seen, took)) {
                }
                std::this_thread::sleep_for(1ms);
            }
        });
    }
    for (auto& thread : threads)
        thread.join();
    std::cout << "[cluster] all-hosts-down: " << calls.load() << " acquires from " << kThreads
              << " threads in 2 s, all connect_failed=" << (typed.load() == calls.load())
              << ", slowest " << slowest_us.load() / 1000.0 << " ms, " << connector.attempts()
              << " connect attempts to 3 hosts" << std::endl;
    CHECK(typed.load() == calls.load());
    CHECK(calls.load() > 1000);
    CHECK(slowest_us.load() < 500000);
    // Before anything failed, each of the 8 callers may try each host once (24); after that
    // one caller per host per back-off period: 0.2, 0.6, 1.4 s (200 ms doubling) -> 3 more
    // per host. Without back-off this would be one attempt per acquire (thousands).
    CHECK(connector.attempts() <= 24 + 9);
}

TEST_CASE("multi-host options are validated", "[cluster][multi]") {
    CHECK_THROWS_AS(MultiHostConnector<>(MultiHostOptions{}), Error);
    MultiHostOptions options = dead_hosts(2);
    options.hosts[1].port = 0;
    try {
        MultiHostConnector<> connector(options);
        FAIL("accepted port 0");
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::invalid_options);
        CHECK(std::string(error.what()).find("host 2") != std::string::npos);
    }
    options = dead_hosts(1);
    options.host_backoff = 2s;
    options.host_backoff_max = 1s;
    CHECK_THROWS_AS(MultiHostConnector<>(options), Error);
}

TEST_CASE("round robin and random policies start at different hosts", "[cluster][multi]") {
    MultiHostOptions options = dead_hosts(3);
    options.policy = HostPolicy::round_robin;
    options.host_backoff = 0ms;
    std::vector<std::uint16_t> first_tried;
    MultiHostConnector<> connector(options, [&](const ConnectOptions& host) {
        first_tried.push_back(host.port);
        throw Error(ErrorCode::connect_failed, "down", 2002);
        return dbpool::mysql::Connection(host);  // never reached
    });
    for (int i = 0; i < 3; ++i)
        CHECK_THROWS_AS(connector(), Error);
    REQUIRE(first_tried.size() == 9);
    CHECK(first_tried[0] == options.hosts[0].port);
    CHECK(first_tried[3] == options.hosts[1].port);
    CHECK(first_tried[6] == options.hosts[2].port);
}

TEST_CASE("multi-host URLs: one ConnectOptions per host, the rest shared", "[cluster][multi]") {
    const auto options = dbpool::mysql::multi_host_options_from_url(
        "mysql://app:p%40ss@db1:3306,db2:3307,[::1],db4/shop?connect_timeout=3&policy="
        "round_robin&host_backoff=250&charset=latin1");
    REQUIRE(options.hosts.size() == 4);
    CHECK(options.policy == HostPolicy::round_robin);
    CHECK(options.host_backoff == 250ms);
    CHECK(options.hosts[0].host == "db1");
    CHECK(options.hosts[0].port == 3306);
    CHECK(options.hosts[1].host == "db2");
    CHECK(options.hosts[1].port == 3307);
    CHECK(options.hosts[2].host == "::1");
    CHECK(options.hosts[2].port == 3306);
    CHECK(options.hosts[3].host == "db4");
    for (const auto& host : options.hosts) {
        CHECK(host.user == "app");
        CHECK(host.password == "p@ss");
        CHECK(host.database == "shop");
        CHECK(host.charset == "latin1");
        CHECK(host.connect_timeout == 3s);
    }
    // One host is a list of one.
    CHECK(dbpool::mysql::multi_host_options_from_url("mysql://u@h/db").hosts.size() == 1);
}

TEST_CASE("multi-host URLs: errors name the host, never the password", "[cluster][multi]") {
    const auto refused = [](const char* url, const std::string& words) {
        try {
            (void)dbpool::mysql::multi_host_options_from_url(url);
            FAIL(std::string("accepted ") + url);
        } catch (const Error& error) {
            const std::string what = error.what();
            CHECK(error.code() == ErrorCode::invalid_options);
            CHECK(what.find(words) != std::string::npos);
            CHECK(what.find("hunter2") == std::string::npos);
        }
    };
    refused("mysql://u:hunter2@h1:3306,h2:99999/db", "host 2");
    refused("mysql://u:hunter2@h1,,h3/db", "host 2 of the host list is empty");
    refused("mysql://u:hunter2@h1,/db", "host 2 of the host list is empty");
    refused("mysql://u:hunter2@h1,h2/db?policy=nearest", "policy must be");
    refused("mysql://u:hunter2@h1,h2/db?host_backoff=soon", "host_backoff");
    refused("http://u:hunter2@h1,h2/db", "mysql://");
}

TEST_CASE("multi-host URLs: one grammar with the single-host parser, passwords hold anything",
          "[cluster][multi]") {
    // '?', '/', '@', ':', '#' and ',' unencoded in the password: the last '@' ends the
    // user-info, for one host as for many.
    for (const std::string password : {"p?ss", "p/ss", "a/b?c", "p@ss:w#rd", "x,y", "?", "/"}) {
        const std::string single = "mysql://app:" + password + "@db1:3306/shop?connect_timeout=3";
        const std::string multi =
            "mysql://app:" + password + "@db1:3306,db2:3307/shop?connect_timeout=3&policy=random";
        INFO(password);
        const ConnectOptions one = ConnectOptions::from_url(single);
        CHECK(one.password == password);
        const auto as_list = dbpool::mysql::multi_host_options_from_url(single);
        REQUIRE(as_list.hosts.size() == 1);
        CHECK(as_list.hosts[0].describe() == one.describe());
        CHECK(as_list.hosts[0].password == password);
        const auto options = dbpool::mysql::multi_host_options_from_url(multi);
        REQUIRE(options.hosts.size() == 2);
        CHECK(options.policy == HostPolicy::random);
        for (const auto& host : options.hosts) {
            CHECK(host.user == "app");
            CHECK(host.password == password);
            CHECK(host.database == "shop");
            CHECK(host.connect_timeout == 3s);
        }
        CHECK(options.hosts[1].port == 3307);
    }
    // No user-info: a '/' or '?' in a parameter value after the list is not part of a host.
    const auto ca = dbpool::mysql::multi_host_options_from_url(
        "mysql://db1,db2?ssl-mode=verify_ca&ssl-ca=/etc/ssl/ca.pem&connect_timeout=2");
    REQUIRE(ca.hosts.size() == 2);
    CHECK(ca.hosts[1].host == "db2");
    CHECK(ca.hosts[1].tls.ca == "/etc/ssl/ca.pem");
    // A one-host URL fails exactly as from_url does (no "IPv6 host" guess from a password).
    try {
        (void)dbpool::mysql::multi_host_options_from_url("mysql://u:hunter2@h:99999/db");
        FAIL("accepted port 99999");
    } catch (const Error& error) {
        std::string single_what;
        try {
            (void)ConnectOptions::from_url("mysql://u:hunter2@h:99999/db");
        } catch (const Error& single) {
            single_what = single.what();
        }
        CHECK(std::string(error.what()) == single_what);
    }
}

TEST_CASE("multi-host back-off: a burst of first failures counts once, one probe per period",
          "[cluster][multi][timing]") {
    MultiHostOptions options = dead_hosts(1);
    options.host_backoff = 300ms;
    options.host_backoff_max = 5s;
    constexpr int kThreads = 8;
    // Every attempt waits until `release` (or 2 s), so the burst's attempts are in flight
    // together, as when a host drops packets or the machine is loaded.
    std::mutex mutex;
    std::condition_variable cv;
    int inside = 0;
    bool release = false;
    MultiHostConnector<> connector(options, [&](const ConnectOptions& host) {
        std::unique_lock<std::mutex> lock(mutex);
        ++inside;
        cv.notify_all();
        cv.wait_for(lock, 2s, [&] { return release; });
        throw Error(ErrorCode::connect_failed, "down", 2003);
        return dbpool::mysql::Connection(host);  // never reached
    });
    std::atomic<int> failed{0};  // Catch's CHECK is not for other threads
    const auto burst = [&](int threads) {
        std::vector<std::thread> callers;
        for (int t = 0; t < threads; ++t) {
            callers.emplace_back([&] {
                try {
                    connector();
                } catch (const Error& error) {
                    if (error.code() == ErrorCode::connect_failed) ++failed;
                }
            });
        }
        return callers;
    };
    const auto open_gate = [&](int expected_inside, std::vector<std::thread>& callers) {
        {
            std::unique_lock<std::mutex> lock(mutex);
            cv.wait_for(lock, 2s, [&] { return inside >= expected_inside; });
            release = true;
        }
        cv.notify_all();
        for (auto& caller : callers)
            caller.join();
        std::lock_guard<std::mutex> lock(mutex);
        release = false;
        inside = 0;
    };

    // Wave 1: the host is not known down yet, so all 8 callers try it at once.
    auto callers = burst(kThreads);
    open_gate(kThreads, callers);
    CHECK(failed.load() == kThreads);
    CHECK(connector.attempts() == kThreads);
    // Eight failures of one wave count once: the wait is host_backoff (300 ms), not 5 s.
    CHECK_THROWS_AS(connector(), Error);
    CHECK(connector.attempts() == kThreads);
    std::this_thread::sleep_for(400ms);

    // Wave 2, after the back-off: 8 callers at once, one of them probes, the others skip.
    callers = burst(kThreads);
    std::this_thread::sleep_for(100ms);  // the 7 skippers return at once
    open_gate(1, callers);
    CHECK(failed.load() == 2 * kThreads);
    CHECK(connector.attempts() == kThreads + 1);
    // That failure doubled the wait to 600 ms: nothing at 400 ms, one probe after 700 ms.
    std::this_thread::sleep_for(400ms);
    CHECK_THROWS_AS(connector(), Error);
    CHECK(connector.attempts() == kThreads + 1);
    std::this_thread::sleep_for(300ms);
    {
        std::lock_guard<std::mutex> lock(mutex);
        release = true;
    }
    CHECK_THROWS_AS(connector(), Error);
    CHECK(connector.attempts() == kThreads + 2);
}

TEST_CASE("multi-host back-off: max() durations saturate instead of overflowing",
          "[cluster][multi]") {
    MultiHostOptions options = dead_hosts(2);
    options.host_backoff = std::chrono::milliseconds::max();
    options.host_backoff_max = std::chrono::milliseconds::max();
    MultiHostConnector<> connector(options, [](const ConnectOptions& host) {
        throw Error(ErrorCode::connect_failed, "down", 2003);
        return dbpool::mysql::Connection(host);  // never reached
    });
    for (int i = 0; i < 3; ++i) {
        try {
            connector();
            FAIL("connected to a dead host");
        } catch (const Error& error) {
            CHECK(error.code() == ErrorCode::connect_failed);
            if (i > 0) CHECK_THAT(error.what(), Catch::Contains("skipped for"));
        }
    }
    // Each host was tried once; "forever" held (UBSan would report an overflow here).
    CHECK(connector.attempts() == 2);
}

// pg::split_hosts and make_cluster_router(conninfo) without a server: one libpq multi-host
// string becomes one single-host ConnectOptions per host (the first the primary), every other
// setting kept, the password moved out of the string, bad input refused with invalid_options
// and never echoed; and the heartbeat_table option the replicas' check takes.
#include <dbpool/pg/cluster.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using dbpool::Error;
using dbpool::ErrorCode;
using dbpool::pg::ConnectOptions;

namespace {

ConnectOptions conninfo(const std::string& text) {
    ConnectOptions options;
    options.conninfo = text;
    return options;
}

// What libpq reads from `options.conninfo` for `keyword`.
std::string value(const ConnectOptions& options, const char* keyword) {
    return dbpool::pg::detail::conninfo_value(dbpool::pg::detail::parse_conninfo(options.conninfo),
                                              keyword);
}

// The message of the invalid_options error split_hosts throws.
std::string refused(const std::string& text) {
    try {
        (void)dbpool::pg::split_hosts(conninfo(text));
    } catch (const Error& error) {
        CHECK(error.code() == ErrorCode::invalid_options);
        return error.what();
    }
    FAIL("split_hosts accepted " << text);
    return {};
}

}  // namespace

TEST_CASE("split_hosts: a URL's hosts become single-host nodes in order", "[pg][unit]") {
    ConnectOptions all = conninfo(
        "postgresql://app:s%40cret@db1:5433,db2,[::1]:5435/shop?sslmode=disable"
        "&application_name=it's%5C&target_session_attrs=read-write&connect_timeout=3");
    all.read_timeout = std::chrono::seconds(7);
    all.init_statements = {"SET search_path = app"};
    const std::vector<ConnectOptions> nodes = dbpool::pg::split_hosts(all);
    REQUIRE(nodes.size() == 3);
    CHECK(value(nodes[0], "host") == "db1");
    CHECK(value(nodes[0], "port") == "5433");
    CHECK(value(nodes[1], "host") == "db2");
    CHECK(value(nodes[1], "port").empty());  // libpq's default, as the URL said
    CHECK(value(nodes[2], "host") == "::1");
    CHECK(value(nodes[2], "port") == "5435");
    for (const ConnectOptions& node : nodes) {
        CHECK(value(node, "user") == "app");
        CHECK(value(node, "dbname") == "shop");
        CHECK(value(node, "sslmode") == "disable");
        CHECK(value(node, "application_name") == "it's\\");  // quoted back exactly
        CHECK(value(node, "connect_timeout") == "3");
        CHECK(value(node, "target_session_attrs").empty());  // it chooses among hosts
        CHECK(value(node, "password").empty());              // moved out of the string
        CHECK(node.password == "s@cret");
        CHECK(node.conninfo.find("cret") == std::string::npos);
        CHECK(node.read_timeout == std::chrono::seconds(7));
        CHECK(node.init_statements == all.init_statements);
        CHECK_NOTHROW(node.validate());
    }
    CHECK(nodes[0].describe() == "app@db1:5433/shop");
}

TEST_CASE("split_hosts: keyword lists, one port for all, hostaddr, a password set apart",
          "[pg][unit]") {
    ConnectOptions all = conninfo(
        "host=a.example,b.example hostaddr=10.0.0.1,10.0.0.2 port=6432 user=u password=inline "
        "dbname=d");
    all.password = "separate";  // set in the options: it wins, as for one host
    const auto nodes = dbpool::pg::split_hosts(all);
    REQUIRE(nodes.size() == 2);
    CHECK(value(nodes[1], "host") == "b.example");
    CHECK(value(nodes[1], "hostaddr") == "10.0.0.2");
    CHECK(value(nodes[0], "port") == "6432");
    CHECK(value(nodes[1], "port") == "6432");
    CHECK(nodes[1].password == "separate");

    const auto per_host = dbpool::pg::split_hosts(conninfo("host=x,y,z port=1,2,3"));
    REQUIRE(per_host.size() == 3);
    CHECK(value(per_host[2], "port") == "3");

    // One host, or none (libpq's defaults): one node.
    CHECK(dbpool::pg::split_hosts(conninfo("postgresql://h/db")).size() == 1);
    const auto defaults = dbpool::pg::split_hosts(conninfo("dbname=d"));
    REQUIRE(defaults.size() == 1);
    CHECK(value(defaults[0], "host").empty());
}

TEST_CASE("split_hosts: bad input is invalid_options and never shows the password", "[pg][unit]") {
    const std::string password = "Pw9Secret";
    for (const std::string& text : std::vector<std::string>{
             "postgresql://app:" + password + "@h1,,h3/db",            // an empty host
             "postgresql://app:" + password + "@h1,h2/db?port=1,2,3",  // 3 ports, 2 hosts
             "host=h1,h2 hostaddr=10.0.0.1 password=" + password,      // 2 hosts, 1 address
             "postgresql://app:" + password + "@h1:99999,h2/db",       // a port out of range
             std::string("postgresql://app:Pw9/Secret@h1,h2/db"),      // a cut password
             std::string("postgresql://app:Pw9@Secret@h1,h2/db"),      // a cut password
             "postgresql://app:" + password + "@h1,h2/db?application_name=a@b",  // '@' after it
             "host=h1,h2 password='" + password,  // libpq's complaint
         }) {
        const std::string message = refused(text);
        INFO(message);
        CHECK(message.find("Secret") == std::string::npos);
        CHECK(message.find("Pw9") == std::string::npos);
    }
    CHECK(refused("host=h1,,h3").find("host 2 of the host list is empty") != std::string::npos);
    CHECK(refused("host=a,b port=1,2,3").find("3 ports for 2 hosts") != std::string::npos);
    CHECK(refused("postgresql://u:a/b@h1,h2/db").find("percent-encode") != std::string::npos);
}

TEST_CASE("make_cluster_router(conninfo): the first host is the primary, names hide the password",
          "[pg][unit]") {
    dbpool::pg::ClusterOptions options;
    options.pool.mincached = 0;
    options.router.health_interval = std::chrono::milliseconds(0);  // no probes: no server here
    // Port 1 on loopback: refused at once should anything connect.
    auto router = dbpool::pg::make_cluster_router(
        "postgresql://app:Pw9Secret@127.0.0.1:1,127.0.0.2:1,127.0.0.3:1/shop?connect_timeout=1",
        options);
    REQUIRE(router->size() == 3);
    CHECK(router->name(0) == "app@127.0.0.1:1/shop");
    CHECK(router->name(2) == "app@127.0.0.3:1/shop");
    const auto stats = router->stats();
    CHECK(stats.at(0).role == dbpool::NodeRole::primary);
    CHECK(stats.at(1).role == dbpool::NodeRole::replica);
    CHECK(stats.at(2).role == dbpool::NodeRole::replica);
    CHECK_THROWS_MATCHES(
        dbpool::pg::make_cluster_router("postgresql://app:Pw9Secret@h1,h2/db?port=1,2,3", options),
        Error, Catch::Predicate<Error>([](const Error& error) {
            return error.code() == ErrorCode::invalid_options &&
                   std::string(error.what()).find("Pw9Secret") == std::string::npos;
        }));
}

TEST_CASE("NodeCheck: heartbeat_table is a plain name or schema.table, for replicas only",
          "[pg][unit]") {
    const auto refused_check = [](const std::string& table, bool replica) {
        dbpool::pg::NodeCheck check;
        check.replica = replica;
        check.heartbeat_table = table;
        try {
            check.validate();
        } catch (const Error& error) {
            CHECK(error.code() == ErrorCode::invalid_options);
            return std::string(error.what());
        }
        return std::string();
    };
    CHECK(refused_check("heartbeat", true).empty());
    CHECK(refused_check("ops.heart_beat2", true).empty());
    for (const char* bad : {"a;DROP TABLE x", "a.b.c", ".a", "a.", "a b", "\"a\""}) {
        INFO(bad);
        CHECK(refused_check(bad, true).find("heartbeat_table") != std::string::npos);
    }
    CHECK(refused_check("heartbeat", false).find("replica is false") != std::string::npos);
    // make_cluster_router gives it to the replicas only, so a primary never refuses it.
    dbpool::pg::ClusterOptions options;
    options.router.health_interval = std::chrono::milliseconds(0);
    options.check.heartbeat_table = "heartbeat";
    CHECK(dbpool::pg::make_cluster_router("host=127.0.0.1,127.0.0.2 port=1", options)->size() == 2);
    options.check.heartbeat_table = "bad name";
    CHECK_THROWS_AS(dbpool::pg::make_cluster_router("host=127.0.0.1,127.0.0.2 port=1", options),
                    Error);
}

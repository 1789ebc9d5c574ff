// SteadyConnection (DBUtils' SteadyDB; docs/dbutils-differences.md: the retry rule,
// transactions, ping) and Transaction.
#include "fake_connection.hpp"

#include <dbpool/steady_connection.hpp>
#include <dbpool/transaction.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using dbpool::ErrorCode;
using dbpool::Failure;
using dbpool::Ping;
using fake::FakeConnection;
using fake::FakeDatabase;
using fake::FakeError;
using fake::ManualClock;
using namespace std::chrono_literals;

namespace {

using Steady = dbpool::SteadyConnection<FakeConnection, ManualClock>;

struct Fixture {
    std::shared_ptr<FakeDatabase> db = std::make_shared<FakeDatabase>();

    std::unique_ptr<Steady> make(dbpool::SteadyOptions options = exact(Ping::never)) {
        return std::make_unique<Steady>(FakeDatabase::creator<FakeConnection>(db),
                                        std::move(options));
    }

    // DBUtils' exact counts: no ping bypass window.
    static dbpool::SteadyOptions exact(unsigned ping = Ping::never) {
        dbpool::SteadyOptions options;
        options.ping = ping;
        options.ping_bypass = 0ms;
        return options;
    }
};

auto has_code(ErrorCode code) {
    return Catch::Predicate<dbpool::Error>(
        [code](const dbpool::Error& e) { return e.code() == code; },
        std::string("error code ") + dbpool::to_string(code));
}

}  // namespace

TEST_CASE_METHOD(Fixture, "steady: opens once at construction", "[steady]") {
    auto steady = make();
    CHECK(db->opens() == 1);
    CHECK(steady->is_open());
    CHECK(steady->connects() == 1);
    steady->execute("a");
    steady->query("b");
    CHECK(db->opens() == 1);
    CHECK(steady->usage() == 2);
    steady.reset();
    CHECK(db->closes() == 1);
}

TEST_CASE_METHOD(Fixture, "steady: connect failure is Error{connect_failed}", "[steady]") {
    SECTION("std::runtime_error") {
        db->fail_connects(1);
        CHECK_THROWS_MATCHES(make(), dbpool::Error, has_code(ErrorCode::connect_failed));
        db->fail_connects(1);
        try {
            make();
        } catch (const dbpool::Error& e) {
            CHECK_THAT(e.what(), Catch::Contains("connection refused"));
        }
    }
    SECTION("a dbpool::Error of another code keeps its native number") {
        db->fail_connects(1, fake::ConnectError::dbpool_error);
        try {
            make();
            FAIL("no exception");
        } catch (const dbpool::Error& e) {
            CHECK(e.code() == ErrorCode::connect_failed);
            CHECK(e.native_code() == 2003);
            CHECK(e.sqlstate() == "HY000");
        }
    }
    SECTION("an exception not derived from std::exception") {
        db->fail_connects(1, fake::ConnectError::non_std);
        CHECK_THROWS_MATCHES(make(), dbpool::Error, has_code(ErrorCode::connect_failed));
    }
    CHECK(db->opens() == 0);
}

TEST_CASE_METHOD(Fixture, "steady: setsession runs after every (re)connect, in order", "[steady]") {
    auto options = exact();
    options.setsession = {"SET a = 1", "SET b = 2"};
    options.maxusage = 1;
    auto steady = make(options);
    CHECK(db->log() == std::vector<std::string>{"open 1", "SET a = 1", "SET b = 2"});
    db->clear_log();
    steady->reconnect();
    CHECK(db->log() == std::vector<std::string>{"close 1", "open 2", "SET a = 1", "SET b = 2"});
    db->clear_log();
    steady->execute("x");
    steady->execute("y");  // maxusage 1: reopens first
    CHECK(db->log() == std::vector<std::string>{"exec x", "close 2", "open 3", "SET a = 1",
                                                "SET b = 2", "exec y"});
    CHECK(db->session_statements() == 6);
}

TEST_CASE_METHOD(Fixture, "steady: maxusage reopens after N statements", "[steady]") {
    auto options = exact();
    options.maxusage = 3;
    auto steady = make(options);
    for (int i = 0; i < 3; ++i)
        steady->execute("s");
    CHECK(db->opens() == 1);
    steady->execute("s");  // the 4th runs on a new connection
    CHECK(db->opens() == 2);
    CHECK(db->closes() == 1);
    CHECK(steady->usage() == 1);
    steady->query("s");
    steady->run([](FakeConnection& c) { return c.execute("s"); });
    CHECK(db->opens() == 2);
    steady->execute("s");  // wraps again after N
    CHECK(db->opens() == 3);
    CHECK(steady->raw().id() == 3);
}

TEST_CASE_METHOD(Fixture, "steady: maxusage never reopens inside a transaction", "[steady]") {
    auto options = exact();
    options.maxusage = 2;
    auto steady = make(options);
    steady->execute("a");
    steady->execute("b");
    SECTION("begin()") {
        steady->begin();
        for (int i = 0; i < 3; ++i)
            steady->execute("in tx");
        CHECK(db->opens() == 1);
        steady->commit();
    }
    SECTION("server-side transaction flag") {
        steady->raw().set_server_transaction(true);
        CHECK(steady->in_transaction());
        for (int i = 0; i < 3; ++i)
            steady->execute("in tx");
        CHECK(db->opens() == 1);
        steady->raw().set_server_transaction(false);
    }
    steady->execute("after");
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: ping bits give DBUtils' exact counts", "[steady][ping]") {
    auto use = [](Steady& steady) {
        steady.check_on_request();                                     // bit 1
        steady.prepare("p");                                           // bit 2
        steady.execute("e");                                           // bit 4
        steady.query("q");                                             // bit 4
        steady.run([](FakeConnection& c) { return c.execute("r"); });  // bit 4
    };
    SECTION("0: never") {
        auto steady = make(exact(Ping::never));
        use(*steady);
        CHECK(db->pings() == 0);
    }
    SECTION("1: on request") {
        auto steady = make(exact(Ping::on_request));
        use(*steady);
        CHECK(db->pings() == 1);
    }
    SECTION("2: on cursor (prepare)") {
        auto steady = make(exact(Ping::on_cursor));
        use(*steady);
        CHECK(db->pings() == 1);
        steady->prepare("p2");
        CHECK(db->pings() == 2);
    }
    SECTION("4: on execute") {
        auto steady = make(exact(Ping::on_execute));
        use(*steady);
        CHECK(db->pings() == 3);
    }
    SECTION("7: always") {
        auto steady = make(exact(Ping::always));
        use(*steady);
        CHECK(db->pings() == 5);
    }
    CHECK(db->prepares() >= 1);
    CHECK(db->opens() == 1);
}

TEST_CASE_METHOD(Fixture, "steady: ping bits 2 and 4 are skipped inside a transaction",
                 "[steady][ping]") {
    auto steady = make(exact(Ping::always));
    SECTION("begin()") { steady->begin(); }
    SECTION("server flag") { steady->raw().set_server_transaction(true); }
    steady->prepare("p");
    steady->execute("e");
    steady->query("q");
    CHECK(db->pings() == 0);
    steady->check_on_request();  // bit 1 is not skipped
    CHECK(db->pings() == 1);
    steady->rollback();
    steady->execute("e");
    CHECK(db->pings() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: ping_bypass skips pings inside its window", "[steady][ping]") {
    auto options = exact(Ping::on_execute);
    options.ping_bypass = 500ms;
    auto steady = make(options);
    steady->execute("a");  // just opened: within the window
    CHECK(db->pings() == 0);
    ManualClock::advance(499ms);
    steady->execute("b");  // 499 ms after the open; this success restarts the window
    CHECK(db->pings() == 0);
    ManualClock::advance(500ms);
    steady->execute("c");  // 500 ms after the last success: pinged
    CHECK(db->pings() == 1);
    steady->execute("d");
    CHECK(db->pings() == 1);
    ManualClock::advance(10s);
    steady->check_on_request();  // ping bit not set: nothing
    CHECK(db->pings() == 1);
    CHECK(steady->ping());  // explicit ping ignores the window
    CHECK(db->pings() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: a failed ping reconnects before the statement", "[steady]") {
    auto steady = make(exact(Ping::on_execute));
    SECTION("ping returns false") { db->fail_pings(1); }
    SECTION("server killed the connection") { db->kill(1); }
    steady->execute("a");
    CHECK(db->pings() == 1);
    CHECK(db->opens() == 2);
    CHECK(db->closes() == 1);
    CHECK(db->executed() == 1);
    CHECK(steady->raw().id() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: a failed ping with the database down is connect_failed",
                 "[steady]") {
    auto steady = make(exact(Ping::on_execute));
    db->kill(1);
    db->fail_connects(1);
    CHECK_THROWS_MATCHES(steady->execute("a"), dbpool::Error, has_code(ErrorCode::connect_failed));
    CHECK(db->statements() == 0);
    CHECK(db->connect_attempts() == 2);  // one attempt per call, not a second one just to throw
    steady->execute("a");                // the database is back
    CHECK(db->executed() == 1);
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: closeable=false makes close() only roll back", "[steady]") {
    auto options = exact();
    options.closeable = false;
    auto steady = make(options);
    steady->close();
    CHECK(steady->is_open());
    CHECK(db->rollbacks() == 0);
    steady->begin();
    steady->close();
    CHECK(db->rollbacks() == 1);
    CHECK_FALSE(steady->in_transaction());
    CHECK(steady->is_open());
    CHECK(db->closes() == 0);
    steady->force_close();
    CHECK(db->closes() == 1);

    auto closeable = make();
    closeable->close();
    CHECK_FALSE(closeable->is_open());
    CHECK(db->closes() == 2);
    closeable->execute("reopens");
    CHECK(db->opens() == 3);
}

TEST_CASE_METHOD(Fixture, "steady: broken_not_sent outside a transaction is retried once",
                 "[steady][retry]") {
    auto steady = make();
    SECTION("one failure: re-run on a new connection") {
        db->fail_statements(1, Failure::broken_not_sent);
        CHECK(steady->execute("w") == 1);
        CHECK(db->statements() == 2);
        CHECK(db->executed() == 1);
        CHECK(db->opens() == 2);
        CHECK(steady->raw().id() == 2);
    }
    SECTION("two failures: the second is raised") {
        db->fail_statements(2, Failure::broken_not_sent);
        CHECK_THROWS_AS(steady->execute("w"), FakeError);
        CHECK(db->statements() == 2);
        CHECK(db->executed() == 0);
        CHECK(db->opens() == 2);
        CHECK_FALSE(steady->is_open());  // dropped; the next statement reopens
        steady->execute("next");
        CHECK(db->executed() == 1);
        CHECK(db->opens() == 3);
    }
}

TEST_CASE_METHOD(Fixture, "steady: broken (maybe executed) is dropped and never re-run",
                 "[steady][retry]") {
    auto steady = make();
    db->fail_statements(1, Failure::broken);
    CHECK_THROWS_AS(steady->execute("write"), FakeError);
    CHECK(db->statements() == 1);
    CHECK(db->opens() == 1);  // no connect on the error path
    CHECK(db->closes() == 1);
    CHECK_FALSE(steady->is_open());
    steady->execute("next");
    CHECK(db->statements() == 2);
    CHECK(db->opens() == 2);
    CHECK(steady->raw().id() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: a broken connection inside a transaction is transaction_lost",
                 "[steady][retry]") {
    auto steady = make();
    const auto kind = GENERATE(Failure::broken_not_sent, Failure::broken);
    SECTION("begin()") { steady->begin(); }
    SECTION("server flag") { steady->raw().set_server_transaction(true); }
    db->fail_statements(1, kind);
    CHECK_THROWS_MATCHES(steady->execute("w"), dbpool::Error,
                         has_code(ErrorCode::transaction_lost));
    CHECK(db->statements() == 1);
    CHECK(db->opens() == 1);
    CHECK_FALSE(steady->in_transaction());
    CHECK(steady->raw().id() == 2);  // reopened on use
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: a dead ping inside a transaction is transaction_lost",
                 "[steady][retry]") {
    auto steady = make(exact(Ping::on_request));
    steady->begin();
    db->kill(1);
    CHECK_THROWS_MATCHES(steady->check_on_request(), dbpool::Error,
                         has_code(ErrorCode::transaction_lost));
    CHECK(db->opens() == 1);
    CHECK_FALSE(steady->in_transaction());
    steady->execute("after");
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: ordinary errors propagate without reconnecting",
                 "[steady][retry]") {
    auto steady = make();
    steady->raw().fail_next_statement_ordinarily();
    CHECK_THROWS_AS(steady->execute("bad"), FakeError);
    CHECK(db->statements() == 1);
    CHECK(db->opens() == 1);
    CHECK(db->closes() == 0);
    steady->begin();
    steady->raw().fail_next_statement_ordinarily();
    CHECK_THROWS_AS(steady->execute("bad"), FakeError);
    CHECK(steady->in_transaction());  // the transaction survives an ordinary error
    CHECK(db->opens() == 1);
}

TEST_CASE_METHOD(Fixture, "steady: rollback on a broken connection drops it quietly", "[steady]") {
    auto steady = make();
    steady->begin();
    db->kill(1);
    CHECK_NOTHROW(steady->rollback());
    CHECK_FALSE(steady->in_transaction());
    CHECK(db->opens() == 1);
    CHECK(steady->raw().id() == 2);  // reopened on use
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: commit on a broken connection is commit_unknown", "[steady]") {
    auto steady = make();
    steady->begin();
    db->kill(1);
    CHECK_THROWS_MATCHES(steady->commit(), dbpool::Error, has_code(ErrorCode::commit_unknown));
    CHECK_FALSE(steady->in_transaction());
    CHECK(db->opens() == 1);
    CHECK(db->commits() == 0);
    steady->execute("next");  // reopens
    CHECK(db->executed() == 1);
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: a COMMIT that never reached the server is transaction_lost",
                 "[steady]") {
    auto options = exact();
    options.failures = [](const std::exception& error) {
        return dynamic_cast<const FakeError*>(&error) != nullptr ? Failure::broken_not_sent
                                                                 : Failure::none;
    };
    auto steady = make(options);
    steady->begin();
    db->kill(1);
    // Not sent: the server rolled the transaction back with the connection; redo it.
    CHECK_THROWS_MATCHES(steady->commit(), dbpool::Error, has_code(ErrorCode::transaction_lost));
    CHECK_FALSE(steady->in_transaction());
    CHECK(db->commits() == 0);
}

TEST_CASE_METHOD(Fixture, "steady: begin on a dead connection is retried on a new one",
                 "[steady]") {
    auto steady = make();
    db->kill(1);
    steady->begin();
    CHECK(steady->in_transaction());
    CHECK(db->begins() == 1);
    CHECK(db->opens() == 2);
}

TEST_CASE_METHOD(Fixture, "steady: raw() is neither counted nor pinged", "[steady]") {
    auto options = exact(Ping::always);
    options.maxusage = 1;
    auto steady = make(options);
    for (int i = 0; i < 3; ++i)
        steady->raw().execute("raw");
    CHECK(db->pings() == 0);
    CHECK(steady->usage() == 0);
    CHECK(db->opens() == 1);
    CHECK(db->statements() == 3);
}

TEST_CASE_METHOD(Fixture, "steady: reset_session runs the reset, then setsession", "[steady]") {
    auto options = exact();
    options.setsession = {"SET a = 1"};
    auto steady = make(options);
    steady->begin();
    steady->execute("x");
    db->clear_log();
    steady->reset_session();
    CHECK(db->log() == std::vector<std::string>{"reset", "SET a = 1"});
    CHECK(db->resets() == 1);
    CHECK(steady->usage() == 1);  // a reset is not a new connection: maxusage keeps counting
    CHECK_FALSE(steady->in_transaction());
    CHECK(db->opens() == 1);
}

TEST_CASE_METHOD(Fixture, "transaction: commit path", "[transaction]") {
    auto steady = make();
    {
        dbpool::Transaction<Steady> tx(*steady);
        CHECK(steady->in_transaction());
        steady->execute("a");
        tx.commit();
        CHECK_FALSE(tx.active());
    }
    CHECK(db->begins() == 1);
    CHECK(db->commits() == 1);
    CHECK(db->rollbacks() == 0);
    CHECK_FALSE(steady->in_transaction());
}

TEST_CASE_METHOD(Fixture, "transaction: an exception rolls back", "[transaction]") {
    auto steady = make();
    try {
        dbpool::Transaction<Steady> tx(*steady);
        steady->execute("a");
        throw std::runtime_error("user code failed");
    } catch (const std::runtime_error&) {
    }
    CHECK(db->begins() == 1);
    CHECK(db->commits() == 0);
    CHECK(db->rollbacks() == 1);
    CHECK_FALSE(steady->in_transaction());
}

TEST_CASE_METHOD(Fixture, "transaction: ending twice throws handle_closed", "[transaction]") {
    auto steady = make();
    dbpool::Transaction<Steady> tx(*steady);
    tx.commit();
    CHECK_THROWS_MATCHES(tx.commit(), dbpool::Error, has_code(ErrorCode::handle_closed));
    CHECK_THROWS_MATCHES(tx.rollback(), dbpool::Error, has_code(ErrorCode::handle_closed));
    CHECK(db->commits() == 1);
    CHECK(db->rollbacks() == 0);
}

TEST_CASE_METHOD(Fixture, "transaction: works on a raw connection", "[transaction]") {
    FakeConnection raw(db);
    {
        dbpool::Transaction<FakeConnection> tx(raw);
        raw.execute("a");
    }
    CHECK(db->begins() == 1);
    CHECK(db->rollbacks() == 1);
}

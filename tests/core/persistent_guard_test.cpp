// The guard of a thread-keyed PersistentPool (PersistentConnection::begin): handles of one thread
// share its connection, which is PersistentDB's design (a helper called inside a transaction joins
// it), but a second begin() through another live handle while the first handle's transaction is
// open cannot be legitimate: most likely two fibers or coroutines interleave on one thread. Nor
// can a begin() over a transaction whose handle has ended: it would end that transaction half
// done (MySQL's BEGIN commits it). One test per way of misusing the connection, one per way of
// leaving a transaction open behind an ended handle, then the uses that stay legal, then what the
// guard cannot see (README, "Threads, fibers and coroutines").
#include "pool_test_support.hpp"

#include <dbpool/persistent_pool.hpp>
#include <dbpool/transaction.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
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

using Persistent = dbpool::PersistentPool<FakeConnection, ManualClock>;
using Handle = Persistent::handle_type;

struct GuardFixture {
    std::shared_ptr<FakeDatabase> db = std::make_shared<FakeDatabase>();
    Persistent pool{FakeDatabase::creator<FakeConnection>(db), exact()};

    static dbpool::PersistentOptions exact() {
        dbpool::PersistentOptions options;
        options.ping = Ping::never;
        options.ping_bypass = 0ms;
        return options;
    }
};

// The refusal says what probably happened and which pool to use instead.
auto interleaved() {
    return Catch::Predicate<dbpool::Error>(
        [](const dbpool::Error& e) {
            const std::string what = e.what();
            return e.code() == ErrorCode::usage &&
                   what.find("fibers or coroutines") != std::string::npos &&
                   what.find("this thread's") != std::string::npos &&
                   what.find("BoostFiberContext") != std::string::npos &&
                   what.find("PooledPool") != std::string::npos;
        },
        "a usage error naming fibers or coroutines and the pools to use instead");
}

// The refusal of a begin() over a transaction whose handle has ended: what is open, what
// probably happened, and how to end it.
auto ended_owner() {
    return Catch::Predicate<dbpool::Error>(
        [](const dbpool::Error& e) {
            const std::string what = e.what();
            return e.code() == ErrorCode::usage &&
                   what.find("a handle that no longer exists, is still open") !=
                       std::string::npos &&
                   what.find("this thread's") != std::string::npos &&
                   what.find("without commit() or rollback()") != std::string::npos &&
                   what.find("Commit or roll it back") != std::string::npos;
        },
        "a usage error naming the open transaction of a handle that has ended");
}

// Everything the fake server has seen; a refused begin() must not change it.
std::vector<std::string> sent(const FakeDatabase& db) { return db.log(); }

}  // namespace

// --- misuse --------------------------------------------------------------------------------------

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: begin() through a second handle while the first handle's "
                 "begin() is open",
                 "[persistent][guard]") {
    auto first = pool.connection();
    auto second = pool.connection();
    first.begin();
    first->execute("debit a");
    CHECK_THROWS_MATCHES(second.begin(), dbpool::Error, interleaved());
    CHECK(db->begins() == 1);  // the refused begin() sent nothing
    CHECK(first->in_transaction());
    first->execute("credit b");
    first.commit();
    CHECK(db->commits() == 1);
    second.begin();  // the first transaction has ended: legal again
    second.commit();
}

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: a Transaction over a second handle while the first handle's "
                 "Transaction is open (two coroutines interleaving on one thread)",
                 "[persistent][guard]") {
    // Coroutine one opens its transaction and suspends in the middle of it...
    std::optional<Handle> one(pool.connection());
    std::optional<dbpool::Transaction<Handle>> one_tx(std::in_place, *one);
    (*one)->execute("debit a");
    // ...coroutine two runs on the same thread and opens its own.
    {
        auto two = pool.connection();
        CHECK_THROWS_MATCHES(dbpool::Transaction<Handle>(two), dbpool::Error, interleaved());
    }
    // Coroutine one resumes: its transaction is whole.
    (*one)->execute("credit b");
    one_tx->commit();
    CHECK(db->begins() == 1);
    CHECK(db->commits() == 1);
    CHECK(db->rollbacks() == 0);
}

TEST_CASE_METHOD(GuardFixture, "persistent guard: begin() and Transaction mixed across two handles",
                 "[persistent][guard]") {
    auto first = pool.connection();
    auto second = pool.connection();
    SECTION("Transaction first, then begin()") {
        dbpool::Transaction<Handle> tx(first);
        CHECK_THROWS_MATCHES(second.begin(), dbpool::Error, interleaved());
        tx.commit();
    }
    SECTION("begin() first, then Transaction") {
        first.begin();
        CHECK_THROWS_MATCHES(dbpool::Transaction<Handle>(second), dbpool::Error, interleaved());
        first.rollback();
    }
    CHECK(db->begins() == 1);
    CHECK_FALSE(first->in_transaction());
}

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: a moved handle keeps its transaction, and the guard with it",
                 "[persistent][guard]") {
    auto first = pool.connection();
    first.begin();
    Handle moved = std::move(first);  // e.g. returned from the function that began
    auto second = pool.connection();
    CHECK_THROWS_MATCHES(second.begin(), dbpool::Error, interleaved());
    Handle assigned = pool.connection();
    assigned = std::move(moved);
    CHECK_THROWS_MATCHES(second.begin(), dbpool::Error, interleaved());
    assigned.commit();
    CHECK(db->commits() == 1);
}

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: the end of a moved handle that began is seen, wherever it "
                 "was moved",
                 "[persistent][guard]") {
    auto second = pool.connection();
    {
        auto first = pool.connection();
        first.begin();
        Handle inner = std::move(first);
        CHECK_THROWS_MATCHES(second.begin(), dbpool::Error, interleaved());
        { auto empty = std::move(first); }  // a moved-from handle's end changes nothing
        CHECK_THROWS_MATCHES(second.begin(), dbpool::Error, interleaved());
    }  // `inner` ends: the refusal now says that the transaction's handle has ended
    CHECK_THROWS_MATCHES(second.begin(), dbpool::Error, ended_owner());
    second.rollback();
    second.begin();
    second.rollback();
    CHECK(db->begins() == 2);
}

// --- a transaction left open by a handle that has ended ------------------------------------------
// One test per way to get there. PersistentDB lets a later handle commit or roll it back, and so
// does dbpool; only begin() (and a Transaction) over it is refused, sending nothing.

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: begin() over a transaction whose handle went out of scope "
                 "(an exception past begin())",
                 "[persistent][guard]") {
    try {
        auto handle = pool.connection();
        handle.begin();
        handle->execute("debit a");
        throw std::runtime_error("the request failed before it credited b");
    } catch (const std::runtime_error&) {
    }
    auto next = pool.connection();  // the next request on this thread
    REQUIRE(next->in_transaction());
    const auto before = sent(*db);
    CHECK_THROWS_MATCHES(next.begin(), dbpool::Error, ended_owner());
    CHECK_THROWS_MATCHES(dbpool::Transaction<Handle>(next), dbpool::Error, ended_owner());
    CHECK(sent(*db) == before);  // no BEGIN: the half-done transaction was not committed
    CHECK(db->commits() == 0);
    CHECK(next->in_transaction());
    next.rollback();  // any handle may end it
    dbpool::Transaction<Handle> tx(next);
    tx.commit();
    CHECK(db->begins() == 2);
    CHECK(db->rollbacks() == 1);
    CHECK(db->commits() == 1);
}

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: begin() over a transaction whose handle was moved, and the "
                 "handle it was moved to has ended",
                 "[persistent][guard]") {
    auto later = pool.connection();
    {
        auto began = pool.connection();
        began.begin();
        began->execute("debit a");
        std::optional<Handle> holder;
        holder.emplace(std::move(began));  // e.g. stored in a request object
        CHECK_THROWS_MATCHES(later.begin(), dbpool::Error, interleaved());
        holder.reset();  // the request object is destroyed; `began` is moved-from
    }
    const auto before = sent(*db);
    CHECK_THROWS_MATCHES(later.begin(), dbpool::Error, ended_owner());
    CHECK(sent(*db) == before);
    later.commit();  // ending it through a later handle stays legal (PersistentDB)
    later.begin();
    later.commit();
    CHECK(db->begins() == 2);
    CHECK(db->commits() == 2);
}

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: begin() over a transaction whose handle was assigned another "
                 "handle",
                 "[persistent][guard]") {
    auto handle = pool.connection();
    handle.begin();
    handle->execute("debit a");
    handle = pool.connection();  // the handle that began ends here; its variable lives on
    const auto before = sent(*db);
    CHECK_THROWS_MATCHES(handle.begin(), dbpool::Error, ended_owner());
    CHECK_THROWS_MATCHES(dbpool::Transaction<Handle>(handle), dbpool::Error, ended_owner());
    CHECK(sent(*db) == before);
    handle.rollback();
    handle.begin();
    handle.commit();
    CHECK(db->begins() == 2);
    CHECK(db->rollbacks() == 1);
    CHECK(db->commits() == 1);
}

// --- legal uses ----------------------------------------------------------------------------------

TEST_CASE_METHOD(GuardFixture, "persistent guard: a helper called inside a transaction joins it",
                 "[persistent][guard]") {
    auto caller = pool.connection();
    dbpool::Transaction<Handle> tx(caller);
    const auto helper = [&] {
        auto mine = pool.connection();  // the same connection: it joins the transaction
        mine->execute("helper's statement");
        return mine->raw().id();
    };
    CHECK(helper() == caller->raw().id());
    CHECK(caller->in_transaction());
    tx.commit();
    CHECK(db->begins() == 1);
    CHECK(db->commits() == 1);
}

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: handles one after another may begin, and end what an "
                 "earlier handle began (PersistentDB)",
                 "[persistent][guard]") {
    {
        auto a = pool.connection();
        a.begin();
        a->execute("w");
    }  // the transaction outlives the handle that began it
    {
        auto b = pool.connection();
        CHECK(b->in_transaction());
        b.commit();
    }
    {
        auto c = pool.connection();
        c.begin();
    }
    {
        auto d = pool.connection();
        // DBUtils would send BEGIN, and MySQL would commit c's transaction; d may end it.
        CHECK_THROWS_MATCHES(d.begin(), dbpool::Error, ended_owner());
        d.rollback();
        d.begin();
        d.rollback();
    }
    CHECK(db->begins() == 3);
    CHECK(db->commits() == 1);
}

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: the same handle may begin again, and a lost transaction or "
                 "another handle's commit() frees the guard",
                 "[persistent][guard]") {
    auto first = pool.connection();
    auto second = pool.connection();
    SECTION("the same handle") {
        first.begin();
        first.begin();  // SteadyConnection's rules, not the guard's
        first.commit();
    }
    SECTION("the transaction is lost with the connection") {
        first.begin();
        db->fail_statements(1, Failure::broken);
        CHECK_THROWS_MATCHES(first->execute("w"), dbpool::Error,
                             has_code(ErrorCode::transaction_lost));
        second.begin();  // a new transaction on the reopened connection
        second.commit();
    }
    SECTION("another handle commits") {
        first.begin();
        second.commit();
        second.begin();
        second.commit();
    }
    SECTION("the owner is closed") {
        first.begin();
        first.close();  // not closeable: rolls back
        second.begin();
        second.commit();
    }
}

TEST_CASE_METHOD(GuardFixture, "persistent guard: each thread's connection has its own guard",
                 "[persistent][guard][concurrency]") {
    auto mine = pool.connection();
    mine.begin();
    bool began = false;
    std::thread other([&] {
        auto theirs = pool.connection();
        theirs.begin();
        began = true;
        theirs.commit();
    });
    other.join();
    CHECK(began);
    mine.commit();
    CHECK(db->commits() == 2);
}

// --- what the guard cannot see -------------------------------------------------------------------

TEST_CASE_METHOD(GuardFixture,
                 "persistent guard: blind spots (documented): statements that join another "
                 "task's transaction, and begin() on the steady connection",
                 "[persistent][guard]") {
    auto first = pool.connection();
    auto second = pool.connection();
    first.begin();
    second->execute("joins the open transaction unnoticed");
    SECTION("begin() through the steady connection of the second handle") {
        CHECK_NOTHROW(second->begin());
    }
    SECTION("a transaction begun through the first handle's steady connection") {
        first.rollback();
        first->begin();
        CHECK_NOTHROW(second.begin());
    }
}

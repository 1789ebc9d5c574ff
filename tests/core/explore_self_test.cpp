// The schedule explorer's own tests: it finds bugs that need a given number of preemptions, no
// sooner and no later, replays what it finds, and keeps every execution bounded.
#include "explore/explore.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>

namespace explore = dbpool::explore;
using Sync = explore::Sync;

namespace {

explore::Options bound(int preemptions) {
    explore::Options options;
    options.preemption_bound = preemptions;
    options.max_executions = 100000;
    options.print_failures = false;
    return options;
}

// The waiter checks the flag and only then takes the lock to wait: a notify between the two
// is lost. One preemption (the waiter's, right after its check) shows it.
void lost_wakeup() {
    Sync::mutex m;
    Sync::condition_variable cv;
    Sync::atomic<bool> ready{false};
    Sync::thread waiter([&] {
        if (!ready.load()) {
            std::unique_lock<Sync::mutex> lock(m);
            cv.wait(lock);
        }
    });
    Sync::thread notifier([&] {
        ready.store(true);
        std::lock_guard<Sync::mutex> lock(m);
        cv.notify_one();
    });
    waiter.join();
    notifier.join();
}

// The same program done right: the check happens under the lock.
void correct_wakeup() {
    Sync::mutex m;
    Sync::condition_variable cv;
    bool ready = false;
    Sync::thread waiter([&] {
        std::unique_lock<Sync::mutex> lock(m);
        cv.wait(lock, [&] { return ready; });
    });
    Sync::thread notifier([&] {
        {
            std::lock_guard<Sync::mutex> lock(m);
            ready = true;
        }
        cv.notify_one();
    });
    waiter.join();
    notifier.join();
}

void racy_increment() {
    Sync::atomic<int> counter{0};
    const auto add = [&] { counter.store(counter.load() + 1); };
    Sync::thread a(add);
    Sync::thread b(add);
    a.join();
    b.join();
    explore::check(counter.load() == 2, "both increments counted");
}

void lock_order_inversion() {
    Sync::mutex first;
    Sync::mutex second;
    Sync::thread a([&] {
        std::lock_guard<Sync::mutex> one(first);
        std::lock_guard<Sync::mutex> two(second);
    });
    Sync::thread b([&] {
        std::lock_guard<Sync::mutex> two(second);
        std::lock_guard<Sync::mutex> one(first);
    });
    a.join();
    b.join();
}

// Correct: three threads add under a mutex and with an atomic; the total is exact.
void correct_counters() {
    Sync::mutex m;
    int guarded = 0;
    Sync::atomic<int> counter{0};
    const auto work = [&] {
        counter.fetch_add(1);
        std::lock_guard<Sync::mutex> lock(m);
        ++guarded;
    };
    Sync::thread a(work);
    Sync::thread b(work);
    work();
    a.join();
    b.join();
    std::lock_guard<Sync::mutex> lock(m);
    explore::check(guarded == 3 && counter.load() == 3, "every addition counted");
}

}  // namespace

TEST_CASE("explore: a lost wake-up needs exactly one preemption, and its schedule replays",
          "[explore]") {
    const explore::Result none = explore::dfs(bound(0), lost_wakeup);
    INFO(explore::describe(none));
    CHECK(none.ok());
    CHECK(none.exhausted);

    const explore::Result one = explore::dfs(bound(1), lost_wakeup);
    INFO(explore::describe(one));
    REQUIRE_FALSE(one.ok());
    CHECK(one.failure->message.find("deadlock") != std::string::npos);
    CHECK(one.failure->message.find("waits on a condition variable") != std::string::npos);

    explore::Options quiet;
    quiet.print_failures = false;
    const explore::Result again = explore::replay(one.failure->schedule, lost_wakeup, quiet);
    REQUIRE_FALSE(again.ok());
    CHECK(again.failure->message == one.failure->message);
    CHECK(again.failure->schedule == one.failure->schedule);

    const explore::Result right = explore::dfs(bound(2), correct_wakeup);
    INFO(explore::describe(right));
    CHECK(right.ok());
    CHECK(right.exhausted);
}

TEST_CASE("explore: an increment made of a load and a store loses a count with one preemption",
          "[explore]") {
    const explore::Result none = explore::dfs(bound(0), racy_increment);
    INFO(explore::describe(none));
    CHECK(none.ok());

    const explore::Result one = explore::dfs(bound(1), racy_increment);
    INFO(explore::describe(one));
    REQUIRE_FALSE(one.ok());
    CHECK(one.failure->message == "check failed in thread 0: both increments counted");
}

TEST_CASE("explore: a lock order inversion is a deadlock", "[explore]") {
    const explore::Result r = explore::dfs(bound(1), lock_order_inversion);
    INFO(explore::describe(r));
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure->message.find("waits for a mutex held by thread") != std::string::npos);
}

TEST_CASE("explore: a correct program is explored exhaustively, the same way every time",
          "[explore]") {
    const explore::Result first = explore::dfs(bound(2), correct_counters);
    INFO(explore::describe(first));
    REQUIRE(first.ok());
    CHECK(first.exhausted);
    const explore::Result second = explore::dfs(bound(2), correct_counters);
    CHECK(second.ok());
    CHECK(second.executions == first.executions);

    // More preemptions, more schedules: the bound is what keeps the search small.
    const explore::Result fewer = explore::dfs(bound(1), correct_counters);
    CHECK(fewer.exhausted);
    CHECK(fewer.executions < first.executions);
    WARN("correct_counters: " << fewer.executions << " executions with 1 preemption, "
                              << first.executions << " with 2");
}

TEST_CASE("explore: max_executions caps a search without claiming it exhausted", "[explore]") {
    explore::Options options = bound(-1);
    options.max_executions = 10;
    const explore::Result r = explore::dfs(options, correct_counters);
    CHECK(r.ok());
    CHECK(r.executions == 10);
    CHECK_FALSE(r.exhausted);
}

TEST_CASE("explore: timed waits time out in virtual time, without sleeping", "[explore]") {
    using namespace std::chrono_literals;
    const auto started = std::chrono::steady_clock::now();
    const explore::Result r = explore::dfs(bound(2), [] {
        Sync::mutex m;
        Sync::condition_variable cv;
        bool ready = false;
        const auto t0 = explore::Clock::now();
        Sync::thread late([&] {
            explore::sleep_for(1h);
            std::lock_guard<Sync::mutex> lock(m);
            ready = true;
            cv.notify_all();
        });
        std::unique_lock<Sync::mutex> lock(m);
        // Nobody notifies within 10 minutes: a timeout at exactly t0 + 10min.
        const auto status = cv.wait_until(lock, t0 + 10min);
        explore::check(status == std::cv_status::timeout, "wait_until timed out");
        explore::check(explore::Clock::now() == t0 + 10min, "virtual time is the deadline");
        explore::check(!cv.wait_for(lock, 5min, [&] { return ready; }), "wait_for(pred) false");
        // The late thread notifies at t0 + 1h, long before this deadline.
        explore::check(cv.wait_for(lock, 24h, [&] { return ready; }), "woken by the notify");
        explore::check(explore::Clock::now() == t0 + 1h, "woken when the sleeper woke");
        lock.unlock();
        late.join();
    });
    const auto took = std::chrono::steady_clock::now() - started;
    INFO(explore::describe(r));
    CHECK(r.ok());
    CHECK(r.exhausted);
    CHECK(took < 10s);  // hours of virtual time; milliseconds of real time
}

TEST_CASE("explore: a spin loop with yield terminates; without it, the step bound reports it",
          "[explore]") {
    const explore::Result polite = explore::dfs(bound(2), [] {
        Sync::atomic<bool> flag{false};
        Sync::thread setter([&] { flag.store(true); });
        while (!flag.load())
            Sync::yield();
        setter.join();
    });
    INFO(explore::describe(polite));
    CHECK(polite.ok());
    CHECK(polite.exhausted);

    explore::Options options = bound(0);
    options.max_steps = 500;
    const explore::Result busy = explore::dfs(options, [] {
        Sync::atomic<bool> flag{false};
        Sync::thread setter([&] { flag.store(true); });
        while (!flag.load()) {
        }
        setter.join();
    });
    REQUIRE_FALSE(busy.ok());
    CHECK(busy.failure->message.find("step bound") != std::string::npos);
}

TEST_CASE("explore: an injected thread start failure throws std::system_error in the spawner",
          "[explore]") {
    std::atomic<int> caught{0};
    const explore::Result r = explore::dfs(bound(1), [&] {
        Sync::atomic<int> ran{0};
        explore::fail_thread_start(2);
        Sync::thread first([&] { ran.fetch_add(1); });
        try {
            Sync::thread second([&] { ran.fetch_add(1); });
            explore::check(false, "the second start should have failed");
        } catch (const std::system_error& e) {
            explore::check(e.code() == std::errc::resource_unavailable_try_again, "EAGAIN");
            caught.fetch_add(1);
        }
        explore::fail_every_thread_start();
        bool threw = false;
        try {
            Sync::thread third([] {});
        } catch (const std::system_error&) {
            threw = true;
        }
        explore::check(threw, "every start fails");
        first.join();
        explore::check(ran.load() == 1, "only the first thread ran");
    });
    INFO(explore::describe(r));
    CHECK(r.ok());
    CHECK(r.exhausted);
    CHECK(caught.load() == static_cast<int>(r.executions));
}

TEST_CASE("explore: PCT finds a depth-2 ordering bug for a fixed seed", "[explore]") {
    // Fails only when the reader runs between the writer's two stores: two ordering
    // constraints, a bug of depth 2.
    const auto scenario = [] {
        Sync::atomic<int> stage{0};
        Sync::thread writer([&] {
            stage.store(1);
            stage.store(2);
        });
        Sync::thread reader([&] { explore::check(stage.load() != 1, "saw the middle stage"); });
        writer.join();
        reader.join();
    };
    explore::Options quiet;
    quiet.print_failures = false;
    const explore::Result depth1 = explore::pct(42, 200, 1, scenario, quiet);
    CHECK(depth1.ok());  // without a priority change, one thread always runs to its end first
    const explore::Result r = explore::pct(42, 200, 2, scenario, quiet);
    INFO(explore::describe(r));
    REQUIRE_FALSE(r.ok());
    CHECK(r.executions <= 200);
    WARN("PCT depth 2, seed 42: found in run " << r.executions);
    const explore::Result again = explore::replay(r.failure->schedule, scenario, quiet);
    REQUIRE_FALSE(again.ok());
    CHECK(again.failure->message == r.failure->message);
}

TEST_CASE("explore: failures of the scenario's own making", "[explore]") {
    SECTION("an exception escaping a thread") {
        const explore::Result r = explore::dfs(bound(0), [] {
            Sync::thread t([] { throw std::runtime_error("boom"); });
            t.join();
        });
        REQUIRE_FALSE(r.ok());
        CHECK(r.failure->message == "an exception escaped thread 1: boom");
    }
    SECTION("a thread destroyed while joinable") {
        const explore::Result r = explore::dfs(bound(0), [] { Sync::thread t([] {}); });
        REQUIRE_FALSE(r.ok());
        CHECK(r.failure->message.find("still joinable") != std::string::npos);
    }
    SECTION("a thread that never ends after the scenario returned") {
        const explore::Result r = explore::dfs(bound(0), [] {
            auto* m = new Sync::mutex;  // leaked on purpose: the blocked thread still uses it
            auto* cv = new Sync::condition_variable;
            Sync::thread([m, cv] {
                std::unique_lock<Sync::mutex> lock(*m);
                cv->wait(lock);
            }).detach();
        });
        REQUIRE_FALSE(r.ok());
        CHECK(r.failure->message ==
              "deadlock: the scenario (thread 0) has returned; thread 1 waits on a condition "
              "variable");
    }
}

TEST_CASE("explore: detached threads run to their end before an execution ends", "[explore]") {
    std::atomic<int> finished{0};
    const explore::Result r = explore::dfs(bound(1), [&] {
        Sync::thread([&] {
            Sync::yield();
            finished.fetch_add(1);
        }).detach();
    });
    INFO(explore::describe(r));
    CHECK(r.ok());
    CHECK(finished.load() == static_cast<int>(r.executions));
}

TEST_CASE("explore: thread ids are the real ones, thread indices follow creation order",
          "[explore]") {
    const explore::Result r = explore::dfs(bound(1), [] {
        explore::check(explore::thread_index() == 0, "the scenario is thread 0");
        std::thread::id inside;
        Sync::thread t([&] {
            explore::check(explore::thread_index() == 1, "the first started is thread 1");
            inside = std::this_thread::get_id();
        });
        const auto id = t.get_id();
        t.join();
        explore::check(id == inside, "get_id is std::this_thread::get_id of the thread");
    });
    CHECK(r.ok());
}

TEST_CASE("explore: a quiescent hook sees a wake-up that only a timeout would have repaired",
          "[explore]") {
    using namespace std::chrono_literals;
    // The setter forgets to notify: the waiter polls every second, so nothing hangs and without
    // the hook nothing fails. The hook states "a waiter sleeps => there is nothing to take".
    const auto scenario = [](bool notify) {
        return [notify] {
            Sync::mutex m;
            Sync::condition_variable cv;
            bool available = false;
            bool sleeping = false;
            explore::on_quiescent([&] {
                explore::check(!(sleeping && available), "a waiter sleeps while one is available");
            });
            Sync::thread waiter([&] {
                std::unique_lock<Sync::mutex> lock(m);
                while (!available) {
                    sleeping = true;
                    cv.wait_for(lock, 1s);
                    sleeping = false;
                }
            });
            {
                std::lock_guard<Sync::mutex> lock(m);
                available = true;
            }
            if (notify) cv.notify_one();
            waiter.join();
        };
    };
    const explore::Result right = explore::dfs(bound(2), scenario(true));
    INFO(explore::describe(right));
    CHECK(right.ok());
    const explore::Result wrong = explore::dfs(bound(2), scenario(false));
    INFO(explore::describe(wrong));
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.failure->message ==
          "check failed in thread 0: a waiter sleeps while one is available");
}

TEST_CASE("explore: spurious wake-ups, when enabled, break a wait without a predicate",
          "[explore]") {
    const auto scenario = [] {
        Sync::mutex m;
        Sync::condition_variable cv;
        bool ready = false;
        Sync::thread waiter([&] {
            std::unique_lock<Sync::mutex> lock(m);
            if (!ready) cv.wait(lock);  // should be a loop
            explore::check(ready, "woken without the flag");
        });
        {
            std::lock_guard<Sync::mutex> lock(m);
            ready = true;
            cv.notify_one();
        }
        waiter.join();
    };
    CHECK(explore::dfs(bound(2), scenario).ok());
    explore::Options options = bound(2);
    options.spurious_wakeups = 1;
    const explore::Result r = explore::dfs(options, scenario);
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure->schedule.rfind("spurious=1:", 0) == 0);
    explore::Options quiet;
    quiet.print_failures = false;
    const explore::Result again = explore::replay(r.failure->schedule, scenario, quiet);
    REQUIRE_FALSE(again.ok());
    CHECK(again.failure->message == r.failure->message);
}

TEST_CASE("explore: schedule strings", "[explore]") {
    explore::Options options;
    const std::vector<std::size_t> choices{0, 0, 0, 1, 2, 2, 0};
    const std::string text = explore::detail::encode_schedule(options, choices);
    CHECK(text == "0*3.1.2*2.0");
    CHECK(explore::detail::decode_schedule(text, options) == choices);
    CHECK_THROWS_AS(explore::replay("0..1", [] {}), std::invalid_argument);
    CHECK(explore::replay("", [] {}).ok());
}

TEST_CASE("explore: early timeouts let a timeout race a notify", "[explore]") {
    using namespace std::chrono_literals;
    // Wrong: assumes the notify always beats the one-second timeout.
    const auto scenario = [] {
        Sync::mutex m;
        Sync::condition_variable cv;
        bool ready = false;
        Sync::thread notifier([&] {
            std::lock_guard<Sync::mutex> lock(m);
            ready = true;
            cv.notify_one();
        });
        {
            std::unique_lock<Sync::mutex> lock(m);
            explore::check(cv.wait_for(lock, 1s, [&] { return ready; }), "notified in time");
        }
        notifier.join();
    };
    // By default time only moves when no thread can run, so the notifier always wins.
    const explore::Result by_default = explore::dfs(bound(2), scenario);
    INFO(explore::describe(by_default));
    CHECK(by_default.ok());
    explore::Options options = bound(2);
    options.early_timeouts = true;
    const explore::Result early = explore::dfs(options, scenario);
    INFO(explore::describe(early));
    REQUIRE_FALSE(early.ok());
    CHECK(early.failure->message == "check failed in thread 0: notified in time");
    CHECK(early.failure->schedule.rfind("early-timeouts:", 0) == 0);
}

TEST_CASE("explore: a thread blocked outside the scheduler fails at the wall-clock limit",
          "[explore]") {
    using namespace std::chrono_literals;
    explore::Options options = bound(0);
    options.execution_time_limit = 50ms;
    const auto started = std::chrono::steady_clock::now();
    const explore::Result r = explore::dfs(options, [] {
        std::this_thread::sleep_for(300ms);  // stands for a real lock held elsewhere
    });
    REQUIRE_FALSE(r.ok());
    CHECK(r.failure->message.find("wall-clock limit") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - started < 250ms);
}

TEST_CASE("explore: cost of a scheduling point", "[explore]") {
    // Three threads of 60 operations each: about 200 scheduling points per execution, the size
    // of a pool scenario.
    const auto scenario = [] {
        Sync::atomic<int> counter{0};
        Sync::mutex m;
        const auto work = [&] {
            for (int i = 0; i < 20; ++i) {
                counter.fetch_add(1);
                std::lock_guard<Sync::mutex> lock(m);
            }
        };
        Sync::thread a(work);
        Sync::thread b(work);
        work();
        a.join();
        b.join();
        explore::check(counter.load() == 60, "all additions");
    };
    explore::Options options = bound(2);
    options.max_executions = 300;
    const auto started = std::chrono::steady_clock::now();
    const explore::Result r = explore::dfs(options, scenario);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    CHECK(r.ok());
    CHECK(r.executions == 300);
    WARN("300 executions of ~200 scheduling points: " << took.count() / 1000 << " ms, "
                                                      << took.count() / 300 << " us per execution");
}

// The pooled connection's lifecycle (detail/slot_state.hpp) on its own: no threads, no I/O, no
// clock. Every (state, event) pair is checked against the table below, so a transition can be
// neither added nor removed without this test (and docs/design.md) saying so.
#include <dbpool/detail/slot_state.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <tuple>
#include <vector>

using dbpool::detail::slot_event_count;
using dbpool::detail::slot_state_count;
using dbpool::detail::slot_step;
using dbpool::detail::SlotAction;
using dbpool::detail::SlotEvent;
using dbpool::detail::SlotState;
using dbpool::detail::SlotStep;

namespace {

using S = SlotState;
using E = SlotEvent;
using A = SlotAction;

struct Row {
    S from;
    E event;
    S to;
    A action;
};

// The whole machine. Any pair not listed here is refused.
const std::vector<Row> table = {
    {S::empty, E::reserve, S::connecting, A::connect},
    {S::connecting, E::connect_ok, S::returning, A::offer},
    {S::connecting, E::connect_failed, S::empty, A::free_capacity},
    {S::idle, E::claim, S::in_use, A::hand_out},
    {S::in_use, E::stale, S::validating, A::ping},
    {S::validating, E::ping_ok, S::in_use, A::hand_out},
    {S::validating, E::ping_failed, S::retiring, A::close},
    {S::validating, E::unclaimed, S::returning, A::offer},
    {S::in_use, E::release, S::returning, A::offer},
    {S::in_use, E::release_dirty, S::resetting, A::reset},
    {S::resetting, E::reset_ok, S::returning, A::offer},
    {S::resetting, E::reset_failed, S::retiring, A::close},
    {S::in_use, E::discard, S::retiring, A::close},
    {S::idle, E::keepalive, S::pinging, A::ping},
    {S::pinging, E::ping_ok, S::returning, A::offer},
    {S::pinging, E::ping_failed, S::retiring, A::close},
    {S::returning, E::shelve, S::idle, A::none},
    {S::returning, E::hand_off, S::in_use, A::hand_out},
    {S::idle, E::expire, S::retiring, A::close},
    {S::returning, E::expire, S::retiring, A::close},
    {S::retiring, E::closed, S::empty, A::free_capacity},
    {S::connecting, E::abandon, S::empty, A::free_capacity},
    {S::idle, E::abandon, S::empty, A::free_capacity},
    {S::validating, E::abandon, S::empty, A::free_capacity},
    {S::in_use, E::abandon, S::empty, A::free_capacity},
    {S::returning, E::abandon, S::empty, A::free_capacity},
    {S::resetting, E::abandon, S::empty, A::free_capacity},
    {S::pinging, E::abandon, S::empty, A::free_capacity},
    {S::retiring, E::abandon, S::empty, A::free_capacity},
};

std::vector<S> all_states() {
    std::vector<S> states;
    for (int i = 0; i < slot_state_count; ++i)
        states.push_back(static_cast<S>(i));
    return states;
}

std::vector<E> all_events() {
    std::vector<E> events;
    for (int i = 0; i < slot_event_count; ++i)
        events.push_back(static_cast<E>(i));
    return events;
}

const Row* find(S from, E event) {
    for (const Row& row : table) {
        if (row.from == from && row.event == event) return &row;
    }
    return nullptr;
}

std::string name(S from, E event) {
    return std::string(to_string(from)) + " --" + to_string(event) + "-->";
}

}  // namespace

TEST_CASE("slot state machine: every (state, event) pair matches the table", "[slot_state]") {
    int valid = 0;
    for (S from : all_states()) {
        for (E event : all_events()) {
            INFO(name(from, event));
            const SlotStep step = slot_step(from, event);
            const Row* row = find(from, event);
            if (row == nullptr) {
                CHECK_FALSE(step.valid);
                CHECK(step.action == A::none);
                CHECK(step.next == from);  // a refused event changes nothing
                continue;
            }
            ++valid;
            CHECK(step.valid);
            CHECK(to_string(step.next) == std::string(to_string(row->to)));
            CHECK(to_string(step.action) == std::string(to_string(row->action)));
        }
    }
    CHECK(valid == static_cast<int>(table.size()));
    CHECK(slot_state_count * slot_event_count == 171);  // the whole square was walked
}

TEST_CASE("slot state machine: the enumerations are complete and named", "[slot_state]") {
    std::set<std::string> names;
    for (S state : all_states())
        names.insert(to_string(state));
    CHECK(names.size() == static_cast<std::size_t>(slot_state_count));
    CHECK(names.count("?") == 0);
    names.clear();
    for (E event : all_events())
        names.insert(to_string(event));
    CHECK(names.size() == static_cast<std::size_t>(slot_event_count));
    CHECK(names.count("?") == 0);
}

TEST_CASE("slot state machine: lifecycle properties", "[slot_state]") {
    SECTION("only reserve leaves empty, and only with a connect") {
        for (E event : all_events()) {
            const SlotStep step = slot_step(S::empty, event);
            CHECK(step.valid == (event == E::reserve));
        }
    }
    SECTION("every state but empty can be abandoned after fork(), freeing capacity") {
        for (S state : all_states()) {
            const SlotStep step = slot_step(state, E::abandon);
            CHECK(step.valid == (state != S::empty));
            if (step.valid) CHECK(step.next == S::empty);
        }
    }
    SECTION("capacity is freed only by a finished close, a failed connect or abandon") {
        for (const Row& row : table) {
            if (row.to != S::empty) continue;
            INFO(name(row.from, row.event));
            CHECK(row.action == A::free_capacity);
            CHECK((row.event == E::closed || row.event == E::connect_failed ||
                   row.event == E::abandon));
        }
    }
    SECTION("an available connection always passes through returning before idle") {
        for (const Row& row : table) {
            if (row.to != S::idle) continue;
            CHECK(row.from == S::returning);
            CHECK(row.event == E::shelve);
        }
    }
    SECTION("every path into in_use is a hand-out, and every I/O state is owned") {
        for (const Row& row : table) {
            if (row.to == S::in_use) CHECK(row.action == A::hand_out);
            if (row.to == S::validating || row.to == S::pinging) CHECK(row.action == A::ping);
            if (row.to == S::retiring) CHECK(row.action == A::close);
        }
    }
    SECTION("from every state, empty is reachable (nothing is stuck)") {
        for (S start : all_states()) {
            std::set<S> seen{start};
            std::vector<S> frontier{start};
            while (!frontier.empty()) {
                const S state = frontier.back();
                frontier.pop_back();
                for (E event : all_events()) {
                    if (event == E::abandon) continue;  // without the fork escape hatch
                    const SlotStep step = slot_step(state, event);
                    if (step.valid && seen.insert(step.next).second) frontier.push_back(step.next);
                }
            }
            INFO(to_string(start));
            CHECK(seen.count(S::empty) == 1);
            CHECK(seen.count(S::in_use) == 1);  // and every state can serve a borrower
        }
    }
}

TEST_CASE("slot state machine: slot_step is a constant expression", "[slot_state]") {
    // The lock-free paths rely on the table folding away at compile time.
    constexpr SlotStep claim = slot_step(S::idle, E::claim);
    static_assert(claim.valid && claim.next == S::in_use, "idle --claim--> in_use");
    constexpr SlotStep shelve = slot_step(S::returning, E::shelve);
    static_assert(shelve.valid && shelve.next == S::idle, "returning --shelve--> idle");
    constexpr SlotStep refused = slot_step(S::idle, E::release);
    static_assert(!refused.valid, "idle cannot be released");
    SUCCEED();
}

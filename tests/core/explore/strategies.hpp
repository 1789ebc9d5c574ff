#pragma once

#include "scheduler.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dbpool::explore::detail {

// Where no schedule says otherwise: the current thread goes on, else the lowest index runs.
inline std::size_t default_choice(const std::vector<std::size_t>& candidates, std::size_t current,
                                  bool current_is_candidate) {
    return current_is_candidate ? current : candidates.front();
}

inline std::string thread_list(const std::vector<std::size_t>& threads) {
    std::string text;
    for (std::size_t t : threads)
        text += (text.empty() ? "" : ",") + std::to_string(t);
    return text;
}

// Stateless depth-first search with iterative context bounding (CHESS): the stack holds the
// decisions of the current execution; the next execution replays a prefix and takes the next
// alternative at the deepest decision that still has one within the preemption bound.
class DfsStrategy final : public Strategy {
public:
    explicit DfsStrategy(int bound) : bound_(bound) {}

    void begin() override {
        depth_ = 0;
        preemptions_ = 0;
    }

    std::size_t choose(const std::vector<std::size_t>& candidates, std::size_t current,
                       bool current_is_candidate) override {
        if (candidates.size() == 1) return candidates.front();
        if (depth_ < stack_.size()) {
            const Node& n = stack_[depth_];
            if (n.candidates != candidates || n.current != current) {
                problem_ = "the scenario is not deterministic: at decision " +
                           std::to_string(depth_) + " threads {" + thread_list(candidates) +
                           "} could run where an earlier execution had {" +
                           thread_list(n.candidates) + "}";
                return no_thread;
            }
        } else {
            Node n;
            n.candidates = candidates;
            n.current = current;
            n.current_is_candidate = current_is_candidate;
            n.preemptions_before = preemptions_;
            const std::size_t first = default_choice(candidates, current, current_is_candidate);
            n.order.push_back(first);
            for (std::size_t c : candidates) {
                if (c != first) n.order.push_back(c);
            }
            stack_.push_back(std::move(n));
        }
        const Node& n = stack_[depth_++];
        const std::size_t pick = n.order[n.position];
        if (n.current_is_candidate && pick != current) ++preemptions_;
        return pick;
    }

    void end() override { stack_.resize(std::min(stack_.size(), depth_)); }

    bool next() override {
        while (!stack_.empty()) {
            Node& n = stack_.back();
            while (++n.position < n.order.size()) {
                const int cost = n.current_is_candidate && n.order[n.position] != n.current;
                if (bound_ < 0 || n.preemptions_before + cost <= bound_) return true;
            }
            stack_.pop_back();
        }
        exhausted_ = true;
        return false;
    }

    bool exhausted() const override { return exhausted_; }

    std::string describe() const override {
        return "dfs, preemption bound " + std::to_string(bound_);
    }

private:
    struct Node {
        std::vector<std::size_t> candidates;
        std::vector<std::size_t> order;  // the default choice first
        std::size_t position = 0;
        std::size_t current = 0;
        bool current_is_candidate = false;
        int preemptions_before = 0;
    };

    int bound_;
    std::vector<Node> stack_;
    std::size_t depth_ = 0;
    int preemptions_ = 0;
    bool exhausted_ = false;
};

// splitmix64: the same numbers with every standard library (std distributions differ).
inline std::uint64_t next_random(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// PCT (Burckhardt et al., ASPLOS 2010): each thread gets a random priority above `depth` when it
// first shows up; the highest-priority candidate runs; at depth-1 steps chosen uniformly over
// the estimated length, the thread about to run drops to a priority below every initial one.
class PctStrategy final : public Strategy {
public:
    PctStrategy(std::uint64_t seed, std::size_t runs, std::size_t depth, std::size_t steps)
        : seed_(seed), runs_(runs), depth_(std::max<std::size_t>(depth, 1)), steps_(steps) {}

    void begin() override {
        random_ = seed_ ^ (0x2545f4914f6cdd1dULL * (run_ + 1));
        priorities_.clear();
        step_ = 0;
        const std::size_t length = steps_ != 0 ? steps_ : std::max<std::size_t>(longest_, 16);
        change_points_.clear();
        for (std::size_t i = 1; i < depth_; ++i) {
            change_points_.push_back(1 + next_random(random_) % length);
        }
    }

    std::size_t choose(const std::vector<std::size_t>& candidates, std::size_t, bool) override {
        ++step_;
        for (std::size_t c : candidates) {
            if (c >= priorities_.size()) priorities_.resize(c + 1, 0);
            if (priorities_[c] == 0)
                priorities_[c] = depth_ + 1 + next_random(random_) % (1u << 30);
        }
        std::size_t best = highest(candidates);
        for (std::size_t i = 0; i < change_points_.size(); ++i) {
            if (change_points_[i] == step_) {
                priorities_[best] = depth_ - 1 - i;  // in 1..depth-1, below every initial one
                best = highest(candidates);
            }
        }
        return best;
    }

    void end() override {
        longest_ = std::max(longest_, step_);
        ++run_;
    }

    bool next() override { return run_ < runs_; }

    std::string describe() const override {
        return "pct seed=" + std::to_string(seed_) + " depth=" + std::to_string(depth_) +
               " run=" + std::to_string(run_ == 0 ? 0 : run_ - 1);
    }

private:
    std::size_t highest(const std::vector<std::size_t>& candidates) const {
        std::size_t best = candidates.front();
        for (std::size_t c : candidates) {
            if (priorities_[c] > priorities_[best]) best = c;
        }
        return best;
    }

    std::uint64_t seed_;
    std::size_t runs_;
    std::size_t depth_;
    std::size_t steps_;
    std::uint64_t random_ = 0;
    std::vector<std::uint64_t> priorities_;
    std::vector<std::size_t> change_points_;
    std::size_t step_ = 0;
    std::size_t longest_ = 0;
    std::size_t run_ = 0;
};

// Follows recorded choices, then the default; a choice that cannot be taken is reported.
class ReplayStrategy final : public Strategy {
public:
    explicit ReplayStrategy(std::vector<std::size_t> choices) : choices_(std::move(choices)) {}

    void begin() override { position_ = 0; }

    std::size_t choose(const std::vector<std::size_t>& candidates, std::size_t current,
                       bool current_is_candidate) override {
        if (candidates.size() == 1) return candidates.front();
        if (position_ >= choices_.size()) {
            return default_choice(candidates, current, current_is_candidate);
        }
        const std::size_t want = choices_[position_++];
        if (!std::binary_search(candidates.begin(), candidates.end(), want)) {
            problem_ = "the schedule does not fit the scenario: decision " +
                       std::to_string(position_ - 1) + " chooses thread " + std::to_string(want) +
                       " but only {" + thread_list(candidates) + "} can run";
            return no_thread;
        }
        return want;
    }

    bool next() override { return false; }

    std::string describe() const override { return "replay"; }

private:
    std::vector<std::size_t> choices_;
    std::size_t position_ = 0;
};

// A schedule string: optional options that change the candidates ("spurious=N",
// "early-timeouts", comma-separated, then ':'), then the choices, run-length encoded:
// "0*3.1.0*2" is 0,0,0,1,0,0.
inline std::string encode_schedule(const Options& options,
                                   const std::vector<std::size_t>& choices) {
    std::string text;
    if (options.spurious_wakeups != 0)
        text += "spurious=" + std::to_string(options.spurious_wakeups);
    if (options.early_timeouts) text += std::string(text.empty() ? "" : ",") + "early-timeouts";
    if (!text.empty()) text += ':';
    for (std::size_t i = 0; i < choices.size();) {
        std::size_t j = i;
        while (j < choices.size() && choices[j] == choices[i])
            ++j;
        if (i != 0) text += '.';
        text += std::to_string(choices[i]);
        if (j - i > 1) text += '*' + std::to_string(j - i);
        i = j;
    }
    return text;
}

inline std::vector<std::size_t> decode_schedule(const std::string& schedule, Options& options) {
    const auto bad = [&] {
        return std::invalid_argument("dbpool::explore: not a schedule string: \"" + schedule + '"');
    };
    std::string body = schedule;
    if (const auto colon = schedule.find(':'); colon != std::string::npos) {
        body = schedule.substr(colon + 1);
        std::string flags = schedule.substr(0, colon) + ',';
        for (std::size_t start = 0, comma; (comma = flags.find(',', start)) != std::string::npos;
             start = comma + 1) {
            const std::string flag = flags.substr(start, comma - start);
            if (flag == "early-timeouts") {
                options.early_timeouts = true;
            } else if (flag.rfind("spurious=", 0) == 0 && flag.size() > 9) {
                options.spurious_wakeups = std::stoul(flag.substr(9));
            } else {
                throw bad();
            }
        }
    }
    std::vector<std::size_t> choices;
    std::size_t i = 0;
    const auto number = [&] {
        if (i >= body.size() || body[i] < '0' || body[i] > '9') throw bad();
        std::size_t value = 0;
        while (i < body.size() && body[i] >= '0' && body[i] <= '9') {
            value = value * 10 + static_cast<std::size_t>(body[i++] - '0');
        }
        return value;
    };
    for (bool first = true; i < body.size(); first = false) {
        if (!first) {
            if (body[i] != '.') throw bad();
            ++i;
        }
        const std::size_t thread = number();
        std::size_t count = 1;
        if (i < body.size() && body[i] == '*') {
            ++i;
            count = number();
        }
        choices.insert(choices.end(), count, thread);
    }
    return choices;
}

}  // namespace dbpool::explore::detail

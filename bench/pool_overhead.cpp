// What a pool costs per acquire+release of a connection that does nothing, side by side with
// the peers in one run: PooledPool (default options, and ping = never), PersistentPool, a
// textbook mutex+condvar pool, soci's connection_pool and MySQL++'s ConnectionPool (when
// installed), and one uncontended std::mutex lock+unlock pair as the unit.
//
// Sections (each cell = one pool, one configuration, one repetition; repetitions rotate the
// order of the pools so none always runs first or last; the report uses medians of the
// per-repetition ratios):
//   single       1 thread: ns per cycle, and the mutex pair measured in the same repetitions
//   crowded      threads above connections: 8 on 4, 64 on 4, 64 on 8, 256 on 8 (2 s windows:
//                cycles/s, longest gap between two cycles of one thread, smallest share)
//   curve        1..1024 threads on 8 connections (the oversubscribed curve)
//   connections  8 threads on 4 free connections of a pool of 8..1024 (the rest held): does
//                finding a free connection cost more in a bigger pool?
//   enough       a connection per thread: 2, 8 and 64 threads
//   investigate  (not in the default set) 64 threads on 8 and on 4 connections: PooledPool with
//                ping on and off, strict hand-off (0) and a 100 ms hand-off window
// Beside the pools, "no_pool" runs a few nanoseconds of unshared work in the crowded and curve
// cells: the smallest share and longest gap the scheduler alone produces there.
//
//   dbpool_pool_overhead [--sections a,b] [--reps N] [--scale F] [--json FILE]
// --scale multiplies every duration (scripts/bench.sh --quick uses 0.1). Every loop is bounded
// by its duration.

#include <dbpool/dbpool.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "bench_support.hpp"
#include "cycle_runner.hpp"
#include "peer_pools.hpp"

namespace {

using dbpool_bench::CellResult;
using dbpool_bench::keep;
using dbpool_bench::NoopConnection;
using dbpool_bench::run_cycles;

// One cell's configuration.
struct Setup {
    int threads = 1;
    int connections = 8;  // the pool's limit
    int held = 0;         // connections held by the harness for the whole cell
    double seconds = 1;
    bool timed = false;  // measure the longest gap between cycles (one TSC read per cycle)
};

using Runner = std::function<CellResult(const Setup&)>;

struct Kind {
    std::string name;
    Runner run;
};

// Creates the pool, opens every connection by holding it, keeps `held` of them (the first
// ones taken) for the whole cell and gives the others back, then runs the cycles.
template <class MakePool, class Acquire>
CellResult run_pool(const Setup& setup, MakePool&& make_pool, Acquire&& acquire) {
    auto pool = make_pool(setup.connections);
    {
        using HandleType = decltype(acquire(*pool));
        std::vector<HandleType> handles;
        handles.reserve(static_cast<std::size_t>(setup.connections));
        for (int i = 0; i < setup.connections; ++i)
            handles.push_back(acquire(*pool));
        while (static_cast<int>(handles.size()) > setup.held)
            handles.pop_back();
        CellResult result = run_cycles(setup.threads, setup.seconds, setup.timed, [&] {
            auto handle = acquire(*pool);
            keep(handle);
        });
        handles.clear();
        return result;
    }
}

dbpool::PoolOptions pooled_options(int connections) {
    dbpool::PoolOptions options;  // defaults, except: a limit, and wait at it
    options.maxconnections = connections;
    options.blocking = true;
    return options;
}

Kind pooled_kind(const std::string& name,
                 std::function<void(dbpool::PoolOptions&)> adjust = nullptr) {
    return {name, [adjust](const Setup& setup) {
                return run_pool(
                    setup,
                    [&](int connections) {
                        dbpool::PoolOptions options = pooled_options(connections);
                        if (adjust) adjust(options);
                        return std::make_unique<dbpool::PooledPool<NoopConnection>>(
                            [] { return NoopConnection{}; }, options);
                    },
                    [](auto& pool) { return pool.connection(); });
            }};
}

Kind persistent_kind(const std::string& name, unsigned ping) {
    return {name, [ping](const Setup& setup) {
                dbpool::PersistentOptions options;
                options.ping = ping;
                dbpool::PersistentPool<NoopConnection> pool([] { return NoopConnection{}; },
                                                            options);
                return run_cycles(setup.threads, setup.seconds, setup.timed, [&] {
                    auto handle = pool.connection();
                    keep(handle);
                });
            }};
}

Kind textbook_kind() {
    return {"textbook", [](const Setup& setup) {
                return run_pool(
                    setup,
                    [](int connections) {
                        return std::make_unique<dbpool_bench::TextbookPool<NoopConnection>>(
                            static_cast<std::size_t>(connections));
                    },
                    [](auto& pool) { return pool.acquire(); });
            }};
}

Kind mutex_pair_kind() {
    return {"mutex_pair", [](const Setup& setup) {
                std::mutex mutex;
                return run_cycles(setup.threads, setup.seconds, setup.timed, [&] {
                    mutex.lock();
                    mutex.unlock();
                });
            }};
}

// No pool at all: a few nanoseconds of work that shares nothing. With threads far above cores
// its smallest share and longest gap are what the scheduler alone does (the floor every pool's
// numbers include); its cycles/s mean nothing.
Kind no_pool_kind() {
    return {"no_pool", [](const Setup& setup) {
                return run_cycles(setup.threads, setup.seconds, setup.timed, [] {
                    unsigned value = 0;
                    for (unsigned i = 0; i < 16; ++i) {
                        value = value * 31 + i;
                        keep(value);
                    }
                });
            }};
}

// Used by the peers only, which may all be missing.
[[maybe_unused]] std::unique_ptr<NoopConnection> make_noop() {
    return std::make_unique<NoopConnection>();
}

// The peers, when installed; `why_not` says why a peer is left out.
std::vector<Kind> peer_kinds(std::vector<std::string>& why_not) {
    std::vector<Kind> kinds;
#if DBPOOL_BENCH_WITH_SOCI
    kinds.push_back({"soci", [](const Setup& setup) {
                         return run_pool(
                             setup,
                             [](int connections) {
                                 return std::make_unique<dbpool_bench::SociPool<NoopConnection>>(
                                     static_cast<std::size_t>(connections), make_noop);
                             },
                             [](auto& pool) { return pool.acquire(); });
                     }});
#else
    why_not.push_back("soci: not installed (libsoci-dev)");
#endif
#if DBPOOL_BENCH_WITH_MYSQLPP
    if (dbpool_bench::MysqlppPool<NoopConnection>::thread_safe()) {
        kinds.push_back(
            {"mysqlpp", [](const Setup& setup) {
                 return run_pool(
                     setup,
                     [](int connections) {
                         return std::make_unique<dbpool_bench::MysqlppPool<NoopConnection>>(
                             static_cast<std::size_t>(connections), make_noop);
                     },
                     [](auto& pool) { return pool.acquire(); });
             }});
    } else {
        why_not.push_back("mysqlpp: built without thread awareness (its pool mutex is a no-op)");
    }
#else
    why_not.push_back("mysqlpp: not installed (libmysql++-dev)");
#endif
    return kinds;
}

struct Cell {
    std::string section;
    std::string pool;
    int rep;
    Setup setup;
    CellResult result;
};

std::vector<Cell> cells;

// Runs every kind on one configuration, `reps` times, rotating the order each repetition.
void run_group(const std::string& section, const std::vector<Kind>& kinds, Setup setup, int reps) {
    for (int rep = 0; rep < reps; ++rep) {
        for (std::size_t k = 0; k < kinds.size(); ++k) {
            const Kind& kind = kinds[(k + static_cast<std::size_t>(rep)) % kinds.size()];
            const CellResult r = kind.run(setup);
            cells.push_back({section, kind.name, rep, setup, r});
            std::printf("  %-11s %-20s thr %4d conns %4d held %4d rep %d: %8.1f ns/cycle %7.3f M/s",
                        section.c_str(), kind.name.c_str(), setup.threads, setup.connections,
                        setup.held, rep + 1, r.ns_per_cycle(), r.cycles_per_second() / 1e6);
            if (setup.timed) {
                std::printf("  max gap %8.0f us  min share %.2f", r.max_gap_ns / 1e3, r.min_share);
            }
            std::printf("  csw/kcycle %.1f+%.1f\n", r.voluntary_switches * 1e3,
                        r.involuntary_switches * 1e3);
            std::fflush(stdout);
        }
    }
}

std::set<std::string> parse_set(const std::string& text) {
    std::set<std::string> values;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = text.find(',', start);
        const std::string item = text.substr(start, comma - start);
        if (!item.empty()) values.insert(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return values;
}

void write_json(const std::string& path, const std::vector<std::string>& why_not) {
    std::FILE* out = std::fopen(path.c_str(), "w");
    if (out == nullptr) {
        std::perror(path.c_str());
        std::exit(1);
    }
    std::fprintf(out, "{\n  \"ticks_per_ns\": %.4f,\n  \"peers_missing\": [",
                 dbpool_bench::ticks_per_ns());
    for (std::size_t i = 0; i < why_not.size(); ++i)
        std::fprintf(out, "%s\"%s\"", i ? ", " : "", why_not[i].c_str());
    std::fprintf(out, "],\n  \"cells\": [\n");
    for (std::size_t i = 0; i < cells.size(); ++i) {
        const Cell& c = cells[i];
        std::fprintf(out,
                     "    {\"section\": \"%s\", \"pool\": \"%s\", \"rep\": %d, \"threads\": %d, "
                     "\"connections\": %d, \"held\": %d, \"timed\": %s, \"seconds\": %.4f, "
                     "\"cycles\": %llu, \"ns_per_cycle\": %.3f, \"cycles_per_second\": %.1f, "
                     "\"min_share\": %.4f, \"max_gap_us\": %.1f, \"voluntary_switches\": %.6f, "
                     "\"involuntary_switches\": %.6f}%s\n",
                     c.section.c_str(), c.pool.c_str(), c.rep, c.setup.threads, c.setup.connections,
                     c.setup.held, c.setup.timed ? "true" : "false", c.result.seconds,
                     static_cast<unsigned long long>(c.result.cycles), c.result.ns_per_cycle(),
                     c.result.cycles_per_second(), c.result.min_share, c.result.max_gap_ns / 1e3,
                     c.result.voluntary_switches, c.result.involuntary_switches,
                     i + 1 < cells.size() ? "," : "");
    }
    std::fprintf(out, "  ]\n}\n");
    std::fclose(out);
}

}  // namespace

int main(int argc, char** argv) {
    std::set<std::string> sections = {"single", "crowded", "curve", "connections", "enough"};
    int reps = 3;
    double scale = 1.0;
    std::string json_path;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s needs a value (see the comment at the top)\n", argv[i]);
            return 2;
        }
        const std::string value = argv[++i];
        if (arg == "--sections") {
            sections = parse_set(value);
        } else if (arg == "--reps") {
            reps = std::clamp(std::atoi(value.c_str()), 1, 20);
        } else if (arg == "--scale") {
            scale = std::clamp(std::atof(value.c_str()), 0.01, 10.0);
        } else if (arg == "--json") {
            json_path = value;
        } else {
            std::fprintf(stderr, "unknown argument %s (see the comment at the top)\n", arg.c_str());
            return 2;
        }
    }

    std::vector<std::string> why_not;
    const std::vector<Kind> peers = peer_kinds(why_not);
    for (const std::string& reason : why_not)
        std::printf("peer left out: %s\n", reason.c_str());
    std::printf("TSC: %.3f ticks/ns\n", dbpool_bench::ticks_per_ns());

    const Kind pooled = pooled_kind("pooled");
    const Kind pooled_ping0 =
        pooled_kind("pooled_ping0", [](dbpool::PoolOptions& o) { o.ping = dbpool::Ping::never; });
    std::vector<Kind> contenders = {pooled, pooled_ping0, textbook_kind()};
    contenders.insert(contenders.end(), peers.begin(), peers.end());

    if (sections.count("single")) {
        std::vector<Kind> kinds = contenders;
        kinds.push_back(mutex_pair_kind());
        kinds.push_back(persistent_kind("persistent", dbpool::Ping::on_request));
        kinds.push_back(persistent_kind("persistent_ping0", dbpool::Ping::never));
        Setup setup;
        setup.threads = 1;
        setup.connections = 8;
        setup.seconds = 0.25 * scale;
        run_group("single", kinds, setup, reps + 2);
    }
    std::vector<Kind> crowded = contenders;
    crowded.push_back(no_pool_kind());
    if (sections.count("crowded")) {
        for (const auto& [threads, connections] :
             {std::pair{8, 4}, std::pair{64, 4}, std::pair{64, 8}, std::pair{256, 8}}) {
            Setup setup;
            setup.threads = threads;
            setup.connections = connections;
            setup.seconds = 2.0 * scale;
            setup.timed = true;
            run_group("crowded", crowded, setup, reps);
        }
    }
    if (sections.count("curve")) {
        for (int threads : {1, 2, 4, 8, 16, 64, 256, 1024}) {
            Setup setup;
            setup.threads = threads;
            setup.connections = 8;
            setup.seconds = 0.4 * scale;
            setup.timed = true;
            run_group("curve", crowded, setup, reps);
        }
    }
    if (sections.count("connections")) {
        for (int connections : {8, 64, 256, 1024}) {
            Setup setup;
            setup.threads = 8;
            setup.connections = connections;
            setup.held = connections - 4;
            setup.seconds = 0.5 * scale;
            run_group("connections", contenders, setup, reps);
        }
    }
    if (sections.count("enough")) {
        std::vector<Kind> kinds = contenders;
        kinds.push_back(persistent_kind("persistent", dbpool::Ping::on_request));
        for (int threads : {2, 8, 64}) {
            Setup setup;
            setup.threads = threads;
            setup.connections = threads;
            setup.seconds = 0.3 * scale;
            run_group("enough", kinds, setup, reps);
        }
    }
    if (sections.count("investigate")) {
        using std::chrono::milliseconds;
        const std::vector<Kind> kinds = {
            pooled,
            pooled_ping0,
            textbook_kind(),
            pooled_kind("pooled_handoff0",
                        [](dbpool::PoolOptions& o) { o.handoff_after = milliseconds(0); }),
            pooled_kind("pooled_handoff100ms",
                        [](dbpool::PoolOptions& o) { o.handoff_after = milliseconds(100); }),
        };
        for (int connections : {8, 4}) {
            Setup setup;
            setup.threads = 64;
            setup.connections = connections;
            setup.seconds = 2.0 * scale;
            setup.timed = true;
            run_group("investigate", kinds, setup, reps);
        }
    }
    if (!json_path.empty()) write_json(json_path, why_not);
    return 0;
}

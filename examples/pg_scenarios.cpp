// Four ways a threaded server reaches PostgreSQL, same workload, same thread counts:
//
//   new-connection   a new connection per request (connect, query, close)
//   global-mutex     one connection for the whole process behind a std::mutex
//   persistent       dbpool::PersistentPool: one connection per thread (DBUtils' PersistentPg)
//   pooled           dbpool::PooledPool: a shared pool of up to <threads> connections (PooledPg)
//
// Each request is one primary-key SELECT through a prepared statement on a small table this
// program creates (and drops). It prints requests/s, how many server sessions each scenario
// opened (counted by its creator), and p50/p99 latency.
//
//   pg_scenarios [--seconds S] [--threads 1,4,16] [postgresql://user:password@host:port/db]
// The URL defaults to $DBPOOL_PG_URL (scripts/postgres.sh writes it into DIR/env).
#include <dbpool/pg.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using dbpool::pg::Connection;

constexpr int table_rows = 1000;
constexpr const char* select_sql = "SELECT name FROM dbpool_example_items WHERE id = $1";
// Per-thread cap, so even a very fast run stays bounded in memory and time.
constexpr std::size_t max_requests_per_thread = 2'000'000;

struct Settings {
    double seconds = 2.0;
    std::vector<int> threads{1, 4, 16};
    std::string url;
};

struct Outcome {
    std::string scenario;
    int threads = 0;
    double requests_per_second = 0;
    std::uint64_t connections_opened = 0;
    double p50_us = 0;
    double p99_us = 0;
    std::uint64_t errors = 0;
};

// One request: look one row up by primary key (on a raw or a dbpool-protected connection).
template <class AnyConnection>
void request(AnyConnection& connection, int id) {
    const auto rows = connection.query(select_sql, id);
    if (rows.size() != 1) throw std::runtime_error("row not found");
}

// The connector, counting the sessions it opens. A wrapper around a connector forwards
// connect_bound(): with it a pool may open a connection on the thread that asks for it, which
// keeps that thread and its server process on one CPU (see PooledPool, "Where connections are
// opened"); without it every connect runs on a pool thread.
struct CountingConnector {
    dbpool::pg::Connector connector;
    std::atomic<std::uint64_t>* opened;

    Connection operator()() const {
        ++*opened;
        return connector();
    }
    std::optional<std::chrono::milliseconds> connect_bound() const {
        return connector.connect_bound();
    }
};

double percentile(std::vector<double>& values, double fraction) {
    if (values.empty()) return 0;
    const auto index = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                     values.end());
    return values[index];
}

// Runs `serve(id)` from `threads` threads for `seconds` and measures it; `opened` counts the
// sessions the scenario opened.
Outcome measure(const std::string& name, int threads, double seconds,
                const std::atomic<std::uint64_t>& opened, const std::function<void(int)>& serve) {
    std::vector<std::vector<double>> latencies(static_cast<std::size_t>(threads));
    std::atomic<std::uint64_t> errors{0};
    const std::uint64_t opened_before = opened.load();
    const auto start = Clock::now();
    const auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            std::minstd_rand random(static_cast<unsigned>(t + 1));
            std::uniform_int_distribution<int> ids(1, table_rows);
            auto& mine = latencies[static_cast<std::size_t>(t)];
            mine.reserve(100000);
            while (mine.size() < max_requests_per_thread) {
                const auto begin = Clock::now();
                if (begin >= deadline) break;
                try {
                    serve(ids(random));
                } catch (const std::exception& error) {
                    if (errors.fetch_add(1) == 0) std::cerr << name << ": " << error.what() << "\n";
                }
                mine.push_back(
                    std::chrono::duration<double, std::micro>(Clock::now() - begin).count());
            }
        });
    }
    for (auto& worker : workers)
        worker.join();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

    Outcome outcome;
    outcome.scenario = name;
    outcome.threads = threads;
    outcome.connections_opened = opened.load() - opened_before;
    std::vector<double> all;
    for (auto& mine : latencies)
        all.insert(all.end(), mine.begin(), mine.end());
    outcome.requests_per_second = static_cast<double>(all.size()) / elapsed;
    outcome.p50_us = percentile(all, 0.50);
    outcome.p99_us = percentile(all, 0.99);
    outcome.errors = errors.load();
    return outcome;
}

Settings parse(int argc, char** argv) {
    Settings settings;
    if (const char* url = std::getenv("DBPOOL_PG_URL")) settings.url = url;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--seconds" && i + 1 < argc) {
            settings.seconds = std::stod(argv[++i]);
        } else if (arg == "--threads" && i + 1 < argc) {
            settings.threads.clear();
            std::stringstream list(argv[++i]);
            for (std::string item; std::getline(list, item, ',');) {
                settings.threads.push_back(std::stoi(item));
            }
        } else if (arg.rfind("postgresql://", 0) == 0 || arg.rfind("postgres://", 0) == 0 ||
                   arg.find('=') != std::string::npos) {
            settings.url = arg;
        } else {
            throw std::invalid_argument("unknown argument '" + arg + "'");
        }
    }
    if (settings.url.empty()) throw std::invalid_argument("no URL and no $DBPOOL_PG_URL");
    if (settings.seconds <= 0 || settings.seconds > 600) {
        throw std::invalid_argument("--seconds must be in (0, 600]");
    }
    for (int threads : settings.threads) {
        if (threads < 1 || threads > 256) throw std::invalid_argument("--threads: 1..256 each");
    }
    return settings;
}

}  // namespace

int main(int argc, char** argv) {
    Settings settings;
    try {
        settings = parse(argc, argv);
    } catch (const std::exception& error) {
        std::cerr << error.what() << "\nusage: " << argv[0]
                  << " [--seconds S] [--threads 1,4,16] [postgresql://user:pw@host:port/db]\n";
        return 2;
    }
    try {
        const auto options = dbpool::pg::ConnectOptions::from_url(settings.url);
        Connection admin(options);
        admin.execute("DROP TABLE IF EXISTS dbpool_example_items");
        admin.execute("CREATE TABLE dbpool_example_items (id int PRIMARY KEY, name text)");
        admin.execute(
            "INSERT INTO dbpool_example_items SELECT n, 'item-' || n FROM generate_series(1, " +
            std::to_string(table_rows) + ") AS n");

        // Every scenario opens its sessions through this, so it can count them.
        std::atomic<std::uint64_t> opened{0};
        const CountingConnector counting{dbpool::pg::connector(options), &opened};

        std::vector<Outcome> outcomes;
        for (int threads : settings.threads) {
            outcomes.push_back(
                measure("new-connection", threads, settings.seconds, opened, [&](int id) {
                    Connection connection = counting();
                    request(connection, id);
                }));

            // Opened on first use, like the pools, so its connect is counted too.
            std::optional<Connection> global;
            std::mutex global_mutex;
            outcomes.push_back(
                measure("global-mutex", threads, settings.seconds, opened, [&](int id) {
                    std::lock_guard<std::mutex> lock(global_mutex);
                    if (!global) global.emplace(counting());
                    request(*global, id);
                }));
            global.reset();

            {
                dbpool::PersistentPool<Connection> pool(counting);
                outcomes.push_back(
                    measure("persistent", threads, settings.seconds, opened, [&](int id) {
                        auto connection = pool.connection();
                        request(*connection, id);
                    }));
            }

            {
                dbpool::PoolOptions pool_options;
                pool_options.maxconnections = threads;
                pool_options.blocking = true;
                dbpool::PooledPool<Connection> pool(counting, pool_options);
                outcomes.push_back(
                    measure("pooled", threads, settings.seconds, opened, [&](int id) {
                        auto connection = pool.connection();
                        request(*connection, id);
                    }));
            }
        }
        admin.execute("DROP TABLE dbpool_example_items");

        std::printf("%-16s %7s %12s %12s %10s %10s %7s\n", "scenario", "threads", "requests/s",
                    "connections", "p50 (us)", "p99 (us)", "errors");
        for (const Outcome& o : outcomes) {
            std::printf("%-16s %7d %12.0f %12llu %10.0f %10.0f %7llu\n", o.scenario.c_str(),
                        o.threads, o.requests_per_second,
                        static_cast<unsigned long long>(o.connections_opened), o.p50_us, o.p99_us,
                        static_cast<unsigned long long>(o.errors));
        }
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

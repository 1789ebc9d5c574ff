// Requests per second against a real PostgreSQL server: each request acquires a connection,
// runs one primary-key SELECT through a prepared statement, reads the row and releases. Every
// variant runs side by side with a dedicated connection per thread (the limit), in alternating
// rounds; the report is the median ratio to that limit measured in the same round.
//
//   variants: dedicated, connect_per_request, pooled (PooledPool, DBUtils' PooledPg, defaults
//   with maxconnections 8), persistent (PersistentPool, DBUtils' PersistentPg)
//
//   dbpool_pg_throughput [--url URL] [--seconds S] [--rounds N] [--threads 1,8] [--json FILE]
// The URL defaults to $DBPOOL_PG_URL (scripts/postgres.sh writes it). Every loop is bounded:
// by the run time per variant, and by --max-requests per thread.

#include <dbpool/dbpool.hpp>
#include <dbpool/pg.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "request_runner.hpp"

namespace {

using dbpool::pg::Connection;
using dbpool::pg::ConnectOptions;
using Clock = std::chrono::steady_clock;

constexpr int table_rows = 1000;
constexpr int pool_size = 8;
const char* const select_sql = "SELECT v FROM bench_kv WHERE id = $1";

struct Settings {
    ConnectOptions options;
    double seconds = 1.2;
    int rounds = 5;
    std::vector<int> threads{1, 8};
    long max_requests = 50000000;  // per thread and run: a bound, never reached in practice
    std::string json_path;
};

template <class Conn>
std::int64_t select_one(Conn& connection, int id) {
    return connection.query(select_sql, id).template scalar<std::int64_t>();
}

using dbpool_bench::MakeRequest;
using dbpool_bench::Request;
using dbpool_bench::RunResult;

RunResult run_threads(int threads, double seconds, long max_requests, const MakeRequest& make) {
    dbpool_bench::RunSettings run;
    run.threads = threads;
    run.seconds = seconds;
    run.max_requests = max_requests;
    run.rows = table_rows;
    return dbpool_bench::run_requests(run, make);
}

using Variant = std::function<RunResult(int threads, const Settings&)>;

std::vector<std::pair<std::string, Variant>> variants() {
    std::vector<std::pair<std::string, Variant>> list;
    list.emplace_back("dedicated", [](int threads, const Settings& s) {
        return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
            auto connection = std::make_shared<Connection>(s.options);
            return [connection](int id) { return select_one(*connection, id); };
        });
    });
    list.emplace_back("connect_per_request", [](int threads, const Settings& s) {
        return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
            return [&s](int id) {
                Connection connection(s.options);
                return select_one(connection, id);
            };
        });
    });
    list.emplace_back("pooled", [](int threads, const Settings& s) {
        dbpool::PoolOptions options;
        options.blocking = true;
        options.maxconnections = pool_size;
        dbpool::PooledPool<Connection> pool(dbpool::pg::connector(s.options), options);
        return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
            return [&pool](int id) {
                auto connection = pool.connection();
                return select_one(*connection, id);
            };
        });
    });
    list.emplace_back("persistent", [](int threads, const Settings& s) {
        dbpool::PersistentPool<Connection> pool(dbpool::pg::connector(s.options));
        return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
            return [&pool](int id) {
                auto connection = pool.connection();
                return select_one(*connection, id);
            };
        });
    });
    return list;
}

void create_table(const ConnectOptions& options) {
    Connection connection(options);
    connection.execute("DROP TABLE IF EXISTS bench_kv");
    connection.execute("CREATE TABLE bench_kv (id int PRIMARY KEY, v bigint NOT NULL)");
    connection.execute("INSERT INTO bench_kv SELECT n, n * 7 FROM generate_series(1, " +
                       std::to_string(table_rows) + ") AS n");
    connection.execute("ANALYZE bench_kv");
}

struct Sample {
    int round;
    int threads;
    std::string variant;
    RunResult run;
    double ratio;  // to dedicated in the same round and thread count
};

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::vector<int> parse_list(const std::string& text) {
    std::vector<int> values;
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t comma = text.find(',', start);
        values.push_back(std::atoi(text.substr(start, comma - start).c_str()));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return values;
}

int run(int argc, char** argv) {
    Settings s;
    std::string url = std::getenv("DBPOOL_PG_URL") ? std::getenv("DBPOOL_PG_URL") : "";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--url") {
            url = value();
        } else if (arg == "--seconds") {
            s.seconds = std::atof(value().c_str());
        } else if (arg == "--rounds") {
            s.rounds = std::atoi(value().c_str());
        } else if (arg == "--threads") {
            s.threads = parse_list(value());
        } else if (arg == "--json") {
            s.json_path = value();
        } else {
            std::fprintf(stderr, "unknown argument %s (see the comment at the top)\n", argv[i]);
            return 2;
        }
    }
    if (url.empty()) {
        std::fprintf(stderr, "set DBPOOL_PG_URL or pass --url (scripts/postgres.sh start DIR)\n");
        return 2;
    }
    s.options = ConnectOptions::from_url(url);
    s.seconds = std::clamp(s.seconds, 0.1, 10.0);
    s.rounds = std::clamp(s.rounds, 1, 10);
    for (int& threads : s.threads)
        threads = std::clamp(threads, 1, 256);

    create_table(s.options);
    const auto list = variants();
    std::printf(
        "pg_throughput: %d rounds x %zu thread counts x %zu variants x %.1f s, pool size %d\n",
        s.rounds, s.threads.size(), list.size(), s.seconds, pool_size);
    std::vector<Sample> samples;
    for (int round = 0; round < s.rounds; ++round) {
        for (int threads : s.threads) {
            // Varied each round (run_order): no variant always first, last or after another.
            std::map<std::string, RunResult> runs;
            for (std::size_t k = 0; k < list.size(); ++k) {
                const auto& [name, variant] = list[dbpool_bench::run_order(k, round, list.size())];
                runs[name] = variant(threads, s);
                const RunResult& r = runs[name];
                std::printf("  round %d threads %2d %-20s %9.0f req/s%s%s\n", round + 1, threads,
                            name.c_str(), r.rps(), r.errors ? "  errors: " : "",
                            r.errors ? r.first_error.c_str() : "");
                std::fflush(stdout);
            }
            const double limit = runs["dedicated"].rps();
            for (const auto& [name, result] : runs) {
                samples.push_back(
                    {round, threads, name, result, limit > 0 ? result.rps() / limit : 0});
            }
        }
    }

    std::printf("\nmedian over %d rounds (ratio = requests/s / dedicated in the same round)\n",
                s.rounds);
    std::printf("%-22s", "variant");
    for (int threads : s.threads)
        std::printf("  %7d thr req/s  ratio", threads);
    std::printf("\n");
    std::map<std::string, std::map<int, std::pair<double, double>>> medians;
    long errors = 0;
    for (const auto& [name, variant] : list) {
        (void)variant;
        std::printf("%-22s", name.c_str());
        for (int threads : s.threads) {
            std::vector<double> rps;
            std::vector<double> ratios;
            for (const Sample& sample : samples) {
                if (sample.variant != name || sample.threads != threads) continue;
                rps.push_back(sample.run.rps());
                ratios.push_back(sample.ratio);
                errors += sample.run.errors;
            }
            medians[name][threads] = {median(rps), median(ratios)};
            std::printf("  %15.0f  %5.3f", median(rps), median(ratios));
        }
        std::printf("\n");
    }
    std::printf("\ntargets\n");
    int met = 0;
    int total = 0;
    for (int threads : s.threads) {
        const double pooled = medians["pooled"][threads].second;
        const bool ok = pooled >= 0.95;
        met += ok ? 1 : 0;
        ++total;
        std::printf("  %d threads: pooled >= 0.95x dedicated: %.3f %s\n", threads, pooled,
                    ok ? "met" : "MISSED");
    }
    std::printf("%d of %d targets met; errors during the runs: %ld\n", met, total, errors);

    if (!s.json_path.empty()) {
        std::FILE* json = std::fopen(s.json_path.c_str(), "w");
        if (json == nullptr) throw std::runtime_error("cannot write " + s.json_path);
        std::fprintf(json,
                     "{\n  \"seconds_per_run\": %.2f,\n  \"rounds\": %d,\n  \"pool_size\": %d,\n"
                     "  \"errors\": %ld,\n  \"median\": [\n",
                     s.seconds, s.rounds, pool_size, errors);
        bool first = true;
        for (const auto& [name, by_threads] : medians) {
            for (const auto& [threads, value] : by_threads) {
                std::fprintf(json,
                             "%s    {\"variant\": \"%s\", \"threads\": %d, "
                             "\"requests_per_second\": %.1f, \"ratio\": %.4f}",
                             first ? "" : ",\n", name.c_str(), threads, value.first, value.second);
                first = false;
            }
        }
        std::fprintf(json, "\n  ]\n}\n");
        std::fclose(json);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "pg_throughput: %s\n", error.what());
        return 1;
    }
}

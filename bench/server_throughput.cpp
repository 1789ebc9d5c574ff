// Requests per second against a real MariaDB/MySQL server: each request acquires a connection,
// runs one primary-key SELECT through a prepared statement, reads the row and releases. Every
// variant runs side by side with a dedicated connection per thread (the limit), in alternating
// rounds; the report is the median ratio to that limit measured in the same round. Also counts
// server round trips per clean acquire/release cycle with SHOW GLOBAL STATUS.
//
// Peer pools (bench/peer_pools.hpp, built when installed) hand out the same
// dbpool::mysql::Connection objects, so their rows differ from dbpool's only in the pooling:
// textbook_pool (mutex+condvar+deque), soci_pool (soci's connection_pool), mysqlpp_pool
// (MySQL++'s ConnectionPool behind a gate). soci_native is soci as its users write it: a
// connection_pool of soci sessions on soci's own MySQL backend, `session sql(pool); sql << ...`
// (text protocol, no server-side prepared statement), for context.
//
//   dbpool_server_throughput [--url URL] [--seconds S] [--rounds N] [--threads 1,8,64]
//                            [--json FILE] [--csv FILE]
// The URL defaults to $DBPOOL_TEST_URL (scripts/mariadb.sh writes it). Every loop is bounded:
// by the run time per variant, and by --max-requests per thread.

#include <dbpool/dbpool.hpp>
#include <dbpool/mysql.hpp>

#if DBPOOL_BENCH_WITH_SOCI_MYSQL
#include <soci/mysql/soci-mysql.h>
#include <soci/soci.h>
#endif

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

#include "bench_support.hpp"
#include "peer_pools.hpp"
#include "request_runner.hpp"

namespace {

using dbpool::mysql::Connection;
using dbpool::mysql::ConnectOptions;
using Clock = std::chrono::steady_clock;

constexpr int table_rows = 1000;
constexpr int pool_size = 8;
const char* const select_sql = "SELECT v FROM bench_kv WHERE id = ?";

struct Settings {
    ConnectOptions options;
    double seconds = 1.2;
    int rounds = 5;
    std::vector<int> threads{1, 8, 64};
    long max_requests = 50000000;  // per thread and run: a bound, never reached in practice
    long cycles = 100000;          // clean acquire/release cycles for the round-trip count
    std::string json_path;
    std::string csv_path;
};

// One request's work on a connection-like object: the prepared SELECT and reading the row.
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
    run.on_thread_start = [] { dbpool::mysql::prepare_thread(); };
    return dbpool_bench::run_requests(run, make);
}

// Reads pool.stats() once per second while a run lasts (the "observability on" cost).
class StatsReader {
public:
    template <class Pool>
    explicit StatsReader(Pool& pool)
        : thread_([this, &pool] {
              std::unique_lock<std::mutex> lock(mutex_);
              while (!stop_) {
                  lock.unlock();
                  reads_ += pool.stats().acquired > 0 ? 1 : 0;
                  lock.lock();
                  changed_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
              }
          }) {}
    StatsReader(const StatsReader&) = delete;
    StatsReader& operator=(const StatsReader&) = delete;
    ~StatsReader() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        changed_.notify_all();
        thread_.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool stop_ = false;
    long reads_ = 0;
    std::thread thread_;
};

dbpool::PoolOptions pooled_defaults() {
    dbpool::PoolOptions options;
    options.blocking = true;
    options.maxconnections = pool_size;
    return options;
}

std::atomic<long> leak_reports{0};

dbpool::PoolOptions pooled_safety() {
    dbpool::PoolOptions options = pooled_defaults();
    options.ping = dbpool::Ping::on_request;  // with the default 500 ms bypass window
    options.reset = dbpool::Reset::rollback;
    options.keepalive_interval = std::chrono::seconds(30);
    options.leak_threshold = std::chrono::seconds(5);
    options.on_leak = [](const dbpool::LeakReport&) { leak_reports.fetch_add(1); };
    options.idle_timeout = std::chrono::seconds(60);
    options.max_lifetime = std::chrono::minutes(30);
    return options;
}

using Variant = std::function<RunResult(int threads, const Settings&)>;

std::function<std::unique_ptr<Connection>()> make_connection(const Settings& s) {
    return [options = s.options] { return std::make_unique<Connection>(options); };
}

// A peer pool (bench/peer_pools.hpp) running the same request on the same connection type.
template <class Pool>
RunResult run_peer(Pool& pool, int threads, const Settings& s) {
    return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
        return [&pool](int id) {
            auto connection = pool.acquire();
            return select_one(*connection, id);
        };
    });
}

#if DBPOOL_BENCH_WITH_SOCI_MYSQL
std::string soci_connect_string(const ConnectOptions& o) {
    std::string text = "db=" + o.database + " user=" + o.user + " password='" + o.password + "'";
    if (o.host == "localhost" && !o.unix_socket.empty())
        return text + " unix_socket=" + o.unix_socket;
    return text + " host=" + o.host + " port=" + std::to_string(o.port);
}
#endif

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
    list.emplace_back("global_mutex", [](int threads, const Settings& s) {
        Connection shared(s.options);
        std::mutex mutex;
        return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
            return [&](int id) {
                std::lock_guard<std::mutex> lock(mutex);
                return select_one(shared, id);
            };
        });
    });
    list.emplace_back("persistent", [](int threads, const Settings& s) {
        dbpool::PersistentPool<Connection> pool(dbpool::mysql::connector(s.options));
        return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
            return [&pool](int id) {
                auto connection = pool.connection();
                return select_one(*connection, id);
            };
        });
    });
    list.emplace_back("pooled_defaults", [](int threads, const Settings& s) {
        dbpool::PooledPool<Connection> pool(dbpool::mysql::connector(s.options), pooled_defaults());
        return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
            return [&pool](int id) {
                auto connection = pool.connection();
                return select_one(*connection, id);
            };
        });
    });
    list.emplace_back("pooled_safety", [](int threads, const Settings& s) {
        dbpool::PooledPool<Connection> pool(dbpool::mysql::connector(s.options), pooled_safety());
        StatsReader stats(pool);
        return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
            return [&pool](int id) {
                auto connection = pool.connection();
                return select_one(*connection, id);
            };
        });
    });
    list.emplace_back("textbook_pool", [](int threads, const Settings& s) {
        dbpool_bench::TextbookPool<Connection> pool(pool_size, make_connection(s));
        return run_peer(pool, threads, s);
    });
#if DBPOOL_BENCH_WITH_SOCI
    list.emplace_back("soci_pool", [](int threads, const Settings& s) {
        dbpool_bench::SociPool<Connection> pool(pool_size, make_connection(s));
        return run_peer(pool, threads, s);
    });
#endif
#if DBPOOL_BENCH_WITH_MYSQLPP
    if (dbpool_bench::MysqlppPool<Connection>::thread_safe()) {
        list.emplace_back("mysqlpp_pool", [](int threads, const Settings& s) {
            dbpool_bench::MysqlppPool<Connection> pool(pool_size, make_connection(s));
            return run_peer(pool, threads, s);
        });
    }
#endif
#if DBPOOL_BENCH_WITH_SOCI_MYSQL
    list.emplace_back("soci_native", [](int threads, const Settings& s) {
        soci::connection_pool pool(pool_size);
        for (std::size_t i = 0; i < static_cast<std::size_t>(pool_size); ++i)
            pool.at(i).open(soci::mysql, soci_connect_string(s.options));
        return run_threads(threads, s.seconds, s.max_requests, [&]() -> Request {
            return [&pool](int id) {
                soci::session sql(pool);
                long long value = 0;
                sql << "SELECT v FROM bench_kv WHERE id = :id", soci::use(id), soci::into(value);
                return static_cast<std::int64_t>(value);
            };
        });
    });
#endif
    return list;
}

void create_table(const ConnectOptions& options) {
    Connection connection(options);
    connection.execute("DROP TABLE IF EXISTS bench_kv");
    connection.execute("CREATE TABLE bench_kv (id INT PRIMARY KEY, v BIGINT NOT NULL)");
    std::string insert = "INSERT INTO bench_kv (id, v) VALUES ";
    for (int id = 1; id <= table_rows; ++id) {
        insert += "(" + std::to_string(id) + "," + std::to_string(id * 7) + ")";
        insert += id < table_rows ? "," : "";
    }
    connection.execute(insert);
}

// --- round trips per clean acquire/release cycle -----------------------------------------

using Status = std::map<std::string, double>;

Status server_status(Connection& admin) {
    static const char* const wanted[] = {"Questions",        "Com_admin_commands", "Bytes_received",
                                         "Com_stmt_execute", "Com_rollback",       "Com_select"};
    Status status;
    const dbpool::mysql::ResultSet rows = admin.query("SHOW GLOBAL STATUS");
    for (const auto& row : rows) {
        const std::string name = row.get<std::string>(0);
        for (const char* key : wanted) {
            if (name == key) status[name] = std::atof(row.get<std::string>(1).c_str());
        }
    }
    return status;
}

Status difference(const Status& after, const Status& before) {
    Status delta;
    for (const auto& [key, value] : after)
        delta[key] = value - before.at(key);
    return delta;
}

struct RoundTrips {
    std::string pool;
    long cycles;
    Status per_cycle;
};

template <class Pool>
RoundTrips count_round_trips(const std::string& name, Pool& pool, long cycles, Connection& admin,
                             const Status& show_cost) {
    {
        auto connection = pool.connection();
        (void)select_one(*connection, 1);  // a used, warm connection, as in steady state
    }
    const Status before = server_status(admin);
    for (long i = 0; i < cycles; ++i) {
        auto connection = pool.connection();
        (void)connection;
    }
    const Status delta = difference(server_status(admin), before);
    RoundTrips result{name, cycles, {}};
    for (const auto& [key, value] : delta) {
        result.per_cycle[key] = (value - show_cost.at(key)) / static_cast<double>(cycles);
    }
    return result;
}

std::vector<RoundTrips> round_trips(const Settings& s) {
    Connection admin(s.options);
    // What one SHOW GLOBAL STATUS adds by itself, subtracted from every measurement.
    const Status first = server_status(admin);
    const Status show_cost = difference(server_status(admin), first);
    std::vector<RoundTrips> results;
    {
        dbpool::PooledPool<Connection> pool(dbpool::mysql::connector(s.options), pooled_defaults());
        results.push_back(count_round_trips("pooled_defaults", pool, s.cycles, admin, show_cost));
    }
    {
        dbpool::PooledPool<Connection> pool(dbpool::mysql::connector(s.options), pooled_safety());
        results.push_back(count_round_trips("pooled_safety", pool, s.cycles, admin, show_cost));
    }
    {
        dbpool::PersistentPool<Connection> pool(dbpool::mysql::connector(s.options));
        results.push_back(count_round_trips("persistent", pool, s.cycles, admin, show_cost));
    }
    {
        // Control: ping window 0 is DBUtils' counting, one ping per hand-out; proves the
        // counters see pings at all.
        dbpool::PoolOptions options = pooled_defaults();
        options.ping_bypass = std::chrono::milliseconds(0);
        dbpool::PooledPool<Connection> pool(dbpool::mysql::connector(s.options), options);
        results.push_back(count_round_trips("control_ping_every_handout", pool,
                                            std::min(s.cycles, 10000L), admin, show_cost));
    }
    return results;
}

// --- reporting ----------------------------------------------------------------------------

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

std::string json_escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += (c == '\n' || c == '\r') ? ' ' : c;
    }
    return out;
}

int run(int argc, char** argv) {
    Settings s;
    std::string url = std::getenv("DBPOOL_TEST_URL") ? std::getenv("DBPOOL_TEST_URL") : "";
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
        } else if (arg == "--cycles") {
            s.cycles = std::atol(value().c_str());
        } else if (arg == "--json") {
            s.json_path = value();
        } else if (arg == "--csv") {
            s.csv_path = value();
        } else {
            std::fprintf(stderr, "unknown argument %s (see the comment at the top)\n", argv[i]);
            return 2;
        }
    }
    if (url.empty()) {
        std::fprintf(stderr, "set DBPOOL_TEST_URL or pass --url (scripts/mariadb.sh start DIR)\n");
        return 2;
    }
    s.options = ConnectOptions::from_url(url);
    s.seconds = std::clamp(s.seconds, 0.1, 10.0);
    s.rounds = std::clamp(s.rounds, 1, 10);
    s.cycles = std::clamp(s.cycles, 1000L, 1000000L);

    dbpool::mysql::prepare_thread();
    create_table(s.options);
    const auto list = variants();
    std::printf(
        "server_throughput: %d rounds x %zu thread counts x %zu variants x %.1f s, pool "
        "size %d\n",
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
            }
            medians[name][threads] = {median(rps), median(ratios)};
            std::printf("  %15.0f  %5.3f", median(rps), median(ratios));
        }
        std::printf("\n");
    }

    std::printf("\nserver round trips per clean acquire/release cycle (no statement)\n");
    const std::vector<RoundTrips> trips = round_trips(s);
    for (const RoundTrips& t : trips) {
        std::printf("  %-28s cycles %7ld", t.pool.c_str(), t.cycles);
        for (const auto& [key, value] : t.per_cycle)
            std::printf("  %s %.4f", key.c_str(), value);
        std::printf("\n");
    }
    std::printf("leak reports during the runs: %ld (expected 0)\n", leak_reports.load());

    if (!s.csv_path.empty()) {
        std::FILE* csv = std::fopen(s.csv_path.c_str(), "w");
        if (csv == nullptr) throw std::runtime_error("cannot write " + s.csv_path);
        std::fprintf(csv,
                     "round,threads,variant,requests,seconds,requests_per_second,ratio,"
                     "errors\n");
        for (const Sample& x : samples) {
            std::fprintf(csv, "%d,%d,%s,%ld,%.4f,%.1f,%.4f,%ld\n", x.round + 1, x.threads,
                         x.variant.c_str(), x.run.requests, x.run.seconds, x.run.rps(), x.ratio,
                         x.run.errors);
        }
        std::fclose(csv);
    }
    if (!s.json_path.empty()) {
        std::FILE* json = std::fopen(s.json_path.c_str(), "w");
        if (json == nullptr) throw std::runtime_error("cannot write " + s.json_path);
        std::fprintf(json, "{\n  \"seconds_per_run\": %.2f,\n  \"rounds\": %d,\n", s.seconds,
                     s.rounds);
        std::fprintf(json, "  \"pool_size\": %d,\n  \"median\": [\n", pool_size);
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
        std::fprintf(json, "\n  ],\n  \"round_trips\": [\n");
        for (std::size_t i = 0; i < trips.size(); ++i) {
            std::fprintf(json, "    {\"pool\": \"%s\", \"cycles\": %ld", trips[i].pool.c_str(),
                         trips[i].cycles);
            for (const auto& [key, value] : trips[i].per_cycle) {
                std::fprintf(json, ", \"%s\": %.6f", key.c_str(), value);
            }
            std::fprintf(json, "}%s\n", i + 1 < trips.size() ? "," : "");
        }
        long errors = 0;
        std::string first_error;
        for (const Sample& x : samples) {
            errors += x.run.errors;
            if (first_error.empty()) first_error = x.run.first_error;
        }
        std::fprintf(json, "  ],\n  \"errors\": %ld,\n  \"first_error\": \"%s\",\n", errors,
                     json_escape(first_error).c_str());
        std::fprintf(json, "  \"leak_reports\": %ld\n}\n", leak_reports.load());
        std::fclose(json);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "server_throughput: %s\n", error.what());
        return 1;
    }
}

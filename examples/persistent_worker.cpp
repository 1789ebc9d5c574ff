// PersistentPool in a threaded worker: every worker thread keeps one connection of its own
// (DBUtils' PersistentDB), so a job never waits for a connection and never shares one, and the
// connection closes by itself when its thread ends.
//
//   persistent_worker [mysql://user:password@host:port/database]   (default: $DBPOOL_TEST_URL)
//
// Four worker threads take 200 jobs from a queue; each job inserts a row saying which server
// connection ran it. The output shows one server connection per thread, however many jobs.
#include <dbpool/mysql.hpp>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Pool = dbpool::PersistentPool<dbpool::mysql::Connection>;

constexpr int worker_count = 4;
constexpr int job_count = 200;

// A small job queue: push() jobs, then finish(); pop() returns nothing once it is drained.
class JobQueue {
public:
    void push(int job) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            jobs_.push_back(job);
        }
        ready_.notify_one();
    }

    void finish() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            finished_ = true;
        }
        ready_.notify_all();
    }

    std::optional<int> pop() {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return finished_ || !jobs_.empty(); });
        if (jobs_.empty()) return std::nullopt;
        const int job = jobs_.front();
        jobs_.pop_front();
        return job;
    }

private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<int> jobs_;
    bool finished_ = false;
};

// One worker thread: runs jobs until the queue is drained. An exception must not leave a
// thread (that would end the program), so each job's error is reported and counted.
void work(Pool& pool, JobQueue& queue, int& failures) {
    while (const std::optional<int> job = queue.pop()) {
        try {
            // This thread's connection: opened by the first call on this thread, the same one
            // for every later job. Name the handle; `pool.connection()->...` does not compile.
            auto connection = pool.connection();
            connection->execute(
                "INSERT INTO dbpool_example_jobs (job, connection_id) VALUES (?, CONNECTION_ID())",
                *job);
        } catch (const dbpool::Error& error) {
            ++failures;
            std::cerr << "job " << *job << " failed (" << dbpool::to_string(error.code())
                      << "): " << error.what() << "\n";
        }
    }
    // Returning ends the thread, which closes its connection.
}

}  // namespace

int main(int argc, char** argv) {
    const char* url = argc > 1 ? argv[1] : std::getenv("DBPOOL_TEST_URL");
    if (url == nullptr) {
        std::cerr << "usage: " << argv[0] << " mysql://user:password@host:port/database\n";
        return 2;
    }
    try {
        dbpool::PersistentOptions options;  // close() is ignored (DBUtils' default)
        options.setsession = {"SET SESSION sql_mode = 'STRICT_ALL_TABLES'"};  // after every connect
        Pool pool(dbpool::mysql::connector(url), options);

        {
            auto connection = pool.connection();  // main's own connection
            connection->execute(
                "CREATE TABLE IF NOT EXISTS dbpool_example_jobs "
                "(job INT PRIMARY KEY, connection_id BIGINT UNSIGNED NOT NULL)");
            connection->execute("DELETE FROM dbpool_example_jobs");
        }

        JobQueue queue;
        std::vector<int> failures(worker_count, 0);
        std::vector<std::thread> workers;
        for (int i = 0; i < worker_count; ++i) {
            workers.emplace_back(work, std::ref(pool), std::ref(queue), std::ref(failures[i]));
        }
        for (int job = 0; job < job_count; ++job)
            queue.push(job);
        queue.finish();
        for (auto& worker : workers)
            worker.join();
        // Each worker's connection was closed when its thread ended; main's is still open.
        const std::size_t open_after = pool.open_connections();

        auto connection = pool.connection();
        const auto summary = connection->query(
            "SELECT COUNT(*) AS jobs, COUNT(DISTINCT connection_id) AS connections "
            "FROM dbpool_example_jobs");
        const auto jobs = summary[0].get<std::int64_t>("jobs");
        const auto connections = summary[0].get<std::int64_t>("connections");
        int failed = 0;
        for (const int count : failures)
            failed += count;
        std::cout << jobs << " jobs ran on " << connections << " server connections ("
                  << worker_count << " worker threads); after the workers ended " << open_after
                  << " connection (main's) was still open\n";
        connection->execute("DROP TABLE dbpool_example_jobs");

        // What this example promises; the test suite runs it and relies on the exit status.
        if (failed != 0 || jobs != job_count || connections > worker_count || open_after != 1) {
            std::cerr << "unexpected: " << failed << " failed jobs\n";
            return 1;
        }
    } catch (const dbpool::Error& error) {
        std::cerr << "error (" << dbpool::to_string(error.code()) << "): " << error.what() << "\n";
        return 1;
    }
    return 0;
}

#pragma once

// What the integration and fault tests of both backends share about their throwaway servers:
// reading the KEY=VALUE file a server script writes (scripts/mariadb.sh, scripts/postgres.sh:
// DIR/env) with environment variables as a fallback, polling until a condition holds, and
// table names unique to the process.

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>

namespace dbpool_test {

// The KEY=VALUE lines of `path`; throws when it cannot be read.
inline std::map<std::string, std::string> read_env_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read the test server's env file " + path);
    std::map<std::string, std::string> values;
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return values;
}

// The file named by the environment variable `file_variable` (when set), then, for each of
// `names` the file does not give, the environment variable of that name.
inline std::map<std::string, std::string> server_values(const char* file_variable,
                                                        std::initializer_list<const char*> names) {
    std::map<std::string, std::string> values;
    if (const char* path = std::getenv(file_variable)) values = read_env_file(path);
    for (const char* name : names) {
        if (values.count(name) == 0) {
            if (const char* value = std::getenv(name)) values[name] = value;
        }
    }
    return values;
}

// Polls `condition` every `poll` until it holds or `limit` passes; returns its last value.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = std::chrono::seconds(5),
                std::chrono::milliseconds poll = std::chrono::milliseconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(poll);
    }
    return true;
}

// A table name unique to this process, so parallel ctest runs never collide.
inline std::string unique_table(const std::string& stem) {
    return stem + "_" + std::to_string(::getpid());
}

}  // namespace dbpool_test

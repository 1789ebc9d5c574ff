#pragma once

#include <dbpool/options.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace dbpool::detail {

// What a pool looked like when an acquire failed: enough to tell an undersized pool from a
// leak or a database in trouble from the log line alone. Built only on the error path.
struct PoolPicture {
    struct Held {
        std::chrono::milliseconds held{0};
        AcquireSite site;
    };

    int open = 0;
    int maxconnections = 0;
    int in_use = 0;
    int idle = 0;
    int connecting = 0;
    int pinging = 0;
    int waiting = 0;
    std::string backoff;
    std::vector<Held> held;  // borrowed connections, any order
};

inline std::string describe(const AcquireSite& site) {
    if (site.file == nullptr) return "an unknown place";
    return std::string(site.file) + ":" + std::to_string(site.line);
}

// "Pool: 4 total of maxconnections 4 (4 in use, 0 idle, 0 connecting, 0 being pinged),
// 3 waiting; back-off: off (connects succeed). Held longest: 1530 ms (acquired at app.cpp:42)"
inline std::string describe(PoolPicture picture, std::size_t longest = 3) {
    std::string text =
        "Pool: " + std::to_string(picture.open) + " total of maxconnections " +
        (picture.maxconnections > 0 ? std::to_string(picture.maxconnections)
                                    : std::string("unlimited")) +
        " (" + std::to_string(picture.in_use) + " in use, " + std::to_string(picture.idle) +
        " idle, " + std::to_string(picture.connecting) + " connecting, " +
        std::to_string(picture.pinging) + " being pinged), " + std::to_string(picture.waiting) +
        " waiting; back-off: " + picture.backoff + ".";
    if (picture.held.empty()) return text;
    std::sort(
        picture.held.begin(), picture.held.end(),
        [](const PoolPicture::Held& a, const PoolPicture::Held& b) { return a.held > b.held; });
    text += " Held longest:";
    const std::size_t shown = std::min(longest, picture.held.size());
    for (std::size_t i = 0; i < shown; ++i) {
        text += (i == 0 ? " " : ", ") + std::to_string(picture.held[i].held.count()) +
                " ms (acquired at " + describe(picture.held[i].site) + ")";
    }
    if (picture.held.size() > shown) {
        text += " and " + std::to_string(picture.held.size() - shown) + " more";
    }
    return text + ".";
}

inline std::string describe(const LeakReport& report) {
    return "connection acquired at " + describe(report.acquired_at) + " held for " +
           std::to_string(report.held.count()) + " ms" +
           (report.returned ? " has been returned" : "");
}

}  // namespace dbpool::detail

#pragma once

/// \file
/// PoolEvent and EventKind, what PoolOptions::on_event receives.

#include <string>

namespace dbpool {

/// What happened in a pool, for logging hooks.
enum class EventKind {
    connected,         ///< A new connection was opened.
    connect_failed,    ///< The creator threw; `detail` holds its message.
    reconnected,       ///< A borrowed connection was replaced (broken, or maxusage reached).
    closed,            ///< A connection was closed (retired, surplus, broken or pool closed).
    acquire_timeout,   ///< A blocking acquire gave up after acquire_timeout.
    exhausted,         ///< A non-blocking acquire found the pool at maxconnections.
    leak_suspected,    ///< A connection has been held longer than leak_threshold.
    leak_returned,     ///< A connection reported as leaked came back.
    keepalive_failed,  ///< An idle connection failed its keepalive ping and was dropped.
    ping_failed,       ///< A connection failed its hand-out ping and was dropped.
    pool_closed,       ///< close() was called.
};

/// Short stable name of an event kind, e.g. "connect_failed".
inline const char* to_string(EventKind kind) noexcept {
    switch (kind) {
        case EventKind::connected: return "connected";
        case EventKind::connect_failed: return "connect_failed";
        case EventKind::reconnected: return "reconnected";
        case EventKind::closed: return "closed";
        case EventKind::acquire_timeout: return "acquire_timeout";
        case EventKind::exhausted: return "exhausted";
        case EventKind::leak_suspected: return "leak_suspected";
        case EventKind::leak_returned: return "leak_returned";
        case EventKind::keepalive_failed: return "keepalive_failed";
        case EventKind::ping_failed: return "ping_failed";
        case EventKind::pool_closed: return "pool_closed";
    }
    return "unknown";
}

/// One event delivered to PoolOptions::on_event.
struct PoolEvent {
    EventKind kind;      ///< What happened.
    std::string detail;  ///< Human-readable details; never a password.
};

}  // namespace dbpool

#pragma once

// The state of one PostgreSQL session behind a Connection (the PGconn, its options, secrets and
// statement cache, what the server announced) and the waits on its socket: everything below the
// request/reply layer (wire.hpp). Internal: namespace dbpool::pg::detail.

#include <dbpool/detail/redact.hpp>
#include <dbpool/detail/saturating.hpp>
#include <dbpool/pg/connect_options.hpp>
#include <dbpool/pg/errors.hpp>
#include <dbpool/pg/statement_cache.hpp>

#include <dlfcn.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

namespace dbpool::pg::detail {

using Clock = std::chrono::steady_clock;

// When a wait ends; `bounded` false means never (a timeout of 0).
struct Deadline {
    bool bounded = false;
    Clock::time_point at{};
};

// A timeout too large for the clock (milliseconds::max(), 400 years) means no limit: adding it
// to now() would overflow into the past and time out at once.
inline Deadline deadline_after(std::chrono::milliseconds timeout) {
    if (timeout.count() <= 0) return {};
    const Clock::time_point at = dbpool::detail::saturating_add(Clock::now(), timeout);
    if (at == Clock::time_point::max()) return {};
    return {true, at};
}

// What libpq's notice callback points at: on the heap, so moving a Connection never moves it.
struct Session {
    explicit Session(ConnectOptions connect_options)
        : options(std::move(connect_options)), statements(options.statement_cache_size) {}
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session() {
        if (conn != nullptr) PQfinish(conn);
    }

    PGconn* conn = nullptr;
    ConnectOptions options;
    StatementCache statements;
    dbpool::detail::Secrets secrets;  // masked in every message
    // A statement this session prepared and cached was missing when it ran or was evicted: the
    // server connection changed under the session (a pooler in transaction mode). From then on
    // every statement with arguments goes through the unnamed statement; never set back.
    bool transaction_pooling = false;
    // The server announced (a FATAL notice while idle) that it is ending this session.
    bool closing = false;
    std::string closing_sqlstate;
    std::string closing_reason;
};

// libpq's notice receiver: hands notices to on_notice and notes a FATAL (or a shutdown
// warning), which the server sends while idle just before it closes the session
// (pg_terminate_backend, shutdown, idle_session_timeout).
inline void receive_notice(void* arg, const PGresult* result) noexcept {
    auto* session = static_cast<Session*>(arg);
    const auto field = [result](int code) {
        const char* value = PQresultErrorField(result, code);
        return std::string(value != nullptr ? value : "");
    };
    try {
        Notice notice{field(PG_DIAG_SEVERITY_NONLOCALIZED), field(PG_DIAG_SQLSTATE),
                      field(PG_DIAG_MESSAGE_PRIMARY)};
        // An immediate shutdown announces itself as a WARNING with 57P01/57P02 (quickdie).
        if (notice.severity == "FATAL" || notice.severity == "PANIC" ||
            is_connection_sqlstate(notice.sqlstate)) {
            session->closing = true;
            session->closing_sqlstate = notice.sqlstate;
            session->closing_reason = "[" + notice.sqlstate + "] " + notice.message;
        }
        if (session->options.on_notice) session->options.on_notice(notice);
    } catch (...) {
        // Nothing may unwind through libpq's C frames.
    }
}

// 1 when OpenSSL holds decrypted bytes that poll() cannot see, 0 when not (or no TLS), -1
// when unknown. libpq asks the same of its own waits; an asynchronous caller must too, or a
// TLS record bigger than libpq's free buffer space stalls until the timeout. SSL_pending is
// looked up at run time so that dbpool needs neither OpenSSL headers nor a link to libssl.
inline int ssl_read_pending(PGconn* conn) noexcept {
    if (PQsslInUse(conn) == 0) return 0;
    using Pending = int (*)(const void*);
    static const Pending pending = [] {
        void* symbol = ::dlsym(RTLD_DEFAULT, "SSL_pending");
        Pending function = nullptr;
        static_assert(sizeof function == sizeof symbol);
        std::memcpy(&function, &symbol, sizeof function);
        return function;
    }();
    void* ssl = PQsslStruct(conn, "OpenSSL");
    if (pending == nullptr || ssl == nullptr) return -1;
    return pending(ssl) > 0 ? 1 : 0;
}

// Waits until the socket of `conn` reports one of `events` or the deadline passes; returns the
// events seen (POLLIN also when OpenSSL holds unread bytes), 0 on timeout.
inline short wait_socket(PGconn* conn, short events, const Deadline& deadline) {
    const bool reading = (events & POLLIN) != 0;
    const int ssl = reading ? ssl_read_pending(conn) : 0;
    if (ssl > 0) return POLLIN;
    const int fd = PQsocket(conn);
    if (fd < 0) return events;  // libpq reports the problem on the next call
    for (;;) {
        int timeout_ms = -1;
        if (deadline.bounded) {
            const auto now = Clock::now();
            if (now >= deadline.at) return 0;
            const auto left =
                std::chrono::ceil<std::chrono::milliseconds>(deadline.at - now).count();
            timeout_ms = static_cast<int>(std::min<long long>(left, 3600LL * 1000));
        }
        // Without SSL_pending, look again every 10 ms so bytes buffered in OpenSSL are found.
        if (ssl < 0) timeout_ms = timeout_ms < 0 ? 10 : std::min(timeout_ms, 10);
        pollfd entry{fd, events, 0};
        const int ready = ::poll(&entry, 1, timeout_ms);
        if (ready > 0) return entry.revents != 0 ? entry.revents : events;
        if (ready == 0) {
            if (ssl < 0) return POLLIN;  // the caller reads (nothing, usually) and waits again
            continue;                    // the deadline is checked above
        }
        if (errno != EINTR) return events;  // let libpq meet the error
    }
}

inline void drain_notifications(PGconn* conn) noexcept {
    // dbpool does not deliver LISTEN/NOTIFY; libpq would keep them queued forever.
    for (int i = 0; i < 100000; ++i) {
        PGnotify* notification = PQnotifies(conn);
        if (notification == nullptr) return;
        PQfreemem(notification);
    }
}

// In verbose mode libpq writes "FATAL:  28P01: password authentication failed ..." and a
// "LOCATION:" line: the SQLSTATE is taken out (returned) and the message keeps its usual shape.
inline std::string take_sqlstate(std::string& message) {
    std::string sqlstate;
    for (std::size_t at = message.find(":  "); at != std::string::npos;
         at = message.find(":  ", at + 1)) {
        const std::size_t code = at + 3;
        if (code + 6 > message.size() || message[code + 5] != ':') continue;
        bool valid = true;
        for (std::size_t i = code; i < code + 5; ++i) {
            const char c = message[i];
            valid = valid && ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'));
        }
        if (!valid) continue;
        if (sqlstate.empty()) sqlstate = message.substr(code, 5);
        message.erase(code, message[code + 6] == ' ' ? 7 : 6);
    }
    for (std::size_t at = message.find("LOCATION:"); at != std::string::npos;
         at = message.find("LOCATION:", at)) {
        const std::size_t end = message.find('\n', at);
        message.erase(at, end == std::string::npos ? std::string::npos : end - at + 1);
    }
    return sqlstate;
}

}  // namespace dbpool::pg::detail

#pragma once

/// \file
/// mysql::ServerInfo: the flavour (MySQL or MariaDB) and version of the server connected to.

#include <cstdint>
#include <string>
#include <string_view>

namespace dbpool::mysql {

/// Which server a connection talks to; error numbers above 2000 (client) agree, server numbers
/// do not always (4031 is an idle disconnect on MySQL 8.0.24+, a trigger error on MariaDB).
enum class ServerFlavor {
    unknown,  ///< Not connected yet.
    mysql,    ///< Oracle MySQL (or a fork that does not call itself MariaDB).
    mariadb,  ///< MariaDB.
};

/// The server's flavour and version, detected once at connect from its version string.
struct ServerInfo {
    ServerFlavor flavor = ServerFlavor::unknown;  ///< MySQL or MariaDB.
    std::uint32_t version = 0;                    ///< major * 10000 + minor * 100 + patch.
    std::string version_string;                   ///< As the server sent it.

    /// Whether this is MySQL (not MariaDB) at `at_least` or later, e.g. is_mysql_at_least(80024).
    bool is_mysql_at_least(std::uint32_t at_least) const noexcept {
        return flavor == ServerFlavor::mysql && version >= at_least;
    }

    /// Parses "8.0.36", "8.4.0-log", "10.11.6-MariaDB-0+deb12u1" or the "5.5.5-10.11.6-MariaDB"
    /// that MariaDB sends to clients that are not MariaDB's own; never throws.
    static ServerInfo parse(std::string_view text) {
        ServerInfo info;
        info.version_string = std::string(text);
        const bool mariadb = text.find("MariaDB") != std::string_view::npos ||
                             text.find("mariadb") != std::string_view::npos;
        info.flavor = mariadb ? ServerFlavor::mariadb : ServerFlavor::mysql;
        // MariaDB prefixes "5.5.5-" for old clients' sake; its real version follows.
        constexpr std::string_view compat = "5.5.5-";
        if (mariadb && text.substr(0, compat.size()) == compat) text.remove_prefix(compat.size());
        std::uint32_t parts[3] = {0, 0, 0};
        std::size_t part = 0;
        std::size_t digits = 0;
        for (const char c : text) {
            if (c >= '0' && c <= '9') {
                if (digits < 4)
                    parts[part] = parts[part] * 10 + static_cast<std::uint32_t>(c - '0');
                ++digits;
            } else if (c == '.' && digits > 0 && part < 2) {
                ++part;
                digits = 0;
            } else {
                break;
            }
        }
        info.version = parts[0] * 10000 + parts[1] * 100 + parts[2];
        return info;
    }
};

}  // namespace dbpool::mysql

#pragma once

/// \file
/// dbpool::pg::TransactionStatus, the transaction state a PostgreSQL session last reported.

namespace dbpool::pg {

/// Where the session stands with transactions, exactly as the server last reported it.
enum class TransactionStatus {
    idle,     ///< No transaction is open.
    active,   ///< A command is in progress (never seen between calls).
    open,     ///< Inside a transaction block.
    failed,   ///< Inside a failed transaction block: only ROLLBACK (or COMMIT, which rolls
              ///< back) is accepted until it ends.
    unknown,  ///< The connection is closed or broken.
};

}  // namespace dbpool::pg

#pragma once

/// \file
/// Transaction: begins on construction, rolls back on destruction unless committed.

#include <dbpool/error.hpp>

#include <string>

namespace dbpool {

/// RAII transaction: begins on construction, commit() ends it, and the destructor rolls back
/// when commit() was not reached, so an exception in user code never leaves it open.
///
/// Works with anything that has begin(), commit() and rollback(): a SteadyConnection, a pool
/// handle, or a raw connection. Not thread-safe; keep it on the stack of one thread.
template <class Connection>
class Transaction {
public:
    /// Begins a transaction on `connection`; throws whatever begin() throws.
    explicit Transaction(Connection& connection) : connection_(&connection) {
        connection_->begin();
    }

    /// A temporary would be gone before the transaction ends: name the connection first.
    explicit Transaction(Connection&& connection) = delete;

    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    /// Rolls back unless committed or rolled back already; never throws (a failed rollback
    /// means the connection broke, and the server discards the transaction with it).
    ~Transaction() {
        if (!active_) return;
        try {
            connection_->rollback();
        } catch (...) {
            // The connection replaces itself on broken-connection errors; nothing to add here.
        }
    }

    /// Commits; afterwards the destructor does nothing. Throws Error{handle_closed} when the
    /// transaction has already ended.
    ///
    /// \par Exception safety
    /// The transaction counts as ended before COMMIT is sent, so when commit() throws the
    /// destructor does not roll back again. The error code says what happened: transaction_lost
    /// (rolled back: redo it), commit_unknown (it may have committed: check before redoing),
    /// transaction_conflict (rolled back by the server: redo it).
    void commit() {
        require_active("commit");
        active_ = false;
        connection_->commit();
    }

    /// Rolls back now instead of at destruction.
    void rollback() {
        require_active("rollback");
        active_ = false;
        connection_->rollback();
    }

    /// Whether neither commit() nor rollback() has been called yet.
    bool active() const noexcept { return active_; }

private:
    void require_active(const char* what) const {
        if (!active_) {
            throw Error(ErrorCode::handle_closed, std::string("dbpool: Transaction::") + what +
                                                      "() after the transaction already ended");
        }
    }

    Connection* connection_;
    bool active_ = true;
};

}  // namespace dbpool

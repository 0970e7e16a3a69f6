import Ledger

extension PostgresLedger {
    /// The channel the store's triggers notify on every change to clients or accounts (migration 5).
    static let changesChannel = "creditmeter_changes"

    /// Moves on each time the store says clients or accounts changed, by anyone: the first call starts
    /// listening, each later one counts the notifications that arrived meanwhile, and a connection made
    /// again (which lost its LISTEN, and may have missed changes) counts as a change. A round trip only
    /// on the first call and after a reconnect; otherwise it reads what the socket already holds.
    public func dataVersion() throws(LedgerError) -> Int64 {
        try reading { () throws(LedgerError) -> Int64 in
            if listenedSession != db.resets {
                try db.execute("LISTEN " + Self.changesChannel, "listening for changes to clients and accounts")
                listenedSession = db.resets
                changeCount += 1
            }
            changeCount += Int64(try db.drainNotifications())
            return changeCount
        }
    }
}

/// The daemon runs on PostgreSQL as on SQLite: every operation of its services has its twin here.
extension PostgresLedger: AgentStore {}

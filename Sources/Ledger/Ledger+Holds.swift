import MeterCore

/// A client as authorize sees it inside its check-and-reserve: balances and holds read in the same
/// transaction, so they are the store's, not one agent's picture of it.
public struct HoldView: Sendable, Equatable {
    public var clientID: Int64
    public var username: String
    public var status: ClientStatus
    public var plan: String
    public var meter: Meter
    /// µcr held by the client's other live calls, taken by any agent sharing the store.
    public var reserved: Int64
    /// The client's other live holds.
    public var calls: Int

    public init(clientID: Int64, username: String, status: ClientStatus, plan: String, meter: Meter, reserved: Int64, calls: Int) {
        self.clientID = clientID
        self.username = username
        self.status = status
        self.plan = plan
        self.meter = meter
        self.reserved = reserved
        self.calls = calls
    }
}

/// The hold authorize decided to take for the call it was asked about.
public struct HoldGrant: Sendable, Equatable {
    public var cost: Int64
    /// Unix milliseconds.
    public var expiresAt: Int64

    public init(cost: Int64, expiresAt: Int64) {
        self.cost = cost
        self.expiresAt = expiresAt
    }
}

/// Authorize's holds (reservations) as a store keeps them: shared by every agent that shares the store,
/// whichever engine holds it. The rule that decides an answer is the caller's, run inside the store's
/// check-and-reserve; the store only makes it atomic per client.
public protocol HoldStore: AnyObject, Sendable {
    /// Authorize's check-and-reserve for `account`, atomic per client: with a `call`, `decide` runs inside
    /// a write transaction, after the client's expired holds and its earlier hold for this same call are
    /// dropped, and the grant it returns is written before the transaction ends; a second agent asking
    /// for the same client at the same moment waits and then sees that hold. Without a call nothing is
    /// written. `decide` gets nil for an account no client owns, and may run more than once (a
    /// transaction retried after a deadlock). `now` is unix milliseconds.
    func reserve<T>(account: String, call: String?, now: Int64,
                    _ decide: (HoldView?) -> (value: T, grant: HoldGrant?)) throws(LedgerError) -> T
    /// µcr held and live holds of one client at `now` (unix milliseconds).
    func held(clientID: Int64, now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int)
    /// Live holds of every client at `now` and the µcr they reserve (saturating, for a report).
    func heldTotal(now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int)
    /// Deletes every hold expired at `now`; returns how many.
    @discardableResult
    func sweepHolds(now: Int64) throws(LedgerError) -> Int
    /// Writes holds granted elsewhere (while the store was unreachable, from cached balances); a client
    /// deleted meanwhile is skipped.
    func keepHolds(_ holds: [HoldKey: HoldGrant]) throws(LedgerError)
}

extension HoldStore {
    /// Live holds of every client at `now`.
    public func liveHoldCount(now: Int64) throws(LedgerError) -> Int { try heldTotal(now: now).calls }
}

/// SQLite's holds: rows of `holds`, shared by every agent that opens the same file.
extension Ledger: HoldStore {
    /// BEGIN IMMEDIATE takes the store's one write lock, so every check-and-reserve of every agent on
    /// the file runs one at a time.
    public func reserve<T>(account: String, call: String?, now: Int64,
                           _ decide: (HoldView?) -> (value: T, grant: HoldGrant?)) throws(LedgerError) -> T {
        guard let call else {
            return try locked { () throws(LedgerError) -> T in
                guard var view = try holdClient(account: account) else { return decide(nil).value }
                (view.reserved, view.calls) = try liveHolds(clientID: view.clientID, now: now)
                return decide(view).value
            }
        }
        return try write("authorizing call \(call)") { () throws(LedgerError) -> T in
            guard var view = try holdClient(account: account) else { return decide(nil).value }
            // Two statements, each by its own index: an OR of both would read every hold of the client.
            let expired = try store.statement("DELETE FROM holds WHERE client_id = ?1 AND expires_at <= ?2",
                                              "dropping a client's expired holds")
            defer { expired.reset() }
            try expired.bind(1, view.clientID)
            try expired.bind(2, now)
            try expired.run()
            let same = try store.statement("DELETE FROM holds WHERE client_id = ?1 AND call = ?2",
                                           "dropping the call's earlier hold")
            defer { same.reset() }
            try same.bind(1, view.clientID)
            try same.bind(2, call)
            try same.run()
            (view.reserved, view.calls) = try liveHolds(clientID: view.clientID, now: now)
            let (value, grant) = decide(view)
            if let grant {
                let add = try store.statement("INSERT INTO holds (client_id, call, cost, expires_at) VALUES (?1, ?2, ?3, ?4)",
                                              "recording a hold")
                defer { add.reset() }
                try add.bind(1, view.clientID)
                try add.bind(2, call)
                try add.bind(3, grant.cost)
                try add.bind(4, grant.expiresAt)
                try add.run()
            }
            return value
        }
    }

    public func held(clientID: Int64, now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int) {
        try locked { () throws(LedgerError) -> (cost: Int64, calls: Int) in
            try liveHolds(clientID: clientID, now: now)
        }
    }

    @discardableResult
    public func sweepHolds(now: Int64) throws(LedgerError) -> Int {
        try write("dropping expired holds") { () throws(LedgerError) -> Int in
            let s = try store.statement("DELETE FROM holds WHERE expires_at <= ?1", "dropping expired holds")
            defer { s.reset() }
            try s.bind(1, now)
            try s.run()
            return store.changes
        }
    }

    public func keepHolds(_ holds: [HoldKey: HoldGrant]) throws(LedgerError) {
        guard !holds.isEmpty else { return }
        try write("keeping holds granted while the store was down") { () throws(LedgerError) in
            let s = try store.statement("""
                INSERT INTO holds (client_id, call, cost, expires_at)
                SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM clients WHERE id = ?1)
                ON CONFLICT (client_id, call) DO UPDATE SET cost = excluded.cost, expires_at = excluded.expires_at
                """, "keeping a hold")
            for (key, grant) in holds {
                defer { s.reset() }
                try s.bind(1, key.clientID)
                try s.bind(2, key.call)
                try s.bind(3, grant.cost)
                try s.bind(4, grant.expiresAt)
                try s.run()
            }
        }
    }

    /// Commits of this connection are no longer synced to disk one by one (SQLite's synchronous=NORMAL
    /// in WAL mode): they stay atomic and in order, and the next synced commit of any connection, or a
    /// checkpoint, makes them durable. For the holds connection, whose writes are worth a fraction of an
    /// fsync each: after a power cut the newest holds may be gone, while the charges never are.
    public func skipSyncPerCommit() throws(LedgerError) {
        try locked { () throws(LedgerError) in try store.execute("PRAGMA synchronous=NORMAL", purpose: "setting synchronous=NORMAL") }
    }

    public func heldTotal(now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int) {
        try locked { () throws(LedgerError) -> (cost: Int64, calls: Int) in
            // Summed per client first (exact, each fits), then across clients in Int128.
            let s = try store.statement("""
                SELECT t.cost - coalesce((SELECT sum(h.cost) FROM holds h WHERE h.client_id = t.client_id AND h.expires_at <= ?1), 0),
                       t.calls - (SELECT count(*) FROM holds h WHERE h.client_id = t.client_id AND h.expires_at <= ?1)
                FROM hold_totals t WHERE t.calls > 0
                """, "summing every client's holds")
            defer { s.reset() }
            try s.bind(1, now)
            var cost: Int128 = 0, calls = 0
            while try s.step() {
                cost += Int128(s.int64(0))
                calls += Int(s.int64(1))
            }
            return (Int64(clamping: cost), calls)
        }
    }

    /// This connection's commits never run a WAL checkpoint (SQLite's `wal_autocheckpoint=0`): a checkpoint
    /// syncs the database file, milliseconds that would hold up the authorize answer whose commit crossed
    /// the threshold. The caller checkpoints from another connection instead (`checkpointPassively`).
    public func leaveCheckpointsToOthers() throws(LedgerError) {
        try locked { () throws(LedgerError) in
            try store.execute("PRAGMA wal_autocheckpoint=0", purpose: "turning off automatic checkpoints")
        }
    }

    /// Copies what the WAL holds back into the database as far as no reader needs it, without waiting
    /// for or blocking any writer (a PASSIVE checkpoint).
    public func checkpointPassively() throws(LedgerError) {
        try locked { () throws(LedgerError) in
            try store.execute("PRAGMA wal_checkpoint(PASSIVE)", purpose: "checkpointing the WAL")
        }
    }

    /// How long this connection waits for another writer before a write fails as busy (SQLite's busy
    /// timeout; 5 s unless set). Authorize's connection waits less: a PBX asking before a call cannot wait
    /// long, and `[authorize] when_store_down` answers meanwhile.
    public func waitForWriters(milliseconds: Int32) {
        locked { store.busyTimeout(milliseconds: milliseconds) }
    }

    /// Deletes the holds of calls just charged; a key without a hold is ignored. Call inside the batch's transaction.
    func releaseHolds(_ keys: [HoldKey]) throws(LedgerError) {
        guard !keys.isEmpty else { return }
        let s = try store.statement("DELETE FROM holds WHERE client_id = ?1 AND call = ?2", "releasing a charged call's hold")
        for key in keys {
            defer { s.reset() }
            try s.bind(1, key.clientID)
            try s.bind(2, key.call)
            try s.run()
        }
    }

    private func holdClient(account: String) throws(LedgerError) -> HoldView? {
        let s = try store.statement("""
            SELECT c.id, c.username, c.status, c.plan, c.assigned, c.used
            FROM accounts a JOIN clients c ON c.id = a.client_id WHERE a.code = ?1
            """, "looking up an account for authorize")
        defer { s.reset() }
        try s.bind(1, account)
        guard try s.step() else { return nil }
        // The table's CHECK constraint admits only known statuses; the fallback is never taken.
        return HoldView(clientID: s.int64(0), username: s.text(1), status: ClientStatus(rawValue: s.text(2)) ?? .active,
                        plan: s.text(3), meter: Meter(assigned: s.int64(4), used: s.int64(5)), reserved: 0, calls: 0)
    }

    private func liveHolds(clientID: Int64, now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int) {
        // The client's running totals less its holds expired and not yet deleted (few: a check-and-reserve
        // deletes them, the sweep too). Integer arithmetic is exact and fails on overflow rather than
        // wrapping; every hold was sized to fit in the credit left after the others, so it never does.
        let s = try store.statement("""
            SELECT coalesce((SELECT cost FROM hold_totals WHERE client_id = ?1), 0) - coalesce(sum(cost), 0),
                   coalesce((SELECT calls FROM hold_totals WHERE client_id = ?1), 0) - count(*)
            FROM holds WHERE client_id = ?1 AND expires_at <= ?2
            """, "summing a client's holds")
        defer { s.reset() }
        try s.bind(1, clientID)
        try s.bind(2, now)
        _ = try s.step()
        return (s.int64(0), Int(s.int64(1)))
    }
}

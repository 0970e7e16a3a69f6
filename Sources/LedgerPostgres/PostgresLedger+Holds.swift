import Ledger
import MeterCore

/// PostgreSQL's holds: rows of `holds`, shared by every agent on every host. Check-and-reserve locks the
/// client's row (FOR NO KEY UPDATE, as a batch commit does before it adds to Used), so agents asking for
/// one client at once, and a batch charging it, queue in one order; other clients never wait.
///
/// A transaction that only writes holds commits without waiting for the server's WAL flush
/// (synchronous_commit off, for that transaction alone): it is visible to every other agent the moment it
/// commits, as any commit is, and what a server crash can lose is its newest holds, never a charge, as
/// with SQLite's holds connection. The flush would otherwise be most of each answer's time.
extension PostgresLedger: HoldStore {
    /// For a transaction that writes holds only; sent with its BEGIN.
    static let holdsOnly = "SET LOCAL synchronous_commit TO off"

    public func reserve<T>(account: String, call: String?, now: Int64,
                           _ decide: (HoldView?) -> (value: T, grant: HoldGrant?)) throws(LedgerError) -> T {
        guard let call else {
            return try reading { () throws(LedgerError) -> T in
                guard var view = try holdClient(account: account) else { return decide(nil).value }
                (view.reserved, view.calls) = try liveHolds(clientID: view.clientID, now: now)
                return decide(view).value
            }
        }
        // Two round trips: BEGIN with its setting, the client locked and read, its expired holds and this
        // call's earlier one deleted and what is left read, all sent at once; then the new hold with the COMMIT.
        var p = PGParams()
        p.text(account)
        var q = PGParams()
        q.text(account)
        q.int8(now)
        q.text(call)
        let first: [Statement] = [
            // Its own statement: one that waits for the lock keeps the snapshot it started with, and would
            // not see the holds the agent it waited for has just committed. The next one starts after it.
            ("""
             SELECT c.id, c.username, c.status, c.plan, c.assigned, c.used
             FROM accounts a JOIN clients c ON c.id = a.client_id WHERE a.code = $1
             FOR NO KEY UPDATE OF c
             """, p, "locking an account's client for authorize"),
            // With the client locked nobody else adds its holds. The parts see one snapshot, from before
            // these deletes (their trigger's updates to hold_totals are not visible yet), so the deleted
            // rows are taken off the totals here. An account nobody owns matches no client: nothing.
            ("""
             WITH owner AS (SELECT client_id AS id FROM accounts WHERE code = $1), expired AS (
                 DELETE FROM holds WHERE client_id = (SELECT id FROM owner) AND expires_at <= $2 RETURNING cost
             ), again AS (
                 DELETE FROM holds WHERE client_id = (SELECT id FROM owner) AND call = $3 AND expires_at > $2 RETURNING cost
             ), gone AS (SELECT cost FROM expired UNION ALL SELECT cost FROM again)
             SELECT (coalesce((SELECT cost FROM hold_totals WHERE client_id = (SELECT id FROM owner)), 0)
                         - coalesce((SELECT sum(cost) FROM gone), 0))::int8,
                    coalesce((SELECT calls FROM hold_totals WHERE client_id = (SELECT id FROM owner)), 0) - (SELECT count(*) FROM gone)
             """, q, "dropping a client's expired holds and the call's earlier one"),
        ]
        return try pipelinedWrite("authorizing call \(call)", settings: Self.holdsOnly, first: first) {
            (results) throws(LedgerError) -> (value: T, finish: [Statement]) in
            let r = results[0], t = results[1]
            guard r.rows > 0 else { return (decide(nil).value, []) }
            // The table's CHECK constraint admits only known statuses; the fallback is never taken.
            let view = HoldView(clientID: r.int64(0, 0), username: r.text(0, 1),
                                status: ClientStatus(rawValue: r.text(0, 2)) ?? .active, plan: r.text(0, 3),
                                meter: Meter(assigned: r.int64(0, 4), used: r.int64(0, 5)),
                                reserved: t.int64(0, 0), calls: Int(t.int64(0, 1)))
            let (value, grant) = decide(view)
            guard let grant else { return (value, []) }
            var g = PGParams()
            g.int8(view.clientID)
            g.text(call)
            g.int8(grant.cost)
            g.int8(grant.expiresAt)
            g.text(node)
            return (value, [("INSERT INTO holds (client_id, call, cost, expires_at, node) VALUES ($1, $2, $3, $4, $5)", g,
                             "recording a hold")])
        }
    }

    public func held(clientID: Int64, now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int) {
        try reading { () throws(LedgerError) -> (cost: Int64, calls: Int) in try liveHolds(clientID: clientID, now: now) }
    }

    public func heldTotal(now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int) {
        try reading { () throws(LedgerError) -> (cost: Int64, calls: Int) in
            var p = PGParams()
            p.int8(now)
            // As SQLite's: each client's running totals less its expired holds, summed as numeric and
            // clamped, since the sum over clients may pass what one client can hold.
            let r = try db.query("""
                SELECT least(coalesce(sum(t.cost - coalesce(e.cost, 0)), 0), 9223372036854775807)::int8,
                       coalesce(sum(t.calls - coalesce(e.calls, 0)), 0)::int8
                FROM hold_totals t LEFT JOIN (
                    SELECT client_id, sum(cost) AS cost, count(*) AS calls FROM holds WHERE expires_at <= $1 GROUP BY client_id
                ) e ON e.client_id = t.client_id
                """, p, "summing every client's holds")
            return (r.int64(0, 0), Int(r.int64(0, 1)))
        }
    }

    @discardableResult
    public func sweepHolds(now: Int64) throws(LedgerError) -> Int {
        try write("dropping expired holds", settings: Self.holdsOnly) { () throws(LedgerError) -> Int in
            var p = PGParams()
            p.int8(now)
            let r = try db.query("WITH d AS (DELETE FROM holds WHERE expires_at <= $1 RETURNING 1) SELECT count(*) FROM d", p,
                                 "dropping expired holds")
            return Int(r.int64(0, 0))
        }
    }

    public func keepHolds(_ holds: [HoldKey: HoldGrant]) throws(LedgerError) {
        guard !holds.isEmpty else { return }
        let items = holds.sorted { ($0.key.clientID, $0.key.call) < ($1.key.clientID, $1.key.call) }
        try write("keeping holds granted while the store was down", settings: Self.holdsOnly) { () throws(LedgerError) in
            // Locked as check-and-reserve locks them, so no answer in flight misses these holds.
            var lock = PGParams()
            lock.int8Array(Array(Set(items.map(\.key.clientID))).sorted())
            try db.query("SELECT id FROM clients WHERE id = ANY($1::int8[]) ORDER BY id FOR NO KEY UPDATE", lock,
                         "locking the clients of kept holds")
            var p = PGParams()
            p.int8Array(items.map(\.key.clientID))
            p.textArray(items.map(\.key.call))
            p.int8Array(items.map(\.value.cost))
            p.int8Array(items.map(\.value.expiresAt))
            p.text(node)
            try db.query("""
                INSERT INTO holds (client_id, call, cost, expires_at, node)
                SELECT h.client_id, h.call, h.cost, h.expires_at, $5
                FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[]) AS h(client_id, call, cost, expires_at)
                WHERE EXISTS (SELECT 1 FROM clients c WHERE c.id = h.client_id)
                ON CONFLICT (client_id, call) DO UPDATE SET cost = excluded.cost, expires_at = excluded.expires_at
                """, p, "keeping holds")
        }
    }

    /// Deletes the holds a batch's charges settle; call inside the batch's transaction, after its clients
    /// are locked, so it takes locks in the order check-and-reserve does (client, then its holds).
    func releaseHolds(_ keys: [HoldKey]) throws(LedgerError) {
        guard !keys.isEmpty else { return }
        var p = PGParams()
        p.int8Array(keys.map(\.clientID))
        p.textArray(keys.map(\.call))
        try db.query("""
            DELETE FROM holds h USING unnest($1::int8[], $2::text[]) AS r(client_id, call)
            WHERE h.client_id = r.client_id AND h.call = r.call
            """, p, "releasing charged calls' holds")
    }

    private func holdClient(account: String) throws(LedgerError) -> HoldView? {
        var p = PGParams()
        p.text(account)
        let r = try db.query("""
            SELECT c.id, c.username, c.status, c.plan, c.assigned, c.used
            FROM accounts a JOIN clients c ON c.id = a.client_id WHERE a.code = $1
            """, p, "looking up an account for authorize")
        guard r.rows > 0 else { return nil }
        // The table's CHECK constraint admits only known statuses; the fallback is never taken.
        return HoldView(clientID: r.int64(0, 0), username: r.text(0, 1), status: ClientStatus(rawValue: r.text(0, 2)) ?? .active,
                        plan: r.text(0, 3), meter: Meter(assigned: r.int64(0, 4), used: r.int64(0, 5)), reserved: 0, calls: 0)
    }

    private func liveHolds(clientID: Int64, now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int) {
        var p = PGParams()
        p.int8(clientID)
        p.int8(now)
        // The running totals less the client's holds expired and not yet deleted (few: check-and-reserve and
        // the sweep delete them). sum(bigint) is numeric: cast back, an overflow then errors, never wraps.
        let r = try db.query("""
            SELECT (coalesce((SELECT cost FROM hold_totals WHERE client_id = $1), 0) - coalesce(sum(cost), 0))::int8,
                   coalesce((SELECT calls FROM hold_totals WHERE client_id = $1), 0) - count(*)
            FROM holds WHERE client_id = $1 AND expires_at <= $2
            """, p, "summing a client's holds")
        return (r.int64(0, 0), Int(r.int64(0, 1)))
    }
}

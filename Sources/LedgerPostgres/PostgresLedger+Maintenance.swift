import Ledger
import MeterCore

/// Retention purge, the given-up tally and `creditmeter status`'s reads, as SQLite's `Ledger` answers
/// them; what SQLite counts for "this host" is this node's here.
extension PostgresLedger {
    /// Disabled clients whose `disabled_at` is strictly before `disabledBefore`, by username (byte order).
    public func purgeCandidates(disabledBefore: Int64) throws(LedgerError) -> [ClientRecord] {
        try reading { () throws(LedgerError) -> [ClientRecord] in
            var p = PGParams()
            p.int8(disabledBefore)
            // Clients and their codes in one statement, so one snapshot: a client purged meanwhile by another
            // agent is either whole or absent, never listed without its accounts.
            let r = try db.query("""
                SELECT c.*, a.code FROM (
                    SELECT \(Ledger.clientColumns) FROM clients WHERE status = 'disabled' AND disabled_at < $1
                ) AS c LEFT JOIN accounts a ON a.client_id = c.id
                ORDER BY c.username COLLATE "C", a.code COLLATE "C"
                """, p, "finding clients to purge")
            var out: [ClientRecord] = []
            for i in 0..<r.rows {
                let id = r.int64(i, 0)
                if out.last?.id != id { out.append(Self.readClient(r, i)) }
                if let code = r.optionalText(i, 22) { out[out.count - 1].accounts.append(code) }
            }
            return out
        }
    }

    /// Deletes a disabled client for good, with every row of every node that refers to it (charges and
    /// their rerates, recharges, adjustments, accounts, holds, queued events and their deliveries, balance
    /// bookkeeping), and queues a `client.purged` event, all in one transaction.
    ///
    /// The client's row is locked first, FOR UPDATE: that waits for batches of other agents that have
    /// already charged the client to commit (their usage rows hold a key-share lock on it), whose rows
    /// the deletes then see, and makes later ones wait for the purge, after which the client is gone.
    public func purge(username: String, now: Int64) throws(LedgerError) {
        try write("purging client '\(username)'") { () throws(LedgerError) in
            var p = PGParams()
            p.text(username)
            let r = try db.query("SELECT id, status, disabled_at FROM clients WHERE username = $1 FOR UPDATE", p,
                                 "locking a client to purge")
            guard r.rows > 0 else { throw .unknownClient(username) }
            guard r.text(0, 1) == ClientStatus.disabled.rawValue else { throw .notDisabled(username) }
            let id = r.int64(0, 0), disabledAt = r.optionalInt64(0, 2)
            var c = PGParams()
            c.int8(id)
            // Explicit, children first, each along its index by client, rather than by the foreign keys'
            // cascades: holds go before hold_totals so their trigger finds its row, and the outbox's
            // deliveries go by their cascade, along the deliveries' primary key.
            let deletes: [(String, String)] = [
                ("DELETE FROM usage_adjustments WHERE client_id = $1", "purging a client's rerates"),
                ("DELETE FROM usage WHERE client_id = $1", "purging a client's charges"),
                ("DELETE FROM adjustments WHERE client_id = $1", "purging a client's adjustments"),
                ("DELETE FROM recharges WHERE client_id = $1", "purging a client's recharges"),
                ("DELETE FROM holds WHERE client_id = $1", "purging a client's holds"),
                ("DELETE FROM hold_totals WHERE client_id = $1", "purging a client's hold total"),
                ("DELETE FROM accounts WHERE client_id = $1", "purging a client's accounts"),
                ("DELETE FROM balance_dirty WHERE client_id = $1", "purging a client's pending balance event"),
                ("DELETE FROM balance_sent WHERE client_id = $1", "purging a client's last balance push"),
                ("DELETE FROM outbox WHERE client_id = $1", "purging a client's queued events"),
                ("DELETE FROM clients WHERE id = $1", "purging a client"),
            ]
            for (sql, purpose) in deletes { try db.query(sql, c, purpose) }
            // Retention exists to forget personal data, so the event names the client and nothing more.
            let data: [(String, JSONValue)] = [
                ("username", .string(username)),
                ("disabled_at", disabledAt.map { .string(EventFactory.rfc3339($0)) } ?? .null),
                ("purged_at", .string(EventFactory.rfc3339(now))),
            ]
            try insertEvents([("client.purged", id, username, EventFactory.body(type: "client.purged", now: now, data: data))],
                             now: now)
        }
    }

    // MARK: given-up files, this node's

    /// Adds `files` given-up files holding `bytes` known-unread bytes to this node's tally for `source`.
    public func recordGivenUp(source: String, files: Int, bytes: Int64, now: Int64) throws(LedgerError) {
        try write("counting a given-up file of \(source)") { () throws(LedgerError) in
            var p = PGParams()
            p.text(node)
            p.text(source)
            p.int8(Int64(files))
            p.int8(bytes)
            p.int8(now)
            try db.query("""
                INSERT INTO source_given_up AS g (node, source, files, bytes, last_at) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (node, source) DO UPDATE SET files = g.files + excluded.files, bytes = g.bytes + excluded.bytes,
                    last_at = excluded.last_at
                """, p, "counting a given-up file")
        }
    }

    /// This node's given-up files of `source` and their known-unread bytes since the store was made.
    public func givenUp(source: String) throws(LedgerError) -> (files: Int64, bytes: Int64) {
        try reading { () throws(LedgerError) -> (files: Int64, bytes: Int64) in
            var p = PGParams()
            p.text(node)
            p.text(source)
            let r = try db.query("SELECT files, bytes FROM source_given_up WHERE node = $1 AND source = $2", p,
                                 "reading the given-up files")
            return r.rows > 0 ? (r.int64(0, 0), r.int64(0, 1)) : (0, 0)
        }
    }

    // MARK: status, this node's

    /// CDRs this node charged at or after `t` (unix seconds) and their cost in µcr.
    ///
    /// As SQLite's, by walking back from the newest charge rather than scanning (usage has no index by
    /// charge time): charges are numbered as they are made, with their commit time, so the walk stops at
    /// the newest of this node's charges made more than `clockStepSlack` before `t`, and counts this
    /// node's charges since that one.
    public func chargedSince(_ t: Int64) throws(LedgerError) -> (count: Int, cost: Int64) {
        try reading { () throws(LedgerError) -> (count: Int, cost: Int64) in
            let stop = t.subtractingReportingOverflow(Self.clockStepSlack)
            var p = PGParams()
            p.text(node)
            p.int8(t)
            // Past the smallest time nothing is far enough back to stop at: all the node's charges are read.
            p.int8(stop.overflow ? nil : stop.partialValue)
            let r = try db.query("""
                SELECT n, CASE WHEN cost BETWEEN -9223372036854775808 AND 9223372036854775807 THEN cost::int8 END
                FROM (
                    SELECT count(*) AS n, coalesce(sum(cost), 0) AS cost FROM usage
                    WHERE node = $1 AND charged_at >= $2
                        AND id > coalesce((SELECT id FROM usage WHERE node = $1 AND charged_at < $3 ORDER BY id DESC LIMIT 1), 0)
                ) AS since
                """, p, "totalling recent usage")
            // sum(bigint) is numeric: a total past Int64 is SQLite's overflow error, not the cast's.
            guard r.rows > 0, !r.isNull(0, 1) else { throw .invalidAmount("the cost charged since \(t) overflows") }
            return (Int(r.int64(0, 0)), r.int64(0, 1))
        }
    }

    /// How far back past the boundary `chargedSince` still looks, for a clock stepped back (SQLite's).
    static let clockStepSlack: Int64 = 3_600

    /// The start time of the newest CDR this node charged from `source` (newest by its start).
    ///
    /// As SQLite's: read backwards along the dedupe index (node, start) over at most `lastStartWalk` of the
    /// node's newest charges, else a scan of the node's charges of the source. Charges copied from a
    /// SQLite store made before start keys (`legacyStartKey`) are left to the scan, as SQLite leaves its
    /// rows without one. Of charges with one start key, SQLite's walk takes the greatest identity in byte
    /// order and this one any: they share their start, so only a start time stored differently for the
    /// same start key could tell them apart.
    public func lastChargedStart(source: String) throws(LedgerError) -> Int64? {
        try reading { () throws(LedgerError) -> Int64? in
            var p = PGParams()
            p.text(node)
            p.text(source)
            p.int8(PostgresSchema.legacyStartKey)
            p.int8(lastStartWalk)
            let recent = try db.query("""
                SELECT started_at FROM (
                    SELECT source, started_at, start_key FROM usage WHERE node = $1 AND start_key > $3
                    ORDER BY start_key DESC LIMIT $4
                ) AS newest WHERE source = $2 ORDER BY start_key DESC LIMIT 1
                """, p, "find the newest CDR of a source")
            if recent.rows > 0 { return recent.optionalInt64(0, 0) }
            var q = PGParams()
            q.text(node)
            q.text(source)
            let all = try db.query("SELECT max(started_at) FROM usage WHERE node = $1 AND source = $2", q,
                                   "find the newest CDR of a source")
            return all.rows > 0 ? all.optionalInt64(0, 0) : nil
        }
    }
}

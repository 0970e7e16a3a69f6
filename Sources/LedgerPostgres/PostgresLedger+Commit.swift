import Foundation
import Ledger
import MeterCore

/// Ingestion: the exactly-once commit of a batch, in a handful of round trips however many charges.
extension PostgresLedger {
    /// This host's committed read position of source `name`, or nil if it never read it.
    public func sourcePosition(name: String) throws(LedgerError) -> Checkpoint? {
        try reading { () throws(LedgerError) -> Checkpoint? in
            var p = PGParams()
            p.text(node)
            p.text(name)
            let r = try db.query("""
                SELECT device, inode, head_hash, "offset", tail_hash, line FROM source_positions WHERE node = $1 AND name = $2
                """, p, "reading a source position")
            guard r.rows > 0 else { return nil }
            return Checkpoint(device: UInt64(bitPattern: r.int64(0, 0)), inode: UInt64(bitPattern: r.int64(0, 1)),
                              headHash: r.text(0, 2), offset: r.int64(0, 3), tailHash: r.text(0, 4), line: r.int64(0, 5))
        }
    }

    /// One batch in one transaction, with the same outcome and events as `Ledger.commit` for the same
    /// input. A deadlock or serialization failure rolls the batch back and runs it again whole.
    public func commit(_ batch: ChargeBatch, now: Int64) throws(LedgerError) -> BatchOutcome {
        // Refused before any round trip: nothing of such a batch is ever kept.
        try Ledger.checkCosts(batch.charges)
        return try write("charging a batch from \(batch.source)") { () throws(LedgerError) -> BatchOutcome in
            try apply(batch, now: now)
        }
    }

    /// The body of `commit`, in `Ledger.apply`'s order (quarantine, charges, releases, Used and latches,
    /// position), so an entry whose identity the same batch charges is released as there.
    private func apply(_ batch: ChargeBatch, now: Int64) throws(LedgerError) -> BatchOutcome {
        var outcome = BatchOutcome(charged: 0, duplicates: 0, quarantined: 0, levelChanges: [], costByClient: [:], countByClient: [:])
        let charges = batch.charges

        if !batch.quarantined.isEmpty { outcome.quarantined = try quarantine(batch.quarantined, now: now) }

        if !charges.isEmpty {
            // Of equal keys in one batch only the first can be new (SQLite keeps the first in VALUES order):
            // the later ones are duplicates whatever the store holds, and are not sent.
            var seen = Set<Key>()
            seen.reserveCapacity(charges.count)
            var sent: [Int] = []
            sent.reserveCapacity(charges.count)
            for i in charges.indices {
                if seen.insert(Key(startKey: charges[i].startKey, identity: charges[i].identity)).inserted { sent.append(i) }
            }
            let inserted = try insertCharges(charges, sent, now: now)
            var lo = Int64.max, hi = Int64.min
            for (k, i) in sent.enumerated() where inserted[k] {
                outcome.charged += 1
                try Ledger.count(charges[i].cost, for: charges[i].clientID, in: &outcome)
                lo = min(lo, charges[i].startKey)
                hi = max(hi, charges[i].startKey)
            }
            outcome.duplicates = charges.count - outcome.charged

            // A charged line may have been quarantined before (its client did not exist yet): release it.
            if lo <= hi {
                var r = PGParams()
                r.text(node)
                r.int8(lo)
                r.int8(hi)
                try db.query("""
                    DELETE FROM quarantine q WHERE q.node = $1 AND q.start_key BETWEEN $2 AND $3
                        AND EXISTS (SELECT 1 FROM usage u WHERE u.node = q.node AND u.start_key = q.start_key AND u.identity = q.key)
                    """, r, "releasing charged lines from quarantine")
            }
        }

        let costs = outcome.costByClient.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        if !costs.isEmpty {
            // The clients are locked only now, in ascending id, so that writers charging the same clients
            // (several hosts, or one replay's parallel batches) insert their usage rows at the same time
            // and queue only for this short tail, and queue in one order instead of deadlocking. FOR NO KEY
            // UPDATE, what the UPDATE below takes anyway, does not conflict with the KEY SHARE locks the
            // usage foreign key takes.
            var lock = PGParams()
            lock.int8Array(costs.map(\.key))
            try db.query("SELECT id FROM clients WHERE id = ANY($1::int8[]) ORDER BY id FOR NO KEY UPDATE", lock,
                         "locking the batch's clients")
            // Used and balance_dirty for every client of the batch in one statement. bigint overflows are
            // errors (22003), never a silent wrap or a float.
            var p = PGParams()
            p.int8Array(costs.map(\.key))
            p.int8Array(costs.map(\.value))
            p.int8(now)
            let r = try db.query("""
                WITH d AS (SELECT * FROM unnest($1::int8[], $2::int8[]) AS d(id, cost)),
                upd AS (
                    UPDATE clients c SET used = c.used + d.cost FROM d WHERE c.id = d.id
                    RETURNING c.id, c.username, c.assigned, c.used, c.level
                ),
                dirty AS (
                    INSERT INTO balance_dirty (client_id, since) SELECT id, $3 FROM upd
                    ON CONFLICT (client_id) DO NOTHING
                )
                SELECT id, username, assigned, used, level FROM upd ORDER BY id
                """, p, "adding charges to the clients' used totals")
            // Sorted by id, as SQLite's, so events and level changes come out in the same order.
            let updated = (0..<r.rows).map { i in
                (id: r.int64(i, 0), username: r.text(i, 1), meter: Meter(assigned: r.int64(i, 2), used: r.int64(i, 3)),
                 stored: Level(rawValue: r.text(i, 4)) ?? .ok)
            }
            let latch = relatchEvents(updated, now: now)
            if !latch.changes.isEmpty {
                try storeLatches(latch, now: now)
                outcome.levelChanges = latch.changes
            }
        }
        try releaseHolds(batch.releases)

        if let position = batch.position {
            var p = PGParams()
            p.text(node)
            p.text(batch.source)
            p.int8(Int64(bitPattern: position.device))
            p.int8(Int64(bitPattern: position.inode))
            p.text(position.headHash)
            p.int8(position.offset)
            p.text(position.tailHash)
            p.int8(position.line)
            p.int8(now)
            try db.query("""
                INSERT INTO source_positions (node, name, device, inode, head_hash, "offset", tail_hash, line, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (node, name) DO UPDATE SET device = excluded.device, inode = excluded.inode,
                    head_hash = excluded.head_hash, "offset" = excluded."offset", tail_hash = excluded.tail_hash,
                    line = excluded.line, updated_at = excluded.updated_at
                """, p, "saving a source position")
        }
        return outcome
    }

    /// This node's quarantined lines, oldest first, as `Ledger.quarantine` lists them.
    public func quarantine(limit: Int?, reason: String?) throws(LedgerError) -> [QuarantineItem] {
        try reading { () throws(LedgerError) -> [QuarantineItem] in
            var p = PGParams()
            p.text(node)
            p.text(reason)
            // NULL is no limit; a negative limit is none too, as SQLite reads it.
            p.int8(limit.flatMap { $0 < 0 ? nil : Int64($0) })
            let r = try db.query("""
                SELECT id, key, source, position, line, reason, message, raw, at, start_key, length, sha256 FROM quarantine
                WHERE node = $1 AND ($2::text IS NULL OR reason = $2) ORDER BY id LIMIT $3
                """, p, "listing the quarantine")
            return (0..<r.rows).map { i in
                QuarantineItem(id: r.int64(i, 0),
                               entry: QuarantineEntry(key: r.text(i, 1), source: r.text(i, 2), position: r.int64(i, 3),
                                                      line: r.int64(i, 4), reason: r.text(i, 5), message: r.text(i, 6),
                                                      raw: r.bytes(i, 7), startKey: r.optionalInt64(i, 9),
                                                      length: r.optionalInt64(i, 10), sha256: r.optionalText(i, 11)),
                               at: r.int64(i, 8))
            }
        }
    }

    public func quarantineCount() throws(LedgerError) -> Int {
        try reading { () throws(LedgerError) -> Int in
            var p = PGParams()
            p.text(node)
            let r = try db.query("SELECT count(*) FROM quarantine WHERE node = $1", p, "counting the quarantine")
            return Int(r.int64(0, 0))
        }
    }

    /// Inserts the entries in one statement and returns how many were new. An identity this node already
    /// charged is accounted for: quarantining it again would only make noise.
    private func quarantine(_ entries: [QuarantineEntry], now: Int64) throws(LedgerError) -> Int {
        var p = PGParams(capacity: entries.count * 256)
        p.text(node)
        p.int8(now)
        p.textArray(entries.map(\.key))
        p.textArray(entries.map(\.source))
        p.int8Array(entries.map(\.position))
        p.int8Array(entries.map(\.line))
        p.textArray(entries.map(\.reason))
        p.textArray(entries.map(\.message))
        p.byteaArray(entries.map(\.raw))
        p.int8Array(entries.map(\.startKey))
        p.int8Array(entries.map(\.length))
        p.textArray(entries.map(\.sha256))
        // A raw key (a line that did not parse) is never an identity: -1 is no CDR's start.
        let r = try db.query("""
            INSERT INTO quarantine (node, key, source, position, line, reason, message, raw, at, start_key, length, sha256)
            SELECT $1, q.key, q.source, q.position, q.line, q.reason, q.message, q.raw, $2, q.start_key, q.length, q.sha256
            FROM unnest($3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[], $8::text[], $9::bytea[], $10::int8[],
                        $11::int8[], $12::text[]) WITH ORDINALITY
                AS q(key, source, position, line, reason, message, raw, start_key, length, sha256, ord)
            WHERE NOT EXISTS (SELECT 1 FROM usage u WHERE u.node = $1 AND u.start_key = coalesce(q.start_key, -1)
                                                      AND u.identity = q.key)
            ORDER BY q.ord
            ON CONFLICT (node, key) DO NOTHING
            """, p, "quarantining lines")
        return r.affected
    }

    /// Inserts `charges[sent[k]]` for every k in one statement from bound arrays; returns, for each k,
    /// whether that charge was new. `sent` holds no two equal keys, so each returned row names one charge.
    private func insertCharges(_ charges: [Charge], _ sent: [Int], now: Int64) throws(LedgerError) -> [Bool] {
        let rows = sent.map { charges[$0] }
        var p = PGParams(capacity: rows.count * 240 + 256)
        p.text(node)
        p.int8(now)
        p.textArray(rows.map(\.identity))
        p.int8Array(rows.map(\.clientID))
        p.textArray(rows.map(\.account))
        p.textArray(rows.map(\.source))
        p.int8Array(rows.map(\.position))
        p.int8Array(rows.map(\.line))
        p.textArray(rows.map(\.destination))
        p.textArray(rows.map(\.prefix))
        p.int8Array(rows.map(\.billsec))
        p.int8Array(rows.map(\.chargedSeconds))
        p.int8Array(rows.map(\.cost))
        p.int8Array(rows.map(\.startedAt))
        p.int8Array(rows.map(\.startKey))
        p.int8Array(rows.map(\.answeredAt))
        let pricedBy = rows.map(\.pricedBy)
        p.textArray(pricedBy)
        if pricedBy.contains(where: { $0 != nil }) {
            // Texts first seen here get their pricings row, in byte order so two writers adding the same
            // new texts take their index locks in one order.
            var t = PGParams()
            t.textArray(Array(Set(pricedBy.compactMap { $0 })).sorted())
            try db.query("""
                INSERT INTO pricings (text) SELECT x FROM unnest($1::text[]) AS x ORDER BY x COLLATE "C"
                ON CONFLICT (text) DO NOTHING
                """, t, "recording what priced the charges")
        }
        // The ordinals of the rows that went in come back, rather than their keys: 8 bytes a row.
        let r = try db.query("""
            WITH input AS (
                SELECT * FROM unnest($3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[], $8::int8[], $9::text[],
                                     $10::text[], $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[],
                                     $16::int8[], $17::text[]) WITH ORDINALITY
                    AS t(identity, client_id, account, source, position, line, destination, prefix, billsec,
                         charged_seconds, cost, started_at, start_key, answered_at, priced_by, ord)
            ),
            ins AS (
                INSERT INTO usage (node, identity, start_key, client_id, account, source, position, line, destination,
                    prefix, billsec, charged_seconds, cost, started_at, charged_at, answered_at, pricing)
                SELECT $1, i.identity, i.start_key, i.client_id, i.account, i.source, i.position, i.line, i.destination,
                    i.prefix, i.billsec, i.charged_seconds, i.cost, i.started_at, $2, i.answered_at,
                    (SELECT p.id FROM pricings p WHERE p.text = i.priced_by)
                FROM input i ORDER BY i.ord
                ON CONFLICT (node, start_key, identity) DO NOTHING
                RETURNING start_key, identity
            )
            SELECT input.ord FROM input JOIN ins ON ins.start_key = input.start_key AND ins.identity = input.identity
            """, p, "recording charges")
        var inserted = [Bool](repeating: false, count: rows.count)
        for k in 0..<r.rows {
            let ord = Int(r.int64(k, 0))
            guard ord >= 1, ord <= rows.count, !inserted[ord - 1] else {
                throw .postgres(sqlstate: "", message: "the insert returned ordinal \(ord) of \(rows.count) charges twice or out of range",
                                context: "recording charges")
            }
            inserted[ord - 1] = true
        }
        return inserted
    }
}

/// What makes a charge unique on one node.
private struct Key: Hashable {
    var startKey: Int64
    var identity: String
}

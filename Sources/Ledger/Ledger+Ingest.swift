import Foundation
import MeterCore

/// Ingestion: the exactly-once commit of charges, quarantine entries and a source position.
extension Ledger {
    /// The committed read position of a source, or nil if it was never read.
    public func sourcePosition(name: String) throws(LedgerError) -> SourcePosition? {
        try locked { () throws(LedgerError) -> SourcePosition? in
            let s = try store.statement("""
                SELECT name, device, inode, head_hash, "offset", tail_hash, line FROM source_positions WHERE name = ?1
                """, "reading a source position")
            defer { s.reset() }
            try s.bind(1, name)
            guard try s.step() else { return nil }
            return SourcePosition(name: s.text(0), device: UInt64(bitPattern: s.int64(1)), inode: UInt64(bitPattern: s.int64(2)),
                                  headHash: s.text(3), offset: s.int64(4), tailHash: s.text(5), line: s.int64(6))
        }
    }

    /// Commits one batch in one transaction: charges (an identity already charged is a duplicate, not
    /// charged again), balances, level latches and their alerts, quarantine entries and the source position.
    /// On any error nothing of the batch is kept, position included.
    public func commit(_ batch: ChargeBatch, now: Int64) throws(LedgerError) -> BatchOutcome {
        try write("committing a batch from \(batch.source)") { () throws(LedgerError) -> BatchOutcome in
            try apply(charges: batch.charges, quarantined: batch.quarantined, position: batch.position, now: now)
        }
    }

    /// The body of `commit`, shared with quarantine retry; call inside a transaction.
    func apply(charges: [Charge], quarantined: [QuarantineEntry], position: SourcePosition?, now: Int64) throws(LedgerError) -> BatchOutcome {
        var outcome = BatchOutcome(charged: 0, duplicates: 0, quarantined: 0, levelChanges: [], costByClient: [:], countByClient: [:])

        if !quarantined.isEmpty {
            // An identity already charged is accounted for: quarantining it again would only make noise.
            let q = try store.statement("""
                INSERT INTO quarantine (key, source, position, line, reason, message, raw, at)
                SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE NOT EXISTS (SELECT 1 FROM usage WHERE identity = ?1)
                ON CONFLICT (key) DO NOTHING
                """, "quarantining a line")
            for e in quarantined {
                defer { q.reset() }
                try q.bind(1, e.key)
                try q.bind(2, e.source)
                try q.bind(3, e.position)
                try q.bind(4, e.line)
                try q.bind(5, e.reason)
                try q.bind(6, e.message)
                try q.bind(7, blob: e.raw)
                try q.bind(8, now)
                try q.run()
                if store.changes > 0 { outcome.quarantined += 1 }
            }
        }

        if !charges.isEmpty {
            // ON CONFLICT names the identity, so only a repeat identity is skipped; every other
            // constraint (NOT NULL, the client foreign key, STRICT types) still fails the batch.
            let ins = try store.statement("""
                INSERT INTO usage (identity, client_id, account, source, position, line, destination, prefix,
                    billsec, charged_seconds, cost, started_at, charged_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                ON CONFLICT (identity) DO NOTHING
                """, "recording a charge")
            // One cheap probe per batch spares a DELETE per charge in the usual case of an empty quarantine.
            let quarantineInUse = try store.scalarInt("SELECT EXISTS (SELECT 1 FROM quarantine)", purpose: "probing the quarantine") != 0
            let unquarantine = try store.statement("DELETE FROM quarantine WHERE key = ?1", "releasing a charged line from quarantine")
            for c in charges {
                guard c.cost >= 0 else { throw .invalidAmount("charge \(c.identity) has a negative cost (\(Money.format(c.cost)))") }
                do {
                    defer { ins.reset() }
                    try ins.bind(1, c.identity)
                    try ins.bind(2, c.clientID)
                    try ins.bind(3, c.account)
                    try ins.bind(4, c.source)
                    try ins.bind(5, c.position)
                    try ins.bind(6, c.line)
                    try ins.bind(7, c.destination)
                    try ins.bind(8, c.prefix)
                    try ins.bind(9, c.billsec)
                    try ins.bind(10, c.chargedSeconds)
                    try ins.bind(11, c.cost)
                    try ins.bind(12, c.startedAt)
                    try ins.bind(13, now)
                    try ins.run()
                }
                guard store.changes > 0 else {
                    outcome.duplicates += 1
                    continue
                }
                outcome.charged += 1
                let (sum, overflow) = outcome.costByClient[c.clientID, default: 0].addingReportingOverflow(c.cost)
                guard !overflow else { throw .invalidAmount("the batch's total cost for client id \(c.clientID) overflows") }
                outcome.costByClient[c.clientID] = sum
                outcome.countByClient[c.clientID, default: 0] += 1
                if quarantineInUse {
                    defer { unquarantine.reset() }
                    try unquarantine.bind(1, c.identity)
                    try unquarantine.run()
                }
            }
        }

        if !outcome.costByClient.isEmpty {
            let upd = try store.statement("""
                UPDATE clients SET used = used + ?2 WHERE id = ?1 RETURNING username, assigned, used, level
                """, "adding charges to a client's used total")
            // Sorted so events and level changes come out in a stable order.
            for (clientID, cost) in outcome.costByClient.sorted(by: { $0.key < $1.key }) where cost > 0 {
                let username: String, meter: Meter, stored: Level
                do {
                    defer { upd.reset() }
                    try upd.bind(1, clientID)
                    try upd.bind(2, cost)
                    // The usage foreign key already proved the client exists.
                    guard try upd.step() else { continue }
                    username = upd.text(0)
                    meter = Meter(assigned: upd.int64(1), used: upd.int64(2))
                    stored = Level(rawValue: upd.text(3)) ?? .ok
                }
                if let change = try relatch(clientID: clientID, username: username, meter: meter, stored: stored, now: now) {
                    outcome.levelChanges.append(change)
                }
                try markDirty(clientID: clientID, now: now)
            }
        }

        if let p = position {
            let s = try store.statement("""
                INSERT INTO source_positions (name, device, inode, head_hash, "offset", tail_hash, line, updated_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                ON CONFLICT (name) DO UPDATE SET device = excluded.device, inode = excluded.inode,
                    head_hash = excluded.head_hash, "offset" = excluded."offset", tail_hash = excluded.tail_hash,
                    line = excluded.line, updated_at = excluded.updated_at
                """, "saving a source position")
            defer { s.reset() }
            try s.bind(1, p.name)
            try s.bind(2, Int64(bitPattern: p.device))
            try s.bind(3, Int64(bitPattern: p.inode))
            try s.bind(4, p.headHash)
            try s.bind(5, p.offset)
            try s.bind(6, p.tailHash)
            try s.bind(7, p.line)
            try s.bind(8, now)
            try s.run()
        }
        return outcome
    }
}

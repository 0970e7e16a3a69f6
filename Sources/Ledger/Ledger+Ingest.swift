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
            // One cheap probe per batch spares a DELETE per charge in the usual case of an empty quarantine.
            let quarantineInUse = try store.scalarInt("SELECT EXISTS (SELECT 1 FROM quarantine)", purpose: "probing the quarantine") != 0
            let unquarantine = try store.statement("DELETE FROM quarantine WHERE key = ?1", "releasing a charged line from quarantine")
            func charged(_ c: Charge) throws(LedgerError) {
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

            let one = try store.statement(Self.insertOneSQL, "recording a charge")
            let many = charges.count >= Self.chargeChunk ? try store.statement(Self.insertChunkSQL, "recording charges") : nil
            var text = ChargeText()
            // Chunks go in as one statement each while they can; after a chunk with a repeat in it the rest
            // of the batch goes one charge at a time, so a replayed file is not tried twice per chunk.
            var chunked = true
            var start = charges.startIndex
            while start < charges.endIndex {
                let run = charges[start..<min(start + Self.chargeChunk, charges.endIndex)]
                start = run.endIndex
                if chunked, let many, run.count == Self.chargeChunk, run.allSatisfy({ $0.cost >= 0 }) {
                    if try insertChunk(many, run, text: &text, now: now) {
                        for c in run { try charged(c) }
                        continue
                    }
                    chunked = false
                }
                for c in run {
                    guard c.cost >= 0 else { throw .invalidAmount("charge \(c.identity) has a negative cost (\(Money.format(c.cost)))") }
                    guard try insertOne(one, c, text: &text, now: now) else {
                        outcome.duplicates += 1
                        continue
                    }
                    try charged(c)
                }
            }
        }

        if !outcome.costByClient.isEmpty {
            // A plain UPDATE and a SELECT: RETURNING would build and tear down a temporary table on every run.
            let upd = try store.statement("UPDATE clients SET used = used + ?2 WHERE id = ?1",
                                          "adding charges to a client's used total")
            let read = try store.statement("SELECT username, assigned, used, level FROM clients WHERE id = ?1",
                                           "reading a client's used total")
            // Sorted so events and level changes come out in a stable order.
            for (clientID, cost) in outcome.costByClient.sorted(by: { $0.key < $1.key }) where cost > 0 {
                let username: String, meter: Meter, stored: Level
                do {
                    defer { upd.reset() }
                    try upd.bind(1, clientID)
                    try upd.bind(2, cost)
                    try upd.run()
                }
                do {
                    defer { read.reset() }
                    try read.bind(1, clientID)
                    // The usage foreign key already proved the client exists.
                    guard try read.step() else { continue }
                    username = read.text(0)
                    meter = Meter(assigned: read.int64(1), used: read.int64(2))
                    stored = Level(rawValue: read.text(3)) ?? .ok
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

    // MARK: recording charges

    /// Charges per multi-row INSERT: the per-statement work (cursors, halt, reset) is paid once per chunk
    /// instead of once per charge. 64 × 13 parameters stay under the oldest SQLite limit of 999.
    static let chargeChunk = 64

    private static let usageColumns = """
        INSERT INTO usage (identity, client_id, account, source, position, line, destination, prefix,
            billsec, charged_seconds, cost, started_at, charged_at)
        """

    /// Inserts one charge; false when its identity was charged before (ON CONFLICT names the identity, so
    /// every other constraint: NOT NULL, the client foreign key, STRICT types, still fails the batch).
    private func insertOne(_ s: Statement, _ c: Charge, text: inout ChargeText, now: Int64) throws(LedgerError) -> Bool {
        text.load(CollectionOfOne(c))
        try text.bytes.withUnsafeBufferPointer { (buf: UnsafeBufferPointer<UInt8>) throws(LedgerError) in
            defer { s.reset(); s.clearBindings() }
            try bind(c, row: 0, to: s, text: buf, spans: text.spans, now: now)
            try s.run()
        }
        return store.changes > 0
    }

    /// Inserts `chargeChunk` charges in one statement; false when one of them broke a constraint (most
    /// likely a repeat identity), in which case SQLite has undone the whole statement and nothing else.
    private func insertChunk(_ s: Statement, _ run: ArraySlice<Charge>, text: inout ChargeText, now: Int64) throws(LedgerError) -> Bool {
        text.load(run)
        return try text.bytes.withUnsafeBufferPointer { (buf: UnsafeBufferPointer<UInt8>) throws(LedgerError) -> Bool in
            defer { s.reset(); s.clearBindings() }
            for (row, c) in run.enumerated() {
                try bind(c, row: row, to: s, text: buf, spans: text.spans, now: now)
            }
            do throws(LedgerError) {
                try s.run()
            } catch {
                guard Store.isConstraint(error), store.inTransaction else { throw error }
                return false
            }
            return true
        }
    }

    private static let insertOneSQL = usageColumns + """

        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
        ON CONFLICT (identity) DO NOTHING
        """

    /// No ON CONFLICT here: a repeat must fail the chunk, so that `insertOne` can tell which charge it was.
    private static let insertChunkSQL: String = {
        let row = "(" + Array(repeating: "?", count: 13).joined(separator: ", ") + ")"
        return usageColumns + "\nVALUES " + Array(repeating: row, count: chargeChunk).joined(separator: ",\n")
    }()

    /// Binds `c` to parameters 13 * row + 1 ... 13 * row + 13 of an insert into usage.
    private func bind(_ c: Charge, row: Int, to s: Statement, text: UnsafeBufferPointer<UInt8>,
                      spans: [Range<Int>], now: Int64) throws(LedgerError) {
        let p = Int32(13 * row)
        let t = 5 * row
        func str(_ k: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: text[spans[t + k]]) }
        try s.bind(p + 1, borrowedText: str(0))
        try s.bind(p + 2, c.clientID)
        try s.bind(p + 3, borrowedText: str(1))
        try s.bind(p + 4, borrowedText: str(2))
        try s.bind(p + 5, c.position)
        try s.bind(p + 6, c.line)
        try s.bind(p + 7, borrowedText: str(3))
        try s.bind(p + 8, borrowedText: str(4))
        try s.bind(p + 9, c.billsec)
        try s.bind(p + 10, c.chargedSeconds)
        try s.bind(p + 11, c.cost)
        try s.bind(p + 12, c.startedAt)
        try s.bind(p + 13, now)
    }
}

/// The text columns of a run of charges copied back to back into one reused buffer, so they can be
/// bound without SQLite copying every value again.
struct ChargeText {
    /// Starts with one byte so the buffer always has an address, even when every value is empty.
    private(set) var bytes: [UInt8] = [0]
    /// identity, account, source, destination, prefix of each charge, in that order.
    private(set) var spans: [Range<Int>] = []

    mutating func load<C: Collection>(_ charges: C) where C.Element == Charge {
        bytes.removeSubrange(1...)
        spans.removeAll(keepingCapacity: true)
        for c in charges {
            add(c.identity); add(c.account); add(c.source); add(c.destination); add(c.prefix)
        }
    }

    private mutating func add(_ s: String) {
        let start = bytes.count
        bytes.append(contentsOf: s.utf8)
        spans.append(start..<bytes.count)
    }
}

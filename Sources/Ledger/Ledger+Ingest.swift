import Foundation
import MeterCore

/// Ingestion: the exactly-once commit of charges, quarantine entries and a source position.
extension Ledger {
    /// The committed read position of a source, or nil if it was never read.
    public func sourcePosition(name: String) throws(LedgerError) -> Checkpoint? {
        try locked { () throws(LedgerError) -> Checkpoint? in
            let s = try store.statement("""
                SELECT device, inode, head_hash, "offset", tail_hash, line FROM source_positions WHERE name = ?1
                """, "reading a source position")
            defer { s.reset() }
            try s.bind(1, name)
            guard try s.step() else { return nil }
            return Checkpoint(device: UInt64(bitPattern: s.int64(0)), inode: UInt64(bitPattern: s.int64(1)),
                              headHash: s.text(2), offset: s.int64(3), tailHash: s.text(4), line: s.int64(5))
        }
    }

    /// Commits one batch in one transaction: charges (an identity already charged is a duplicate, not
    /// charged again), balances, level latches and their alerts, quarantine entries and the source position.
    /// On any error nothing of the batch is kept, position included.
    public func commit(_ batch: ChargeBatch, now: Int64) throws(LedgerError) -> BatchOutcome {
        try write("charging a batch from \(batch.source)") { () throws(LedgerError) -> BatchOutcome in
            let outcome = try apply(charges: batch.charges, quarantined: batch.quarantined,
                                    position: batch.position.map { (batch.source, $0) }, now: now)
            try releaseHolds(batch.releases)
            return outcome
        }
    }

    /// A batch with a negative cost is refused whole (shared with the PostgreSQL store).
    package static func checkCosts(_ charges: [Charge]) throws(LedgerError) {
        if let c = charges.first(where: { $0.cost < 0 }) {
            throw .invalidAmount("charge \(c.identity) has a negative cost (\(Money.format(c.cost)))")
        }
    }

    /// Adds one newly charged CDR to the outcome's per-client figures, refusing a client total that overflows
    /// (shared with the PostgreSQL store).
    package static func count(_ cost: Int64, for client: Int64, in outcome: inout BatchOutcome) throws(LedgerError) {
        let (sum, overflow) = outcome.costByClient[client, default: 0].addingReportingOverflow(cost)
        guard !overflow else { throw .invalidAmount("the batch's total cost for client id \(client) overflows") }
        outcome.costByClient[client] = sum
        outcome.countByClient[client, default: 0] += 1
    }

    /// The body of `commit`, shared with quarantine retry; call inside a transaction.
    func apply(charges: [Charge], quarantined: [QuarantineEntry], position: (source: String, checkpoint: Checkpoint)?, now: Int64) throws(LedgerError) -> BatchOutcome {
        var outcome = BatchOutcome(charged: 0, duplicates: 0, quarantined: 0, levelChanges: [], costByClient: [:], countByClient: [:])

        if !quarantined.isEmpty {
            // An identity already charged is accounted for: quarantining it again would only make noise.
            let q = try store.statement("""
                INSERT INTO quarantine (key, source, position, line, reason, message, raw, at, start_key, length, sha256)
                SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?11, ?12
                WHERE NOT EXISTS (SELECT 1 FROM usage WHERE start_key = ?9 AND identity = ?1)
                    AND NOT EXISTS (SELECT 1 FROM usage WHERE start_key IS NULL AND identity = ?1)
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
                // A raw key (a line that did not parse) is never an identity: -1 is no CDR's start.
                try q.bind(9, e.startKey ?? -1)
                try q.bind(10, e.startKey)
                try q.bind(11, e.length)
                try q.bind(12, e.sha256)
                try q.run()
                if store.changes > 0 { outcome.quarantined += 1 }
            }
        }

        if !charges.isEmpty {
            try Self.checkCosts(charges)
            var fresh = charges[...]
            // Rows charged before the dedupe index led with the start are only found by identity.
            if try store.scalarInt("SELECT EXISTS (SELECT 1 FROM usage WHERE start_key IS NULL)",
                                   purpose: "probing for rows charged before schema version 3") != 0 {
                let legacy = try store.statement("SELECT 1 FROM usage WHERE start_key IS NULL AND identity = ?1",
                                                 "looking up a charge made before schema version 3")
                var kept: [Charge] = []
                kept.reserveCapacity(charges.count)
                for c in charges {
                    defer { legacy.reset() }
                    try legacy.bind(1, c.identity)
                    if try legacy.step() { outcome.duplicates += 1 } else { kept.append(c) }
                }
                fresh = kept[...]
            }

            // The span of the newly charged CDRs' starts (empty while lo > hi).
            var lo = Int64.max, hi = Int64.min
            // By index, not by element: a Charge copied out of the array retains and releases its six strings.
            func charged(_ k: Int) throws(LedgerError) {
                let client = fresh[k].clientID, cost = fresh[k].cost, startKey = fresh[k].startKey
                outcome.charged += 1
                try Self.count(cost, for: client, in: &outcome)
                lo = min(lo, startKey)
                hi = max(hi, startKey)
            }

            // Chunk sizes this connection's variable limit allows (16 per charge), largest first.
            let sizes = Self.chunkSizes.filter { $0 * Self.usageParameters <= store.variableLimit }
            // Looked up once per size and batch: the cache is keyed by the SQL text, which is long.
            var chunkStatements: [Int: Statement] = [:]
            func chunkStatement(_ rows: Int) throws(LedgerError) -> Statement {
                if let s = chunkStatements[rows] { return s }
                let s = try store.statement(Self.insertChunkSQL(rows: rows), "recording a charge")
                chunkStatements[rows] = s
                return s
            }
            var text = ChargeText()
            var pricings: [Int64?] = []
            var inserted: [Bool] = []
            // Rows get the next rowid in the order they go in, so the rows a chunk adds are those after this.
            var lastID = try store.scalarInt("SELECT coalesce(max(id), 0) FROM usage", purpose: "finding the newest charge")
            var start = fresh.startIndex
            while start < fresh.endIndex {
                let left = fresh.endIndex - start
                let size = sizes.first(where: { $0 <= left }) ?? 1
                let run = fresh[start..<(start + size)]
                start = run.endIndex
                let added = try insertChunk(try chunkStatement(size), run, after: lastID, text: &text,
                                            pricings: &pricings, now: now, inserted: &inserted)
                lastID += Int64(added)
                for k in run.indices {
                    if inserted[k - run.startIndex] { try charged(k) } else { outcome.duplicates += 1 }
                }
            }

            // A charged line may have been quarantined before (its client did not exist yet): release it.
            // Only entries that parsed carry a start key, and those of this batch's charges lie in the
            // batch's span of starts: a few hours of the quarantine, looked up through its start index,
            // rather than one probe per charge. (Entries kept before schema version 3 have no start key;
            // `quarantine retry` still finds those charged and removes them.)
            if lo <= hi {
                let release = try store.statement("""
                    DELETE FROM quarantine WHERE start_key BETWEEN ?1 AND ?2
                        AND EXISTS (SELECT 1 FROM usage WHERE usage.start_key = quarantine.start_key AND usage.identity = quarantine.key)
                    """, "releasing charged lines from quarantine")
                defer { release.reset() }
                try release.bind(1, lo)
                try release.bind(2, hi)
                try release.run()
            }
        }

        let costs = outcome.costByClient.filter { $0.value > 0 }
        if !costs.isEmpty {
            // One statement for all the batch's clients rather than a few per client: SQLite's fixed cost
            // per statement run is far above the cost of one client's row. RETURNING buffers its rows in a
            // temporary table, which is paid once here.
            let upd = try store.statement("""
                UPDATE clients SET used = used + batch.cost
                FROM (SELECT CAST(key AS INTEGER) AS client, value AS cost FROM json_each(?1)) AS batch
                WHERE clients.id = batch.client
                RETURNING id, username, assigned, used, level
                """, "adding charges to the clients' used totals")
            var updated: [(id: Int64, username: String, meter: Meter, stored: Level)] = []
            updated.reserveCapacity(costs.count)
            do {
                defer { upd.reset() }
                try upd.bind(1, Self.jsonObject(costs))
                // A client without a row is not returned: the usage foreign key already proved they all exist.
                while try upd.step() {
                    updated.append((upd.int64(0), upd.text(1), Meter(assigned: upd.int64(2), used: upd.int64(3)),
                                    Level(rawValue: upd.text(4)) ?? .ok))
                }
            }
            // Sorted so events and level changes come out in a stable order.
            updated.sort { $0.id < $1.id }
            for c in updated {
                if let change = try relatch(clientID: c.id, username: c.username, meter: c.meter, stored: c.stored, now: now) {
                    outcome.levelChanges.append(change)
                }
            }
            // `markDirty` for every updated client at once.
            let dirty = try store.statement("""
                INSERT INTO balance_dirty (client_id, since) SELECT value, ?2 FROM json_each(?1) WHERE true
                ON CONFLICT (client_id) DO NOTHING
                """, "marking balances as changed")
            defer { dirty.reset() }
            try dirty.bind(1, "[" + updated.map { String($0.id) }.joined(separator: ",") + "]")
            try dirty.bind(2, now)
            try dirty.run()
        }

        if let (name, p) = position {
            let s = try store.statement("""
                INSERT INTO source_positions (name, device, inode, head_hash, "offset", tail_hash, line, updated_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                ON CONFLICT (name) DO UPDATE SET device = excluded.device, inode = excluded.inode,
                    head_hash = excluded.head_hash, "offset" = excluded."offset", tail_hash = excluded.tail_hash,
                    line = excluded.line, updated_at = excluded.updated_at
                """, "saving a source position")
            defer { s.reset() }
            try s.bind(1, name)
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

    /// Runs `body`, a bulk ingest such as a replay, with a page cache sized for it (`bulkCacheSize`) and
    /// with WAL checkpoints about every 40 MB instead of every 4 MB, so pages rewritten commit after commit
    /// are copied back once per checkpoint. Both are restored afterwards. Only speed changes: every commit
    /// is still synced.
    public func withBulkIngest<T>(_ body: () throws -> T) throws -> T {
        let saved = try locked { () throws(LedgerError) -> (cache: Int64, checkpoint: Int64) in
            (try store.scalarInt("PRAGMA cache_size", purpose: "reading the page cache size"),
             try store.scalarInt("PRAGMA wal_autocheckpoint", purpose: "reading the checkpoint interval"))
        }
        try configure(cacheSize: Self.bulkCacheSize, checkpointPages: Self.bulkCheckpointPages)
        // Failing to restore leaves a working connection, only a differently tuned one.
        defer { try? configure(cacheSize: saved.cache, checkpointPages: saved.checkpoint) }
        return try body()
    }

    /// In SQLite's form, negative for KiB: 500 pages of 4 KiB. A group of batches (`bulkGrouping`)
    /// dirties more than that, but its table and dedupe-index pages fill in order and are not touched
    /// again once full, so spilling them to the WAL before the commit costs nothing; what must stay cached
    /// are the interior pages and a leaf of the index by client per client charged. Smaller than the
    /// 750 pages of a batch-per-transaction replay, so that the replay's peak RSS stays under 48 MiB
    /// (45.5–46.7 MiB on the hostile corpus).
    static let bulkCacheSize: Int64 = -2_000
    static let bulkCheckpointPages: Int64 = 10_000

    private func configure(cacheSize: Int64, checkpointPages: Int64) throws(LedgerError) {
        try locked { () throws(LedgerError) in
            // PRAGMA takes no bound parameters; both values are integers.
            try store.execute("PRAGMA cache_size=\(cacheSize)", purpose: "sizing the page cache")
            try store.execute("PRAGMA wal_autocheckpoint=\(checkpointPages)", purpose: "setting the checkpoint interval")
        }
    }

    /// `{"id": cost, ...}` for json_each, which hands the keys back as text and the values as integers.
    static func jsonObject(_ costs: [Int64: Int64]) -> String {
        "{" + costs.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
    }

    // MARK: recording charges

    /// Charges per multi-row INSERT, largest first: the per-statement work (cursors, halt, reset, the
    /// statement journal's bookkeeping) is paid once per chunk instead of once per charge, and the
    /// smaller sizes take a batch's remainder. 256 × 16 parameters fit SQLite's default limit (32,766).
    static let chunkSizes = [256, 32, 4, 1]
    static let usageParameters = 16

    private static let usageColumns = """
        INSERT INTO usage (identity, client_id, account, source, position, line, destination, prefix,
            billsec, charged_seconds, cost, started_at, charged_at, start_key, answered_at, pricing)
        """

    /// Inserts a chunk of charges in one statement, sets `inserted[k]` for each charge `run[k]` that was new,
    /// and returns how many were. A key already charged is skipped (ON CONFLICT DO NOTHING covers only the
    /// uniqueness indexes, so NOT NULL, the client foreign key and STRICT types still fail the batch).
    ///
    /// Which charges went in: a chunk that added every row needs no more; one that skipped some reads back
    /// the rows after `after` (SQLite gives each new row the rowid after the largest, so they are exactly
    /// the chunk's, still in the cache). That costs less than RETURNING, which writes every row it names
    /// into a temporary table first, even in a file where nearly every chunk holds a repeat. The rows come
    /// back in the order they went in, which is VALUES order (of equal keys in one chunk only the first can
    /// go in), so they are matched by walking the chunk once, comparing bytes; should a row ever not match
    /// in that order, the match is redone by key, which needs no order at all.
    private func insertChunk(_ s: Statement, _ run: ArraySlice<Charge>, after: Int64, text: inout ChargeText,
                             pricings: inout [Int64?], now: Int64, inserted: inout [Bool]) throws(LedgerError) -> Int {
        text.load(run)
        pricings.removeAll(keepingCapacity: true)
        for k in run.indices { pricings.append(try pricingID(run[k].pricedBy)) }
        inserted.removeAll(keepingCapacity: true)
        inserted.append(contentsOf: repeatElement(false, count: run.count))
        return try text.bytes.withUnsafeBufferPointer { (buf: UnsafeBufferPointer<UInt8>) throws(LedgerError) -> Int in
            defer { s.reset(); s.clearBindings() }
            for row in 0..<run.count {
                try bind(run, run.startIndex + row, row: row, to: s, text: buf, spans: text.spans,
                         pricing: pricings[row], now: now)
            }
            try s.run()
            let added = store.changes
            if added == run.count {
                for j in 0..<run.count { inserted[j] = true }
                return added
            }
            guard added > 0 else { return 0 }
            let q = try store.statement("SELECT start_key, identity FROM usage WHERE id > ?1 ORDER BY id",
                                        "reading back the charges a chunk added")
            defer { q.reset() }
            try q.bind(1, after)
            let read = try match(rows: q, run, inserted: &inserted)
            // Anything but exactly the added rows means rowids were not handed out as assumed: fail the
            // batch (it is retried whole) rather than guess which charges went in.
            guard read == added else {
                throw .sqlite(code: 0, message: "a chunk added \(added) charges but \(read) rows follow the newest before it",
                              context: "reading back the charges a chunk added")
            }
            return added
        }
    }

    /// Steps `rows` (start_key, identity of each added row, in the order added) and marks those charges.
    private func match(rows: Statement, _ run: ArraySlice<Charge>, inserted: inout [Bool]) throws(LedgerError) -> Int {
        let base = run.startIndex
        var next = 0, read = 0
        var unordered: [ChargeKey]? = matchInsertsByKey ? [] : nil
        while try rows.step() {
            read += 1
            if unordered == nil {
                let key = rows.int64(0)
                var j = next
                while j < run.count, !(run[base + j].startKey == key && rows.text(1, equals: run[base + j].identity)) { j += 1 }
                if j < run.count {
                    inserted[j] = true
                    next = j + 1
                    continue
                }
                unordered = []
            }
            unordered?.append(ChargeKey(startKey: rows.int64(0), identity: rows.text(1)))
        }
        guard let rest = unordered else { return read }
        var unclaimed = Set(rest)
        for j in 0..<run.count where inserted[j] {
            unclaimed.insert(ChargeKey(startKey: run[base + j].startKey, identity: run[base + j].identity))
        }
        for j in 0..<run.count {
            inserted[j] = unclaimed.remove(ChargeKey(startKey: run[base + j].startKey, identity: run[base + j].identity)) != nil
        }
        return read
    }

    /// The `pricings` id of a charge's priced_by text, inserting the text the first time it is seen. Call
    /// inside a transaction: the insert is undone with it, and then so is the cached id.
    func pricingID(_ text: String?) throws(LedgerError) -> Int64? {
        guard let text else { return nil }
        if pricingRollbacks != store.rollbacks || pricingIDs.count >= Self.pricingCacheLimit {
            pricingIDs.removeAll(keepingCapacity: true)
            pricingRollbacks = store.rollbacks
        }
        if let id = pricingIDs[text] { return id }
        let find = try store.statement("SELECT id FROM pricings WHERE text = ?1", "looking up what priced a charge")
        let id: Int64
        do {
            defer { find.reset() }
            try find.bind(1, text)
            if try find.step() {
                id = find.int64(0)
            } else {
                let add = try store.statement("INSERT INTO pricings (text) VALUES (?1) RETURNING id", "recording what priced a charge")
                defer { add.reset() }
                try add.bind(1, text)
                guard try add.step() else {
                    throw .sqlite(code: 0, message: "no id returned", context: "recording what priced a charge")
                }
                id = add.int64(0)
            }
        }
        pricingIDs[text] = id
        return id
    }

    /// Each distinct text a deck prices with is cached once; a deck of 100,000 rows fits, and a store
    /// whose texts grow past it (many deck versions) only looks some up again.
    static let pricingCacheLimit = 200_000

    static func insertChunkSQL(rows: Int) -> String { chunkSQL[rows] ?? makeChunkSQL(rows: rows) }

    private static let chunkSQL = Dictionary(uniqueKeysWithValues: chunkSizes.map { ($0, makeChunkSQL(rows: $0)) })

    private static func makeChunkSQL(rows: Int) -> String {
        let row = "(" + Array(repeating: "?", count: usageParameters).joined(separator: ", ") + ")"
        return usageColumns + "\nVALUES " + Array(repeating: row, count: rows).joined(separator: ",\n")
            + "\nON CONFLICT DO NOTHING"
    }

    /// Binds `run[k]` to parameters 16 * row + 1 ... 16 * row + 16 of an insert into usage.
    private func bind(_ run: ArraySlice<Charge>, _ k: Int, row: Int, to s: Statement, text: UnsafeBufferPointer<UInt8>,
                      spans: [Range<Int>], pricing: Int64?, now: Int64) throws(LedgerError) {
        let p = Int32(Self.usageParameters * row)
        let t = 5 * row
        func str(_ j: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: text[spans[t + j]]) }
        try s.bind(p + 1, borrowedText: str(0))
        try s.bind(p + 2, run[k].clientID)
        try s.bind(p + 3, borrowedText: str(1))
        try s.bind(p + 4, borrowedText: str(2))
        try s.bind(p + 5, run[k].position)
        try s.bind(p + 6, run[k].line)
        try s.bind(p + 7, borrowedText: str(3))
        try s.bind(p + 8, borrowedText: str(4))
        try s.bind(p + 9, run[k].billsec)
        try s.bind(p + 10, run[k].chargedSeconds)
        try s.bind(p + 11, run[k].cost)
        try s.bind(p + 12, run[k].startedAt)
        try s.bind(p + 13, now)
        try s.bind(p + 14, run[k].startKey)
        try s.bind(p + 15, run[k].answeredAt)
        try s.bind(p + 16, pricing)
    }
}

/// The text columns of a run of charges copied back to back into one reused buffer, so they can be
/// bound without SQLite copying every value again.
struct ChargeText {
    /// Starts with one byte so the buffer always has an address, even when every value is empty.
    private(set) var bytes: [UInt8] = [0]
    /// identity, account, source, destination, prefix of each charge, in that order.
    private(set) var spans: [Range<Int>] = []

    mutating func load(_ charges: ArraySlice<Charge>) {
        bytes.removeSubrange(1...)
        spans.removeAll(keepingCapacity: true)
        for k in charges.indices {
            add(charges[k].identity); add(charges[k].account); add(charges[k].source)
            add(charges[k].destination); add(charges[k].prefix)
        }
    }

    private mutating func add(_ s: String) {
        let start = bytes.count
        bytes.append(contentsOf: s.utf8)
        spans.append(start..<bytes.count)
    }
}

/// What makes a charge unique in the ledger.
struct ChargeKey: Hashable {
    var startKey: Int64
    var identity: String
}

import Foundation
import Ledger
import MeterCore

/// Why a copy did not happen; the target is as it was.
public enum StoreCopyError: Error, CustomStringConvertible, Equatable {
    /// The target already holds ledger rows: a copy would mix two ledgers' ids and balances.
    case notEmpty(table: String, rows: Int64)
    /// The copied rows do not add up to what the SQLite ledger holds (the first difference found).
    case mismatch(String)

    public var description: String {
        switch self {
        case .notEmpty(let table, let rows):
            return "the PostgreSQL store is not empty (\(table) has \(rows) row\(rows == 1 ? "" : "s")): copy only into a store no host has used"
        case .mismatch(let what):
            return "the copy does not add up, nothing was kept: \(what)"
        }
    }
}

/// What a copy moved.
public struct StoreCopyReport: Sendable {
    /// Rows copied per table, in copy order.
    public var rows: [(table: String, rows: Int64)]
    /// Charges SQLite made before it kept start keys, copied under `PostgresSchema.legacyStartKey`.
    public var legacyCharges: Int64
    public var seconds: Double
    public var node: String
}

/// Test hooks: a failure between two tables, or a change to the copy before it is verified.
package struct StoreCopyHooks {
    package var afterTable: ((String) throws(LedgerError) -> Void)?
    package var beforeVerify: ((PGConnection) throws(LedgerError) -> Void)?
    package init(afterTable: ((String) throws(LedgerError) -> Void)? = nil,
                 beforeVerify: ((PGConnection) throws(LedgerError) -> Void)? = nil) {
        self.afterTable = afterTable
        self.beforeVerify = beforeVerify
    }
}

/// `store copy`: a SQLite ledger into this empty store, in one transaction, verified by totals before it
/// commits. The node of this store's settings owns the copied charges, read positions, quarantine entries
/// and given-up tallies, so a replay of the same files on that node finds them charged.
extension PostgresLedger {
    /// How each SQLite table lands here: whether it gains this node, and columns computed from the row.
    private struct Target {
        var nodeScoped = false
        /// SQLite columns read but not stored as such (their meaning is carried by an `expressions` entry).
        var skip: Set<String> = []
        var expressions: [String: String] = [:]
        /// The table's bigserial sequence is advanced past the copied ids.
        var sequence = false
    }

    private static let targets: [String: Target] = [
        "clients": Target(sequence: true),
        "recharges": Target(sequence: true),
        "adjustments": Target(sequence: true),
        "pricings": Target(sequence: true),
        // SQLite's priced_by text (charges before its version 7) becomes a pricings id, as a charge made here
        // names its text; SQLite reads the id's text first too.
        "usage": Target(nodeScoped: true, skip: ["priced_by"], expressions: [
            "start_key": "coalesce(x.start_key, '\(PostgresSchema.legacyStartKey)'::int8)",
            "pricing": "coalesce(x.pricing, (SELECT p.id FROM pricings p WHERE p.text = x.priced_by))",
        ], sequence: true),
        "usage_adjustments": Target(sequence: true),
        "quarantine": Target(nodeScoped: true, sequence: true),
        "source_positions": Target(nodeScoped: true),
        "source_given_up": Target(nodeScoped: true),
        "outbox": Target(sequence: true),
    ]

    private static func quoted(_ c: String) -> String { "\"" + c + "\"" }

    private static func arrayType(_ k: ExportKind) -> String {
        switch k {
        case .int: return "int8[]"
        case .text: return "text[]"
        case .blob: return "bytea[]"
        }
    }

    /// `INSERT … SELECT … FROM unnest(arrays)` for one table: every chunk one statement and one round trip.
    private static func insertSQL(_ table: ExportTable) -> String {
        let target = targets[table.name] ?? Target()
        let first = target.nodeScoped ? 2 : 1
        let arrays = table.columns.enumerated().map { "$\(first + $0.offset)::\(arrayType($0.element.kind))" }
        let aliases = table.columns.map { quoted($0.name) }
        var into: [String] = [], select: [String] = []
        if target.nodeScoped { into.append("node"); select.append("$1") }
        for c in table.columns where !target.skip.contains(c.name) {
            into.append(quoted(c.name))
            select.append(target.expressions[c.name] ?? "x.\(quoted(c.name))")
        }
        return """
            INSERT INTO \(table.name) (\(into.joined(separator: ", ")))
            SELECT \(select.joined(separator: ", ")) FROM unnest(\(arrays.joined(separator: ", "))) AS x(\(aliases.joined(separator: ", ")))
            """
    }

    /// Copies `ledger` into this store, which must hold no ledger rows; on any error or difference nothing
    /// is kept. `progress` is called after each chunk with the table, its rows so far and its total.
    public func copy(from ledger: Ledger, chunkRows: Int = 10_000,
                     progress: ((String, Int64, Int64) -> Void)? = nil) throws -> StoreCopyReport {
        try copy(from: ledger, chunkRows: chunkRows, progress: progress, hooks: StoreCopyHooks())
    }

    package func copy(from ledger: Ledger, chunkRows: Int, progress: ((String, Int64, Int64) -> Void)?,
                      hooks: StoreCopyHooks) throws -> StoreCopyReport {
        let started = Date()
        // Refusals travel out of the typed-throws transaction as this marker, which rolls it back.
        var refusal: StoreCopyError?
        let marker = LedgerError.postgres(sqlstate: "", message: "store copy refused", context: "copying a ledger")
        do {
            let (rows, legacy) = try write("copying a SQLite ledger", retryOn: []) { () throws(LedgerError) -> ([(table: String, rows: Int64)], Int64) in
                let names = LedgerExport.tables.map(\.name)
                // Other agents' writes wait for the copy (reads go on): the emptiness checked below stays true
                // until COMMIT, and no charge lands between the copy and its verification.
                try db.execute("LOCK TABLE \(names.joined(separator: ", ")) IN EXCLUSIVE MODE", "locking the store for a copy")
                for name in names {
                    let n = try db.queryInt("SELECT count(*) FROM \(name)", "checking \(name) is empty") ?? 0
                    if n > 0 {
                        refusal = .notEmpty(table: name, rows: n)
                        throw marker
                    }
                }
                return try ledger.withExportSnapshot { (export) throws(LedgerError) -> ([(table: String, rows: Int64)], Int64) in
                    let expected = try export.totals()
                    let sequences = try export.sequences()
                    var copied: [(table: String, rows: Int64)] = []
                    var legacy: Int64 = 0, textsAdded: Int64 = 0
                    for table in LedgerExport.tables {
                        let total = expected.rows[table.name] ?? 0
                        // Built once after the load rather than row by row in random (hashed identity) order:
                        // a copy of 620,000 charges took 13.8 s with them kept, 8.6 s so (bench/store_copy.sh).
                        let rebuild = Self.bulkTables.contains(table.name) && total > 0 ? try dropSecondaryIndexes(of: table.name) : []
                        let sql = Self.insertSQL(table)
                        var done: Int64 = 0
                        try export.rows(of: table, chunkRows: chunkRows) { (chunk) throws(LedgerError) in
                            if table.name == "usage" {
                                let (old, added) = try prepareUsage(chunk)
                                legacy += old
                                textsAdded += added
                            }
                            var p = PGParams(capacity: chunk.count * 16 * table.columns.count + 64)
                            if (Self.targets[table.name] ?? Target()).nodeScoped { p.text(node) }
                            for v in chunk.values {
                                switch v {
                                case .int(let a): p.int8Array(a)
                                case .text(let a): p.textArray(a)
                                case .blob(let a): p.byteaArray(a)
                                }
                            }
                            let r = try db.query(sql, p, "copying \(table.name)")
                            guard r.affected == chunk.count else {
                                refusal = .mismatch("\(table.name): \(chunk.count) rows read, \(r.affected) stored")
                                throw marker
                            }
                            done += Int64(chunk.count)
                            progress?(table.name, done, total)
                        }
                        for sql in rebuild { try db.execute(sql, "rebuilding the indexes and keys of \(table.name)") }
                        if Self.targets[table.name]?.sequence == true {
                            try advanceSequence(table.name, past: sequences[table.name] ?? 0)
                        }
                        copied.append((table.name, done))
                        try hooks.afterTable?(table.name)
                    }
                    if legacy > 0 {
                        // Only a store with such rows pays a trigger call per charge (see migration 2).
                        try db.execute("""
                            CREATE TRIGGER usage_legacy_duplicate BEFORE INSERT ON usage FOR EACH ROW
                            WHEN (NEW.start_key <> '\(PostgresSchema.legacyStartKey)'::int8) EXECUTE FUNCTION usage_legacy_duplicate();
                            CREATE TRIGGER quarantine_legacy_duplicate BEFORE INSERT ON quarantine FOR EACH ROW
                            EXECUTE FUNCTION quarantine_legacy_duplicate()
                            """, "refusing charges that pre-start-key rows already hold")
                    }
                    try adoptCopiedFanOut()
                    try hooks.beforeVerify?(db)
                    // The texts of charges from before SQLite's version 7 are pricings rows here.
                    var want = expected
                    want.rows["pricings", default: 0] += textsAdded
                    if let problem = try difference(from: want) {
                        refusal = .mismatch(problem)
                        throw marker
                    }
                    return (copied, legacy)
                }
            }
            return StoreCopyReport(rows: rows, legacyCharges: legacy, seconds: Date().timeIntervalSince(started), node: node)
        } catch {
            if let refusal { throw refusal }
            throw error
        }
    }

    /// Tables whose secondary indexes and keys a copy drops and rebuilds around its load.
    static let bulkTables: Set<String> = ["usage"]

    /// Drops `table`'s unique and foreign-key constraints and its other non-primary indexes, as the catalog
    /// has them, and returns the statements that make them again exactly so. No other table's key may
    /// depend on one of them (such a constraint is left in place). Inside the copy's transaction: a failure
    /// rolls the drop back with everything else.
    private func dropSecondaryIndexes(of table: String) throws(LedgerError) -> [String] {
        var p = PGParams()
        p.text(table)
        let c = try db.query("""
            SELECT quote_ident(c.conname), pg_get_constraintdef(c.oid) FROM pg_constraint c
            WHERE c.conrelid = to_regclass($1) AND c.contype IN ('u', 'f')
                AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conrelid <> c.conrelid
                                AND c.contype = 'u' AND f.conindid = c.conindid)
            ORDER BY c.conname
            """, p, "reading the keys of \(table)")
        let i = try db.query("""
            SELECT x.indexrelid::regclass::text, pg_get_indexdef(x.indexrelid) FROM pg_index x
            WHERE x.indrelid = to_regclass($1) AND NOT x.indisprimary
                AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
            ORDER BY 1
            """, p, "reading the indexes of \(table)")
        var rebuild: [String] = []
        for k in 0..<c.rows {
            try db.execute("ALTER TABLE \(table) DROP CONSTRAINT \(c.text(k, 0))", "dropping a key of \(table) for the load")
            rebuild.append("ALTER TABLE \(table) ADD CONSTRAINT \(c.text(k, 0)) \(c.text(k, 1))")
        }
        for k in 0..<i.rows {
            try db.execute("DROP INDEX \(i.text(k, 0))", "dropping an index of \(table) for the load")
            rebuild.append(i.text(k, 1))
        }
        return rebuild
    }

    /// The pricings rows of the chunk's priced_by texts (charges SQLite made before its version 7), so the
    /// insert can name them by id; returns how many of the chunk's charges have no start key, and how many
    /// pricings rows were added.
    private func prepareUsage(_ chunk: ExportChunk) throws(LedgerError) -> (legacy: Int64, added: Int64) {
        var legacy: Int64 = 0
        var texts = Set<String>()
        for (k, c) in chunk.table.columns.enumerated() {
            switch (c.name, chunk.values[k]) {
            case ("start_key", .int(let a)): legacy += Int64(a.lazy.filter { $0 == nil }.count)
            case ("priced_by", .text(let a)): for t in a { if let t { texts.insert(t) } }
            default: break
            }
        }
        if !texts.isEmpty {
            var p = PGParams()
            p.textArray(texts.sorted())
            let r = try db.query("INSERT INTO pricings (text) SELECT unnest($1::text[]) ON CONFLICT (text) DO NOTHING", p,
                                 "recording what priced the copied charges")
            return (legacy, Int64(r.affected))
        }
        return (legacy, 0)
    }

    /// Moves `table`'s id sequence past its highest copied id and past SQLite's AUTOINCREMENT high-water mark
    /// (a purged client's id is never handed out again, as on SQLite).
    private func advanceSequence(_ table: String, past highWater: Int64) throws(LedgerError) {
        var p = PGParams()
        p.text(table)
        p.int8(highWater)
        try db.query("""
            SELECT setval(pg_get_serial_sequence($1, 'id'), m) FROM (SELECT greatest($2, coalesce(max(id), 0)) AS m FROM \(table)) s
            WHERE m > 0
            """, p, "advancing the id sequence of \(table)")
    }

    /// The first way this store's copy differs from `expected`, or nil when every total matches.
    private func difference(from expected: ExportTotals) throws(LedgerError) -> String? {
        let r = try db.query("""
            SELECT c.id, c.username, c.assigned, c.used, coalesce(u.n, 0), coalesce(u.s, 0)::int8, coalesce(r.n, 0)
            FROM clients c
            LEFT JOIN (SELECT client_id, count(*) AS n, sum(cost) AS s FROM usage GROUP BY client_id) u ON u.client_id = c.id
            LEFT JOIN (SELECT client_id, count(*) AS n FROM recharges GROUP BY client_id) r ON r.client_id = c.id
            ORDER BY c.id
            """, "totalling the copy per client")
        let got = (0..<r.rows).map { i in
            ExportTotals.Client(id: r.int64(i, 0), username: r.text(i, 1), assigned: r.int64(i, 2), used: r.int64(i, 3),
                                usageRows: r.int64(i, 4), usageCost: r.int64(i, 5), recharges: r.int64(i, 6))
        }
        guard got.count == expected.clients.count else {
            return "clients: \(expected.clients.count) on SQLite, \(got.count) copied"
        }
        for (want, have) in zip(expected.clients, got) {
            let who = "client '\(want.username)' (id \(want.id))"
            if want.id != have.id || want.username != have.username { return "\(who): copied as '\(have.username)' (id \(have.id))" }
            if want.assigned != have.assigned { return "\(who): assigned \(Money.format(want.assigned)) on SQLite, \(Money.format(have.assigned)) copied" }
            if want.used != have.used { return "\(who): used \(Money.format(want.used)) on SQLite, \(Money.format(have.used)) copied" }
            if want.usageRows != have.usageRows { return "\(who): \(want.usageRows) charges on SQLite, \(have.usageRows) copied" }
            if want.usageCost != have.usageCost {
                return "\(who): charges cost \(Money.format(want.usageCost)) on SQLite, \(Money.format(have.usageCost)) copied"
            }
            if want.recharges != have.recharges { return "\(who): \(want.recharges) recharges on SQLite, \(have.recharges) copied" }
        }
        for table in LedgerExport.tables {
            let want = expected.rows[table.name] ?? 0
            let have = try db.queryInt("SELECT count(*) FROM \(table.name)", "counting the copied \(table.name)") ?? 0
            if want != have { return "\(table.name): \(want) rows on SQLite, \(have) copied" }
        }
        var p = PGParams()
        p.text(node)
        let s = try db.query("""
            SELECT name, device, inode, head_hash, "offset", tail_hash, line FROM source_positions WHERE node = $1
            """, p, "reading the copied positions")
        var positions: [String: Checkpoint] = [:]
        for i in 0..<s.rows {
            positions[s.text(i, 0)] = Checkpoint(device: UInt64(bitPattern: s.int64(i, 1)), inode: UInt64(bitPattern: s.int64(i, 2)),
                                                 headHash: s.text(i, 3), offset: s.int64(i, 4), tailHash: s.text(i, 5),
                                                 line: s.int64(i, 6))
        }
        for name in expected.positions.keys.sorted() where positions[name] != expected.positions[name] {
            return "read position of '\(name)': \(expected.positions[name].map { "offset \($0.offset)" } ?? "none") on SQLite, "
                + "\(positions[name].map { "offset \($0.offset)" } ?? "none") copied for node '\(node)'"
        }
        if positions.count != expected.positions.count {
            return "read positions: \(expected.positions.count) on SQLite, \(positions.count) copied for node '\(node)'"
        }
        return nil
    }
}

import Foundation
import MeterCore

/// A column of an exported table: how its values read out of SQLite.
public enum ExportKind: Sendable, Equatable {
    case int, text, blob
}

/// One table of the ledger as `store copy` reads it, with its columns in the latest schema's meaning.
public struct ExportTable: Sendable {
    public let name: String
    public let columns: [(name: String, kind: ExportKind)]
    /// The order the rows are read in: the primary key, so referenced rows come before the rows naming them
    /// in each table and a copy's progress is a position in one index walk.
    let order: String

    init(_ name: String, order: String, _ columns: [(String, ExportKind)]) {
        self.name = name
        self.order = order
        self.columns = columns.map { (name: $0.0, kind: $0.1) }
    }
}

/// A chunk of one table's rows, column by column (what an array-bound insert wants).
public struct ExportChunk {
    public enum Values {
        case int([Int64?]), text([String?]), blob([[UInt8]])
    }
    public let table: ExportTable
    /// One entry per column of `table`, each `count` long.
    public var values: [Values]
    public var count: Int
}

/// What `store copy` checks the copy against, read in the same snapshot as the rows.
public struct ExportTotals: Sendable, Equatable {
    /// Per client: assigned, used, usage rows, usage cost, recharges.
    public struct Client: Sendable, Equatable {
        public var id: Int64
        public var username: String
        public var assigned: Int64
        public var used: Int64
        public var usageRows: Int64
        public var usageCost: Int64
        public var recharges: Int64
        public init(id: Int64, username: String, assigned: Int64, used: Int64, usageRows: Int64, usageCost: Int64, recharges: Int64) {
            self.id = id
            self.username = username
            self.assigned = assigned
            self.used = used
            self.usageRows = usageRows
            self.usageCost = usageCost
            self.recharges = recharges
        }
    }
    public var clients: [Client]
    /// Rows per exported table, by table name.
    public var rows: [String: Int64]
    public var positions: [String: Checkpoint]
    public init(clients: [Client], rows: [String: Int64], positions: [String: Checkpoint]) {
        self.clients = clients
        self.rows = rows
        self.positions = positions
    }
}

/// A read-only view of the ledger at one moment, for copying it elsewhere. Valid only inside
/// `Ledger.withExportSnapshot`.
public final class LedgerExport {
    private let store: Store

    init(store: Store) { self.store = store }

    /// Every table `store copy` moves, referenced tables first. Holds are not here: a hold is a call in
    /// progress on this host, which a copy taken with the agent stopped has none of.
    public static let tables: [ExportTable] = [
        ExportTable("clients", order: "id", [
            ("id", .int), ("username", .text), ("email", .text), ("first_name", .text), ("last_name", .text),
            ("phone", .text), ("country", .text), ("state", .text), ("city", .text), ("zip", .text),
            ("address1", .text), ("address2", .text), ("company", .text), ("role", .text), ("password_hash", .text),
            ("status", .text), ("plan", .text), ("assigned", .int), ("used", .int), ("level", .text),
            ("created_at", .int), ("updated_at", .int), ("disabled_at", .int),
        ]),
        ExportTable("accounts", order: "code", [("code", .text), ("client_id", .int)]),
        ExportTable("recharges", order: "id", [
            ("id", .int), ("client_id", .int), ("amount", .int), ("idempotency_key", .text), ("at", .int),
        ]),
        ExportTable("adjustments", order: "id", [
            ("id", .int), ("client_id", .int), ("amount", .int), ("reason", .text), ("idempotency_key", .text), ("at", .int),
        ]),
        ExportTable("pricings", order: "id", [("id", .int), ("text", .text)]),
        ExportTable("usage", order: "id", [
            ("id", .int), ("identity", .text), ("start_key", .int), ("client_id", .int), ("account", .text),
            ("source", .text), ("position", .int), ("line", .int), ("destination", .text), ("prefix", .text),
            ("billsec", .int), ("charged_seconds", .int), ("cost", .int), ("started_at", .int), ("charged_at", .int),
            ("answered_at", .int), ("priced_by", .text), ("pricing", .int),
        ]),
        ExportTable("usage_adjustments", order: "id", [
            ("id", .int), ("usage_id", .int), ("client_id", .int), ("old_cost", .int), ("new_cost", .int),
            ("priced_by", .text), ("at", .int),
        ]),
        ExportTable("quarantine", order: "id", [
            ("id", .int), ("key", .text), ("source", .text), ("position", .int), ("line", .int), ("reason", .text),
            ("message", .text), ("raw", .blob), ("at", .int), ("start_key", .int), ("length", .int), ("sha256", .text),
        ]),
        ExportTable("source_positions", order: "name", [
            ("name", .text), ("device", .int), ("inode", .int), ("head_hash", .text), ("offset", .int),
            ("tail_hash", .text), ("line", .int), ("updated_at", .int),
        ]),
        ExportTable("source_given_up", order: "source", [
            ("source", .text), ("files", .int), ("bytes", .int), ("last_at", .int),
        ]),
        ExportTable("outbox", order: "id", [
            ("id", .int), ("event_id", .text), ("type", .text), ("client_id", .int), ("username", .text), ("body", .text),
            ("created_at", .int), ("attempts", .int), ("next_attempt_at", .int), ("dead", .int),
        ]),
        ExportTable("balance_dirty", order: "client_id", [("client_id", .int), ("since", .int)]),
        ExportTable("balance_sent", order: "client_id", [("client_id", .int), ("at", .int)]),
        ExportTable("endpoint_state", order: "endpoint", [
            ("endpoint", .text), ("cursor", .int), ("paused_at", .int), ("pause_reason", .text), ("delivered", .int),
            ("last_delivered_at", .int),
        ]),
        ExportTable("deliveries", order: "event, endpoint", [
            ("event", .int), ("endpoint", .text), ("client_id", .int), ("status", .text), ("attempts", .int),
            ("next_attempt_ms", .int), ("age_from_ms", .int), ("last_error", .text), ("updated_ms", .int),
        ]),
    ]

    public static func table(_ name: String) -> ExportTable? { tables.first { $0.name == name } }

    private static func quoted(_ column: String) -> String { "\"" + column + "\"" }

    /// Calls `each` with the rows of `table` in chunks of up to `chunkRows`, in `table`'s order. One
    /// statement walks the table, so memory is one chunk whatever the table's size.
    public func rows(of table: ExportTable, chunkRows: Int, _ each: (ExportChunk) throws(LedgerError) -> Void) throws(LedgerError) {
        let n = max(1, chunkRows)
        let sql = "SELECT \(table.columns.map { Self.quoted($0.name) }.joined(separator: ", ")) FROM \(table.name) ORDER BY \(table.order)"
        let s = try store.statement(sql, "reading \(table.name) for a copy")
        defer { s.reset() }
        func empty() -> [ExportChunk.Values] {
            table.columns.map { c in
                switch c.kind {
                case .int: var a: [Int64?] = []; a.reserveCapacity(n); return .int(a)
                case .text: var a: [String?] = []; a.reserveCapacity(n); return .text(a)
                case .blob: var a: [[UInt8]] = []; a.reserveCapacity(n); return .blob(a)
                }
            }
        }
        var chunk = ExportChunk(table: table, values: empty(), count: 0)
        while try s.step() {
            for k in chunk.values.indices {
                let col = Int32(k)
                // Reassigned in place so the arrays are not copied on each append.
                switch chunk.values[k] {
                case .int(var a):
                    chunk.values[k] = .int([])
                    a.append(s.optionalInt64(col))
                    chunk.values[k] = .int(a)
                case .text(var a):
                    chunk.values[k] = .text([])
                    a.append(s.isNull(col) ? nil : s.text(col))
                    chunk.values[k] = .text(a)
                case .blob(var a):
                    chunk.values[k] = .blob([])
                    a.append(s.blob(col))
                    chunk.values[k] = .blob(a)
                }
            }
            chunk.count += 1
            if chunk.count == n {
                try each(chunk)
                chunk = ExportChunk(table: table, values: empty(), count: 0)
            }
        }
        if chunk.count > 0 { try each(chunk) }
    }

    /// The highest id each AUTOINCREMENT table ever handed out (a purged client's id included), by table.
    public func sequences() throws(LedgerError) -> [String: Int64] {
        let s = try store.statement("SELECT name, seq FROM sqlite_sequence", "reading the id sequences")
        defer { s.reset() }
        var out: [String: Int64] = [:]
        while try s.step() { out[s.text(0)] = s.int64(1) }
        return out
    }

    /// The totals a copy must reproduce, from SQL of their own rather than from the rows read out.
    public func totals() throws(LedgerError) -> ExportTotals {
        var clients: [ExportTotals.Client] = []
        let c = try store.statement("""
            SELECT c.id, c.username, c.assigned, c.used,
                (SELECT count(*) FROM usage u WHERE u.client_id = c.id),
                (SELECT coalesce(sum(u.cost), 0) FROM usage u WHERE u.client_id = c.id),
                (SELECT count(*) FROM recharges r WHERE r.client_id = c.id)
            FROM clients c ORDER BY c.id
            """, "totalling clients for a copy")
        defer { c.reset() }
        while try c.step() {
            clients.append(ExportTotals.Client(id: c.int64(0), username: c.text(1), assigned: c.int64(2), used: c.int64(3),
                                               usageRows: c.int64(4), usageCost: c.int64(5), recharges: c.int64(6)))
        }
        var rows: [String: Int64] = [:]
        for t in Self.tables {
            rows[t.name] = try store.scalarInt("SELECT count(*) FROM \(t.name)", purpose: "counting \(t.name) for a copy")
        }
        var positions: [String: Checkpoint] = [:]
        let p = try store.statement("""
            SELECT name, device, inode, head_hash, "offset", tail_hash, line FROM source_positions
            """, "reading positions for a copy")
        defer { p.reset() }
        while try p.step() {
            positions[p.text(0)] = Checkpoint(device: UInt64(bitPattern: p.int64(1)), inode: UInt64(bitPattern: p.int64(2)),
                                              headHash: p.text(3), offset: p.int64(4), tailHash: p.text(5), line: p.int64(6))
        }
        return ExportTotals(clients: clients, rows: rows, positions: positions)
    }
}

extension Ledger {
    /// Runs `body` with a view of the ledger as of one moment: one read transaction (BEGIN DEFERRED, which
    /// takes no write lock in WAL mode) around every read `body` makes, so rows and totals agree even if
    /// another process commits meanwhile. Nothing is written.
    public func withExportSnapshot<T>(_ body: (LedgerExport) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try locked { () throws(LedgerError) -> T in
            try store.execute("BEGIN DEFERRED", purpose: "starting a read transaction for a copy")
            defer { _ = try? store.execute("COMMIT", purpose: "ending the read transaction of a copy") }
            // A deferred transaction takes its snapshot at the first read: read now, so `body` sees one moment.
            _ = try store.scalarInt("SELECT count(*) FROM sqlite_master", purpose: "taking the snapshot of a copy")
            return try body(LedgerExport(store: store))
        }
    }
}

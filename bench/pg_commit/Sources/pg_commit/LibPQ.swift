// The libpq C API: one synchronous connection, PQexecParams with array parameters, and COPY.
import CLibPQ
import Foundation

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Where to connect. The password comes from a file and is never printed.
struct Target: Sendable {
    var host: String
    var port: Int
    var user: String
    var database: String
    var password: String?
}

/// A libpq result, cleared when it goes.
final class PQResult {
    let res: OpaquePointer
    init(_ res: OpaquePointer) { self.res = res }
    deinit { PQclear(res) }
    var rows: Int { Int(PQntuples(res)) }
    var affected: Int { Int(String(cString: PQcmdTuples(res))) ?? -1 }
    /// A binary int8 value.
    func int64(_ row: Int, _ col: Int) -> Int64 {
        let p = UnsafeRawPointer(PQgetvalue(res, Int32(row), Int32(col))!)
        return Int64(bigEndian: p.loadUnaligned(as: Int64.self))
    }
    /// A value in text format.
    func text(_ row: Int, _ col: Int) -> String {
        String(cString: PQgetvalue(res, Int32(row), Int32(col)))
    }
}

final class PQConnection {
    let conn: OpaquePointer

    init(_ t: Target, database: String? = nil) throws {
        // client_min_messages: no NOTICE lines (DROP DATABASE IF EXISTS) on stderr.
        var keys = ["host", "port", "user", "dbname", "sslmode", "application_name", "options"]
        var values = [t.host, String(t.port), t.user, database ?? t.database, "disable", "pg_commit",
                      "-c client_min_messages=warning"]
        if let pw = t.password { keys.append("password"); values.append(pw) }
        let ck = keys.map { strdup($0) }, cv = values.map { strdup($0) }
        defer { (ck + cv).forEach { free($0) } }
        let kp: [UnsafePointer<CChar>?] = ck.map { UnsafePointer($0) } + [nil]
        let vp: [UnsafePointer<CChar>?] = cv.map { UnsafePointer($0) } + [nil]
        guard let c = PQconnectdbParams(kp, vp, 0) else { throw BenchError("libpq: out of memory") }
        // Checked before conn is set: once every property is set, a throw runs deinit (PQfinish) too.
        guard PQstatus(c) == CONNECTION_OK else {
            let msg = String(cString: PQerrorMessage(c)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(c)
            throw BenchError("libpq: cannot connect to \(t.host):\(t.port) as \(t.user): \(msg)")
        }
        conn = c
    }
    deinit { PQfinish(conn) }

    private func check(_ r: OpaquePointer?, _ what: String) throws -> PQResult {
        guard let r else { throw BenchError("libpq: \(what): \(String(cString: PQerrorMessage(conn)))") }
        let res = PQResult(r)
        let st = PQresultStatus(r)
        guard st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN else {
            let state = PQresultErrorField(r, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? "?"
            throw BenchError("libpq: \(what): [\(state)] \(String(cString: PQresultErrorMessage(r)))")
        }
        return res
    }

    @discardableResult
    func exec(_ sql: String) throws -> PQResult {
        try check(PQexec(conn, sql), String(sql.prefix(40)))
    }

    /// PQexecParams with every parameter's bytes laid end to end in one buffer.
    func execParams(_ sql: String, _ params: ParamBuffer, binaryResult: Bool) throws -> PQResult {
        let n = params.offsets.count
        return try params.bytes.withUnsafeBufferPointer { buf in
            let base = UnsafeRawPointer(buf.baseAddress!)
            let values: [UnsafePointer<CChar>?] = params.offsets.map {
                base.advanced(by: $0).assumingMemoryBound(to: CChar.self)
            }
            let r = PQexecParams(conn, sql, Int32(n), params.types, values, params.lengths, params.formats,
                                 binaryResult ? 1 : 0)
            return try check(r, String(sql.prefix(40)))
        }
    }

    /// COPY ... FROM STDIN with the given data.
    func copyIn(_ sql: String, _ data: [UInt8]) throws {
        _ = try exec(sql)
        let chunk = 1 << 16
        var at = 0
        try data.withUnsafeBufferPointer { buf in
            let base = UnsafeRawPointer(buf.baseAddress!)
            while at < data.count {
                let n = min(chunk, data.count - at)
                guard PQputCopyData(conn, base.advanced(by: at).assumingMemoryBound(to: CChar.self), Int32(n)) == 1 else {
                    throw BenchError("libpq: PQputCopyData: \(String(cString: PQerrorMessage(conn)))")
                }
                at += n
            }
        }
        guard PQputCopyEnd(conn, nil) == 1 else {
            throw BenchError("libpq: PQputCopyEnd: \(String(cString: PQerrorMessage(conn)))")
        }
        var failure: BenchError?
        while let r = PQgetResult(conn) {
            do { _ = try check(r, "COPY") } catch let e as BenchError { failure = e }
        }
        if let failure { throw failure }
    }
}

/// Parameters for PQexecParams: bytes end to end, with offsets, lengths, formats and type OIDs.
struct ParamBuffer {
    var bytes: [UInt8] = []
    var offsets: [Int] = []
    var lengths: [Int32] = []
    var formats: [Int32] = []
    var types: [Oid] = []

    static let int8OID: Oid = 20, textOID: Oid = 25, int8ArrayOID: Oid = 1016, textArrayOID: Oid = 1009

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    private mutating func be32(_ v: Int32) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }
    private mutating func be64(_ v: Int64) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }
    private mutating func begin() { offsets.append(bytes.count) }
    private mutating func end(format: Int32, type: Oid) {
        lengths.append(Int32(bytes.count - offsets.last!))
        formats.append(format)
        types.append(type)
    }
    private mutating func arrayHeader(count: Int, hasNull: Bool, element: Oid) {
        be32(1); be32(hasNull ? 1 : 0); be32(Int32(bitPattern: element)); be32(Int32(count)); be32(1)
    }

    // Binary arrays (the wire format of array_send).
    mutating func binary(_ xs: [String]) {
        begin()
        arrayHeader(count: xs.count, hasNull: false, element: Self.textOID)
        for var s in xs {
            s.withUTF8 { u in be32(Int32(u.count)); bytes.append(contentsOf: u) }
        }
        end(format: 1, type: Self.textArrayOID)
    }
    mutating func binary(_ xs: [Int64]) {
        begin()
        arrayHeader(count: xs.count, hasNull: false, element: Self.int8OID)
        for x in xs { be32(8); be64(x) }
        end(format: 1, type: Self.int8ArrayOID)
    }
    mutating func binary(_ xs: [Int64?]) {
        begin()
        arrayHeader(count: xs.count, hasNull: xs.contains(nil), element: Self.int8OID)
        for x in xs {
            if let x { be32(8); be64(x) } else { be32(-1) }
        }
        end(format: 1, type: Self.int8ArrayOID)
    }

    // Text array literals, {"a","b"} and {1,NULL,3}, NUL-terminated for libpq.
    mutating func text(_ xs: [String]) {
        begin()
        bytes.append(UInt8(ascii: "{"))
        for (i, var s) in xs.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(UInt8(ascii: "\""))
            s.withUTF8 { u in
                for c in u {
                    if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { bytes.append(UInt8(ascii: "\\")) }
                    bytes.append(c)
                }
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        end(format: 0, type: Self.textArrayOID)
        bytes.append(0)
    }
    mutating func text(_ xs: [Int64]) { text(xs.map { Optional($0) }) }
    mutating func text(_ xs: [Int64?]) {
        begin()
        bytes.append(UInt8(ascii: "{"))
        for (i, x) in xs.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            if let x { bytes.append(contentsOf: String(x).utf8) } else { bytes.append(contentsOf: "NULL".utf8) }
        }
        bytes.append(UInt8(ascii: "}"))
        end(format: 0, type: Self.int8ArrayOID)
        bytes.append(0)
    }
}

/// The statements of a batch, shared by every variant.
enum SQL {
    static let columnList = Workload.columns.joined(separator: ", ")
    static let arrayTypes = ["text", "text", "int8", "int8", "text", "text", "int8", "int8", "text", "text",
                             "int8", "int8", "int8", "int8", "int8", "int8", "int8"]
    /// All charges of the batch in one INSERT from bound arrays; repeats are skipped; the rows that went
    /// in come back.
    static let insertUnnest = """
        INSERT INTO usage (\(columnList))
        SELECT * FROM unnest(\(arrayTypes.enumerated().map { "$\($0.offset + 1)::\($0.element)[]" }.joined(separator: ", ")))
        ON CONFLICT DO NOTHING
        RETURNING id, client_id, cost
        """
    /// The staging table of the COPY variants; emptied by every commit.
    static let createStaging = """
        CREATE TEMP TABLE staging (node text, identity text, start_key int8, client_id int8, account text,
          source text, position int8, line int8, destination text, prefix text, billsec int8,
          charged_seconds int8, cost int8, started_at int8, charged_at int8, answered_at int8, pricing int8)
        ON COMMIT DELETE ROWS
        """
    static let copyStaging = "COPY staging (\(columnList)) FROM STDIN"
    static let insertFromStaging = """
        INSERT INTO usage (\(columnList)) SELECT \(columnList) FROM staging
        ON CONFLICT DO NOTHING
        RETURNING id, client_id, cost
        """
    /// The batch's clients, locked in id order (the CTE's ORDER BY ... FOR UPDATE), then charged.
    static let charge = """
        WITH d AS (SELECT * FROM unnest($1::int8[], $2::int8[]) AS d(id, delta)),
             locked AS (SELECT id FROM clients WHERE id IN (SELECT id FROM d) ORDER BY id FOR UPDATE)
        UPDATE clients SET used = clients.used + d.delta
        FROM d JOIN locked ON locked.id = d.id
        WHERE clients.id = d.id
        """
    static let schema = [
        """
        CREATE TABLE usage (id bigserial primary key, node text not null, identity text not null,
          start_key bigint not null, client_id bigint not null, account text not null, source text not null,
          position bigint not null, line bigint not null, destination text not null, prefix text not null,
          billsec bigint not null, charged_seconds bigint not null, cost bigint not null, started_at bigint,
          charged_at bigint not null, answered_at bigint, pricing bigint, unique (node, start_key, identity))
        """,
        "CREATE INDEX usage_client_moment ON usage (client_id, coalesce(answered_at, started_at))",
        "CREATE TABLE clients (id bigint primary key, used bigint not null)",
        "INSERT INTO clients SELECT g, 0 FROM generate_series(1, 100) AS g",
    ]
}

/// Sums the inserted rows' costs by client, in client id order.
func deltas(_ pairs: some Sequence<(Int64, Int64)>) -> (ids: [Int64], deltas: [Int64]) {
    var by: [Int64: Int64] = [:]
    for (c, cost) in pairs { by[c, default: 0] += cost }
    let ids = by.keys.sorted()
    return (ids, ids.map { by[$0]! })
}

/// COPY text format rows of a batch (tab-separated, \N for NULL).
func copyText(_ b: Batch) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(b.count * 200)
    func str(_ s: String) {
        var s = s
        s.withUTF8 { u in
            for c in u {
                switch c {
                case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
                case UInt8(ascii: "\t"): out.append(contentsOf: [92, UInt8(ascii: "t")])
                case UInt8(ascii: "\n"): out.append(contentsOf: [92, UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): out.append(contentsOf: [92, UInt8(ascii: "r")])
                default: out.append(c)
                }
            }
        }
    }
    func int(_ x: Int64?) {
        if let x { out.append(contentsOf: String(x).utf8) } else { out.append(contentsOf: [92, UInt8(ascii: "N")]) }
    }
    let tab = UInt8(ascii: "\t")
    for i in 0..<b.count {
        str(b.node[i]); out.append(tab); str(b.identity[i]); out.append(tab); int(b.startKey[i]); out.append(tab)
        int(b.clientID[i]); out.append(tab); str(b.account[i]); out.append(tab); str(b.source[i]); out.append(tab)
        int(b.position[i]); out.append(tab); int(b.line[i]); out.append(tab); str(b.destination[i]); out.append(tab)
        str(b.prefix[i]); out.append(tab); int(b.billsec[i]); out.append(tab); int(b.chargedSeconds[i]); out.append(tab)
        int(b.cost[i]); out.append(tab); int(b.startedAt[i]); out.append(tab); int(b.chargedAt[i]); out.append(tab)
        int(b.answeredAt[i]); out.append(tab); int(b.pricing[i]); out.append(UInt8(ascii: "\n"))
    }
    return out
}

/// The libpq variants: one connection, one transaction per batch.
final class LibPQCommitter {
    enum Mode: String { case binary, text, copy }
    let c: PQConnection
    let mode: Mode

    init(_ t: Target, database: String, mode: Mode) throws {
        c = try PQConnection(t, database: database)
        self.mode = mode
        if mode == .copy { try c.exec(SQL.createStaging) }
    }

    /// Commits one batch; returns the number of rows that went in.
    func commit(_ b: Batch) throws -> Int {
        try c.exec("BEGIN")
        do {
            let ins: PQResult
            switch mode {
            case .binary, .text:
                var p = ParamBuffer(capacity: b.count * 230)
                let bin = mode == .binary
                func add(_ xs: [String]) { if bin { p.binary(xs) } else { p.text(xs) } }
                func add(_ xs: [Int64]) { if bin { p.binary(xs) } else { p.text(xs) } }
                func add(_ xs: [Int64?]) { if bin { p.binary(xs) } else { p.text(xs) } }
                add(b.node); add(b.identity); add(b.startKey); add(b.clientID); add(b.account); add(b.source)
                add(b.position); add(b.line); add(b.destination); add(b.prefix); add(b.billsec)
                add(b.chargedSeconds); add(b.cost); add(b.startedAt); add(b.chargedAt); add(b.answeredAt)
                add(b.pricing)
                ins = try c.execParams(SQL.insertUnnest, p, binaryResult: true)
            case .copy:
                try c.copyIn(SQL.copyStaging, copyText(b))
                ins = try c.exec(SQL.insertFromStaging)   // text results: PQexec has no binary results
            }
            let n = ins.rows
            let binaryResult = mode != .copy
            let d = deltas((0..<n).lazy.map { i in
                binaryResult ? (ins.int64(i, 1), ins.int64(i, 2)) : (Int64(ins.text(i, 1))!, Int64(ins.text(i, 2))!)
            })
            var p = ParamBuffer(capacity: d.ids.count * 24 + 64)
            p.binary(d.ids); p.binary(d.deltas)
            let upd = try c.execParams(SQL.charge, p, binaryResult: true)
            guard upd.affected == d.ids.count else {
                throw BenchError("charged \(upd.affected) clients, expected \(d.ids.count)")
            }
            try c.exec("COMMIT")
            return n
        } catch {
            _ = try? c.exec("ROLLBACK")
            throw error
        }
    }
}

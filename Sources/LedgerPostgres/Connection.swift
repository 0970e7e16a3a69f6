import CLibPQ
import Foundation
import Ledger

/// SQLSTATEs the store acts on.
enum SQLState {
    static let deadlock = "40P01"
    static let serialization = "40001"
    static let uniqueViolation = "23505"
}

/// Parameters for `PQexecParams`, all in binary format: every value's bytes end to end in one buffer, so a
/// batch of 5,000 charges is 15 arrays and a few allocations rather than 75,000 strings.
struct PGParams {
    /// Starts with one byte so the buffer always has an address, even when every value is empty.
    private(set) var bytes: [UInt8] = [0]
    /// Where each value starts in `bytes`; nil is SQL NULL.
    private(set) var offsets: [Int?] = []
    private(set) var lengths: [Int32] = []
    private(set) var types: [Oid] = []

    static let int8OID: Oid = 20, textOID: Oid = 25, byteaOID: Oid = 17
    static let int8ArrayOID: Oid = 1016, textArrayOID: Oid = 1009, byteaArrayOID: Oid = 1001

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    var count: Int { offsets.count }

    private mutating func be32(_ v: Int32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    private mutating func be64(_ v: Int64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    private mutating func begin() { offsets.append(bytes.count) }
    private mutating func end(_ type: Oid, from start: Int) {
        // A value past 2 GiB is refused by the server anyway; the clamp only keeps this from trapping.
        lengths.append(Int32(clamping: bytes.count - start))
        types.append(type)
    }
    private mutating func null(_ type: Oid) {
        offsets.append(nil)
        lengths.append(0)
        types.append(type)
    }

    mutating func int8(_ v: Int64?) {
        guard let v else { return null(Self.int8OID) }
        let start = bytes.count
        begin(); be64(v); end(Self.int8OID, from: start)
    }

    mutating func text(_ v: String?) {
        guard var v else { return null(Self.textOID) }
        let start = bytes.count
        begin()
        v.withUTF8 { appendText($0) }
        end(Self.textOID, from: start)
    }

    /// PostgreSQL's text cannot hold a NUL byte (SQLSTATE 22021), and a CDR field may: each one is sent as
    /// U+FFFD instead, so a line with one is charged (always the same way, so a repeat is still a duplicate)
    /// rather than failing its batch on every retry and holding its source back.
    static let nulReplacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// The byte length `appendText` will write for `u`.
    private static func textLength(_ u: UnsafeBufferPointer<UInt8>) -> Int {
        var nuls = 0
        for b in u where b == 0 { nuls += 1 }
        return u.count + nuls * (nulReplacement.count - 1)
    }

    private mutating func appendText(_ u: UnsafeBufferPointer<UInt8>) {
        guard u.contains(0) else { return bytes.append(contentsOf: u) }
        for b in u {
            if b == 0 { bytes.append(contentsOf: Self.nulReplacement) } else { bytes.append(b) }
        }
    }

    // Arrays in array_send's wire format: dimensions, has-null flag, element type, then length-prefixed items.
    private mutating func arrayHeader(count: Int, hasNull: Bool, element: Oid) {
        be32(1); be32(hasNull ? 1 : 0); be32(Int32(bitPattern: element)); be32(Int32(clamping: count)); be32(1)
    }

    mutating func int8Array(_ xs: [Int64]) { int8Array(xs.map { Optional($0) }) }

    mutating func int8Array(_ xs: [Int64?]) {
        let start = bytes.count
        begin()
        arrayHeader(count: xs.count, hasNull: xs.contains(nil), element: Self.int8OID)
        for x in xs {
            if let x { be32(8); be64(x) } else { be32(-1) }
        }
        end(Self.int8ArrayOID, from: start)
    }

    mutating func textArray(_ xs: [String?]) {
        let start = bytes.count
        begin()
        arrayHeader(count: xs.count, hasNull: xs.contains(nil), element: Self.textOID)
        for x in xs {
            guard var s = x else { be32(-1); continue }
            s.withUTF8 { u in be32(Int32(clamping: Self.textLength(u))); appendText(u) }
        }
        end(Self.textArrayOID, from: start)
    }

    mutating func textArray(_ xs: [String]) { textArray(xs.map { Optional($0) }) }

    mutating func byteaArray(_ xs: [[UInt8]]) {
        let start = bytes.count
        begin()
        arrayHeader(count: xs.count, hasNull: false, element: Self.byteaOID)
        for x in xs { be32(Int32(clamping: x.count)); bytes.append(contentsOf: x) }
        end(Self.byteaArrayOID, from: start)
    }
}

/// A libpq result in binary format, cleared when it goes.
final class PGResult {
    private let res: OpaquePointer
    init(_ res: OpaquePointer) { self.res = res }
    deinit { PQclear(res) }

    var rows: Int { Int(PQntuples(res)) }
    /// Rows an INSERT, UPDATE or DELETE touched.
    var affected: Int { Int(String(cString: PQcmdTuples(res))) ?? 0 }

    func isNull(_ row: Int, _ col: Int) -> Bool { PQgetisnull(res, Int32(row), Int32(col)) != 0 }

    private func raw(_ row: Int, _ col: Int) -> UnsafeRawBufferPointer {
        let n = Int(PQgetlength(res, Int32(row), Int32(col)))
        guard let p = PQgetvalue(res, Int32(row), Int32(col)) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: n)
    }

    /// A binary integer of any width (int2, int4, int8); 0 for NULL.
    func int64(_ row: Int, _ col: Int) -> Int64 {
        let b = raw(row, col)
        switch b.count {
        case 8: return Int64(bigEndian: b.loadUnaligned(as: Int64.self))
        case 4: return Int64(Int32(bigEndian: b.loadUnaligned(as: Int32.self)))
        case 2: return Int64(Int16(bigEndian: b.loadUnaligned(as: Int16.self)))
        default: return 0
        }
    }

    func optionalInt64(_ row: Int, _ col: Int) -> Int64? { isNull(row, col) ? nil : int64(row, col) }

    func text(_ row: Int, _ col: Int) -> String { String(decoding: raw(row, col), as: UTF8.self) }

    func optionalText(_ row: Int, _ col: Int) -> String? { isNull(row, col) ? nil : text(row, col) }

    func bytes(_ row: Int, _ col: Int) -> [UInt8] { Array(raw(row, col)) }
}

/// One libpq connection. Not thread-safe: its owner serialises the calls.
package final class PGConnection {
    private let conn: OpaquePointer
    /// Scrubbed from every message this connection reports, should the server or libpq ever echo it.
    private let password: String?

    /// Connects with the URL expanded as `dbname` and the password as its own keyword, so the password
    /// never goes into a string that could be logged.
    package init(url: String, password: String?) throws(LedgerError) {
        self.password = password
        // Defaults first: the URL's own settings come later and override them (and `password` last).
        var keys = ["connect_timeout", "application_name", "client_encoding", "dbname"]
        var values = ["10", "creditmeter", "UTF8", url]
        if let password { keys.append("password"); values.append(password) }
        let ck = keys.map { strdup($0) }, cv = values.map { strdup($0) }
        defer { (ck + cv).forEach { free($0) } }
        let kp: [UnsafePointer<CChar>?] = ck.map { $0.map { UnsafePointer($0) } } + [nil]
        let vp: [UnsafePointer<CChar>?] = cv.map { $0.map { UnsafePointer($0) } } + [nil]
        guard let c = PQconnectdbParams(kp, vp, 1) else { throw .unreachable("libpq could not allocate a connection") }
        guard PQstatus(c) == CONNECTION_OK else {
            let msg = Self.scrub(String(cString: PQerrorMessage(c)), password)
            PQfinish(c)
            throw .unreachable(msg)
        }
        // NOTICEs and WARNINGs (CREATE TABLE IF NOT EXISTS on an existing table, ROLLBACK outside a
        // transaction) would go to stderr, in the middle of the agent's log lines.
        PQsetNoticeProcessor(c, { _, _ in }, nil)
        conn = c
    }

    deinit { PQfinish(conn) }

    static func scrub(_ message: String, _ password: String?) -> String {
        // One line: libpq indents its second line with a tab ("Connection refused\n\tIs the server running").
        var m = message.split(whereSeparator: { $0 == "\n" || $0 == "\t" || $0 == "\r" })
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
        if let password, !password.isEmpty { m = m.replacingOccurrences(of: password, with: "***") }
        return m
    }

    private var errorMessage: String { Self.scrub(String(cString: PQerrorMessage(conn)), password) }

    var isConnected: Bool { PQstatus(conn) == CONNECTION_OK }

    /// How many times the connection was made again: a new session has lost its LISTENs.
    private(set) var resets = 0

    /// Reconnects a connection the server or network dropped; `.unreachable` while it cannot.
    func ensureConnected() throws(LedgerError) {
        guard !isConnected else { return }
        PQreset(conn)
        guard isConnected else { throw .unreachable(errorMessage) }
        resets += 1
    }

    /// Takes the notifications (NOTIFY) the server sent since the last call, without waiting for any;
    /// returns how many. A dropped connection is `.unreachable`.
    func drainNotifications() throws(LedgerError) -> Int {
        if PQconsumeInput(conn) == 0 || !isConnected {
            throw .unreachable("lost the connection while reading notifications: \(errorMessage)")
        }
        var n = 0
        while let note = PQnotifies(conn) {
            PQfreemem(note)
            n += 1
        }
        return n
    }

    private func check(_ r: OpaquePointer?, _ context: String) throws(LedgerError) -> PGResult {
        guard let r else {
            if !isConnected { throw .unreachable("lost the connection while \(context): \(errorMessage)") }
            throw .postgres(sqlstate: "", message: errorMessage, context: context)
        }
        let res = PGResult(r)
        let st = PQresultStatus(r)
        guard st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK else {
            let state = PQresultErrorField(r, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            let primary = PQresultErrorField(r, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            let message = Self.scrub(primary ?? String(cString: PQresultErrorMessage(r)), password)
            // The server went away (restart, failover, terminated backend): whatever the SQLSTATE, the caller
            // has to wait for the store, and the next call reconnects.
            if !isConnected { throw .unreachable("lost the connection while \(context): \(message)") }
            throw .postgres(sqlstate: state, message: message, context: context)
        }
        return res
    }

    /// One or more statements without parameters (migrations, transaction control).
    package func execute(_ sql: String, _ context: String) throws(LedgerError) {
        _ = try check(PQexec(conn, sql), context)
    }

    /// The first column of the first row of a statement without parameters, as an integer (tests, checks).
    package func queryInt(_ sql: String, _ context: String) throws(LedgerError) -> Int64? {
        let r = try query(sql, PGParams(), context)
        return r.rows > 0 && !r.isNull(0, 0) ? r.int64(0, 0) : nil
    }

    @discardableResult
    func query(_ sql: String, _ context: String) throws(LedgerError) -> PGResult {
        try query(sql, PGParams(), context)
    }

    /// One statement with binary parameters and binary results.
    @discardableResult
    func query(_ sql: String, _ params: PGParams, _ context: String) throws(LedgerError) -> PGResult {
        let r: OpaquePointer? = withValues(params) { values, formats in
            PQexecParams(conn, sql, Int32(params.count), params.types, values, params.lengths, formats, 1)
        }
        return try check(r, context)
    }

    private func withValues<T>(_ params: PGParams,
                               _ body: ([UnsafePointer<CChar>?], [Int32]) -> T) -> T {
        params.bytes.withUnsafeBufferPointer { buf in
            // Never nil: the buffer starts with one byte.
            let base = UnsafeRawPointer(buf.baseAddress)
            let values: [UnsafePointer<CChar>?] = params.offsets.map { offset in
                offset.flatMap { base?.advanced(by: $0).assumingMemoryBound(to: CChar.self) }
            }
            return body(values, [Int32](repeating: 1, count: params.count))
        }
    }

    /// Sends every statement before reading any answer (libpq's pipeline mode): one round trip to the
    /// server however many there are. They run in order, each as if sent alone; after a failure the rest
    /// are skipped by the server, and the first error is thrown once every answer has been read.
    func pipeline(_ statements: [(sql: String, params: PGParams, context: String)]) throws(LedgerError) -> [PGResult] {
        guard PQenterPipelineMode(conn) == 1 else {
            throw .postgres(sqlstate: "", message: errorMessage, context: "entering pipeline mode")
        }
        defer { PQexitPipelineMode(conn) }
        for s in statements {
            let sent = withValues(s.params) { values, formats in
                PQsendQueryParams(conn, s.sql, Int32(s.params.count), s.params.types, values, s.params.lengths, formats, 1)
            }
            guard sent == 1 else { throw lost(s.context) }
        }
        guard PQpipelineSync(conn) == 1 else { throw lost("sending a pipeline") }
        var results: [PGResult] = []
        var failure: LedgerError?
        for s in statements {
            // Each statement's answer, then a NULL that ends it.
            guard let r = PQgetResult(conn) else { throw lost(s.context) }
            if PQresultStatus(r) == PGRES_PIPELINE_ABORTED {
                PQclear(r)
            } else {
                do { results.append(try check(r, s.context)) } catch { failure = failure ?? error }
            }
            while let extra = PQgetResult(conn) { PQclear(extra) }
        }
        // The sync point's own result.
        guard let sync = PQgetResult(conn) else { throw lost("reading a pipeline's end") }
        PQclear(sync)
        if let failure { throw failure }
        return results
    }

    private func lost(_ context: String) -> LedgerError {
        isConnected ? .postgres(sqlstate: "", message: errorMessage, context: context)
            : .unreachable("lost the connection while \(context): \(errorMessage)")
    }
}

import MeterCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One row of a rate deck; amounts in µcr, increments in seconds.
public struct RateRow: Sendable, Equatable {
    /// Normalised prefix: one leading `+` removed, and the catch-all `*` stored as "".
    public var prefix: String
    public var ratePerMinute: Int64
    public var connectFee: Int64
    public var initialIncrement: Int64
    public var subsequentIncrement: Int64
    public var description: String

    public init(prefix: String, ratePerMinute: Int64, connectFee: Int64 = 0,
                initialIncrement: Int64 = 1, subsequentIncrement: Int64 = 1, description: String = "") {
        self.prefix = prefix
        self.ratePerMinute = ratePerMinute
        self.connectFee = connectFee
        self.initialIncrement = initialIncrement
        self.subsequentIncrement = subsequentIncrement
        self.description = description
    }

    /// True for the row that matches every destination (`*` or empty prefix).
    public var isCatchAll: Bool { prefix.isEmpty || prefix == "*" }
}

/// A bad rate deck: the file, the 1-based line (0 when the whole file is at fault) and the column.
public struct RateDeckError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var line: Int
    public var column: String
    public var message: String

    public init(file: String, line: Int, column: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `rates.csv:14: column rate_per_minute: has more than 6 fractional digits`.
    public var description: String {
        var out = file
        if line > 0 { out += ":\(line)" }
        out += ": "
        if !column.isEmpty { out += "column \(column): " }
        return out + message
    }
}

/// A rate plan's rows with longest-prefix lookup.
///
/// Prefixes are byte strings: digits are the norm, but any printable ASCII except space, `,` and
/// `"` is allowed, so that destinations that are not E.164 numbers (`sip:3500@host`, `*97`,
/// `s`) can be rated by plain prefix too. One leading `+` is removed from a prefix, as it is from a
/// destination, so `+44` and `44` are the same prefix (and a duplicate if both are present).
/// `*` alone, or an empty prefix, is the catch-all; `*97` is an ordinary prefix.
///
/// Lookup: every prefix is in a hash table keyed by its bytes. The longest prefix of a destination
/// `d` is found by trying `d`'s own prefixes from the longest a key can have down to the empty one,
/// hashing them in one pass over `d`: at most `maxKeyLength + 1` probes, with no comparison of
/// bytes except on a hash hit.
public struct RateDeck: Sendable {
    /// Rows in bytewise prefix order.
    public let rows: [RateRow]
    /// All prefixes' bytes back to back; key k is `keyBytes[keyStart[k] ..< keyStart[k+1]]`.
    private let keyBytes: [UInt8]
    private let keyStart: [Int]
    /// Open addressing: row index + 1 per slot, 0 for empty; the count is a power of two at least
    /// twice the rows.
    private let slots: [Int32]
    private let maxKeyLength: Int

    public var count: Int { rows.count }

    /// Builds a deck from rows; a duplicate prefix (after normalisation) is an error naming the
    /// 1-based position of the second row.
    public init(rows: [RateRow]) throws(RateDeckError) {
        let entries = rows.enumerated().map { (n, row) in
            Entry(key: Array(Self.normalize(row.prefix).utf8), row: row, line: n + 1)
        }
        try self.init(entries: entries, file: "<rows>", lineWord: "row")
    }

    struct Entry {
        var key: [UInt8]
        var row: RateRow
        var line: Int
    }

    init(entries input: [Entry], file: String, lineWord: String) throws(RateDeckError) {
        var entries = input
        for k in entries.indices { entries[k].row.prefix = String(decoding: entries[k].key, as: UTF8.self) }
        // Ties keep file order so a duplicate is reported at its later line.
        entries.sort { a, b in
            let c = Self.compare(a.key, b.key)
            return c != 0 ? c < 0 : a.line < b.line
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.reduce(0) { $0 + $1.key.count })
        var starts: [Int] = [0]
        starts.reserveCapacity(entries.count + 1)
        for (k, e) in entries.enumerated() {
            if k > 0, Self.compare(entries[k - 1].key, e.key) == 0 {
                let shown = e.key.isEmpty ? "* (catch-all)" : "\"\(e.row.prefix)\""
                throw RateDeckError(file: file, line: e.line, column: "prefix",
                                    message: "duplicate prefix \(shown) (first on \(lineWord) \(entries[k - 1].line))")
            }
            bytes.append(contentsOf: e.key)
            starts.append(bytes.count)
        }
        var size = 16
        while size < entries.count * 2 { size *= 2 }
        var slots = [Int32](repeating: 0, count: size)
        for (k, e) in entries.enumerated() {
            var s = Self.finish(e.key.reduce(Self.hashSeed) { Self.hash($0, $1) }) & (size - 1)
            while slots[s] != 0 { s = (s + 1) & (size - 1) }
            slots[s] = Int32(k + 1)
        }
        self.rows = entries.map(\.row)
        self.keyBytes = bytes
        self.keyStart = starts
        self.slots = slots
        self.maxKeyLength = entries.reduce(0) { max($0, $1.key.count) }
    }

    /// The row whose prefix is the longest prefix of `destination` after removing one leading `+`;
    /// nil when nothing matches and there is no catch-all.
    public func match(_ destination: some StringProtocol) -> RateRow? {
        if let r = destination.utf8.withContiguousStorageIfAvailable({ matchIndex(bytes: $0) }) {
            return r.map { rows[$0] }
        }
        let copy = Array(destination.utf8)
        return copy.withUnsafeBufferPointer { matchIndex(bytes: $0) }.map { rows[$0] }
    }

    /// Byte-level lookup for the ingest hot path, where CDR fields are raw bytes.
    public func match(bytes destination: UnsafeBufferPointer<UInt8>) -> RateRow? {
        matchIndex(bytes: destination).map { rows[$0] }
    }

    func matchIndex(bytes raw: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !rows.isEmpty else { return nil }
        var d = raw
        if let first = d.first, first == UInt8(ascii: "+") {
            d = UnsafeBufferPointer(rebasing: d[1...])
        }
        let longest = min(d.count, maxKeyLength)
        // hashes[n] is the running hash of d's first n bytes; at most one small stack block per lookup.
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: longest + 1) { hashes -> Int? in
            var h = Self.hashSeed
            hashes[0] = h
            for n in 0..<longest {
                h = Self.hash(h, d[n])
                hashes[n + 1] = h
            }
            return keyBytes.withUnsafeBufferPointer { keys -> Int? in
                slots.withUnsafeBufferPointer { table -> Int? in
                    let mask = table.count - 1
                    for n in stride(from: longest, through: 0, by: -1) {
                        var s = Self.finish(hashes[n]) & mask
                        while true {
                            let k = Int(table[s]) - 1
                            if k < 0 { break }
                            let key = UnsafeBufferPointer(rebasing: keys[keyStart[k] ..< keyStart[k + 1]])
                            if key.count == n, Self.isPrefix(key, of: d) { return k }
                            s = (s + 1) & mask
                        }
                    }
                    return nil
                }
            }
        }
    }

    // FNV-1a over the key's bytes, finished with a shift so the low bits used as the slot mix in the high ones.
    private static let hashSeed: UInt64 = 0xcbf2_9ce4_8422_2325

    @inline(__always)
    private static func hash(_ h: UInt64, _ byte: UInt8) -> UInt64 { (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }

    @inline(__always)
    private static func finish(_ h: UInt64) -> Int { Int(truncatingIfNeeded: h ^ (h >> 29)) }

    static func normalize(_ prefix: some StringProtocol) -> String {
        var p = Substring(prefix)
        if p == "*" { return "" }
        if p.first == "+" { p = p.dropFirst() }
        return String(p)
    }

    // Concrete over raw buffers (memcmp) because unspecialised generic byte loops are slow in
    // debug builds, and sorting a 100k-row deck compares keys a couple of million times.
    static func compare(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
        let n = min(a.count, b.count)
        if n > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let c = memcmp(pa, pb, n)
            if c != 0 { return c < 0 ? -1 : 1 }
        }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }

    static func compare(_ a: [UInt8], _ b: [UInt8]) -> Int {
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in compare(pa, pb) } }
    }

    static func isPrefix(_ p: UnsafeBufferPointer<UInt8>, of d: UnsafeBufferPointer<UInt8>) -> Bool {
        guard p.count <= d.count else { return false }
        guard p.count > 0, let pp = p.baseAddress, let pd = d.baseAddress else { return true }
        return memcmp(pp, pd, p.count) == 0
    }
}

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
    public var ratePerMinute: Int64 { didSet { rateText = Money.format(ratePerMinute) } }
    public var connectFee: Int64 { didSet { feeText = Money.format(connectFee) } }
    /// The amounts as decimal strings, formatted once: every charge's `pricedBy` shows them.
    public private(set) var rateText: String
    public private(set) var feeText: String
    public var initialIncrement: Int64
    public var subsequentIncrement: Int64
    public var description: String
    /// When the row applies (always, for a deck without the window and date columns).
    public var window: RateWindow
    /// The row's 1-based line in its deck file (its position for a deck built from rows).
    public var line: Int

    public init(prefix: String, ratePerMinute: Int64, connectFee: Int64 = 0,
                initialIncrement: Int64 = 1, subsequentIncrement: Int64 = 1, description: String = "",
                window: RateWindow = .always, line: Int = 0) {
        self.window = window
        self.line = line
        self.prefix = prefix
        self.ratePerMinute = ratePerMinute
        self.connectFee = connectFee
        self.rateText = Money.format(ratePerMinute)
        self.feeText = Money.format(connectFee)
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

/// A rate plan's rows with longest-prefix lookup, and when each row applies.
///
/// Prefixes are byte strings: digits are the norm, but any printable ASCII except space, `,` and
/// `"` is allowed, so that destinations that are not E.164 numbers (`sip:3500@host`, `*97`,
/// `s`) can be rated by plain prefix too. One leading `+` is removed from a prefix, as it is from a
/// destination, so `+44` and `44` are the same prefix (and a duplicate if both are present).
/// `*` alone, or an empty prefix, is the catch-all; `*97` is an ordinary prefix.
///
/// Lookup: every distinct prefix is in a hash table keyed by its bytes, pointing at its group of rows
/// (one, or several with disjoint windows and dates). The longest prefix of a destination `d` is found by
/// trying `d`'s own prefixes from the longest a key can have down to the empty one, hashing them in one
/// pass over `d`: at most `maxKeyLength + 1` probes, with no comparison of bytes except on a hash hit.
/// A timed lookup also checks the group's rows against the moment, so it costs O(prefix length × rows
/// of one prefix), and rows of one prefix are few (a few windows, a few price lists).
public struct RateDeck: Sendable {
    /// Rows in bytewise prefix order, rows of one prefix in file order.
    public let rows: [RateRow]
    /// Group g (one distinct prefix) is `rows[groupStart[g] ..< groupStart[g + 1]]`.
    let groupStart: [Int]
    /// All distinct prefixes' bytes back to back; group g's key is `keyBytes[keyStart[g] ..< keyStart[g+1]]`.
    private let keyBytes: [UInt8]
    private let keyStart: [Int]
    /// Open addressing: group index + 1 per slot, 0 for empty; the count is a power of two at least
    /// twice the groups.
    private let slots: [Int32]
    let maxKeyLength: Int
    /// `[[plan]] timezone`: the zone windows and dates are read in.
    public let zone: ZoneTable
    /// `[[plan]] split`: a call crossing a window boundary is priced in parts.
    public let split: Bool
    /// Whether any row has a window or a date; without, the moment of a call never matters.
    public let isTimed: Bool

    public var count: Int { rows.count }

    /// Builds a deck from rows; a duplicate prefix (after normalisation) is an error naming the
    /// 1-based position of the second row.
    public init(rows: [RateRow], zone: ZoneTable = .utc, split: Bool = false) throws(RateDeckError) {
        let entries = rows.enumerated().map { (n, row) in
            Entry(key: Array(Self.normalize(row.prefix).utf8), row: row, line: n + 1)
        }
        try self.init(entries: entries, file: "<rows>", lineWord: "row", zone: zone, split: split)
    }

    /// The same rows read with another zone or split setting is not the same deck: effective dates are
    /// wall-clock times in the zone, so a deck is parsed for its plan (`parse(_:file:zone:split:)`).
    struct Entry {
        var key: [UInt8]
        var row: RateRow
        var line: Int
    }

    init(entries input: [Entry], file: String, lineWord: String, zone: ZoneTable, split: Bool) throws(RateDeckError) {
        var entries = input
        for k in entries.indices {
            entries[k].row.prefix = String(decoding: entries[k].key, as: UTF8.self)
            entries[k].row.line = entries[k].line
        }
        // Ties keep file order so a duplicate is reported at its later line. Indices are sorted, not the
        // entries: an entry holds a row's strings, and moving it costs retains a 300,000-row deck feels.
        let order = entries.indices.sorted { a, b in
            let c = entries.withUnsafeBufferPointer { e in Self.compare(e[a].key, e[b].key) }
            return c != 0 ? c < 0 : entries[a].line < entries[b].line
        }
        entries = order.map { entries[$0] }
        var bytes: [UInt8] = []
        var starts: [Int] = [0]
        var groups: [Int] = []
        var k = 0
        while k < entries.count {
            var end = k + 1
            while end < entries.count, Self.compare(entries[k].key, entries[end].key) == 0 { end += 1 }
            if end - k > 1 {
                try Self.checkOverlaps(entries[k ..< end], file: file, lineWord: lineWord, zone: zone)
            }
            groups.append(k)
            bytes.append(contentsOf: entries[k].key)
            starts.append(bytes.count)
            k = end
        }
        groups.append(entries.count)
        let groupCount = groups.count - 1
        var size = 16
        while size < groupCount * 2 { size *= 2 }
        var slots = [Int32](repeating: 0, count: size)
        for g in 0 ..< groupCount {
            let key = entries[groups[g]].key
            var s = Self.finish(key.reduce(Self.hashSeed) { Self.hash($0, $1) }) & (size - 1)
            while slots[s] != 0 { s = (s + 1) & (size - 1) }
            slots[s] = Int32(g + 1)
        }
        self.rows = entries.map(\.row)
        self.groupStart = groups
        self.keyBytes = bytes
        self.keyStart = starts
        self.slots = slots
        self.maxKeyLength = entries.reduce(0) { max($0, $1.key.count) }
        self.zone = zone
        self.split = split
        self.isTimed = entries.contains { !$0.row.window.isAlways }
    }

    /// Rows of one prefix must never both apply at one moment. Each pair is walked over the moments both
    /// could apply (the overlap of their validity, at most a week and a day of it: every weekday and time
    /// of day comes round in that time), from one change of either window to the next.
    static func checkOverlaps(_ group: ArraySlice<Entry>, file: String, lineWord: String, zone: ZoneTable) throws(RateDeckError) {
        let list = Array(group)
        for b in 1 ..< list.count {
            for a in 0 ..< b {
                let x = list[a], y = list[b]
                guard let moment = firstCommonMoment(x.row.window, y.row.window, zone: zone) else { continue }
                let shown = y.key.isEmpty ? "* (catch-all)" : "\"\(y.row.prefix)\""
                if x.row.window.isAlways && y.row.window.isAlways {
                    throw RateDeckError(file: file, line: y.line, column: "prefix",
                                        message: "duplicate prefix \(shown) (first on \(lineWord) \(x.line))")
                }
                throw RateDeckError(file: file, line: y.line, column: "prefix",
                                    message: "prefix \(shown) overlaps \(lineWord) \(x.line): both apply at \(describe(moment, zone: zone))"
                                        + " (rows of one prefix need disjoint weekdays, times or dates)")
            }
        }
    }

    /// The first instant at which both windows apply, or nil.
    static func firstCommonMoment(_ a: RateWindow, _ b: RateWindow, zone: ZoneTable) -> Int64? {
        guard a.weekdays & b.weekdays != 0, max(a.timeFrom, b.timeFrom) < min(a.timeTo, b.timeTo) else { return nil }
        let lo = max(a.effectiveFrom ?? Int64.min, b.effectiveFrom ?? Int64.min)
        let hi = min(a.effectiveUntil ?? Int64.max, b.effectiveUntil ?? Int64.max)
        guard lo < hi else { return nil }
        // Open at the start: any week will do; this one keeps the example moment readable.
        var t = lo == Int64.min ? (hi == Int64.max ? 1_767_225_600 : hi - 8 * 86_400) : lo
        let end = min(hi, t + 8 * 86_400)
        while t < end {
            let c = WallClock(t, zone: zone, stable: true)
            if a.applies(c) && b.applies(c) { return t }
            t = min(c.stableUntil, a.nextChange(after: c), b.nextChange(after: c))
        }
        return nil
    }

    /// `2026-01-05 08:00 (mon)` in the zone.
    static func describe(_ t: Int64, zone: ZoneTable) -> String {
        let c = WallClock(t, zone: zone)
        let civil = CivilTime(epoch: t + zone.offset(atUTC: t))
        return "\(civil.date) \(civil.time.prefix(5)) (\(RateWindow.dayNames[c.weekday]), \(zone.identifier))"
    }

    /// The row whose prefix is the longest prefix of `destination` after removing one leading `+`,
    /// ignoring windows and dates (the first row of that prefix); nil when nothing matches and there is
    /// no catch-all. For a deck without windows this is the row that rates every call.
    public func match(_ destination: some StringProtocol) -> RateRow? {
        withBytes(destination) { matchIndex(bytes: $0, at: nil) }.map { rows[$0] }
    }

    /// Byte-level lookup for the ingest hot path, where CDR fields are raw bytes.
    public func match(bytes destination: UnsafeBufferPointer<UInt8>) -> RateRow? {
        matchIndex(bytes: destination, at: nil).map { rows[$0] }
    }

    /// The row that applies to `destination` at the instant `t` (unix seconds): among the rows in effect
    /// then, the longest prefix.
    public func match(_ destination: some StringProtocol, at t: Int64) -> RateRow? {
        let clock = WallClock(t, zone: zone)
        return withBytes(destination) { matchIndex(bytes: $0, at: clock) }.map { rows[$0] }
    }

    func withBytes<R>(_ s: some StringProtocol, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let r = s.utf8.withContiguousStorageIfAvailable({ body($0) }) { return r }
        let copy = Array(s.utf8)
        return copy.withUnsafeBufferPointer { body($0) }
    }

    /// The row index for `raw` at `clock` (nil: ignore windows, take each prefix's first row).
    func matchIndex(bytes raw: UnsafeBufferPointer<UInt8>, at clock: WallClock?) -> Int? {
        var found: Int?
        forEachGroup(matching: raw) { g in
            let range = groupStart[g] ..< groupStart[g + 1]
            guard let clock else { found = range.lowerBound; return false }
            for r in range where rows[r].window.applies(clock) { found = r; return false }
            return true
        }
        return found
    }

    /// Calls `body` with each group whose prefix is a prefix of `raw` (after one leading `+`), longest
    /// first, until it returns false.
    func forEachGroup(matching raw: UnsafeBufferPointer<UInt8>, _ body: (Int) -> Bool) {
        guard !rows.isEmpty else { return }
        var d = raw
        if let first = d.first, first == UInt8(ascii: "+") {
            d = UnsafeBufferPointer(rebasing: d[1...])
        }
        let longest = min(d.count, maxKeyLength)
        // hashes[n] is the running hash of d's first n bytes; at most one small stack block per lookup.
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: longest + 1) { hashes in
            var h = Self.hashSeed
            hashes[0] = h
            for n in 0..<longest {
                h = Self.hash(h, d[n])
                hashes[n + 1] = h
            }
            keyBytes.withUnsafeBufferPointer { keys in
                slots.withUnsafeBufferPointer { table in
                    let mask = table.count - 1
                    for n in stride(from: longest, through: 0, by: -1) {
                        var s = Self.finish(hashes[n]) & mask
                        while true {
                            let g = Int(table[s]) - 1
                            if g < 0 { break }
                            let key = UnsafeBufferPointer(rebasing: keys[keyStart[g] ..< keyStart[g + 1]])
                            if key.count == n, Self.isPrefix(key, of: d) {
                                if !body(g) { return }
                                break
                            }
                            s = (s + 1) & mask
                        }
                    }
                }
            }
        }
    }

    /// Rows of group g.
    func group(_ g: Int) -> ArraySlice<RateRow> { rows[groupStart[g] ..< groupStart[g + 1]] }

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

import MeterCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RateDeck {
    /// The deck's columns: the five base columns first, in this order, then `description` (optional).
    public static let columns = ["prefix", "rate_per_minute", "connect_fee", "initial_increment",
                                 "subsequent_increment", "description"]
    /// The optional columns that say when a row applies; after the base five, in any order, by name.
    public static let windowColumns = ["weekdays", "time_from", "time_to", "effective_from", "effective_until"]

    /// Parses a CSV rate deck. The header line is required: the five base columns in order, then any of
    /// `description` and the window columns in any order. Blank lines and lines starting with `#` are
    /// skipped, a UTF-8 BOM and CRLF line ends are accepted, and any field may be quoted with `""` escapes
    /// (a quoted field does not span lines). A row may leave out `description` when it is the header's last
    /// column. Windows and dates are read in `zone`.
    public static func parse(_ bytes: [UInt8], file: String, zone: ZoneTable = .utc, split: Bool = false) throws(RateDeckError) -> RateDeck {
        let entries = try bytes.withUnsafeBufferPointer { buf throws(RateDeckError) -> [Entry] in
            try DeckParser(buf: buf, file: file, zone: zone).run()
        }
        return try RateDeck(entries: entries, file: file, lineWord: "line", zone: zone, split: split)
    }

    /// Reads and parses a deck file; a missing or unreadable file is an error naming it.
    public static func load(path: String, zone: ZoneTable = .utc, split: Bool = false) throws(RateDeckError) -> RateDeck {
        let bytes = try readFile(path)
        return try parse(bytes, file: path, zone: zone, split: split)
    }

    static func readFile(_ path: String) throws(RateDeckError) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw RateDeckError(file: path, line: 0, column: "", message: "cannot open: \(errnoText())")
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw RateDeckError(file: path, line: 0, column: "", message: "cannot read: \(errnoText())")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0 ..< n])
        }
        return out
    }

    private static func errnoText() -> String {
        guard let p = strerror(errno) else { return "errno \(errno)" }
        return String(cString: p)
    }
}

/// A single-pass, line-oriented CSV reader for decks; every error names the line and column.
struct DeckParser {
    let buf: UnsafeBufferPointer<UInt8>
    let file: String
    let zone: ZoneTable

    /// Where the header put each column: the names in order, and the optional ones' positions.
    struct Layout {
        var names: [String]
        var description: Int?
        /// Index into `windowColumns` → position in the line.
        var window: [Int?]
        /// A row may stop one short: `description` is last.
        var descriptionLast: Bool
    }

    struct Field {
        var start: Int
        var end: Int
        /// Quoted with a `""` inside: the raw range still holds the doubled quotes.
        var escaped: Bool
    }

    private static let quote = UInt8(ascii: "\"")
    private static let comma = UInt8(ascii: ",")

    func fail(_ line: Int, _ column: String, _ message: String) -> RateDeckError {
        RateDeckError(file: file, line: line, column: column, message: message)
    }

    func run() throws(RateDeckError) -> [RateDeck.Entry] {
        var entries: [RateDeck.Entry] = []
        var layout: Layout?
        var lineNo = 0
        var pos = 0
        // A BOM is what spreadsheet "CSV UTF-8" exports start with.
        if buf.count >= 3, buf[0] == 0xEF, buf[1] == 0xBB, buf[2] == 0xBF { pos = 3 }
        while pos < buf.count {
            lineNo += 1
            var end = pos
            while end < buf.count, buf[end] != 0x0A { end += 1 }
            let next = end + 1
            if end > pos, buf[end - 1] == 0x0D { end -= 1 }
            defer { pos = next }
            var first = pos
            while first < end, isBlank(buf[first]) { first += 1 }
            if first == end || buf[first] == UInt8(ascii: "#") { continue }
            let fields = try split(pos, end, line: lineNo, names: layout?.names ?? RateDeck.columns)
            guard let layout else {
                layout = try checkHeader(fields, line: lineNo)
                continue
            }
            entries.append(try row(fields, line: lineNo, layout: layout))
        }
        if layout == nil {
            throw fail(0, "", "no header line (expected \(RateDeck.columns.prefix(5).joined(separator: ","))[,description])")
        }
        return entries
    }

    @inline(__always) func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    func split(_ start: Int, _ end: Int, line: Int, names: [String]) throws(RateDeckError) -> [Field] {
        func column(_ index: Int) -> String { index < names.count ? names[index] : "\(index + 1)" }
        var fields: [Field] = []
        fields.reserveCapacity(6)
        var p = start
        while true {
            var s = p
            while s < end, isBlank(buf[s]) { s += 1 }
            if s < end, buf[s] == Self.quote {
                var q = s + 1
                var escaped = false
                while true {
                    guard q < end else {
                        throw fail(line, column(fields.count), "unterminated quoted field")
                    }
                    if buf[q] == Self.quote {
                        if q + 1 < end, buf[q + 1] == Self.quote { escaped = true; q += 2; continue }
                        break
                    }
                    q += 1
                }
                fields.append(Field(start: s + 1, end: q, escaped: escaped))
                var a = q + 1
                while a < end, isBlank(buf[a]) { a += 1 }
                if a == end { return fields }
                guard buf[a] == Self.comma else {
                    throw fail(line, column(fields.count - 1), "unexpected text after the closing quote")
                }
                p = a + 1
            } else {
                var e = s
                while e < end, buf[e] != Self.comma { e += 1 }
                var t = e
                while t > s, isBlank(buf[t - 1]) { t -= 1 }
                fields.append(Field(start: s, end: t, escaped: false))
                if e == end { return fields }
                p = e + 1
            }
        }
    }

    func text(_ f: Field) -> String {
        let raw = UnsafeBufferPointer(rebasing: buf[f.start ..< f.end])
        guard f.escaped else { return String(decoding: raw, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var k = 0
        while k < raw.count {
            out.append(raw[k])
            // The splitter only accepted doubled quotes inside, so skip the second of each pair.
            k += raw[k] == Self.quote ? 2 : 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    func checkHeader(_ fields: [Field], line: Int) throws(RateDeckError) -> Layout {
        let names = fields.map { text($0).lowercased() }
        let base = Array(RateDeck.columns.prefix(5))
        let optional = ["description"] + RateDeck.windowColumns
        guard names.count >= 5, Array(names.prefix(5)) == base else {
            throw fail(line, "", "the header must be \(base.joined(separator: ","))[,description]"
                + " (optionally followed by \(RateDeck.windowColumns.joined(separator: ", ")) in any order)"
                + ", found \(names.joined(separator: ","))")
        }
        var layout = Layout(names: names, description: nil, window: Array(repeating: nil, count: RateDeck.windowColumns.count),
                            descriptionLast: names.last == "description")
        for (k, name) in names.enumerated().dropFirst(5) {
            guard optional.contains(name) else {
                throw fail(line, "\(k + 1)", "unknown column \"\(name)\" (after the base five: \(optional.joined(separator: ", ")))")
            }
            guard names[..<k].contains(name) == false else {
                throw fail(line, name, "the header names this column twice")
            }
            if name == "description" { layout.description = k }
            if let w = RateDeck.windowColumns.firstIndex(of: name) { layout.window[w] = k }
        }
        return layout
    }

    func row(_ fields: [Field], line: Int, layout: Layout) throws(RateDeckError) -> RateDeck.Entry {
        let headerCount = layout.names.count
        guard fields.count == headerCount || (layout.descriptionLast && fields.count == headerCount - 1) else {
            throw fail(line, "", "expected \(headerCount) columns as in the header, found \(fields.count)")
        }
        let key = try prefixKey(fields[0], line: line)
        let rate = try money(fields[1], line: line, column: "rate_per_minute")
        let fee = try money(fields[2], line: line, column: "connect_fee")
        let initial = try seconds(fields[3], line: line, column: "initial_increment", minimum: 0)
        let subsequent = try seconds(fields[4], line: line, column: "subsequent_increment", minimum: 1)
        let description = layout.description.flatMap { $0 < fields.count ? text(fields[$0]) : nil } ?? ""
        let window = try window(fields, line: line, layout: layout)
        let row = RateRow(prefix: "", ratePerMinute: rate, connectFee: fee, initialIncrement: initial,
                          subsequentIncrement: subsequent, description: description, window: window, line: line)
        return RateDeck.Entry(key: key, row: row, line: line)
    }

    /// The window and date columns of a row; a row without them applies always.
    func window(_ fields: [Field], line: Int, layout: Layout) throws(RateDeckError) -> RateWindow {
        // Bytes of each window column, blanks trimmed (a quoted list such as "sat, sun" may have them).
        func value(_ w: Int) throws(RateDeckError) -> UnsafeBufferPointer<UInt8> {
            guard let k = layout.window[w], k < fields.count else { return UnsafeBufferPointer(start: nil, count: 0) }
            var f = fields[k]
            if f.escaped { throw fail(line, RateDeck.windowColumns[w], "must not contain a quote") }
            while f.start < f.end, isBlank(buf[f.start]) { f.start += 1 }
            while f.end > f.start, isBlank(buf[f.end - 1]) { f.end -= 1 }
            return UnsafeBufferPointer(rebasing: buf[f.start ..< f.end])
        }
        func parsed<T>(_ column: String, _ body: () throws(WindowTextError) -> T) throws(RateDeckError) -> T {
            do { return try body() } catch { throw fail(line, column, error.message) }
        }
        let days = try value(0), from = try value(1), to = try value(2), since = try value(3), until = try value(4)
        var w = RateWindow.always
        if days.isEmpty && from.isEmpty && to.isEmpty && since.isEmpty && until.isEmpty { return w }
        if !days.isEmpty {
            let (mask, spelled) = try parsed("weekdays") { () throws(WindowTextError) in try WindowText.weekdays(days) }
            w.weekdays = mask
            w.spelled.weekdays = spelled
        }
        if !from.isEmpty {
            w.timeFrom = try parsed("time_from") { () throws(WindowTextError) in try WindowText.timeOfDay(from, allowEnd: false) }
            w.spelled.timeFrom = String(decoding: from, as: UTF8.self)
        }
        if !to.isEmpty {
            w.timeTo = try parsed("time_to") { () throws(WindowTextError) in try WindowText.timeOfDay(to, allowEnd: true) }
            w.spelled.timeTo = String(decoding: to, as: UTF8.self)
        }
        guard w.timeFrom < w.timeTo else {
            throw fail(line, "time_to", "must be later than time_from (\(from.isEmpty ? "00:00" : w.spelled.timeFrom));"
                + " a window does not wrap past midnight: write two rows")
        }
        var sinceLocal: Int64?, untilLocal: Int64?
        if !since.isEmpty {
            let l = try parsed("effective_from") { () throws(WindowTextError) in try WindowText.localDate(since) }
            sinceLocal = l
            w.effectiveFrom = zone.firstInstant(atOrAfterLocal: l)
            w.spelled.effectiveFrom = String(decoding: since, as: UTF8.self)
        }
        if !until.isEmpty {
            let l = try parsed("effective_until") { () throws(WindowTextError) in try WindowText.localDate(until) }
            untilLocal = l
            w.effectiveUntil = zone.firstInstant(atOrAfterLocal: l)
            w.spelled.effectiveUntil = String(decoding: until, as: UTF8.self)
        }
        if let a = sinceLocal, let b = untilLocal, a >= b {
            throw fail(line, "effective_until", "must be later than effective_from (\(w.spelled.effectiveFrom))")
        }
        return w
    }

    func prefixKey(_ f: Field, line: Int) throws(RateDeckError) -> [UInt8] {
        var s = f.start
        let e = f.end
        if e - s == 1, buf[s] == UInt8(ascii: "*") { return [] }
        if s == e { return [] }
        if buf[s] == UInt8(ascii: "+") {
            s += 1
            guard s < e else { throw fail(line, "prefix", "is only '+' (use * or leave it empty for the catch-all)") }
        }
        for k in s ..< e {
            let b = buf[k]
            guard b > 0x20, b < 0x7F, b != Self.comma, b != Self.quote else {
                throw fail(line, "prefix", "has an invalid character at byte \(k - f.start + 1)"
                    + " (expected digits, letters or other printable ASCII without spaces, commas or quotes)")
            }
        }
        return Array(buf[s ..< e])
    }

    func money(_ f: Field, line: Int, column: String) throws(RateDeckError) -> Int64 {
        do {
            return try Money.parse(bytes: UnsafeBufferPointer(rebasing: buf[f.start ..< f.end]))
        } catch {
            throw fail(line, column, error.description)
        }
    }

    func seconds(_ f: Field, line: Int, column: String, minimum: Int64) throws(RateDeckError) -> Int64 {
        guard f.start < f.end else { throw fail(line, column, "is empty") }
        var v: Int64 = 0
        for k in f.start ..< f.end {
            let b = buf[k]
            guard b >= 0x30, b <= 0x39 else {
                throw fail(line, column, "must be a whole number of seconds (found \(text(f)))")
            }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(b - 0x30))
            guard !o1, !o2 else { throw fail(line, column, "is too large") }
            v = a
        }
        guard v >= minimum else { throw fail(line, column, "must be at least \(minimum)") }
        return v
    }
}

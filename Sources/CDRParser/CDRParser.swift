import Crypto
import Foundation

/// Turns one line of a CDR file into a `CDR`, per a source's `ParserOptions`.
///
/// Built once per source (it resolves column layouts and the time zone's offsets up front),
/// then `parse` is pure and may be called from any thread.
public struct CDRParser: Sendable {
    public let options: ParserOptions
    let zone: ZoneTable
    /// Column → CDRField.index (or -1 to ignore), by the number of columns in the line.
    let layouts: [Int: [Int8]]
    /// The text of the column_count failure for counts with no layout.
    let countHint: String
    let ambiguousCounts: Set<Int>

    public static let asteriskFixed: [CDRField] = [
        .accountcode, .src, .dst, .dcontext, .clid, .channel, .dstchannel, .lastapp, .lastdata,
        .start, .answer, .end, .duration, .billsec, .disposition, .amaflags,
    ]
    /// cdr_csv writes these after the fixed 16, in this order, when cdr.conf enables them.
    public static let asteriskOptional: [CDRField] = [.uniqueid, .userfield, .peeraccount, .linkedid, .sequence]
    /// mod_cdr_csv's stock `example` template.
    public static let freeswitchExample: [CDRField] = [
        .callerIDName, .src, .dst, .dcontext, .start, .answer, .end, .duration, .billsec,
        .hangupCause, .uuid, .blegUUID, .accountcode, .readCodec, .writeCodec,
    ]
    /// mod_cdr_csv's built-in `default` template: the example's first 13.
    public static var freeswitchDefault: [CDRField] { Array(freeswitchExample.prefix(13)) }

    public init(_ options: ParserOptions) throws(ParserConfigError) {
        self.options = options
        self.zone = ZoneTable(options.timeZone)
        var layouts: [Int: [Int8]] = [:]
        var ambiguous: Set<Int> = []
        let hint: String

        if options.extra != nil, options.format != .asteriskCSV {
            throw .extraNotAllowed(options.format)
        }
        switch options.format {
        case .asteriskCSV:
            if options.columns != nil { throw .columnsNotAllowed(options.format) }
            if let extra = options.extra {
                var chosen: Set<CDRField> = []
                for name in extra {
                    guard let f = CDRField.named(name), Self.asteriskOptional.contains(f) else { throw .badExtra(name) }
                    guard chosen.insert(f).inserted else { throw .duplicateExtra(name) }
                }
                // cdr_csv's order is fixed, so the list's own order does not matter.
                let cols = Self.asteriskFixed + Self.asteriskOptional.filter { chosen.contains($0) }
                layouts[cols.count] = cols.map { Int8($0.index) }
                hint = "expected \(cols.count) columns (16 + extra = \(extra))"
            } else {
                for k in [0, 2, 3, 5] {
                    let cols = Self.asteriskFixed + Self.asteriskOptional.prefix(k)
                    layouts[cols.count] = cols.map { Int8($0.index) }
                }
                ambiguous = [17, 20]
                hint = "expected 16, 18, 19 or 21 columns; set `extra` to the optional columns cdr.conf writes"
            }
        case .freeswitchCSV:
            if let columns = options.columns {
                let map = try Self.columnMap(columns)
                layouts[map.count] = map
                hint = "expected \(map.count) columns as `columns` names"
            } else {
                layouts[15] = Self.freeswitchExample.map { Int8($0.index) }
                layouts[13] = Self.freeswitchDefault.map { Int8($0.index) }
                hint = "expected 15 (example template) or 13 (default template) columns; set `columns` for a custom template"
            }
        case .csv:
            guard let columns = options.columns else { throw .columnsRequired(.csv) }
            let d = options.delimiter
            if d == Splitter.quote || d == 0x0A || d == 0x0D { throw .badDelimiter(d) }
            let map = try Self.columnMap(columns)
            layouts[map.count] = map
            hint = "expected \(map.count) columns as `columns` names"
        case .jsonl:
            if options.columns != nil { throw .columnsNotAllowed(.jsonl) }
            hint = ""
        }
        self.layouts = layouts
        self.ambiguousCounts = ambiguous
        self.countHint = hint
    }

    static func columnMap(_ columns: [String]) throws(ParserConfigError) -> [Int8] {
        var map: [Int8] = []
        var seen: Set<CDRField> = []
        for name in columns {
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed == "-" { map.append(-1); continue }
            guard let f = CDRField.named(trimmed) else { throw .unknownColumn(name) }
            guard seen.insert(f).inserted else { throw .duplicateColumn(name) }
            map.append(Int8(f.index))
        }
        guard seen.contains(.dst) else { throw .missingColumn(.dst) }
        guard seen.contains(.billsec) || seen.contains(.billmsec) else { throw .missingColumn(.billsec) }
        return map
    }

    /// Parses one line (no trailing newline; a trailing CR is ignored).
    public func parse(_ line: [UInt8]) -> Result<CDR, ParseFailure> {
        line.withUnsafeBufferPointer { parse($0) }
    }

    /// Parses one line (no trailing newline; a trailing CR is ignored).
    public func parse(_ line: UnsafeBufferPointer<UInt8>) -> Result<CDR, ParseFailure> {
        var n = line.count
        if n > 0, line[n - 1] == 0x0D { n -= 1 }
        // A file re-saved by an editor may start with a UTF-8 byte-order mark.
        let skip = n >= 3 && line[0] == 0xEF && line[1] == 0xBB && line[2] == 0xBF ? 3 : 0
        let body = UnsafeBufferPointer(rebasing: line[skip..<n])
        var blank = true
        for b in body where b != 0x20 && b != 0x09 { blank = false; break }
        if blank { return .failure(.badLine("empty line")) }
        do throws(ParseFailure) {
            switch options.format {
            case .jsonl: return .success(try parseJSON(body))
            default: return .success(try parseDelimited(body))
            }
        } catch {
            return .failure(error)
        }
    }

    /// The UTC epoch of a time field of `cdr`, read in this parser's time zone; nil when absent,
    /// empty or not a time.
    public func epoch(_ field: CDRField, of cdr: CDR) -> Int64? {
        guard let b = cdr.bytes(field) else { return nil }
        return b.withUnsafeBufferPointer { p in
            if case .epoch(let t) = TimeText.parse(p, zone: zone) { return t }
            return nil
        }
    }

    // MARK: - Delimited formats

    private func parseDelimited(_ line: UnsafeBufferPointer<UInt8>) throws(ParseFailure) -> CDR {
        let fs = options.format == .freeswitchCSV
        let quotedFS = fs && Splitter.isFullyQuoted(line)
        if fs, !quotedFS, options.columns == nil {
            throw .badLine("FreeSWITCH writes every field in double quotes and this line is not (re-saved by a spreadsheet?)")
        }
        let delimiter = options.format == .csv ? options.delimiter : UInt8(ascii: ",")
        var failure: ParseFailure?
        var columns = 0
        var spans = [Int32](repeating: -1, count: CDRField.count * 2)
        let storage = [UInt8](unsafeUninitializedCapacity: line.count * 2 + 2) { buf, initialized in
            guard let out = buf.baseAddress else { return }
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: Splitter.maxColumns * 2) { colBuf in
                guard let cols = colBuf.baseAddress else { return }
                do throws(ParseFailure) {
                    let r = quotedFS
                        ? try Splitter.freeswitch(line, out: out, cols: cols)
                        : try Splitter.quoted(line, delimiter: delimiter, out: out, cols: cols)
                    initialized = r.length
                    columns = r.columns
                    guard let map = layouts[r.columns] else { return }
                    for (c, f) in map.enumerated() where f >= 0 {
                        spans[Int(f) &* 2] = cols[2 &* c]
                        spans[Int(f) &* 2 &+ 1] = cols[2 &* c &+ 1]
                    }
                } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
        guard layouts[columns] != nil else { throw countFailure(columns) }
        return try CDRBuilder.build(storage: storage, spans: spans, format: options.format, zone: zone)
    }

    private func countFailure(_ n: Int) -> ParseFailure {
        if ambiguousCounts.contains(n) {
            let example = n == 17 ? "[\"uniqueid\"] or [\"userfield\"]"
                : "[\"uniqueid\", \"peeraccount\", \"linkedid\", \"sequence\"] or [\"userfield\", \"peeraccount\", \"linkedid\", \"sequence\"]"
            return .columnCount("\(n) columns is ambiguous for asterisk-csv: set `extra` to the optional columns cdr.conf writes, e.g. extra = \(example)")
        }
        return .columnCount("got \(n) columns: \(countHint)")
    }

    // MARK: - JSON lines

    private func parseJSON(_ line: UnsafeBufferPointer<UInt8>) throws(ParseFailure) -> CDR {
        let (storage, members) = try JSONLine.scan(line)
        var spans = [Int32](repeating: -1, count: CDRField.count * 2)
        for m in members {
            guard let f = CDRField.named(String(decoding: m.key, as: UTF8.self)) else { continue }
            if m.nested { throw .badJSON("field \"\(f.rawValue)\" must be a string, number, boolean or null") }
            spans[f.index &* 2] = Int32(m.start)
            spans[f.index &* 2 &+ 1] = Int32(m.end)
        }
        guard spans[CDRField.dst.index &* 2] >= 0 else { throw .missingField("the object has no \"dst\" (or \"destination_number\")") }
        guard spans[CDRField.billsec.index &* 2] >= 0 || spans[CDRField.billmsec.index &* 2] >= 0 else {
            throw .missingField("the object has no \"billsec\" or \"billmsec\"")
        }
        return try CDRBuilder.build(storage: storage, spans: spans, format: .jsonl, zone: zone)
    }
}

extension CDR {
    /// A CDR from field values, computed the way the parser would (times read as UTC):
    /// for tests and for callers that get CDRs from somewhere other than a file.
    public init(fields: [CDRField: String], format: CDRFormat = .csv) throws(ParseFailure) {
        var storage: [UInt8] = []
        var spans = [Int32](repeating: -1, count: CDRField.count * 2)
        for f in CDRField.allCases {
            guard let v = fields[f] else { continue }
            spans[f.index * 2] = Int32(storage.count)
            storage.append(contentsOf: v.utf8)
            spans[f.index * 2 + 1] = Int32(storage.count)
            storage.append(Splitter.unitSeparator)
        }
        self = try CDRBuilder.build(storage: storage, spans: spans, format: format,
                                    zone: ZoneTable(TimeZone(identifier: "UTC") ?? .gmt))
    }
}

/// Computes the derived facts of a CDR (answered, billable seconds, start, identity) once.
enum CDRBuilder {
    static func build(storage: [UInt8], spans: [Int32], format: CDRFormat, zone: ZoneTable) throws(ParseFailure) -> CDR {
        try storage.withUnsafeBufferPointer { (all: UnsafeBufferPointer<UInt8>) throws(ParseFailure) -> CDR in
            func field(_ f: CDRField) -> UnsafeBufferPointer<UInt8>? {
                let s = Int(spans[f.index &* 2])
                guard s >= 0 else { return nil }
                return UnsafeBufferPointer(rebasing: all[s..<Int(spans[f.index &* 2 &+ 1])])
            }

            var billable: Int64 = 0
            if let ms = field(.billmsec), !isBlank(ms) {
                let v = try number(ms, .billmsec)
                billable = v / 1000 + (v % 1000 == 0 ? 0 : 1)
            } else if let s = field(.billsec), !isBlank(s) {
                billable = try number(s, .billsec)
            }

            let answered: Bool
            if format == .freeswitchCSV {
                if let a = field(.answer) { answered = !isBlank(a) && !isZero(a) } else { answered = true }
            } else if let d = field(.disposition) {
                answered = equalsIgnoringCase(d, "ANSWERED")
            } else if let a = field(.answer) {
                answered = !isBlank(a) && !isZero(a)
            } else {
                answered = true
            }

            var start: Int64?
            if let s = field(.start) {
                switch TimeText.parse(s, zone: zone) {
                case .empty: start = nil
                case .epoch(let t): start = t
                case .invalid:
                    throw .badTime("start \"\(CDR.displayString(s))\" is not a time like 2024-01-27 15:07:24")
                }
            }

            let identity: String
            if let l = field(.linkedid), !isBlank(l), let q = field(.sequence), !isBlank(q) {
                var b: [UInt8] = Array("ast:".utf8)
                b.append(contentsOf: l); b.append(UInt8(ascii: ":"))
                b.append(contentsOf: q); b.append(UInt8(ascii: ":"))
                if let s = field(.start) { b.append(contentsOf: s) }
                identity = CDR.displayString(b[...])
            } else if let u = field(.uuid), !isBlank(u) {
                var b: [UInt8] = Array("fs:".utf8)
                b.append(contentsOf: u)
                identity = CDR.displayString(b[...])
            } else {
                identity = hashIdentity(all)
            }

            return CDR(storage: storage, spans: spans, format: format, isAnswered: answered,
                       billableSeconds: billable, startEpoch: start, identity: identity)
        }
    }

    /// "h:" + the first 16 bytes of SHA-256 over every column's value, each followed by 0x1F,
    /// which is exactly how `storage` is laid out.
    static func hashIdentity(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let digest = SHA256.hash(data: bytes)
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = Array("h:".utf8)
        out.reserveCapacity(34)
        for (k, byte) in digest.enumerated() where k < 16 {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isBlank(_ p: UnsafeBufferPointer<UInt8>) -> Bool {
        for b in p where b != 0x20 { return false }
        return true
    }

    /// FreeSWITCH's answer_epoch is "0" for a call that was never answered.
    static func isZero(_ p: UnsafeBufferPointer<UInt8>) -> Bool {
        p.count == 1 && p[0] == UInt8(ascii: "0")
    }

    static func equalsIgnoringCase(_ p: UnsafeBufferPointer<UInt8>, _ word: StaticString) -> Bool {
        guard p.count == word.utf8CodeUnitCount else { return false }
        let w = word.utf8Start
        for k in 0..<p.count {
            var b = p[k]
            if b >= 0x61, b <= 0x7A { b -= 0x20 }
            if b != w[k] { return false }
        }
        return true
    }

    /// A non-negative whole number; blanks around it and a ".000" fraction (JSON exporters) are accepted.
    static func number(_ p: UnsafeBufferPointer<UInt8>, _ f: CDRField) throws(ParseFailure) -> Int64 {
        var i = 0, end = p.count
        while i < end, p[i] == 0x20 { i += 1 }
        while end > i, p[end - 1] == 0x20 { end -= 1 }
        var v: Int64 = 0
        var digits = 0
        while i < end, p[i] >= 0x30, p[i] <= 0x39 {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(p[i] - 0x30))
            if o1 || o2 { digits = 0; break }
            v = s; digits += 1; i += 1
        }
        if digits > 0, i < end, p[i] == UInt8(ascii: ".") {
            i += 1
            while i < end, p[i] == UInt8(ascii: "0") { i += 1 }
        }
        guard digits > 0, i == end else {
            throw .badNumber("\(f.rawValue) \"\(CDR.displayString(p))\" is not a whole number of \(f == .billmsec ? "milliseconds" : "seconds")")
        }
        return v
    }
}

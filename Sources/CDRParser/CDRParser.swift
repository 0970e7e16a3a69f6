import Crypto
import Foundation
import MeterCore

/// Turns one line of a CDR file into a `CDR`, per a source's `ParserOptions`.
///
/// Built once per source (it resolves column layouts and the time zone's offsets up front),
/// then `parse` is pure and may be called from any thread.
public struct CDRParser: Sendable {
    public let options: ParserOptions
    let zone: ZoneTable
    /// Column → CDRField.index (or -1 to ignore), by the number of columns in the line.
    let layouts: [Int: [Int8]]
    /// `layouts` as an array indexed by column count, so a line costs no dictionary lookup.
    let layoutByCount: [[Int8]?]
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
        var byCount = [[Int8]?](repeating: nil, count: Splitter.maxColumns + 1)
        for (n, map) in layouts where n < byCount.count { byCount[n] = map }
        self.layoutByCount = byCount
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
        let body: UnsafeBufferPointer<UInt8>
        switch Self.trim(line) {
        case .failure(let f): return .failure(f)
        case .success(let b): body = b
        }
        // JSON lines build an owned CDR anyway; copying it out of a view would only add work.
        if options.format == .jsonl {
            do throws(ParseFailure) { return .success(try parseJSON(body)) } catch { return .failure(error) }
        }
        var result: Result<CDR, ParseFailure> = .failure(.badLine("empty line"))
        withDelimited(body) { result = $0.map { $0.makeCDR() } }
        return result
    }

    /// Parses one line like `parse` and hands `body` a borrowed view of the record instead of an
    /// owned `CDR`: the field bytes live in scratch space for the duration of the call, so the hot
    /// path allocates nothing per line. Callers keep what they need by capturing it.
    public func withParsed(_ line: UnsafeBufferPointer<UInt8>, _ body: (Result<CDRView, ParseFailure>) -> Void) {
        let trimmed: UnsafeBufferPointer<UInt8>
        switch Self.trim(line) {
        case .failure(let f): return body(.failure(f))
        case .success(let b): trimmed = b
        }
        if options.format == .jsonl {
            let cdr: CDR
            do throws(ParseFailure) { cdr = try parseJSON(trimmed) } catch { return body(.failure(error)) }
            return cdr.withView { body(.success($0)) }
        }
        withDelimited(trimmed, body)
    }

    /// The line without a trailing CR or a leading byte-order mark; a blank line is a failure.
    private static func trim(_ line: UnsafeBufferPointer<UInt8>) -> Result<UnsafeBufferPointer<UInt8>, ParseFailure> {
        var n = line.count
        if n > 0, line[n - 1] == 0x0D { n -= 1 }
        // A file re-saved by an editor may start with a UTF-8 byte-order mark.
        let skip = n >= 3 && line[0] == 0xEF && line[1] == 0xBB && line[2] == 0xBF ? 3 : 0
        let body = UnsafeBufferPointer(rebasing: line[skip..<n])
        var blank = true
        for b in body where b != 0x20 && b != 0x09 { blank = false; break }
        if blank { return .failure(.badLine("empty line")) }
        return .success(body)
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

    private func withDelimited(_ line: UnsafeBufferPointer<UInt8>, _ body: (Result<CDRView, ParseFailure>) -> Void) {
        let fs = options.format == .freeswitchCSV
        let quotedFS = fs && Splitter.isFullyQuoted(line)
        if fs, !quotedFS, options.columns == nil {
            return body(.failure(.badLine("FreeSWITCH writes every field in double quotes and this line is not (re-saved by a spreadsheet?)")))
        }
        let delimiter = options.format == .csv ? options.delimiter : UInt8(ascii: ",")
        // Scratch space per line, on the stack: each block stays within the 1 KiB that
        // withUnsafeTemporaryAllocation always puts there (a bigger one may go to the heap), except
        // the field bytes of a line over 511 bytes.
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: Splitter.maxColumns) { ends in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: CDRField.count * 2) { spans in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: line.count * 2 + 2) { out in
                    split(line, quotedFS: quotedFS, delimiter: delimiter, ends: ends, spans: spans, out: out, body)
                }
            }
        }
    }

    private func split(_ line: UnsafeBufferPointer<UInt8>, quotedFS: Bool, delimiter: UInt8,
                       ends endBuf: UnsafeMutableBufferPointer<Int32>, spans spanBuf: UnsafeMutableBufferPointer<Int32>,
                       out outBuf: UnsafeMutableBufferPointer<UInt8>, _ body: (Result<CDRView, ParseFailure>) -> Void) {
        guard let ends = endBuf.baseAddress, let spans = spanBuf.baseAddress, let out = outBuf.baseAddress else {
            return body(.failure(.badLine("out of memory")))
        }
        let r: Splitter.Output
        do throws(ParseFailure) {
            r = quotedFS
                ? try Splitter.freeswitch(line, out: out, ends: ends)
                : try Splitter.quoted(line, delimiter: delimiter, out: out, ends: ends)
        } catch {
            return body(.failure(error))
        }
        guard r.columns < layoutByCount.count, let map = layoutByCount[r.columns] else {
            return body(.failure(countFailure(r.columns)))
        }
        spanBuf.initialize(repeating: -1)
        for (c, f) in map.enumerated() where f >= 0 {
            spans[Int(f) &* 2] = c == 0 ? 0 : ends[c &- 1] &+ 1
            spans[Int(f) &* 2 &+ 1] = ends[c]
        }
        let all = UnsafeBufferPointer(start: out, count: r.length)
        let sp = UnsafeBufferPointer(spanBuf)
        do throws(ParseFailure) {
            let facts = try CDRBuilder.facts(all, spans: sp, format: options.format, zone: zone)
            body(.success(CDRView(storage: all, spans: sp, format: options.format, isAnswered: facts.answered,
                                  billableSeconds: facts.billable, startEpoch: facts.start, answeredAt: facts.answeredAt,
                                  knownIdentity: nil)))
        } catch {
            body(.failure(error))
        }
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
    struct Facts {
        var answered: Bool
        var billable: Int64
        var start: Int64?
        var answeredAt: Int64?
    }

    static func build(storage: [UInt8], spans: [Int32], format: CDRFormat, zone: ZoneTable) throws(ParseFailure) -> CDR {
        try storage.withUnsafeBufferPointer { (all: UnsafeBufferPointer<UInt8>) throws(ParseFailure) -> CDR in
            try spans.withUnsafeBufferPointer { (sp: UnsafeBufferPointer<Int32>) throws(ParseFailure) -> CDR in
                let f = try facts(all, spans: sp, format: format, zone: zone)
                return CDR(storage: storage, spans: spans, format: format, isAnswered: f.answered,
                           billableSeconds: f.billable, startEpoch: f.start, answeredAt: f.answeredAt,
                           identity: identity(all, spans: sp))
            }
        }
    }

    @inline(__always)
    static func field(_ f: CDRField, _ all: UnsafeBufferPointer<UInt8>, _ spans: UnsafeBufferPointer<Int32>) -> UnsafeBufferPointer<UInt8>? {
        let s = Int(spans[f.index &* 2])
        guard s >= 0 else { return nil }
        return UnsafeBufferPointer(rebasing: all[s..<Int(spans[f.index &* 2 &+ 1])])
    }

    static func facts(_ all: UnsafeBufferPointer<UInt8>, spans: UnsafeBufferPointer<Int32>, format: CDRFormat,
                      zone: ZoneTable) throws(ParseFailure) -> Facts {
        var billable: Int64 = 0
        if let ms = field(.billmsec, all, spans), !isBlank(ms) {
            let v = try number(ms, .billmsec)
            billable = v / 1000 + (v % 1000 == 0 ? 0 : 1)
        } else if let s = field(.billsec, all, spans), !isBlank(s) {
            billable = try number(s, .billsec)
        }

        let answered: Bool
        if format == .freeswitchCSV {
            if let a = field(.answer, all, spans) { answered = !isBlank(a) && !isZero(a) } else { answered = true }
        } else if let d = field(.disposition, all, spans) {
            answered = equalsIgnoringCase(d, "ANSWERED")
        } else if let a = field(.answer, all, spans) {
            answered = !isBlank(a) && !isZero(a)
        } else {
            answered = true
        }

        var start: Int64?
        if let s = field(.start, all, spans) {
            switch TimeText.parse(s, zone: zone) {
            case .empty: start = nil
            case .epoch(let t): start = t
            case .invalid:
                throw .badTime("start \"\(CDR.displayString(s))\" is not a time like 2024-01-27 15:07:24")
            }
        }
        // The rating moment matters only for a billable record, so the others skip the two time parses.
        var answeredAt: Int64?
        if answered, billable > 0 {
            if let a = field(.answer, all, spans), !isZero(a), case .epoch(let t) = TimeText.parse(a, zone: zone) {
                answeredAt = t
            } else if let e = field(.end, all, spans), !isZero(e), case .epoch(let t) = TimeText.parse(e, zone: zone) {
                answeredAt = t - billable
            } else {
                answeredAt = start
            }
        }
        return Facts(answered: answered, billable: billable, start: start, answeredAt: answeredAt)
    }

    /// With `startKey`, what the ledger dedupes on: `ast:linkedid:sequence:start`, `fs:uuid`, or `h:` + hash.
    static func identity(_ all: UnsafeBufferPointer<UInt8>, spans: UnsafeBufferPointer<Int32>) -> String {
        if let l = field(.linkedid, all, spans), !isBlank(l), let q = field(.sequence, all, spans), !isBlank(q) {
            // A record without a start still gets the trailing ":", as it always has.
            return joined("ast:", l, q, field(.start, all, spans) ?? UnsafeBufferPointer(start: nil, count: 0))
        } else if let u = field(.uuid, all, spans), !isBlank(u) {
            return joined("fs:", u)
        } else {
            return hashIdentity(all)
        }
    }

    /// `tag` followed by the parts joined with ":", shown as `CDR.displayString` would.
    private static func joined(_ tag: StaticString, _ a: UnsafeBufferPointer<UInt8>,
                               _ b: UnsafeBufferPointer<UInt8>? = nil, _ c: UnsafeBufferPointer<UInt8>? = nil) -> String {
        let t = tag.utf8CodeUnitCount
        let count = t + a.count + (b.map { $0.count + 1 } ?? 0) + (c.map { $0.count + 1 } ?? 0)
        func fill(_ out: UnsafeMutableBufferPointer<UInt8>) -> Int {
            guard let base = out.baseAddress else { return 0 }
            base.update(from: tag.utf8Start, count: t)
            var o = t
            func put(_ p: UnsafeBufferPointer<UInt8>) {
                if let src = p.baseAddress { (base + o).update(from: src, count: p.count) }
                o += p.count
            }
            put(a)
            if let b { base[o] = UInt8(ascii: ":"); o += 1; put(b) }
            if let c { base[o] = UInt8(ascii: ":"); o += 1; put(c) }
            return o
        }
        // ASCII (the norm) needs no validation beyond the initializer's own quick pass.
        if CDR.isASCII(a), b.map(CDR.isASCII) ?? true, c.map(CDR.isASCII) ?? true {
            return String(unsafeUninitializedCapacity: count, initializingUTF8With: fill)
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buf, n in n = fill(buf) }
        return CDR.displayString(bytes[...])
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

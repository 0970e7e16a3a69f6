import MeterCore

/// One call-detail record: its field bytes as written, plus the facts rating needs, computed once.
///
/// Field values live in one byte buffer (each column's unescaped bytes followed by 0x1F, the
/// same bytes the hash identity covers) with a span per field, so a CDR costs two allocations
/// and fields nobody reads are never turned into Strings.
public struct CDR: Sendable, Equatable {
    @usableFromInline let storage: [UInt8]
    /// start, end into `storage` per `CDRField.index`; start < 0 when the record has no such field.
    @usableFromInline let spans: [Int32]

    /// The format of the line this CDR came from.
    public let format: CDRFormat
    /// freeswitch-csv: answer_stamp is not empty (nor "0", FreeSWITCH's unanswered answer_epoch).
    /// Other formats: disposition is ANSWERED (ASCII case ignored); a record without a
    /// disposition falls back to a non-empty answer time, and one with neither counts as answered.
    public let isAnswered: Bool
    /// billsec, or ceil(billmsec / 1000) when the record has a billmsec.
    public let billableSeconds: Int64
    /// The start time in UTC unix seconds; nil when the record has no start.
    public let startEpoch: Int64?
    /// The moment that selects a rate row, in UTC unix seconds: the answer time (Asterisk `answer`,
    /// FreeSWITCH `answer_stamp`), else `end` − billable seconds, else the start; nil with none of them.
    public let answeredAt: Int64?
    /// With `startKey`, what the ledger dedupes on: `ast:linkedid:sequence:start`, `fs:uuid`, or `h:` + hash.
    public let identity: String

    // The memberwise initializer is the one the builder uses.

    /// Billable per SPEC 3: answered and at least one billable second.
    public var isBillable: Bool { isAnswered && billableSeconds > 0 }

    /// Whether the record has this field at all (it may still be empty).
    public func has(_ field: CDRField) -> Bool { spans[field.index &* 2] >= 0 }

    /// The field's raw bytes; nil when the format/line has no such field.
    public func bytes(_ field: CDRField) -> ArraySlice<UInt8>? {
        let i = field.index &* 2
        let s = Int(spans[i])
        guard s >= 0 else { return nil }
        return storage[s..<Int(spans[i + 1])]
    }

    /// The field's value; nil when absent. Bytes that are not UTF-8 (a Latin-1 caller name)
    /// are shown as Latin-1, so nothing turns into replacement characters.
    public func value(_ field: CDRField) -> String? {
        guard let b = bytes(field) else { return nil }
        return Self.displayString(b)
    }

    /// See `CDRView.startKey`.
    public var startKey: Int64 { withView { $0.startKey } }

    /// The account code a CDR is billed to, read from `field` (`[accounts] field`); "" when absent.
    public func account(for field: CDRField = .accountcode) -> String { value(field) ?? "" }

    /// The destination as written (a number, `+` number or SIP URI); "" when absent.
    public var dst: String { value(.dst) ?? "" }

    /// Every field the record has, by canonical name (for quarantine views and JSON output).
    public var fields: [CDRField: String] {
        var out: [CDRField: String] = [:]
        for f in CDRField.allCases { if let v = value(f) { out[f] = v } }
        return out
    }

    static func displayString<C: Collection>(_ b: C) -> String where C.Element == UInt8 {
        if let s = String(validating: b, as: UTF8.self) { return s }
        var s = String()
        s.unicodeScalars.reserveCapacity(b.count)
        for byte in b { s.unicodeScalars.append(Unicode.Scalar(byte)) }
        return s
    }

    /// `displayString` for the hot path: CDR fields are nearly always ASCII, which needs neither
    /// the generic validator nor the Latin-1 fallback.
    static func displayString(_ b: UnsafeBufferPointer<UInt8>) -> String {
        if isASCII(b) { return String(decoding: b, as: UTF8.self) }
        return displayString(b[...])
    }

    @inline(__always)
    static func isASCII(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var bits: UInt8 = 0
        for byte in b { bits |= byte }
        return bits < 0x80
    }

    /// Runs `body` on a borrowed view of this record (how `CDRFilter` and `Metering` read any CDR).
    public func withView<R>(_ body: (CDRView) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { all in
            try spans.withUnsafeBufferPointer { sp in
                try body(CDRView(storage: all, spans: sp, format: format, isAnswered: isAnswered,
                                 billableSeconds: billableSeconds, startEpoch: startEpoch, answeredAt: answeredAt,
                                 knownIdentity: identity))
            }
        }
    }
}

/// A parsed record whose field bytes are borrowed from the parser's scratch space: valid only inside
/// the closure it is handed to. It lets the ingest hot path read a line without allocating a `CDR`,
/// and computes the identity only for the lines that need one.
public struct CDRView {
    @usableFromInline let storage: UnsafeBufferPointer<UInt8>
    /// Same layout as `CDR.spans`.
    @usableFromInline let spans: UnsafeBufferPointer<Int32>
    public let format: CDRFormat
    /// See `CDR.isAnswered`.
    public let isAnswered: Bool
    /// See `CDR.billableSeconds`.
    public let billableSeconds: Int64
    /// See `CDR.startEpoch`.
    public let startEpoch: Int64?
    /// See `CDR.answeredAt`.
    public let answeredAt: Int64?
    /// Set when the view comes from a `CDR`, which has computed its identity already.
    let knownIdentity: String?

    /// Billable per SPEC 3: answered and at least one billable second.
    public var isBillable: Bool { isAnswered && billableSeconds > 0 }

    /// The field's raw bytes (borrowed, like the view); nil when the format/line has no such field.
    @inlinable
    public func bytes(_ field: CDRField) -> UnsafeBufferPointer<UInt8>? {
        let i = field.index &* 2
        let s = Int(spans[i])
        guard s >= 0 else { return nil }
        return UnsafeBufferPointer(rebasing: storage[s..<Int(spans[i &+ 1])])
    }

    /// The field's value as `CDR.value` gives it; nil when absent.
    public func value(_ field: CDRField) -> String? {
        bytes(field).map { CDR.displayString($0) }
    }

    /// The dedupe key, as `CDR.identity`; computed on each call unless the view came from a `CDR`.
    public var identity: String {
        knownIdentity ?? CDRBuilder.identity(storage, spans: spans)
    }

    /// The start field read as wall-clock seconds with no time zone applied, 0 when it is missing or
    /// unreadable. It depends on the record's bytes alone, so a CDR gets the same key whatever zone its
    /// source is read in; the ledger leads its dedupe index with it, so that charges of calls that
    /// started close together land close together in the index, whatever their identity hashes.
    public var startKey: Int64 {
        guard let b = bytes(.start), case .epoch(let t) = TimeText.parse(b, zone: ZoneTable.utc) else { return 0 }
        return t
    }

    /// Whether every byte is ASCII: then the bytes are exactly the UTF-8 of `value`'s String.
    public static func isASCII(_ b: UnsafeBufferPointer<UInt8>) -> Bool { CDR.isASCII(b) }

    /// An owned copy that outlives the view.
    public func makeCDR() -> CDR {
        CDR(storage: Array(storage), spans: Array(spans), format: format, isAnswered: isAnswered,
            billableSeconds: billableSeconds, startEpoch: startEpoch, answeredAt: answeredAt, identity: identity)
    }
}

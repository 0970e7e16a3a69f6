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
    /// The key the ledger dedupes on (SPEC 7): `ast:linkedid:sequence:start`, `fs:uuid`, or `h:` + hash.
    public let identity: String

    init(storage: [UInt8], spans: [Int32], format: CDRFormat, isAnswered: Bool,
         billableSeconds: Int64, startEpoch: Int64?, identity: String) {
        self.storage = storage
        self.spans = spans
        self.format = format
        self.isAnswered = isAnswered
        self.billableSeconds = billableSeconds
        self.startEpoch = startEpoch
        self.identity = identity
    }

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
}

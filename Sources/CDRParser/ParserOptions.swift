import Foundation

/// How one source's lines are laid out: format, optional columns, delimiter and time zone.
public struct ParserOptions: Sendable {
    public var format: CDRFormat
    /// asterisk-csv: the optional columns present (uniqueid, userfield, peeraccount, linkedid, sequence).
    public var extra: [String]?
    /// freeswitch-csv custom template / csv column mapping; "" or "-" ignores a column.
    public var columns: [String]?
    /// csv only.
    public var delimiter: UInt8
    /// How local timestamps ("2024-01-27 15:07:24") are turned into UTC epoch seconds.
    public var timeZone: TimeZone

    public init(format: CDRFormat, extra: [String]? = nil, columns: [String]? = nil,
                delimiter: UInt8 = UInt8(ascii: ","), timeZone: TimeZone = TimeZone(identifier: "UTC") ?? .gmt) {
        self.format = format
        self.extra = extra
        self.columns = columns
        self.delimiter = delimiter
        self.timeZone = timeZone
    }
}

/// Why one line could not become a CDR: a short machine code and a sentence for the quarantine.
public struct ParseFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// `bad_line`, `column_count`, `bad_number`, `bad_time`, `bad_json` or `missing_field`.
    public var reason: String
    public var message: String

    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason): \(message)" }

    /// Every `reason` a parser can give, for commands that filter the quarantine by reason.
    public static let reasons = ["bad_line", "column_count", "bad_number", "bad_time", "bad_json", "missing_field"]

    static func badLine(_ m: String) -> ParseFailure { .init(reason: "bad_line", message: m) }
    static func columnCount(_ m: String) -> ParseFailure { .init(reason: "column_count", message: m) }
    static func badNumber(_ m: String) -> ParseFailure { .init(reason: "bad_number", message: m) }
    static func badTime(_ m: String) -> ParseFailure { .init(reason: "bad_time", message: m) }
    static func badJSON(_ m: String) -> ParseFailure { .init(reason: "bad_json", message: m) }
    static func missingField(_ m: String) -> ParseFailure { .init(reason: "missing_field", message: m) }
}

/// A parser or filter setting that cannot work; the description names the bad value and its key.
public enum ParserConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownColumn(String)
    case duplicateColumn(String)
    case badExtra(String)
    case duplicateExtra(String)
    case extraNotAllowed(CDRFormat)
    case columnsRequired(CDRFormat)
    case columnsNotAllowed(CDRFormat)
    case missingColumn(CDRField)
    case badDelimiter(UInt8)
    case badRegex(key: String, pattern: String, message: String)
    case emptyFilterList(key: String)

    public var description: String {
        switch self {
        case .unknownColumn(let n):
            return "columns: unknown field name \"\(n)\" (use a name such as accountcode, src, dst, billsec, or \"\" to ignore the column)"
        case .duplicateColumn(let n):
            return "columns: field \"\(n)\" is mapped twice"
        case .badExtra(let n):
            return "extra: \"\(n)\" is not an optional cdr_csv column (expected uniqueid, userfield, peeraccount, linkedid, sequence)"
        case .duplicateExtra(let n):
            return "extra: \"\(n)\" is listed twice"
        case .extraNotAllowed(let f):
            return "extra: only the asterisk-csv format takes `extra`, not \(f.rawValue) (use `columns`)"
        case .columnsRequired(let f):
            return "columns: the \(f.rawValue) format needs `columns = [...]` naming each column's field"
        case .columnsNotAllowed(let f):
            return "columns: the \(f.rawValue) format has a fixed layout; use `extra` for its optional columns"
        case .missingColumn(let f):
            return "columns: no column is mapped to \(f.rawValue), which rating needs"
        case .badDelimiter(let b):
            return "delimiter: \(b < 0x80 ? "\"\(Character(Unicode.Scalar(b)))\"" : "byte \(b)") cannot separate fields (a quote, CR or LF)"
        case .badRegex(let key, let pattern, let message):
            return "filter \(key): \"\(pattern)\" is not a valid regular expression"
                + (message.isEmpty ? "" : " (\(message))")
        case .emptyFilterList(let key):
            return "filter \(key): the list is empty, which would reject every CDR; remove the key to accept all"
        }
    }
}

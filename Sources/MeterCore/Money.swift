/// Credits as integers: 1 credit = 1,000,000 micro-credits (µcr) in an Int64.
///
/// Every amount that crosses a boundary (config, rate deck, CLI, JSON, SQLite)
/// goes through `Money.parse` / `Money.format`, so no floating point ever sees money.
public enum Money {
    public static let microPerCredit: Int64 = 1_000_000
    public static let fractionDigits = 6

    public enum ParseError: Error, Equatable, CustomStringConvertible, Sendable {
        case empty
        case invalidCharacter(Character)
        case tooManyFractionDigits
        case negativeNotAllowed
        case overflow

        public var description: String {
            switch self {
            case .empty: return "is empty"
            case .invalidCharacter(let c): return "has an invalid character '\(c)' (expected digits and at most one '.')"
            case .tooManyFractionDigits: return "has more than 6 fractional digits"
            case .negativeNotAllowed: return "must not be negative"
            case .overflow: return "is too large"
            }
        }
    }

    /// Parses a decimal credit amount ("100", "0.0125", "-3.25") into µcr.
    public static func parse(_ text: some StringProtocol, allowNegative: Bool = false) throws(ParseError) -> Int64 {
        var utf8 = Array(text.utf8)
        return try utf8.withUnsafeMutableBufferPointer { buf throws(ParseError) -> Int64 in
            try parse(bytes: UnsafeBufferPointer(buf), allowNegative: allowNegative)
        }
    }

    /// Byte-level parser used on hot paths (rate decks, CDR fields) to avoid building Strings.
    public static func parse(bytes: UnsafeBufferPointer<UInt8>, allowNegative: Bool = false) throws(ParseError) -> Int64 {
        var i = 0
        let n = bytes.count
        // Surrounding blanks are tolerated: spreadsheets and hand-edited decks add them.
        var end = n
        while i < end, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
        while end > i, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        guard i < end else { throw .empty }
        var negative = false
        if bytes[i] == UInt8(ascii: "-") {
            guard allowNegative else { throw .negativeNotAllowed }
            negative = true
            i += 1
        } else if bytes[i] == UInt8(ascii: "+") {
            i += 1
        }
        var whole: Int64 = 0
        var frac: Int64 = 0
        var fracDigits = 0
        var sawDigit = false
        var inFraction = false
        while i < end {
            let b = bytes[i]
            if b >= 0x30 && b <= 0x39 {
                sawDigit = true
                let d = Int64(b - 0x30)
                if inFraction {
                    fracDigits += 1
                    if fracDigits > fractionDigits {
                        // Trailing zeros beyond 6 digits change nothing and are accepted.
                        if d != 0 { throw .tooManyFractionDigits }
                    } else {
                        frac = frac * 10 + d
                    }
                } else {
                    let (m, o1) = whole.multipliedReportingOverflow(by: 10)
                    let (s, o2) = m.addingReportingOverflow(d)
                    if o1 || o2 { throw .overflow }
                    whole = s
                }
            } else if b == UInt8(ascii: ".") && !inFraction {
                inFraction = true
            } else {
                throw .invalidCharacter(Character(Unicode.Scalar(b)))
            }
            i += 1
        }
        guard sawDigit else { throw .empty }
        while fracDigits < fractionDigits { frac *= 10; fracDigits += 1 }
        let (m, o1) = whole.multipliedReportingOverflow(by: microPerCredit)
        let (total, o2) = m.addingReportingOverflow(frac)
        if o1 || o2 { throw .overflow }
        return negative ? -total : total
    }

    /// Formats µcr as credits with trailing fractional zeros removed: `100`, `22.5`, `0.000001`, `-3.25`.
    public static func format(_ micro: Int64) -> String { format(Int128(micro)) }

    /// A sum of many amounts, which can be past Int64 (totals across clients are summed wide, never trapped).
    public static func format(_ wide: Int128) -> String {
        let magnitude = wide < 0 ? -wide : wide
        let whole = magnitude / Int128(microPerCredit)
        var frac = magnitude % Int128(microPerCredit)
        var out = wide < 0 ? "-" : ""
        out += String(whole)
        if frac != 0 {
            var digits = 6
            while frac % 10 == 0 { frac /= 10; digits -= 1 }
            let s = String(frac)
            out += "." + String(repeating: "0", count: digits - s.count) + s
        }
        return out
    }
}

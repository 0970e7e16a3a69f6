#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Structured mutation of real input lines: byte flips, truncation, inserted delimiters, quotes, line
/// breaks, NULs and 0xFF, field swaps and replacements with edge-case tokens, huge fields, many
/// columns, deep nesting, and splices of two inputs. One to four mutations are stacked per input.
struct Mutator {
    /// The bytes parsers treat specially, and a few that no parser should treat specially.
    static let interestingBytes: [UInt8] = [
        0x00, 0xFF, 0xFE, 0x22, 0x27, 0x2C, 0x3B, 0x7C, 0x09, 0x0A, 0x0D, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D,
        0x3A, 0x20, 0x1F, 0x80, 0xC3, 0xEF, 0xBB, 0xBF, 0x2D, 0x2B, 0x2E, 0x30, 0x39, 0x65, 0x3D, 0x23, 0x2A,
    ]

    /// Field values at the edges of what each field accepts: numbers that overflow, times that do not
    /// exist, quotes that do not close, escapes that are not escapes.
    static let tokens: [String] = [
        "", " ", "-", "-1", "0", "1", "00", "9223372036854775807", "9223372036854775808", "18446744073709551616",
        "99999999999999999999999999999", "1e309", "1E5", "-0", "0.000", "1.000", "12.", ".5", "1.5", "NaN", "inf",
        "null", "true", "false", "\"", "\"\"", "\"\"\"", "\",\"", "\", \"", "\",\"\",\"", ",", ",,", "\\", "\\\"",
        "2024-01-27 15:07:24", "2024-02-30 10:00:00", "2024-02-29 23:59:60", "2023-02-29 00:00:00",
        "9999-12-31 23:59:59", "0000-01-01 00:00:00", "-999-01-01 00:00:00", "2024-13-01 00:00:00",
        "2024-01-01T00:00:00+14:00", "2024-01-01 00:00:00+15:00", "2024-01-01 00:00:00 +2:00",
        "2024-01-01 00:00:00.999999999999999", "2024-01-01 00:00:00Z", "2024-01-01 00:00:00 UTC",
        "2024-03-31 02:30:00", "2024-10-27 02:30:00", "1706368044", "1706368044.123", "999999999999",
        "9999999999999", "0.", "ANSWERED", "answered", "NO ANSWER", "BUSY", "+", "++44", "*", "*97", "#",
        "\u{FEFF}", "\u{FFFD}", "\u{1F4DE}", "M\u{FC}ller", "\\u0000", "\\uD800", "\\uDBFF\\uDFFF", "\\uDC00",
        "\\u00e9", "\\x", "{}", "[]", "{\"a\":[1,{\"b\":\"}\"}]}", "[[[[]]]]", "sip:+44123@host;user=phone",
        "NORMAL_CLEARING", "Local/1000@from-internal-00000001;1", "1767261600.1", "ast:1:2:3",
    ]

    var rng: FuzzRNG
    /// Other inputs of the same kind, for splices.
    let corpus: [[UInt8]]
    /// The field separator the input mostly uses (mutations aim at its fields).
    let delimiter: UInt8

    init(rng: FuzzRNG, corpus: [[UInt8]], delimiter: UInt8 = UInt8(ascii: ",")) {
        self.rng = rng
        self.corpus = corpus
        self.delimiter = delimiter
    }

    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var b = input
        for _ in 0..<rng.int(1...4) { b = once(b) }
        return b
    }

    mutating func once(_ input: [UInt8]) -> [UInt8] {
        var b = input
        let roll = rng.below(100)
        switch roll {
        case 0..<10:  // flip a bit
            if !b.isEmpty { b[rng.below(b.count)] ^= UInt8(1 << rng.below(8)) }
        case 10..<18:  // set a byte to a special one
            if !b.isEmpty { b[rng.below(b.count)] = rng.pick(Self.interestingBytes) }
        case 18..<28:  // insert special bytes
            let n = rng.chance(80) ? 1 : rng.int(2...16)
            let at = rng.below(b.count + 1)
            b.insert(contentsOf: (0..<n).map { _ in rng.pick(Self.interestingBytes) }, at: at)
        case 28..<34:  // delete a range
            if !b.isEmpty {
                let s = rng.below(b.count)
                let e = min(b.count, s + rng.int(1...max(1, min(64, b.count))))
                b.removeSubrange(s..<e)
            }
        case 34..<40:  // truncate
            b = Array(b.prefix(rng.below(b.count + 1)))
        case 40..<60:  // replace a field by a token, bare or quoted
            b = replaceField(b)
        case 60..<66:  // swap, duplicate or drop fields
            b = shuffleFields(b)
        case 66..<72:  // splice with another input
            if let other = corpus.isEmpty ? nil : rng.pick(corpus) {
                let cut = rng.below(b.count + 1)
                let from = rng.below(other.count + 1)
                b = Array(b[..<cut]) + Array(other[from...])
            }
        case 72..<76:  // a huge field
            let at = rng.below(b.count + 1)
            let n = rng.chance(70) ? rng.int(1_000...20_000) : rng.int(20_000...200_000)
            let fill = rng.pick([UInt8(ascii: "A"), UInt8(ascii: "9"), UInt8(ascii: "\""), delimiter, 0xFF, 0x20])
            b.insert(contentsOf: [UInt8](repeating: fill, count: n), at: at)
        case 76..<80:  // many columns
            let at = rng.below(b.count + 1)
            let n = rng.pick([2, 5, 16, 254, 255, 256, 300, 1_000, 10_000])
            let cell: [UInt8] = rng.chance(50) ? [delimiter] : Array("\"x\"".utf8) + [delimiter]
            b.insert(contentsOf: Self.repeated(cell, n), at: at)
        case 80..<84:  // deep nesting
            let at = rng.below(b.count + 1)
            let n = rng.pick([1, 2, 63, 64, 65, 100, 1_000, 100_000])
            let open: [UInt8] = rng.chance(50) ? [UInt8(ascii: "[")] : Array("{\"a\":".utf8)
            var nest = Self.repeated(open, n)
            if rng.chance(60) {
                let close: [UInt8] = [open[0] == UInt8(ascii: "[") ? UInt8(ascii: "]") : UInt8(ascii: "}")]
                nest += Self.repeated(close, rng.chance(80) ? n : rng.below(n + 1))
            }
            b.insert(contentsOf: nest, at: at)
        case 84..<88:  // line ends, BOMs and stray separators at the edges
            switch rng.below(6) {
            case 0: b.append(0x0D)
            case 1: b = [0xEF, 0xBB, 0xBF] + b
            case 2: b.append(delimiter)
            case 3: b = [delimiter] + b
            case 4: b.append(contentsOf: [0x0D, 0x0A] + (corpus.isEmpty ? [] : rng.pick(corpus)))
            default: b = [0x20, 0x09] + b + [0x20]
            }
        case 88..<94:  // quote or unquote a field
            b = requoteField(b)
        default:  // a run of one byte repeated
            if !b.isEmpty {
                let at = rng.below(b.count)
                b.insert(contentsOf: [UInt8](repeating: b[at], count: rng.int(1...64)), at: at)
            }
        }
        return b
    }

    /// Byte ranges of the fields separated by `delimiter` (quotes ignored: mutations may split a
    /// quoted field, which is itself a useful mutation).
    func fieldRanges(_ b: [UInt8]) -> [Range<Int>] {
        // memchr rather than a Swift loop: the test target is built without optimisation and inputs
        // reach a few hundred KiB, so a byte loop here would dominate the fuzzing budget.
        b.withUnsafeBufferPointer { p -> [Range<Int>] in
            var out: [Range<Int>] = []
            guard let base = p.baseAddress else { return [0..<0] }
            var start = 0
            while start <= p.count {
                guard start < p.count, let hit = memchr(base + start, Int32(delimiter), p.count - start) else {
                    out.append(start..<p.count)
                    break
                }
                let i = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                out.append(start..<i)
                start = i + 1
            }
            return out
        }
    }

    /// `unit` repeated `n` times, by doubling (few large copies instead of many small appends).
    static func repeated(_ unit: [UInt8], _ n: Int) -> [UInt8] {
        guard n > 0, !unit.isEmpty else { return [] }
        var out = unit
        out.reserveCapacity(unit.count * n)
        while out.count * 2 <= unit.count * n { out += out }
        out += out[0..<(unit.count * n - out.count)]
        return out
    }

    mutating func replaceField(_ b: [UInt8]) -> [UInt8] {
        let fields = fieldRanges(b)
        let r = rng.pick(fields)
        var token = Array(rng.pick(Self.tokens).utf8)
        let inner = b[r]
        if rng.chance(40) || (inner.first == UInt8(ascii: "\"") && rng.chance(70)) {
            token = [UInt8(ascii: "\"")] + token + [UInt8(ascii: "\"")]
        }
        var out = b
        out.replaceSubrange(r, with: token)
        return out
    }

    mutating func shuffleFields(_ b: [UInt8]) -> [UInt8] {
        var parts = fieldRanges(b).map { Array(b[$0]) }
        guard !parts.isEmpty else { return b }
        switch rng.below(4) {
        case 0:
            let i = rng.below(parts.count), j = rng.below(parts.count)
            parts.swapAt(i, j)
        case 1:
            let i = rng.below(parts.count)
            parts.insert(parts[i], at: i)
        case 2:
            parts.remove(at: rng.below(parts.count))
        default:
            parts.shuffle(using: &rng)
        }
        var out: [UInt8] = []
        out.reserveCapacity(b.count + 1)
        for (k, part) in parts.enumerated() {
            if k > 0 { out.append(delimiter) }
            out += part
        }
        return out
    }

    mutating func requoteField(_ b: [UInt8]) -> [UInt8] {
        let r = rng.pick(fieldRanges(b))
        var field = Array(b[r])
        let q = UInt8(ascii: "\"")
        if field.count >= 2, field.first == q, field.last == q {
            field = Array(field.dropFirst().dropLast())
        } else if rng.chance(50) {
            field = [q] + field + [q]
        } else {
            field.insert(q, at: rng.below(field.count + 1))
        }
        var out = b
        out.replaceSubrange(r, with: field)
        return out
    }
}

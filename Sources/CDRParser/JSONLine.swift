import MeterCore

/// A small scanner for one JSON object per line: string, number, boolean and null members
/// become field values; anything malformed is a `bad_json` failure, never a crash.
struct JSONLine {
    /// One member: the key (unescaped) and the value's span in `storage`, and whether the
    /// value was an object or array (which no CDR field accepts).
    struct Member {
        var key: [UInt8]
        var start: Int
        var end: Int
        var nested: Bool
    }

    private let p: UnsafeBufferPointer<UInt8>
    private var i = 0
    private(set) var storage: [UInt8] = []
    private(set) var members: [Member] = []

    private init(_ p: UnsafeBufferPointer<UInt8>) {
        self.p = p
        storage.reserveCapacity(p.count + 16)
    }

    static func scan(_ p: UnsafeBufferPointer<UInt8>) throws(ParseFailure) -> (storage: [UInt8], members: [Member]) {
        var s = JSONLine(p)
        try s.object()
        return (s.storage, s.members)
    }

    /// The span of the first element of the JSON array `p` (an object or array itself), or of `p`
    /// when it is not an array; nil for an empty array.
    static func firstElement(_ p: UnsafeBufferPointer<UInt8>) throws(ParseFailure) -> Range<Int>? {
        var s = JSONLine(p)
        s.skipBlanks()
        guard s.i < p.count, p[s.i] == UInt8(ascii: "[") else { return 0..<p.count }
        s.i += 1
        s.skipBlanks()
        guard s.i < p.count, p[s.i] != UInt8(ascii: "]") else { return nil }
        guard p[s.i] == UInt8(ascii: "{") || p[s.i] == UInt8(ascii: "[") else { throw s.fail("expected an object") }
        let start = s.i
        try s.skipNested()
        return start..<s.i
    }

    private mutating func skipBlanks() {
        while i < p.count, p[i] == 0x20 || p[i] == 0x09 || p[i] == 0x0D || p[i] == 0x0A { i += 1 }
    }

    private func fail(_ what: String) -> ParseFailure {
        .badJSON("\(what) at byte \(i + 1)")
    }

    private mutating func expect(_ b: UInt8) throws(ParseFailure) {
        skipBlanks()
        guard i < p.count, p[i] == b else { throw fail("expected '\(Character(Unicode.Scalar(b)))'") }
        i += 1
    }

    private mutating func object() throws(ParseFailure) {
        try expect(UInt8(ascii: "{"))
        skipBlanks()
        if i < p.count, p[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skipBlanks()
                guard i < p.count, p[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                let keyStart = storage.count
                try string()
                let key = Array(storage[keyStart...])
                storage.removeSubrange(keyStart...)
                try expect(UInt8(ascii: ":"))
                skipBlanks()
                let start = storage.count
                let nested = try value()
                members.append(Member(key: key, start: start, end: storage.count, nested: nested))
                storage.append(Splitter.unitSeparator)
                skipBlanks()
                guard i < p.count else { throw fail("unterminated object") }
                if p[i] == UInt8(ascii: ",") { i += 1; continue }
                if p[i] == UInt8(ascii: "}") { i += 1; break }
                throw fail("expected ',' or '}'")
            }
        }
        skipBlanks()
        guard i == p.count else { throw fail("text after the object") }
    }

    /// Appends the value's text to storage; returns true for an object or array (kept raw).
    private mutating func value() throws(ParseFailure) -> Bool {
        guard i < p.count else { throw fail("missing value") }
        switch p[i] {
        case UInt8(ascii: "\""):
            try string()
            return false
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let start = i
            try skipNested()
            storage.append(contentsOf: UnsafeBufferPointer(rebasing: p[start..<i]))
            return true
        case UInt8(ascii: "t"):
            try literal("true")
        case UInt8(ascii: "f"):
            try literal("false")
        case UInt8(ascii: "n"):
            try literal("null", keep: false)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = i
            while i < p.count {
                let b = p[i]
                let ok = (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+")
                    || b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
                if !ok { break }
                i += 1
            }
            storage.append(contentsOf: UnsafeBufferPointer(rebasing: p[start..<i]))
        default:
            throw fail("unexpected character")
        }
        return false
    }

    private mutating func literal(_ word: StaticString, keep: Bool = true) throws(ParseFailure) {
        let n = word.utf8CodeUnitCount
        guard i + n <= p.count else { throw fail("bad literal") }
        let w = UnsafeBufferPointer(start: word.utf8Start, count: n)
        for k in 0..<n where p[i + k] != w[k] { throw fail("bad literal") }
        if keep { storage.append(contentsOf: w) }
        i += n
    }

    /// Unescapes a string into storage. Raw bytes that are not UTF-8 are kept as they are.
    private mutating func string() throws(ParseFailure) {
        i += 1  // opening quote
        while true {
            guard i < p.count else { throw fail("unterminated string") }
            let b = p[i]
            if b == UInt8(ascii: "\"") { i += 1; return }
            if b == UInt8(ascii: "\\") {
                guard i + 1 < p.count else { throw fail("unterminated escape") }
                let e = p[i + 1]
                i += 2
                if let c = JSONEscape.simple(e) {
                    storage.append(c)
                    continue
                }
                guard e == UInt8(ascii: "u") else { throw fail("bad escape") }
                var scalar = try hex4()
                if scalar >= 0xD800, scalar < 0xDC00 {
                    // A high surrogate must pair with a low one; a lone one becomes U+FFFD.
                    if i + 1 < p.count, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let low = try hex4()
                        scalar = (low >= 0xDC00 && low < 0xE000)
                            ? 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00) : 0xFFFD
                    } else {
                        scalar = 0xFFFD
                    }
                } else if scalar >= 0xDC00, scalar < 0xE000 {
                    scalar = 0xFFFD
                }
                let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                storage.append(contentsOf: String(Character(u)).utf8)
                continue
            }
            if b < 0x20 { throw fail("control character in a string") }
            storage.append(b)
            i += 1
        }
    }

    private mutating func hex4() throws(ParseFailure) -> UInt32 {
        guard let v = JSONEscape.hex4(p, at: &i) else { throw fail("bad \\u escape") }
        return v
    }

    /// Skips a nested object or array, strings included, without building anything.
    private mutating func skipNested() throws(ParseFailure) {
        var depth = 0
        while i < p.count {
            let b = p[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                while i < p.count, p[i] != UInt8(ascii: "\"") {
                    i += p[i] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard i < p.count else { throw fail("unterminated string") }
            } else if b == UInt8(ascii: "{") || b == UInt8(ascii: "[") {
                depth += 1
                guard depth <= 64 else { throw fail("nesting too deep") }
            } else if b == UInt8(ascii: "}") || b == UInt8(ascii: "]") {
                depth -= 1
                if depth == 0 { i += 1; return }
            }
            i += 1
        }
        throw fail("unterminated object or array")
    }
}

/// Where each key of a TOML document sits, by key path (`source[1].filter.dcontext`).
///
/// TOMLKit 0.6.0 exposes source positions only for parse errors, not for nodes, so this re-reads
/// the (already validated) text with a small scanner: it tracks `[table]` and `[[array]]` headers,
/// counts array-of-tables occurrences, and walks values (strings of all four kinds, arrays, inline
/// tables, comments) so that nothing inside a value is mistaken for a key.
struct KeyLines: Sendable {
    private(set) var lines: [String: Int] = [:]
    /// The first text TOMLKit 0.6.0 would crash on instead of reporting (found by fuzzing), with the
    /// error to report instead; `ConfigReader` refuses the config before TOMLKit sees it:
    /// - a table header whose key does not start with a key character or quote (`[$]`, `[=]`, `[` alone on
    ///   a line), and `}` where an array element should be (`a = [}`): toml++ 3.x asserts, aborting the
    ///   process, release builds included;
    /// - a quoted key with a NUL escape (`"a\u0000"`): TOMLKit hands keys over as C strings, so the key
    ///   comes back cut short, is not found in its own table, and the table iterator traps.
    private(set) var refusal: (line: Int, message: String)?

    /// The line of `path`, or of its nearest ancestor that has one (a key inside an inline table
    /// that the scanner could not place still points at its table).
    func line(_ path: String) -> Int? {
        var p = Substring(path)
        while !p.isEmpty {
            if let l = lines[String(p)] { return l }
            guard let cut = p.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            p = p[..<cut]
        }
        return nil
    }

    init() {}

    init(scanning text: String) {
        var s = Scanner(bytes: Array(text.utf8))
        s.run()
        lines = s.lines
        refusal = s.refusal
    }

    private struct Scanner {
        let bytes: [UInt8]
        var pos = 0
        var line = 1
        var lines: [String: Int] = [:]
        var arrayCounts: [String: Int] = [:]
        var table = ""
        var refusal: (line: Int, message: String)?
        /// Arrays and inline tables open right now. The scanner recurses per level and now also reads
        /// text TOMLKit has not validated, so past toml++'s own limit (256, an error there) it stops
        /// descending and steps over the brackets one at a time instead of overflowing the stack.
        var depth = 0
        static let maxDepth = 300

        init(bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { pos >= bytes.count }
        var cur: UInt8 { bytes[pos] }
        func peek(_ k: Int) -> UInt8? { pos + k < bytes.count ? bytes[pos + k] : nil }

        mutating func advance() {
            if bytes[pos] == 0x0A { line += 1 }
            pos += 1
        }

        mutating func record(_ path: String, _ l: Int) {
            if lines[path] == nil { lines[path] = l }
        }

        static func join(_ a: String, _ b: String) -> String { a.isEmpty ? b : a + "." + b }

        mutating func skipBlanks() {
            while !atEnd, cur == 0x20 || cur == 0x09 { pos += 1 }
        }

        /// Blanks, newlines and comments.
        mutating func skipTrivia() {
            while !atEnd {
                if cur == 0x20 || cur == 0x09 || cur == 0x0A || cur == 0x0D { advance() }
                else if cur == UInt8(ascii: "#") { skipComment() }
                else { break }
            }
        }

        mutating func skipComment() {
            while !atEnd, cur != 0x0A { pos += 1 }
        }

        mutating func skipLine() {
            while !atEnd, cur != 0x0A { pos += 1 }
            if !atEnd { advance() }
        }

        mutating func run() {
            // toml++ skips a UTF-8 byte-order mark; so must this, or a header right after it goes unseen.
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }
            while true {
                skipTrivia()
                if atEnd { return }
                let l = line
                if cur == UInt8(ascii: "[") {
                    if !headerStartsWithKey() {
                        refuse(l, "TOML syntax: a table header must name its table, as in [source] or [[source]]")
                    }
                    let isArray = peek(1) == UInt8(ascii: "[")
                    pos += isArray ? 2 : 1
                    let parts = readKeyPath()
                    header(parts, isArray: isArray, line: l)
                    skipLine()
                } else {
                    let parts = readKeyPath()
                    guard !parts.isEmpty, !atEnd, cur == UInt8(ascii: "=") else { skipLine(); continue }
                    pos += 1
                    let path = keyPath(base: table, parts: parts, line: l)
                    skipBlanks()
                    skipValue(path: path)
                }
            }
        }

        /// What toml++ checks only with an assertion: after `[` or `[[` and blanks comes a key (bare or
        /// quoted), or something it reports as an error itself (`]`, the end, `[ [`).
        func headerStartsWithKey() -> Bool {
            var k = pos + 1
            var blank = false
            while k < bytes.count, bytes[k] == 0x20 || bytes[k] == 0x09 { k += 1; blank = true }
            if k < bytes.count, bytes[k] == UInt8(ascii: "["), !blank {
                k += 1
                while k < bytes.count, bytes[k] == 0x20 || bytes[k] == 0x09 { k += 1 }
            }
            guard k < bytes.count else { return true }
            let b = bytes[k]
            return isBareKeyByte(b) || b == UInt8(ascii: "\"") || b == UInt8(ascii: "'") || b == UInt8(ascii: "]")
                || (blank && b == UInt8(ascii: "["))
        }

        /// Records every prefix of a dotted key (`a.b = 1` defines `a` too) and returns the full path.
        mutating func keyPath(base: String, parts: [String], line l: Int) -> String {
            var path = base
            for p in parts {
                path = Self.join(path, p)
                record(path, l)
            }
            return path
        }

        mutating func header(_ parts: [String], isArray: Bool, line l: Int) {
            var path = ""
            for (k, p) in parts.enumerated() {
                path = Self.join(path, p)
                let last = k == parts.count - 1
                if last && isArray {
                    let n = arrayCounts[path, default: 0]
                    arrayCounts[path] = n + 1
                    record(path, l)
                    path += "[\(n)]"
                    record(path, l)
                } else if let n = arrayCounts[path] {
                    // A sub-table header refers to the latest element of an array of tables.
                    path += "[\(n - 1)]"
                }
            }
            if !isArray { record(path, l) }
            table = path
        }

        /// A dotted key of bare and quoted parts; stops before `=`, `]` or the end of the line.
        mutating func readKeyPath() -> [String] {
            var parts: [String] = []
            while true {
                skipBlanks()
                guard !atEnd else { return parts }
                let c = cur
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                    parts.append(readQuotedKey(c))
                } else {
                    let start = pos
                    while !atEnd, isBareKeyByte(cur) { pos += 1 }
                    if pos == start { return parts }
                    parts.append(String(decoding: bytes[start ..< pos], as: UTF8.self))
                }
                skipBlanks()
                guard !atEnd, cur == UInt8(ascii: ".") else { return parts }
                pos += 1
            }
        }

        func isBareKeyByte(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }

        mutating func readQuotedKey(_ q: UInt8) -> String {
            pos += 1
            var out: [UInt8] = []
            while !atEnd, cur != q, cur != 0x0A {
                if q == UInt8(ascii: "\""), cur == UInt8(ascii: "\\"), let n = peek(1) {
                    if isNulEscape(n) { refuse(line, "a key must not contain a NUL character (\\u0000)") }
                    // Only the escapes a key is likely to use; others keep their letter.
                    out.append(n == UInt8(ascii: "t") ? 0x09 : n)
                    pos += 2
                    continue
                }
                out.append(cur)
                pos += 1
            }
            if !atEnd, cur == q { pos += 1 }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func refuse(_ line: Int, _ message: String) {
            if refusal == nil { refusal = (line, message) }
        }

        /// `2024-12-31 1` then a blank or the end of the value: toml++ takes the space for a date-time
        /// separator and asserts on the one-digit "time" (`!is_value_terminator` in parse_value).
        func isDateThenOneDigit(_ start: Int) -> Bool {
            guard pos - start >= 12 else { return false }
            func digit(_ k: Int) -> Bool { bytes[start + k] >= 0x30 && bytes[start + k] <= 0x39 }
            guard (0..<4).allSatisfy(digit), bytes[start + 4] == UInt8(ascii: "-"), digit(5), digit(6),
                  bytes[start + 7] == UInt8(ascii: "-"), digit(8), digit(9), bytes[start + 10] == 0x20, digit(11)
            else { return false }
            return pos - start == 12 || bytes[start + 12] == 0x20 || bytes[start + 12] == 0x09
        }

        /// `\u0000` or `\U00000000` at `pos` (the backslash), `n` being the letter after it.
        func isNulEscape(_ n: UInt8) -> Bool {
            let digits = n == UInt8(ascii: "u") ? 4 : n == UInt8(ascii: "U") ? 8 : 0
            guard digits > 0, pos + 2 + digits <= bytes.count else { return false }
            return bytes[(pos + 2)..<(pos + 2 + digits)].allSatisfy { $0 == UInt8(ascii: "0") }
        }

        mutating func skipValue(path: String) {
            guard !atEnd else { return }
            switch cur {
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                skipString()
            case UInt8(ascii: "["):
                skipArray(path: path)
            case UInt8(ascii: "{"):
                skipInlineTable(path: path)
            default:
                let start = pos
                while !atEnd {
                    let c = cur
                    if c == 0x0A || c == 0x0D || c == UInt8(ascii: ",") || c == UInt8(ascii: "]")
                        || c == UInt8(ascii: "}") || c == UInt8(ascii: "#") { break }
                    pos += 1
                }
                if isDateThenOneDigit(start) {
                    refuse(line, "TOML syntax: a date followed by a space must continue with a time (HH:MM:SS)")
                }
            }
        }

        mutating func skipString() {
            let q = cur
            let triple = peek(1) == q && peek(2) == q
            if triple {
                pos += 3
                while !atEnd {
                    if q == UInt8(ascii: "\""), cur == UInt8(ascii: "\\") { pos += 1; if !atEnd { advance() }; continue }
                    if cur == q, peek(1) == q, peek(2) == q {
                        pos += 3
                        // Up to two more quotes may close the string ("""" is a quote then the end).
                        while !atEnd, cur == q { pos += 1 }
                        return
                    }
                    advance()
                }
                return
            }
            pos += 1
            while !atEnd, cur != 0x0A {
                if q == UInt8(ascii: "\""), cur == UInt8(ascii: "\\") { pos += 2; continue }
                if cur == q { pos += 1; return }
                pos += 1
            }
        }

        mutating func skipArray(path: String) {
            guard depth < Self.maxDepth else { return }
            depth += 1
            defer { depth -= 1 }
            pos += 1
            var index = 0
            var expectingValue = true
            while true {
                skipTrivia()
                guard !atEnd else { return }
                if cur == UInt8(ascii: "]") { pos += 1; return }
                if cur == UInt8(ascii: ",") { pos += 1; index += 1; expectingValue = true; continue }
                if cur == UInt8(ascii: "}"), expectingValue {
                    refuse(line, "TOML syntax: '}' where an array element or ']' should be")
                }
                expectingValue = false
                // Each element's path copies its array's path: with a huge key, thousands of elements or
                // deep nesting that is quadratic (a 400 KB line took minutes). No real config needs
                // element lines there, so past those bounds elements share the array's line.
                var element = path
                if index < 1_000, depth < 64, path.utf8.count < 4_096 {
                    element = path + "[\(index)]"
                    record(element, line)
                }
                let before = pos
                skipValue(path: element)
                if pos == before { pos += 1 }  // never stall on text the scanner does not understand
            }
        }

        mutating func skipInlineTable(path: String) {
            guard depth < Self.maxDepth else { return }
            depth += 1
            defer { depth -= 1 }
            pos += 1
            while true {
                skipTrivia()
                guard !atEnd else { return }
                if cur == UInt8(ascii: "}") { pos += 1; return }
                if cur == UInt8(ascii: ",") { pos += 1; continue }
                let l = line
                let parts = readKeyPath()
                skipBlanks()
                guard !parts.isEmpty, !atEnd, cur == UInt8(ascii: "=") else {
                    if !atEnd { pos += 1 }
                    continue
                }
                pos += 1
                let keyPath = keyPath(base: path, parts: parts, line: l)
                skipBlanks()
                skipValue(path: keyPath)
            }
        }
    }
}

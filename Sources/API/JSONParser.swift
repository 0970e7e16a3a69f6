import MeterCore

/// Parses request bodies into `JSONValue`, keeping numbers as their exact text so that an amount
/// sent as a JSON number (`12.5`) reaches `Money.parse` without passing through a Double.
public enum JSONParser {
    /// Where and why a body is not JSON.
    public struct Failure: Error, Equatable, CustomStringConvertible, Sendable {
        public var offset: Int
        public var message: String
        public var description: String { "invalid JSON at byte \(offset + 1): \(message)" }
    }

    /// Parses one JSON document; surrounding whitespace is allowed, trailing text is not.
    public static func parse(_ bytes: [UInt8]) throws(Failure) -> JSONValue {
        var p = Parser(bytes: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.pos == bytes.count else { throw p.fail("unexpected text after the document") }
        return v
    }

    private struct Parser {
        let bytes: [UInt8]
        var pos = 0
        static let maxDepth = 32

        func fail(_ message: String) -> Failure { Failure(offset: pos, message: message) }

        mutating func skipSpace() {
            while pos < bytes.count, bytes[pos] == 0x20 || bytes[pos] == 0x0A || bytes[pos] == 0x0D || bytes[pos] == 0x09 {
                pos += 1
            }
        }

        mutating func literal(_ word: String, _ v: JSONValue) throws(Failure) -> JSONValue {
            let w = Array(word.utf8)
            guard pos + w.count <= bytes.count, Array(bytes[pos ..< pos + w.count]) == w else {
                throw fail("expected a value")
            }
            pos += w.count
            return v
        }

        mutating func value(depth: Int) throws(Failure) -> JSONValue {
            guard depth < Self.maxDepth else { throw fail("nested more than \(Self.maxDepth) levels") }
            guard pos < bytes.count else { throw fail("unexpected end of input") }
            switch bytes[pos] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "n"): return try literal("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"): return try number()
            default: throw fail("expected a value")
            }
        }

        mutating func object(depth: Int) throws(Failure) -> JSONValue {
            pos += 1
            var pairs: [(String, JSONValue)] = []
            var seen: Set<String> = []
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object([]) }
            while true {
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a key in quotes") }
                let keyAt = pos
                let key = try string()
                // A repeated key is ambiguous (which one wins differs between parsers): refuse it.
                guard seen.insert(key).inserted else { throw Failure(offset: keyAt, message: "key \"\(key)\" appears twice") }
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':' after a key") }
                pos += 1
                skipSpace()
                pairs.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard pos < bytes.count else { throw fail("unexpected end of input in an object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(pairs) }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws(Failure) -> JSONValue {
            pos += 1
            var items: [JSONValue] = []
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array([]) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard pos < bytes.count else { throw fail("unexpected end of input in an array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard pos + 4 <= bytes.count else { throw fail("short \\u escape") }
            guard let v = JSONEscape.hex4(bytes, at: &pos) else { throw fail("bad hex digit in a \\u escape") }
            return v
        }

        mutating func string() throws(Failure) -> String {
            pos += 1
            var out: [UInt8] = []
            while true {
                guard pos < bytes.count else { throw fail("unterminated string") }
                let b = bytes[pos]
                if b == UInt8(ascii: "\"") { pos += 1; break }
                if b < 0x20 { throw fail("control character in a string (escape it)") }
                if b != UInt8(ascii: "\\") { out.append(b); pos += 1; continue }
                pos += 1
                guard pos < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[pos]
                pos += 1
                if let c = JSONEscape.simple(e) { out.append(c); continue }
                guard e == UInt8(ascii: "u") else { throw fail("unknown escape \\\(Character(Unicode.Scalar(e)))") }
                var scalar = try hex4()
                if (0xD800 ... 0xDBFF).contains(scalar) {
                    guard pos + 2 <= bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                        throw fail("a high surrogate must be followed by a low one")
                    }
                    pos += 2
                    let low = try hex4()
                    guard (0xDC00 ... 0xDFFF).contains(low) else { throw fail("invalid low surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00 ... 0xDFFF).contains(scalar) {
                    throw fail("lone low surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
            return s
        }

        mutating func number() throws(Failure) -> JSONValue {
            let start = pos
            if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            func digits(_ p: inout Int, _ bytes: [UInt8]) -> Int {
                let s = p
                while p < bytes.count, bytes[p] >= 0x30, bytes[p] <= 0x39 { p += 1 }
                return p - s
            }
            guard pos < bytes.count else { throw fail("incomplete number") }
            if bytes[pos] == UInt8(ascii: "0") {
                pos += 1
            } else if digits(&pos, bytes) == 0 {
                throw fail("incomplete number")
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
                pos += 1
                guard digits(&pos, bytes) > 0 else { throw fail("digits must follow '.'") }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                pos += 1
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                guard digits(&pos, bytes) > 0 else { throw fail("digits must follow the exponent") }
            }
            let text = String(decoding: bytes[start ..< pos], as: UTF8.self)
            if let i = Int64(text) { return .int(i) }
            return .number(text)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte-level field splitters. Each writes every column's unescaped value followed by 0x1F into
/// `out` (capacity at least 2 * line.count + 2) and the column's end into `ends` (capacity
/// `maxColumns`); a column starts one past the previous column's end (its separator), the first at 0.
enum Splitter {
    static let unitSeparator: UInt8 = 0x1F
    static let quote = UInt8(ascii: "\"")
    /// More columns than this is not a CDR layout anyone writes; it stops garbage early.
    static let maxColumns = 255

    struct Output {
        var length = 0
        var columns = 0
    }

    /// RFC 4180-style: quoted fields with `""` escapes, bare fields up to the delimiter. Blanks
    /// before an opening quote are skipped (`"a", "b"`); a bare field may hold a stray quote.
    static func quoted(_ line: UnsafeBufferPointer<UInt8>, delimiter d: UInt8,
                       out: UnsafeMutablePointer<UInt8>, ends: UnsafeMutablePointer<Int32>) throws(ParseFailure) -> Output {
        let n = line.count
        // A blank line never gets here (the parser rejects it first), but an empty buffer has no address.
        guard let base = line.baseAddress else {
            ends[0] = 0; out[0] = unitSeparator
            return Output(length: 1, columns: 1)
        }
        var i = 0
        var o = 0
        var c = 0
        while true {
            guard c < maxColumns else { throw .columnCount("more than \(maxColumns) columns") }
            var j = i
            while j < n, base[j] == 0x20 { j += 1 }
            if j < n, base[j] == quote {
                i = j + 1
                var closed = false
                while i < n {
                    // Runs between quotes are copied whole; only a quote needs a decision.
                    let q = find(quote, base, from: i, to: n)
                    (out + o).update(from: base + i, count: q - i)
                    o += q - i
                    i = q
                    guard i < n else { break }
                    if i + 1 < n, base[i + 1] == quote {
                        out[o] = quote; o += 1; i += 2
                        continue
                    }
                    i += 1
                    closed = true
                    break
                }
                guard closed else { throw .badLine("column \(c + 1): a quoted field has no closing quote") }
                if i < n, base[i] != d {
                    throw .badLine("column \(c + 1): unexpected character after a closing quote (an unescaped quote inside a field?)")
                }
            } else {
                let e = find(d, base, from: i, to: n)
                (out + o).update(from: base + i, count: e - i)
                o += e - i
                i = e
            }
            ends[c] = Int32(o)
            out[o] = unitSeparator; o += 1
            c += 1
            if i >= n { break }
            i += 1  // the delimiter; a trailing one yields a final empty column
        }
        return Output(length: o, columns: c)
    }

    /// Index of the first `byte` in `base[i..<n]`, or `n`.
    @inline(__always)
    private static func find(_ byte: UInt8, _ base: UnsafePointer<UInt8>, from i: Int, to n: Int) -> Int {
        guard i < n, let hit = memchr(base + i, Int32(byte), n - i) else { return n }
        return UnsafeRawPointer(hit) - UnsafeRawPointer(base)
    }

    /// Whether a line has FreeSWITCH's all-quoted shape: starts and ends with a quote.
    static func isFullyQuoted(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        line.count >= 2 && line[0] == quote && line[line.count - 1] == quote
    }

    /// mod_cdr_csv writes `"v1","v2",...` and never escapes a quote inside a value, so the first
    /// and last quote of the line delimit the record and `","` (also `", "`, as in the built-in
    /// default template) separates values; any other quote belongs to a value.
    static func freeswitch(_ line: UnsafeBufferPointer<UInt8>,
                           out: UnsafeMutablePointer<UInt8>, ends: UnsafeMutablePointer<Int32>) throws(ParseFailure) -> Output {
        let end = line.count - 1  // index of the closing quote
        var o = 0
        var c = 0
        var j = 1
        while j < end {
            let b = line[j]
            if b == quote, j + 1 < end, line[j + 1] == UInt8(ascii: ",") {
                var k = j + 2
                while k < end, line[k] == 0x20 { k += 1 }
                if k < end, line[k] == quote {
                    guard c + 1 < maxColumns else { throw .columnCount("more than \(maxColumns) columns") }
                    // `","","` could split either way (a value ending in `",` or starting with `,"`):
                    // quarantine the line rather than guess and shift every later field.
                    var m = k + 1
                    if m < end, line[m] == UInt8(ascii: ",") {
                        m += 1
                        while m < end, line[m] == 0x20 { m += 1 }
                        if m < end, line[m] == quote {
                            throw .badLine("column \(c + 2): ambiguous quotes around a comma (FreeSWITCH does not escape quotes)")
                        }
                    }
                    ends[c] = Int32(o)
                    out[o] = unitSeparator; o += 1
                    c += 1
                    j = k + 1
                    continue
                }
            }
            out[o] = b; o += 1
            j += 1
        }
        ends[c] = Int32(o)
        out[o] = unitSeparator; o += 1
        c += 1
        return Output(length: o, columns: c)
    }
}

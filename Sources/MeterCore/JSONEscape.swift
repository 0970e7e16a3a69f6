/// The parts of JSON string unescaping that do not depend on the scanner: the API's body parser and
/// the CDR line scanner differ in what a bad surrogate costs (an error there, U+FFFD here) and in
/// their failures' wording, not in what an escape means.
public enum JSONEscape {
    /// The byte a one-character escape stands for (`\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t`); nil for
    /// `u`, which takes four hex digits, and for anything else.
    @inlinable
    public static func simple(_ e: UInt8) -> UInt8? {
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): return e
        case UInt8(ascii: "b"): return 0x08
        case UInt8(ascii: "f"): return 0x0C
        case UInt8(ascii: "n"): return 0x0A
        case UInt8(ascii: "r"): return 0x0D
        case UInt8(ascii: "t"): return 0x09
        default: return nil
        }
    }

    /// Reads the four hex digits of a `\u` escape at `i`, moving `i` past them. Nil when fewer than
    /// four bytes are left (`i` unmoved) or one is not a hex digit (`i` at that byte), so that a
    /// caller's failure names where the escape went wrong.
    @inlinable
    public static func hex4<Bytes: RandomAccessCollection>(_ bytes: Bytes, at i: inout Int) -> UInt32?
    where Bytes.Element == UInt8, Bytes.Index == Int {
        guard i + 4 <= bytes.endIndex else { return nil }
        var v: UInt32 = 0
        for _ in 0 ..< 4 {
            let b = bytes[i]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a") ... UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A") ... UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: return nil
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}

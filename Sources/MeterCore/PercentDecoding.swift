/// `%XX` escapes decoded, for query strings, form bodies and FreeSWITCH's encoded values alike.
public enum PercentDecoding {
    /// A malformed escape is kept as written rather than failing the input, and '+' stays a plus:
    /// in a dialled number or an E.164 `dst` it is one, never an encoded space.
    public static func bytes<C: Collection>(_ s: C) -> [UInt8] where C.Element == UInt8 {
        let b = Array(s)
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count, let h = hex(b[i + 1]), let l = hex(b[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return out
    }

    public static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

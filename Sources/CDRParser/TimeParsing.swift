import MeterCore

/// Parses CDR timestamps into UTC epoch seconds without Foundation on the hot path.
enum TimeText {
    enum Result {
        case empty
        case epoch(Int64)
        case invalid
    }

    /// Accepts `YYYY-MM-DD HH:MM:SS` (or `T`), optional `.fraction` (dropped), optional zone
    /// (`Z`, `UTC`, `+HH`, `+HHMM`, `+HH:MM`, with or without a space) which overrides `zone`;
    /// or all digits (with optional fraction) as unix seconds, which FreeSWITCH's *_epoch variables give.
    static func parse(_ p: UnsafeBufferPointer<UInt8>, zone: ZoneTable) -> Result {
        var lo = 0, hi = p.count
        while lo < hi, p[lo] == 0x20 { lo += 1 }
        while hi > lo, p[hi - 1] == 0x20 { hi -= 1 }
        if lo == hi { return .empty }

        @inline(__always) func digit(_ i: Int) -> Int64? {
            let b = p[i]
            return (b >= 0x30 && b <= 0x39) ? Int64(b - 0x30) : nil
        }
        @inline(__always) func number(_ from: Int, _ len: Int) -> Int64? {
            var v: Int64 = 0
            for i in from..<(from + len) {
                guard let d = digit(i) else { return nil }
                v = v * 10 + d
            }
            return v
        }

        // Unix seconds.
        if hi - lo < 19 {
            var i = lo, v: Int64 = 0, digits = 0
            while i < hi, let d = digit(i), digits < 12 { v = v * 10 + d; i += 1; digits += 1 }
            if digits == 0 { return .invalid }
            if i < hi {
                guard p[i] == UInt8(ascii: ".") else { return .invalid }
                i += 1
                while i < hi, digit(i) != nil { i += 1 }
                if i < hi { return .invalid }
            }
            return .epoch(v)
        }

        let s = lo
        guard let y = number(s, 4), p[s + 4] == UInt8(ascii: "-"),
              let mo = number(s + 5, 2), p[s + 7] == UInt8(ascii: "-"),
              let d = number(s + 8, 2), p[s + 10] == 0x20 || p[s + 10] == UInt8(ascii: "T"),
              let h = number(s + 11, 2), p[s + 13] == UInt8(ascii: ":"),
              let mi = number(s + 14, 2), p[s + 16] == UInt8(ascii: ":"),
              let sec = number(s + 17, 2)
        else { return .invalid }
        guard mo >= 1, mo <= 12, d >= 1, d <= CivilTime.daysInMonth(y, mo), h <= 23, mi <= 59, sec <= 60 else {
            return .invalid
        }
        var i = s + 19
        if i < hi, p[i] == UInt8(ascii: ".") || p[i] == UInt8(ascii: ",") {
            i += 1
            let f = i
            while i < hi, digit(i) != nil { i += 1 }
            if i == f { return .invalid }
        }
        let local = CivilTime.daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec
        if i == hi { return .epoch(zone.utc(fromLocal: local)) }

        // An explicit zone suffix wins over the source's configured zone.
        if p[i] == 0x20 { i += 1 }
        guard i < hi else { return .invalid }
        let rest = hi - i
        if rest == 1, p[i] == UInt8(ascii: "Z") { return .epoch(local) }
        if rest == 3, p[i] == UInt8(ascii: "U"), p[i + 1] == UInt8(ascii: "T"), p[i + 2] == UInt8(ascii: "C") {
            return .epoch(local)
        }
        guard p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") else { return .invalid }
        let sign: Int64 = p[i] == UInt8(ascii: "-") ? -1 : 1
        i += 1
        var oh: Int64 = 0, om: Int64 = 0
        switch hi - i {
        case 2:
            guard let a = number(i, 2) else { return .invalid }
            oh = a
        case 4:
            guard let a = number(i, 2), let b = number(i + 2, 2) else { return .invalid }
            oh = a; om = b
        case 5:
            guard let a = number(i, 2), p[i + 2] == UInt8(ascii: ":"), let b = number(i + 3, 2) else { return .invalid }
            oh = a; om = b
        default:
            return .invalid
        }
        guard oh <= 14, om <= 59 else { return .invalid }
        return .epoch(local - sign * (oh * 3600 + om * 60))
    }
}

import MeterCore

/// When a deck row applies: days of the week and a time of day in the plan's zone, and the price
/// list's validity as UTC instants. A row without the optional columns applies always.
public struct RateWindow: Sendable, Equatable {
    /// Bit d set: the row applies on weekday d (Monday = 0 … Sunday = 6).
    public var weekdays: UInt8
    /// Seconds after local midnight; from inclusive, to exclusive, `to` at most 86,400 (`24:00`).
    public var timeFrom: Int64
    public var timeTo: Int64
    /// UTC instants; from inclusive, until exclusive; nil is open.
    public var effectiveFrom: Int64?
    public var effectiveUntil: Int64?
    /// The columns as the deck wrote them (normalised: lower case, no blanks), "" when empty; what
    /// usage rows and statements show.
    public var spelled: Spelled

    public struct Spelled: Sendable, Equatable {
        public var weekdays = ""
        public var timeFrom = ""
        public var timeTo = ""
        public var effectiveFrom = ""
        public var effectiveUntil = ""
        public init() {}
    }

    public static let allDays: UInt8 = 0x7F
    public static let always = RateWindow(weekdays: allDays, timeFrom: 0, timeTo: 86_400)

    public init(weekdays: UInt8, timeFrom: Int64, timeTo: Int64, effectiveFrom: Int64? = nil,
                effectiveUntil: Int64? = nil, spelled: Spelled = Spelled()) {
        self.weekdays = weekdays
        self.timeFrom = timeFrom
        self.timeTo = timeTo
        self.effectiveFrom = effectiveFrom
        self.effectiveUntil = effectiveUntil
        self.spelled = spelled
    }

    /// True when the row applies at every moment.
    public var isAlways: Bool {
        weekdays == Self.allDays && timeFrom == 0 && timeTo == 86_400 && effectiveFrom == nil && effectiveUntil == nil
    }

    /// Whether the row applies at this moment.
    @inline(__always)
    public func applies(_ c: WallClock) -> Bool {
        weekdays & (1 << UInt8(c.weekday)) != 0 && c.secondOfDay >= timeFrom && c.secondOfDay < timeTo
            && (effectiveFrom.map { c.instant >= $0 } ?? true) && (effectiveUntil.map { c.instant < $0 } ?? true)
    }

    /// The first instant after `c.instant` at which `applies` may change for this row, given that the
    /// offset stays as it is until `c.offsetUntil` (the caller bounds the answer by that and by midnight).
    func nextChange(after c: WallClock) -> Int64 {
        var next = Int64.max
        let dayStart = c.instant - c.secondOfDay
        if timeFrom > c.secondOfDay { next = min(next, dayStart + timeFrom) }
        if timeTo > c.secondOfDay, timeTo < 86_400 { next = min(next, dayStart + timeTo) }
        if let f = effectiveFrom, f > c.instant { next = min(next, f) }
        if let u = effectiveUntil, u > c.instant { next = min(next, u) }
        return next
    }

    /// The three-letter names, Monday first, as the deck writes them.
    public static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
}

/// A moment as the rate windows see it: the UTC instant and its wall-clock day and time in the plan's zone.
public struct WallClock: Sendable, Equatable {
    public var instant: Int64
    /// Monday = 0 … Sunday = 6, of the local date.
    public var weekday: Int
    /// Seconds since local midnight, 0 ..< 86,400.
    public var secondOfDay: Int64
    /// The instant until which the offset (and so the local clock's pace) stays as it is; `Int64.max`
    /// when no change is known.
    var offsetUntil: Int64

    /// `stable`: also find when the offset next changes (`stableUntil` needs it; a lookup at one moment does not).
    public init(_ t: Int64, zone: ZoneTable, stable: Bool = false) {
        let local = t &+ zone.offset(atUTC: t)
        let days = local >= 0 ? local / 86_400 : -((-local + 86_399) / 86_400)
        instant = t
        secondOfDay = local - days * 86_400
        // 1970-01-01 was a Thursday (3 days after a Monday).
        let w = (days + 3) % 7
        weekday = Int(w < 0 ? w + 7 : w)
        offsetUntil = stable ? zone.nextTransition(after: t) ?? Int64.max : Int64.min
    }

    /// The next local midnight or change of offset, whichever comes first: the windows' day and time
    /// advance with the instant until then. Only for a clock made with `stable`.
    var stableUntil: Int64 {
        let (midnight, o) = instant.addingReportingOverflow(86_400 - secondOfDay)
        return min(o ? Int64.max : midnight, offsetUntil)
    }
}

/// Why a window column's text was refused: the message of its `RateDeckError`.
struct WindowTextError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Parsing of the window columns' text.
enum WindowText {
    /// `mon-fri`, `sat,sun`, `mon,wed-fri`, `fri-mon` (ranges wrap), any case, blanks ignored: the mask
    /// and the list as shown (lower case, no blanks). Bytes, not Strings: a big deck has one per row.
    static func weekdays(_ b: UnsafeBufferPointer<UInt8>) throws(WindowTextError) -> (UInt8, String) {
        var norm: [UInt8] = []
        norm.reserveCapacity(b.count)
        for c in b where c != 0x20 && c != 0x09 { norm.append(c >= 0x41 && c <= 0x5A ? c + 0x20 : c) }
        let shown = String(decoding: norm, as: UTF8.self)
        if norm.isEmpty { return (RateWindow.allDays, "") }
        func day(_ from: Int, _ to: Int) throws(WindowTextError) -> Int {
            if to - from == 3 {
                for (k, name) in dayBytes.enumerated() where norm[from] == name.0 && norm[from + 1] == name.1 && norm[from + 2] == name.2 {
                    return k
                }
            }
            throw WindowTextError("unknown day \"\(String(decoding: norm[from ..< to], as: UTF8.self))\" (expected mon, tue, wed, thu, fri, sat or sun; ranges such as mon-fri)")
        }
        var mask: UInt8 = 0
        var start = 0
        while start <= norm.count {
            var end = start
            while end < norm.count, norm[end] != UInt8(ascii: ",") { end += 1 }
            var dash = start
            while dash < end, norm[dash] != UInt8(ascii: "-") { dash += 1 }
            let first: Int, last: Int
            if dash == end {
                first = try day(start, end); last = first
            } else {
                if norm[(dash + 1) ..< end].contains(UInt8(ascii: "-")) {
                    throw WindowTextError("\"\(String(decoding: norm[start ..< end], as: UTF8.self))\" is not a day or a range of days such as mon-fri")
                }
                first = try day(start, dash); last = try day(dash + 1, end)
            }
            var d = first
            while true {
                mask |= 1 << UInt8(d)
                if d == last { break }
                d = (d + 1) % 7
            }
            start = end + 1
        }
        return (mask, shown)
    }

    private static let dayBytes: [(UInt8, UInt8, UInt8)] = RateWindow.dayNames.map {
        let u = Array($0.utf8)
        return (u[0], u[1], u[2])
    }

    /// `HH:MM` as seconds after midnight; `24:00` only when `allowEnd`.
    static func timeOfDay(_ b: UnsafeBufferPointer<UInt8>, allowEnd: Bool) throws(WindowTextError) -> Int64 {
        func digits(_ i: Int) -> Int64? {
            guard b[i] >= 0x30, b[i] <= 0x39, b[i + 1] >= 0x30, b[i + 1] <= 0x39 else { return nil }
            return Int64(b[i] - 0x30) * 10 + Int64(b[i + 1] - 0x30)
        }
        guard b.count == 5, b[2] == UInt8(ascii: ":"), let h = digits(0), let m = digits(3), m <= 59,
              h <= 23 || (allowEnd && h == 24 && m == 0) else {
            throw WindowTextError("\"\(String(decoding: b, as: UTF8.self))\" is not a time of day HH:MM (00:00 to \(allowEnd ? "24:00" : "23:59"))")
        }
        return h * 3600 + m * 60
    }

    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` as wall-clock seconds ("as if local were UTC").
    static func localDate(_ b: UnsafeBufferPointer<UInt8>) throws(WindowTextError) -> Int64 {
        func num(_ i: Int, _ n: Int) -> Int64? {
            var v: Int64 = 0
            for k in i ..< i + n {
                guard b[k] >= 0x30, b[k] <= 0x39 else { return nil }
                v = v * 10 + Int64(b[k] - 0x30)
            }
            return v
        }
        func bad() -> WindowTextError {
            WindowTextError("\"\(String(decoding: b, as: UTF8.self))\" is not a date YYYY-MM-DD or a date and time YYYY-MM-DDTHH:MM")
        }
        guard b.count == 10 || b.count == 16, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
              let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2),
              y >= 1970, mo >= 1, mo <= 12, d >= 1, d <= CivilTime.daysInMonth(y, mo) else { throw bad() }
        var sec: Int64 = 0
        if b.count == 16 {
            guard b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "), b[13] == UInt8(ascii: ":"),
                  let h = num(11, 2), let m = num(14, 2), h <= 23, m <= 59 else { throw bad() }
            sec = h * 3600 + m * 60
        }
        return CivilTime.daysFromCivil(y, mo, d) * 86_400 + sec
    }
}

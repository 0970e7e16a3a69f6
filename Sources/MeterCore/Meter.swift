/// The colour level of a client's credit (SPEC section 5).
public enum Level: String, Sendable, CaseIterable, Codable, Comparable {
    case ok, low, critical, exhausted

    /// The console colour that draws this level.
    public var color: String {
        switch self {
        case .ok: return "primary"
        case .low: return "orange"
        case .critical, .exhausted: return "red"
        }
    }

    /// Worse levels sort later, so `new > old` means "got worse".
    public var severity: Int {
        switch self {
        case .ok: return 0
        case .low: return 1
        case .critical: return 2
        case .exhausted: return 3
        }
    }

    public static func < (a: Level, b: Level) -> Bool { a.severity < b.severity }
}

/// Where `low` and `critical` begin, in whole percent (`[thresholds]`).
public struct Thresholds: Sendable, Equatable {
    public var lowPercent: Int64
    public var criticalPercent: Int64

    public init(lowPercent: Int64 = 25, criticalPercent: Int64 = 10) {
        self.lowPercent = lowPercent
        self.criticalPercent = criticalPercent
    }

    public static let `default` = Thresholds()
}

/// One client's Available | Used | Assigned, with the level and colour they imply.
public struct Meter: Sendable, Equatable {
    public var assigned: Int64
    public var used: Int64

    public init(assigned: Int64, used: Int64) {
        self.assigned = assigned
        self.used = used
    }

    public var available: Int64 { assigned &- used }

    /// Percent remaining in hundredths (3750 = 37.5 %), floored; 0 when nothing is assigned.
    public var percentHundredths: Int64 {
        guard assigned > 0 else { return 0 }
        let q = Int128(available) * 10_000
        let a = Int128(assigned)
        // Floor division, also for negative balances.
        var r = q / a
        if (q % a != 0) && (q < 0) { r -= 1 }
        return Int64(clamping: r)
    }

    /// The percent as a JSON-ready decimal string (`37.5`, `100`, `-12.25`).
    public var percentText: String {
        let p = percentHundredths
        let neg = p < 0
        let m = neg ? -p : p
        var s = String(m / 100)
        let f = m % 100
        if f != 0 { s += f % 10 == 0 ? ".\(f / 10)" : (f < 10 ? ".0\(f)" : ".\(f)") }
        return neg ? "-" + s : s
    }

    /// The level, compared exactly: `available/assigned*100 < t` is `available*100 < t*assigned`.
    public func level(_ t: Thresholds) -> Level {
        let avail = available
        if avail <= 0 { return .exhausted }
        guard assigned > 0 else { return .exhausted }
        let lhs = Int128(avail) * 100
        if lhs < Int128(t.criticalPercent) * Int128(assigned) { return .critical }
        if lhs < Int128(t.lowPercent) * Int128(assigned) { return .low }
        return .ok
    }

    /// `Available | Used | Assigned`, as the console draws it: `100 | 0 | 100`.
    public var display: String {
        "\(Money.format(available)) | \(Money.format(used)) | \(Money.format(assigned))"
    }
}

import Foundation

/// A time zone's UTC offsets as a precomputed transition table, so converting a CDR's local
/// timestamp, or finding a rate window's wall-clock time, costs a binary search instead of a Calendar call.
public struct ZoneTable: Sendable {
    /// UTC instants at which the offset changes, ascending.
    private let transitions: [Int64]
    /// offsets[0] applies before transitions[0]; offsets[i + 1] from transitions[i] on.
    private let offsets: [Int64]
    private let zone: TimeZone
    // Outside this window the table is not trusted and TimeZone answers directly (rare: bogus dates).
    private static let tableStart: Int64 = -86_400            // 1969-12-31
    private static let tableEnd: Int64 = 4_102_444_800        // 2100-01-01

    public init(_ zone: TimeZone) {
        self.zone = zone
        var ts: [Int64] = []
        var offs: [Int64] = [Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(Self.tableStart))))]
        var cursor = Date(timeIntervalSince1970: TimeInterval(Self.tableStart))
        while let next = zone.nextDaylightSavingTimeTransition(after: cursor) {
            let t = Int64(next.timeIntervalSince1970.rounded(.down))
            if t >= Self.tableEnd || ts.count > 4096 { break }
            ts.append(t)
            offs.append(Int64(zone.secondsFromGMT(for: next)))
            cursor = next
        }
        transitions = ts
        offsets = offs
    }

    public static let utc = ZoneTable(TimeZone(identifier: "UTC") ?? .gmt)

    /// The zone's identifier (`Europe/London`, `UTC`).
    public var identifier: String { zone.identifier }

    public var isUTC: Bool { transitions.isEmpty && offsets.first == 0 }

    /// Seconds east of UTC in effect at the UTC instant `t`.
    public func offset(atUTC t: Int64) -> Int64 {
        if t < Self.tableStart || t >= Self.tableEnd {
            return Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(t))))
        }
        return offsets[transitionIndex(after: t)]
    }

    /// The index of the first transition after `t` (`transitions.count` when there is none).
    private func transitionIndex(after t: Int64) -> Int {
        var lo = 0, hi = transitions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if transitions[mid] <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The first instant after `t` at which the offset changes; nil when none is known (or `t` lies
    /// outside the table, where the zone is treated as changing nowhere near).
    public func nextTransition(after t: Int64) -> Int64? {
        guard t >= Self.tableStart, t < Self.tableEnd else { return nil }
        let k = transitionIndex(after: t)
        return k < transitions.count ? transitions[k] : nil
    }

    /// UTC epoch of a wall-clock time given as "seconds since epoch as if local were UTC".
    /// Ambiguous fall-back times resolve to one of the two instants; times in a spring-forward gap
    /// move forward by the gap, which is what a PBX clock would have shown.
    public func utc(fromLocal t: Int64) -> Int64 {
        if transitions.isEmpty { return t - offsets[0] }
        let first = offset(atUTC: t)
        let second = offset(atUTC: t - first)
        return t - second
    }

    /// The first instant whose wall-clock time is at or after `local` ("seconds since epoch as if local
    /// were UTC"): a time that exists once is that instant, an ambiguous one (a fall-back hour) its earlier
    /// instant, and one in a spring-forward gap the instant the clock jumps (the first moment after it).
    public func firstInstant(atOrAfterLocal local: Int64) -> Int64 {
        if transitions.isEmpty { return local - offsets[0] }
        // Offsets are within ±26 h, so the answer lies within two days of `local`: walk the stretches
        // of constant offset that cover that span in order and take the first that reaches `local`.
        let from = local - 2 * 86_400, to = local + 2 * 86_400
        var start = from
        while start < to {
            let off = offset(atUTC: start)
            let end = nextTransition(after: start) ?? Int64.max
            // On [start, end) the wall clock is t + off, rising; it reaches `local` here if end + off > local.
            if end == Int64.max || end + off > local { return max(start, local - off) }
            start = end
        }
        return local - offset(atUTC: local)
    }
}

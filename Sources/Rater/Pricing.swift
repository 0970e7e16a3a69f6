import MeterCore

/// One part of a priced call: a maximal run of charged seconds priced by one row.
public struct PricedPart: Sendable, Equatable {
    public var row: RateRow
    /// Charged seconds in this part.
    public var seconds: Int64
    /// `ceil(rate * seconds / 60)` µcr: the part's cost without the connect fee.
    public var cost: Int64
}

/// A call's price: charged seconds, cost in µcr (connect fee included) and the part or parts that made it.
public struct Priced: Sendable, Equatable {
    public var chargedSeconds: Int64
    public var cost: Int64
    /// One part unless the plan splits and the call crossed a window boundary; the first part's row
    /// is the selecting row (its increments and connect fee apply).
    public var parts: [PricedPart]

    /// The selecting row.
    public var row: RateRow { parts[0].row }
}

extension RateDeck {
    /// Prices a call to `destination` answered at `answeredAt` (unix seconds) lasting `billsec` billable
    /// seconds; nil is `no_rate` (no row applies at the answer moment or, with `split`, at some charged second).
    ///
    /// The selecting row is the one in effect at the answer moment; its increments give the charged
    /// seconds `c`. Without `split` the whole call is priced by it. With `split` the `c` seconds are laid
    /// on the clock from the answer moment, each part (a maximal run of seconds priced by one row, found
    /// by the full selection rule at its first second) is rounded on its own, and
    /// cost = the first row's connect fee + Σ ceil(rate_k · c_k / 60).
    public func price(bytes destination: UnsafeBufferPointer<UInt8>, billsec: Int64, answeredAt: Int64) -> Priced? {
        guard isTimed else {
            guard let k = matchIndex(bytes: destination, at: nil) else { return nil }
            return Self.single(rows[k], billsec: billsec)
        }
        let start = WallClock(answeredAt, zone: zone)
        guard let first = matchIndex(bytes: destination, at: start) else { return nil }
        let row = rows[first]
        guard split, billsec > 0 else { return Self.single(row, billsec: billsec) }
        let c = Rating.chargedSeconds(billsec: billsec, initial: row.initialIncrement, subsequent: row.subsequentIncrement)
        var parts: [PricedPart] = []
        var failed = false
        walk(destination, from: answeredAt, limit: c) { r, seconds in
            guard let r else { failed = true; return false }
            parts.append(PricedPart(row: rows[r], seconds: seconds, cost: Rating.timedCost(rows[r], seconds)))
            return true
        }
        if failed { return nil }
        var total = Int128(row.connectFee)
        for p in parts { total += Int128(p.cost) }
        return Priced(chargedSeconds: c, cost: Int64(clamping: total), parts: parts)
    }

    /// `price(bytes:…)` for a String destination.
    public func price(_ destination: some StringProtocol, billsec: Int64, answeredAt: Int64) -> Priced? {
        withBytes(destination) { price(bytes: $0, billsec: billsec, answeredAt: answeredAt) }
    }

    static func single(_ row: RateRow, billsec: Int64) -> Priced {
        let r = Rating.cost(row, billsec: billsec)
        return Priced(chargedSeconds: r.chargedSeconds, cost: r.cost,
                      parts: [PricedPart(row: row, seconds: r.chargedSeconds, cost: r.cost - (billsec > 0 ? row.connectFee : 0))])
    }

    /// Lays `limit` seconds on the clock from `t0` and hands `body` each part in order: the row index
    /// (nil for seconds no row covers, which ends the walk) and its length in seconds. `body` returns
    /// false to stop. Between two changes of any window of the destination's prefixes, nothing about the
    /// selection can change, so the walk steps from change to change rather than second by second.
    func walk(_ destination: UnsafeBufferPointer<UInt8>, from t0: Int64, limit: Int64, _ body: (Int?, Int64) -> Bool) {
        // The destination's prefixes, longest first: at most one group per byte of it, plus the catch-all.
        withUnsafeTemporaryAllocation(of: Int.self, capacity: min(destination.count, maxKeyLength) + 1) { buffer in
            var n = 0
            forEachGroup(matching: destination) { buffer[n] = $0; n += 1; return true }
            walk(groups: UnsafeBufferPointer(rebasing: buffer[..<n]), from: t0, limit: limit, body)
        }
    }

    private func walk(groups: UnsafeBufferPointer<Int>, from t0: Int64, limit: Int64, _ body: (Int?, Int64) -> Bool) {
        let end = Int64(clamping: Int128(t0) + Int128(limit))
        var t = t0
        var clock = WallClock(t0, zone: zone, stable: true)
        var current: Int?
        var partStart = t0
        while t < end {
            var next = clock.stableUntil
            var selected: Int?
            for g in groups {
                let range = groupStart[g] ..< groupStart[g + 1]
                for r in range {
                    let w = rows[r].window
                    if selected == nil, w.applies(clock) { selected = r }
                    next = min(next, w.nextChange(after: clock))
                }
            }
            if t == t0 { current = selected }
            if selected != current {
                guard body(current, t - partStart) else { return }
                current = selected
                partStart = t
            }
            guard selected != nil else { _ = body(nil, 0); return }
            t = min(next, end)
            if t < end { clock = WallClock(t, zone: zone, stable: true) }
        }
        _ = body(current, end - partStart)
    }

    /// Longest billsec (at most `cap`) whose price fits in `credit` µcr for a call to `destination`
    /// answered at `now`, with the row that selects it; `.noRate` when no row applies then, nil seconds
    /// when even the first increment and the connect fee do not fit.
    ///
    /// Without `split` this is `Rating.maxSeconds` of the selecting row. With it, the price of `c` charged
    /// seconds never falls as `c` grows (every part's rounded cost is non-decreasing in its length, and
    /// a longer call only adds parts), so the affordable `c` are a prefix of the clock: walk the parts
    /// ahead until the credit runs out, then round down to a charged value the increments can reach.
    public func maxSeconds(_ destination: some StringProtocol, now: Int64, credit: Int64, cap: Int64) -> (row: RateRow, maxSeconds: Int64?)? {
        withBytes(destination) { d -> (row: RateRow, maxSeconds: Int64?)? in
            let start = WallClock(now, zone: zone)
            guard let k = matchIndex(bytes: d, at: isTimed ? start : nil) else { return nil }
            let row = rows[k]
            guard isTimed, split else { return (row, Rating.maxSeconds(row, credit: credit, cap: cap)) }
            let i = max(row.initialIncrement, 0)
            let s = max(row.subsequentIncrement, 1)
            let firstCharge = i > 0 ? i : s
            var left = Int128(credit) - Int128(row.connectFee)
            guard left >= 0 else { return (row, nil) }
            // Past cap + i + s charged seconds the rounding below lands at or above cap anyway.
            let horizon = Int64(clamping: Int128(max(cap, firstCharge)) + Int128(i) + Int128(s))
            var affordable: Int64 = 0
            walk(d, from: now, limit: horizon) { r, seconds in
                guard let r else { return false }
                let rate = Int128(max(rows[r].ratePerMinute, 0))
                let whole = (rate * Int128(seconds) + 59) / 60
                if whole <= left {
                    left -= whole
                    affordable += seconds
                    return true
                }
                // ceil(rate * x / 60) <= left  ⇔  rate * x <= 60 * left.
                // Below `seconds` (this part did not fit whole), so the sum stays within the horizon.
                affordable += Int64(clamping: (60 * left) / rate)
                return false
            }
            guard affordable >= firstCharge else { return (row, nil) }
            let best = affordable <= i ? i : i + ((affordable - i) / s) * s
            return (row, max(0, min(best, cap)))
        }
    }
}

extension Priced {
    /// What priced the call, as a JSON array with one object per part: the row's `prefix`, deck `line`,
    /// `rate` per minute, charged `seconds` and `cost` (without the fee), `connect_fee` on the first part
    /// when there is one, and the row's window and date columns that are not empty, as the deck wrote them.
    /// Usage rows keep it so statements can show it and a rerate can be compared against it.
    public var pricedBy: String {
        // Built as bytes: every charge gets one, so String appends would be felt on a replay.
        var out: [UInt8] = []
        out.reserveCapacity(96 * parts.count)
        func put(_ s: String) { out.append(contentsOf: s.utf8) }
        func quoted(_ s: String) {
            out.append(0x22)
            // Prefixes are printable ASCII without quotes, so only a backslash needs escaping.
            if s.utf8.contains(0x5C) {
                for b in s.utf8 {
                    if b == 0x5C { out.append(0x5C) }
                    out.append(b)
                }
            } else {
                out.append(contentsOf: s.utf8)
            }
            out.append(0x22)
        }
        out.append(UInt8(ascii: "["))
        for (k, p) in parts.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            put("{\"prefix\":"); quoted(p.row.prefix)
            put(",\"line\":"); put(String(p.row.line))
            put(",\"rate\":"); quoted(p.row.rateText)
            if k == 0, p.row.connectFee != 0 { put(",\"connect_fee\":"); quoted(p.row.feeText) }
            put(",\"seconds\":"); put(String(p.seconds))
            put(",\"cost\":"); quoted(Money.format(p.cost))
            let w = p.row.window.spelled
            if !w.weekdays.isEmpty { put(",\"weekdays\":"); quoted(w.weekdays) }
            if !w.timeFrom.isEmpty { put(",\"time_from\":"); quoted(w.timeFrom) }
            if !w.timeTo.isEmpty { put(",\"time_to\":"); quoted(w.timeTo) }
            if !w.effectiveFrom.isEmpty { put(",\"effective_from\":"); quoted(w.effectiveFrom) }
            if !w.effectiveUntil.isEmpty { put(",\"effective_until\":"); quoted(w.effectiveUntil) }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }
}

import MeterCore

/// The pure arithmetic of SPEC section 3: charged seconds, cost, and the longest affordable call.
public enum Rating {
    /// Charged seconds for `b` billable seconds: 0 for `b <= 0`, `i` if `b <= i`, else
    /// `i + ceil((b - i) / s) * s`. Saturates at `Int64.max` rather than trapping.
    public static func chargedSeconds(billsec b: Int64, initial i: Int64, subsequent s: Int64) -> Int64 {
        guard b > 0 else { return 0 }
        // A deck enforces i >= 0 and s >= 1; clamp here too so hand-built rows cannot divide by zero.
        let i = max(i, 0)
        let s = max(s, 1)
        if b <= i { return i }
        let rest = Int128(b) - Int128(i)
        let steps = (rest + Int128(s) - 1) / Int128(s)
        return Int64(clamping: Int128(i) + steps * Int128(s))
    }

    /// Charged seconds and cost in µcr: `connect_fee + ceil(rate_per_minute * c / 60)`; `(0, 0)` when
    /// `billsec <= 0` (a call that was not billable pays no connect fee either).
    public static func cost(_ row: RateRow, billsec: Int64) -> (chargedSeconds: Int64, cost: Int64) {
        guard billsec > 0 else { return (0, 0) }
        let c = chargedSeconds(billsec: billsec, initial: row.initialIncrement, subsequent: row.subsequentIncrement)
        return (c, costOfCharged(row, c))
    }

    /// Cost of exactly `c` charged seconds. Int128 holds rate * c for any two Int64 values; the sum
    /// saturates at Int64.max so an absurd deck entry cannot trap the daemon.
    static func costOfCharged(_ row: RateRow, _ c: Int64) -> Int64 {
        Int64(clamping: Int128(row.connectFee) + Int128(timedCost(row, c)))
    }

    /// `ceil(rate_per_minute * c / 60)`: the cost of `c` charged seconds without the connect fee.
    static func timedCost(_ row: RateRow, _ c: Int64) -> Int64 {
        let product = Int128(max(row.ratePerMinute, 0)) * Int128(max(c, 0))
        return Int64(clamping: (product + 59) / 60)
    }

    /// Longest billsec whose cost fits in `credit` µcr, capped at `cap`; nil when even the first
    /// increment plus the connect fee does not fit (SPEC 9 authorize → `no_credit`).
    ///
    /// Exact and O(1): `ceil(r*c/60) <= R` is equivalent to `r*c <= 60*R`, so the largest affordable
    /// charged-second count is `C = floor(60*R / r)`; the answer is the largest reachable charged value
    /// (`i`, `i+s`, `i+2s`, …) not above `C`. Every billsec up to that value is charged no more than it,
    /// and the next billsec is charged the next step, which does not fit. A `cap <= 0` yields 0 when
    /// the first increment fits (nothing may be longer than the cap, but the answer is still "affordable").
    public static func maxSeconds(_ row: RateRow, credit: Int64, cap: Int64) -> Int64? {
        let i = max(row.initialIncrement, 0)
        let s = max(row.subsequentIncrement, 1)
        let rate = max(row.ratePerMinute, 0)
        // The charge for billsec 1: i when there is an initial increment, else one subsequent step.
        let first = i > 0 ? i : s
        let left = Int128(credit) - Int128(row.connectFee)
        guard left >= 0 else { return nil }
        let best: Int128
        if rate == 0 {
            best = Int128(Int64.max)
        } else {
            let affordable = (60 * left) / Int128(rate)
            guard affordable >= Int128(first) else { return nil }
            // affordable >= first >= i, so the subtraction is non-negative.
            best = Int128(i) + ((affordable - Int128(i)) / Int128(s)) * Int128(s)
        }
        return max(0, min(Int64(clamping: best), cap))
    }
}

import Testing
import TestSupport
import MeterCore
@testable import Rater

/// SPEC section 3 arithmetic: charged seconds, cost and the authorize bound.
@Suite struct RatingTests {
    static func row(_ rate: String, fee: String = "0", _ i: Int64, _ s: Int64) -> RateRow {
        // Amounts go through Money.parse like a deck's would; a bad literal in a test is a test bug.
        let r = (try? Money.parse(rate)) ?? -1
        let f = (try? Money.parse(fee)) ?? -1
        return RateRow(prefix: "1", ratePerMinute: r, connectFee: f, initialIncrement: i, subsequentIncrement: s)
    }

    @Test("SPEC worked cases", arguments: [
        (Int64(32), Int64(30), Int64(6), Int64(36), "0.0036"),
        (57, 30, 6, 60, "0.006"),
        (75, 30, 6, 78, "0.0078"),
        (50, 45, 30, 75, "0.0075"),
    ])
    func workedCases(b: Int64, i: Int64, s: Int64, charged: Int64, cost: String) throws {
        let r = Self.row("0.006", i, s)
        let out = Rating.cost(r, billsec: b)
        #expect(out.chargedSeconds == charged)
        #expect(out.cost == (try Money.parse(cost)))
        #expect(Money.format(out.cost) == cost)
    }

    @Test func workedCaseExactMicro() {
        #expect(Rating.cost(Self.row("0.006", 30, 6), billsec: 32).cost == 3600)
    }

    /// The formula written the slow, obvious way: the smallest reachable charge that is >= b.
    static func slowCharged(_ b: Int64, _ i: Int64, _ s: Int64) -> Int64 {
        if b <= 0 { return 0 }
        if b <= i { return i }
        var c = i
        while c < b { c += s }
        return c
    }

    @Test("increments at every boundary", arguments: [
        (Int64(0), Int64(1)), (1, 1), (60, 60), (30, 6), (45, 30), (0, 60), (6, 6), (1, 60), (60, 1),
    ])
    func boundaries(i: Int64, s: Int64) {
        let probes: [Int64] = [i - 1, i, i + 1, i + s - 1, i + s, i + s + 1, i + 2 * s, i + 2 * s + 1]
        for b in probes {
            let c = Rating.chargedSeconds(billsec: b, initial: i, subsequent: s)
            #expect(c == Self.slowCharged(b, i, s), "b=\(b) i=\(i) s=\(s)")
        }
        // Spelled out, so the oracle cannot hide a shared mistake.
        if i > 0 {
            #expect(Rating.chargedSeconds(billsec: i - 1, initial: i, subsequent: s) == (i - 1 > 0 ? i : 0))
        }
        #expect(Rating.chargedSeconds(billsec: i, initial: i, subsequent: s) == (i > 0 ? i : 0))
        #expect(Rating.chargedSeconds(billsec: i + 1, initial: i, subsequent: s) == i + s)
        #expect(Rating.chargedSeconds(billsec: i + s - 1, initial: i, subsequent: s) == (s == 1 ? (i + s - 1 > 0 ? i : 0) : i + s))
        #expect(Rating.chargedSeconds(billsec: i + s, initial: i, subsequent: s) == i + s)
        #expect(Rating.chargedSeconds(billsec: i + s + 1, initial: i, subsequent: s) == i + 2 * s)
    }

    @Test func nonPositiveBillsecCostsNothing() {
        let r = Self.row("1", fee: "0.5", 30, 6)
        #expect(Rating.cost(r, billsec: 0) == (0, 0))
        #expect(Rating.cost(r, billsec: -5) == (0, 0))
        #expect(Rating.chargedSeconds(billsec: 0, initial: 0, subsequent: 1) == 0)
    }

    @Test func connectFeeIsAdded() throws {
        let r = Self.row("0.006", fee: "0.05", 30, 6)
        #expect(Rating.cost(r, billsec: 32) == (36, 50_000 + 3600))
        let feeOnly = Self.row("0", fee: "0.05", 30, 6)
        #expect(Rating.cost(feeOnly, billsec: 1000) == (1002, 50_000))
    }

    @Test func costRoundsUpToTheMicroCredit() {
        // 0.000007/min for 1 s is 7/60 µcr = 0.1166… → 1 µcr.
        let r = Self.row("0.000007", 1, 1)
        #expect(Rating.cost(r, billsec: 1).cost == 1)
        // 0.01/min, 7 s: 10000 * 7 / 60 = 1166.67 → 1167.
        #expect(Rating.cost(Self.row("0.01", 1, 1), billsec: 7).cost == 1167)
        // Whole results are not bumped: 0.006 * 60 / 60 = 6000 exactly.
        #expect(Rating.cost(Self.row("0.006", 1, 1), billsec: 60).cost == 6000)
        #expect(Rating.cost(Self.row("0.006", 1, 1), billsec: 61).cost == 6100)
    }

    @Test func hugeValuesDoNotTrap() {
        let r = RateRow(prefix: "", ratePerMinute: Int64.max, connectFee: Int64.max,
                        initialIncrement: 0, subsequentIncrement: Int64.max)
        #expect(Rating.cost(r, billsec: Int64.max).cost == Int64.max)
        #expect(Rating.chargedSeconds(billsec: Int64.max, initial: 1, subsequent: 7) == Int64.max)
    }

    // MARK: maxSeconds

    /// The oracle: try every billsec in order (cost never decreases with billsec).
    static func bruteMax(_ r: RateRow, credit: Int64, cap: Int64) -> Int64? {
        if Rating.cost(r, billsec: 1).cost > credit { return nil }
        var best: Int64 = 0
        var b: Int64 = 1
        while b <= cap {
            if Rating.cost(r, billsec: b).cost <= credit { best = b } else { break }
            b += 1
        }
        return best
    }

    @Test func maxSecondsSpecExamples() {
        let r = Self.row("0.006", 30, 6)
        // 0.0036 buys exactly 36 s; one µcr less buys only the 30 s initial increment.
        #expect(Rating.maxSeconds(r, credit: 3600, cap: 14400) == 36)
        #expect(Rating.maxSeconds(r, credit: 3599, cap: 14400) == 30)
        #expect(Rating.maxSeconds(r, credit: 2999, cap: 14400) == nil)
        #expect(Rating.maxSeconds(r, credit: 3000, cap: 14400) == 30)
        // 1 credit buys 10000 s of timed charge: 30 + 1661 * 6 = 9996 is the last reachable step.
        #expect(Rating.maxSeconds(r, credit: 1_000_000, cap: 14400) == 9996)
        #expect(Rating.maxSeconds(r, credit: 10_000_000, cap: 14400) == 14400)
        #expect(Rating.maxSeconds(r, credit: 10_000_000, cap: 0) == 0)
        #expect(Rating.maxSeconds(r, credit: -1, cap: 14400) == nil)
    }

    @Test func maxSecondsFreeAndFeeOnly() {
        #expect(Rating.maxSeconds(Self.row("0", 0, 1), credit: 0, cap: 100) == 100)
        #expect(Rating.maxSeconds(Self.row("0", fee: "0.1", 0, 1), credit: 99_999, cap: 100) == nil)
        #expect(Rating.maxSeconds(Self.row("0", fee: "0.1", 0, 1), credit: 100_000, cap: 100) == 100)
        #expect(Rating.maxSeconds(Self.row("0", 0, 1), credit: -1, cap: 100) == nil)
    }

    @Test func maxSecondsAgainstBruteForce() {
        var rng = SplitMix64(seed: 0xC0FFEE)
        let incs: [(Int64, Int64)] = [(0, 1), (1, 1), (60, 60), (30, 6), (45, 30), (0, 60), (6, 6), (1, 60)]
        var checked = 0
        for _ in 0 ..< 600 {
            let (i, s) = incs[Int(rng.next() % UInt64(incs.count))]
            let randomI = rng.next() % 4 == 0 ? Int64(rng.next() % 90) : i
            let randomS = rng.next() % 4 == 0 ? Int64(1 + rng.next() % 90) : s
            let rate = Int64(rng.next() % 2_000_000)            // up to 2 credits/min, any µcr
            let fee = rng.next() % 3 == 0 ? Int64(rng.next() % 50_000) : 0
            let r = RateRow(prefix: "", ratePerMinute: rate, connectFee: fee,
                            initialIncrement: randomI, subsequentIncrement: randomS)
            let credit = Int64(rng.next() % 3_000_000) - 1000
            let cap = Int64(rng.next() % 1500)
            let expected = Self.bruteMax(r, credit: credit, cap: cap)
            let got = Rating.maxSeconds(r, credit: credit, cap: cap)
            #expect(got == expected, "rate=\(rate) fee=\(fee) i=\(randomI) s=\(randomS) credit=\(credit) cap=\(cap)")
            if let g = got, g > 0 {
                #expect(Rating.cost(r, billsec: g).cost <= credit)
                checked += 1
            }
        }
        #expect(checked > 100)  // the random draws must exercise the interesting branch
    }
}

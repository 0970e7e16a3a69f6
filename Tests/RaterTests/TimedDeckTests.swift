import Testing
import TestSupport
import Foundation
import MeterCore
@testable import Rater

/// Rating in time: the window and date columns, selection by answer time, split pricing at every
/// boundary, DST, and authorize's bound across windows.
@Suite struct TimedDeckTests {
    static let header = "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,weekdays,time_from,time_to,effective_from,effective_until\n"

    static func zone(_ name: String) -> ZoneTable { ZoneTable(TimeZone(identifier: name) ?? .gmt) }

    static func deck(_ body: String, header: String = header, zone: String = "UTC", split: Bool = false) throws -> RateDeck {
        try RateDeck.parse(Array((header + body).utf8), file: "rates.csv", zone: Self.zone(zone), split: split)
    }

    static func error(_ body: String, header: String = header, zone: String = "UTC") -> RateDeckError? {
        do { _ = try deck(body, header: header, zone: zone); return nil } catch { return error as? RateDeckError }
    }

    /// Unix seconds of a UTC wall-clock time.
    static func utc(_ y: Int64, _ mo: Int64, _ d: Int64, _ h: Int64 = 0, _ mi: Int64 = 0, _ s: Int64 = 0) -> Int64 {
        CivilTime.daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s
    }

    // 2026-01-05 is a Monday. Peak 0.60/min (10,000 µcr a second), evening and night 0.06, weekend 0.03.
    static let weekly = """
        44,0.60,0.01,60,60,mon-fri,08:00,18:00,,
        44,0.06,0.01,60,60,mon-fri,18:00,24:00,,
        44,0.06,0.01,60,60,mon-fri,00:00,08:00,,
        44,0.03,0.01,60,60,"sat,sun",,,,

        """

    // MARK: deck format

    @Test func columnsAfterTheBaseFiveInAnyOrderWithDescriptionAnywhere() throws {
        let d = try Self.deck("44,0.5,0,1,1,18:00,uk evening,mon-fri\n",
                              header: "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,time_from,description,weekdays\n")
        let r = try #require(d.rows.first)
        #expect(r.description == "uk evening")
        #expect(r.window.timeFrom == 18 * 3600 && r.window.timeTo == 86_400)
        #expect(r.window.weekdays == 0b0011111)
        #expect(d.isTimed)
        #expect(d.match("441", at: Self.utc(2026, 1, 5, 18)) != nil)
        #expect(d.match("441", at: Self.utc(2026, 1, 5, 17, 59, 59)) == nil)
        #expect(d.match("441", at: Self.utc(2026, 1, 10, 19)) == nil)   // a Saturday
    }

    @Test func aDeckWithoutTheColumnsIsUntimed() throws {
        let d = try RateDeck.parse(Array("prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n44,1,0,1,1\n".utf8), file: "x")
        #expect(!d.isTimed)
        #expect(d.rows[0].window == .always)
        let p = try #require(d.price("44", billsec: 30, answeredAt: 0))
        #expect(p.cost == 500_000 && p.parts.count == 1)
        // Empty window columns are the same as none.
        let e = try Self.deck("44,1,0,1,1,,,,,\n")
        #expect(!e.isTimed)
    }

    @Test("weekday lists and wrapping ranges", arguments: [
        ("mon-fri", UInt8(0b0011111)), ("sat,sun", 0b1100000), ("mon,wed-fri", 0b0011101),
        ("fri-mon", 0b1110001), ("SUN", 0b1000000), (" tue , thu ", 0b0001010), ("", 0b1111111),
    ])
    func weekdays(text: String, mask: UInt8) throws {
        let d = try Self.deck("1,1,0,1,1,\"\(text)\",,,,\n")
        #expect(d.rows[0].window.weekdays == mask)
    }

    @Test("bad window values name the line and column", arguments: [
        ("1,1,0,1,1,mon-fry,,,,\n", "weekdays", "unknown day \"fry\""),
        ("1,1,0,1,1,\"mon-tue-wed\",,,,\n", "weekdays", "range of days"),
        ("1,1,0,1,1,,8:00,,,\n", "time_from", "HH:MM"),
        ("1,1,0,1,1,,24:00,,,\n", "time_from", "23:59"),
        ("1,1,0,1,1,,,24:01,,\n", "time_to", "24:00"),
        ("1,1,0,1,1,,,12:60,,\n", "time_to", "HH:MM"),
        ("1,1,0,1,1,,18:00,08:00,,\n", "time_to", "write two rows"),
        ("1,1,0,1,1,,08:00,08:00,,\n", "time_to", "later than time_from"),
        ("1,1,0,1,1,,,,2026-02-30,\n", "effective_from", "YYYY-MM-DD"),
        ("1,1,0,1,1,,,,2026-01-01T25:00,\n", "effective_from", "YYYY-MM-DDTHH:MM"),
        ("1,1,0,1,1,,,,,01/02/2026\n", "effective_until", "is not a date"),
        ("1,1,0,1,1,,,,2026-03-01,2026-03-01\n", "effective_until", "later than effective_from"),
    ])
    func badWindow(row: String, column: String, fragment: String) throws {
        let e = try #require(Self.error("9,1,0,1,1,,,,,\n" + row))
        expectRowError(e, line: 3, column: column, fragment: fragment)
    }

    @Test func badHeaders() throws {
        let unknown = try #require(Self.error("", header: "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,weekday\n"))
        #expect(unknown.line == 1 && unknown.message.contains("unknown column \"weekday\""))
        let twice = try #require(Self.error("", header: "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,time_to,time_to\n"))
        #expect(twice.column == "time_to" && twice.message.contains("twice"))
        let order = try #require(Self.error("", header: "prefix,weekdays,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n"))
        #expect(order.message.hasPrefix("the header must be prefix,rate_per_minute,"))
    }

    @Test func overlappingRowsNameBothLines() throws {
        let e = try #require(Self.error("44,1,0,1,1,mon-fri,08:00,18:00,,\n1,1,0,1,1,,,,,\n44,2,0,1,1,fri-sat,17:00,19:00,,\n"))
        #expect(e.line == 4)
        #expect(e.column == "prefix")
        #expect(e.message.contains("overlaps line 2"), "\(e)")
        #expect(e.message.contains("17:00 (fri"), "\(e)")
        // Two plain rows of one prefix are still reported as a duplicate.
        let dup = try #require(Self.error("44,1,0,1,1,,,,,\n44,2,0,1,1,,,,,\n"))
        #expect(dup.line == 3 && dup.message.contains("duplicate prefix \"44\" (first on line 2)"))
        // Price lists overlapping by one day.
        let dated = try #require(Self.error("7,1,0,1,1,,,,,2026-03-02\n7,2,0,1,1,,,,2026-03-01,\n"))
        #expect(dated.line == 3 && dated.message.contains("overlaps line 2") && dated.message.contains("2026-03-01 00:00"))
    }

    @Test func rowsThatNeverMeetAreAccepted() throws {
        _ = try Self.deck(Self.weekly)
        // Adjacent price lists and adjacent windows.
        _ = try Self.deck("7,1,0,1,1,,,,,2026-03-01\n7,2,0,1,1,,,,2026-03-01,2027-01-01\n7,3,0,1,1,,,,2027-01-01T00:00,\n"
                          + "8,1,0,1,1,mon-fri,08:00,18:00,,\n8,2,0,1,1,mon-fri,18:00,24:00,,\n8,3,0,1,1,sat-sun,,,,\n")
        // Weekdays and times intersect, validity intersects, but the validity holds only a weekend:
        // no real moment lies in both.
        _ = try Self.deck("5,1,0,1,1,mon-fri,,,,\n5,2,0,1,1,,,,2026-01-10,2026-01-12\n")
        // The same in Sydney's wall clock.
        _ = try Self.deck("5,1,0,1,1,mon-fri,,,,\n5,2,0,1,1,,,,2026-01-10,2026-01-12\n", zone: "Australia/Sydney")
    }

    // MARK: worked examples at the boundaries

    @Test func oneSecondBeforeTheWindowEnds() throws {
        let plain = try Self.deck(Self.weekly)
        let split = try Self.deck(Self.weekly, split: true)
        let at = Self.utc(2026, 1, 5, 17, 59, 59)
        // Without split the peak row prices all 60 charged seconds: 0.01 + 0.60.
        let p = try #require(plain.price("4420", billsec: 30, answeredAt: at))
        #expect(p.chargedSeconds == 60 && p.cost == 10_000 + 600_000)
        // With split: 1 s of peak (10,000) + 59 s of evening (59,000), plus the peak row's fee.
        let s = try #require(split.price("4420", billsec: 30, answeredAt: at))
        #expect(s.chargedSeconds == 60)
        #expect(s.parts.map(\.seconds) == [1, 59])
        #expect(s.parts.map(\.row.line) == [2, 3])
        #expect(s.cost == 10_000 + 10_000 + 59_000)
        // Answered at 18:00:00 sharp the evening row selects.
        let evening = try #require(plain.price("4420", billsec: 30, answeredAt: at + 1))
        #expect(evening.cost == 70_000)
    }

    @Test func aCallSpanningThreeWindows() throws {
        let split = try Self.deck(Self.weekly, split: true)
        // Friday 2026-01-09 17:59:30 for 6 h 1 min: 30 s peak, 6 h evening, 30 s of Saturday.
        let at = Self.utc(2026, 1, 9, 17, 59, 30)
        let s = try #require(split.price("44", billsec: 30 + 21_600 + 30, answeredAt: at))
        #expect(s.parts.map(\.seconds) == [30, 21_600, 30])
        #expect(s.parts.map(\.cost) == [300_000, 21_600_000, 15_000])
        #expect(s.cost == 10_000 + 300_000 + 21_600_000 + 15_000)
    }

    @Test func aWindowEndingAt2400() throws {
        let split = try Self.deck(Self.weekly, split: true)
        let beforeMidnight = Self.utc(2026, 1, 5, 23, 59, 59)
        #expect(split.match("44", at: beforeMidnight)?.line == 3)        // 18:00–24:00 still applies
        #expect(split.match("44", at: beforeMidnight + 1)?.line == 4)    // Tuesday 00:00 is the night row
        // The evening and night rows have equal rates but are different rows: two parts, each rounded.
        let deck = try Self.deck("1,0.000001,0,1,1,,18:00,24:00,,\n1,0.000001,0,1,1,,00:00,18:00,,\n", split: true)
        let p = try #require(deck.price("1", billsec: 2, answeredAt: beforeMidnight))
        #expect(p.parts.map(\.seconds) == [1, 1])
        #expect(p.cost == 2)   // ceil(1 * 1 / 60) twice; merged it would be ceil(2 / 60) = 1
    }

    @Test func aPriceListChangingAtMidnight() throws {
        let body = "1,0.06,0,1,1,,,,,2026-03-01\n1,0.12,0,1,1,,,,2026-03-01,\n"
        let plain = try Self.deck(body)
        let split = try Self.deck(body, split: true)
        let at = Self.utc(2026, 2, 28, 23, 59, 50)
        #expect(plain.price("1555", billsec: 20, answeredAt: at)?.cost == 20_000)
        let s = try #require(split.price("1555", billsec: 20, answeredAt: at))
        #expect(s.parts.map(\.seconds) == [10, 10])
        #expect(s.cost == 10_000 + 20_000)
        #expect(plain.price("1555", billsec: 20, answeredAt: Self.utc(2026, 3, 1))?.cost == 40_000)
        // A price list read in New York changes at New York's midnight (05:00 UTC).
        let ny = try Self.deck(body, zone: "America/New_York")
        #expect(ny.price("1", billsec: 60, answeredAt: Self.utc(2026, 3, 1, 4, 59, 59))?.cost == 60_000)
        #expect(ny.price("1", billsec: 60, answeredAt: Self.utc(2026, 3, 1, 5))?.cost == 120_000)
    }

    @Test func windowsFollowTheWallClockAcrossDST() throws {
        // London springs forward on 2026-03-29 at 01:00 UTC: 00:59:59 GMT is followed by 02:00:00 BST.
        let body = "1,0.06,0,1,1,,00:00,02:00,,\n1,0.60,0,1,1,,02:00,24:00,,\n"
        let split = try Self.deck(body, zone: "Europe/London", split: true)
        let spring = Self.utc(2026, 3, 29, 0, 59, 30)
        let s = try #require(split.price("1", billsec: 60, answeredAt: spring))
        #expect(s.parts.map(\.seconds) == [30, 30])
        #expect(s.cost == 30_000 + 300_000)
        // London falls back on 2026-10-25 at 01:00 UTC: 01:59:59 BST is followed by 01:00:00 GMT, so
        // a 01:00–02:00 window lasts two real hours that day.
        let night = try Self.deck("1,0.06,0,1,1,,01:00,02:00,,\n1,0.60,0,1,1,,00:00,01:00,,\n1,0.60,0,1,1,,02:00,24:00,,\n",
                                  zone: "Europe/London", split: true)
        let fall = Self.utc(2026, 10, 25, 0, 30)   // 01:30 BST
        let f = try #require(night.price("1", billsec: 5400, answeredAt: fall))
        #expect(f.parts.map(\.seconds) == [5400])          // 01:30 BST → 01:00 GMT → 02:00 GMT
        #expect(f.cost == 5_400_000)
        let g = try #require(night.price("1", billsec: 5401, answeredAt: fall))
        #expect(g.parts.map(\.seconds) == [5400, 1])
    }

    @Test func effectiveDatesAtNonexistentAndAmbiguousLocalTimes() throws {
        // 01:30 does not exist in London on 2026-03-29: the list starts at the first instant after, 01:00 UTC.
        let gap = try Self.deck("1,0.06,0,1,1,,,,,2026-03-29T01:30\n1,0.12,0,1,1,,,,2026-03-29T01:30,\n", zone: "Europe/London")
        let jump = Self.utc(2026, 3, 29, 1)
        #expect(gap.match("1", at: jump - 1)?.line == 2)
        #expect(gap.match("1", at: jump)?.line == 3)
        // 01:30 happens twice on 2026-10-25: the earlier (BST, 00:30 UTC) is meant.
        let twice = try Self.deck("1,0.06,0,1,1,,,,,2026-10-25T01:30\n1,0.12,0,1,1,,,,2026-10-25T01:30,\n", zone: "Europe/London")
        let first = Self.utc(2026, 10, 25, 0, 30)
        #expect(twice.match("1", at: first - 1)?.line == 2)
        #expect(twice.match("1", at: first)?.line == 3)
    }

    @Test func selectionIsLongestPrefixAmongRowsInEffect() throws {
        let d = try Self.deck("44,0.5,0,1,1,,,,,\n447,0.9,0,1,1,mon-fri,08:00,18:00,,\n", split: true)
        let peak = Self.utc(2026, 1, 5, 12)
        #expect(d.match("4477", at: peak)?.prefix == "447")
        #expect(d.match("4477", at: Self.utc(2026, 1, 5, 19))?.prefix == "44")
        // A part's row is found by the full rule: at 18:00 the call falls back to the shorter prefix.
        let p = try #require(d.price("4477", billsec: 120, answeredAt: Self.utc(2026, 1, 5, 17, 59)))
        #expect(p.parts.map(\.row.prefix) == ["447", "44"])
        // No row at a charged second: no_rate with split, priced by the answer's row without.
        let gap = "9,1,0,1,1,,08:00,18:00,,\n"
        #expect(try Self.deck(gap, split: true).price("9", billsec: 120, answeredAt: Self.utc(2026, 1, 5, 17, 59)) == nil)
        #expect(try Self.deck(gap).price("9", billsec: 120, answeredAt: Self.utc(2026, 1, 5, 17, 59))?.cost == 2_000_000)
        #expect(try Self.deck(gap).price("9", billsec: 120, answeredAt: Self.utc(2026, 1, 5, 18)) == nil)
    }

    @Test func pricedByNamesTheRowsAndTheirValidity() throws {
        let split = try Self.deck(Self.weekly, split: true)
        let s = try #require(split.price("4420", billsec: 30, answeredAt: Self.utc(2026, 1, 5, 17, 59, 59)))
        #expect(s.pricedBy == #"[{"prefix":"44","line":2,"rate":"0.6","connect_fee":"0.01","seconds":1,"cost":"0.01","weekdays":"mon-fri","time_from":"08:00","time_to":"18:00"},{"prefix":"44","line":3,"rate":"0.06","seconds":59,"cost":"0.059","weekdays":"mon-fri","time_from":"18:00","time_to":"24:00"}]"#)
        // A call one row prices whole names the row alone: its seconds and cost are the charge's own.
        let whole = #"[{"prefix":"44","line":2,"rate":"0.6","connect_fee":"0.01","weekdays":"mon-fri","time_from":"08:00","time_to":"18:00"}]"#
        let one = try #require(split.price("4420", billsec: 30, answeredAt: Self.utc(2026, 1, 5, 12)))
        #expect(one.parts.count == 1 && one.pricedBy == whole)
        // `choose` says the same without building parts, with the text the deck built for the row.
        guard case .row(let k, let c, let cost)? = split.choose("4420", billsec: 30, answeredAt: Self.utc(2026, 1, 5, 12)) else {
            Issue.record("a call inside one window is priced by one row")
            return
        }
        #expect(split.rowPricedBy[k] == whole && c == one.chargedSeconds && cost == one.cost)
        guard case .parts(let parts)? = split.choose("4420", billsec: 30, answeredAt: Self.utc(2026, 1, 5, 17, 59, 59)) else {
            Issue.record("a call crossing 18:00 with split is priced in parts")
            return
        }
        #expect(parts == s)
    }

    /// The peak/off-peak example and its worked split case, as docs/rating.md and the README print them.
    @Test func theDocumentedExample() throws {
        let csv = """
            prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,weekdays,time_from,time_to,description
            44,0.06,0,60,60,mon-fri,08:00,18:00,UK peak
            44,0.02,0,60,60,mon-fri,18:00,24:00,UK evening
            44,0.02,0,60,60,mon-fri,00:00,08:00,UK night
            44,0.01,0,60,60,"sat,sun",,,UK weekend
            *,0.10,0,60,60,,,,everything else

            """
        let at = Self.utc(2026, 1, 5, 17, 59, 59)
        let split = try RateDeck.parse(Array(csv.utf8), file: "rates.csv", zone: .utc, split: true)
        let p = try #require(split.price("4420", billsec: 30, answeredAt: at))
        #expect(p.cost == 20_667)
        #expect(p.pricedBy == #"[{"prefix":"44","line":2,"rate":"0.06","seconds":1,"cost":"0.001","weekdays":"mon-fri","time_from":"08:00","time_to":"18:00"},{"prefix":"44","line":3,"rate":"0.02","seconds":59,"cost":"0.019667","weekdays":"mon-fri","time_from":"18:00","time_to":"24:00"}]"#)
        let plain = try RateDeck.parse(Array(csv.utf8), file: "rates.csv", zone: .utc)
        #expect(plain.price("4420", billsec: 30, answeredAt: at)?.cost == 60_000)
        #expect(plain.price("4420", billsec: 30, answeredAt: at + 1)?.cost == 20_000)
    }

    // MARK: authorize

    @Test func maxSecondsStaysExactAcrossADearerWindow() throws {
        let split = try Self.deck(Self.weekly, split: true)
        let plain = try Self.deck(Self.weekly)
        let at = Self.utc(2026, 1, 5, 7, 58)   // 2 minutes of night, then peak
        // Credit 0.01 fee + 0.12 for two night minutes + 0.30 = 30 s of peak.
        let credit: Int64 = 10_000 + 120_000 + 300_000
        let m = try #require(split.maxSeconds("44", now: at, credit: credit, cap: 14_400)?.maxSeconds)
        #expect(m == 120)   // 60/60 increments: 180 would need a full peak minute
        #expect(try #require(split.price("44", billsec: m, answeredAt: at)).cost <= credit)
        #expect(try #require(split.price("44", billsec: m + 1, answeredAt: at)).cost > credit)
        // Without split the night row prices everything: 0.42 buys 7 minutes.
        #expect(plain.maxSeconds("44", now: at, credit: credit, cap: 14_400)?.maxSeconds == 420)
    }

    // MARK: against a brute-force pricer

    @Test(arguments: ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe"])
    func randomDecksAgainstSecondBySecond(zoneName: String) throws {
        var rng = SplitMix64(seed: 0x7135 &+ UInt64(zoneName.utf8.count))
        let tz = try #require(TimeZone(identifier: zoneName))
        let oracle = Oracle(zone: tz)
        var compared = 0, multiPart = 0, overlapsChecked = 0
        for round in 0 ..< 24 {
            var rows = (0 ..< 10).map { _ in ModelRow.random(&rng) }
            var deck: RateDeck?
            // Rows that overlap are dropped one by one; each reported overlap is confirmed by the oracle.
            while deck == nil {
                let csv = Self.header + rows.enumerated().map { $0.element.csv }.joined()
                let split = round % 2 == 0
                do {
                    deck = try RateDeck.parse(Array(csv.utf8), file: "r.csv", zone: ZoneTable(tz), split: split)
                } catch {
                    let e = error
                    let later = e.line - 2
                    let earlier = try #require(Int(e.message.split(separator: " ").drop { $0 != "line" }.dropFirst().first?
                        .prefix { $0.isNumber } ?? "")) - 2
                    if overlapsChecked < 6 {
                        #expect(oracle.overlap(rows[earlier], rows[later]), "\(e)")
                        overlapsChecked += 1
                    }
                    rows.remove(at: later)
                }
            }
            let d = try #require(deck)
            let model = rows.enumerated().map { (k, r) in oracle.resolve(r, line: k + 2) }
            let instants = oracle.interesting(model, &rng)
            for _ in 0 ..< 40 {
                let dst = ["44", "4412", "447700", "4", "1212", "99", "+447", "5"][Int(rng.next() % 8)]
                let at = instants[Int(rng.next() % UInt64(instants.count))] + Int64(rng.next() % 300) - 150
                let b = rng.next() % 3 == 0 ? Int64(rng.next() % 4000) + 1 : Int64(rng.next() % 300) + 1
                let want = oracle.price(model, dst: dst, billsec: b, at: at, split: d.split)
                let got = d.price(dst, billsec: b, answeredAt: at)
                #expect(got?.cost == want?.cost, "dst \(dst) b \(b) at \(at) split \(d.split)")
                #expect(got?.parts.count == want?.parts, "dst \(dst) b \(b) at \(at)")
                if (want?.parts ?? 0) > 1 { multiPart += 1 }
                compared += 1
                // Authorize's bound: the next billsec must not fit.
                if let w = want {
                    let credit = Int64(rng.next() % UInt64(max(w.cost, 1) * 2 + 1))
                    let cap: Int64 = 3000
                    let m = d.maxSeconds(dst, now: at, credit: credit, cap: cap)?.maxSeconds
                    if let m {
                        if m > 0 {
                            let fit = oracle.price(model, dst: dst, billsec: m, at: at, split: d.split)
                            #expect(fit.map { $0.cost <= credit } == true, "max \(m) credit \(credit) at \(at)")
                        }
                        if m < cap {
                            let over = oracle.price(model, dst: dst, billsec: m + 1, at: at, split: d.split)
                            #expect(over.map { $0.cost > credit } ?? true, "max \(m) credit \(credit) at \(at)")
                        }
                    } else {
                        let one = oracle.price(model, dst: dst, billsec: 1, at: at, split: d.split)
                        #expect(one.map { $0.cost > credit } ?? true, "no_credit but 1 s fits, credit \(credit)")
                    }
                }
            }
        }
        #expect(compared == 960)
        print("\(zoneName): \(compared) calls compared, \(multiPart) in several parts, \(overlapsChecked) overlaps confirmed")
        #expect(multiPart >= 5, "the random calls must cross boundaries (\(multiPart) did)")
    }

    /// A 100,000-prefix deck with three windows per prefix; the timing is printed (debug build, for
    /// information; the release figure is in bench/deckload.sh).
    @Test func hundredThousandPrefixesWithThreeWindows() throws {
        var text = Self.header
        text.reserveCapacity(100_000 * 3 * 48)
        for n in 0 ..< 100_000 {
            let p = String(1_000_000 + n * 7)
            text += "\(p),0.1,0,60,60,mon-fri,08:00,18:00,,\n\(p),0.05,0,60,60,mon-fri,18:00,24:00,,\n\(p),0.02,0,60,60,\"sat,sun\",,,,\n"
        }
        let (d, took) = try parseBigDeck(text)
        print("100k prefixes x 3 windows parsed in \(took) (debug build)")
        #expect(d.count == 300_000)
        #expect(d.match("1000007123", at: Self.utc(2026, 1, 10, 3))?.ratePerMinute == 20_000)
        #expect(d.match("1000007123", at: Self.utc(2026, 1, 9, 3)) == nil)
    }
}

/// A deck row as the test writes it, before any parsing.
struct ModelRow {
    var prefix: String
    var rate: Int64, fee: Int64, initial: Int64, subsequent: Int64
    var days: [Int]          // Monday = 0
    var daysText: String
    var from: Int, to: Int   // minutes after midnight
    var since: (Int64, Int64, Int64, Int64, Int64)?
    var until: (Int64, Int64, Int64, Int64, Int64)?

    static func random(_ rng: inout SplitMix64) -> ModelRow {
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        var r = ModelRow(prefix: pick(["", "4", "44", "447", "1", "99"]), rate: Int64(rng.next() % 2_000_000),
                         fee: pick([0, 0, 1000, 12_345]), initial: pick([0, 1, 30, 60]), subsequent: pick([1, 6, 30, 60]),
                         days: Array(0 ..< 7), daysText: "", from: 0, to: 1440, since: nil, until: nil)
        switch rng.next() % 5 {
        case 0: r.daysText = "mon-fri"; r.days = [0, 1, 2, 3, 4]
        case 1: r.daysText = "sat,sun"; r.days = [5, 6]
        case 2: r.daysText = "fri-mon"; r.days = [4, 5, 6, 0]
        default: break
        }
        if rng.next() % 2 == 0 {
            let cuts = [0, 60, 90, 120, 150, 180, 480, 1080, 1439, 1440]
            let a = Int(rng.next() % UInt64(cuts.count - 1))
            let b = a + 1 + Int(rng.next() % UInt64(cuts.count - 1 - a))
            r.from = cuts[a]; r.to = cuts[b]
        }
        // Dates around the zones' 2026 DST changes, some at times that do not exist or happen twice.
        let dates: [(Int64, Int64, Int64, Int64, Int64)] = [
            (2026, 3, 8, 2, 30), (2026, 3, 29, 1, 30), (2026, 10, 25, 1, 30), (2026, 11, 1, 1, 30),
            (2026, 4, 5, 1, 45), (2026, 3, 1, 0, 0), (2026, 3, 30, 0, 0), (2026, 10, 4, 2, 0),
        ]
        switch rng.next() % 4 {
        case 0: r.since = pick(dates)
        case 1: r.until = pick(dates)
        case 2:
            let a = pick(dates), b = pick(dates)
            if CivilTime.daysFromCivil(a.0, a.1, a.2) * 1440 + a.3 * 60 + a.4 < CivilTime.daysFromCivil(b.0, b.1, b.2) * 1440 + b.3 * 60 + b.4 {
                r.since = a; r.until = b
            }
        default: break
        }
        return r
    }

    var csv: String {
        func hm(_ m: Int) -> String { String(format: "%02d:%02d", m / 60, m % 60) }
        func date(_ d: (Int64, Int64, Int64, Int64, Int64)?) -> String {
            guard let d else { return "" }
            return String(format: "%04d-%02d-%02dT%02d:%02d", d.0, d.1, d.2, d.3, d.4)
        }
        return "\(prefix),\(Money.format(rate)),\(Money.format(fee)),\(initial),\(subsequent),\"\(daysText)\","
            + "\(from == 0 && to == 1440 ? "" : hm(from)),\(from == 0 && to == 1440 ? "" : hm(to)),\(date(since)),\(date(until))\n"
    }
}

/// The second-by-second pricer: Foundation's calendar for every wall-clock question, every row checked
/// at every charged second, no shared code with the deck beyond the rows' numbers.
final class Oracle {
    let zone: TimeZone
    let calendar: Calendar
    /// (weekday, minute of day) per UTC minute: every zone here changes offset on a whole minute.
    private var walls: [Int64: (Int, Int)] = [:]

    init(zone: TimeZone) {
        self.zone = zone
        var c = Calendar(identifier: .gregorian)
        c.timeZone = zone
        calendar = c
    }

    struct Row {
        var model: ModelRow
        var line: Int
        var since: Int64?
        var until: Int64?
    }

    func resolve(_ m: ModelRow, line: Int) -> Row {
        Row(model: m, line: line, since: m.since.map(instant), until: m.until.map(instant))
    }

    /// The first instant whose local wall-clock time is at or after the given one, found by scanning.
    func instant(_ d: (Int64, Int64, Int64, Int64, Int64)) -> Int64 {
        var comps = DateComponents()
        comps.year = Int(d.0); comps.month = Int(d.1); comps.day = Int(d.2); comps.hour = Int(d.3); comps.minute = Int(d.4)
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC") ?? .gmt
        let wall = Int64(utc.date(from: comps)?.timeIntervalSince1970 ?? 0)
        func local(_ t: Int64) -> Int64 { t + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t)))) }
        var t = wall - 16 * 3600
        while local(t) < wall { t += 60 }
        var s = t - 60
        while local(s) < wall { s += 1 }
        return s
    }

    func wall(_ t: Int64) -> (weekday: Int, minute: Int) {
        let key = t >= 0 ? t / 60 : (t - 59) / 60
        if let w = walls[key] { return w }
        let c = calendar.dateComponents([.weekday, .hour, .minute], from: Date(timeIntervalSince1970: Double(key * 60)))
        let w = (((c.weekday ?? 1) + 5) % 7, (c.hour ?? 0) * 60 + (c.minute ?? 0))    // Calendar: Sunday = 1
        walls[key] = w
        return w
    }

    func applies(_ r: Row, at t: Int64) -> Bool {
        let (weekday, minute) = wall(t)
        return r.model.days.contains(weekday) && minute >= r.model.from && minute < r.model.to
            && (r.since.map { t >= $0 } ?? true) && (r.until.map { t < $0 } ?? true)
    }

    func select(_ rows: [Row], dst: String, at t: Int64) -> Row? {
        let d = dst.hasPrefix("+") ? String(dst.dropFirst()) : dst
        return rows.filter { d.hasPrefix($0.model.prefix) && applies($0, at: t) }
            .max { $0.model.prefix.count < $1.model.prefix.count }
    }

    func price(_ rows: [Row], dst: String, billsec b: Int64, at t: Int64, split: Bool) -> (cost: Int64, parts: Int)? {
        guard let first = select(rows, dst: dst, at: t) else { return nil }
        let i = first.model.initial, s = first.model.subsequent
        let c = b <= i ? i : i + ((b - i) + s - 1) / s * s
        func timed(_ rate: Int64, _ n: Int64) -> Int64 { (rate * n + 59) / 60 }
        guard split else { return (first.model.fee + timed(first.model.rate, c), 1) }
        var total = first.model.fee, parts = 0
        var runLine = -1, runRate: Int64 = 0, runLength: Int64 = 0
        for k in 0 ..< c {
            guard let r = select(rows, dst: dst, at: t + k) else { return nil }
            if r.line != runLine {
                if runLength > 0 { total += timed(runRate, runLength); parts += 1 }
                runLine = r.line; runRate = r.model.rate; runLength = 0
            }
            runLength += 1
        }
        total += timed(runRate, runLength)
        return (total, parts + 1)
    }

    /// Whether some minute in the overlap of the rows' validity (up to 8 days of it) has both rows applying.
    func overlap(_ a: ModelRow, _ b: ModelRow) -> Bool {
        let x = resolve(a, line: 0), y = resolve(b, line: 1)
        let lo = max(x.since ?? 1_767_225_600, y.since ?? 1_767_225_600)
        var t = lo
        while t < lo + 8 * 86_400 {
            if applies(x, at: t) && applies(y, at: t) { return true }
            t += 60
        }
        return false
    }

    /// Instants near which the price may change: window edges and midnights on a few days, the rows'
    /// dates, and the zone's DST changes.
    func interesting(_ rows: [Row], _ rng: inout SplitMix64) -> [Int64] {
        var out: [Int64] = []
        for r in rows {
            if let s = r.since { out.append(s) }
            if let u = r.until { out.append(u) }
        }
        var cursor = Date(timeIntervalSince1970: 1_767_225_600)
        for _ in 0 ..< 4 {
            guard let next = zone.nextDaylightSavingTimeTransition(after: cursor) else { break }
            out.append(Int64(next.timeIntervalSince1970))
            cursor = next
        }
        for day in [Int64(0), 3, 5, 6, 66, 87, 297] {
            let midnight = instant((2026, 1, 1 + day, 0, 0))
            for m in [0, 60, 90, 120, 480, 1080, 1439] { out.append(midnight + Int64(m) * 60) }
        }
        return out
    }
}

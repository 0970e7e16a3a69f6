@testable import API
import Ledger
import MeterConfig
import MeterCore
import Rater
import Synchronization
import Testing

@Suite("authorize arithmetic against a brute-force oracle")
struct AuthorizeArithmeticTests {
    /// Credits around every boundary: each step's exact cost, one µcr either side, the bare
    /// connect fee, zero and negative balances.
    static func balances(_ row: RateRow, steps: Int) -> [Int64] {
        var out: Set<Int64> = [0, -1, -1_000_000, row.connectFee - 1, row.connectFee, row.connectFee + 1, 5_000_000_000]
        let first = row.initialIncrement > 0 ? row.initialIncrement : row.subsequentIncrement
        var c = first
        for _ in 0 ..< steps {
            let cost = Oracle.cost(row, c)
            out.formUnion([cost - 1, cost, cost + 1])
            c += row.subsequentIncrement
        }
        return out.sorted()
    }

    @Test("decide() matches the oracle for 60/60, 30/6, 1/1, connect fees and i=0", arguments: [
        "12125550100", // 1: 30/6
        "4420",        // 44: 1/1
        "447700",      // 447: 30/1 with a connect fee
        "811",         // 8: 45/30 with a connect fee
        "900",         // 9: 0/6 with a connect fee
        "3361",        // *: 60/60
    ])
    func matchesOracle(dst: String) throws {
        let deck = try Fixtures.deck()
        let row = try #require(deck.match(dst))
        let cap: Int64 = 900
        let settings = APISettings(authorize: AuthorizeConfig(maxCallSeconds: cap), decks: ["default": deck], plans: ["default"])
        var checked = 0
        for credit in Self.balances(row, steps: 40) {
            let client = HoldView(clientID: 1, username: "u", status: .active, plan: "default",
                                  meter: credit >= 0 ? Meter(assigned: credit, used: 0) : Meter(assigned: 0, used: -credit),
                                  reserved: 0, calls: 0)
            let d = ReservationBook.decide(view: client, account: "u", destination: dst, call: nil, settings: settings,
                                           answeredAt: ReservationBook.unixSeconds(), now: 0).value
            let want = Oracle.maxSeconds(row, credit: credit, cap: cap)
            if let want {
                #expect(d.reason == .ok && d.maxSeconds == want, "credit \(credit) dst \(dst): got \(d.reason) \(d.maxSeconds), want \(want)")
                // The answer's own cost fits, and one more second would not (unless the cap stopped it).
                #expect(Oracle.cost(row, d.maxSeconds) <= credit)
                if d.maxSeconds < cap { #expect(Oracle.cost(row, d.maxSeconds + 1) > credit) }
            } else {
                #expect(d.reason == .noCredit && d.maxSeconds == 0, "credit \(credit) dst \(dst): got \(d.reason) \(d.maxSeconds), want no_credit")
            }
            checked += 1
        }
        #expect(checked > 100)
    }

    @Test("the cap applies: a rich client gets max_call_seconds exactly")
    func capApplies() throws {
        let s = try Store()
        try s.client("rich", credits: "100000")
        try s.refresh()
        let d = try s.authorize("rich", "4420", AuthorizeConfig(maxCallSeconds: 1234))
        #expect(d.reason == .ok && d.maxSeconds == 1234)
    }

    @Test("answers come from the store's balances at once: a charge or recharge by another connection moves the next one")
    func followsLedger() throws {
        let s = try Store()
        let c = try s.client("alice", credits: "0.031") // exactly 60 s at 0.031/min, 1/1
        #expect(try s.authorize("alice", "4420").maxSeconds == 60)
        try s.charge(c, cost: 15_500) // half a minute, committed by the writer (the daemon's connection)
        #expect(try s.authorize("alice", "4420").maxSeconds == 30)
        try s.charge(c, cost: 15_500)
        #expect(try s.authorize("alice", "4420").reason == .noCredit)
        _ = try s.writer.recharge(username: "alice", amount: 31_000, key: nil, now: 1_700_000_001)
        #expect(try s.authorize("alice", "4420").maxSeconds == 60)
        try s.charge(c, cost: 31_000)
        let d = try s.authorize("alice", "4420")
        #expect(d.reason == .noCredit && d.available == 0)
    }
}

@Suite("reservations, limits and deny reasons")
struct ReservationTests {
    @Test("two concurrent authorizations see each other's hold: only one of two calls fits")
    func concurrentSeeEachOther() async throws {
        let s = try Store()
        // 0.05/min, 60/60: one minute costs 0.05; 0.08 buys one minute, not two.
        try s.client("bob", credits: "0.08")
        try s.refresh()
        let settings = try Fixtures.settings()
        let authorizer = s.authorizer
        let results = await withTaskGroup(of: AuthorizeDecision.self) { g in
            for n in 0 ..< 2 {
                g.addTask { authorizer.authorize(account: "bob", destination: "3361", call: "call-\(n)", settings: settings) }
            }
            var out: [AuthorizeDecision] = []
            for await d in g { out.append(d) }
            return out
        }
        let allowed = results.filter(\.allow)
        #expect(allowed.count == 1)
        #expect(allowed.first?.maxSeconds == 60 && allowed.first?.hold == 50_000)
        let denied = try #require(results.first { !$0.allow })
        #expect(denied.reason == .noCredit && denied.reserved == 50_000)
    }

    @Test("a hold shrinks the next answer; the same call again is recomputed, not doubled")
    func holdsAndIdempotence() throws {
        let s = try Store()
        try s.client("carol", credits: "0.031") // 60 s at 1/1 0.031/min
        try s.refresh()
        let cfg = AuthorizeConfig(maxCallSeconds: 20)
        let first = try s.authorize("carol", "4420", call: "A", cfg)
        #expect(first.maxSeconds == 20 && first.hold == 10_334) // ceil(31000*20/60)
        let again = try s.authorize("carol", "4420", call: "A", cfg)
        #expect(again.maxSeconds == 20 && again.reserved == 0 && again.hold == 10_334)
        #expect(try s.book.held(clientID: 1).calls == 1)
        let b = try s.authorize("carol", "4420", call: "B", cfg)
        #expect(b.reserved == 10_334 && b.maxSeconds == 20)
        // Without a call id nothing is reserved, but holds still count.
        let c = try s.authorize("carol", "4420", cfg)
        #expect(c.reserved == 20_668 && c.hold == 0)
        #expect(c.maxSeconds == 19) // 31000 - 20668 = 10332 µcr → 19 s at 1/1
    }

    @Test("credit left is available minus holds, exactly")
    func creditLeftExact() throws {
        let s = try Store()
        try s.client("dave", credits: "0.031")
        try s.refresh()
        let cfg = AuthorizeConfig(maxCallSeconds: 20)
        _ = try s.authorize("dave", "4420", call: "A", cfg) // holds 10334
        _ = try s.authorize("dave", "4420", call: "B", cfg) // holds 10334
        let d = try s.authorize("dave", "4420", AuthorizeConfig(maxCallSeconds: 3600))
        // 31000 - 20668 = 10332 µcr at 31000 µcr/min, 1/1 → floor(10332*60/31000) = 19 s.
        #expect(d.maxSeconds == 19)
        #expect(Oracle.maxSeconds(try #require(Fixtures.deck().match("4420")), credit: 10_332, cap: 3600) == 19)
    }

    @Test("the batch that charges a call releases its hold in the same commit; unknown ids are ignored")
    func releaseByCallID() throws {
        let s = try Store()
        let c = try s.client("erin", credits: "0.1")
        let cfg = AuthorizeConfig(maxCallSeconds: 60)
        let a = try s.authorize("erin", "4420", call: "X", cfg) // 31000
        #expect(a.hold == 31_000)
        #expect(try s.authorize("erin", "4420", cfg).reserved == 31_000)
        // The daemon charges the call's CDR (20 s → 10334): the hold goes in the same transaction, so
        // no answer ever counts the call twice (charged and held) or not at all.
        try s.charge(c, cost: 10_334, releasing: ["X", "no-such-call"])
        #expect(s.book.liveCount == 0)
        let after = try s.authorize("erin", "4420", cfg)
        #expect(after.reserved == 0 && after.available == 100_000 - 10_334)
    }

    @Test("a hold expires after reservation_seconds")
    func expiry() throws {
        let s = try Store()
        try s.client("fay", credits: "0.05")
        try s.refresh()
        let cfg = AuthorizeConfig(maxCallSeconds: 60, reservationSeconds: 120)
        #expect(try s.authorize("fay", "3361", call: "1", cfg).allow)
        #expect(try s.authorize("fay", "3361", call: "2", cfg).reason == .noCredit)
        s.clock.advance(seconds: 119)
        #expect(try s.authorize("fay", "3361", call: "2", cfg).reason == .noCredit)
        s.clock.advance(seconds: 1)
        #expect(try s.authorize("fay", "3361", call: "2", cfg).allow)
        s.clock.advance(seconds: 120)
        try s.book.sweep()
        #expect(s.book.liveCount == 0)
    }

    @Test("max_concurrent_calls caps live holds with too_many_calls")
    func concurrencyCap() throws {
        let s = try Store()
        let gus = try s.client("gus", credits: "100")
        try s.refresh()
        let cfg = AuthorizeConfig(maxCallSeconds: 60, maxConcurrentCalls: 2)
        #expect(try s.authorize("gus", "4420", call: "1", cfg).allow)
        #expect(try s.authorize("gus", "4420", call: "2", cfg).allow)
        #expect(try s.authorize("gus", "4420", call: "3", cfg).reason == .tooManyCalls)
        #expect(try s.authorize("gus", "4420", cfg).reason == .tooManyCalls)
        // Re-asking for a call that holds a slot is not a new call.
        #expect(try s.authorize("gus", "4420", call: "2", cfg).allow)
        try s.charge(gus, cost: 0, releasing: ["1"])
        #expect(try s.authorize("gus", "4420", call: "3", cfg).allow)
    }

    @Test("a hold belongs to (client, call): another account naming the same call id never touches it")
    func holdsAreKeyedByClientAndCall() throws {
        let s = try Store()
        let ann = try s.client("ann", credits: "0.031") // 60 s at 1/1: one 60 s call holds it all
        let ben = try s.client("ben", credits: "0")
        let cat = try s.client("cat", credits: "1")
        try s.refresh()
        let cfg = AuthorizeConfig(maxCallSeconds: 60)
        #expect(try s.authorize("ann", "4420", call: "X-1", cfg).hold == 31_000)
        // Ben (no credit) names Ann's call: denied, and Ann's hold stays.
        #expect(try s.authorize("ben", "4420", call: "X-1", cfg).reason == .noCredit)
        #expect(try s.book.held(clientID: ann.id) == (cost: 31_000, calls: 1))
        let again = try s.authorize("ann", "4420", call: "X-2", cfg)
        #expect(again.reason == .noCredit && again.reserved == 31_000, "Ann was allowed past her credit: \(again)")
        // Cat (allowed) names the same call id: a hold of its own, side by side with Ann's.
        #expect(try s.authorize("cat", "4420", call: "X-1", cfg).hold == 31_000)
        #expect(try s.book.held(clientID: ann.id) == (cost: 31_000, calls: 1))
        #expect(try s.book.held(clientID: cat.id) == (cost: 31_000, calls: 1))
        #expect(s.book.liveCount == 2)
        // A charged CDR releases only the hold of the client it was charged to.
        try s.charge(cat, cost: 0, releasing: ["X-1"])
        try s.charge(ben, cost: 0, releasing: ["X-1"])
        #expect(s.book.liveCount == 1)
        #expect(try s.book.held(clientID: ann.id) == (cost: 31_000, calls: 1))
        #expect(try s.book.held(clientID: cat.id) == (cost: 0, calls: 0))
    }

    @Test("max_holds_per_client (default 64): a new call past it is too_many_calls")
    func holdsPerClientCap() throws {
        let s = try Store()
        let hog = try s.client("hog", credits: "1000")
        try s.client("joy", credits: "1")
        try s.refresh()
        let cfg = AuthorizeConfig(maxCallSeconds: 60)
        #expect(cfg.maxHoldsPerClient == 64)
        for n in 0 ..< 64 {
            let d = try s.authorize("hog", "4420", call: "fake-\(n)", cfg)
            #expect(d.allow, "call \(n): \(d.reason)")
        }
        let over = try s.authorize("hog", "4420", call: "fake-64", cfg)
        #expect(over.reason == .tooManyCalls && over.text == "DENY too_many_calls" && over.hold == 0)
        #expect(try s.book.held(clientID: hog.id).calls == 64 && s.book.liveCount == 64)
        // A call already holding re-asks within the cap; an authorization without a call holds nothing.
        #expect(try s.authorize("hog", "4420", call: "fake-7", cfg).allow)
        #expect(try s.authorize("hog", "4420", cfg).allow)
        // Other clients are not limited by the hog's holds.
        #expect(try s.authorize("joy", "4420", call: "fake-64", cfg).allow)
        let small = AuthorizeConfig(maxCallSeconds: 60, maxHoldsPerClient: 2)
        #expect(try s.authorize("joy", "4420", call: "j-2", small).allow)
        #expect(try s.authorize("joy", "4420", call: "j-3", small).reason == .tooManyCalls)
        // A released hold frees its slot.
        try s.charge(hog, cost: 0, releasing: ["fake-0"])
        #expect(try s.authorize("hog", "4420", call: "fake-64", cfg).allow)
    }

    @Test("5,000 holds of one client: another client's answer is right and its cost does not grow")
    func answerCostIndependentOfHolds() throws {
        let s = try Store()
        let hog = try s.client("hog", credits: "100000")
        let joy = try s.client("joy", credits: "1")
        try s.refresh()
        let wide = AuthorizeConfig(maxCallSeconds: 60, maxHoldsPerClient: 100_000)
        // Each answer of the hog sums its own holds (at most max_holds_per_client, 64 by default), so
        // filling costs the square of the count: 5,000 keep the test short.
        let holds = 5_000
        let settings = try Fixtures.settings(wide)
        func answers(_ n: Int, _ account: String, call: (Int) -> String?) -> Duration {
            let clock = ContinuousClock()
            return clock.measure {
                for i in 0 ..< n { _ = s.authorizer.authorize(account: account, destination: "4420", call: call(i), settings: settings) }
            }
        }
        let before = answers(2000, "joy") { "j-\($0 % 4)" }
        let filling = answers(holds, "hog") { "h-\($0)" }
        #expect(try s.book.held(clientID: hog.id) == (cost: Int64(holds) * 31_000, calls: holds))
        let after = answers(2000, "joy") { "j-\($0 % 4)" }
        let hogAnswers = answers(200, "hog") { "h-\($0)" } // re-asks: each replaces its own hold
        let d = try s.authorize("joy", "4420", call: "j-0", wide)
        #expect(d.allow && d.maxSeconds == 60 && d.reserved == 93_000, "\(d)") // 3 other calls hold 31,000 each
        #expect(try s.book.held(clientID: joy.id).calls == 4)
        #expect(s.book.liveCount == holds + 4)
        // A figure for the report, not an assertion: timing on a shared machine is noise.
        func us(_ d: Duration, _ n: Int) -> String {
            let ns = d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
            return "\(ns / Int64(n) / 1000).\(ns / Int64(n) % 1000 / 100) µs"
        }
        print("authorize per answer: another client, hog holding 0: \(us(before, 2000)); hog holding \(holds): \(us(after, 2000)); "
              + "the hog's own re-asks: \(us(hogAnswers, 200)); filling the \(holds): \(us(filling, holds))")
    }

    @Test("re-asking the same call many times keeps one hold")
    func reaskingDoesNotGrowTheIndex() throws {
        let s = try Store()
        let c = try s.client("kim", credits: "10")
        for _ in 0 ..< 1_000 { _ = try s.authorize("kim", "4420", call: "same", AuthorizeConfig(maxCallSeconds: 60)) }
        #expect(try s.book.held(clientID: c.id) == (cost: 31_000, calls: 1))
        #expect(s.book.liveCount == 1)
    }

    @Test("disabled clients are authorized unless deny_disabled")
    func disabled() throws {
        let s = try Store()
        try s.client("hal", credits: "10")
        _ = try s.writer.setDisabled(username: "hal", true, now: 1_700_000_100)
        try s.refresh()
        #expect(try s.authorize("hal", "4420").allow)
        let d = try s.authorize("hal", "4420", AuthorizeConfig(denyDisabled: true))
        #expect(d.reason == .disabled && !d.allow && d.username == "hal")
    }

    @Test("unknown account, no rate, and accounts other than the username")
    func unknownAndNoRate() throws {
        let s = try Store()
        try s.client("ivy", credits: "10", accounts: ["2001", "2002"])
        try s.refresh()
        let u = try s.authorize("ivy", "4420")
        #expect(u.reason == .unknownAccount && u.username == nil && u.available == nil)
        #expect(try s.authorize("2002", "+4420").allow)
        let deckNoCatchAll = try RateDeck(rows: [RateRow(prefix: "44", ratePerMinute: 1000)])
        let settings = APISettings(decks: ["default": deckNoCatchAll], plans: ["default"])
        let d = s.authorizer.authorize(account: "2001", destination: "3361", call: nil, settings: settings)
        #expect(d.reason == .noRate && d.username == "ivy")
        // A plan without a deck (the config lost it) is no_rate too, not a crash.
        let none = s.authorizer.authorize(account: "2001", destination: "4420", call: nil, settings: APISettings(decks: [:]))
        #expect(none.reason == .noRate)
    }

    @Test("text and JSON forms of a decision")
    func renderings() throws {
        let s = try Store()
        try s.client("joe", credits: "1")
        try s.refresh()
        let ok = try s.authorize("joe", "4420", call: "c1", AuthorizeConfig(maxCallSeconds: 60))
        #expect(ok.text == "ALLOW 60")
        #expect(ok.json.serialized() == #"{"allow":true,"max_seconds":60,"reason":"ok","username":"joe","account":"joe","available":"1","reserved":"0","hold":"0.031","call":"c1","prefix":"44"}"#)
        let no = try s.authorize("nobody", "4420")
        #expect(no.text == "DENY unknown_account")
    }
}

@Suite("constant-time token comparison")
struct TokenTests {
    @Test("equal only for the exact token")
    func semantics() {
        let t = Array("admin-token-0123456789".utf8)
        #expect(ConstantTime.equals(t, t))
        #expect(!ConstantTime.equals(Array("admin-token-012345678".utf8), t))   // prefix
        #expect(!ConstantTime.equals(Array("admin-token-01234567890".utf8), t)) // longer
        #expect(!ConstantTime.equals(Array("Admin-token-0123456789".utf8), t))  // first byte
        #expect(!ConstantTime.equals(Array("admin-token-0123456788".utf8), t))  // last byte
        #expect(!ConstantTime.equals([], t))
        #expect(!ConstantTime.equals(t, []))
        #expect(ConstantTime.equals("", ""))
        // A guess that repeats the token's prefix cyclically must not pass by the modulo indexing.
        #expect(!ConstantTime.equals(Array("ab".utf8), Array("abab".utf8)))
    }
}

@Suite("authorize across windows")
struct AuthorizeWindowTests {
    // Night 0.06 until 08:00, peak 0.60 until 18:00, evening 0.06; fee 0.002; 30/6 increments.
    static let csv = """
        prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,time_from,time_to
        44,0.06,0.002,30,6,00:00,08:00
        44,0.60,0.002,30,6,08:00,18:00
        44,0.06,0.002,30,6,18:00,24:00

        """

    /// Every billsec up to max_seconds fits, the next does not, for calls that would cross into a dearer
    /// window (07:5x) and into a cheaper one (17:5x), with and without split.
    @Test(arguments: [false, true])
    func maxSecondsIsExactAcrossABoundary(split: Bool) throws {
        let deck = try RateDeck.parse(Array(Self.csv.utf8), file: "rates.csv", split: split)
        let cap: Int64 = 900
        let settings = APISettings(authorize: AuthorizeConfig(maxCallSeconds: cap), decks: ["default": deck], plans: ["default"])
        let day = CivilTime.daysFromCivil(2026, 3, 2) * 86_400
        var checked = 0, crossed = 0
        for answer in [day + 7 * 3600 + 58 * 60 + 17, day + 17 * 3600 + 57 * 60 + 3] {
            for credit: Int64 in [0, 1_999, 32_000, 63_337, 150_000, 411_111, 1_000_000, 2_500_000, 4_000_000, 7_654_321] {
                let client = HoldView(clientID: 1, username: "u", status: .active, plan: "default",
                                      meter: Meter(assigned: credit, used: 0), reserved: 0, calls: 0)
                let d = ReservationBook.decide(view: client, account: "u", destination: "4420", call: nil, settings: settings,
                                               answeredAt: answer, now: 0).value
                func fits(_ b: Int64) -> Bool { (deck.price("4420", billsec: b, answeredAt: answer)?.cost ?? Int64.max) <= credit }
                if d.reason == .noCredit {
                    #expect(!fits(1), "credit \(credit): no_credit but one second fits")
                    continue
                }
                #expect(d.reason == .ok)
                let m = d.maxSeconds
                for b in stride(from: 1, through: m, by: 1) where !fits(b) {
                    Issue.record("credit \(credit) at \(answer): billsec \(b) <= max \(m) does not fit")
                    break
                }
                if m < cap { #expect(!fits(m + 1), "credit \(credit) at \(answer): max \(m) but \(m + 1) fits") }
                if let p = deck.price("4420", billsec: m, answeredAt: answer), p.parts.count > 1 { crossed += 1 }
                checked += 1
            }
        }
        #expect(checked >= 12)
        if split { #expect(crossed >= 4, "the answers must reach across the boundary") }
    }
}

@Suite("authorize while the store cannot take a hold")
struct StoreDownTests {
    /// Another connection keeps the write lock, as a stuck writer or a store on a failing disk would;
    /// the book's connection gives up after 20 ms instead of 1 s.
    static func locked(_ s: Store, _ body: () throws -> Void) throws {
        s.holds.waitForWriters(milliseconds: 20)
        try s.writer.store.execute("BEGIN IMMEDIATE", purpose: "test: holding the write lock")
        defer { try? s.writer.store.execute("ROLLBACK", purpose: "test: letting go of the write lock") }
        try body()
    }

    @Test("deny (the default): a call is denied with store_unavailable, and nothing is held")
    func denyByDefault() throws {
        let s = try Store()
        try s.client("nia", credits: "1")
        try s.refresh()
        #expect(AuthorizeConfig().whenStoreDown == .deny)
        try Self.locked(s) {
            let d = try s.authorize("nia", "4420", call: "c-1", AuthorizeConfig(maxCallSeconds: 60))
            #expect(d.reason == .storeUnavailable && !d.allow && d.text == "DENY store_unavailable" && d.hold == 0)
        }
        #expect(s.book.liveCount == 0 && s.book.pendingCount == 0)
        // The daemon is told of every answer the store could not give (it logs them, rate-limited).
        let told = Mutex<[String]>([])
        let book = ReservationBook(ledger: s.holds, clock: s.clock.now, storeFailed: { e in told.withLock { $0.append("\(e)") } })
        try Self.locked(s) {
            let d = book.decide(account: "nia", destination: "4420", call: "c-2", settings: try Fixtures.settings(), cached: nil)
            #expect(d.reason == .storeUnavailable)
        }
        #expect(told.withLock { $0.count } == 1 && told.withLock { $0.first?.contains("authorizing call c-2") } == true,
                "\(told.withLock { $0 })")
        // Once the lock is gone the same call is answered from the store.
        #expect(try s.authorize("nia", "4420", call: "c-1", AuthorizeConfig(maxCallSeconds: 60)).hold == 31_000)
    }

    @Test("cached: answered from the last balances, holds kept by the agent count, and reach the store when it answers")
    func cachedKeepsHoldsUntilTheStoreAnswers() throws {
        let s = try Store()
        let c = try s.client("ola", credits: "0.062") // two 60 s calls at 0.031/min, 1/1
        try s.refresh()
        let cfg = AuthorizeConfig(maxCallSeconds: 60, whenStoreDown: .cached)
        try Self.locked(s) {
            let a = try s.authorize("ola", "4420", call: "A", cfg)
            #expect(a.allow && a.hold == 31_000 && a.reserved == 0, "\(a)")
            let b = try s.authorize("ola", "4420", call: "B", cfg)
            #expect(b.allow && b.reserved == 31_000, "\(b)")
            let third = try s.authorize("ola", "4420", call: "C", cfg)
            #expect(third.reason == .noCredit && third.reserved == 62_000, "\(third)")
            #expect(try s.authorize("nobody", "4420", call: "D", cfg).reason == .unknownAccount)
            #expect(s.book.pendingCount == 2)
        }
        // The next answer hands the kept holds to the store first: they count for every agent from then on.
        let after = try s.authorize("ola", "4420", call: "E", cfg)
        #expect(after.reason == .noCredit && after.reserved == 62_000, "\(after)")
        #expect(s.book.pendingCount == 0)
        #expect(try s.book.held(clientID: c.id) == (cost: 62_000, calls: 2))
    }
}

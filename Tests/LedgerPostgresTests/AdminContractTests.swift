import Foundation
// For `Ledger.lastStartWalk`, which tests lower.
@testable import Ledger
import LedgerPostgres
import MeterCore
import Testing
import TestSupport

/// The daemon's store calls (`AgentStore`), and a hook to shorten `lastChargedStart`'s walk for the tests.
protocol AdminStore: AgentStore {
    /// `Ledger.lastStartWalk` / `PostgresLedger.lastStartWalk`.
    func setLastStartWalk(_ n: Int)
}

extension Ledger: AdminStore {
    func setLastStartWalk(_ n: Int) { lastStartWalk = n }
}

extension PostgresLedger: AdminStore {
    func setLastStartWalk(_ n: Int) { lastStartWalk = Int64(n) }
}

/// This host's store, another host's (a file of its own for SQLite; another node on the same database for
/// PostgreSQL), and statements the stores have no call for, run on this host's store in SQL both accept.
struct AdminHosts {
    let store: any AdminStore
    let other: any AdminStore
    let sql: (String) throws -> Void
    let int: (String) throws -> Int64

    static func make(_ kind: StoreKind) throws -> (hosts: AdminHosts, cleanup: () -> Void) {
        switch kind {
        case .sqlite:
            let a = try TempLedger(), b = try TempLedger()
            let l = a.ledger
            return (AdminHosts(store: l, other: b.ledger,
                               sql: { try l.store.execute($0, purpose: "test") },
                               int: { try l.store.scalarInt($0, purpose: "test") }),
                    { a.cleanup(); b.cleanup() })
        case .postgres:
            let db = try TestDatabase()
            do {
                let conn = try db.connection()
                return (AdminHosts(store: try db.ledger(node: "pbx1"), other: try db.ledger(node: "pbx2"),
                                   sql: { try conn.execute($0, "test") },
                                   int: { try conn.queryInt($0, "test") ?? 0 }),
                        { db.drop() })
            } catch {
                db.drop()
                throw error
            }
        }
    }
}

/// The admin cases, each a transcript compared across the stores as `Contract`'s are.
enum AdminContract {
    typealias Case = @Sendable (AdminHosts) throws -> [String]

    static let cases: [(name: String, run: Case)] = [
        ("edit", edit), ("disable", disable), ("page", page), ("recent", recent), ("purge", purge),
        ("givenUp", givenUp), ("status", status),
    ]

    static func err(_ e: LedgerError?) -> String { e.map(String.init(describing:)) ?? "no error" }

    static func edit(_ h: AdminHosts) throws -> [String] {
        let s = h.store
        var log: [String] = []
        let ann = try makeClient(s, "ann", accounts: ["1001", "1002"])
        try makeClient(s, "bob", accounts: ["2001"])
        var f = ClientFields()
        f.phone = "+33 1 23"
        f.lastName = ""
        let edited = try s.editClient(username: "ann", fields: f, accounts: ["1003", "1001"], plan: "gold",
                                      passwordHash: "$y$other", now: 2_000)
        #expect(edited.phone == "+33 1 23" && edited.lastName == "" && edited.firstName == "Ann")
        #expect(edited.accounts == ["1001", "1003"] && edited.plan == "gold" && edited.updatedAt == 2_000)
        #expect(edited.id == ann.id && edited.createdAt == ann.createdAt)
        #expect(try s.client(username: "ann") == edited)
        #expect(try s.passwordHash(username: "ann") == "$y$other")
        log.append("\(edited)")

        // The same values again: nothing written, no event, the record as it was.
        let again = try s.editClient(username: "ann", fields: f, accounts: ["1001", "1003", "1001"], plan: "gold",
                                     passwordHash: "$y$other", now: 3_000)
        #expect(again == edited)
        // Only the password: "password" changed, the hash itself nowhere in the event.
        let pw = try s.editClient(username: "ann", fields: ClientFields(), accounts: nil, plan: nil,
                                  passwordHash: "$y$third", now: 3_500)
        #expect(pw.updatedAt == 3_500 && pw.accounts == ["1001", "1003"])
        #expect(try s.passwordHash(username: "ann") == "$y$third")

        // Codes another client holds, whatever else is asked, are refused and nothing is changed.
        var e = ClientFields()
        e.city = "Lyon"
        let taken = thrown { try s.editClient(username: "ann", fields: e, accounts: ["1004", "2001"], plan: "x", passwordHash: nil, now: 4_000) }
        #expect(taken == .accountTaken(code: "2001", owner: "bob"))
        var mail = ClientFields()
        mail.email = "BOB@example.COM"
        let dupe = thrown { try s.editClient(username: "ann", fields: mail, accounts: nil, plan: nil, passwordHash: nil, now: 4_001) }
        #expect(dupe == .duplicateEmail("BOB@example.COM"))
        #expect(try s.client(username: "ann") == pw)
        // Its own email in other letters' case is its own, not a duplicate.
        mail.email = "ANN@Example.com"
        let own = try s.editClient(username: "ann", fields: mail, accounts: nil, plan: nil, passwordHash: nil, now: 4_002)
        #expect(own.email == "ANN@Example.com")
        let unknown = thrown { try s.editClient(username: "zed", fields: e, accounts: nil, plan: nil, passwordHash: nil, now: 4_003) }
        #expect(unknown == .unknownClient("zed"))
        let badPlan = thrown { try s.editClient(username: "ann", fields: e, accounts: nil, plan: "", passwordHash: nil, now: 4_004) }
        let badHash = thrown { try s.editClient(username: "ann", fields: e, accounts: nil, plan: nil, passwordHash: "clear", now: 4_005) }
        let badCode = thrown { try s.editClient(username: "ann", fields: e, accounts: ["a b"], plan: nil, passwordHash: nil, now: 4_006) }
        var badMail = ClientFields()
        badMail.email = "not-an-email"
        let badEmail = thrown { try s.editClient(username: "ann", fields: badMail, accounts: nil, plan: nil, passwordHash: nil, now: 4_007) }
        #expect([badPlan, badHash, badCode, badEmail].allSatisfy { $0 != nil })
        log += [taken, dupe, unknown, badPlan, badHash, badCode, badEmail].map(err)

        // Empty accounts fall back to the username; the codes given up are free for another client.
        let fallback = try s.editClient(username: "ann", fields: ClientFields(), accounts: [], plan: nil, passwordHash: nil, now: 5_000)
        #expect(fallback.accounts == ["ann"])
        try makeClient(s, "carl", accounts: ["1001", "1003"])
        #expect(try s.accountDirectory().keys.sorted() == ["1001", "1003", "2001", "ann"])
        #expect(try s.passwordHash(username: "nobody") == nil)
        return log + (try Contract.events(s))
    }

    static func disable(_ h: AdminHosts) throws -> [String] {
        let s = h.store
        try makeClient(s, "ann")
        let off = try s.setDisabled(username: "ann", true, now: 5_000)
        #expect(off.status == .disabled && off.disabledAt == 5_000 && off.updatedAt == 5_000)
        let still = try s.setDisabled(username: "ann", true, now: 6_000)
        #expect(still == off)
        let on = try s.setDisabled(username: "ann", false, now: 7_000)
        #expect(on.status == .active && on.disabledAt == nil && on.updatedAt == 7_000)
        #expect(try s.setDisabled(username: "ann", false, now: 8_000) == on)
        #expect(try s.client(username: "ann") == on)
        #expect(try s.accountDirectory()["ann"]?.status == .active)
        let unknown = thrown { try s.setDisabled(username: "zed", true, now: 9_000) }
        #expect(unknown == .unknownClient("zed"))
        let types = try s.outboxEvents(limit: 100).map(\.type)
        #expect(types == ["client.created", "client.disabled", "client.enabled"])
        return ["\(off)", "\(on)", err(unknown)] + (try Contract.events(s))
    }

    static func page(_ h: AdminHosts) throws -> [String] {
        let s = h.store
        var log: [String] = []
        func add(_ u: String, _ first: String, _ last: String, _ email: String) throws {
            _ = try s.createClient(username: u, fields: clientFields(first: first, last: last, email: email), accounts: [],
                               plan: "default", passwordHash: fakeHash, now: 1_000)
        }
        try add("ann", "Ann", "Lee", "ann@example.com")
        try add("Bob", "\u{00C9}mile", "Zola", "b_o%b@example.com")
        try add("carl", "Carl", "O'Neil", "CARL@X.ORG")
        try add("dora", "Dora", "back\\slash", "dora@example.com")
        try add("zoe-1", "Zo\u{00E9}", "Bar", "zoe@example.com")
        for i in 0..<12 { try add(String(format: "m%02d", i), "Max", "Mustermann\(i)", "m\(i)@example.net") }

        let searches = ["", "ann lee", "ANN", "lee", "n L", "\u{00C9}", "\u{00E9}", "\u{00E9}MILE", "\u{00C9}mile zola",
                        "_", "%", "\\", "b_o", "b_o%b", "x.org", "X.ORG", "o'n", "'", "zzz", "mustermann1", "e@example", "m0"]
        for q in searches {
            let r = try s.clientPage(search: q, limit: 50, offset: 0)
            #expect(r.clients.allSatisfy { $0.accounts.isEmpty })
            log.append("'\(q)': \(r.total) \(r.clients.map(\.username))")
        }
        // The escapes are not wildcards: '_' is found only where an underscore is.
        #expect(try s.clientPage(search: "_", limit: 50, offset: 0).clients.map(\.username) == ["Bob"])
        #expect(try s.clientPage(search: "\u{00E9}", limit: 50, offset: 0).clients.map(\.username) == ["zoe-1"])
        // Byte order: upper case before lower, as SQLite's BINARY.
        #expect(try s.clientPage(search: "", limit: 3, offset: 0).clients.map(\.username) == ["Bob", "ann", "carl"])

        for (limit, offset) in [(5, 0), (5, 5), (5, 15), (5, 17), (5, 100), (0, 0), (-1, 0), (-1, 14), (3, -2)] {
            let r = try s.clientPage(search: "", limit: limit, offset: offset)
            #expect(r.total == 17)
            log.append("page \(limit) \(offset): \(r.total) \(r.clients.map(\.username))")
        }
        let mm = try s.clientPage(search: "MUSTER", limit: 4, offset: 8)
        #expect(mm.total == 12 && mm.clients.map(\.username) == ["m08", "m09", "m10", "m11"])
        #expect(try s.clientPage(search: "MUSTER", limit: 4, offset: 20).total == 12)
        let one = try #require(try s.clientPage(search: "carl", limit: 1, offset: 0).clients.first)
        var expected = try #require(try s.client(username: "carl"))
        expected.accounts = []
        #expect(one == expected)
        return log
    }

    static func recent(_ h: AdminHosts) throws -> [String] {
        let s = h.store
        var log: [String] = []
        let ann = try makeClient(s, "ann")
        let bob = try makeClient(s, "bob")
        #expect(try s.recentCalls(username: "ann", limit: 10).isEmpty)
        #expect(try s.recentRecharges(username: "ann", limit: 10).isEmpty)
        for (i, amount) in [5 * credit, 7 * credit, 1, 3 * credit].enumerated() {
            _ = try s.recharge(username: "ann", amount: amount, key: nil, now: 2_000 + Int64(i))
        }
        _ = try s.recharge(username: "bob", amount: credit, key: nil, now: 2_100)
        // Answered at various moments (out of order), and two undated: those come last, newest first.
        func call(_ id: String, _ answered: Int64?, cost: Int64, line: Int64, client: Int64 = ann.id) -> Charge {
            var c = charge(id, client: client, cost: cost, line: line, answeredAt: answered)
            c.destination = "dest-\(id)"
            c.billsec = line * 10
            return c
        }
        _ = try s.commit(batch([
            call("c1", 1_700_000_300, cost: 100, line: 1), call("c2", 1_700_000_100, cost: 200, line: 2),
            call("u1", nil, cost: 300, line: 3), call("c3", 1_700_000_200, cost: 400, line: 4),
            call("c4", 1_700_000_200, cost: 500, line: 5), call("u2", nil, cost: 600, line: 6),
            call("b1", 1_700_000_900, cost: 700, line: 7, client: bob.id),
        ]), now: 3_000)
        // A rerate of c2 (twice: the newest counts), in SQL both stores take.
        try h.sql("""
            INSERT INTO usage_adjustments (usage_id, client_id, old_cost, new_cost, priced_by, at)
                SELECT id, client_id, cost, 250, NULL, 4000 FROM usage WHERE identity = 'c2';
            INSERT INTO usage_adjustments (usage_id, client_id, old_cost, new_cost, priced_by, at)
                SELECT id, client_id, 250, 260, NULL, 4001 FROM usage WHERE identity = 'c2'
            """)
        for limit in [10, 3, 5, 0, -1] {
            let calls = try s.recentCalls(username: "ann", limit: limit)
            log.append("calls \(limit): \(calls)")
        }
        let all = try s.recentCalls(username: "ann", limit: 10)
        #expect(all.map(\.destination) == ["dest-c1", "dest-c4", "dest-c3", "dest-c2", "dest-u2", "dest-u1"])
        #expect(all.map(\.cost) == [100, 500, 400, 260, 600, 300])
        // Undated calls are shown at their charge time.
        #expect(all[4].at == 3_000 && all[0].at == 1_700_000_000)
        #expect(try s.recentCalls(username: "ann", limit: 5).map(\.destination).last == "dest-u2")
        #expect(try s.recentCalls(username: "nobody", limit: 5).isEmpty)

        let r = try s.recentRecharges(username: "ann", limit: 3)
        #expect(r == [RechargeRecord(at: 2_003, amount: 3 * credit), RechargeRecord(at: 2_002, amount: 1),
                      RechargeRecord(at: 2_001, amount: 7 * credit)])
        #expect(try s.recentRecharges(username: "ann", limit: -1).count == 4)
        #expect(try s.recentRecharges(username: "bob", limit: 10) == [RechargeRecord(at: 2_100, amount: credit)])
        #expect(try s.recentRecharges(username: "nobody", limit: 10).isEmpty)
        log.append("recharges: \(r) \(try s.recentRecharges(username: "ann", limit: 0))")
        return log
    }

    /// The tables with a client_id, counted for one client.
    static let clientTables = ["usage", "usage_adjustments", "adjustments", "recharges", "accounts", "holds", "hold_totals",
                               "balance_dirty", "balance_sent", "outbox", "deliveries"]

    static func rows(_ h: AdminHosts, of id: Int64) throws -> [String] {
        try clientTables.map { "\($0) \(try h.int("SELECT count(*) FROM \($0) WHERE client_id = \(id)"))" }
    }

    static func purge(_ h: AdminHosts) throws -> [String] {
        let s = h.store
        var log: [String] = []
        // ann and carl are disabled and have something in every table; bob, active, too.
        var ids: [String: Int64] = [:]
        for (n, name) in ["ann", "bob", "carl", "dora"].enumerated() {
            let c = try makeClient(s, name, accounts: ["\(name)-1", "\(name)-2"])
            ids[name] = c.id
            _ = try s.recharge(username: name, amount: 10 * credit, key: "k-\(name)", now: 2_000)
            _ = try s.commit(batch([charge("\(name)-c1", client: c.id, cost: 1_000, line: Int64(2 * n + 1)),
                                    charge("\(name)-c2", client: c.id, cost: 2_000, line: Int64(2 * n + 2))]), now: 3_000)
            let held = try s.reserve(account: "\(name)-1", call: "call-\(name)", now: 3_500) { _ in
                (true, HoldGrant(cost: 500, expiresAt: 1_000_000))
            }
            #expect(held)
            try h.sql("""
                INSERT INTO usage_adjustments (usage_id, client_id, old_cost, new_cost, priced_by, at)
                    SELECT id, client_id, cost, cost + 1, NULL, 4000 FROM usage WHERE identity = '\(name)-c1';
                INSERT INTO adjustments (client_id, amount, reason, idempotency_key, at) VALUES (\(c.id), 5, 'goodwill', 'adj-\(name)', 4000);
                INSERT INTO balance_sent (client_id, at) VALUES (\(c.id), 4000);
                INSERT INTO deliveries (event, endpoint, client_id, status, next_attempt_ms, age_from_ms, updated_ms)
                    SELECT id, 'hook', client_id, 'pending', 0, 0, 0 FROM outbox WHERE client_id = \(c.id)
                """)
        }
        _ = try s.setDisabled(username: "ann", true, now: 10_000)
        _ = try s.setDisabled(username: "carl", true, now: 20_000)
        _ = try s.setDisabled(username: "dora", true, now: 30_000)
        _ = try s.setDisabled(username: "dora", false, now: 31_000)
        #expect(try s.purgeCandidates(disabledBefore: 10_000).isEmpty)
        let first = try s.purgeCandidates(disabledBefore: 10_001)
        #expect(first.map(\.username) == ["ann"] && first.first?.accounts == ["ann-1", "ann-2"])
        #expect(first.first == (try s.client(username: "ann")))
        let both = try s.purgeCandidates(disabledBefore: 40_000)
        #expect(both.map(\.username) == ["ann", "carl"])
        log.append("candidates: \(both)")

        let notDisabled = thrown { try s.purge(username: "bob", now: 50_000) }
        #expect(notDisabled == .notDisabled("bob"))
        #expect(thrown { try s.purge(username: "zed", now: 50_000) } == .unknownClient("zed"))
        let before = try s.totals()
        let annID = try #require(ids["ann"]), bobID = try #require(ids["bob"])
        let bobRows = try rows(h, of: bobID)
        #expect(try rows(h, of: annID).allSatisfy { !$0.hasSuffix(" 0") })
        log += try rows(h, of: annID)

        try s.purge(username: "ann", now: 50_000)
        #expect(try s.client(username: "ann") == nil)
        #expect(try s.accountDirectory()["ann-1"] == nil)
        // Nothing of ann is left but the event that says she is gone; bob's rows are untouched.
        let left = try rows(h, of: annID)
        #expect(left == clientTables.map { "\($0) \($0 == "outbox" ? 1 : 0)" })
        #expect(try rows(h, of: bobID) == bobRows)
        let after = try s.totals()
        #expect(after.usageRows == before.usageRows - 2 && after.usageCost == before.usageCost - 3_000)
        #expect(try s.heldTotal(now: 3_600) == (cost: 1_500, calls: 3))
        #expect(try s.purgeCandidates(disabledBefore: 40_000).map(\.username) == ["carl"])
        #expect(thrown { try s.purge(username: "ann", now: 50_001) } == .unknownClient("ann"))
        // The key ann's recharge used is free again, and so are her account codes.
        try makeClient(s, "ann2", accounts: ["ann-1"])
        #expect(try s.recharge(username: "ann2", amount: 10 * credit, key: "k-ann", now: 60_000).applied)
        log += left + ["\(after)"]
        let events = try s.outboxEvents(limit: 1_000)
        #expect(!events.contains { $0.username == "ann" && $0.type != "client.purged" })
        #expect(events.filter { $0.username == "ann" }.map(\.type) == ["client.purged"])
        return log + (try Contract.events(s))
    }

    static func givenUp(_ h: AdminHosts) throws -> [String] {
        let (a, b) = (h.store, h.other)
        #expect(try a.givenUp(source: "master") == (0, 0))
        try a.recordGivenUp(source: "master", files: 1, bytes: 100, now: 1_000)
        try a.recordGivenUp(source: "master", files: 2, bytes: 50, now: 2_000)
        try a.recordGivenUp(source: "other", files: 1, bytes: 0, now: 2_000)
        try b.recordGivenUp(source: "master", files: 5, bytes: 7, now: 3_000)
        #expect(try a.givenUp(source: "master") == (3, 150))
        #expect(try a.givenUp(source: "other") == (1, 0))
        #expect(try b.givenUp(source: "master") == (5, 7))
        #expect(try b.givenUp(source: "other") == (0, 0))
        return ["\(try a.givenUp(source: "master")) \(try a.givenUp(source: "other")) \(try b.givenUp(source: "master"))"]
    }

    static func status(_ h: AdminHosts) throws -> [String] {
        var log: [String] = []
        let (a, b) = (h.store, h.other)
        let annA = try makeClient(a, "ann")
        let bobB = try makeClient(b, "bob")
        var n = 0
        func chargeRows(_ s: any AdminStore, _ client: Int64, _ rows: [(String, Int64, Int64)]) throws {
            for (source, start, now) in rows {
                n += 1
                var c = charge("h\(n)", client: client, cost: 10 * Int64(n), line: Int64(n), startKey: start)
                c.source = source
                c.startedAt = start
                #expect(try s.commit(batch([c]), now: now).charged == 1)
            }
        }
        #expect(try a.chargedSince(0) == (0, 0))
        #expect(try a.lastChargedStart(source: "a") == nil)
        // The third was charged after the clock stepped back 10 minutes: still counted.
        try chargeRows(a, annA.id, [("a", 1_700_000_100, 1_000), ("a", 1_700_000_050, 20_000), ("b", 1_700_000_200, 19_400)])
        // Another host's charges, newer and in the same sources, count only there.
        try chargeRows(b, bobB.id, [("a", 1_700_000_900, 20_500), ("b", 1_700_000_950, 21_000)])
        for t in [0, 500, 19_000, 19_401, 20_000, 20_001] as [Int64] {
            log.append("since \(t): \(try a.chargedSince(t)) / \(try b.chargedSince(t))")
        }
        #expect(try a.chargedSince(19_000) == (2, 50))
        #expect(try a.chargedSince(500) == (3, 60))
        #expect(try b.chargedSince(500) == (2, 90))
        for source in ["a", "b", "none"] {
            log.append("last \(source): \(String(describing: try a.lastChargedStart(source: source))) / "
                       + "\(String(describing: try b.lastChargedStart(source: source)))")
        }
        #expect(try a.lastChargedStart(source: "a") == 1_700_000_100)
        #expect(try a.lastChargedStart(source: "b") == 1_700_000_200)
        #expect(try b.lastChargedStart(source: "a") == 1_700_000_900)
        #expect(try a.lastChargedStart(source: "none") == nil)
        // Past the walk, by the scan: the same answers.
        a.setLastStartWalk(1)
        #expect(try a.lastChargedStart(source: "a") == 1_700_000_100)
        #expect(try a.lastChargedStart(source: "b") == 1_700_000_200)
        #expect(try a.lastChargedStart(source: "none") == nil)
        // A clock stepped back by more than the slack ends the walk: the rows before it are not read.
        try chargeRows(a, annA.id, [("a", 1_700_000_010, 10), ("a", 1_700_000_020, 30_000)])
        #expect(try a.chargedSince(19_000) == (1, 70))
        log.append("after a step: \(try a.chargedSince(19_000)) \(try a.chargedSince(0))")
        return log
    }
}

@Suite struct AdminContractTests {
    @Test(arguments: StoreKind.available)
    func editChangesWhatIsGivenWithSQLitesErrorsAndEvents(_ kind: StoreKind) throws { try run(kind, AdminContract.edit) }

    @Test(arguments: StoreKind.available)
    func disableAndEnableQueueOneEventEach(_ kind: StoreKind) throws { try run(kind, AdminContract.disable) }

    @Test(arguments: StoreKind.available)
    func clientPageMatchesAndPagesAsSQLiteDoes(_ kind: StoreKind) throws { try run(kind, AdminContract.page) }

    @Test(arguments: StoreKind.available)
    func recentCallsAndRecharges(_ kind: StoreKind) throws { try run(kind, AdminContract.recent) }

    @Test(arguments: StoreKind.available)
    func purgeRemovesEverythingOfTheClientAndNothingElse(_ kind: StoreKind) throws { try run(kind, AdminContract.purge) }

    @Test(arguments: StoreKind.available)
    func givenUpIsCountedPerHost(_ kind: StoreKind) throws { try run(kind, AdminContract.givenUp) }

    @Test(arguments: StoreKind.available)
    func statusCountsThisHostsCharges(_ kind: StoreKind) throws { try run(kind, AdminContract.status) }

    /// Outcomes, errors, records and every event body (ids aside) are the same on both stores.
    @Test(.enabled(if: PGEnv.enabled))
    func sameTranscriptOnBothStores() throws {
        for c in AdminContract.cases {
            let a = try transcript(.sqlite, c.run)
            let b = try transcript(.postgres, c.run)
            #expect(a == b, "case \(c.name)")
            #expect(!a.isEmpty, "case \(c.name)")
        }
    }

    private func run(_ kind: StoreKind, _ body: AdminContract.Case) throws {
        _ = try transcript(kind, body)
    }

    private func transcript(_ kind: StoreKind, _ body: AdminContract.Case) throws -> [String] {
        let (hosts, cleanup) = try AdminHosts.make(kind)
        defer { cleanup() }
        return try body(hosts)
    }
}

/// Purge on the shared store while another agent commits batches charging the purged client and others.
@Suite(.enabled(if: PGEnv.enabled)) struct PostgresPurgeTests {
    @Test func purgeWhileAnotherAgentChargesLeavesNothingOfTheClientAndLosesNoOtherCharge() throws {
        let db = try TestDatabase()
        defer { db.drop() }
        let admin = try db.ledger(node: "pbx1"), agent = try db.ledger(node: "pbx2")
        let ann = try makeClient(admin, "ann"), bob = try makeClient(admin, "bob")
        _ = try admin.setDisabled(username: "ann", true, now: 1_000)
        let charged = Sums()
        let refused = Failures()
        let started = DispatchSemaphore(value: 0)
        let failures = try onThreads(2) { t in
            if t == 0 {
                for i in 0..<60 {
                    if i == 5 { started.signal() }
                    do {
                        let out = try agent.commit(batch([charge("b\(i)", client: bob.id, cost: 3, line: Int64(2 * i + 1)),
                                                          charge("a\(i)", client: ann.id, cost: 5, line: Int64(2 * i + 2))]),
                                                   now: 2_000 + Int64(i))
                        charged.add(out.costByClient)
                    } catch LedgerError.postgres(let state, _, _) where state == "23503" {
                        // Charging a client purged meanwhile: the usage foreign key refuses the whole batch.
                        refused.add("\(i)")
                    }
                }
            } else {
                started.wait()
                try admin.purge(username: "ann", now: 5_000)
            }
        }
        #expect(failures == [])
        #expect(try admin.client(username: "ann") == nil)
        for table in AdminContract.clientTables {
            let left = try db.int("SELECT count(*) FROM \(table) WHERE client_id = \(ann.id)")
            #expect(left == (table == "outbox" ? 1 : 0), "\(table)")
        }
        // Every batch either went in whole before the purge or was refused whole after it.
        let sums = charged.all
        #expect(sums[ann.id, default: 0] > 0 && !refused.all.isEmpty)
        #expect(try admin.client(username: "bob")?.meter.used == sums[bob.id, default: 0])
        #expect(try db.int("SELECT coalesce(sum(cost), 0)::int8 FROM usage") == sums[bob.id, default: 0])
        print("purge under load: \(refused.all.count) batches refused after the purge, "
              + "\(admin.retriedTransactions + agent.retriedTransactions) transactions retried")
    }
}

/// Two agents editing two clients at once towards the same account code or email: the one that commits
/// second gets SQLite's error, never a unique-violation from the server.
@Suite(.enabled(if: PGEnv.enabled)) struct PostgresEditRaceTests {
    @Test func twoAgentsTakingOneCodeOrEmailAtOnceGiveOneWinnerAndSQLitesError() throws {
        let db = try TestDatabase()
        defer { db.drop() }
        let agents = [try db.ledger(node: "pbx1"), try db.ledger(node: "pbx2")]
        let names = ["ann", "bob"]
        for n in names { try makeClient(agents[0], n) }
        let outcomes = Failures()
        for round in 0..<20 {
            let results = [Results<ClientRecord>(), Results<ClientRecord>()]
            // A rendezvous, so the two edits start together.
            let ready = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
            let failures = try onThreads(2) { t in
                ready[t].signal()
                ready[1 - t].wait()
                var f = ClientFields()
                if round % 2 == 1 { f.email = t == 0 ? "same\(round)@example.org" : "SAME\(round)@Example.org" }
                let codes = round % 2 == 0 ? [names[t], "x\(round)"] : nil
                results[t].set(Result { try agents[t].editClient(username: names[t], fields: f, accounts: codes, plan: nil,
                                                                 passwordHash: nil, now: 2_000 + Int64(round)) })
            }
            #expect(failures == [])
            let got = results.map { r in Result { try r.get() } }
            let won = got.indices.filter { if case .success(.some) = got[$0] { true } else { false } }
            #expect(won.count == 1, "round \(round)")
            guard won.count == 1, let winner = won.first else { continue }
            let loser = 1 - winner
            let expected: LedgerError = round % 2 == 0 ? .accountTaken(code: "x\(round)", owner: names[winner])
                : .duplicateEmail(loser == 0 ? "same\(round)@example.org" : "SAME\(round)@Example.org")
            if case .failure(let e) = got[loser] {
                #expect(e as? LedgerError == expected, "round \(round)")
            }
            outcomes.add(names[winner])
        }
        print("edit race: winners \(outcomes.all), \(agents[0].retriedTransactions + agents[1].retriedTransactions) transactions retried")
    }
}

import Foundation
import Ledger
import MeterCore
import Testing
import TestSupport

/// The cases every `MeteringStore` must pass alike. Each returns a transcript (outcomes, errors, the
/// outbox's event types and bodies); `sameTranscriptOnBothStores` compares SQLite's with PostgreSQL's.
/// Times are given, so bodies (whose timestamps come from `now`) are comparable byte for byte; only the
/// random event ids are left out.
enum Contract {
    typealias Case = @Sendable (any MeteringStore) throws -> [String]

    static let cases: [(name: String, run: Case)] = [
        ("clients", clients), ("recharges", recharges), ("batch", batchCase), ("levels", levels),
        ("dryRun", dryRun), ("totals", totals),
    ]

    /// A dictionary's order is not stable from one to the next: keys sorted.
    static func describe(_ o: BatchOutcome) -> String {
        "charged \(o.charged) duplicates \(o.duplicates) quarantined \(o.quarantined) levels \(o.levelChanges) "
            + "cost \(o.costByClient.sorted { $0.key < $1.key }) count \(o.countByClient.sorted { $0.key < $1.key })"
    }

    static func events(_ s: any MeteringStore) throws -> [String] {
        try s.outboxEvents(limit: 1_000).map { "\($0.type) \($0.username) \($0.body)" }
    }

    static func clients(_ s: any MeteringStore) throws -> [String] {
        var log: [String] = []
        let ann = try makeClient(s, "ann", accounts: ["2001", "1001", "1001"])
        #expect(ann.accounts == ["1001", "2001"])
        #expect(ann.level == .exhausted && ann.meter == Meter(assigned: 0, used: 0) && ann.status == .active)
        let bob = try makeClient(s, "bob", email: "Bob@Example.com")
        #expect(bob.accounts == ["bob"])
        log.append("\(ann.id) \(bob.id)")

        let taken = thrown { try makeClient(s, "carl", accounts: ["3001", "2001"]) }
        #expect(taken == .accountTaken(code: "2001", owner: "ann"))
        #expect(thrown { try makeClient(s, "ann", email: "other@example.com") } == .duplicateUsername("ann"))
        #expect(thrown { try makeClient(s, "dora", email: "BOB@example.COM") } == .duplicateEmail("BOB@example.COM"))
        let bad = thrown { try makeClient(s, "no spaces") }
        #expect(bad != nil)
        let badHash = thrown {
            try s.createClient(username: "eve", fields: clientFields(), accounts: [], plan: "default", passwordHash: "clear", now: 1)
        }
        #expect(badHash == .invalidField(field: "password", rule: "must be stored as a crypt(3) hash (see PasswordHasher)"))
        log += [taken, bad, badHash].map { "\($0.map(String.init(describing:)) ?? "no error")" }

        #expect(try s.client(username: "nobody") == nil)
        #expect(try s.client(username: "ann") == ann)
        let all = try s.clients()
        #expect(all.map(\.username) == ["ann", "bob"])
        #expect(all == [ann, bob])
        let dir = try s.accountDirectory()
        #expect(dir.keys.sorted() == ["1001", "2001", "bob"])
        #expect(dir["2001"] == AccountOwner(clientID: ann.id, username: "ann", plan: "default", status: .active))
        log.append(dir.keys.sorted().joined(separator: ","))

        // Emails fold ASCII letters only, as SQLite's lower(): these two are different addresses on both stores.
        try makeClient(s, "emile1", email: "\u{00C9}mile@example.com")
        let second = thrown { try makeClient(s, "emile2", email: "\u{00E9}mile@example.com") }
        #expect(second == nil)
        #expect(thrown { try makeClient(s, "emile3", email: "\u{00C9}MILE@example.com") } == .duplicateEmail("\u{00C9}MILE@example.com"))
        return log + (try events(s))
    }

    static func recharges(_ s: any MeteringStore) throws -> [String] {
        var log: [String] = []
        try makeClient(s, "ann")
        try makeClient(s, "bob")
        let first = try s.recharge(username: "ann", amount: 10 * credit, key: "k1", now: 2_000)
        #expect(first.applied && first.client.meter.assigned == 10 * credit && first.client.level == .ok)
        let again = try s.recharge(username: "ann", amount: 10 * credit, key: "k1", now: 2_001)
        #expect(!again.applied && again.client.meter.assigned == 10 * credit)
        let conflict = thrown { try s.recharge(username: "ann", amount: 11 * credit, key: "k1", now: 2_002) }
        #expect(conflict == .idempotencyConflict(key: "k1", detail: "for a recharge of 10 to 'ann'"))
        let otherClient = thrown { try s.recharge(username: "bob", amount: 10 * credit, key: "k1", now: 2_003) }
        #expect(otherClient == conflict)
        let zero = thrown { try s.recharge(username: "ann", amount: 0, key: nil, now: 2_004) }
        #expect(zero == .invalidAmount("must be greater than 0 (got 0)"))
        let emptyKey = thrown { try s.recharge(username: "ann", amount: 1, key: "", now: 2_005) }
        #expect(emptyKey == .invalidField(field: "idempotency_key", rule: "must not be empty when given"))
        #expect(thrown { try s.recharge(username: "zed", amount: 1, key: nil, now: 2_006) } == .unknownClient("zed"))
        let overflow = thrown { try s.recharge(username: "ann", amount: Int64.max, key: nil, now: 2_007) }
        #expect(overflow == .invalidAmount("would make the assigned total too large"))
        let noKey = try s.recharge(username: "ann", amount: 5, key: nil, now: 2_008)
        #expect(noKey.applied && noKey.client.meter.assigned == 10 * credit + 5)
        #expect(try s.client(username: "ann")?.meter.assigned == 10 * credit + 5)
        log += ["\(first.applied) \(again.applied) \(noKey.client.meter)"]
        log += [conflict, otherClient, zero, emptyKey, overflow].map { "\($0.map(String.init(describing:)) ?? "no error")" }
        return log + (try events(s))
    }

    static func batchCase(_ s: any MeteringStore) throws -> [String] {
        var log: [String] = []
        let ann = try makeClient(s, "ann")
        let bob = try makeClient(s, "bob")
        _ = try s.recharge(username: "ann", amount: 100 * credit, key: nil, now: 2_000)
        _ = try s.recharge(username: "bob", amount: 100 * credit, key: nil, now: 2_000)
        #expect(try s.sourcePosition(name: "master") == nil)

        let p1 = checkpoint(1_000, line: 10)
        let out = try s.commit(batch([
            charge("c1", client: ann.id, cost: 12_500, answeredAt: 1_700_000_005, pricedBy: "[\"row1\"]"),
            charge("c2", client: ann.id, cost: 1, line: 2),
            charge("c2", client: ann.id, cost: 999, line: 3),   // the same identity again in one batch
            charge("c3", client: bob.id, cost: 3 * credit, line: 4, pricedBy: "[\"row1\"]"),
            charge("c4", client: bob.id, cost: 0, line: 5, startKey: 1_700_000_100),
        ], quarantined: [entry("q1"), entry("q1"), entry("raw:abc", startKey: nil), entry("c1")], position: p1), now: 3_000)
        #expect(out.charged == 4 && out.duplicates == 1)
        // q1 once; c1 went in and was released again by its own charge.
        #expect(out.quarantined == 3)
        #expect(out.costByClient == [ann.id: 12_501, bob.id: 3 * credit])
        #expect(out.countByClient == [ann.id: 2, bob.id: 2])
        #expect(try s.sourcePosition(name: "master") == p1)
        log.append(describe(out))

        // Charged before: duplicates; an already charged identity is not quarantined.
        let p2 = checkpoint(2_000, line: 20)
        let again = try s.commit(batch([charge("c1", client: ann.id, cost: 5), charge("c5", client: ann.id, cost: 7)],
                                       quarantined: [entry("c3"), entry("q2")], position: p2), now: 3_001)
        #expect(again.charged == 1 && again.duplicates == 1 && again.quarantined == 1)
        #expect(again.costByClient == [ann.id: 7])
        log.append(describe(again))

        // q2's line charged later (its client now exists): released from quarantine.
        let release = try s.commit(batch([charge("q2", client: bob.id, cost: 11)]), now: 3_002)
        #expect(release.charged == 1)
        #expect(try s.sourcePosition(name: "master") == p2)
        log.append(describe(release))

        // A negative cost refuses the whole batch: nothing of it is kept, the position included.
        let before = try s.totals()
        let refused = thrown {
            try s.commit(batch([charge("c9", client: ann.id, cost: 100), charge("c10", client: ann.id, cost: -1)],
                               quarantined: [entry("q9")], position: checkpoint(9_000, line: 90)), now: 3_003)
        }
        #expect(refused == .invalidAmount("charge c10 has a negative cost (-0.000001)"))
        #expect(try s.totals() == before)
        #expect(try s.sourcePosition(name: "master") == p2)
        log.append("\(refused.map(String.init(describing:)) ?? "no error")")

        // A client's batch total past Int64 is refused, not wrapped.
        let overflow = thrown {
            try s.commit(batch([charge("o1", client: ann.id, cost: Int64.max), charge("o2", client: ann.id, cost: 1)]), now: 3_004)
        }
        #expect(overflow == .invalidAmount("the batch's total cost for client id \(ann.id) overflows"))

        let a = try #require(try s.client(username: "ann"))
        #expect(a.meter.used == 12_508)
        #expect(try s.client(username: "bob")?.meter.used == 3 * credit + 11)
        let t = try s.totals()
        #expect(t.usageRows == 6 && t.usageCost == 12_508 + 3 * credit + 11 && t.quarantined == 2)
        log.append("\(t)")

        // What `quarantine list` shows: the entries left, oldest first, filtered and limited alike.
        let kept = try s.quarantine(limit: nil, reason: nil)
        #expect(kept.map(\.entry.key) == ["q1", "raw:abc"])
        #expect(kept.first?.entry == entry("q1") && kept.first?.at == 3_000)
        #expect(try s.quarantine(limit: 1, reason: nil).map(\.entry.key) == ["q1"])
        #expect(try s.quarantine(limit: -1, reason: "unknown_account").count == 2)
        #expect(try s.quarantine(limit: nil, reason: "no_rate").isEmpty)
        #expect(try s.quarantineCount() == 2)
        log += kept.map { "\($0.entry) at \($0.at)" }
        return log + (try events(s))
    }

    static func levels(_ s: any MeteringStore) throws -> [String] {
        var log: [String] = []
        let ann = try makeClient(s, "ann")
        let bob = try makeClient(s, "bob")
        _ = try s.recharge(username: "ann", amount: 100 * credit, key: nil, now: 2_000)
        _ = try s.recharge(username: "bob", amount: 100 * credit, key: nil, now: 2_000)
        var n = 0
        func spend(_ costs: [(Int64, Int64)]) throws -> BatchOutcome {
            n += 1
            let out = try s.commit(batch(costs.enumerated().map { charge("c\(n)-\($0.offset)", client: $0.element.0, cost: $0.element.1) }),
                                   now: 3_000 + Int64(n))
            log.append("\(out.levelChanges)")
            return out
        }
        #expect(try spend([(ann.id, 70 * credit)]).levelChanges.isEmpty)
        let low = try spend([(ann.id, 6 * credit), (bob.id, 80 * credit)])
        #expect(low.levelChanges == [
            LevelChange(username: "ann", from: .ok, to: .low, meter: Meter(assigned: 100 * credit, used: 76 * credit)),
            LevelChange(username: "bob", from: .ok, to: .low, meter: Meter(assigned: 100 * credit, used: 80 * credit)),
        ])
        #expect(try spend([(ann.id, credit)]).levelChanges.isEmpty)
        #expect(try spend([(ann.id, 14 * credit), (bob.id, 20 * credit)]).levelChanges.map(\.to) == [.critical, .exhausted])
        #expect(try spend([(ann.id, 9 * credit)]).levelChanges.map(\.to) == [.exhausted])
        #expect(try spend([(ann.id, 5 * credit)]).levelChanges.isEmpty)
        #expect(try s.client(username: "ann")?.level == .exhausted)
        let r = try s.recharge(username: "ann", amount: 100 * credit, key: "topup", now: 5_000)
        #expect(r.client.level == .ok && r.client.meter.available == 95 * credit)
        let ev = try s.outboxEvents(limit: 100)
        #expect(ev.filter { $0.username == "ann" }.map(\.type) == [
            "client.created", "client.recharged", "credit.recovered", "credit.low", "credit.critical", "credit.exhausted",
            "client.recharged", "credit.recovered",
        ])
        return log + (try events(s))
    }

    static func dryRun(_ s: any MeteringStore) throws -> [String] {
        let ann = try makeClient(s, "ann")
        _ = try s.recharge(username: "ann", amount: 10 * credit, key: nil, now: 2_000)
        let before = (try s.totals(), try s.outboxEvents(limit: 100).map(\.eventID), try s.client(username: "ann"))
        let outcome = try s.dryRun { () throws -> BatchOutcome in
            _ = try s.recharge(username: "ann", amount: 5 * credit, key: "dry", now: 2_001)
            let out = try s.commit(batch([charge("d1", client: ann.id, cost: 12 * credit)], quarantined: [entry("dq")],
                                         position: checkpoint(50, line: 1)), now: 2_002)
            // Inside, the body sees its own writes.
            #expect(try s.client(username: "ann")?.meter.used == 12 * credit)
            // A failing commit inside rolls back only itself.
            #expect(thrown { try s.commit(batch([charge("d2", client: ann.id, cost: -5)]), now: 2_003) } != nil)
            #expect(try s.totals().usageRows == 1)
            return out
        }
        #expect(outcome.charged == 1 && outcome.quarantined == 1 && outcome.levelChanges.map(\.to) == [.low])
        #expect(try s.totals() == before.0)
        #expect(try s.outboxEvents(limit: 100).map(\.eventID) == before.1)
        #expect(try s.client(username: "ann") == before.2)
        #expect(try s.sourcePosition(name: "master") == nil)
        // The key used in the dry run is free again.
        #expect(try s.recharge(username: "ann", amount: 5 * credit, key: "dry", now: 2_004).applied)
        return [describe(outcome)] + (try events(s))
    }

    static func totals(_ s: any MeteringStore) throws -> [String] {
        #expect(try s.totals() == (0, 0, 0))
        let ann = try makeClient(s, "ann")
        _ = try s.commit(batch((1...250).map { charge("t\($0)", client: ann.id, cost: Int64($0) * 1_000, line: Int64($0),
                                                     startKey: 1_700_000_000 + Int64($0 % 7)) },
                               quarantined: [entry("raw:1", startKey: nil), entry("raw:2", startKey: nil)]), now: 2_000)
        let t = try s.totals()
        #expect(t.usageRows == 250 && t.usageCost == 1_000 * 250 * 251 / 2 && t.quarantined == 2)
        return ["\(t)"] + (try events(s))
    }
}

@Suite struct ContractTests {
    @Test(arguments: StoreKind.available)
    func clients(_ kind: StoreKind) throws { try run(kind, Contract.clients) }

    @Test(arguments: StoreKind.available)
    func recharges(_ kind: StoreKind) throws { try run(kind, Contract.recharges) }

    @Test(arguments: StoreKind.available)
    func batchWithDuplicatesRefusalsAndQuarantine(_ kind: StoreKind) throws { try run(kind, Contract.batchCase) }

    @Test(arguments: StoreKind.available)
    func levelsAndAlerts(_ kind: StoreKind) throws { try run(kind, Contract.levels) }

    @Test(arguments: StoreKind.available)
    func dryRunLeavesNothing(_ kind: StoreKind) throws { try run(kind, Contract.dryRun) }

    @Test(arguments: StoreKind.available)
    func totals(_ kind: StoreKind) throws { try run(kind, Contract.totals) }

    /// Outcomes, errors and every event body (ids aside) are the same on both stores.
    @Test(.enabled(if: PGEnv.enabled))
    func sameTranscriptOnBothStores() throws {
        for c in Contract.cases {
            let a = try transcript(.sqlite, c.run)
            let b = try transcript(.postgres, c.run)
            #expect(a == b, "case \(c.name)")
            // Would a changed event on one side go unnoticed? Every case makes some.
            #expect(a.contains { $0.hasPrefix("client.created ") }, "case \(c.name)")
        }
    }

    private func run(_ kind: StoreKind, _ body: Contract.Case) throws {
        _ = try transcript(kind, body)
    }

    private func transcript(_ kind: StoreKind, _ body: Contract.Case) throws -> [String] {
        let t = try TestStore(kind)
        defer { t.cleanup() }
        return try body(t.store)
    }
}

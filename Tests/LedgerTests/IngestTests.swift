import TestSupport
import Foundation
import Testing
import MeterCore
@testable import Ledger

@Suite struct IngestTests {
    @Test func chargesMoveUsedExactly() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        let bob = try makeClient(t.ledger, "bob")
        _ = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1)
        _ = try t.ledger.recharge(username: "bob", amount: 100 * credit, key: nil, now: 1)
        let out = try t.ledger.commit(batch([
            charge("c1", client: ann.id, cost: 12_500),
            charge("c2", client: ann.id, cost: 1),
            charge("c3", client: bob.id, cost: 3 * credit),
        ]), now: 50)
        #expect(out.charged == 3 && out.duplicates == 0 && out.quarantined == 0)
        #expect(out.costByClient == [ann.id: 12_501, bob.id: 3 * credit])
        #expect(out.countByClient == [ann.id: 2, bob.id: 1])
        let a = try #require(try t.ledger.client(username: "ann"))
        #expect(a.meter.used == 12_501)
        #expect(a.meter.available == 100 * credit - 12_501)
        #expect(Money.format(a.meter.available) == "99.987499")
        #expect(try t.ledger.client(username: "bob")?.meter.available == 97 * credit)
        let totals = try t.ledger.totals()
        #expect(totals.usageRows == 3 && totals.usageCost == 3 * credit + 12_501 && totals.quarantined == 0)
        #expect(try t.ledger.chargedSince(50) == (3, 3 * credit + 12_501))
        #expect(try t.ledger.chargedSince(51) == (0, 0))
    }

    @Test func sameIdentityIsChargedOnce() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1)
        let first = try t.ledger.commit(batch([charge("c1", client: ann.id, cost: credit)]), now: 2)
        #expect(first.charged == 1 && first.duplicates == 0)
        let second = try t.ledger.commit(batch([charge("c1", client: ann.id, cost: credit),
                                                charge("c2", client: ann.id, cost: credit),
                                                charge("c2", client: ann.id, cost: credit)]), now: 3)
        #expect(second.charged == 1 && second.duplicates == 2)
        #expect(second.costByClient == [ann.id: credit])
        #expect(second.countByClient == [ann.id: 1])
        #expect(try t.ledger.client(username: "ann")?.meter.used == 2 * credit)
        #expect(try t.ledger.totals().usageRows == 2)
    }

    @Test func levelChangesMakeOneAlertEach() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1)
        // New clients start exhausted (nothing assigned); the first recharge recovers them.
        var events = try t.ledger.outboxEvents(limit: 50)
        #expect(events.map(\.type) == ["client.created", "client.recharged", "credit.recovered"])

        var n = 0
        func spend(_ cost: Int64) throws -> BatchOutcome {
            n += 1
            return try t.ledger.commit(batch([charge("c\(n)", client: ann.id, cost: cost)]), now: 100 + Int64(n))
        }
        #expect(try spend(70 * credit).levelChanges.isEmpty)   // 30 % left: still ok
        let low = try spend(6 * credit)                          // 24 %: low
        #expect(low.levelChanges == [LevelChange(username: "ann", from: .ok, to: .low, meter: Meter(assigned: 100 * credit, used: 76 * credit))])
        #expect(try spend(credit).levelChanges.isEmpty)          // 23 %: still low, no second alert
        #expect(try spend(14 * credit).levelChanges.map(\.to) == [.critical])   // 9 %
        #expect(try spend(9 * credit).levelChanges.map(\.to) == [.exhausted])   // 0 %
        #expect(try spend(5 * credit).levelChanges.isEmpty)     // -5: still exhausted
        #expect(try t.ledger.client(username: "ann")?.level == .exhausted)
        let r = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: "topup", now: 500)
        #expect(r.client.level == .ok && r.client.meter.available == 95 * credit)

        events = try t.ledger.outboxEvents(limit: 50)
        let alerts = events.filter { $0.type.hasPrefix("credit.") }.dropFirst()
        #expect(alerts.map(\.type) == ["credit.low", "credit.critical", "credit.exhausted", "credit.recovered"])
        let bodies = try alerts.map { try EventBody($0.body) }
        #expect(bodies.map { $0.string("previous_level") } == ["ok", "low", "critical", "exhausted"])
        #expect(bodies.map { $0.string("level") } == ["low", "critical", "exhausted", "ok"])
        #expect(bodies.map { $0.string("color") } == ["orange", "red", "red", "primary"])
        #expect(bodies[0].string("available") == "24" && bodies[0].string("used") == "76" && bodies[0].string("assigned") == "100")
        #expect((bodies[0].data["percent"] as? NSNumber)?.intValue == 24)
        #expect(bodies[2].string("available") == "0")
        #expect(bodies[3].string("available") == "95" && bodies[3].string("assigned") == "200")
        #expect(events.allSatisfy { $0.username == "ann" })
        #expect(bodies[1].timestamp == "1970-01-01T00:01:44Z")
    }

    @Test func percentIsAJSONNumberWithFraction() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 8 * credit, key: nil, now: 1)
        _ = try t.ledger.commit(batch([charge("c1", client: ann.id, cost: 6_100_000)]), now: 2)   // 23.75 % left
        let alert = try #require(try t.ledger.outboxEvents(limit: 10).last)
        #expect(alert.type == "credit.low")
        #expect(alert.body.contains("\"percent\":23.75,"))
    }

    @Test func quarantineDedupesByKey() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let out1 = try t.ledger.commit(batch([], quarantined: [entry("q1"), entry("raw:abc", reason: "parse_error"), entry("q1")]), now: 5)
        #expect(out1.quarantined == 2)
        let out2 = try t.ledger.commit(batch([], quarantined: [entry("q1")]), now: 6)
        #expect(out2.quarantined == 0)
        #expect(try t.ledger.quarantineCount() == 2)
        let items = try t.ledger.quarantine(limit: nil, reason: nil)
        #expect(items.map(\.entry.key) == ["q1", "raw:abc"])
        #expect(items[0].entry == entry("q1") && items[0].at == 5)
        #expect(try t.ledger.quarantine(limit: 1, reason: nil).count == 1)
        #expect(try t.ledger.quarantine(limit: nil, reason: "parse_error").map(\.entry.key) == ["raw:abc"])
        // Raw bytes that are not UTF-8 come back unchanged.
        let latin1: [UInt8] = [0x22, 0x4A, 0xE9, 0x72, 0xF4, 0x6D, 0x65, 0x22]
        var e = entry("raw:latin1")
        e.raw = latin1
        _ = try t.ledger.commit(batch([], quarantined: [e]), now: 7)
        #expect(try t.ledger.quarantine(limit: nil, reason: nil).last?.entry.raw == latin1)
    }

    @Test func chargedIdentityLeavesTheQuarantine() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.commit(batch([], quarantined: [entry("cdr-1"), entry("cdr-2")]), now: 5)
        let out = try t.ledger.commit(batch([charge("cdr-1", client: ann.id, cost: 10)]), now: 6)
        #expect(out.charged == 1)
        #expect(try t.ledger.quarantine(limit: nil, reason: nil).map(\.entry.key) == ["cdr-2"])
        // And an identity already charged is not quarantined again.
        let again = try t.ledger.commit(batch([], quarantined: [entry("cdr-1")]), now: 7)
        #expect(again.quarantined == 0)
        #expect(try t.ledger.quarantineCount() == 1)
    }

    @Test func retryChargesAndRemoves() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 10 * credit, key: nil, now: 1)
        _ = try t.ledger.commit(batch([charge("done", client: ann.id, cost: credit)]), now: 2)
        // 1,200 lines span several retry pages.
        var entries = (0..<1200).map { entry("cdr-\($0)") }
        entries.append(entry("raw:bad", reason: "parse_error"))
        _ = try t.ledger.commit(batch([], quarantined: entries), now: 3)
        // A line charged meanwhile through another key (e.g. a fixed parse) counts as a duplicate.
        _ = try t.ledger.commit(batch([], quarantined: [entry("raw:dup")]), now: 3)
        #expect(try t.ledger.quarantineCount() == 1202)

        var seen = 0
        let r = try t.ledger.retryQuarantine(now: 9) { item in
            seen += 1
            if item.entry.key == "raw:dup" { return charge("done", client: ann.id, cost: credit) }
            guard item.entry.key.hasPrefix("cdr-"), let n = Int(item.entry.key.dropFirst(4)), n % 2 == 0 else { return nil }
            return charge(item.entry.key, client: ann.id, cost: 1000)
        }
        #expect(seen == 1202)
        #expect(r.charged == 600 && r.duplicates == 1 && r.remaining == 601)
        #expect(try t.ledger.client(username: "ann")?.meter.used == credit + 600 * 1000)
        #expect(try t.ledger.chargedSince(9).count == 600)
        let left = try t.ledger.quarantine(limit: nil, reason: nil).map(\.entry.key)
        #expect(left.count == 601 && left.contains("raw:bad") && left.contains("cdr-1") && !left.contains("cdr-0") && !left.contains("raw:dup"))
    }

    // A bulk ingest's group of batches: one transaction, visible to other connections only once it
    // commits; a body that throws, or a part that failed even if the body went on, keeps nothing of it.
    @Test func batchesCommittedInOneTransactionLandTogetherOrNotAtAll() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        let other = try t.reopen()
        try t.ledger.inOneTransaction {
            _ = try t.ledger.commit(batch([charge("g1", client: ann.id, cost: 10)]), now: 2)
            _ = try t.ledger.commit(batch([charge("g2", client: ann.id, cost: 20)], quarantined: [entry("q1")]), now: 3)
            #expect(try other.totals().usageRows == 0, "another connection sees nothing of an open group")
            #expect(try t.ledger.totals().usageRows == 2, "the group's own connection sees its parts")
        }
        #expect(try other.totals().usageRows == 2 && other.quarantineCount() == 1)

        #expect(throws: TestFailure.self) {
            try t.ledger.inOneTransaction {
                _ = try t.ledger.commit(batch([charge("g3", client: ann.id, cost: 40)]), now: 4)
                throw TestFailure("the reader stopped")
            }
        }
        // No client 999999: the foreign key fails that part; the body swallows the error and goes on.
        #expect(throws: LedgerError.self) {
            try t.ledger.inOneTransaction {
                _ = try t.ledger.commit(batch([charge("g4", client: ann.id, cost: 80)]), now: 5)
                _ = try? t.ledger.commit(batch([charge("g5", client: 999_999, cost: 1)]), now: 5)
                _ = try t.ledger.commit(batch([charge("g6", client: ann.id, cost: 160)]), now: 5)
            }
        }
        #expect(try other.totals().usageRows == 2)
        #expect(try other.client(username: "ann")?.meter.used == 30)
        // The connection is back to a transaction per commit.
        _ = try t.ledger.commit(batch([charge("g7", client: ann.id, cost: 320)]), now: 6)
        #expect(try other.client(username: "ann")?.meter.used == 350)
        // Inside a dry run the group is a part of the dry run's transaction, rolled back with it.
        _ = try t.ledger.dryRun {
            try t.ledger.inOneTransaction { _ = try t.ledger.commit(batch([charge("g8", client: ann.id, cost: 1)]), now: 7) }
        }
        #expect(try t.ledger.totals().usageRows == 3)
    }

    @Test func dryRunReportsButKeepsNothing() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 10 * credit, key: nil, now: 1)
        let eventsBefore = try t.ledger.outboxEvents(limit: 100).count
        let pos = Checkpoint(device: 1, inode: 2, headHash: "h", offset: 999, tailHash: "t", line: 9)
        let outcomes = try t.ledger.dryRun { () throws -> [BatchOutcome] in
            let a = try t.ledger.commit(batch([charge("c1", client: ann.id, cost: 8 * credit)], quarantined: [entry("q")], position: pos), now: 5)
            let b = try t.ledger.commit(batch([charge("c1", client: ann.id, cost: 8 * credit), charge("c2", client: ann.id, cost: 3 * credit)]), now: 6)
            // A failing commit inside the dry run undoes only itself.
            #expect(throws: LedgerError.self) { try t.ledger.commit(batch([charge("c3", client: 9999, cost: 1)]), now: 7) }
            #expect(try t.ledger.client(username: "ann")?.meter.used == 11 * credit)
            return [a, b]
        }
        #expect(outcomes[0].charged == 1 && outcomes[0].quarantined == 1 && outcomes[0].levelChanges.map(\.to) == [.low])
        #expect(outcomes[1].charged == 1 && outcomes[1].duplicates == 1 && outcomes[1].levelChanges.map(\.to) == [.exhausted])
        let after = try #require(try t.ledger.client(username: "ann"))
        #expect(after.meter.used == 0 && after.level == .ok)
        #expect(try t.ledger.totals() == (0, 0, 0))
        #expect(try t.ledger.sourcePosition(name: "master") == nil)
        #expect(try t.ledger.outboxEvents(limit: 100).count == eventsBefore)
        // The ledger still works normally afterwards.
        #expect(try t.ledger.commit(batch([charge("c1", client: ann.id, cost: 1)]), now: 8).charged == 1)
    }

    @Test func dryRunRollsBackWhenTheBodyThrows() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        #expect(throws: TestFailure.self) {
            try t.ledger.dryRun { () throws -> Void in
                _ = try t.ledger.commit(batch([charge("c1", client: ann.id, cost: 1)]), now: 5)
                throw TestFailure("stop")
            }
        }
        #expect(try t.ledger.totals().usageRows == 0)
    }

    @Test func positionRoundTrip() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        #expect(try t.ledger.sourcePosition(name: "master") == nil)
        let p1 = Checkpoint(device: UInt64.max, inode: 1 << 63, headHash: "abc", offset: 1234, tailHash: "def", line: 10)
        _ = try t.ledger.commit(ChargeBatch(source: "master", position: p1, charges: [], quarantined: []), now: 1)
        #expect(try t.ledger.sourcePosition(name: "master") == p1)
        let p2 = Checkpoint(device: 7, inode: 8, headHash: "x", offset: 5678, tailHash: "y", line: 20)
        _ = try t.ledger.commit(ChargeBatch(source: "master", position: p2, charges: [], quarantined: []), now: 2)
        #expect(try t.ledger.sourcePosition(name: "master") == p2)
        #expect(try t.ledger.sourcePosition(name: "other") == nil)
    }

    @Test func failedCommitChangesNothing() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 10 * credit, key: nil, now: 1)
        let p0 = Checkpoint(device: 1, inode: 2, headHash: "h", offset: 100, tailHash: "t", line: 1)
        _ = try t.ledger.commit(batch([], quarantined: [entry("old")], position: p0), now: 2)
        let eventsBefore = try t.ledger.outboxEvents(limit: 100).count

        var p1 = p0
        p1.offset = 5000
        let bad = batch([charge("c1", client: ann.id, cost: 9 * credit), charge("c2", client: 424242, cost: 1)],
                        quarantined: [entry("new")], position: p1)
        #expect {
            try t.ledger.commit(bad, now: 3)
        } throws: { error in
            guard case .sqlite(_, let message, let context) = error as? LedgerError else { return false }
            return message.contains("FOREIGN KEY") && context == "recording a charge"
        }
        #expect(try t.ledger.sourcePosition(name: "master") == p0)
        #expect(try t.ledger.client(username: "ann")?.meter.used == 0)
        #expect(try t.ledger.client(username: "ann")?.level == .ok)
        #expect(try t.ledger.totals() == (0, 0, 1))
        #expect(try t.ledger.outboxEvents(limit: 100).count == eventsBefore)
        // A negative cost is refused the same way.
        #expect(throws: LedgerError.self) { try t.ledger.commit(batch([charge("c3", client: ann.id, cost: -1)], position: p1), now: 4) }
        #expect(try t.ledger.sourcePosition(name: "master") == p0)
    }
}

@Suite struct ChunkMatchingTests {
    /// Repeats inside one chunk, against earlier batches and new charges, matched both ways: by walking
    /// the RETURNING rows in order, and by key (what happens should they ever come back in another order).
    @Test(arguments: [false, true])
    func repeatsAreCountedOnceWhicheverWayRowsAreMatched(byKey: Bool) throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        t.ledger.matchInsertsByKey = byKey
        _ = try t.ledger.commit(batch((0..<10).map { charge("old-\($0)", client: ann.id, cost: 1, line: Int64($0)) }), now: 1)
        var charges: [Charge] = []
        for i in 0..<300 {
            charges.append(charge("new-\(i)", client: ann.id, cost: 10, line: Int64(i)))
            if i % 4 == 0 { charges.append(charge("new-\(i)", client: ann.id, cost: 10, line: Int64(i))) }
            if i % 30 == 0 { charges.append(charge("old-\(i / 30)", client: ann.id, cost: 1, line: Int64(i))) }
        }
        let out = try t.ledger.commit(batch(charges), now: 2)
        #expect(out.charged == 300)
        #expect(out.duplicates == charges.count - 300)
        #expect(out.costByClient[ann.id] == 3_000)
        #expect(try t.ledger.client(username: "ann")?.meter.used == 3_010)
    }
}

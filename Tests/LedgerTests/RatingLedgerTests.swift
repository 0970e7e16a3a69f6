import Foundation
import MeterCore
@testable import Ledger
import Testing
import TestSupport

/// Rerate adjustments, corrections of assigned and statements, at the ledger.
@Suite struct RatingLedgerTests {
    /// A client with 10 credits and three charges answered at 100, 200 and 300.
    static func setUp() throws -> (TempLedger, ClientRecord) {
        let t = try TempLedger()
        let c = try makeClient(t.ledger, "alice", now: 10)
        _ = try t.ledger.recharge(username: "alice", amount: 10 * credit, key: "r1", now: 20)
        var charges: [Charge] = []
        for (k, at) in [Int64(100), 200, 300].enumerated() {
            var ch = charge("id\(k)", client: c.id, cost: credit, line: Int64(k + 1))
            ch.answeredAt = at
            ch.pricedBy = #"[{"prefix":"1","line":2}]"#
            charges.append(ch)
        }
        _ = try t.ledger.commit(batch(charges), now: 400)
        return (t, c)
    }

    @Test func usageRowsKeepTheirAnswerTimeAndWhatPricedThem() throws {
        let (t, c) = try Self.setUp()
        let rows = try t.ledger.usage(clientID: c.id, from: 150, to: 301)
        #expect(rows.map(\.answeredAt) == [200, 300])
        #expect(rows.allSatisfy { $0.pricedBy == #"[{"prefix":"1","line":2}]"# && $0.currentCost == credit })
        #expect(try t.ledger.usage(clientID: nil, from: 0, to: 100).isEmpty)
    }

    @Test func rerateWritesAdjustmentsMovesUsedAndIsIdempotent() throws {
        let (t, c) = try Self.setUp()
        let rows = try t.ledger.usage(clientID: c.id, from: 0, to: 1000)
        // 9 credits more takes alice past her 10 assigned: exhausted.
        let changes = [RerateChange(usageID: rows[0].id, newCost: 5 * credit, pricedBy: "new"),
                       RerateChange(usageID: rows[1].id, newCost: 6 * credit, pricedBy: "new"),
                       RerateChange(usageID: rows[2].id, newCost: credit, pricedBy: "same")]
        let out = try t.ledger.applyRerate(clientID: c.id, changes: changes, range: (0, 1000), now: 500)
        #expect(out.adjusted == 2 && out.delta == 9 * credit)
        #expect(out.levelChange?.from == .ok && out.levelChange?.to == .exhausted)
        #expect(try t.ledger.client(username: "alice")?.meter.used == 12 * credit)
        // The charges themselves are untouched; their current cost follows the adjustments.
        let again = try t.ledger.usage(clientID: c.id, from: 0, to: 1000)
        #expect(again.map(\.chargedCost) == [credit, credit, credit])
        #expect(again.map(\.currentCost) == [5 * credit, 6 * credit, credit])
        let events = try t.ledger.outboxEvents(limit: 50)
        let rerated = try events.filter { $0.type == "client.rerated" }.map { try EventBody($0.body) }
        #expect(rerated.count == 1)
        #expect(rerated.first?.string("delta") == "9")
        #expect(rerated.first?.string("used") == "12")
        #expect(events.contains { $0.type == "credit.exhausted" })
        // The same rerate again changes nothing and makes no event.
        let second = try t.ledger.applyRerate(clientID: c.id, changes: changes, range: (0, 1000), now: 600)
        #expect(second.adjusted == 0 && second.delta == 0)
        #expect(try t.ledger.outboxEvents(limit: 50).count == events.count)
        // Back down: a cheaper price is a negative delta.
        let back = try t.ledger.applyRerate(clientID: c.id, changes: [RerateChange(usageID: rows[0].id, newCost: 0, pricedBy: nil)],
                                            range: (0, 1000), now: 700)
        #expect(back.delta == -5 * credit)
        // Another client's charge is refused, and nothing of that rerate is kept.
        let bob = try makeClient(t.ledger, "bob")
        #expect(throws: LedgerError.self) {
            try t.ledger.applyRerate(clientID: bob.id, changes: [RerateChange(usageID: rows[1].id, newCost: 0, pricedBy: nil)],
                                     range: (0, 1000), now: 800)
        }
        #expect(try t.ledger.client(username: "alice")?.meter.used == 7 * credit)
    }

    @Test func adjustCorrectsAssignedOnceByKeyAndNeverBelowZero() throws {
        let (t, _) = try Self.setUp()
        let a = try t.ledger.adjust(username: "alice", amount: -2_500_000, reason: "recharge r1 was 2.5 too much", key: "fix-1", now: 900)
        #expect(a.applied && a.client.meter.assigned == 7_500_000)
        let b = try t.ledger.adjust(username: "alice", amount: -2_500_000, reason: "recharge r1 was 2.5 too much", key: "fix-1", now: 901)
        #expect(!b.applied && b.client.meter.assigned == 7_500_000)
        #expect(throws: LedgerError.self) {
            try t.ledger.adjust(username: "alice", amount: -1, reason: "other reason", key: "fix-1", now: 902)
        }
        #expect(throws: LedgerError.self) { try t.ledger.adjust(username: "alice", amount: -7_500_001, reason: "too much", key: nil, now: 903) }
        #expect(throws: LedgerError.self) { try t.ledger.adjust(username: "alice", amount: 1, reason: "  ", key: nil, now: 903) }
        #expect(throws: LedgerError.self) { try t.ledger.adjust(username: "alice", amount: 0, reason: "zero", key: nil, now: 903) }
        let adjusted = try t.ledger.outboxEvents(limit: 50).filter { $0.type == "client.adjusted" }.map { try EventBody($0.body) }
        #expect(adjusted.count == 1)
        #expect(adjusted.first?.string("amount") == "-2.5")
        #expect(adjusted.first?.string("reason") == "recharge r1 was 2.5 too much")
    }

    @Test func statementRunsToTheMetersAvailable() throws {
        let (t, c) = try Self.setUp()
        let rows = try t.ledger.usage(clientID: c.id, from: 0, to: 1000)
        _ = try t.ledger.applyRerate(clientID: c.id, changes: [RerateChange(usageID: rows[2].id, newCost: 1_250_000, pricedBy: "x")],
                                     range: (0, 1000), now: 500)
        _ = try t.ledger.adjust(username: "alice", amount: 500_000, reason: "goodwill", key: nil, now: 600)
        let st = try t.ledger.statement(username: "alice", from: nil, to: nil)
        #expect(st.entries.map(\.kind) == [.recharge, .charge, .charge, .charge, .rerate, .adjustment])
        #expect(st.entries.map(\.available) == [10_000_000, 9_000_000, 8_000_000, 7_000_000, 6_750_000, 7_250_000])
        #expect(st.entries[4].oldCost == credit && st.entries[4].newCost == 1_250_000)
        let meter = try #require(try t.ledger.client(username: "alice")).meter
        #expect(st.closing == meter.available)
        // A window starts from the opening figure.
        let window = try t.ledger.statement(username: "alice", from: 450, to: 550)
        #expect(window.opening == 7_000_000)
        #expect(window.entries.map(\.kind) == [.rerate])
        #expect(window.closing == 6_750_000)
    }
}

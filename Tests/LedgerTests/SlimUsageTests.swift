import TestSupport
import CSQLite
import Foundation
import Testing
import MeterCore
@testable import Ledger

/// Schema version 7 keeps each distinct priced_by text of a new charge once (`pricings`) and indexes usage
/// by client and moment only: what a charge says priced it must read back the same, across the migration
/// and across transactions that roll back.
@Suite struct SlimUsageTests {
    /// A store written by schema version 6, opened by this version: every charge still names what priced it
    /// (the old ones by their own text, new ones by a pricing), and usage has only the indexes version 7
    /// leaves it.
    @Test func pricedByOfVersion6ChargesSurvivesTheMigration() throws {
        let rowA = #"[{"prefix":"1","line":2,"rate":"0.1","connect_fee":"0"}]"#
        let rowB = #"[{"prefix":"44","line":3,"rate":"0.2","connect_fee":"0"}]"#
        let old = try OldStore(version: 6, """
            INSERT INTO clients (username, email, password_hash, level, created_at, updated_at)
                VALUES ('ann', 'ann@example.com', '\(fakeHash)', 'ok', 1, 1);
            INSERT INTO usage (identity, start_key, client_id, account, source, position, line, destination, prefix,
                               billsec, charged_seconds, cost, started_at, charged_at, answered_at, priced_by) VALUES
                ('h:1', 1700000000, 1, 'ann', 'master', 0, 1, '15551234567', '1', 60, 60, 10, 1700000000, 5, 1700000003, '\(rowA)'),
                ('h:2', 1700000100, 1, 'ann', 'master', 100, 2, '15551234568', '1', 60, 60, 10, 1700000100, 5, 1700000104, '\(rowA)'),
                ('h:3', 1700000200, 1, 'ann', 'master', 200, 3, '4420123', '44', 60, 60, 20, 1700000200, 5, 1700000201, '\(rowB)'),
                ('h:4', 1700000300, 1, 'ann', 'master', 300, 4, '4420124', '44', 60, 60, 20, 1700000300, 5, NULL, NULL);
            UPDATE clients SET used = 60;
            """)
        defer { old.cleanup() }

        let ledger = try Ledger(path: old.path)
        let rows = try ledger.usage(clientID: 1, from: 0, to: 1_800_000_000)
        #expect(rows.map(\.identity) == ["h:1", "h:2", "h:3", "h:4"])
        #expect(rows.map(\.pricedBy) == [rowA, rowA, rowB, nil])
        // A charge from before rating in time counts by its start, as it did through its own index.
        #expect(rows.map(\.answeredAt) == [1_700_000_003, 1_700_000_104, 1_700_000_201, 1_700_000_300])
        #expect(try ledger.usage(clientID: nil, from: 1_700_000_104, to: 1_700_000_300).map(\.identity) == ["h:2", "h:3"])
        let st = try ledger.statement(username: "ann", from: nil, to: nil)
        #expect(st.entries.map(\.pricedBy) == [rowA, rowA, rowB, nil])
        // Their texts stay where they were: only new charges name a pricing.
        #expect(try ledger.store.scalarInt("SELECT count(*) FROM pricings", purpose: "test") == 0)
        let indexes = try ledger.store.statement(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'usage' ORDER BY name", "test")
        var names: [String] = []
        while try indexes.step() { names.append(indexes.text(0)) }
        indexes.reset()
        #expect(names == ["usage_client_moment", "usage_identity", "usage_identity_legacy"])
        #expect(try ledger.recentCalls(username: "ann", limit: 2).map(\.destination) == ["4420124", "4420123"])

        // A charge made after the upgrade names its pricing; the old ones read as before beside it.
        var later = charge("h:5", client: 1, cost: 20, line: 5)
        later.startKey = 1_700_000_400
        later.answeredAt = 1_700_000_402
        later.pricedBy = rowB
        #expect(try ledger.commit(batch([later]), now: 6).charged == 1)
        #expect(try ledger.usage(clientID: 1, from: 0, to: 1_800_000_000).map(\.pricedBy) == [rowA, rowA, rowB, nil, rowB])
        #expect(try ledger.store.scalarInt("SELECT count(*) FROM pricings", purpose: "test") == 1)
        #expect(try ledger.store.scalarInt("SELECT count(*) FROM usage WHERE priced_by IS NOT NULL", purpose: "test") == 3)
    }

    /// A pricing inserted by a transaction that rolled back is gone: the next charge with that text must
    /// not name the id it had, which by then names nothing (or, once reused, another text).
    @Test func aPricingFromARolledBackTransactionIsNotReused() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        var first = charge("h:dry", client: ann.id, cost: 5)
        first.pricedBy = "rolled-back"
        _ = try t.ledger.dryRun { try t.ledger.commit(batch([first]), now: 2) }
        #expect(try t.ledger.store.scalarInt("SELECT count(*) FROM pricings", purpose: "test") == 0)

        var other = charge("h:other", client: ann.id, cost: 5, line: 2)
        other.pricedBy = "another"
        var again = charge("h:real", client: ann.id, cost: 5, line: 3)
        again.pricedBy = "rolled-back"
        _ = try t.ledger.commit(batch([other, again]), now: 3)
        let st = try t.ledger.statement(username: "ann", from: nil, to: nil)
        #expect(st.entries.map(\.pricedBy) == ["another", "rolled-back"])
    }
}

/// `status` on a big store: today's total and each source's newest CDR are found from the newest rows
/// back, not by scanning the store.
@Suite struct StatusReadsTests {
    /// Charges client ann (made on first use) one batch per row: (identity, source, start, commit time).
    private func chargeAnn(_ t: TempLedger, _ rows: [(String, String, Int64, Int64)]) throws {
        let ann = try t.ledger.client(username: "ann") ?? makeClient(t.ledger, "ann")
        for (id, source, start, now) in rows {
            var c = charge(id, client: ann.id, cost: 10)
            c.source = source
            c.startKey = start
            c.startedAt = start
            #expect(try t.ledger.commit(batch([c]), now: now).charged == 1)
        }
    }

    @Test func todaysTotalCountsAClockSteppedBackALittleAndStopsPastTheSlack() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        // The third was charged after the clock stepped back 10 minutes: still today, still counted.
        try chargeAnn(t, [("h:old", "a", 1, 1_000), ("h:today", "a", 2, 20_000), ("h:stepped", "a", 3, 19_400)])
        #expect(try t.ledger.chargedSince(19_000) == (2, 20))
        #expect(try t.ledger.chargedSince(500) == (3, 30))
        // A clock stepped back by more than the slack ends the walk: the rows before it are not read.
        try chargeAnn(t, [("h:far-back", "a", 4, 10), ("h:after", "a", 5, 30_000)])
        #expect(try t.ledger.chargedSince(19_000) == (1, 10))
    }

    @Test func aSourcesNewestCDRIsFoundAmongTheNewestRowsOrByAScan() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        try chargeAnn(t, [("h:a1", "a", 1_700_000_100, 1), ("h:a0", "a", 1_700_000_050, 2)]
                   + (0..<3).map { ("h:b\($0)", "b", 1_700_000_200 + Int64($0), 3) })
        #expect(try t.ledger.lastChargedStart(source: "b") == 1_700_000_202)
        #expect(try t.ledger.lastChargedStart(source: "a") == 1_700_000_100)
        #expect(try t.ledger.lastChargedStart(source: "none") == nil)
        t.ledger.lastStartWalk = 2
        #expect(try t.ledger.lastChargedStart(source: "a") == 1_700_000_100)
        #expect(try t.ledger.lastChargedStart(source: "b") == 1_700_000_202)
    }
}

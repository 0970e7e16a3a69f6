import Foundation
import Ledger
import LedgerPostgres
import MeterCore
import Testing
import TestSupport

/// `store copy`: a SQLite ledger built through its public API (plus the rows only an older version or the
/// delivery loop writes) copied into a fresh database, compared with the original row by row, and then
/// charged on: what SQLite charged stays charged on the copied node.
@Suite(.enabled(if: PGEnv.enabled)) struct CopyTests {
    /// The SQLite ledger every case copies, and what it charged.
    struct Source {
        let temp: TempLedger
        var ledger: Ledger { temp.ledger }
        let charged: ChargeBatch
        let legacyIdentity = "legacy-before-v3"
    }

    static let ann = "ann", bob = "bob", cyd = "cyd", dee = "dee"

    static func source() throws -> Source {
        let t = try TempLedger()
        let l = t.ledger
        let a = try makeClient(l, ann, accounts: ["1001", "1002", "1003"], now: 1_000)
        let b = try makeClient(l, bob, accounts: ["2001"], now: 1_001)
        _ = try makeClient(l, cyd, email: "", now: 1_002)
        // A purged client: its id is never handed out again, on SQLite and after the copy.
        _ = try makeClient(l, dee, now: 1_003)
        _ = try l.setDisabled(username: dee, true, now: 1_004)
        try l.purge(username: dee, now: 1_005)
        _ = try l.setDisabled(username: cyd, true, now: 1_006)
        _ = try l.recharge(username: ann, amount: 50 * credit, key: "r-ann-1", now: 1_100)
        _ = try l.recharge(username: ann, amount: 1_500_001, key: nil, now: 1_101)
        _ = try l.recharge(username: bob, amount: 2 * credit, key: "r-bob-1", now: 1_102)
        _ = try l.adjust(username: bob, amount: -250_000, reason: "goodwill reversed", key: "adj-1", now: 1_103)
        var long = entry("q-long", startKey: nil, raw: String(repeating: "z", count: 40))
        long.length = 9_000
        long.sha256 = String(repeating: "ab", count: 32)
        let charges = [
            charge("call-1", client: a.id, cost: 1_234_567, line: 1, answeredAt: 1_700_000_010, pricedBy: "peak 1"),
            charge("call-2", client: a.id, cost: 7, line: 2, startKey: 1_700_000_100),
            charge("call-2", client: a.id, cost: 7, line: 3, startKey: 1_700_000_100),
            charge("call-3", client: b.id, cost: 1_900_000, line: 4, startKey: 1_700_000_200, answeredAt: 1_700_000_201,
                   pricedBy: "off-peak 2"),
        ]
        let batch = ChargeBatch(source: "master", position: checkpoint(4_096, line: 5), charges: charges,
                                quarantined: [entry("q-unknown"), long])
        let outcome = try l.commit(batch, now: 2_000)
        #expect(outcome.charged == 3 && outcome.duplicates == 1 && outcome.quarantined == 2)
        #expect(try l.commit(batch, now: 2_001).charged == 0)
        try l.recordGivenUp(source: "master", files: 2, bytes: 777, now: 2_002)
        // Written by older versions and by the delivery loop, which this suite's targets do not link:
        // a charge from before start keys (with its text in priced_by), an endpoint's cursor and a pending
        // delivery, and a balance push time.
        try l.store.execute("""
            INSERT INTO usage (identity, start_key, client_id, account, source, position, line, destination, prefix, billsec,
                charged_seconds, cost, started_at, charged_at, answered_at, priced_by, pricing)
            VALUES ('legacy-before-v3', NULL, \(a.id), '1001', 'master', 10, 1, '4420', '44', 30, 30, 999, 1600000000, 1600000100,
                NULL, 'legacy deck row', NULL);
            UPDATE clients SET used = used + 999 WHERE id = \(a.id);
            INSERT INTO endpoint_state (endpoint, cursor, paused_at, pause_reason, delivered, last_delivered_at)
                VALUES ('billing', 2, NULL, '', 1, 1500);
            INSERT INTO deliveries (event, endpoint, client_id, status, attempts, next_attempt_ms, age_from_ms, last_error, updated_ms)
                SELECT id, 'billing', client_id, 'pending', 3, 2000500, 2000000, 'HTTP 503', 2000400 FROM outbox ORDER BY id DESC LIMIT 1;
            INSERT INTO balance_sent (client_id, at) VALUES (\(a.id), 1999);
            """, purpose: "writing what older versions and the delivery loop write")
        return Source(temp: t, charged: batch)
    }

    @Test func aCopyHoldsEverythingAndChargesNothingTwice() throws {
        let src = try Self.source()
        defer { src.temp.cleanup() }
        let db = try TestDatabase()
        defer { db.drop() }
        let pg = try db.ledger(node: "pbx1")
        let report = try pg.copy(from: src.ledger, chunkRows: 2)
        #expect(report.legacyCharges == 1)
        let rows = Dictionary(report.rows.map { ($0.table, $0.rows) }, uniquingKeysWith: { a, _ in a })
        #expect(rows["clients"] == 3 && rows["accounts"] == 5 && rows["usage"] == 4 && rows["quarantine"] == 2)
        #expect(rows["deliveries"] == 1 && rows["endpoint_state"] == 1 && rows["balance_sent"] == 1 && rows["adjustments"] == 1)

        // Client records field by field, and what the records do not carry.
        let want = try src.ledger.clients(), have = try pg.clients()
        #expect(have.count == want.count)
        for (w, h) in zip(want, have) { #expect(h == w, "client \(w.username)") }
        #expect(have.first { $0.username == Self.cyd }?.disabledAt == 1_006)
        #expect(try db.int("SELECT count(*) FROM clients WHERE password_hash = '\(fakeHash)'") == 3)
        #expect(try pg.totals() == src.ledger.totals())
        #expect(try pg.accountDirectory() == src.ledger.accountDirectory())
        #expect(try pg.sourcePosition(name: "master") == src.ledger.sourcePosition(name: "master"))
        #expect(try pg.quarantine(limit: nil, reason: nil) == src.ledger.quarantine(limit: nil, reason: nil))
        let wantEvents = try src.ledger.outboxEvents(limit: 1_000), haveEvents = try pg.outboxEvents(limit: 1_000)
        #expect(haveEvents.count == wantEvents.count && haveEvents.count > 5)
        for (w, h) in zip(wantEvents, haveEvents) { #expect(h == w) }
        #expect(try db.int("SELECT count(*) FROM source_given_up WHERE node = 'pbx1' AND files = 2 AND bytes = 777") == 1)
        #expect(try db.int("SELECT count(*) FROM deliveries d JOIN outbox o ON o.id = d.event WHERE d.attempts = 3") == 1)
        #expect(try db.int("SELECT count(*) FROM balance_dirty") == src.ledger.store.scalarInt("SELECT count(*) FROM balance_dirty", purpose: "test"))
        // The charge from before v7 names its text through pricings, as a charge made here would.
        #expect(try db.int("""
            SELECT count(*) FROM usage u JOIN pricings p ON p.id = u.pricing WHERE u.identity = 'legacy-before-v3' AND p.text = 'legacy deck row'
            """) == 1)
        #expect(try db.int("SELECT count(*) FROM usage WHERE node <> 'pbx1'") == 0)
        // The keys and indexes the copy dropped for its load are back as the migrations made them.
        let fresh = try TestDatabase()
        defer { fresh.drop() }
        _ = try fresh.ledger()
        #expect(try db.int(Self.schemaHash) == fresh.int(Self.schemaHash))

        // Charged on: the same batch on the copied node is all duplicates, positions and Used unmoved.
        let used = try #require(try pg.client(username: Self.ann)?.meter.used)
        let again = try pg.commit(src.charged, now: 3_000)
        #expect(again.charged == 0 && again.duplicates == 4 && again.quarantined == 0)
        let annID = try #require(try pg.client(username: Self.ann)?.id)
        // The charge from before start keys is refused under its identity whatever start key it comes with.
        let legacy = try pg.commit(batch([charge(src.legacyIdentity, client: annID, cost: 999, startKey: 1_600_000_000)]), now: 3_001)
        #expect(legacy.charged == 0 && legacy.duplicates == 1)
        // Nor is a line quarantined under it, as on SQLite.
        #expect(try pg.commit(batch([], quarantined: [entry(src.legacyIdentity)]), now: 3_001).quarantined == 0)
        #expect(try src.ledger.dryRun { try src.ledger.commit(batch([], quarantined: [entry(src.legacyIdentity)]), now: 3_001).quarantined } == 0)
        #expect(try pg.client(username: Self.ann)?.meter.used == used)
        // Another node's calls are its own, the legacy identity too.
        let pbx2 = try db.ledger(node: "pbx2")
        #expect(try pbx2.commit(batch([charge(src.legacyIdentity, client: annID, cost: 1, startKey: 1_600_000_000)]), now: 3_002).charged == 1)
        // New rows get ids past every copied one, and past the purged client's.
        let purgedID = try src.ledger.store.scalarInt("SELECT seq FROM sqlite_sequence WHERE name = 'clients'", purpose: "test")
        #expect(try makeClient(pg, "eve").id == purgedID + 1)
        // An idempotency key used on SQLite is still used.
        #expect(try pg.recharge(username: Self.ann, amount: 50 * credit, key: "r-ann-1", now: 3_003).applied == false)
        #expect(thrown { try pg.recharge(username: Self.bob, amount: 50 * credit, key: "r-ann-1", now: 3_004) } != nil)
    }

    /// Every index and constraint definition of the copied tables, as one number.
    static let schemaHash = """
        SELECT ('x' || substr(md5(coalesce((SELECT string_agg(indexname || ':' || indexdef, ';' ORDER BY indexname) FROM pg_indexes
                                            WHERE schemaname = current_schema()), '')
                               || coalesce((SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), ';' ORDER BY conname)
                                            FROM pg_constraint WHERE connamespace = current_schema()::regnamespace), '')), 1, 15))::bit(60)::int8
        """

    @Test func aCopyWithoutOldChargesAddsNoTrigger() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let a = try makeClient(t.ledger, Self.ann)
        _ = try t.ledger.commit(batch([charge("c1", client: a.id, cost: 5)]), now: 2_000)
        let db = try TestDatabase()
        defer { db.drop() }
        let pg = try db.ledger()
        #expect(try pg.copy(from: t.ledger).legacyCharges == 0)
        #expect(try db.int("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%legacy_duplicate'") == 0)
        #expect(try pg.commit(batch([charge("c1", client: a.id, cost: 5)]), now: 2_001).duplicates == 1)
    }

    @Test func aStoreInUseIsRefusedAndLeftAsItWas() throws {
        let src = try Self.source()
        defer { src.temp.cleanup() }
        let db = try TestDatabase()
        defer { db.drop() }
        let pg = try db.ledger(node: "pbx1")
        try makeClient(pg, "zed")
        _ = try pg.recharge(username: "zed", amount: 3 * credit, key: nil, now: 5)
        let before = try pg.outboxEvents(limit: 100).map(\.eventID)
        #expect(throws: StoreCopyError.notEmpty(table: "clients", rows: 1)) { try pg.copy(from: src.ledger) }
        #expect(try pg.clients().map(\.username) == ["zed"])
        #expect(try pg.client(username: "zed")?.meter == Meter(assigned: 3 * credit, used: 0))
        #expect(try pg.outboxEvents(limit: 100).map(\.eventID) == before)
        #expect(try pg.totals() == (0, 0, 0))

        // Only quarantine from another host is in use too: refused, naming the table.
        let db2 = try TestDatabase()
        defer { db2.drop() }
        let other = try db2.ledger(node: "pbx9")
        _ = try other.commit(batch([], quarantined: [entry("q")]), now: 1)
        #expect(throws: StoreCopyError.notEmpty(table: "quarantine", rows: 1)) { try db2.ledger(node: "pbx1").copy(from: src.ledger) }
        #expect(try other.quarantineCount() == 1)
    }

    /// Every table the copy writes, all empty.
    static func expectEmpty(_ db: TestDatabase, _ comment: Comment) throws {
        for t in LedgerExport.tables.map(\.name) {
            #expect(try db.int("SELECT count(*) FROM \(t)") == 0, "\(comment): \(t)")
        }
        #expect(try db.int("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%legacy_duplicate'") == 0, "\(comment): triggers")
    }

    @Test func aCopyFailingMidwayLeavesTheTargetEmpty() throws {
        let src = try Self.source()
        defer { src.temp.cleanup() }
        let db = try TestDatabase()
        defer { db.drop() }
        let pg = try db.ledger(node: "pbx1")
        let cut = StoreCopyHooks(afterTable: { (table) throws(LedgerError) in
            if table == "quarantine" { throw .unreachable("cut off in the test after \(table)") }
        })
        #expect(throws: LedgerError.unreachable("cut off in the test after quarantine")) {
            try pg.copy(from: src.ledger, chunkRows: 3, progress: nil, hooks: cut)
        }
        try Self.expectEmpty(db, "after a copy cut off after quarantine")

        // A copy whose totals do not add up (here made so just before the check) is rolled back whole.
        let skew = StoreCopyHooks(beforeVerify: { (c) throws(LedgerError) in
            try c.execute("UPDATE clients SET used = used + 1 WHERE username = 'bob'", "skewing the copy")
        })
        do {
            _ = try pg.copy(from: src.ledger, chunkRows: 10_000, progress: nil, hooks: skew)
            Issue.record("a skewed copy was committed")
        } catch let e as StoreCopyError {
            guard case .mismatch(let what) = e else { Issue.record("\(e)"); return }
            #expect(what.contains("client 'bob'") && what.contains("used"), "\(what)")
        }
        try Self.expectEmpty(db, "after a copy that did not add up")

        // A charge lost on the way is caught by its client's count and cost.
        let drop = StoreCopyHooks(beforeVerify: { (c) throws(LedgerError) in
            try c.execute("DELETE FROM usage WHERE identity = 'call-2'", "dropping a charge")
        })
        #expect(throws: StoreCopyError.self) { try pg.copy(from: src.ledger, chunkRows: 10_000, progress: nil, hooks: drop) }
        try Self.expectEmpty(db, "after a copy that lost a charge")

        // And the same store then takes the copy.
        #expect(try pg.copy(from: src.ledger).rows.first { $0.table == "usage" }?.rows == 4)
        #expect(try pg.totals() == src.ledger.totals())
    }
}

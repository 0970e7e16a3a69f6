import TestSupport
import CSQLite
import Foundation
import Testing
import MeterCore
@testable import Ledger

@Suite struct StoreTests {
    @Test func purgeRemovesEverythingOfTheClient() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann", accounts: ["100", "101"])
        let bob = try makeClient(t.ledger, "bob")
        _ = try t.ledger.recharge(username: "ann", amount: 10 * credit, key: "k-ann", now: 1)
        _ = try t.ledger.recharge(username: "bob", amount: 10 * credit, key: nil, now: 1)
        _ = try t.ledger.commit(batch([charge("a1", client: ann.id, cost: 9 * credit), charge("b1", client: bob.id, cost: 2)]), now: 2)

        #expect(throws: LedgerError.notDisabled("ann")) { try t.ledger.purge(username: "ann", now: 3) }
        _ = try t.ledger.setDisabled(username: "ann", true, now: 1000)
        #expect(try t.ledger.purgeCandidates(disabledBefore: 1000).isEmpty)
        #expect(try t.ledger.purgeCandidates(disabledBefore: 1001).map(\.username) == ["ann"])

        try t.ledger.purge(username: "ann", now: 2000)
        #expect(try t.ledger.client(username: "ann") == nil)
        #expect(try t.ledger.clients().map(\.username) == ["bob"])
        #expect(try t.ledger.accountDirectory().keys.sorted() == ["bob"])
        #expect(try t.ledger.totals() == (1, 2, 0))
        let events = try t.ledger.outboxEvents(limit: 100)
        #expect(!events.contains { $0.username == "ann" && $0.type != "client.purged" })
        let purged = try #require(events.last)
        #expect(purged.type == "client.purged" && purged.username == "ann")
        let body = try EventBody(purged.body)
        #expect(body.string("username") == "ann" && body.data["email"] == nil)
        #expect(body.string("purged_at") == "1970-01-01T00:33:20Z")
        #expect(try t.ledger.store.scalarInt("SELECT count(*) FROM recharges", purpose: "test") == 1)
        #expect(try t.ledger.store.scalarInt("SELECT count(*) FROM balance_dirty", purpose: "test") == 1)
        // The recharge key, the username and the account codes are free again.
        let ann2 = try makeClient(t.ledger, "ann", accounts: ["100"])
        #expect(ann2.id != ann.id)
        #expect(try t.ledger.recharge(username: "ann", amount: 10 * credit, key: "k-ann", now: 3000).applied)
    }

    @Test func passwordHashRoundTrip() throws {
        let h1 = try PasswordHasher.hash("Secr3t!pass")
        let h2 = try PasswordHasher.hash("Secr3t!pass")
        #expect(h1.hasPrefix("$y$"))
        #expect(h1 != h2)
        #expect(PasswordHasher.verify("Secr3t!pass", against: h1))
        #expect(PasswordHasher.verify("Secr3t!pass", against: h2))
        #expect(!PasswordHasher.verify("Secr3t!pasS", against: h1))
        #expect(!PasswordHasher.verify("", against: h1))
        #expect(!PasswordHasher.verify("Secr3t!pass", against: ""))
        #expect(!PasswordHasher.verify("Secr3t!pass", against: "*0"))
        #expect(!PasswordHasher.verify("Secr3t!pass", against: "Secr3t!pass"))
    }

    @Test func reopenKeepsDataAndMigrationsAreIdempotent() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 5 * credit, key: "k", now: 1)
        _ = try t.ledger.commit(batch([charge("c1", client: ann.id, cost: credit)], quarantined: [entry("q")]), now: 2)
        let version = try t.ledger.store.scalarInt("PRAGMA user_version", purpose: "test")
        #expect(version == Int64(Schema.latestVersion) && version >= 1)

        let again = try t.reopen()
        let third = try t.reopen()
        #expect(try again.client(username: "ann") == t.ledger.client(username: "ann"))
        #expect(try third.store.scalarInt("PRAGMA user_version", purpose: "test") == version)
        #expect(try third.totals() == (1, credit, 1))
        #expect(try third.store.scalarInt("PRAGMA foreign_keys", purpose: "test") == 1)
        // Two connections on one file (the CLI and the daemon) see each other's commits.
        _ = try again.commit(batch([charge("c2", client: ann.id, cost: credit)]), now: 3)
        #expect(try t.ledger.client(username: "ann")?.meter.used == 2 * credit)
        #expect(try third.recharge(username: "ann", amount: 5 * credit, key: "k", now: 4).applied == false)
    }

    @Test func newerSchemaIsRefused() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        try t.ledger.store.execute("PRAGMA user_version=\(Schema.latestVersion + 1)", purpose: "test")
        #expect(throws: LedgerError.schemaTooNew(path: t.path, found: Schema.latestVersion + 1, known: Schema.latestVersion)) {
            _ = try t.reopen()
        }
    }

    @Test func openErrorNamesThePath() throws {
        // A missing directory is created now, so the store is put under a regular file, where none can be.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cm-notadir-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let path = file + "/ledger.db"
        #expect {
            _ = try Ledger(path: path)
        } throws: { error in
            (error as? LedgerError)?.description.contains(path) == true
        }
    }

    @Test func aBatchWhoseCommitFailsSaysSoOnceInItsError() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        // A deferred foreign key broken inside the batch's transaction makes the COMMIT itself fail, the
        // step whose message once read "while committing committing a batch".
        try t.ledger.store.execute("""
            CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY);
            CREATE TEMP TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
            CREATE TEMP TRIGGER break_commit AFTER INSERT ON main.quarantine BEGIN INSERT INTO child VALUES (42); END;
            """, purpose: "arming a failing commit")
        var description = ""
        do {
            _ = try t.ledger.commit(batch([], quarantined: [entry("k1")]), now: 1_000)
        } catch {
            description = error.description
        }
        #expect(description == "sqlite error 787 while committing the transaction for charging a batch from master: "
            + "FOREIGN KEY constraint failed")
        // The failed COMMIT was rolled back: the next batch commits.
        try t.ledger.store.execute("DROP TRIGGER temp.break_commit", purpose: "disarming")
        _ = try t.ledger.commit(batch([], quarantined: [entry("k2")]), now: 1_000)
    }

    @Test func withoutCreateAMissingStoreIsNoStoreAndNothingIsMade() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cm-nostore-\(UUID().uuidString)").path
        let path = dir + "/sub/ledger.db"
        #expect(throws: LedgerError.noStore(path: path)) { _ = try Ledger(path: path, create: false) }
        #expect(!FileManager.default.fileExists(atPath: dir))
    }

    @Test func nestedTransactionsRollBackOnlyTheInnerLevel() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        let store = t.ledger.store
        let count = { () throws -> Int64 in try store.scalarInt("SELECT count(*) FROM source_positions", purpose: "test") }
        try store.transaction("outer") { () throws(LedgerError) in
            try store.execute("INSERT INTO source_positions VALUES ('a', 0, 0, '', 0, '', 0, 0)", purpose: "test")
            do {
                try store.transaction("inner") { () throws(LedgerError) in
                    try store.execute("INSERT INTO source_positions VALUES ('b', 0, 0, '', 0, '', 0, 0)", purpose: "test")
                    try store.execute("INSERT INTO source_positions VALUES ('a', 0, 0, '', 0, '', 0, 0)", purpose: "dup")
                }
                Issue.record("the inner transaction should have failed")
            } catch {
                #expect("\(error)".contains("UNIQUE"))
            }
        }
        #expect(try count() == 1)
    }

    @Test func eventTimestampsAreRFC3339() {
        #expect(EventFactory.rfc3339(0) == "1970-01-01T00:00:00Z")
        #expect(EventFactory.rfc3339(1_614_265_330) == "2021-02-25T15:02:10Z")
        #expect(EventFactory.rfc3339(951_782_400) == "2000-02-29T00:00:00Z")
        #expect(EventFactory.rfc3339(-1) == "1969-12-31T23:59:59Z")
        #expect(JSONValue.object([("a", .string("q\"\\\n\u{1}é"))]).text == #"{"a":"q\"\\\n\u0001é"}"#)
    }
}

@Suite struct SchemaUpgradeTests {
    /// A store written by schema version 2 (identity-only dedupe), opened by this version: what it had
    /// charged is still a duplicate, and is not quarantined again.
    @Test func chargesFromBeforeVersion3AreStillDuplicates() throws {
        let old = try OldStore(version: 2, """
            INSERT INTO clients (username, email, password_hash, level, created_at, updated_at)
                VALUES ('ann', 'ann@example.com', '\(fakeHash)', 'ok', 1, 1);
            INSERT INTO usage (identity, client_id, account, source, position, line, destination, prefix, billsec,
                               charged_seconds, cost, started_at, charged_at)
                VALUES ('h:charged-in-v2', 1, 'ann', 'master', 0, 1, '15551234567', '1', 60, 60, 10, 1700000000, 1);
            UPDATE clients SET used = 10;
            """)
        defer { old.cleanup() }

        let ledger = try Ledger(path: old.path)
        var charged = charge("h:charged-in-v2", client: 1, cost: 10)
        charged.startKey = 1_700_000_000
        var new = charge("h:new", client: 1, cost: 7, line: 2)
        new.startKey = 1_700_000_100
        let out = try ledger.commit(batch([charged, new]), now: 5)
        #expect(out.charged == 1)
        #expect(out.duplicates == 1)
        #expect(try ledger.client(username: "ann")?.meter.used == 17)
        var again = entry("h:charged-in-v2")
        again.startKey = 1_700_000_000
        #expect(try ledger.commit(batch([], quarantined: [again]), now: 6).quarantined == 0)
        #expect(try ledger.commit(batch([new]), now: 7).duplicates == 1)
    }
}

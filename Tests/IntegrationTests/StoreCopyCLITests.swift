import Foundation
import Testing
import TestSupport

/// `store copy` through the binary: half a CDR file replayed into SQLite, the ledger copied to PostgreSQL,
/// the whole file replayed there, and every client's Used is what one replay of the whole file into a
/// fresh SQLite store gives, to the µcr. And the refusals, each changing nothing.
@Suite(.serialized, .enabled(if: PGEnv.enabled, "no PostgreSQL server: set CREDITMETER_TEST_PG_DIR"))
struct StoreCopyCLITests {
    static let sqliteStore = "[store]\npath = \"store.db\"\n\n[node]\nname = \"pbx1\""

    /// The first `count` lines of `file`, in a file of their own beside it.
    static func head(_ file: String, lines count: Int) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        var seen = 0, end = data.startIndex
        for i in data.indices where data[i] == 0x0A {
            seen += 1
            if seen == count { end = i + 1; break }
        }
        let out = file + ".head"
        try data[data.startIndex..<end].write(to: URL(fileURLWithPath: out))
        return out
    }

    static func replay(_ h: Harness, _ file: String, config: String? = nil) throws -> [String: Any] {
        try PostgresCLITests.replay(h, file, config: config)
    }

    /// A PostgreSQL config of `h`'s plans on `db` as `node`, beside `h`'s own.
    static func pgConfig(_ h: Harness, _ db: TestDatabase, node: String = "pbx1") throws -> String {
        let sqlite = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try h.write("pg.password", (db.password ?? "") + "\n")
        return try h.write("pg.toml", sqlite.replacingOccurrences(of: sqliteStore, with: PostgresCLITests.store(db, node: node)))
    }

    @Test func halfOnSQLiteThenAllOnPostgresChargesEachCallOnce() throws {
        let (h, file, expected) = try HostileReplayTests.corpus(lines: 12_000, clients: 7, seed: 41, store: Self.sqliteStore)
        let half = try Self.head(file, lines: 6_000)
        let first = try Self.replay(h, half)
        let firstCharged = try #require(first["charged"] as? Int)
        #expect(firstCharged > 1_000)

        // One replay of the whole file into a fresh SQLite store, for comparison.
        let (fresh, freshFile, _) = try HostileReplayTests.corpus(lines: 12_000, clients: 7, seed: 41)
        let all = try Self.replay(fresh, freshFile)
        let allCharged = try #require(all["charged"] as? Int)
        let want = try fresh.meters()
        #expect(want.count == 7)

        let db = try TestDatabase()
        defer { db.drop() }
        let pg = try Self.pgConfig(h, db)
        let copy = try h.run(["store", "copy", "--to", db.url, "--password-file", h.path("pg.password"), "--json"])
        #expect(copy.status == 0, "store copy exited \(copy.status): \(copy.stderr)")
        let summary = (try? JSONSerialization.jsonObject(with: Data(copy.stdout.utf8))) as? [String: Any] ?? [:]
        #expect(summary["node"] as? String == "pbx1")
        #expect((summary["rows"] as? [String: Any])?["usage"] as? Int == firstCharged, "\(copy.stdout)")

        // The PostgreSQL store now shows what SQLite showed.
        let sqliteMeters = try h.meters()
        let r = try h.run(["clients", "list", "--json", "--config", pg], config: false)
        #expect(r.status == 0, "\(r.stderr)")
        let list = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]] ?? []
        #expect(list.count == 7)
        for c in list {
            let u = c["username"] as? String ?? ""
            #expect(c["used"] as? String == sqliteMeters[u]?["used"], "used of \(u) after the copy")
        }

        // The whole file on PostgreSQL: only the second half is charged.
        let rest = try Self.replay(h, file, config: pg)
        #expect(rest["charged"] as? Int == allCharged - firstCharged)
        let again = try Self.replay(h, file, config: pg)
        #expect(again["charged"] as? Int == 0)
        let r2 = try h.run(["clients", "list", "--json", "--config", pg], config: false)
        let after = (try? JSONSerialization.jsonObject(with: Data(r2.stdout.utf8))) as? [[String: Any]] ?? []
        #expect(after.count == 7)
        for c in after {
            let u = c["username"] as? String ?? ""
            #expect(c["used"] as? String == want[u]?["used"], "used of \(u): one SQLite replay vs half there, all here")
            if let cost = expected[u] { #expect(c["used"] as? String == Oracle.format(cost), "used of \(u) vs the oracle") }
        }

        // A second copy into the now used store is refused, and changes nothing.
        let twice = try h.run(["store", "copy", "--to", db.url, "--password-file", h.path("pg.password")])
        #expect(twice.status == 73, "\(twice.stderr)")
        #expect(twice.stderr.contains("not empty") && twice.stderr.split(separator: "\n").count == 1, "\(twice.stderr)")
        let r3 = try h.run(["clients", "list", "--json", "--config", pg], config: false)
        #expect(r3.stdout == r2.stdout)
    }

    /// A copy killed (SIGKILL) while it writes the charges leaves the target as it found it: nothing copied,
    /// the keys it dropped for the load still there; the next copy then goes through.
    @Test func aCopyKilledMidwayLeavesTheTargetEmpty() throws {
        let h = try Harness(store: Self.sqliteStore)
        #expect(try h.createClient("ann", accounts: ["1001"]).status == 0)
        // 250,000 charges straight into the SQLite ledger (the API would take minutes in a debug build).
        let sql = """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250000)
            INSERT INTO usage (identity, start_key, client_id, account, source, position, line, destination, prefix, billsec,
                charged_seconds, cost, started_at, charged_at)
            SELECT 'id-' || i, 1700000000 + i, (SELECT id FROM clients), '1001', 'master', i * 100, i, '4420', '44', 60, 60, 1000 + i,
                1700000000 + i, 1700000100 FROM n;
            UPDATE clients SET used = (SELECT sum(cost) FROM usage);
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sqlite3", h.storePath, sql]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "sqlite3 could not fill the ledger")
        let db = try TestDatabase()
        defer { db.drop() }
        try h.write("pg.password", (db.password ?? "") + "\n")
        let indexes = "SELECT count(*) FROM pg_indexes WHERE tablename = 'usage'"

        let copy = Process()
        Harness.command(copy, ["store", "copy", "--config", h.configPath, "--to", db.url, "--password-file", h.path("pg.password"),
                               "--chunk-rows", "1000"], umask: nil)
        copy.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        copy.standardError = err
        try copy.run()
        // Killed when it reports the first 100,000 charges written, well before the 250,000th.
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("copying usage: 100000") {
            let more = err.fileHandleForReading.availableData
            if more.isEmpty { break }
            seen.append(more)
        }
        let killed = copy.isRunning
        if killed { kill(copy.processIdentifier, SIGKILL) }
        copy.waitUntilExit()
        #expect(killed, "the copy ended before it could be killed: \(String(decoding: seen, as: UTF8.self))")
        for t in ["clients", "accounts", "usage", "outbox", "balance_dirty"] {
            #expect(try db.int("SELECT count(*) FROM \(t)") == 0, "\(t) after a killed copy")
        }
        #expect(try db.int(indexes) == 3, "usage's indexes after a killed copy")

        let again = try h.run(["store", "copy", "--to", db.url, "--password-file", h.path("pg.password")])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try db.int("SELECT count(*) FROM usage") == 250_000)
        #expect(try db.int("SELECT sum(cost)::int8 FROM usage") == 250_000 * 1_000 + 250_000 * 250_001 / 2)
        #expect(try db.int(indexes) == 3)
    }

    @Test func theRefusals() throws {
        let h = try Harness(store: Self.sqliteStore)
        #expect(try h.createClient("ann").status == 0)
        let db = try TestDatabase()
        defer { db.drop() }
        try h.write("pg.password", (db.password ?? "") + "\n")

        // A password in the URL: refused as [store] url refuses it, not repeated.
        let withPassword = db.url.replacingOccurrences(of: "://", with: "://someone:s3cr3t-in-url@")
        let r1 = try h.run(["store", "copy", "--to", withPassword])
        #expect(r1.status == 78, "\(r1.stderr)")
        #expect(r1.stderr.contains("password") && !r1.stderr.contains("s3cr3t-in-url"), "\(r1.stderr)")
        let r1b = try h.run(["store", "copy", "--to", db.url + (db.url.contains("?") ? "&" : "?") + "password=s3cr3t-in-url"])
        #expect(r1b.status == 78 && !r1b.stderr.contains("s3cr3t-in-url"), "\(r1b.stderr)")

        // No SQLite ledger at the config's path: 66 naming it, and none made.
        let config = try String(contentsOfFile: h.configPath, encoding: .utf8)
        let missing = try h.write("missing.toml", config.replacingOccurrences(of: "path = \"store.db\"", with: "path = \"nowhere/ledger.db\""))
        let r2 = try h.run(["store", "copy", "--config", missing, "--to", db.url, "--password-file", h.path("pg.password")], config: false)
        #expect(r2.status == 66, "\(r2.stderr)")
        #expect(r2.stderr.contains("nowhere/ledger.db"), "\(r2.stderr)")
        #expect(!FileManager.default.fileExists(atPath: h.path("nowhere")))

        // A wrong password: 74 in one line, the password not shown.
        try h.write("wrong.password", "not-the-password-xyz\n")
        let r3 = try h.run(["store", "copy", "--to", db.url, "--password-file", h.path("wrong.password")])
        #expect(r3.status == 74, "\(r3.stderr)")
        #expect(r3.stderr.split(separator: "\n").count == 1 && !r3.stderr.contains("not-the-password-xyz"), "\(r3.stderr)")

        // A target some host already uses: 73, and it is left as it was.
        let pg = try StoreCopyCLITests.pgConfig(h, db, node: "pbx2")
        let made = try h.run(["clients", "create", "--username", "zed", "--first-name", "Z", "--last-name", "Z",
                              "--email", "zed@example.com", "--password-stdin", "--config", pg],
                             stdin: "Passw0rd!\nPassw0rd!\n", config: false)
        #expect(made.status == 0, "\(made.stderr)")
        let r4 = try h.run(["store", "copy", "--to", db.url, "--password-file", h.path("pg.password")])
        #expect(r4.status == 73, "\(r4.stderr)")
        #expect(r4.stderr.contains("clients"), "\(r4.stderr)")
        #expect(try db.int("SELECT count(*) FROM clients") == 1)
        #expect(try db.int("SELECT count(*) FROM clients WHERE username = 'ann'") == 0)

        // The source must be SQLite.
        let r5 = try h.run(["store", "copy", "--config", pg, "--to", db.url], config: false)
        #expect(r5.status == 78, "\(r5.stderr)")
    }
}

import Foundation
import Testing
import TestSupport

/// The binary on a PostgreSQL store shared by two hosts' configs: clients, recharges and replays, CDR
/// identity scoped by node, kill -9 mid-replay, and the refusals a user meets first.
@Suite(.serialized, .enabled(if: PGEnv.enabled, "no PostgreSQL server: set CREDITMETER_TEST_PG_DIR"))
struct PostgresCLITests {
    /// The `[store]` and `[node]` tables of one host on `db`, its password in `pg.password` beside the config.
    static func store(_ db: TestDatabase, node: String) -> String {
        """
        [store]
        url = "\(db.url)"
        password_file = "pg.password"

        [node]
        name = "\(node)"
        """
    }

    /// A harness whose config is pbx1's, and pbx2's config beside it (same plans, same database).
    static func twoHosts(_ db: TestDatabase, lines: Int, clients: Int, seed: Int) throws
        -> (h: Harness, pbx2: String, file: String, expected: [String: Int64]) {
        let (h, file, expected) = try HostileReplayTests.corpus(lines: lines, clients: clients, seed: seed,
                                                                 store: store(db, node: "pbx1"),
                                                                 files: ["pg.password": (db.password ?? "") + "\n"])
        let pbx1 = try String(contentsOfFile: h.configPath, encoding: .utf8)
        let pbx2 = try h.write("pbx2.toml", pbx1.replacingOccurrences(of: "name = \"pbx1\"", with: "name = \"pbx2\""))
        return (h, pbx2, file, expected)
    }

    static func replay(_ h: Harness, _ file: String, config: String? = nil) throws -> [String: Any] {
        let r = try h.run(["replay", "--format", "asterisk-csv", "--timezone", "UTC", "--json", file]
                          + (config.map { ["--config", $0] } ?? []), config: config == nil)
        #expect(r.status == 0, "replay exited \(r.status): \(r.stderr)")
        return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
    }

    @Test func twoHostsShareClientsAndBalancesAndEachChargesItsOwnCalls() throws {
        let db = try TestDatabase()
        defer { db.drop() }
        let (h, pbx2, file, expected) = try Self.twoHosts(db, lines: 4_000, clients: 6, seed: 31)
        #expect(try h.meters().count == 6, "clients created on pbx1")

        // A recharge on pbx2 is pbx1's balance too.
        let user = try #require(expected.keys.sorted().first)
        let r = try h.run(["clients", "recharge", user, "25", "--config", pbx2], config: false)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try h.meters()[user]?["assigned"] == "25")

        let first = try Self.replay(h, file)
        try HostileReplayTests.expectUsed(h, expected, "after pbx1 replayed the file")
        // The same host again: every call is a duplicate.
        let again = try Self.replay(h, file)
        #expect(again["charged"] as? Int == 0)
        // The file repeats some of its own lines: those were duplicates the first time already.
        let firstCharged = try #require(first["charged"] as? Int), firstRepeats = try #require(first["duplicates"] as? Int)
        #expect(firstCharged > 1_000)
        #expect(again["duplicates"] as? Int == firstCharged + firstRepeats)
        try HostileReplayTests.expectUsed(h, expected, "after pbx1 replayed it twice")
        // Another host with colliding call identities: its own calls, each charged.
        let other = try Self.replay(h, file, config: pbx2)
        #expect(other["charged"] as? Int == firstCharged)
        // Each host's `quarantine list` shows the lines its replay quarantined: once each (a repeated line
        // with an unknown account is one entry, as on SQLite), the same on both hosts.
        let quarantined = try #require(first["quarantined"] as? Int)
        var listed: [Int] = []
        for config in [h.configPath, pbx2] {
            let r = try h.run(["quarantine", "list", "--json", "--config", config], config: false)
            #expect(r.status == 0, "\(r.stderr)")
            let items = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]] ?? []
            listed.append(items.count)
            #expect(Set(items.compactMap { $0["reason"] as? String }).isSuperset(of: ["unknown_account", "bad_line"]))
        }
        #expect(listed[0] == listed[1] && listed[0] > quarantined * 9 / 10 && listed[0] <= quarantined, "\(listed) of \(quarantined)")
        try HostileReplayTests.expectUsed(h, expected.mapValues { $0 * 2 }, "after pbx2 replayed the same file")
    }

    @Test func aReplayKilledMidwayAndRunAgainChargesEachCallOnce() throws {
        let db = try TestDatabase()
        defer { db.drop() }
        let (h, _, file, expected) = try Self.twoHosts(db, lines: 40_000, clients: 5, seed: 32)
        let killed = try HostileReplayTests.killReplays(h, file, runs: 4, dyingAfter: 50_000...900_000)
        #expect(killed >= 1, "at least one replay was killed before it finished")
        _ = try Self.replay(h, file)
        try HostileReplayTests.expectUsed(h, expected, "after \(killed) kill -9s and a full replay")
    }

    /// A failover as the agent sees it: the server restarts (fast shutdown cuts every connection) while a
    /// replay commits on three connections. The replay exits 74 in one line, what it committed stays, and
    /// the same replay run again charges the rest: Used exact to the µcr. On a server of the test's own.
    @Test func aServerRestartMidReplayLosesNothing() throws {
        let own = try OwnServer()
        defer { own.stop() }
        let db = try TestDatabase(serverDir: own.dir)
        defer { db.drop() }
        let (h, file, expected) = try HostileReplayTests.corpus(lines: 150_000, clients: 6, seed: 33,
                                                                 store: Self.store(db, node: "pbx1"),
                                                                 files: ["pg.password": (db.password ?? "") + "\n"])
        let p = Process()
        Harness.command(p, ["replay", "--config", h.configPath, "--format", "asterisk-csv", "--timezone", "UTC", file], umask: nil)
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        // Restart as soon as the first batches are in, well before the file's end.
        try eventually("the replay's first charges", timeout: 60, every: 0.02) { (try? db.int("SELECT count(*) FROM usage")).flatMap { $0 } ?? 0 > 0 }
        let before = try #require(try db.int("SELECT count(*) FROM usage"))
        try own.restart()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 74, "the replay outlived the restart: exit \(p.terminationStatus), \(stderr)")
        #expect(stderr.split(separator: "\n").count == 1 && stderr.contains("PostgreSQL"), "\(stderr)")
        let kept = try #require(try db.int("SELECT count(*) FROM usage"))
        #expect(kept >= before, "committed charges were lost: \(before) before the restart, \(kept) after")

        _ = try Self.replay(h, file)
        try HostileReplayTests.expectUsed(h, expected, "after a restart mid-replay and a second replay")
    }

    @Test func theRefusalsAUserMeetsFirst() throws {
        let db = try TestDatabase()
        defer { db.drop() }
        let h = try Harness(store: Self.store(db, node: "pbx1"))
        try h.write("pg.password", (db.password ?? "") + "\n")
        #expect(try h.createClient("ann").status == 0)

        // run takes a PostgreSQL store (config check makes every check run makes).
        let check = try h.run(["config", "check"])
        #expect(check.status == 0, "\(check.stderr)")
        // A command that reads only SQLite in this version says so in one line.
        let statement = try h.run(["clients", "statement", "ann"])
        #expect(statement.status == 78, "\(statement.stderr)")
        #expect(statement.stderr.contains("store.url"))
        // status, edit, disable and enable work on it, the URL shown without credentials.
        let status = try h.run(["status"])
        #expect(status.status == 0 && status.stdout.contains("store: postgresql://"), "\(status.stdout) \(status.stderr)")
        #expect(try h.run(["clients", "edit", "ann", "--company", "Ann Ltd"]).status == 0)
        #expect(try h.run(["clients", "disable", "ann"]).stdout.contains("disabled"))
        #expect(try h.run(["clients", "enable", "ann"]).stdout.contains("active"))

        // A wrong password: exit 74, one line, and the password never printed.
        try h.write("pg.password", "not-the-password\n")
        let wrong = try h.run(["clients", "list"])
        #expect(wrong.status == 74, "\(wrong.stderr)")
        #expect(wrong.stderr.split(separator: "\n").count == 1, "\(wrong.stderr)")
        #expect(!wrong.stderr.contains("not-the-password"))

        // Nobody listening: exit 74 too.
        let closed = try Harness(store: """
            [store]
            url = "postgresql://creditmeter@127.0.0.1:\(try freePort())/x?connect_timeout=2"
            """)
        let down = try closed.run(["clients", "list"])
        #expect(down.status == 74, "\(down.stderr)")

        // A password in the URL is refused before anything connects, and not repeated.
        let leaky = try Harness(store: "[store]\nurl = \"postgresql://creditmeter:hunter2@127.0.0.1/x\"")
        let refused = try leaky.run(["clients", "list"])
        #expect(refused.status == 78)
        #expect(refused.stderr.contains("password_file") && !refused.stderr.contains("hunter2"), "\(refused.stderr)")
    }
}

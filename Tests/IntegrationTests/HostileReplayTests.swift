import Foundation
import Testing

/// Replays of data shaped like a real Master.csv (bench/hostile_corpus.py: hash identities in random
/// order, clients with two account codes, repeated, malformed and unknown-account lines), checked against
/// the corpus's own independently computed per-client cost.
@Suite(.serialized) struct HostileReplayTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A harness with the benchmarks' 5,000-prefix deck, a corpus of `lines` lines and its clients created.
    /// `store` and `files` (name → text, written beside the config first) set up another store.
    static func corpus(lines: Int, clients: Int, seed: Int, store: String? = nil,
                       files: [String: String] = [:]) throws -> (Harness, file: String, expected: [String: Int64]) {
        let h = try Harness(store: store)
        for (name, text) in files { try h.write(name, text) }
        let deck = h.path("rates-default.csv")
        try python(["bench/make_deck.py", deck])
        let file = h.path("corpus.csv")
        try python(["bench/hostile_corpus.py", "\(lines)", file, deck, "--clients", "\(clients)", "--seed", "\(seed)"])
        for row in try String(contentsOfFile: file + ".clients.tsv", encoding: .utf8).split(separator: "\n") {
            let parts = row.split(separator: "\t").map(String.init)
            let accounts = parts[1].split(separator: " ").map(String.init)
            let r = try h.createClient(parts[0], accounts: accounts)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: file + ".expected.json"))
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let cost = (json?["cost"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.int64Value }
        return (h, file, cost)
    }

    static func python(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        p.currentDirectoryURL = repo
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "python3 \(args.joined(separator: " "))")
    }

    /// Starts `runs` replays of `file` one after another and SIGKILLs each that is still running at a random
    /// moment in `dyingAfter` (µs); returns how many it killed.
    static func killReplays(_ h: Harness, _ file: String, runs: Int, dyingAfter: ClosedRange<UInt32>) throws -> Int {
        var rng = SystemRandomNumberGenerator()
        var killed = 0
        for _ in 0..<runs {
            let p = try startReplay(h, file)
            // A random moment to die at, not a wait for anything: the run is meant to be cut short.
            usleep(UInt32.random(in: dyingAfter, using: &rng))
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                killed += 1
            }
            p.waitUntilExit()
        }
        return killed
    }

    /// A replay of `file` started in the background, its output discarded.
    static func startReplay(_ h: Harness, _ file: String) throws -> Process {
        let p = Process()
        Harness.command(p, ["replay", "--config", h.configPath, "--format", "asterisk-csv", "--timezone", "UTC", file], umask: nil)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    static func expectUsed(_ h: Harness, _ expected: [String: Int64], _ comment: Comment) throws {
        let meters = try h.meters()
        for (user, cost) in expected {
            #expect(meters[user]?["used"] == Oracle.format(cost), "\(comment): used of \(user)")
        }
    }

    @Test func replayIsExactOnHostileData() throws {
        let (h, file, expected) = try Self.corpus(lines: 20_000, clients: 9, seed: 21)
        guard let s = try h.json(["replay", "--format", "asterisk-csv", "--timezone", "UTC", "--json", file]) as? [String: Any] else {
            Issue.record("replay --json printed no object")
            return
        }
        #expect((s["clients"] as? [String: Any])?.count == 9)
        try Self.expectUsed(h, expected, "after one replay")
        let again = try h.json(["replay", "--format", "asterisk-csv", "--timezone", "UTC", "--json", file]) as? [String: Any]
        #expect(again?["charged"] as? Int == 0)
        try Self.expectUsed(h, expected, "after a second replay")
    }

    // Exactly once through crashes: the replay is killed at random moments, mid-batch or between batches,
    // and run again each time; only the final, uninterrupted run is left to finish.
    // SQLite commits a replay's batches a group (40,000 rows) at a time, so the corpus holds two groups
    // and a part, and one run is killed right after its first group has committed (as seen from another
    // process), in the middle of its second.
    @Test func replayKilledAtRandomMomentsChargesEachCallOnce() throws {
        let (h, file, expected) = try Self.corpus(lines: 150_000, clients: 6, seed: 22)
        var killed = try Self.killReplays(h, file, runs: 4, dyingAfter: 20_000...700_000)
        let p = try Self.startReplay(h, file)
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning, Date() < deadline, try h.meters().values.allSatisfy({ $0["used"] == Oracle.format(0) }) {
            usleep(20_000)
        }
        #expect(p.isRunning, "the replay was still running when its first group had committed")
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            killed += 1
        }
        p.waitUntilExit()
        let partial = try h.meters()
        #expect(expected.contains { partial[$0.key]?["used"] != Oracle.format($0.value) },
                "the killed run had not charged everything")
        #expect(killed >= 1, "at least one replay was killed before it finished")
        let r = try h.run(["replay", "--format", "asterisk-csv", "--timezone", "UTC", file])
        #expect(r.status == 0, "\(r.stderr)")
        try Self.expectUsed(h, expected, "after \(killed) kill -9s and a full replay")
    }
}

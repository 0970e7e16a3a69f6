import Foundation
import Testing
import TestSupport

/// Three agents (pbx1–pbx3), each tailing its own CDR file, sharing one PostgreSQL database and one set of
/// clients: killed at random moments, the server restarted under them, and still every call charged once
/// per host and every alert delivered once, in order.
@Suite(.serialized, .enabled(if: PGEnv.enabled, "no PostgreSQL server: set CREDITMETER_TEST_PG_DIR"))
struct MultiHostTests {
    static let secret = WebhookTests.secret

    /// One host: its directory and config (store, node, source, API port, the shared receiver).
    static func host(_ db: TestDatabase, node: String, receiver: PythonReceiver, deck: String) throws -> Harness {
        let port = try freePort()
        let h = try Harness(config: """
            [api]
            listen = "127.0.0.1:\(port)"

            [delivery]
            balance_interval_seconds = 1

            [[endpoint]]
            name = "receiver"
            url = "\(receiver.url)"
            events = ["credit.*"]
            secret = "\(secret)"
            timeout_seconds = 5

            [[source]]
            name = "pbx"
            path = "Master.csv"
            format = "asterisk-csv"
            timezone = "UTC"
            start_at = "beginning"
            """, plans: [:], store: PostgresCLITests.store(db, node: node))
        try h.write("pg.password", (db.password ?? "") + "\n")
        try h.write("rates-default.csv", deck)
        var toml = try String(contentsOfFile: h.configPath, encoding: .utf8)
        toml += "\n[[plan]]\nname = \"default\"\nrates = \"rates-default.csv\"\n"
        try h.write("creditmeter.toml", toml)
        try h.write("Master.csv", "")
        return h
    }

    /// The level an alert moves the client to.
    static func level(_ type: String) -> String {
        type == "credit.recovered" ? "ok" : String(type.dropFirst("credit.".count))
    }

    @Test("3 agents, 30 SIGKILLs and a server restart: Used exact to the µcr, alerts once each and in order")
    func threeAgentsThroughKillsAndARestart() throws {
        let server = try OwnServer()
        defer { server.stop() }
        let db = try TestDatabase(serverDir: server.dir)
        let rxDir = FileManager.default.temporaryDirectory.appendingPathComponent("cm-rx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: rxDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: rxDir) }
        let receiver = try PythonReceiver(dir: rxDir, name: "rx", secret: Self.secret)
        defer { receiver.stop() }

        // Hostile corpora (random identities, repeats, bad lines, unknown accounts, clients with two codes):
        // pbx1 and pbx2 write the very same file, whose calls each host charges once; pbx3 its own.
        let clients = 9
        let (first, file1, expected1) = try HostileReplayTests.corpus(lines: 3_000, clients: clients, seed: 71)
        let deck = try String(contentsOfFile: first.path("rates-default.csv"), encoding: .utf8)
        // Kept to the end: a harness's directory, and the corpus in it, goes with it.
        let (third, file3, expected3) = try HostileReplayTests.corpus(lines: 3_000, clients: clients, seed: 72)
        defer { withExtendedLifetime((first, third)) {} }
        let corpora = [file1, file1, file3]
        var oracle: [String: Int64] = [:]
        for (u, c) in expected1 { oracle[u, default: 0] += 2 * c }
        for (u, c) in expected3 { oracle[u, default: 0] += c }

        let hosts = try ["pbx1", "pbx2", "pbx3"].map { try Self.host(db, node: $0, receiver: receiver, deck: deck) }
        // The clients of the corpus, created once for all hosts, each with credit for its calls and 5 % more:
        // recovered (from exhausted, created with nothing), and critical at the end.
        for row in try String(contentsOfFile: file1 + ".clients.tsv", encoding: .utf8).split(separator: "\n") {
            let parts = row.split(separator: "\t").map(String.init)
            let r = try hosts[0].createClient(parts[0], accounts: parts[1].split(separator: " ").map(String.init))
            #expect(r.status == 0, "\(r.stderr)")
            let used = try #require(oracle[parts[0]])
            try hosts[0].ok(["clients", "recharge", parts[0], Oracle.format((used * 100 + 94) / 95)])
        }

        var daemons = try hosts.map { try DaemonProcess($0) }
        defer { for d in daemons { _ = d.terminate() } }
        for (i, d) in daemons.enumerated() {
            #expect(d.waitForLog("source opened", timeout: 30), "pbx\(i + 1) did not start: \(d.log)")
        }

        // Each file in chunks of 1–120 lines, a chunk sometimes ending inside a line; 30 kills at random
        // moments over the run, each agent started again at once; the server restarted halfway.
        let texts = try corpora.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }
        var written = [0, 0, 0]
        var rng = SplitMix64(seed: 2026)
        var kills = 0, steps = 0, restarted = false
        let totalBytes = texts.reduce(0) { $0 + $1.count }
        while written.enumerated().contains(where: { $0.element < texts[$0.offset].count }) {
            let i = Int(rng.next() % 3)
            guard written[i] < texts[i].count else { continue }
            var end = written[i]
            let lines = 1 + Int(rng.next() % 120)
            for _ in 0..<lines {
                guard let nl = texts[i][end...].firstIndex(of: UInt8(ascii: "\n")) else { end = texts[i].count; break }
                end = nl + 1
            }
            if rng.next() % 4 == 0, end < texts[i].count { end += Int(rng.next() % 40) }
            end = min(end, texts[i].count)
            let fh = try #require(FileHandle(forWritingAtPath: hosts[i].path("Master.csv")))
            try fh.seekToEnd()
            try fh.write(contentsOf: Data(texts[i][written[i]..<end]))
            try fh.close()
            written[i] = end
            steps += 1
            let done = written.reduce(0, +)
            if kills < 30, rng.next() % 3 == 0 {
                let k = Int(rng.next() % 3)
                // At once or a little later, so kills land before, during and after batches.
                if rng.next() % 2 == 0 { usleep(UInt32(rng.next() % 60_000)) }
                daemons[k].kill9()
                daemons[k] = try DaemonProcess(hosts[k])
                kills += 1
            }
            if !restarted, done * 2 >= totalBytes {
                try server.restart()
                restarted = true
            }
        }
        // Whatever the random walk left over, the 30 kills all happen.
        while kills < 30 {
            let k = kills % 3
            daemons[k].kill9()
            daemons[k] = try DaemonProcess(hosts[k])
            kills += 1
        }
        #expect(restarted && steps > 60)

        var meters: [String: [String: String]] = [:]
        do {
            try eventually("every client's Used equal to the oracle's", timeout: 120, every: 0.25) {
                meters = (try? hosts[2].meters()) ?? [:]
                return oracle.allSatisfy { meters[$0.key]?["used"] == Oracle.format($0.value) }
            }
        } catch {
            let off = oracle.filter { meters[$0.key]?["used"] != Oracle.format($0.value) }
                .map { "\($0.key): \(meters[$0.key]?["used"] ?? "?") ≠ \(Oracle.format($0.value))" }
            Issue.record("Used differs from the oracle: \(off.sorted()); logs: \(daemons.map { String($0.log.suffix(2_000)) })")
        }

        // Every client's alerts up to its last, critical: each once by id and in order.
        var got: [[String: Any]] = []
        _ = holds(within: 60) {
            got = receiver.received()
            let critical = Set(got.filter { $0["type"] as? String == "credit.critical" }.compactMap { e -> String? in
                let body = (e["body"] as? [String: Any]) ?? (e["body"] as? String).flatMap {
                    try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                } ?? [:]
                return (body["data"] as? [String: Any])?["username"] as? String
            })
            return critical.count >= clients
        }
        let accepted = got.filter { ($0["duplicate"] as? Bool) != true }
        #expect(Set(accepted.compactMap { $0["id"] as? String }).count == accepted.count, "no id accepted twice")
        var byClient: [String: [(type: String, previous: String)]] = [:]
        for e in accepted {
            let body = (e["body"] as? [String: Any]) ?? (e["body"] as? String).flatMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            } ?? [:]
            let data = body["data"] as? [String: Any] ?? [:]
            guard let type = e["type"] as? String, let user = data["username"] as? String else { continue }
            byClient[user, default: []].append((type, data["previous_level"] as? String ?? "?"))
        }
        #expect(byClient.count == clients, "alerts for \(byClient.keys.sorted())")
        for (user, alerts) in byClient.sorted(by: { $0.key < $1.key }) {
            // A batch alerts once for the level it ends on, so which levels a client passes through depends
            // on how the lines were batched (a backlog read after a kill is one batch). Whatever they were:
            // each alert starts from the level the one before it reached (none missing, none out of order),
            // from the first recharge's recovery to critical, where 5 % of the credit leaves every client.
            var level = "exhausted"
            for a in alerts {
                #expect(a.previous == level, "\(user): \(a.type) from \(a.previous), after \(level): \(alerts.map(\.type))")
                level = Self.level(a.type)
            }
            #expect(alerts.first?.type == "credit.recovered" && level == "critical", "\(user): \(alerts.map(\.type))")
        }
    }

    /// `GET path` on 127.0.0.1:port: the status code and the body.
    static func get(_ port: Int, _ path: String) -> (status: Int, body: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-s", "--max-time", "10", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return (0, "") }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard let nl = text.lastIndex(of: "\n") else { return (0, text) }
        return (Int(text[text.index(after: nl)...]) ?? 0, String(text[..<nl]))
    }

    @Test("the server stopped under a running agent: /readyz 503, authorize denies, the CLI exits 74, nothing lost")
    func storeDownAndBack() throws {
        let server = try OwnServer()
        defer { server.stop() }
        let db = try TestDatabase(serverDir: server.dir)
        let port = try freePort()
        let h = try Harness.tailing(port: port, plans: ["default": WebhookTests.deck], store: PostgresCLITests.store(db, node: "pbx1"))
        try h.write("pg.password", (db.password ?? "") + "\n")
        try h.createClients(2, credits: "100")
        let lines = (0..<40).map { WebhookTests.cdr($0 % 2 == 0 ? "c0001" : "c0002", billsec: 60, id: $0) }
        try h.append(lines[0..<10])
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        _ = try h.waitForUsed(Harness.expectedUsed(Array(lines[0..<10]), deck: WebhookTests.deck), clients: 2)
        #expect(Self.get(port, "/readyz").status == 200)

        try server.halt()
        try h.append(lines[10..<25])
        var ready = (status: 0, body: "")
        _ = holds(within: 30) { ready = Self.get(port, "/readyz"); return ready.status == 503 }
        #expect(ready.status == 503 && ready.body.contains("cannot reach the PostgreSQL server"), "\(ready)")
        let denied = Self.get(port, "/v1/authorize?account=c0001&dst=5550123&call=down-1")
        #expect(denied.body.contains("\"reason\":\"store_unavailable\""), "\(denied)")
        let cli = try h.run(["clients", "list"])
        #expect(cli.status == 74 && cli.stderr.split(separator: "\n").count == 1, "\(cli.status): \(cli.stderr)")
        try h.append(lines[25...])

        try server.resume()
        _ = holds(within: 60) { Self.get(port, "/readyz").status == 200 }
        #expect(Self.get(port, "/readyz").status == 200, "\(d.log)")
        _ = try h.waitForUsed(Harness.expectedUsed(lines, deck: WebhookTests.deck), clients: 2, timeout: 60)
        #expect(d.process.isRunning, "\(d.log)")
    }

    @Test("60 authorizations at once spread over three agents on PostgreSQL never hold more than the client has")
    func holdsAcrossAgentsNeverExceedTheCredit() throws {
        let db = try TestDatabase()
        defer { db.drop() }
        let agents = try (1...3).map { n -> (h: Harness, port: Int) in
            let port = try freePort()
            let h = try Harness(config: """
                [api]
                listen = "127.0.0.1:\(port)"

                [authorize]
                max_call_seconds = 60
                """, plans: ["default": SharedStoreHoldsTests.deck], store: PostgresCLITests.store(db, node: "pbx\(n)"))
            try h.write("pg.password", (db.password ?? "") + "\n")
            return (h, port)
        }
        #expect(try agents[0].h.createClient("tight", accounts: ["1001", "1002"]).status == 0)
        try agents[1].h.ok(["clients", "recharge", "tight", "0.5"])
        let daemons = try agents.map { try DaemonProcess($0.h) }
        defer { for d in daemons { _ = d.terminate() } }
        for (a, d) in zip(agents, daemons) {
            let up = holds(within: 30) { Self.get(a.port, "/healthz").body.hasPrefix("ok") || !d.process.isRunning }
            try #require(up && d.process.isRunning, "agent on port \(a.port) never answered: \(d.log)")
        }
        // Twenty distinct calls on each agent at the same moment, alternating the client's two codes.
        let (allowed, held, reasons) = try SharedStoreHoldsTests.authorizeAtOnce(ports: agents.map(\.port))
        // 0.5 credits hold exactly ten 60-second calls at 0.05; the other fifty are no_credit.
        #expect(held <= 500_000, "holds granted \(held) µcr against 500000 available: \(reasons)")
        #expect(allowed == 10 && reasons["no_credit"] == 50, "\(reasons)")
        // Every agent sees all ten holds, and a recharge on one reaches the others' next answer.
        for a in agents {
            let body = Self.get(a.port, "/v1/authorize?account=1001&dst=15550100").body
            #expect(body.contains("\"reason\":\"no_credit\"") && body.contains("\"reserved\":\"0.5\""), "port \(a.port): \(body)")
        }
        try agents[0].h.ok(["clients", "recharge", "tight", "1"])
        for a in agents {
            let body = Self.get(a.port, "/v1/authorize?account=1002&dst=15550100").body
            #expect(body.contains("\"allow\":true") && body.contains("\"available\":\"1.5\""), "port \(a.port): \(body)")
        }
    }

    @Test("an agent refused a connection slot at start waits for one, then runs")
    func waitsForAConnectionSlot() throws {
        let server = try OwnServer()
        defer { server.stop() }
        let db = try TestDatabase(serverDir: server.dir)
        // Five connections in all (the agent needs seven): reserved slots and WAL senders must stay below it.
        _ = try db.int("ALTER SYSTEM SET max_wal_senders = 0")
        _ = try db.int("ALTER SYSTEM SET max_connections = 5")
        try server.restart()
        let port = try freePort()
        let h = try Harness.tailing(port: port, plans: ["default": WebhookTests.deck], store: PostgresCLITests.store(db, node: "pbx1"))
        try h.write("pg.password", (db.password ?? "") + "\n")
        try h.createClients(1, credits: "10")
        let lines = [WebhookTests.cdr("c0001", billsec: 60, id: 1)]
        try h.append(lines[...])
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("too many clients", timeout: 30), "\(d.log)")
        #expect(d.waitForLog("retrying in", timeout: 10) && d.process.isRunning, "the agent should wait, not exit: \(d.log)")

        // Room for it: the setting needs a free slot (the agent lets go of its own between attempts), then a restart.
        var raised = false
        _ = holds(within: 30, every: 0.2) {
            // A statement without rows: done when it does not throw.
            do { _ = try db.int("ALTER SYSTEM SET max_connections = 50"); raised = true } catch { raised = false }
            return raised
        }
        try #require(raised, "could not raise max_connections")
        try server.restart()
        _ = try h.waitForUsed(Harness.expectedUsed(lines, deck: WebhookTests.deck), clients: 1, timeout: 60)
        #expect(holds(within: 30) { Self.get(port, "/readyz").status == 200 }, "\(d.log)")
    }
}

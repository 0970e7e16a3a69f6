import Foundation
import Testing
import TestSupport

/// Agents sharing one store share its holds: authorize's check-and-reserve is a transaction of the
/// store, not of one agent's memory.
@Suite("three agents on one SQLite store", .serialized)
struct SharedStoreHoldsTests {
    /// 0.05 per minute, 60/60: with max_call_seconds 60 every allowed call holds exactly 0.05.
    static let deck = """
        prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment
        *,0.05,0,60,60

        """

    /// One agent: its own directory and config, the shared store at an absolute path, its own API port.
    struct Agent {
        let h: Harness
        let port: Int
        let daemon: DaemonProcess
    }

    /// An agent's directory and config (API port, 60 s calls); `store` nil keeps the store in that
    /// directory, `tailing` adds a source on its Master.csv.
    static func harness(store: String?, tailing: Bool = false) throws -> (h: Harness, port: Int) {
        let port = try freePort()
        let h = try Harness(config: """
            [api]
            listen = "127.0.0.1:\(port)"

            [authorize]
            max_call_seconds = 60

            \(tailing ? "[[source]]\nname = \"pbx\"\npath = \"Master.csv\"\nformat = \"asterisk-csv\"\ntimezone = \"UTC\"\nstart_at = \"beginning\"\n" : "")
            """, plans: ["default": deck], store: store.map { "[store]\npath = \"\($0)\"" })
        if tailing { try h.write("Master.csv", "") }
        return (h, port)
    }

    static func agent(store: String) throws -> Agent {
        let (h, port) = try harness(store: store)
        return Agent(h: h, port: port, daemon: try DaemonProcess(h))
    }

    /// `GET path` on each (port, path) at the same moment, one curl process each; the bodies in order.
    static func getAll(_ requests: [(port: Int, path: String)]) throws -> [String] {
        var running: [(Process, Pipe)] = []
        for (port, path) in requests {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            p.arguments = ["-s", "--max-time", "30", "http://127.0.0.1:\(port)\(path)"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            p.standardInput = FileHandle.nullDevice
            running.append((p, out))
        }
        for (p, _) in running { try p.run() }
        return running.map { p, out in
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// Sixty authorizations with distinct call ids at the same moment, 20 on each of the three agents,
    /// alternating the client's account codes 1001 and 1002: how many were allowed, the µcr they hold,
    /// and the answers by reason.
    static func authorizeAtOnce(ports: [Int]) throws -> (allowed: Int, held: Int64, reasons: [String: Int]) {
        let requests = (0..<60).map { n in
            (ports[n % ports.count], "/v1/authorize?account=\(n % 2 == 0 ? "1001" : "1002")&dst=15550100&call=call-\(n)")
        }
        var allowed = 0, held: Int64 = 0
        var reasons: [String: Int] = [:]
        for body in try getAll(requests) {
            let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
            let reason = json["reason"] as? String ?? "no answer: \(body)"
            reasons[reason, default: 0] += 1
            if json["allow"] as? Bool == true {
                allowed += 1
                held += micro(json["hold"] as? String ?? "") ?? Int64.max / 2
            }
        }
        return (allowed, held, reasons)
    }

    /// "0.05" → 50000 µcr; nil for anything else than a plain decimal of credits.
    static func micro(_ text: String) -> Int64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int64(parts[0]) else { return nil }
        var frac: Int64 = 0
        if parts.count == 2 {
            let f = String(parts[1])
            guard f.count <= 6, let v = Int64(f + String(repeating: "0", count: 6 - f.count)) else { return nil }
            frac = v
        }
        return whole * 1_000_000 + frac
    }

    @Test("60 concurrent authorizations spread over three agents never hold more than the client has")
    func holdsNeverExceedWhatIsAvailable() throws {
        let shared = FileManager.default.temporaryDirectory.appendingPathComponent("cm-shared-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: shared) }
        let store = shared.appendingPathComponent("store.db").path

        let first = try Harness(plans: ["default": Self.deck], store: "[store]\npath = \"\(store)\"")
        let created = try first.run(["clients", "create", "--username", "tight", "--first-name", "T", "--last-name", "U",
                                     "--email", "tight@example.com", "--account", "1001", "--account", "1002",
                                     "--password-stdin"], stdin: "Passw0rd!\nPassw0rd!\n")
        #expect(created.status == 0, "\(created.stderr)")
        let recharged = try first.run(["clients", "recharge", "tight", "0.5"])
        #expect(recharged.status == 0, "\(recharged.stderr)")

        let agents = try (0 ..< 3).map { _ in try Self.agent(store: store) }
        defer { for a in agents { _ = a.daemon.terminate() } }
        for a in agents {
            let up = holds(within: 30) { (try? Self.getAll([(a.port, "/healthz")]).first) == "ok\n" || !a.daemon.process.isRunning }
            guard up, a.daemon.process.isRunning else {
                Issue.record("agent on port \(a.port) never answered: \(a.daemon.log)")
                return
            }
        }

        let (allowed, held, reasons) = try Self.authorizeAtOnce(ports: agents.map(\.port))
        // 0.5 credits hold exactly ten 60-second calls at 0.05; the other fifty are no_credit.
        #expect(held <= 500_000, "holds granted \(held) µcr against 500000 available: \(reasons)")
        #expect(allowed == 10 && reasons["no_credit"] == 50, "\(reasons)")

        // status counts every agent's holds.
        let status = try first.run(["status", "--json"])
        let json = (try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8))) as? [String: Any] ?? [:]
        let holdsShown = json["holds"] as? [String: Any] ?? [:]
        #expect(holdsShown["calls"] as? Int == 10 && holdsShown["reserved"] as? String == "0.5", "\(status.stdout) \(status.stderr)")
        #expect(try first.run(["status"]).stdout.contains("holds: 10 live calls reserving 0.5 credits"))

        // Every agent now sees all ten holds: its answer without a call has nothing left.
        for a in agents {
            let body = try Self.getAll([(a.port, "/v1/authorize?account=1001&dst=15550100")])[0]
            let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
            #expect(json["reason"] as? String == "no_credit" && json["reserved"] as? String == "0.5", "port \(a.port): \(body)")
        }
    }

    /// An 18-column Asterisk CDR of a 30-second answered call from account 1001, with `uniqueid`.
    static func cdr(_ uniqueid: String) -> String {
        """
        "1001","1001","15550100","from-internal","","SIP/1001-00000001","SIP/trunk-00000002","Dial","SIP/trunk/15550100,60",\
        "2024-05-01 10:00:00","2024-05-01 10:00:05","2024-05-01 10:00:35",35,30,"ANSWERED","DOCUMENTATION","\(uniqueid)",""
        """
    }

    /// The client's available and reserved as an answer without a call shows them, in µcr.
    static func figures(port: Int) throws -> (available: Int64, reserved: Int64)? {
        let body = try getAll([(port, "/v1/authorize?account=1001&dst=15550100")])[0]
        let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        guard let a = (json["available"] as? String).flatMap(micro), let r = (json["reserved"] as? String).flatMap(micro) else { return nil }
        return (a, r)
    }

    @Test("a call's hold goes exactly when its charge commits, through SIGKILLs between the CDRs")
    func holdsSettleExactlyThroughKills() throws {
        let (h, port) = try Self.harness(store: nil, tailing: true)
        #expect(try h.run(["clients", "create", "--username", "kit", "--first-name", "K", "--last-name", "T",
                           "--email", "kit@example.com", "--account", "1001", "--password-stdin"],
                          stdin: "Passw0rd!\nPassw0rd!\n").status == 0)
        #expect(try h.run(["clients", "recharge", "kit", "1"]).status == 0)
        var daemon = try DaemonProcess(h)
        defer { _ = daemon.terminate() }
        func up() -> Bool { holds(within: 30) { (try? Self.figures(port: port)) != nil || !daemon.process.isRunning } }
        guard up() else { Issue.record("the agent never answered: \(daemon.log)"); return }
        // Twenty calls of 60 s at 0.05/min hold the whole credit: 20 × 0.05 = 1.
        let answers = try Self.getAll((0..<20).map { (port, "/v1/authorize?account=1001&dst=15550100&call=call-\($0)") })
        #expect(answers.allSatisfy { $0.contains("\"allow\":true") }, "\(answers)")
        #expect(try Self.figures(port: port).map { $0 == (1_000_000, 1_000_000) } == true)

        // Their CDRs (30 s, charged as 60 s: 0.05 each) arrive in chunks; the agent is killed after each.
        var rng = SplitMix64(seed: 11)
        var next = 0
        while next < 20 {
            let chunk = min(20 - next, 1 + Int(rng.next() % 4))
            try h.append((next..<(next + chunk)).map { Self.cdr("call-\($0)") }[...])
            next += chunk
            // Killed at once or after a moment, so some kills land mid-batch and some after it.
            if rng.next() % 2 == 0 { _ = holds(within: Double(rng.next() % 50) / 1000) { false } }
            daemon.kill9()
            daemon = try DaemonProcess(h)
            guard up() else { Issue.record("the agent never came back: \(daemon.log)"); return }
            // Each call is either charged or still held, never both and never neither: the holds outlive
            // the agent that took them, and a charge and its release commit together.
            if let f = try Self.figures(port: port) {
                #expect((1_000_000 - f.available) + f.reserved == 1_000_000, "used + held should be the whole credit: \(f)")
            }
        }
        // Every call charged once, and no hold left.
        var last: (available: Int64, reserved: Int64)?
        let settled = holds(within: 20) {
            last = try? Self.figures(port: port)
            return last.map { $0 == (0, 0) } == true
        }
        #expect(settled, "available and reserved should both be 0: \(String(describing: last))")
    }
}

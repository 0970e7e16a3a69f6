import Foundation
import Testing

/// A month of CDRs replayed across a price change, a deck row fixed, and `rerate` run with kill -9 at random
/// points: Used must equal an independent oracle to the µcr, and a second identical rerate changes nothing.
@Suite(.serialized) struct RerateTests {
    /// Deck rows as the oracle reads them: by header name, dates as UTC days (the plan's zone is UTC here).
    struct TimedRow {
        var prefix: String
        var row: Oracle.Row
        var days: Set<Int>       // Monday = 0
        var from: Int64, to: Int64
        var since: Int64?, until: Int64?
    }

    static func dayNumber(_ s: Substring) -> Int64? {
        let p = s.split(separator: "-").compactMap { Int64($0) }
        guard p.count == 3 else { return nil }
        var comps = DateComponents()
        comps.year = Int(p[0]); comps.month = Int(p[1]); comps.day = Int(p[2])
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC") ?? .gmt
        return cal.date(from: comps).map { Int64($0.timeIntervalSince1970) }
    }

    static func timedDeck(_ csv: String) -> [TimedRow] {
        let lines = csv.split(separator: "\n")
        let names = lines[0].split(separator: ",").map(String.init)
        func col(_ n: String) -> Int? { names.firstIndex(of: n) }
        let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        return lines.dropFirst().map { line in
            // The only quoted value cdrgen writes is "sat,sun".
            let f = line.replacingOccurrences(of: "\"sat,sun\"", with: "sat;sun").split(separator: ",", omittingEmptySubsequences: false)
            var days = Set(0 ..< 7)
            if let k = col("weekdays"), !f[k].isEmpty {
                if f[k] == "mon-fri" { days = [0, 1, 2, 3, 4] } else {
                    days = Set(f[k].split(separator: ";").compactMap { dayNames.firstIndex(of: String($0)) })
                }
            }
            func minutes(_ n: String, _ empty: Int64) -> Int64 {
                guard let k = col(n), !f[k].isEmpty else { return empty }
                let hm = f[k].split(separator: ":").compactMap { Int64($0) }
                return hm[0] * 60 + hm[1]
            }
            let row = Oracle.Row(prefix: f[0] == "*" ? "" : String(f[0]), rate: Oracle.micro(String(f[1])), fee: Oracle.micro(String(f[2])),
                                 initial: Int64(f[3]) ?? 0, subsequent: Int64(f[4]) ?? 1)
            return TimedRow(prefix: row.prefix, row: row, days: days, from: minutes("time_from", 0), to: minutes("time_to", 1440),
                            since: col("effective_from").flatMap { f[$0].isEmpty ? nil : dayNumber(f[$0]) },
                            until: col("effective_until").flatMap { f[$0].isEmpty ? nil : dayNumber(f[$0]) })
        }
    }

    static func epoch(_ s: String) -> Int64? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f.date(from: s).map { Int64($0.timeIntervalSince1970) }
    }

    /// Used per account under `deck`, every answered line priced by the row in effect at its answer time.
    static func expected(_ master: String, deck: [TimedRow]) -> [String: Int64] {
        var used: [String: Int64] = [:]
        var seen = Set<String>()
        for line in master.split(separator: "\n") {
            let f = Oracle.splitAsterisk(String(line))
            guard f.count == 21, f[14] == "ANSWERED", let billsec = Int64(f[13]), billsec > 0 else { continue }
            guard seen.insert(f[19] + ":" + f[20] + ":" + f[9]).inserted else { continue }
            guard let at = epoch(f[10]) ?? epoch(f[11]).map({ $0 - billsec }) else { continue }
            let day = at >= 0 ? at / 86_400 : (at - 86_399) / 86_400
            let weekday = Int((day + 3) % 7)
            let minute = (at - day * 86_400) / 60
            let d = f[2].hasPrefix("+") ? String(f[2].dropFirst()) : f[2]
            let inEffect = deck.filter {
                d.hasPrefix($0.prefix) && $0.days.contains(weekday) && minute >= $0.from && minute < $0.to
                    && ($0.since.map { at >= $0 } ?? true) && ($0.until.map { at < $0 } ?? true)
            }
            guard let best = inEffect.max(by: { $0.prefix.count < $1.prefix.count }) else { continue }
            used[f[0], default: 0] += Oracle.cost(best.row, billsec: billsec)
        }
        return used
    }

    @Test func aMonthAcrossAPriceChangeThenAFixedRowAndRerateThroughKills() throws {
        let h = try Harness(config: "[[plan]]\nname = \"default\"\nrates = \"rates.csv\"\ntimezone = \"UTC\"\n", plans: [:])
        let clients = 12
        _ = try h.ok(["cdrgen", "--format", "asterisk-csv", "--count", "20000", "--clients", "\(clients)", "--seed", "13",
                      "--start", "2026-03-01", "--span-days", "30", "--deck", h.path("generated.csv"), "--windows",
                      "--price-change", "2026-03-15", "-o", h.path("Master.csv")])
        let generated = try String(contentsOfFile: h.path("generated.csv"), encoding: .utf8)
        let lines = generated.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // The month's deck has no catch-all and no row for 7: those calls are quarantined no_rate.
        let v1 = lines.filter { !$0.hasPrefix("*,") && !$0.hasPrefix("7,") }.joined(separator: "\n")
        try h.write("rates.csv", v1)
        for i in 1 ... clients {
            let u = String(format: "c%04d", i)
            #expect(try h.createClient(u).status == 0)
            try h.ok(["clients", "recharge", u, "100000"])
        }
        let master = try String(contentsOfFile: h.path("Master.csv"), encoding: .utf8)
        try h.ok(["replay", "--format", "asterisk-csv", h.path("Master.csv")])
        let before = Self.expected(master, deck: Self.timedDeck(v1))
        for (u, m) in try h.meters() { #expect(Oracle.micro(m["used"] ?? "") == before[u, default: 0], "\(u) after the replay") }
        let quarantined = try #require(try h.json(["quarantine", "list", "--json"]) as? [[String: Any]])
        #expect(quarantined.contains { $0["reason"] as? String == "no_rate" })

        // The fix: the new UK peak price was typed wrong, and the 7 rows were missing.
        let v2 = lines.filter { !$0.hasPrefix("*,") }.map { line -> String in
            guard line.hasPrefix("44,"), line.hasSuffix("peak new") else { return line }
            var f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            f[1] = "0.4321"
            return f.joined(separator: ",")
        }.joined(separator: "\n")
        try h.write("rates.csv", v2)

        // Killed at random points, then run again until it finishes.
        var rng = SystemRandomNumberGenerator()
        var killed = 0
        for _ in 0 ..< 6 {
            let p = Process()
            Harness.command(p, ["rerate", "--from", "2026-03-01", "--to", "2026-04-01", "--config", h.configPath], umask: nil)
            p.currentDirectoryURL = h.dir
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Fault injection, not synchronisation: the kill lands wherever the rerate happens to be.
            usleep(UInt32.random(in: 5_000 ... 400_000, using: &rng))
            if p.isRunning { kill(p.processIdentifier, SIGKILL); killed += 1 }
            p.waitUntilExit()
        }
        let final = try #require(try h.json(["rerate", "--from", "2026-03-01", "--to", "2026-04-01", "--json"]) as? [String: Any])
        let after = Self.expected(master, deck: Self.timedDeck(v2))
        let meters = try h.meters()
        #expect(meters.count == clients)
        for (u, m) in meters { #expect(Oracle.micro(m["used"] ?? "") == after[u, default: 0], "\(u) after the rerate") }
        #expect(after != before)
        #expect(try #require(try h.json(["quarantine", "list", "--json"]) as? [[String: Any]]).allSatisfy { $0["reason"] as? String != "no_rate" })
        print("rerate: \(killed) of 6 runs killed mid-way; the last run changed \(final["changed"] ?? "?")")

        // A second identical rerate changes nothing.
        let again = try #require(try h.json(["rerate", "--from", "2026-03-01", "--to", "2026-04-01", "--json"]) as? [String: Any])
        #expect(again["changed"] as? Int == 0)
        #expect(again["delta"] as? String == "0")
        #expect(again["quarantine_charged"] as? Int == 0)

        // The statement of every client ends at its meter.
        for (u, m) in meters {
            let st = try #require(try h.json(["clients", "statement", u, "--json"]) as? [String: Any])
            #expect(st["closing"] as? String == m["available"], "\(u)")
            let entries = try #require(st["entries"] as? [[String: Any]])
            #expect(entries.last?["available"] as? String == m["available"])
        }
    }
}

@Suite struct RerateCLITests {
    @Test func usageErrorsAndHelp() throws {
        let h = try Harness()
        #expect(try h.createClient("alice").status == 0)
        let noReason = try h.run(["clients", "adjust", "alice", "-5"])
        #expect(noReason.status == 64 && noReason.stderr.contains("--reason"))
        let below = try h.run(["clients", "adjust", "alice", "-5", "--reason", "take back"])
        #expect(below.status == 65 && below.stderr.contains("below zero"), "\(below.stderr)")
        let badDate = try h.run(["rerate", "--from", "2026-13-01", "--to", "2026-04-01"])
        #expect(badDate.status == 64 && badDate.stderr.contains("--from: '2026-13-01' is not a date"))
        let backwards = try h.run(["rerate", "--from", "2026-04-01", "--to", "2026-03-01"])
        #expect(backwards.status == 64 && backwards.stderr.contains("--to must be later than --from"))
        let both = try h.run(["clients", "statement", "alice", "--json", "--csv"])
        #expect(both.status == 64)
        // The new commands' help: examples, nothing past 80 columns, no example cut across lines.
        for cmd in [["rerate"], ["clients", "adjust"], ["clients", "statement"], ["cdrgen"]] {
            let help = try h.run(cmd + ["--help"], config: false)
            #expect(help.status == 0 && help.stdout.contains("Example"), "\(cmd)")
            let lines = help.stdout.components(separatedBy: "\n").prefix { !$0.hasPrefix("USAGE:") }
            for (line, next) in zip(lines, lines.dropFirst()) {
                #expect(line.count <= 80, "\(cmd): \(line)")
                #expect(!(line.hasPrefix(" ") && !next.isEmpty && !next.hasPrefix(" ")), "\(cmd): example cut: \(line) / \(next)")
            }
        }
        try h.ok(["clients", "recharge", "alice", "20"])
        try h.ok(["clients", "adjust", "alice", "-12.5", "--reason", "recharge booked twice", "--key", "k"])
        let csv = try h.ok(["clients", "statement", "alice", "--csv"]).split(separator: "\n")
        #expect(csv.first == "kind,at,amount,available,destination,billsec,answered_at,old_cost,new_cost,reason,key,priced_by")
        #expect(csv.last?.hasPrefix("adjustment,") == true && csv.last?.contains(",-12.5,7.5,") == true)
        #expect(csv.last?.contains("recharge booked twice,k,") == true)
    }
}

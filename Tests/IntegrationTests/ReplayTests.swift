import Foundation
import Testing

/// The built binary, end to end: clients, replay, ledger totals against an independent oracle.
@Suite(.serialized) struct ReplayTests {
    func clients(_ h: Harness, count: Int, credits: String = "10") throws {
        for i in 1...count {
            let u = String(format: "c%04d", i)
            let r = try h.createClient(u)
            #expect(r.status == 0, "create \(u): \(r.stderr)")
            try h.ok(["clients", "recharge", u, credits])
        }
    }

    @Test func replayChargesExactlyOnceAndMatchesTheOracle() throws {
        let h = try Harness()
        try clients(h, count: 12)
        let file = h.path("Master.csv")
        try h.ok(["cdrgen", "--format", "asterisk-csv", "--count", "3000", "--clients", "12", "--seed", "42", "-o", file])
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let expected = Oracle.expectAsterisk(text, deck: Oracle.deck(Harness.defaultDeck))
        #expect(expected.charged > 1000, "cdrgen should produce mostly billable calls")

        guard let first = try h.json(["replay", "--format", "asterisk-csv", "--json", file]) as? [String: Any] else {
            Issue.record("replay --json did not print an object"); return
        }
        #expect(first["read"] as? Int == 3000)
        #expect(first["charged"] as? Int == expected.charged)
        #expect(first["not_billable"] as? Int == expected.notBillable)
        #expect(first["quarantined"] as? Int == 0)

        let meters = try h.meters()
        #expect(meters.count == 12)
        var total: Int64 = 0
        for (account, used) in expected.usedByAccount {
            total += used
            #expect(meters[account]?["used"] == Oracle.format(used), "used of \(account)")
            #expect(meters[account]?["available"] == Oracle.format(10_000_000 - used), "available of \(account)")
            #expect(meters[account]?["assigned"] == "10")
        }
        #expect(first["cost"] as? String == Oracle.format(total))

        // A second replay of the same file charges nothing and leaves every meter as it was.
        guard let second = try h.json(["replay", "--format", "asterisk-csv", "--json", file]) as? [String: Any] else {
            Issue.record("second replay printed no object"); return
        }
        #expect(second["charged"] as? Int == 0)
        #expect(second["duplicates"] as? Int == expected.charged)
        #expect(try h.meters() == meters)
    }

    @Test func dryRunWritesNothing() throws {
        let h = try Harness()
        try clients(h, count: 3)
        let file = h.path("Master.csv")
        try h.ok(["cdrgen", "--format", "asterisk-csv", "--count", "300", "--clients", "3", "--seed", "9", "-o", file])
        let before = try h.meters()
        guard let dry = try h.json(["replay", "--format", "asterisk-csv", "--dry-run", "--json", file]) as? [String: Any] else {
            Issue.record("no JSON"); return
        }
        #expect((dry["charged"] as? Int ?? 0) > 0)
        #expect(dry["dry_run"] as? Bool == true)
        #expect(try h.meters() == before)
        guard let real = try h.json(["replay", "--format", "asterisk-csv", "--json", file]) as? [String: Any] else {
            Issue.record("no JSON"); return
        }
        #expect(real["charged"] as? Int == dry["charged"] as? Int)
        #expect(real["cost"] as? String == dry["cost"] as? String)
    }

    @Test func garbageIsQuarantinedAndNothingElseChanges() throws {
        let h = try Harness()
        try clients(h, count: 2)
        let good = #""c0001","100","12125550100","out","""Al"" <100>","SIP/100-1","SIP/t-2","Dial","SIP/t","2026-01-01 10:00:00","2026-01-01 10:00:05","2026-01-01 10:01:05",65,60,"ANSWERED","DOCUMENTATION","1767261600.1","","","1767261600.1",1"#
        let text = [good,
                    "this is not a CDR",
                    #""c0002","100","44"#,
                    #""c0002","100","12125550100","out","x","SIP/1","","Dial","","2026-01-01 10:00:00","2026-01-01 10:00:05","2026-01-01 10:01:05",65,sixty,"ANSWERED","DOCUMENTATION","1767261600.2","","","1767261600.2",1"#,
                    #""nobody","100","12125550100","out","x","SIP/1","","Dial","","2026-01-01 10:00:00","2026-01-01 10:00:05","2026-01-01 10:01:05",65,60,"ANSWERED","DOCUMENTATION","1767261600.3","","","1767261600.3",1"#,
                    ""].joined(separator: "\n")
        let file = try h.write("Master.csv", text)
        guard let s = try h.json(["replay", "--format", "asterisk-csv", "--json", file]) as? [String: Any] else {
            Issue.record("no JSON"); return
        }
        #expect(s["read"] as? Int == 5)
        #expect(s["charged"] as? Int == 1)
        #expect(s["quarantined"] as? Int == 4)
        let reasons = s["quarantined_by_reason"] as? [String: Int] ?? [:]
        #expect(reasons["unknown_account"] == 1)
        #expect(reasons.values.reduce(0, +) == 4)
        // 1212 prefix: 0.0099/min, fee 0.001, 30/6 — 60 s → 60 s → 0.001 + 0.0099 = 0.0109
        #expect(try h.meters()["c0001"]?["used"] == "0.0109")
        #expect(try h.meters()["c0002"]?["used"] == "0")

        guard let list = try h.json(["quarantine", "list", "--json"]) as? [[String: Any]] else {
            Issue.record("no quarantine JSON"); return
        }
        #expect(list.count == 4)
        #expect(list.contains { ($0["raw"] as? String) == "this is not a CDR" && ($0["line"] as? Int) == 2 })
        #expect(list.allSatisfy { ($0["source"] as? String) == "replay/asterisk-csv" })

        // Replaying the same file again neither charges nor quarantines anything twice.
        try h.ok(["replay", "--format", "asterisk-csv", file])
        #expect((try h.json(["quarantine", "list", "--json"]) as? [Any])?.count == 4)
        #expect(try h.meters()["c0001"]?["used"] == "0.0109")

        // Once the account exists, retry charges that CDR and only that one.
        let r = try h.createClient("nobody1", accounts: ["nobody"])
        #expect(r.status == 0, "\(r.stderr)")
        let retried = try h.ok(["quarantine", "retry"])
        #expect(retried.contains("charged 1"))
        #expect(try h.meters()["nobody1"]?["used"] == "0.0109")
        #expect((try h.json(["quarantine", "list", "--json"]) as? [Any])?.count == 3)
        let again = try h.ok(["quarantine", "retry"])
        #expect(again.contains("charged 0"))
        #expect(try h.meters()["nobody1"]?["used"] == "0.0109")
    }

    @Test func everySharedSampleReplaysWithoutLoss() throws {
        let h = try Harness()
        let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../shared/cdr-samples").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: samples.path).filter { $0.hasSuffix(".csv") }
        #expect(files.count >= 10)
        for name in files {
            let format: String
            if name.hasPrefix("asterisk_cdr_custom") { continue } // needs a column mapping: covered by parser tests
            else if name.hasPrefix("asterisk") { format = "asterisk-csv" }
            else if name.hasPrefix("freeswitch") { format = "freeswitch-csv" }
            else { continue }
            // Skip the "# source:" line the sample files start with.
            let text = try String(decoding: Data(contentsOf: samples.appendingPathComponent(name)), as: UTF8.self)
            let body = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().joined()
            let raw = try Data(contentsOf: samples.appendingPathComponent(name))
            let cut = raw.firstIndex(of: 0x0A).map { raw.index(after: $0) } ?? raw.startIndex
            let file = h.path(name)
            try raw[cut...].write(to: URL(fileURLWithPath: file))
            let lines = body.split(separator: "\n").filter { !$0.isEmpty }.count
            let r = try h.run(["replay", "--format", format, "--json", file])
            #expect(r.status == 0, "\(name): \(r.stderr)")
            guard let s = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
                Issue.record("\(name): no JSON"); continue
            }
            let read = s["read"] as? Int ?? -1
            let accounted = ["charged", "duplicates", "not_billable", "filtered", "quarantined"]
                .reduce(0) { $0 + (s[$1] as? Int ?? 0) }
            #expect(read == accounted, "\(name): every line is charged, counted or quarantined")
            #expect(read > 0 && read <= lines, "\(name)")
        }
    }
}

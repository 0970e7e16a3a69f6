import Foundation
import Testing
import TestSupport

/// `creditmeter run` against real files on disk: appends, rotations, partial lines, restarts, crashes.
@Suite(.serialized) struct DaemonTests {
    func expectUsed(_ h: Harness, _ lines: [String], clients: Int, _ comment: Comment,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expected = Harness.expectedUsed(lines)
        let got = try h.waitForUsed(expected, clients: clients)
        for i in 1...clients {
            let u = String(format: "c%04d", i)
            #expect(got[u] == Oracle.format(expected[u] ?? 0), "\(comment): used of \(u)", sourceLocation: sourceLocation)
        }
    }

    @Test func appendsWhileRunningAndStopsCleanlyOnSIGTERM() throws {
        let h = try Harness.tailing()
        try h.createClients(5)
        let lines = try h.generate(count: 600, clients: 5, seed: 11)
        try h.append(lines[0..<200])
        let d = try DaemonProcess(h)
        #expect(d.waitForLog("source opened"), "\(d.log)")
        try h.append(lines[200..<400])
        try h.append(lines[400...])
        try expectUsed(h, lines, clients: 5, "after appends")
        #expect(d.terminate() == 0, "SIGTERM exits 0: \(d.log)")
        guard let status = try h.json(["status", "--json"]) as? [String: Any],
              let src = (status["sources"] as? [[String: Any]])?.first else {
            Issue.record("no status"); return
        }
        let size = (try FileManager.default.attributesOfItem(atPath: h.path("Master.csv"))[.size] as? NSNumber)?.int64Value
        #expect((src["offset"] as? NSNumber)?.int64Value == size, "position committed at the end of the file")
        #expect((src["lag_bytes"] as? NSNumber)?.int64Value == 0)
    }

    /// A tailing harness, 900 lines for clients c0001…c0004 from `seed`, the first 300 of them in
    /// Master.csv, and a daemon that has charged those.
    func startedOnFirstPart(seed: Int, _ comment: Comment) throws -> (Harness, [String], DaemonProcess) {
        let h = try Harness.tailing()
        let lines = try h.generate(count: 900, clients: 4, seed: seed)
        try h.createClients(4)
        try h.append(lines[0..<300])
        let d = try DaemonProcess(h)
        #expect(d.waitForLog("source opened"))
        try expectUsed(h, Array(lines[0..<300]), clients: 4, comment)
        return (h, lines, d)
    }

    @Test func partialLastLineWaitsForItsNewline() throws {
        let h = try Harness.tailing()
        try h.createClients(2)
        let line = #""c0001","100","12125550100","out","x","SIP/1","SIP/2","Dial","","2026-01-01 10:00:00","2026-01-01 10:00:05","2026-01-01 10:01:05",65,60,"ANSWERED","DOCUMENTATION","1767261600.1","","","1767261600.1",1"#
        // A complete line for c0002 first: once it is charged, the daemon has read the file to its end,
        // the partial line included, and left that one uncharged.
        let before = #""c0002","100","12125550100","out","x","SIP/1","SIP/2","Dial","","2026-01-01 09:00:00","2026-01-01 09:00:05","2026-01-01 09:01:05",65,60,"ANSWERED","DOCUMENTATION","1767258000.1","","","1767258000.1",1"#
        let cut = line.index(line.startIndex, offsetBy: 100)
        try h.write("Master.csv", before + "\n" + String(line[..<cut]))
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("source opened"))
        _ = try h.waitForUsed(Harness.expectedUsed([before]), clients: 2)
        #expect(try h.meters()["c0001"]?["used"] == "0", "a line without its newline is not charged yet")
        try h.append([String(line[cut...])][...])
        try expectUsed(h, [before, line], clients: 2, "completed line")
    }

    @Test func renameAndCreateRotationDrainsTheOldFile() throws {
        let (h, lines, d) = try startedOnFirstPart(seed: 12, "before rotation")
        defer { _ = d.terminate() }
        try FileManager.default.moveItem(atPath: h.path("Master.csv"), toPath: h.path("Master.csv.1"))
        // FreeSWITCH keeps writing into the renamed file until it is told to reopen; only then does the
        // new file get lines. The old file must be read to its end before it is let go.
        try h.append(lines[300..<600], to: "Master.csv.1")
        usleep(200_000)
        try h.append(lines[600...])
        try expectUsed(h, lines, clients: 4, "after rename+create")
    }

    @Test func copytruncateAndDeleteRecreate() throws {
        let (h, lines, d) = try startedOnFirstPart(seed: 13, "before copytruncate")
        defer { _ = d.terminate() }
        try FileManager.default.copyItem(atPath: h.path("Master.csv"), toPath: h.path("Master.csv.1"))
        truncate(h.path("Master.csv"), 0)
        try h.append(lines[300..<600])
        try expectUsed(h, Array(lines[0..<600]), clients: 4, "after copytruncate")
        try FileManager.default.removeItem(atPath: h.path("Master.csv"))
        usleep(300_000)
        try h.append(lines[600...])
        try expectUsed(h, lines, clients: 4, "after delete and re-create")
    }

    @Test func rotationWhileStoppedIsCaughtUp() throws {
        let (h, lines, first) = try startedOnFirstPart(seed: 14, "first run")
        #expect(first.terminate() == 0)
        // While it is down: more lines in the old file, rotate, lines in the new file.
        try h.append(lines[300..<500])
        try FileManager.default.moveItem(atPath: h.path("Master.csv"), toPath: h.path("Master.csv.1"))
        try h.append(lines[500...])
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        try expectUsed(h, lines, clients: 4, "after restart across a rotation")
    }

    @Test func crashLoopChargesEveryCDRExactlyOnce() throws {
        let h = try Harness.tailing()
        try h.createClients(6)
        let lines = try h.generate(count: 6000, clients: 6, seed: 15)
        var rng = SystemRandomNumberGenerator()
        var written = 0
        var kills = 0
        let chunk = lines.count / 24
        // Small transactions, so that most kills land between or inside commits, not in idle time.
        while written < lines.count {
            let d = try DaemonProcess(h, arguments: ["--batch-lines", "16"])
            let n = min(chunk, lines.count - written)
            try h.append(lines[written..<(written + n)])
            written += n
            // Kill at a random moment: before open, mid-batch, or idle.
            usleep(UInt32.random(in: 0...250_000, using: &rng))
            d.kill9()
            kills += 1
            if kills == 12 {
                // One rotation between crashes, once the old file is fully charged (two rotations while
                // down, with the first file unfinished, is outside what the tailer can see: README).
                let c = try DaemonProcess(h)
                try expectUsed(h, Array(lines[0..<written]), clients: 6, "caught up before rotation")
                c.kill9()
                try FileManager.default.moveItem(atPath: h.path("Master.csv"), toPath: h.path("Master.csv.1"))
            }
        }
        #expect(kills >= 20)
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        try expectUsed(h, lines, clients: 6, "after \(kills) kill -9s")
        guard let q = try h.json(["quarantine", "list", "--json"]) as? [Any] else { return }
        #expect(q.isEmpty, "nothing quarantined")
    }

    @Test func clientAddedWhileRunningIsSeen() throws {
        let (h, d) = try Harness.runningWithOneClient()
        defer { _ = d.terminate() }
        let r = try h.createClient("late", accounts: ["c0002"])
        #expect(r.status == 0)
        let line = #""c0002","100","12125550100","out","x","SIP/1","SIP/2","Dial","","2026-01-01 10:00:00","2026-01-01 10:00:05","2026-01-01 10:01:05",65,60,"ANSWERED","DOCUMENTATION","1767261600.9","","","1767261600.9",1"#
        try h.append([line][...])
        try eventually("late's Used 0.0109", timeout: 10) { try h.meters()["late"]?["used"] == "0.0109" }
    }
}

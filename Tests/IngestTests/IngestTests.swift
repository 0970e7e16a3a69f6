import CDRParser
import Foundation
import Ingest
import Ledger
import MeterCore
import Rater
import Testing
import TestSupport

/// One 16-column Asterisk line: account, destination, start, billsec (answered when billsec > 0).
private func line(_ account: String, _ dst: String, start: String = "2026-03-01 10:00:00", billsec: Int64,
                  channel: String = "SIP/100-0001") -> String {
    let answered = billsec > 0
    return "\"\(account)\",\"100\",\"\(dst)\",\"from-internal\",\"\"\"Ann\"\" <100>\",\"\(channel)\",\"SIP/trunk-1\","
        + "\"Dial\",\"SIP/trunk/\(dst)\",\"\(start)\"," + (answered ? "\"\(start)\"" : "") + ",\"\(start)\","
        + "\(billsec),\(billsec),\"\(answered ? "ANSWERED" : "NO ANSWER")\",\"DOCUMENTATION\""
}

/// A ledger with clients, a deck and a file to replay, all in one temp directory.
private struct Bench {
    let t: TempLedger
    let deck: RateDeck

    init(deck csv: String = "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n*,0.06,0,1,1\n") throws {
        t = try TempLedger()
        deck = try RateDeck.parse(Array(csv.utf8), file: "rates.csv")
    }

    func client(_ username: String, accounts: [String]) throws {
        var f = ClientFields()
        f.email = "\(username)@example.com"
        _ = try t.ledger.createClient(username: username, fields: f, accounts: accounts, plan: "default",
                                      passwordHash: "$y$j9T$notarealsalt$notarealhashnotarealhashnotarealhash", now: 1)
    }

    func metering(maxBillsec: Int64 = Metering.defaultMaxBillsec, extra: [String: AccountOwner] = [:]) throws -> Metering {
        Metering(accountField: .accountcode, directory: try t.ledger.accountDirectory().merging(extra) { a, _ in a },
                 decks: ["default": deck], maxBillsec: maxBillsec)
    }

    func file(_ lines: [String], name: String = "Master.csv") throws -> String {
        let path = t.dir.appendingPathComponent(name).path
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// `extra`: accounts added to the directory as it is read from the store (say, of a client the store
    /// does not have).
    func replay(_ path: String, zone: String = "UTC", maxBillsec: Int64 = Metering.defaultMaxBillsec,
                dryRun: Bool = false, batchSize: Int? = nil, extra: [String: AccountOwner] = [:]) throws -> ReplaySummary {
        let source = try Assembly.adHoc(format: .asteriskCSV, timeZone: TimeZone(identifier: zone) ?? .gmt)
        return try Replayer(batchSize: batchSize).replay(files: [path], source: source,
                                                         metering: try metering(maxBillsec: maxBillsec, extra: extra),
                                                         ledger: t.ledger, dryRun: dryRun, now: 100)
    }

    func used(_ username: String) throws -> Int64 {
        try #require(try t.ledger.client(username: username)).meter.used
    }
}

@Suite struct ReplayTotalsTests {
    // Regression: the summary's id → username map was built with uniqueKeysWithValues over the account
    // directory, which lists a client once per account code, and trapped ("Duplicate values for key").
    @Test(arguments: [false, true])
    func aClientWithSeveralAccountCodesIsOneLineOfTheSummary(dryRun: Bool) throws {
        let b = try Bench()
        defer { b.t.cleanup() }
        try b.client("ann", accounts: ["1001", "1002"])
        try b.client("bob", accounts: ["2001"])
        let path = try b.file([
            line("1001", "4420", billsec: 60, channel: "SIP/1"),
            line("1002", "4420", billsec: 30, channel: "SIP/2"),
            line("2001", "4420", billsec: 10, channel: "SIP/3"),
        ])
        let s = try b.replay(path, dryRun: dryRun)
        #expect(s.charged == 3)
        #expect(s.clients["ann"]?.cdrs == 2 && s.clients["ann"]?.cost == "0.09")
        #expect(s.clients["bob"]?.cdrs == 1 && s.clients["bob"]?.cost == "0.01")
        #expect(s.cost == "0.1")
        #expect(try b.used("ann") == (dryRun ? 0 : 90_000))
    }

    // Regression: the total across clients was summed in Int64 and trapped when two clients' costs did
    // not fit together, though each one's did.
    @Test func theTotalAcrossClientsIsSummedWide() throws {
        let b = try Bench(deck: "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n*,1000000,0,1,1\n")
        defer { b.t.cleanup() }
        try b.client("ann", accounts: ["1001"])
        try b.client("bob", accounts: ["2001"])
        let huge = Int64.max / 2
        let path = try b.file([line("1001", "4420", billsec: huge), line("2001", "4420", billsec: huge)])
        let s = try b.replay(path, maxBillsec: Int64.max)
        #expect(s.charged == 2)
        // Each cost saturates at Int64.max µcr; the two together are 2 × (2^63 - 1) µcr.
        #expect(s.cost == "18446744073709.551614")
        #expect(try b.used("ann") == Int64.max)
        #expect(try b.used("bob") == Int64.max)
    }
}

@Suite struct BillsecLimitTests {
    @Test func billsecAboveTheLimitIsQuarantinedAsImplausible() throws {
        let b = try Bench()
        defer { b.t.cleanup() }
        try b.client("ann", accounts: ["1001"])
        let limit: Int64 = 604_800
        let path = try b.file([
            line("1001", "4420", billsec: limit, channel: "SIP/1"),
            line("1001", "4420", billsec: limit + 1, channel: "SIP/2"),
            line("1001", "4420", billsec: Int64.max, channel: "SIP/3"),
        ])
        let s = try b.replay(path)
        #expect(s.charged == 1)
        #expect(s.quarantinedByReason == ["implausible_duration": 2])
        // 604,800 s at 0.06 per minute.
        #expect(try b.used("ann") == 604_800_000)
        let q = try b.t.ledger.quarantine(limit: nil, reason: "implausible_duration")
        #expect(q.map(\.entry.line) == [2, 3])
        #expect(q.first?.entry.message.contains("[rating] max_billsec (604800)") == true)
    }

    @Test func theLimitIsConfigurable() throws {
        let b = try Bench()
        defer { b.t.cleanup() }
        try b.client("ann", accounts: ["1001"])
        let m = try b.metering(maxBillsec: 100)
        let source = try Assembly.adHoc(format: .asteriskCSV, timeZone: .gmt)
        func outcome(_ billsec: Int64) -> String {
            let text = Array(line("1001", "4420", billsec: billsec).utf8)
            return text.withUnsafeBufferPointer { buf in
                switch m.classify(buf, offset: 0, lineNumber: 1, source: source) {
                case .charge: return "charge"
                case .quarantine(let q): return q.reason
                case .notBillable: return "not billable"
                case .filtered: return "filtered"
                }
            }
        }
        #expect(outcome(100) == "charge")
        #expect(outcome(101) == "implausible_duration")
        // Not billable is decided first: an unanswered record is only counted, whatever its length.
        #expect(outcome(0) == "not billable")
    }
}

@Suite struct DedupeTests {
    // Repeats next to each other (one chunk), far apart (other chunks and batches) and across replays.
    @Test func repeatsAnywhereAreChargedOnce() throws {
        let b = try Bench()
        defer { b.t.cleanup() }
        try b.client("ann", accounts: ["1001", "1002"])
        var lines: [String] = []
        for i in 0..<600 {
            let l = line(i % 2 == 0 ? "1001" : "1002", "4420", start: String(format: "2026-03-01 10:%02d:%02d", i / 60, i % 60),
                         billsec: Int64(1 + i % 7), channel: "SIP/\(i)")
            lines.append(l)
            if i % 3 == 0 { lines.append(l) }            // right after: same chunk
            if i % 50 == 0 { lines.append(lines[i / 2]) } // an earlier one: another chunk or batch
        }
        let path = try b.file(lines)
        let expected = (0..<600).reduce(Int64(0)) { $0 + Int64(1 + $1 % 7) * 1_000 }
        let s = try b.replay(path, batchSize: 97)
        #expect(s.charged == 600)
        #expect(s.duplicates == lines.count - 600)
        #expect(try b.used("ann") == expected)
        let again = try b.replay(path)
        #expect(again.charged == 0)
        #expect(again.duplicates == lines.count)
        #expect(try b.used("ann") == expected)
    }

    // SQLite commits a replay's batches a group at a time. A batch that fails (here: a directory entry
    // for a client the store does not have, so the foreign key refuses its charge) undoes its own group
    // and stops the replay; the groups before it stay, and the same replay run again charges the rest once.
    @Test func aFailedBatchUndoesItsGroupAndKeepsTheGroupsBefore() throws {
        let b = try Bench()
        defer { b.t.cleanup() }
        try b.client("ann", accounts: ["1001"])
        b.t.ledger.bulkGrouping = BulkGrouping(rows: 250, minimumRows: 250, clients: .max)
        var lines: [String] = []
        for i in 0..<1_000 {
            lines.append(line(i == 750 ? "9999" : "1001", "4420", start: String(format: "2026-03-01 %02d:%02d:%02d", i / 3600, i / 60 % 60, i % 60),
                              billsec: Int64(1 + i % 5), channel: "SIP/\(i)"))
        }
        let path = try b.file(lines)
        let ghost = ["9999": AccountOwner(clientID: 999_999, username: "ghost", plan: "default", status: .active)]
        // Batches of 100 lines, groups of 3 batches (300 rows ≥ 250): groups 1 and 2 commit, the third
        // holds lines 600–899 and fails at the batch of line 750.
        #expect(throws: LedgerError.self) { _ = try b.replay(path, batchSize: 100, extra: ghost) }
        #expect(try b.t.ledger.totals().usageRows == 600)
        let cost = { (range: Range<Int>) in range.filter { $0 != 750 }.reduce(Int64(0)) { $0 + Int64(1 + $1 % 5) * 1_000 } }
        #expect(try b.used("ann") == cost(0..<600))
        let rest = try b.replay(path, batchSize: 100)
        #expect(rest.charged == 399 && rest.duplicates == 600 && rest.quarantined == 1)
        #expect(try b.used("ann") == cost(0..<1_000))
    }

    // A group that has charged many clients ends at its minimum size: each client charged keeps a leaf
    // of the index by client dirty until the commit. Batches of 100 lines charge one client each, in
    // turn; with a limit of one client a group holds two batches, so the failure in the fourth batch
    // keeps the first two. Without the limit the whole file would be one group and nothing kept.
    @Test func aGroupThatChargedManyClientsEndsAtItsMinimumSize() throws {
        let b = try Bench()
        defer { b.t.cleanup() }
        for (k, code) in ["1001", "1002", "1003"].enumerated() { try b.client("client\(k)", accounts: [code]) }
        var lines: [String] = []
        for i in 0..<1_000 {
            let code = i == 350 ? "9999" : ["1001", "1002", "1003"][i / 100 % 3]
            lines.append(line(code, "4420", start: String(format: "2026-03-01 %02d:%02d:%02d", i / 3600, i / 60 % 60, i % 60),
                              billsec: 1, channel: "SIP/\(i)"))
        }
        let path = try b.file(lines)
        let ghost = ["9999": AccountOwner(clientID: 999_999, username: "ghost", plan: "default", status: .active)]
        b.t.ledger.bulkGrouping = BulkGrouping(rows: 10_000, minimumRows: 100, clients: 1)
        #expect(throws: LedgerError.self) { _ = try b.replay(path, batchSize: 100, extra: ghost) }
        #expect(try b.t.ledger.totals().usageRows == 200)
        b.t.ledger.bulkGrouping = BulkGrouping(rows: 10_000, minimumRows: 100, clients: .max)
        #expect(throws: LedgerError.self) { _ = try b.replay(path, batchSize: 100, extra: ghost) }
        #expect(try b.t.ledger.totals().usageRows == 200, "one group of the whole file: nothing more kept")
        let rest = try b.replay(path, batchSize: 100)
        #expect(rest.charged == 799 && rest.duplicates == 200 && rest.quarantined == 1)
    }

    // The dedupe key's start is read from the record's bytes, not through the source's zone: the same
    // file replayed as another zone is still the same calls.
    @Test func replayingInAnotherTimeZoneChargesNothing() throws {
        let b = try Bench()
        defer { b.t.cleanup() }
        try b.client("ann", accounts: ["1001"])
        let path = try b.file((0..<10).map { line("1001", "4420", start: "2026-03-29 0\($0):30:00", billsec: 60, channel: "SIP/\($0)") })
        #expect(try b.replay(path, zone: "UTC").charged == 10)
        let other = try b.replay(path, zone: "Europe/Berlin")
        #expect(other.charged == 0)
        #expect(other.duplicates == 10)
    }

    // A line quarantined for its account is charged once the account exists, and leaves the quarantine.
    @Test func aLaterChargeReleasesTheQuarantinedLine() throws {
        let b = try Bench()
        defer { b.t.cleanup() }
        try b.client("ann", accounts: ["1001"])
        let path = try b.file([line("1001", "4420", billsec: 60, channel: "SIP/1"), line("3001", "4420", billsec: 60, channel: "SIP/2")])
        #expect(try b.replay(path).quarantinedByReason == ["unknown_account": 1])
        try b.client("cyd", accounts: ["3001"])
        let s = try b.replay(path)
        #expect(s.charged == 1)
        #expect(s.duplicates == 1)
        #expect(try b.t.ledger.quarantineCount() == 0)
        // And a charged identity is not quarantined again.
        #expect(try b.replay(path).quarantined == 0)
        #expect(try b.t.ledger.quarantineCount() == 0)
    }
}

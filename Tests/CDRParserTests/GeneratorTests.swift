import CDRGen
import CDRParser
import Testing

@Suite struct GeneratorTests {
    static let start: Int64 = 1_706_745_600   // 2024-02-01 00:00:00 UTC

    static func calls(_ format: CDRFormat, seed: UInt64, count: Int, clients: Int = 50) -> [[String]] {
        var g = CDRGenerator(format: format, clients: clients, seed: seed, start: start)
        return (0..<count).map { _ in g.next() }
    }

    static func parser(_ format: CDRFormat) throws -> CDRParser {
        try CDRParser(ParserOptions(format: format, columns: format == .csv ? CDRGenerator.csvColumns : nil))
    }

    @Test(arguments: [CDRFormat.asteriskCSV, .freeswitchCSV, .jsonl])
    func sameSeedSameLinesOtherSeedOtherLines(_ format: CDRFormat) {
        let a = Self.calls(format, seed: 42, count: 300)
        #expect(a == Self.calls(format, seed: 42, count: 300))
        let b = Self.calls(format, seed: 43, count: 300)
        #expect(a != b)
        #expect(Set(a.joined()).intersection(b.joined()).isEmpty)
    }

    @Test func accountCodes() {
        #expect(CDRGenerator.accountCode(1) == "c0001")
        #expect(CDRGenerator.accountCode(42) == "c0042")
        #expect(CDRGenerator.accountCode(9999) == "c9999")
        #expect(CDRGenerator.accountCode(12345) == "c12345")
    }

    @Test(arguments: [CDRFormat.asteriskCSV, .freeswitchCSV, .csv, .jsonl])
    func everyLineParsesWithUniqueIdentity(_ format: CDRFormat) throws {
        let parser = try Self.parser(format)
        let clients = 40
        let valid = Set((1...clients).map(CDRGenerator.accountCode))
        var identities: Set<String> = []
        var lines = 0
        var lastStart: Int64 = 0
        for call in Self.calls(format, seed: 7, count: 4000, clients: clients) {
            #expect((1...3).contains(call.count))
            for line in call {
                lines += 1
                let cdr: CDR
                switch parser.parse(Array(line.utf8)) {
                case .success(let c): cdr = c
                case .failure(let f):
                    Issue.record("\(format.rawValue) line does not parse (\(f)): \(line)")
                    continue
                }
                #expect(identities.insert(cdr.identity).inserted, "duplicate identity \(cdr.identity)")
                #expect(valid.contains(cdr.account()))
                let d = cdr.dst.hasPrefix("+") ? String(cdr.dst.dropFirst()) : cdr.dst
                #expect(CDRGenerator.destinationPrefixes.contains { d.hasPrefix($0) }, "dst \(cdr.dst)")
                let start = try #require(cdr.startEpoch)
                #expect(start >= Self.start)
                lastStart = max(lastStart, start)
                if format == .asteriskCSV || format == .csv {
                    #expect(cdr.identity.hasPrefix("ast:"))
                } else if format == .freeswitchCSV {
                    #expect(cdr.identity.hasPrefix("fs:"))
                }
            }
        }
        #expect(lines > 4000)
        #expect(lastStart > Self.start + 3600)   // calls spread over time
    }

    @Test func asteriskMixIsRoughlyAsDocumented() throws {
        let parser = try Self.parser(.asteriskCSV)
        let calls = Self.calls(.asteriskCSV, seed: 99, count: 10_000, clients: 100)
        let cdrs = try calls.flatMap { try $0.map { try parser.parse(Array($0.utf8)).get() } }
        // Dispositions by call (the first line of each call carries the outcome).
        let firsts = try calls.map { try parser.parse(Array($0[0].utf8)).get() }
        func share(_ d: String) -> Double {
            Double(firsts.filter { $0.value(.disposition) == d }.count) / Double(firsts.count)
        }
        #expect(abs(share("ANSWERED") - 0.70) < 0.03)
        #expect(abs(share("NO ANSWER") - 0.15) < 0.02)
        #expect(abs(share("BUSY") - 0.08) < 0.02)
        #expect(abs(share("FAILED") - 0.07) < 0.02)
        // Every line is written with all 21 columns.
        #expect(cdrs.allSatisfy { $0.has(.linkedid) && $0.has(.sequence) && $0.has(.peeraccount) })
        // Some lines have billsec > 0 without being answered; FAILED ones never have billsec.
        #expect(cdrs.contains { !$0.isAnswered && $0.billableSeconds > 0 })
        #expect(cdrs.filter { $0.value(.disposition) == "FAILED" }.allSatisfy { $0.billableSeconds == 0 && $0.value(.answer) == "" })
        #expect(cdrs.filter { $0.value(.disposition) == "NO ANSWER" && $0.billableSeconds == 0 }.allSatisfy { $0.value(.answer) == "" })
        // Durations: mostly 10–300 s, a long tail up to an hour, and never past it.
        let billed = cdrs.filter(\.isBillable).map(\.billableSeconds)
        let mid = billed.filter { (10...300).contains($0) }.count
        #expect(Double(mid) / Double(billed.count) > 0.7)
        #expect(billed.contains { $0 > 1800 })
        #expect(billed.allSatisfy { $0 <= 3600 })
        // Destinations: national, + international and internal extensions all occur.
        #expect(cdrs.contains { $0.dst.hasPrefix("+") })
        #expect(cdrs.contains { $0.dst.hasPrefix("1") && $0.dst.count == 11 })
        #expect(cdrs.contains { $0.dst.hasPrefix("2") && $0.dst.count == 3 })
        // Multi-line calls share a linkedid; Local halves and transfers both occur.
        let multi = calls.filter { $0.count > 1 }
        #expect(multi.count > 300 && multi.count < 1500)
        #expect(calls.contains { $0.count == 3 } && calls.contains { $0.count == 2 })
        for call in multi.prefix(50) {
            let ids = Set(try call.map { try parser.parse(Array($0.utf8)).get().value(.linkedid) })
            #expect(ids.count == 1)
        }
        #expect(cdrs.contains { $0.value(.channel)?.hasSuffix(";2") == true && $0.billableSeconds == 0 })
        // Caller names with quoted commas and "" escapes round-trip.
        #expect(cdrs.contains { $0.value(.clid) == "\"Smith, John\" <1002>" })
        #expect(cdrs.contains { $0.value(.clid)?.hasPrefix("\"Bob \"the\" Builder\"") == true })
        #expect(calls.joined().contains { $0.contains("\"\"Bob \"\"the\"\" Builder\"\"") })
    }

    @Test func freeswitchMix() throws {
        let parser = try Self.parser(.freeswitchCSV)
        let calls = Self.calls(.freeswitchCSV, seed: 5, count: 5000, clients: 30)
        let cdrs = try calls.flatMap { try $0.map { try parser.parse(Array($0.utf8)).get() } }
        let answered = Double(cdrs.filter(\.isAnswered).count) / Double(cdrs.count)
        #expect(answered > 0.66 && answered < 0.76)
        // An unanswered leg has an empty answer_stamp and no billsec.
        #expect(cdrs.filter { !$0.isAnswered }.allSatisfy { $0.value(.answer) == "" && $0.billableSeconds == 0 })
        let causes = Set(cdrs.compactMap { $0.value(.hangupCause) })
        #expect(causes.isSuperset(of: ["NORMAL_CLEARING", "USER_BUSY", "ORIGINATOR_CANCEL", "UNALLOCATED_NUMBER"]))
        // Unescaped quotes in caller names, as mod_cdr_csv writes them, parse back intact.
        #expect(calls.joined().contains { $0.hasPrefix("\"Bob \"the\" Builder\",") })
        #expect(cdrs.contains { $0.value(.callerIDName) == "Bob \"the\" Builder" })
        #expect(cdrs.contains { $0.value(.callerIDName) == "\"Boss\"" })
        // Transfers: the A-leg's bleg_uuid is the next line's uuid.
        let transfers = calls.filter { $0.count == 2 }
        #expect(!transfers.isEmpty)
        for call in transfers.prefix(20) {
            let a = try parser.parse(Array(call[0].utf8)).get(), b = try parser.parse(Array(call[1].utf8)).get()
            #expect(a.value(.blegUUID) == b.value(.uuid))
            #expect(a.isBillable && b.isBillable)
        }
    }
}

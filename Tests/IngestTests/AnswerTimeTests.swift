import CDRParser
import Foundation
import Ingest
import MeterCore
import Rater
@testable import Ledger
import Testing

/// The moment that selects a rate row is the answer time, not the start.
@Suite struct AnswerTimeTests {
    static let deckCSV = """
        prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,time_from,time_to
        44,0.60,0,1,1,08:00,18:00
        44,0.06,0,1,1,18:00,24:00
        44,0.06,0,1,1,00:00,08:00

        """

    static func asterisk(start: String, answer: String, end: String, billsec: Int64) -> String {
        "\"alice\",\"100\",\"4420\",\"from-internal\",\"\"\"Ann\"\" <100>\",\"SIP/100-0001\",\"SIP/trunk-1\","
            + "\"Dial\",\"SIP/trunk/4420\",\"\(start)\"," + (answer.isEmpty ? "" : "\"\(answer)\"") + ",\"\(end)\","
            + "\(billsec + 10),\(billsec),\"ANSWERED\",\"DOCUMENTATION\""
    }

    static func parse(_ line: String, _ options: ParserOptions) throws -> CDR {
        try CDRParser(options).parse(Array(line.utf8)).get()
    }

    static let at1759 = CivilTime.daysFromCivil(2026, 3, 2) * 86_400 + 17 * 3600 + 59 * 60

    @Test func asteriskAnswerFreeswitchAnswerStampAndEndMinusBillsec() throws {
        let ast = ParserOptions(format: .asteriskCSV)
        let a = try Self.parse(Self.asterisk(start: "2026-03-02 17:58:00", answer: "2026-03-02 17:59:00",
                                             end: "2026-03-02 18:01:00", billsec: 120), ast)
        #expect(a.startEpoch == Self.at1759 - 60)
        #expect(a.answeredAt == Self.at1759)
        // No answer field: end − billsec.
        let b = try Self.parse(Self.asterisk(start: "2026-03-02 17:58:00", answer: "",
                                             end: "2026-03-02 18:01:00", billsec: 120), ast)
        #expect(b.answeredAt == Self.at1759)
        // The source's zone applies to the answer as to the start.
        let ny = ParserOptions(format: .asteriskCSV, timeZone: TimeZone(identifier: "America/New_York") ?? .gmt)
        let c = try Self.parse(Self.asterisk(start: "2026-03-02 12:58:00", answer: "2026-03-02 12:59:00",
                                             end: "2026-03-02 13:01:00", billsec: 120), ny)
        #expect(c.answeredAt == Self.at1759)
        let fs = try Self.parse("\"Alice\",\"1001\",\"4420\",\"default\",\"2026-03-02 17:58:00\",\"2026-03-02 17:59:00\","
                                + "\"2026-03-02 18:01:00\",\"180\",\"120\",\"NORMAL_CLEARING\",\"u-1\",\"\",\"alice\",\"PCMU\",\"PCMU\"",
                                ParserOptions(format: .freeswitchCSV))
        #expect(fs.answeredAt == Self.at1759)
    }

    @Test func meteringPricesByTheAnswerMoment() throws {
        let deck = try RateDeck.parse(Array(Self.deckCSV.utf8), file: "rates.csv")
        let owner = AccountOwner(clientID: 1, username: "alice", plan: "default", status: .active)
        let metering = Metering(accountField: .accountcode, directory: ["alice": owner], decks: ["default": deck])
        let source = SourceSettings(name: "t", parser: try CDRParser(ParserOptions(format: .asteriskCSV)), filter: nil)
        func cost(_ line: String) -> (Int64, String?)? {
            let bytes = Array(line.utf8)
            let out = bytes.withUnsafeBufferPointer { metering.classify($0, offset: 0, lineNumber: 1, source: source) }
            guard case .charge(let c) = out else { return nil }
            return (c.cost, c.pricedBy)
        }
        // Started in peak, answered after 18:00: the evening row prices it.
        let evening = try #require(cost(Self.asterisk(start: "2026-03-02 17:59:30", answer: "2026-03-02 18:00:05",
                                                      end: "2026-03-02 18:01:05", billsec: 60)))
        #expect(evening.0 == 60_000)
        #expect(evening.1?.contains("\"time_from\":\"18:00\"") == true)
        #expect(evening.1?.contains("\"line\":3") == true)
        // Answered one second before 18:00: peak.
        #expect(cost(Self.asterisk(start: "2026-03-02 17:59:00", answer: "2026-03-02 17:59:59",
                                   end: "2026-03-02 18:00:59", billsec: 60))?.0 == 600_000)
    }
}

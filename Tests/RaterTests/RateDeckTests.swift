import Testing
import TestSupport
import MeterCore
@testable import Rater
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Rate deck parsing, validation and longest-prefix lookup.
@Suite struct RateDeckTests {
    static let header = "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,description\n"

    static func deck(_ body: String, header: String = header) throws -> RateDeck {
        try RateDeck.parse(Array((header + body).utf8), file: "rates.csv")
    }

    static func error(_ text: String) -> RateDeckError? {
        do {
            _ = try RateDeck.parse(Array(text.utf8), file: "rates.csv")
            return nil
        } catch {
            return error
        }
    }

    @Test func parsesRowsAndQuotedDescriptions() throws {
        let d = try Self.deck(#"""
            44,0.02,0,30,6,"United Kingdom, fixed"
            447,0.05,0.01,60,60,"UK ""mobile"""

            1,0.006,0,6,6,
            """#)
        #expect(d.count == 3)
        let uk = try #require(d.match("441234"))
        #expect(uk.prefix == "44")
        #expect(uk.ratePerMinute == 20_000)
        #expect(uk.description == "United Kingdom, fixed")
        let mob = try #require(d.match("447700900123"))
        #expect(mob.connectFee == 10_000)
        #expect(mob.initialIncrement == 60)
        #expect(mob.description == "UK \"mobile\"")
        #expect(d.match("12125550100")?.description == "")
    }

    @Test func headerWithoutDescriptionCRLFAndBOM() throws {
        let text = "\u{FEFF}prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\r\n1,0.006,0,30,6\r\n\r\n"
        let d = try RateDeck.parse(Array(text.utf8), file: "x.csv")
        #expect(d.count == 1)
        #expect(d.match("1555")?.subsequentIncrement == 6)
    }

    @Test func longestPrefixWins() throws {
        let d = try Self.deck("""
            4,1,0,1,1,four
            44,2,0,1,1,uk
            4420,3,0,1,1,london
            44207,4,0,1,1,central
            443,5,0,1,1,other
            """)
        #expect(d.match("44207946000")?.description == "central")
        #expect(d.match("44208")?.description == "london")
        #expect(d.match("4430")?.description == "other")
        #expect(d.match("449")?.description == "uk")
        #expect(d.match("45")?.description == "four")
        #expect(d.match("4")?.description == "four")
        #expect(d.match("5") == nil)       // no catch-all here
        #expect(d.match("") == nil)
        #expect(d.match("44")?.description == "uk")
    }

    @Test func catchAllStarOrEmpty() throws {
        let star = try Self.deck("*,9,0,1,1,any\n1,1,0,1,1,nanp\n")
        #expect(star.match("999")?.description == "any")
        #expect(star.match("")?.description == "any")
        #expect(star.match("1")?.description == "nanp")
        #expect(star.match("sip:3500@host")?.description == "any")
        let empty = try Self.deck(",9,0,1,1,any\n")
        #expect(empty.match("123")?.description == "any")
        #expect(empty.match("123")?.isCatchAll == true)
        // "*97" is a feature code prefix, not a catch-all.
        let feature = try Self.deck("*97,0,0,1,1,voicemail\n")
        #expect(feature.match("*97")?.description == "voicemail")
        #expect(feature.match("97") == nil)
    }

    @Test func plusIsStrippedOnce() throws {
        let d = try Self.deck("+44,2,0,1,1,uk\n1,1,0,1,1,nanp\n")
        #expect(d.match("+441234")?.description == "uk")
        #expect(d.match("441234")?.description == "uk")
        #expect(d.match("++441234") == nil)
        #expect(d.match("+1555")?.description == "nanp")
        #expect(d.rows.map(\.prefix).sorted() == ["1", "44"])
    }

    @Test func nonDigitDestinationsMatchByPlainPrefix() throws {
        let d = try Self.deck("sip:35,1,0,1,1,ext35\nsip:,2,0,1,1,sip\n3500,3,0,1,1,digits\n")
        #expect(d.match("sip:3500@host")?.description == "ext35")
        #expect(d.match("sip:4000@host")?.description == "sip")
        #expect(d.match("3500")?.description == "digits")
        #expect(d.match("s") == nil)
    }

    @Test func substringsAndStringsMatchAlike() throws {
        let d = try Self.deck("44,2,0,1,1,uk\n")
        let s = "xx+4412"
        #expect(d.match(s.dropFirst(2))?.description == "uk")
        let bytes: [UInt8] = Array("+4412".utf8)
        #expect(bytes.withUnsafeBufferPointer { d.match(bytes: $0) }?.description == "uk")
    }

    @Test func initFromRowsRejectsDuplicates() throws {
        let ok = try RateDeck(rows: [RateRow(prefix: "1", ratePerMinute: 1), RateRow(prefix: "*", ratePerMinute: 2)])
        #expect(ok.match("2")?.ratePerMinute == 2)
        #expect(throws: RateDeckError.self) {
            try RateDeck(rows: [RateRow(prefix: "", ratePerMinute: 1), RateRow(prefix: "*", ratePerMinute: 2)])
        }
        #expect(throws: RateDeckError.self) {
            try RateDeck(rows: [RateRow(prefix: "+1", ratePerMinute: 1), RateRow(prefix: "1", ratePerMinute: 2)])
        }
    }

    @Test func duplicateInFileNamesBothLines() throws {
        let e = try #require(Self.error(Self.header + "1,1,0,1,1\n2,1,0,1,1\n1,2,0,1,1\n"))
        #expect(e.line == 4)
        #expect(e.column == "prefix")
        #expect(e.message.contains("line 2"))
    }

    @Test("bad rows name the line and column", arguments: [
        ("1,0.0000001,0,1,1\n", "rate_per_minute", "has more than 6 fractional digits"),
        ("1,-1,0,1,1\n", "rate_per_minute", "must not be negative"),
        ("1,abc,0,1,1\n", "rate_per_minute", "invalid character"),
        ("1,1,,1,1\n", "connect_fee", "is empty"),
        ("1,1,-0.5,1,1\n", "connect_fee", "must not be negative"),
        ("1,1,0,-1,1\n", "initial_increment", "whole number"),
        ("1,1,0,1.5,1\n", "initial_increment", "whole number"),
        ("1,1,0,1,0\n", "subsequent_increment", "at least 1"),
        ("1,1,0,1,\n", "subsequent_increment", "is empty"),
        ("1,1,0,1,99999999999999999999\n", "subsequent_increment", "too large"),
        ("1 2,1,0,1,1\n", "prefix", "invalid character"),
        ("+,1,0,1,1\n", "prefix", "only '+'"),
        ("1,1,0,1,1,\"open\n", "description", "unterminated"),
        ("\"1\"x,1,0,1,1\n", "prefix", "after the closing quote"),
        ("1,1,0,1\n", "", "found 4"),
        ("1,1,0,1,1,d,extra\n", "", "found 7"),
    ])
    func badRow(row: String, column: String, fragment: String) throws {
        let e = try #require(Self.error(Self.header + "# a comment\n9,1,0,1,1\n" + row))
        expectRowError(e, line: 4, column: column, fragment: fragment)
    }

    @Test func errorDescriptionShape() throws {
        let e = try #require(Self.error(Self.header + "\n\n1,0.1234567,0,1,1\n"))
        #expect(e.description == "rates.csv:4: column rate_per_minute: has more than 6 fractional digits")
        let h = try #require(Self.error("prefix,rate,connect_fee\n1,1,0\n"))
        #expect(h.line == 1)
        #expect(h.description.hasPrefix("rates.csv:1: the header must be prefix,rate_per_minute,"))
        let none = try #require(Self.error("\n\n"))
        #expect(none.line == 0)
        #expect(none.description.hasPrefix("rates.csv: no header line"))
    }

    @Test func fiveColumnHeaderRejectsSixColumnRows() throws {
        let fiveHeader = "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n"
        let e = try #require(Self.error(fiveHeader + "1,1,0,1,1,desc\n"))
        #expect(e.line == 2)
        #expect(e.message.contains("expected 5 columns"))
    }

    @Test func headerOnlyIsAnEmptyDeck() throws {
        let d = try Self.deck("")
        #expect(d.count == 0)
        #expect(d.match("1") == nil)
    }

    @Test func loadMissingFileNamesIt() {
        do {
            _ = try RateDeck.load(path: "/nonexistent/dir/rates.csv")
            Issue.record("expected an error")
        } catch {
            #expect(error.file == "/nonexistent/dir/rates.csv")
            #expect(error.description.hasPrefix("/nonexistent/dir/rates.csv: cannot open: "))
        }
    }

    @Test func loadSampleDeck() throws {
        let d = try RateDeck.load(path: #filePath.replacingOccurrences(of: "Tests/RaterTests/RateDeckTests.swift",
                                                                       with: "samples/rates/rates.csv"))
        #expect(d.count > 5)
        let r = try #require(d.match("+14155550100"))
        #expect(Rating.cost(r, billsec: 32).cost > 0)
        #expect(d.match("999999") != nil)  // the sample has a catch-all
    }

    /// A 100k-prefix deck must load fast; only correctness is asserted (timing is printed for eyes).
    @Test func hundredThousandPrefixes() throws {
        var rng = SplitMix64(seed: 42)
        var text = Self.header
        var prefixes = Set<String>()
        while prefixes.count < 100_000 {
            let len = 2 + Int(rng.next() % 9)
            var p = ""
            for _ in 0 ..< len { p.append(Character(Unicode.Scalar(UInt8(48 + rng.next() % 10)))) }
            prefixes.insert(p)
        }
        let list = Array(prefixes)
        for (n, p) in list.enumerated() {
            text += "\(p),0.\(String(format: "%06d", n % 1_000_000)),0,30,6,row \(n)\n"
        }
        let (d, took) = try parseBigDeck(text)
        // Debug build timing, for information only.
        print("100k-prefix deck parsed in \(took)")
        #expect(d.count == 100_000)
        // Every prefix finds itself, and a longer destination finds its longest prefix.
        for p in list.prefix(2000) {
            #expect(d.match(p)?.prefix == p)
            let longer = p + "5"
            let expect = (1 ... longer.count).reversed().lazy
                .map { String(longer.prefix($0)) }.first { prefixes.contains($0) }
            #expect(d.match(longer)?.prefix == expect)
        }
    }
}

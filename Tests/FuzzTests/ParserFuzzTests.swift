import CDRGen
import CDRParser
import Foundation
import MeterCore
import Rater
import Testing

extension Fuzz {
    /// Every CDR format's parser, fed mutated real lines: it never crashes or hangs, answers each line
    /// with a CDR or a `ParseFailure` that has a known reason and a message, answers the same line the same
    /// way twice, and every CDR it returns is self-consistent and can be rated.
    @Suite struct ParserFuzzTests {
        struct Target {
            var name: String
            var options: ParserOptions
            var corpus: [[UInt8]]
            var delimiter: UInt8 = UInt8(ascii: ",")
        }

        static let utc = TimeZone(identifier: "UTC") ?? .gmt
        static let reasons: Set<String> = ["bad_line", "column_count", "bad_number", "bad_time", "bad_json", "missing_field"]
        static let deck: RateDeck? = try? RateDeck.parse(Array(Corpus.text("samples/rates/rates.csv").utf8), file: "rates.csv")
        /// Per target: enough to cover every mutation many times over in a few seconds of a debug build.
        static let defaultCount = 5_000

        static let targets: [Target] = [
            Target(name: "asterisk-csv", options: ParserOptions(format: .asteriskCSV, timeZone: utc),
                   corpus: Corpus.asterisk + Corpus.freeswitch.prefix(5)),
            Target(name: "asterisk-csv-extra", options: ParserOptions(format: .asteriskCSV, extra: ["uniqueid", "userfield"],
                                                                      timeZone: TimeZone(identifier: "America/New_York") ?? utc),
                   corpus: Corpus.asterisk),
            Target(name: "freeswitch-csv", options: ParserOptions(format: .freeswitchCSV, timeZone: utc),
                   corpus: Corpus.freeswitch + Corpus.asterisk.prefix(5)),
            Target(name: "freeswitch-csv-columns",
                   options: ParserOptions(format: .freeswitchCSV,
                                          columns: ["caller_id_name", "src", "dst", "dcontext", "start", "answer", "end",
                                                    "duration", "billmsec", "hangup_cause", "uuid", "bleg_uuid", "accountcode",
                                                    "", "-"],
                                          timeZone: TimeZone(identifier: "Europe/Berlin") ?? utc),
                   corpus: Corpus.freeswitch),
            Target(name: "csv-mapping",
                   options: ParserOptions(format: .csv,
                                          columns: ["clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata",
                                                    "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
                                                    "accountcode", "uniqueid", "userfield", "sequence"],
                                          timeZone: utc),
                   corpus: Corpus.custom + Corpus.asterisk.prefix(20)),
            Target(name: "csv-pipe",
                   options: ParserOptions(format: .csv, columns: CDRGenerator.csvColumns, delimiter: UInt8(ascii: "|"),
                                          timeZone: TimeZone(identifier: "Europe/Berlin") ?? utc),
                   corpus: Corpus.redelimited(Corpus.generated(.asteriskCSV, calls: 80), UInt8(ascii: "|")),
                   delimiter: UInt8(ascii: "|")),
            Target(name: "jsonl", options: ParserOptions(format: .jsonl, timeZone: utc), corpus: Corpus.jsonl),
        ]

        @Test func corpusIsThere() {
            #expect(Corpus.asterisk.count > 300, "asterisk corpus (cdr-samples + cdrgen)")
            #expect(Corpus.freeswitch.count > 300, "freeswitch corpus")
            #expect(!Corpus.custom.isEmpty, "cdr_custom sample")
            #expect(Self.deck != nil, "samples/rates/rates.csv parses")
        }

        @Test(arguments: targets.map(\.name))
        func parser(_ name: String) throws {
            let target = try #require(Self.targets.first { $0.name == name })
            let parser = try CDRParser(target.options)
            let report = fuzz(name, count: Self.defaultCount, generate: { rng, _ in
                Self.input(&rng, target)
            }, check: { input in
                Self.check(parser, input)
            })
            #expect(report.violations.isEmpty)
            // Not a property, a sanity check on the generator: mutations must not make every line fail.
            #expect(report.accepted > report.cases / 20, "\(name): the mutated corpus still parses sometimes")
            #expect(report.rejected > report.cases / 20, "\(name): the mutations do break lines")
        }

        /// Mostly mutated corpus lines; some unmutated, some pure random bytes.
        static func input(_ rng: inout FuzzRNG, _ t: Target) -> [UInt8] {
            let roll = rng.below(100)
            if roll < 4 { return (0..<rng.below(400)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            let seed = t.corpus.isEmpty ? [] : rng.pick(t.corpus)
            if roll < 10 { return seed }
            var m = Mutator(rng: FuzzRNG(seed: rng.next()), corpus: t.corpus, delimiter: t.delimiter)
            return m.mutate(seed)
        }

        /// The properties every parse must have; the first one broken is the violation.
        static func check(_ parser: CDRParser, _ input: [UInt8]) -> FuzzOutcome {
            let first = parser.parse(input)
            // Pure: the same line gives the same answer (uninitialised storage would show up here).
            let second = input.withUnsafeBufferPointer { parser.parse($0) }
            guard first == second else { return .violation("two parses of the same line differ: \(first) vs \(second)") }
            switch first {
            case .failure(let f):
                guard reasons.contains(f.reason) else { return .violation("unknown failure reason \(f.reason)") }
                guard !f.message.isEmpty else { return .violation("\(f.reason) without a message") }
                return .rejected
            case .success(let cdr):
                return properties(cdr, parser)
            }
        }

        static func properties(_ cdr: CDR, _ parser: CDRParser) -> FuzzOutcome {
            guard cdr.billableSeconds >= 0 else { return .violation("billableSeconds \(cdr.billableSeconds) < 0") }
            guard !cdr.identity.isEmpty else { return .violation("empty identity") }
            guard cdr.identity.hasPrefix("ast:") || cdr.identity.hasPrefix("fs:") || cdr.identity.hasPrefix("h:") else {
                return .violation("identity \(cdr.identity) has no known kind")
            }
            if cdr.identity.hasPrefix("h:"), cdr.identity.utf8.count != 34 {
                return .violation("hash identity \(cdr.identity) is not h: + 32 hex digits")
            }
            guard cdr.has(.dst) else { return .violation("a CDR without a dst field") }
            guard cdr.has(.billsec) || cdr.has(.billmsec) else { return .violation("a CDR without billsec or billmsec") }
            guard cdr.format == parser.options.format else { return .violation("format \(cdr.format) from a \(parser.options.format) parser") }
            if cdr.isBillable, !(cdr.isAnswered && cdr.billableSeconds > 0) { return .violation("billable but not answered with seconds") }
            // Every field is readable, as the quarantine view and JSON output read them.
            let fields = cdr.fields
            for (f, v) in fields where cdr.value(f) != v { return .violation("field \(f) reads differently twice") }
            if let s = cdr.startEpoch, parser.epoch(.start, of: cdr) != s {
                return .violation("startEpoch \(s) but epoch(.start) \(String(describing: parser.epoch(.start, of: cdr)))")
            }
            _ = parser.epoch(.answer, of: cdr)
            _ = parser.epoch(.end, of: cdr)
            _ = cdr.account(for: .accountcode)
            // Rating what the parser produced: a non-negative cost, never fewer charged seconds than billed.
            if let deck, let row = deck.match(cdr.dst) {
                let (charged, cost) = Rating.cost(row, billsec: cdr.billableSeconds)
                guard cost >= 0, charged >= 0 else { return .violation("negative rating: \(charged) s, \(cost) µcr") }
                if cdr.billableSeconds > 0, charged < cdr.billableSeconds {
                    return .violation("charged \(charged) s for \(cdr.billableSeconds) billable s")
                }
            }
            return .accepted
        }

        /// Inputs kept because they once broke something or sit exactly on a limit; each must pass `check`.
        @Test(arguments: RegressionCases.cdrLines)
        func regression(_ c: RegressionCases.Line) throws {
            let target = try #require(Self.targets.first { $0.name == c.target }, "unknown target \(c.target)")
            let parser = try CDRParser(target.options)
            let outcome = Self.check(parser, c.bytes)
            if case .violation(let m) = outcome { Issue.record("\(c.note): \(m)") }
            if let expected = c.expect { #expect(outcome == expected, "\(c.note)") }
        }
    }
}

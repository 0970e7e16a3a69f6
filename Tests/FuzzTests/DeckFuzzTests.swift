import Foundation
import MeterCore
import Rater
import Testing
import TestSupport

extension Fuzz {
    /// The rate-deck parser, fed mutated decks: a deck or a `RateDeckError` naming a line, never a crash;
    /// every accepted row is valid, and lookups agree with a naive longest-prefix search.
    @Suite struct DeckFuzzTests {
        static let defaultCount = 1_500

        static let harnessDeck = SampleDeck.harnessHead + #"""
            +33,0.02,0,30,6,France
            "7",0.009,0,1,1,"Russia, ""all"""
            8,0.0333,0.002,45,30,national 8
            9,0.017,0,60,1

            """#

        /// A deck of `n` distinct nested prefixes (1, 12, 123, …) with assorted rates, CRLF line ends.
        static func generatedDeck(_ n: Int) -> String {
            var rng = FuzzRNG(seed: 99)
            var seen = Set<String>()
            var lines = ["\u{FEFF}prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment"]
            while seen.count < n {
                let p = String((0..<rng.int(1...8)).map { _ in Character(Unicode.Scalar(UInt8(0x30 + rng.below(10)))) })
                guard seen.insert(p).inserted else { continue }
                lines.append("\(p),\(rng.below(2))\(rng.chance(50) ? ".\(rng.below(1_000_000))" : ""),0.00\(rng.below(10)),\(rng.below(61)),\(rng.int(1...60))")
            }
            return lines.joined(separator: "\r\n") + "\r\n"
        }

        static let corpus: [[UInt8]] = [
            Array(Corpus.text("samples/rates/rates.csv").utf8), Array(harnessDeck.utf8), Array(generatedDeck(120).utf8),
        ]

        @Test func rateDeckParser() {
            let lines = Self.corpus.flatMap { $0.split(separator: 0x0A).map(Array.init) }
            let report = fuzz("rate-deck", count: Self.defaultCount, generate: { rng, _ in
                Self.input(&rng, lines: lines)
            }, check: Self.check)
            #expect(report.violations.isEmpty)
            #expect(report.accepted > report.cases / 20 && report.rejected > report.cases / 20)
        }

        static func input(_ rng: inout FuzzRNG, lines: [[UInt8]]) -> [UInt8] {
            var deck = rng.pick(corpus).split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
            var m = Mutator(rng: FuzzRNG(seed: rng.next()), corpus: lines)
            for _ in 0..<rng.int(1...3) {
                switch rng.below(10) {
                case 0..<6:  // mutate one line (the header too, sometimes)
                    let i = rng.chance(10) ? 0 : rng.below(deck.count)
                    deck[i] = m.mutate(deck[i])
                case 6:
                    let i = rng.below(deck.count)
                    deck.insert(deck[i], at: rng.below(deck.count + 1))  // a duplicate prefix, usually
                case 7:
                    if deck.count > 1 { deck.remove(at: rng.below(deck.count)) }
                case 8:
                    deck.insert(rng.pick(lines), at: rng.below(deck.count + 1))
                default:
                    var whole = Array(deck.joined(separator: [0x0A]))
                    whole = m.once(whole)
                    deck = whole.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
                    if deck.isEmpty { deck = [[]] }
                }
            }
            return Array(deck.joined(separator: [0x0A]))
        }

        static func check(_ input: [UInt8]) -> FuzzOutcome {
            let deck: RateDeck
            do {
                deck = try RateDeck.parse(input, file: "fuzz.csv")
            } catch {
                guard !error.message.isEmpty, error.line >= 0, error.file == "fuzz.csv" else {
                    return .violation("a deck error without a message or line: \(error)")
                }
                // The same bytes are refused the same way.
                let again: RateDeckError?
                do { _ = try RateDeck.parse(input, file: "fuzz.csv"); again = nil } catch let e { again = e }
                guard again == error else { return .violation("refused as \(error), then \(String(describing: again))") }
                return .rejected
            }
            var prefixes = Set<String>()
            for row in deck.rows {
                guard row.ratePerMinute >= 0, row.connectFee >= 0, row.initialIncrement >= 0, row.subsequentIncrement >= 1 else {
                    return .violation("an accepted row out of range: \(row)")
                }
                guard prefixes.insert(row.prefix).inserted else { return .violation("prefix \(row.prefix) twice") }
            }
            var rng = FuzzRNG(seed: UInt64(input.count) &* 31 &+ UInt64(deck.count))
            for _ in 0..<12 {
                let d = destination(&rng, deck)
                let want = naiveMatch(deck, d)
                let got = d.withUnsafeBufferPointer { deck.match(bytes: $0) }
                guard got?.prefix == want?.prefix else {
                    return .violation("match(\(escaped(d))) = \(got?.prefix ?? "nil"), longest prefix is \(want?.prefix ?? "nil")")
                }
                if let row = got {
                    let (c, cost) = Rating.cost(row, billsec: Int64(rng.below(100_000)))
                    guard c >= 0, cost >= 0 else { return .violation("negative rating \(c) s \(cost) µcr for \(row)") }
                    _ = Rating.maxSeconds(row, credit: Int64(rng.below(1_000_000_000)), cap: 14_400)
                }
            }
            return .accepted
        }

        /// A destination near the deck's prefixes (so the interesting branches are hit), or random bytes.
        static func destination(_ rng: inout FuzzRNG, _ deck: RateDeck) -> [UInt8] {
            var d: [UInt8] = deck.rows.isEmpty || rng.chance(10) ? [] : Array(rng.pick(deck.rows).prefix.utf8)
            if rng.chance(30) { d.removeLast(min(d.count, rng.below(3))) }
            for _ in 0..<rng.below(8) { d.append(UInt8(0x30 + rng.below(10))) }
            if rng.chance(30) { d.insert(UInt8(ascii: "+"), at: 0) }
            if rng.chance(5) { d = (0..<rng.below(20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            return d
        }

        /// The longest row prefix of `d` without its one leading `+`, by looking at every row.
        static func naiveMatch(_ deck: RateDeck, _ dst: [UInt8]) -> RateRow? {
            let d = dst.first == UInt8(ascii: "+") ? Array(dst.dropFirst()) : dst
            var best: RateRow?
            for row in deck.rows where d.starts(with: Array(row.prefix.utf8)) {
                if best == nil || row.prefix.utf8.count > (best?.prefix.utf8.count ?? 0) { best = row }
            }
            return best
        }

        @Test(arguments: RegressionCases.decks)
        func regression(_ c: RegressionCases.Blob) {
            let outcome = Self.check(Array(c.text.utf8))
            if case .violation(let m) = outcome { Issue.record("\(c.note): \(m)") }
            if let expected = c.expect { #expect(outcome == expected, "\(c.note)") }
        }
    }
}

import Rater
import Testing

/// Parses a generated deck of `big.csv` under a clock, for the tests that load a large one: the time
/// is only printed (debug builds say little about release speed), the deck must parse.
func parseBigDeck(_ text: String) throws -> (deck: RateDeck, took: Duration) {
    let bytes = Array(text.utf8)
    var deck: RateDeck?
    let took = ContinuousClock().measure { deck = try? RateDeck.parse(bytes, file: "big.csv") }
    return (try #require(deck), took)
}

/// A refused row's error points at it: `rates.csv`, its line, its column, and says `fragment`.
func expectRowError(_ e: RateDeckError, line: Int, column: String, fragment: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(e.file == "rates.csv", sourceLocation: sourceLocation)
    #expect(e.line == line, sourceLocation: sourceLocation)
    #expect(e.column == column, sourceLocation: sourceLocation)
    #expect(e.message.contains(fragment), "\(e)", sourceLocation: sourceLocation)
}

import CDRParser
import Foundation
import Testing

/// The real CDR files in ../shared/cdr-samples, read in place (never copied into the project).
enum Samples {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()   // CDRParserTests
        .deletingLastPathComponent()   // Tests
        .deletingLastPathComponent()   // package root
        .appendingPathComponent("../shared/cdr-samples")
        .standardizedFileURL

    /// The file's lines after the `# source:` comment, as bytes, without the final empty line.
    static func lines(_ name: String) throws -> [[UInt8]] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        var lines = Array(data).split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
        #expect(lines.first.map { $0.starts(with: Array("# source:".utf8)) } == true, "\(name) starts with its source comment")
        lines.removeFirst()
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// Every line parsed; element i is the file's line i + 2 (line 1 is the comment).
    struct Parsed {
        var results: [Result<CDR, ParseFailure>]
        var ok: [CDR] { results.compactMap { try? $0.get() } }
        var failures: [ParseFailure] {
            results.compactMap { if case .failure(let f) = $0 { return f } else { return nil } }
        }
        /// The CDR of a 1-based file line number, as an editor shows it.
        func line(_ n: Int) throws -> CDR { try results[n - 2].get() }
    }

    static func parse(_ name: String, _ options: ParserOptions) throws -> Parsed {
        let parser = try CDRParser(options)
        return Parsed(results: try lines(name).map { parser.parse($0) })
    }
}

extension TimeZone {
    static let utc = TimeZone(identifier: "UTC") ?? .gmt
}

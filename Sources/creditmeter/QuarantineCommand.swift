import ArgumentParser
import Foundation
import Ingest
import Ledger
import MeterConfig
import MeterCore

struct QuarantineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine",
        abstract: "Lines and CDRs that could not be charged, kept with their reason, source and position.",
        discussion: """
        Reasons: unknown_account (no client owns the account code), no_rate (the client's plan has no
        matching prefix, or the plan is not configured), and parser reasons (column_count, bad_line,
        bad_number, bad_time, bad_json, missing_field), and line_too_long (longer than the source's max_line_bytes:
        its first 4 KiB, length and sha256 are kept; retry leaves it). Add the client or the rate, then `quarantine retry`.
        """,
        subcommands: [List.self, Retry.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show quarantined lines, oldest first.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Only this reason.") var reason: String?
        @Option(help: "At most this many.") var limit: Int?
        @Flag var json = false

        func run() throws {
            try guarded {
                let (_, ledger) = try options.open()
                let items = try ledger.quarantine(limit: limit, reason: reason)
                if json {
                    Console.out(JSONValue.array(items.map { item in
                        .object([
                            ("id", .int(item.id)), ("source", .string(item.entry.source)),
                            ("position", .int(item.entry.position)), ("line", .int(item.entry.line)),
                            ("reason", .string(item.entry.reason)), ("message", .string(item.entry.message)),
                            ("raw", .string(String(decoding: item.entry.raw, as: UTF8.self))),
                            ("length", item.entry.length.map { .int($0) } ?? .null),
                            ("sha256", item.entry.sha256.map { .string($0) } ?? .null),
                            ("at", .string(rfc3339(item.at))),
                        ])
                    }).serialized())
                    return
                }
                if items.isEmpty { Console.note("quarantine is empty"); return }
                for item in items {
                    let e = item.entry
                    Console.out("#\(item.id) \(e.source) line \(e.line) @\(e.position): \(e.reason): \(e.message)")
                    Console.out("    " + String(decoding: e.raw.prefix(300), as: UTF8.self))
                }
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Parse and rate quarantined lines again; charge those that now succeed.",
            discussion: "Lines still failing stay quarantined (with their original reason). Each charged line leaves the quarantine in the same transaction.")
        @OptionGroup var options: ConfigOptions
        @Flag var json = false

        func run() throws {
            try guarded {
                let (config, ledger) = try options.open()
                let decks = try config.loadRateDecks()
                let metering = try Assembly.metering(config: config, ledger: ledger, decks: decks)
                var cache: [String: SourceSettings?] = [:]
                let result = try ledger.retryQuarantine { item -> Charge? in
                    let name = item.entry.source
                    if cache[name] == nil { cache[name] = .some(try? Assembly.settings(named: name, config: config)) }
                    guard let settings = cache[name] ?? nil else { return nil }
                    // Only the start of an over-long line is kept; parsed, it could pass for another CDR.
                    guard item.entry.length == nil else { return nil }
                    return item.entry.raw.withUnsafeBufferPointer { raw in
                        if case .charge(let c) = metering.classify(raw, offset: item.entry.position,
                                                                   lineNumber: item.entry.line, source: settings) {
                            return c
                        }
                        return nil
                    }
                }
                if json {
                    Console.out(JSONValue.object([
                        ("charged", .int(Int64(result.charged))), ("duplicates", .int(Int64(result.duplicates))),
                        ("remaining", .int(Int64(result.remaining))),
                    ]).serialized())
                } else {
                    Console.out("charged \(result.charged), already charged \(result.duplicates), still quarantined \(result.remaining)")
                }
            }
        }
    }
}

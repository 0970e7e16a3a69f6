import ArgumentParser
import Foundation
import Ledger
import MeterConfig
import MeterCore

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Where each source is read up to, what was charged today, and the quarantine.",
        discussion: """
        Per [[source]]: its file, inode, committed offset, size, lag in bytes and the start of the newest charged CDR; then the CDRs and credits charged today (UTC), the number of quarantined lines, and the live authorize holds (of every agent sharing the store) with the credits they reserve.

        Examples:
          creditmeter status
          creditmeter status --json --config /etc/creditmeter/creditmeter.toml
        """)
    @OptionGroup var options: ConfigOptions
    @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false

    func run() throws {
        try options.guardedOpenStore { config, ledger in
            let store = config.store.url.map(StoreConfig.redacted) ?? config.store.path
            var startOfDay = nowEpoch()
            startOfDay -= startOfDay % 86_400
            let today = try ledger.chargedSince(startOfDay)
            let quarantined = try ledger.quarantineCount()
            let held = try ledger.heldTotal(now: nowEpoch() * 1000)
            var sources: [JSONValue] = []
            var lines: [String] = []
            for s in config.sources {
                let pos = try ledger.sourcePosition(name: s.name)
                var st = stat()
                let exists = stat(s.path, &st) == 0
                let size = exists ? Int64(st.st_size) : 0
                let offset = pos?.offset ?? 0
                let sameFile = pos.map { exists && UInt64(st.st_ino) == $0.inode } ?? false
                let lag = sameFile ? max(0, size - offset) : size
                let last = try ledger.lastChargedStart(source: s.name)
                let givenUp = try ledger.givenUp(source: s.name)
                sources.append(.object([
                    ("name", .string(s.name)), ("path", .string(s.path)), ("format", .string(s.format.rawValue)),
                    ("exists", .bool(exists)), ("inode", pos.map { .int(Int64(bitPattern: $0.inode)) } ?? .null),
                    ("offset", .int(offset)), ("size", .int(size)), ("lag_bytes", .int(lag)),
                    ("line", pos.map { .int($0.line) } ?? .null),
                    ("last_cdr", last.map { .string(rfc3339($0)) } ?? .null),
                    ("given_up_files", .int(givenUp.files)), ("given_up_bytes", .int(givenUp.bytes)),
                ]))
                lines.append("  \(s.name): \(s.path) \(exists ? "" : "(missing) ")inode \(pos.map { String($0.inode) } ?? "-"), "
                    + "offset \(offset) of \(size), lag \(lag) bytes, last CDR \(last.map(rfc3339) ?? "none")"
                    + (givenUp.files > 0 ? ", GIVEN UP \(givenUp.files) rotated file(s), \(givenUp.bytes) bytes known unread" : ""))
            }
            if json {
                Console.json(JSONValue.object([
                    ("store", .string(store)), ("sources", .array(sources)),
                    ("charged_today", .object([("cdrs", .int(Int64(today.count))), ("cost", .string(Money.format(today.cost)))])),
                    ("quarantined", .int(Int64(quarantined))),
                    ("holds", .object([("calls", .int(Int64(held.calls))), ("reserved", .string(Money.format(held.cost)))])),
                ]))
                return
            }
            Console.out("store: \(store)")
            Console.out(config.sources.isEmpty ? "sources: none configured" : "sources:")
            lines.forEach(Console.out)
            Console.out("charged today (UTC): \(today.count) CDRs, \(Money.format(today.cost)) credits")
            Console.out("quarantined: \(quarantined)")
            Console.out("holds: \(held.calls) live calls reserving \(Money.format(held.cost)) credits")
        }
    }
}

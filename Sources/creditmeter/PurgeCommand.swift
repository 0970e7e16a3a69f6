import ArgumentParser
import Foundation
import Ledger
import MeterConfig
import MeterCore

struct PurgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Delete, for good, clients disabled for more than [retention] disabled_days.",
        discussion: """
        Deletes the client with its account codes, recharges and usage. The daemon does this daily; this runs it now.

        Examples:
          creditmeter purge --dry-run
          creditmeter purge --as-of 2027-03-01 --json
        """
    )
    @OptionGroup var options: ConfigOptions
    @Flag(name: .customLong("dry-run"), help: "List who would be deleted; delete nothing.") var dryRun = false
    @Option(name: .customLong("as-of"), help: ArgumentHelp("Take this as now (YYYY-MM-DD, UTC).", valueName: "date"))
    var asOf: String?
    @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false

    func run() throws {
        try options.guardedOpenStore { config, ledger in
            let now = try asOf.map { try parseDate($0, option: "--as-of") } ?? nowEpoch()
            let cutoff = now - Int64(config.retention.disabledDays) * 86_400
            let doomed = try ledger.purgeCandidates(disabledBefore: cutoff)
            if !dryRun { for c in doomed { try ledger.purge(username: c.username, now: now) } }
            if json {
                Console.json(JSONValue.object([
                    ("dry_run", .bool(dryRun)),
                    ("purged", .array(doomed.map { c in
                        .object([("username", .string(c.username)),
                                 ("disabled_at", c.disabledAt.map { .string(rfc3339($0)) } ?? .null)])
                    })),
                ]))
                return
            }
            if doomed.isEmpty {
                Console.out("no client has been disabled for more than \(config.retention.disabledDays) days")
            }
            for c in doomed {
                Console.out("\(dryRun ? "would delete" : "deleted") \(c.username) (disabled since \(c.disabledAt.map(rfc3339) ?? "?"))")
            }
        }
    }
}

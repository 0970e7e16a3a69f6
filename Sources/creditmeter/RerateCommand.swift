import ArgumentParser
import Foundation
import Ingest
import Ledger
import MeterCore

/// `creditmeter rerate`: price the calls answered in a range again under the decks as now loaded.
struct RerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rerate",
        abstract: "Price the calls answered in a range again under the rate decks as now loaded.",
        discussion: """
        Every charge answered in [--from, --to) is priced again. A charge whose cost changes gets an adjustment row (old cost, new cost); the charge itself is never updated. Used moves by the sum of the deltas, levels and their alerts follow, and each client with a change gets one client.rerated event carrying its delta. Quarantined no_rate CDRs answered in the range are charged when a row now covers them.

        Each client is committed in one transaction, and each charge's current cost is read again inside it: a rerate that is killed and run again applies no delta twice, and a second identical rerate changes nothing. A charge the decks no longer price (its plan or row is gone) keeps its cost and is counted as unpriced.

        DATE is YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], read in the host's local time zone, or with Z or an offset such as +02:00.

        Examples:
          creditmeter rerate --from 2026-03-01 --to 2026-04-01 --dry-run
          creditmeter rerate --from 2026-03-01 --to 2026-04-01 --client alice --json
        """)
    @OptionGroup var options: ConfigOptions
    @Option(help: ArgumentHelp("Start of the range, inclusive (answer time).", valueName: "date")) var from: String
    @Option(help: ArgumentHelp("End of the range, exclusive (answer time).", valueName: "date")) var to: String
    @Option(help: ArgumentHelp("Only this client's calls.", valueName: "username")) var client: String?
    @Flag(name: .customLong("dry-run"), help: "Report what would change; change nothing.") var dryRun = false
    @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false

    func run() throws {
        try guarded {
            let start = try parseLocalDate(from, option: "--from")
            let end = try parseLocalDate(to, option: "--to")
            guard start < end else { throw CLIError(.usage, "--to must be later than --from") }
            let (config, ledger) = try options.open()
            let decks = try config.loadRateDecks()
            let metering = try Assembly.metering(config: config, ledger: ledger, decks: decks)
            let r = try Rerater.run(ledger: ledger, config: config, decks: decks, metering: metering, from: start, to: end,
                                    username: client, dryRun: dryRun, now: nowEpoch())
            if json {
                Console.json(.object([
                    ("from", .string(rfc3339(start))), ("to", .string(rfc3339(end))), ("dry_run", .bool(dryRun)),
                    ("changed", .int(Int64(r.changed))), ("delta", .string(Money.format(r.delta))),
                    ("quarantine_charged", .int(Int64(r.quarantineCharged))),
                    ("quarantine_cost", .string(Money.format(r.quarantineCost))),
                    ("clients", .array(r.clients.map { c in .object([
                        ("username", .string(c.username)), ("calls", .int(Int64(c.calls))), ("changed", .int(Int64(c.changed))),
                        ("unpriced", .int(Int64(c.unpriced))), ("delta", .string(Money.format(c.delta))),
                        ("used", .string(Money.format(c.used))),
                    ]) })),
                ]))
                return
            }
            let verb = dryRun ? "would change" : "changed"
            for c in r.clients {
                Console.out("\(c.username): \(c.calls) calls, \(verb) \(c.changed), delta \(Money.format(c.delta)), used \(Money.format(c.used))"
                            + (c.unpriced > 0 ? ", \(c.unpriced) no longer priced (kept)" : ""))
            }
            Console.out("\(dryRun ? "dry run: " : "")\(r.changed) charges \(verb), delta \(Money.format(r.delta));"
                        + " quarantined no_rate CDRs \(dryRun ? "that would be " : "")charged: \(r.quarantineCharged)"
                        + " (\(Money.format(r.quarantineCost)))")
        }
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]` in the host's local zone (a local time that does not exist
/// means the first instant after it, an ambiguous one the earlier), or with `Z` or an offset.
func parseLocalDate(_ text: String, option: String) throws -> Int64 {
    let iso = ISO8601DateFormatter()
    if let d = iso.date(from: text) { return Int64(d.timeIntervalSince1970) }
    let b = Array(text.utf8)
    func num(_ i: Int, _ n: Int) -> Int64? {
        guard i + n <= b.count else { return nil }
        var v: Int64 = 0
        for k in i ..< i + n {
            guard b[k] >= 0x30, b[k] <= 0x39 else { return nil }
            v = v * 10 + Int64(b[k] - 0x30)
        }
        return v
    }
    let bad = CLIError(.usage, "\(option): '\(text)' is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], local time, or with Z or an offset)")
    guard b.count == 10 || b.count == 16 || b.count == 19, let y = num(0, 4), b[4] == UInt8(ascii: "-"), let mo = num(5, 2),
          b[7] == UInt8(ascii: "-"), let d = num(8, 2), mo >= 1, mo <= 12, d >= 1, d <= CivilTime.daysInMonth(y, mo) else { throw bad }
    var secs: Int64 = 0
    if b.count > 10 {
        guard b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "), let h = num(11, 2), b[13] == UInt8(ascii: ":"),
              let mi = num(14, 2), h <= 23, mi <= 59 else { throw bad }
        secs = h * 3600 + mi * 60
        if b.count == 19 {
            guard b[16] == UInt8(ascii: ":"), let s = num(17, 2), s <= 59 else { throw bad }
            secs += s
        }
    }
    return ZoneTable(TimeZone.current).firstInstant(atOrAfterLocal: CivilTime.daysFromCivil(y, mo, d) * 86_400 + secs)
}

import ArgumentParser
import Foundation
import Ledger
import LedgerPostgres
import MeterConfig
import MeterCore

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Move a ledger between stores.",
        discussion: """
        Example:
          creditmeter store copy \\
              --to postgresql://creditmeter@db.example.com/creditmeter \\
              --password-file /etc/creditmeter/pg.password
        """,
        subcommands: [Copy.self]
    )

    struct Copy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy this host's SQLite ledger into an empty PostgreSQL store, verified by totals.",
            discussion: """
            Reads the SQLite ledger of the config's [store] path (without changing it) and writes all of it into the PostgreSQL database of --to in one transaction: clients with their password hashes and levels, accounts, recharges and adjustments with their idempotency keys, every charge, rerate corrections, quarantine, read positions, the outbox and its delivery state. The charges, read positions, quarantine entries and given-up tallies become --node's, so `replay` on that node with a PostgreSQL config charges only what the SQLite ledger had not. Before it commits, every client's assigned, used, charges and recharges, each table's rows and the read positions are compared with the SQLite ledger; any difference rolls everything back (exit 70).

            The target must be empty (a database no host has used, or only migrated): otherwise nothing is changed and the command exits 73. Stop the agent first: what it charges into SQLite after the copy is not copied.

            The password comes from --password-file (one line) or from libpq (PGPASSFILE, ~/.pgpass); a password in --to is refused (exit 78). An unreachable server or a wrong password: exit 74.

            Example:
              creditmeter store copy --config /etc/creditmeter/creditmeter.toml \\
                  --to postgresql://creditmeter@db.example.com/creditmeter \\
                  --password-file /etc/creditmeter/pg.password --node pbx1
            """
        )

        @OptionGroup var options: ConfigOptions
        @Option(help: ArgumentHelp("The PostgreSQL store, a libpq URL without a password.", valueName: "url"))
        var to: String
        @Option(name: .customLong("password-file"), help: ArgumentHelp("A file holding the password alone on one line.", valueName: "path"))
        var passwordFile: String?
        @Option(help: ArgumentHelp("The host the copied charges, read positions and quarantine belong to.",
                                   discussion: "Default: the config's [node] name, else the host name up to its first dot.",
                                   valueName: "name"))
        var node: String?
        @Option(name: .customLong("chunk-rows"), help: .hidden)
        var chunkRows = 10_000
        @Flag(help: "Print the summary as JSON (pretty-printed, keys sorted).")
        var json = false

        func validate() throws {
            if let node, let problem = NodeConfig.nameProblem(node) { throw ValidationError("--node \(problem)") }
            if !(1...1_000_000).contains(chunkRows) { throw ValidationError("--chunk-rows must be from 1 to 1000000") }
        }

        func run() throws {
            try guarded {
                if let problem = StoreConfig.urlProblem(to) { throw CLIError(.config, "--to: \(problem)") }
                let config = try options.load()
                if config.store.url != nil {
                    throw CLIError(.config, "store.url: store copy reads a SQLite ledger; give the config whose [store] path names it")
                }
                let password = try passwordFile.map { f throws(ConfigError) in try StoreConfig.readPassword(f) }
                let source = try Ledger(path: config.store.path, thresholds: config.thresholds, create: false)
                let settings = PostgresSettings(url: to, password: password, node: node ?? config.node.name)
                let target = try PostgresLedger(settings: settings, thresholds: config.thresholds)
                let report: StoreCopyReport
                do {
                    report = try target.copy(from: source, chunkRows: chunkRows, progress: Progress().update)
                } catch let e as StoreCopyError {
                    Console.error(e.description)
                    switch e {
                    case .notEmpty: throw ExitCode(Self.notEmptyStatus)
                    case .mismatch: throw ExitCode(ExitStatus.software.rawValue)
                    }
                }
                show(report, from: config.store.path)
            }
        }

        /// EX_CANTCREAT: the output (the target store) is not one a copy may be made into.
        static let notEmptyStatus: Int32 = 73

        private func show(_ r: StoreCopyReport, from path: String) {
            let total = r.rows.reduce(Int64(0)) { $0 + $1.rows }
            let seconds = String(format: "%.2f", r.seconds)
            let perSecond = r.seconds > 0 ? Int64((Double(total) / r.seconds).rounded(.down)) : total
            if json {
                Console.json(.object([
                    ("from", .string(path)), ("to", .string(StoreConfig.redacted(to))), ("node", .string(r.node)),
                    ("rows", .object(r.rows.map { ($0.table, .int($0.rows)) })), ("total_rows", .int(total)),
                    ("legacy_charges", .int(r.legacyCharges)), ("seconds", .number(seconds)), ("rows_per_second", .int(perSecond)),
                    ("verified", .bool(true)),
                ]))
                return
            }
            Console.out("copied \(path) to \(StoreConfig.redacted(to)) as node \(r.node): \(total) rows in \(seconds) s (\(perSecond) rows/s)")
            let width = r.rows.map(\.table.count).max() ?? 0
            for (table, rows) in r.rows {
                Console.out("  " + table.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(rows)")
            }
            if r.legacyCharges > 0 {
                Console.out("\(r.legacyCharges) charges from before start keys are still refused as duplicates on node \(r.node)")
            }
            Console.out("verified: every client's assigned, used, charges and recharges, every table's rows, the read positions")
        }
    }
}

/// Copy progress on stderr, a line each time a table passes another 100,000 rows.
private final class Progress {
    private var table = ""
    private var next: Int64 = 0

    func update(_ name: String, _ done: Int64, _ total: Int64) {
        if name != table { table = name; next = 100_000 }
        guard done >= next else { return }
        Console.note("copying \(name): \(done) of \(total) rows")
        next = (done / 100_000 + 1) * 100_000
    }
}

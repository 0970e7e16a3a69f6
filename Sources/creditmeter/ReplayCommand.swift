import CDRSource
import ArgumentParser
import CDRParser
import Foundation
import Ingest
import Ledger
import MeterConfig
import MeterCore

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Rate CDR files into the store, exactly once.",
        discussion: """
        Each CDR is charged at most once, whatever is replayed: a second replay of the same file charges nothing and counts its lines as duplicates (identity: Asterisk linkedid+sequence+start, FreeSWITCH uuid, else a hash of the whole record). Lines that do not parse, and CDRs with an unknown account or no rate, go to the quarantine (`creditmeter quarantine list`). Sources' tail positions are not moved.

        Which parser: --source NAME uses that [[source]]'s format, time zone and filter; --format F reads the files with a stock layout (asterisk-csv, freeswitch-csv, jsonl); with neither, the config's only source.

        --format freeswitch-json reads FreeSWITCH mod_json_cdr's err-log-dir files (one JSON document each, plain, URL-encoded or base64) and directories of them; B-legs are counted under filtered, not charged. --source NAME of a receive = "http" freeswitch-json source reads them as that source does (its timezone and charge_b_legs).

        Examples:
          creditmeter replay --format asterisk-csv Master.csv
          creditmeter replay --format freeswitch-json /var/log/freeswitch/json_cdr
          creditmeter replay --source asterisk --dry-run --json \\
              /var/log/asterisk/cdr-csv/Master.csv.1
        """
    )

    @OptionGroup var options: ConfigOptions
    @Option(help: ArgumentHelp("CDR format: asterisk-csv, freeswitch-csv, csv, jsonl, freeswitch-json.", valueName: "format"))
    var format: String?
    @Option(help: ArgumentHelp("Read the files as this [[source]] does.", valueName: "name"))
    var source: String?
    @Option(help: ArgumentHelp("With --format: time zone of the timestamps (local, UTC or an IANA name).", valueName: "zone"))
    var timezone = "local"
    @Flag(name: .customLong("dry-run"), help: "Show what would be charged; write nothing.")
    var dryRun = false
    @Flag(help: "Print the summary as JSON (pretty-printed, keys sorted).")
    var json = false
    @Option(help: ArgumentHelp(
        "On a PostgreSQL store: how many batches commit at once, each on its own connection (1 to 16).",
        discussion: "SQLite commits one batch at a time whatever this says, and so do --dry-run and freeswitch-json documents.", valueName: "n"))
    var connections = 3
    @Argument(help: ArgumentHelp("CDR files to replay (with --format freeswitch-json, also directories).", valueName: "file"))
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one FILE to replay") }
        if format != nil && source != nil { throw ValidationError("give --format or --source, not both") }
        if !(1...16).contains(connections) { throw ValidationError("--connections must be from 1 to 16 (got \(connections))") }
    }

    func run() throws {
        try guarded {
            if format == CDRFormat.freeswitchJSON.rawValue { return try replayDocuments() }
            if let source, let config = try? Config.load(path: options.path),
               config.receivers.contains(where: { $0.name == source && $0.format == .freeswitchJSON }) {
                return try replayDocuments(chargeBLegs: false, source: source)
            }
            for f in files {
                var isDirectory: ObjCBool = false
                // A directory passes isReadableFile and would only fail later, as an I/O error without its name.
                if FileManager.default.fileExists(atPath: f, isDirectory: &isDirectory), isDirectory.boolValue {
                    throw CLIError(.noInput, "\(f): is a directory, not a CDR file")
                }
                if !FileManager.default.isReadableFile(atPath: f) {
                    throw CLIError(.noInput, "\(f): no such readable file")
                }
            }
            let (config, ledger) = try options.openStore(creating: !dryRun)
            let settings = try resolveSource(config)
            let decks = try config.loadRateDecks()
            let metering = try Assembly.metering(config: config, ledger: ledger, decks: decks)
            let progress = ProgressLine(enabled: Console.stderrIsTTY && !json)
            let summary: ReplaySummary
            do {
                summary = try Replayer(writers: connections).replay(
                    files: files, source: settings, metering: metering, ledger: ledger, dryRun: dryRun,
                    now: nowEpoch(), progress: progress.update)
            } catch let e as LineReader.OpenError {
                throw CLIError(.ioError, e.description)
            }
            progress.finish()
            if json {
                Console.json(Self.json(summary))
            } else {
                Console.out(Self.describe(summary))
            }
        }
    }

    /// mod_json_cdr's err-log-dir files: one document a file, and directories of them.
    private func replayDocuments() throws {
        try replayDocuments(chargeBLegs: false)
    }

    /// The documents of `files` read as `settings` (an ad-hoc freeswitch-json parser, or a receiving source's).
    private func replayDocuments(chargeBLegs: Bool, source named: String? = nil) throws {
        let paths: [String]
        do { paths = try DocumentReplayer.expand(files) } catch {
            throw CLIError(.noInput, "\(error.localizedDescription)")
        }
        for f in paths where !FileManager.default.isReadableFile(atPath: f) {
            throw CLIError(.noInput, "\(f): no such readable file")
        }
        let (config, ledger) = try options.openStore(creating: !dryRun)
        let settings = try resolveSource(config)
        let receiver = config.receivers.first { $0.name == named }
        let metering = try Assembly.metering(config: config, ledger: ledger, decks: try config.loadRateDecks())
        let summary: ReplaySummary
        do {
            summary = try DocumentReplayer(chargeBLegs: receiver?.chargeBLegs ?? chargeBLegs).replay(files: paths, source: settings, metering: metering, ledger: ledger,
                                                    dryRun: dryRun, now: nowEpoch())
        } catch let e as DocumentReplayer.ReadFailure {
            throw CLIError(.ioError, e.description)
        }
        if json { Console.json(Self.json(summary)) } else { Console.out(Self.describe(summary)) }
    }

    private func resolveSource(_ config: Config) throws -> SourceSettings {
        do {
            if let format {
                guard let f = CDRFormat(rawValue: format) else {
                    throw CLIError(.usage, "--format: '\(format)' is not one of \(CDRFormat.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                if f == .csv {
                    throw CLIError(.usage, "--format csv needs a column mapping: describe the file as a [[source]] and use --source")
                }
                let zone: TimeZone?
                switch timezone {
                case "local": zone = .current
                case "UTC", "utc": zone = TimeZone(identifier: "UTC")
                default: zone = TimeZone(identifier: timezone)
                }
                guard let zone else { throw CLIError(.usage, "--timezone: '\(timezone)' is not a time zone") }
                return try Assembly.adHoc(format: f, timeZone: zone)
            }
            let index: Int
            if let source, config.receivers.contains(where: { $0.name == source }),
               let settings = try Assembly.settings(named: source, config: config) {
                return settings
            }
            if let source {
                guard let i = config.sources.firstIndex(where: { $0.name == source }) else {
                    throw CLIError(.usage, "--source: no [[source]] named '\(source)' in \(config.file)")
                }
                index = i
            } else {
                guard config.sources.count == 1 else {
                    throw CLIError(.usage, "say how to read the files: --format F or --source NAME (\(config.file) has \(config.sources.count) sources)")
                }
                index = 0
            }
            return try Assembly.settings(for: config.sources[index], index: index)
        } catch let e as Assembly.Failure {
            throw CLIError(.config, "\(config.file): \(e)")
        }
    }

    static func json(_ s: ReplaySummary) -> JSONValue {
        .object([
            ("files", .array(s.files.map { .string($0) })), ("dry_run", .bool(s.dryRun)),
            ("read", .int(Int64(s.read))), ("charged", .int(Int64(s.charged))),
            ("not_billable", .int(Int64(s.notBillable))), ("filtered", .int(Int64(s.filtered))),
            ("duplicates", .int(Int64(s.duplicates))), ("quarantined", .int(Int64(s.quarantined))),
            ("quarantined_by_reason", .object(s.quarantinedByReason.map { ($0.key, .int(Int64($0.value))) })),
            ("clients", .object(s.clients.map { ($0.key, .object([("cdrs", .int(Int64($0.value.cdrs))), ("cost", .string($0.value.cost))])) })),
            ("cost", .string(s.cost)),
        ])
    }

    static func describe(_ s: ReplaySummary) -> String {
        var lines: [String] = []
        lines.append((s.dryRun ? "dry run (nothing written): " : "") +
            "read \(s.read), charged \(s.charged) (\(s.cost) credits), not billable \(s.notBillable), " +
            "filtered \(s.filtered), duplicates \(s.duplicates), quarantined \(s.quarantined)")
        if !s.quarantinedByReason.isEmpty {
            lines.append("quarantine: " + s.quarantinedByReason.sorted { $0.key < $1.key }
                .map { "\($0.key) \($0.value)" }.joined(separator: ", ") + " — see `creditmeter quarantine list`")
        }
        for (name, t) in s.clients.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(name): \(t.cdrs) CDRs, \(t.cost) credits")
        }
        return lines.joined(separator: "\n")
    }
}

/// A single self-rewriting stderr line for long replays; silent when stderr is not a terminal.
final class ProgressLine: @unchecked Sendable {
    private let enabled: Bool
    private var last = Date.distantPast
    private var shown = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ file: String, _ done: Int64, _ total: Int64, _ lines: Int) {
        guard enabled, Date().timeIntervalSince(last) >= 0.25 else { return }
        last = Date()
        let pct = total > 0 ? Int(done * 100 / total) : 100
        let name = (file as NSString).lastPathComponent
        FileHandle.standardError.write(Data("\r\u{1B}[Kreplay: \(name) \(pct)%  \(lines) lines".utf8))
        shown = true
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

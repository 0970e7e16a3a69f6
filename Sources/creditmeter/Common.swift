import API
import ArgumentParser
import Delivery
import Foundation
import Ingest
import Ledger
import LedgerPostgres
import Outbox
import MeterConfig
import MeterCore
import Rater

/// sysexits codes, the exit statuses scripts branch on.
enum ExitStatus: Int32 {
    case usage = 64, dataError = 65, noInput = 66, software = 70, ioError = 74, config = 78
}

/// An error the CLI reports as one line on stderr with a sysexits code.
struct CLIError: Error {
    var status: ExitStatus
    var message: String
    init(_ status: ExitStatus, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// Runs a command body, turning every known failure into one stderr line and its exit code.
func guarded(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        let (status, message) = explain(error)
        Console.error(message)
        throw ExitCode(status.rawValue)
    }
}

/// The sysexits status and the one-line message for any error a command can meet.
func explain(_ error: any Error) -> (ExitStatus, String) {
    switch error {
    case let e as CLIError: return (e.status, e.message)
    case let e as ConfigError: return (.config, e.description)
    case let e as LedgerError: return (ledgerStatus(e), e.description)
    case let e as Assembly.Failure: return (.config, e.description)
    case let e as DeliveryError: return (.config, e.description)
    case let e as APIStartupError: return (.config, e.description)
    default: return (.software, "\(error)")
    }
}

func ledgerStatus(_ e: LedgerError) -> ExitStatus {
    switch e {
    case .sqlite, .open, .postgres, .unreachable: return .ioError
    case .noStore: return .noInput
    default: return .dataError
    }
}

/// `--config PATH`, shared by every subcommand that reads the config.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Config file (TOML).", discussion: "Default: $CREDITMETER_CONFIG, else /etc/creditmeter/creditmeter.toml.",
        valueName: "path"))
    var config: String?

    var path: String {
        if let config { return config }
        if let env = ProcessInfo.processInfo.environment["CREDITMETER_CONFIG"], !env.isEmpty { return env }
        return "/etc/creditmeter/creditmeter.toml"
    }

    func load() throws -> Config {
        try Config.load(path: path)
    }

    /// The config and the ledger it names, opened with the config's thresholds. Only a command that can
    /// put something into an empty store passes `creating` (replay, clients create; `run` opens its own):
    /// the others exit 66 naming the path rather than leave an empty store, and its directories, at a
    /// mistyped path.
    func open(creating: Bool = false) throws -> (Config, Ledger) {
        let config = try load()
        if config.store.url != nil {
            throw CLIError(.config, "store.url: this command reads a SQLite store only in this version; on a PostgreSQL "
                           + "store every other command works (clients adjust and statement, quarantine retry and rerate "
                           + "are SQLite's only)")
        }
        let ledger = try Ledger(path: config.store.path, thresholds: config.thresholds, create: creating)
        return (config, ledger)
    }

    /// The config and the store it names: the SQLite ledger at `path`, or the PostgreSQL database at `url`
    /// with the password of `password_file`, as this host's `[node] name`.
    func openStore(creating: Bool = false) throws -> (Config, any AgentStore) {
        let config = try load()
        guard let url = config.store.url else {
            return (config, try Ledger(path: config.store.path, thresholds: config.thresholds, create: creating))
        }
        let password = try config.store.passwordFile.map { f throws(ConfigError) in try StoreConfig.readPassword(f) }
        return (config, try Stores.postgres(url: url, password: password, node: config.node.name, thresholds: config.thresholds))
    }

    /// The store's outbox and deliveries, on either store.
    func openOutbox() throws -> (Config, any DeliveryStore) {
        let (config, store) = try openStore()
        guard let outbox = store as? any DeliveryStore else {
            throw CLIError(.software, "\(type(of: store)) keeps no outbox")
        }
        return (config, outbox)
    }

    /// `openStore` under `guarded`, for commands that read (a missing SQLite store is exit 66).
    func guardedOpenStore(_ body: (Config, any AgentStore) throws -> Void) throws {
        try guarded {
            let (config, store) = try openStore()
            try body(config, store)
        }
    }

    /// Runs a command's body `guarded`, with the config and the ledger it names opened (not created).
    func guardedOpen(_ body: (Config, Ledger) throws -> Void) throws {
        try guarded {
            let (config, ledger) = try open()
            try body(config, ledger)
        }
    }
}

/// Writes to the terminal: errors and progress to stderr, results to stdout, colour only on a TTY.
enum Console {
    static func error(_ message: String) {
        FileHandle.standardError.write(Data(("creditmeter: " + message + "\n").utf8))
    }

    static func note(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    static func out(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Every `--json` output goes through here, so all commands share one style: pretty-printed, two-space
    /// indents, keys sorted at every level (a script diffing two outputs sees only what changed).
    static func json(_ value: JSONValue) {
        out(sortedKeys(value).serialized(pretty: true))
    }

    static func sortedKeys(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let pairs): return .object(pairs.map { ($0.0, sortedKeys($0.1)) }.sorted { $0.0 < $1.0 })
        case .array(let items): return .array(items.map(sortedKeys))
        default: return value
        }
    }

    static var stderrIsTTY: Bool { isatty(2) == 1 }

    /// The level colours mapped to ANSI: primary blue, orange (256-colour 208), red; NO_COLOR turns them off.
    static var useColor: Bool {
        isatty(1) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"].map { $0.isEmpty } ?? true
    }

    static func paint(_ text: String, _ level: Level) -> String {
        guard useColor else { return text }
        let code: String
        switch level {
        case .ok: code = "34"
        case .low: code = "38;5;208"
        case .critical, .exhausted: code = "31"
        }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }
}

func nowEpoch() -> Int64 { Int64(Date().timeIntervalSince1970.rounded(.down)) }

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` (UTC) for `--as-of` and `--start`.
func parseDate(_ text: String, option: String) throws -> Int64 {
    let f = ISO8601DateFormatter()
    if let d = f.date(from: text) { return Int64(d.timeIntervalSince1970) }
    f.formatOptions = [.withFullDate]
    if let d = f.date(from: text) { return Int64(d.timeIntervalSince1970) }
    throw CLIError(.usage, "\(option): '\(text)' is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)")
}

func rfc3339(_ epoch: Int64) -> String { CivilTime.rfc3339(epoch) }

/// Opens a PostgreSQL store.
enum Stores {
    static func postgres(url: String, password: String?, node: String, thresholds: Thresholds) throws -> any AgentStore {
        try PostgresLedger(settings: PostgresSettings(url: url, password: password, node: node), thresholds: thresholds)
    }
}

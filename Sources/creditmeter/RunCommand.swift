import API
import ArgumentParser
import Daemon
import Foundation
import Ledger
import Logging
import MeterConfig

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "The daemon: tail every [[source]], charge each CDR once, keep the ledger current.",
        discussion: """
        Meant to run under systemd (systemd/creditmeter.service): it sends READY=1 once the sources are open, STATUS= with lines read and lag, and WATCHDOG=1 while its loops make progress. Logs go to stderr, with journald priority prefixes under systemd.

        SIGTERM or SIGINT: finish the batch in hand, commit, exit 0. SIGHUP: re-read the config and rate decks; a bad new config is refused and the running one kept. A reload applies plans and rate decks, [thresholds], [authorize], [rating], [accounts], [retention] and each source's format, timezone, columns, extra, delimiter and filter. A new [store] path, url or password_file, [node] name, [api] section, [delivery] section, [[endpoint]], or a [[source]] added, removed, or given a new path or start_at needs a restart: the reload logs one line naming each such key.

        Every batch commits its charges, level changes and the source's read position in one store transaction (SQLite, or PostgreSQL with [store] url): kill -9 at any moment and restart, and every CDR is charged exactly once. A PostgreSQL store that cannot be reached is waited for, at start and while running, from the last committed position.

        Examples:
          creditmeter run --config /etc/creditmeter/creditmeter.toml
          creditmeter run --log-level debug --batch-lines 1000
          systemctl reload creditmeter     # SIGHUP
        """
    )

    @OptionGroup var options: ConfigOptions
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error.")
    var logLevel = "info"
    @Option(name: .customLong("batch-lines"), help: ArgumentHelp(
        "Most CDR lines per transaction (charges, levels and position commit together).", valueName: "n"))
    var batchLines = 5_000

    func validate() throws {
        if batchLines < 1 { throw ValidationError("--batch-lines must be at least 1") }
    }

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            Console.error("--log-level: '\(logLevel)' is not one of trace, debug, info, notice, warning, error")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        let path = options.path
        raiseOpenFilesLimit()
        // SIGHUP's default action ends the process; until the reload service traps it (once the service
        // group runs), a `systemctl reload` during start-up must not kill the agent.
        signal(SIGHUP, SIG_IGN)
        var daemon: Daemon?
        var wait = 1
        while daemon == nil {
            do {
                let config = try options.load()
                let logger = Logger(label: "creditmeter") { JournalLogHandler(label: $0, level: level) }
                do {
                    do {
                        daemon = try Daemon(configPath: path, config: config, logger: logger, version: CreditMeter.version,
                                            batchSize: batchLines)
                    } catch let e as APIStartupError {
                        // The API's own connections, opened after the source's: the same store error.
                        throw e.store ?? e
                    }
                } catch LedgerError.unreachable(let why) where config.store.url != nil && Self.mayComeBack(why) {
                    // A shared store restarting or failing over when the agent starts: wait for it rather than
                    // exit, which systemd would retry only a few times before giving up on the unit. Nothing
                    // is read meanwhile; tailing starts from the committed positions once it answers.
                    logger.error("the PostgreSQL store cannot be reached: \(why); retrying in \(wait) s")
                    let notifier = SystemdNotifier()
                    notifier.status("waiting for the PostgreSQL store: \(why)")
                    notifier.extendStartTimeout(seconds: wait + 30)
                    try await Task.sleep(for: .seconds(wait))
                    wait = min(30, wait * 2)
                }
            } catch {
                let (status, message) = explain(error)
                Console.error(message)
                throw ExitCode(status.rawValue)
            }
        }
        try await daemon?.run()
    }
}

extension RunCommand {
    /// Whether a failed connection is one that waiting can cure (refused, timed out, the server starting,
    /// stopping or in recovery) rather than a setting to fix (password, role, database, certificate),
    /// which exits at once with libpq's message.
    static func mayComeBack(_ why: String) -> Bool {
        let fix = ["authentication failed", "password", "does not exist", "certificate", "SSL", "pg_hba.conf",
                   "permission denied", "invalid", "unsupported"]
        return !fix.contains { why.localizedCaseInsensitiveContains($0) }
    }
}

/// Raises the open-files soft limit to the hard limit: every API connection, source file (a rotated
/// one is kept open until it is read to its end) and the store take descriptors, and the usual soft
/// limit of 1024 is reached by about a thousand idle connections. No call when they are already equal
/// (systemd's `LimitNOFILE=65536` sets both), so a seccomp filter denying setrlimit is never hit.
func raiseOpenFilesLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    var raised = limit
    raised.rlim_cur = limit.rlim_max
    if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) != 0 {
        Console.error("warning: cannot raise the open-files limit from \(limit.rlim_cur) to \(limit.rlim_max): "
            + String(cString: strerror(errno)))
    }
}

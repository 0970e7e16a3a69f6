import ArgumentParser
import Daemon
import Foundation
import MeterConfig

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with the config file.",
        discussion: """
        Example:
          creditmeter config check --config /etc/creditmeter/creditmeter.toml
        """,
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the config: every key, rate deck and secret file it names.",
            discussion: """
            Refuses whatever `run` would refuse at start, without opening the store or a socket. Prints each problem as FILE:LINE: KEY: MESSAGE and exits 78, or a one-line summary and 0. A secret file that group or others can read is a warning on stderr (with its mode), not an error.

            Examples:
              creditmeter config check
              creditmeter config check --config samples/creditmeter.toml
            """)
        @OptionGroup var options: ConfigOptions

        func run() throws {
            try guarded {
                let config = try options.load()
                // The daemon's own start-up checks, so that "ok" here means `run` starts.
                let preflight = try Preflight.check(config)
                for w in preflight.warnings {
                    Console.error("warning: \(config.file)\(w.line.map { ":\($0)" } ?? ""): \(w)")
                }
                let rates = preflight.decks.values.reduce(0) { $0 + $1.count }
                Console.out("\(config.file): ok — \(config.sources.count) sources, \(config.plans.count) plans (\(rates) rates), \(config.endpoints.count) endpoints; store \(config.store.path)")
            }
        }
    }
}

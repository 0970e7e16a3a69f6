import ArgumentParser
import Foundation
import MeterConfig

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with the config file.",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the config: every key, rate deck and secret file it names.",
            discussion: "Prints each problem as FILE:LINE: KEY: MESSAGE and exits 78, or a one-line summary and 0.")
        @OptionGroup var options: ConfigOptions

        func run() throws {
            try guarded {
                let config = try options.load()
                let decks = try config.loadRateDecks()
                var problems: [String] = []
                for (i, e) in config.endpoints.enumerated() {
                    for (key, file) in [("secret_file", e.secretFile), ("token_file", e.tokenFile)] {
                        if let file, !FileManager.default.isReadableFile(atPath: file) {
                            problems.append("endpoint[\(i)].\(key): \(file) is not a readable file")
                        }
                    }
                }
                if let f = config.api.adminTokenFile, !FileManager.default.isReadableFile(atPath: f) {
                    problems.append("api.admin_token_file: \(f) is not a readable file")
                }
                if !problems.isEmpty {
                    throw CLIError(.config, problems.map { "\(config.file): \($0)" }.joined(separator: "\n"))
                }
                let rates = decks.values.reduce(0) { $0 + $1.count }
                Console.out("\(config.file): ok — \(config.sources.count) sources, \(config.plans.count) plans (\(rates) rates), \(config.endpoints.count) endpoints; store \(config.store.path)")
            }
        }
    }
}

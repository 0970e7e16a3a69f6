import ArgumentParser

@main
struct CreditMeter: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "creditmeter",
        abstract: "Meters prepaid calling credit from a PBX's call-detail records.",
        discussion: """
        creditmeter reads CDR files (Asterisk cdr_csv, FreeSWITCH mod_cdr_csv, any delimited file, JSON lines), charges each call to the client that owns its account code under that client's rate plan, and keeps every client's Available | Used | Assigned credit in one SQLite file.

        Examples (first steps):
          creditmeter config check --config creditmeter.toml
          creditmeter clients create --username alice --first-name Alice \\
              --last-name Smith --email alice@example.com --account 1001 \\
              --password-stdin < password.txt
          creditmeter clients recharge alice 100
          creditmeter replay --format asterisk-csv Master.csv
          creditmeter clients list

        The config file comes from --config, else $CREDITMETER_CONFIG, else /etc/creditmeter/creditmeter.toml. Exit codes follow sysexits: 64 usage, 65 bad data, 66 no input, 74 I/O, 78 config. --json output is pretty-printed with two-space indents and keys sorted, in every command.
        """,
        version: version,
        subcommands: [
            RunCommand.self, ClientsCommand.self, ReplayCommand.self, CDRGenCommand.self, QuarantineCommand.self, OutboxCommand.self,
            RerateCommand.self, PurgeCommand.self, StatusCommand.self, ConfigCommand.self, StoreCommand.self,
        ]
    )
}

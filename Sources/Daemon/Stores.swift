import Ledger
import LedgerPostgres
import MeterConfig

extension StoreOpener {
    /// The store `config` names: the SQLite ledger at `[store] path`, or the PostgreSQL database at
    /// `[store] url` (with `password_file`'s password) as this host's `[node] name`.
    public static func configured(_ config: Config) throws -> StoreOpener {
        guard let url = config.store.url else { return .sqlite(path: config.store.path, thresholds: config.thresholds) }
        let password = try config.store.passwordFile.map { f throws(ConfigError) in try StoreConfig.readPassword(f) }
        let settings = PostgresSettings(url: url, password: password, node: config.node.name)
        let thresholds = config.thresholds
        return StoreOpener(location: StoreConfig.redacted(url), key: "store.url", shared: true) { (_) throws(LedgerError) -> any AgentStore in
            try PostgresLedger(settings: settings, thresholds: thresholds)
        }
    }
}

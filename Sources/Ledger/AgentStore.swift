import MeterCore

/// Everything the daemon asks of a store — tailing's batches, authorize's holds, the admin API, the
/// console and the purge — whichever engine holds it: SQLite's `Ledger` on one host, or PostgreSQL's
/// shared by several. The daemon's services each open a connection of their own through a `StoreOpener`.
public protocol AgentStore: MeteringStore, HoldStore {
    /// Changes whenever clients or accounts may have changed by another connection's commit (the CLI,
    /// another agent); the daemon compares it between batches to know when to reload what it keeps in
    /// memory. Throws when the store cannot be reached, so a caller can report it.
    func dataVersion() throws(LedgerError) -> Int64
    /// Counts files of `source` that were given up (provably gone with lines unread), for `status`.
    func recordGivenUp(source: String, files: Int, bytes: Int64, now: Int64) throws(LedgerError)
    /// This host's given-up tally for `source`.
    func givenUp(source: String) throws(LedgerError) -> (files: Int64, bytes: Int64)
    /// This host's charges since `since` (unix seconds): how many and their cost.
    func chargedSince(_ since: Int64) throws(LedgerError) -> (count: Int, cost: Int64)
    /// The start time of the newest CDR this host charged from `source`.
    func lastChargedStart(source: String) throws(LedgerError) -> Int64?

    /// Changes the given fields; `accounts` replaces the whole set (empty means `[username]`).
    func editClient(username: String, fields: ClientFields, accounts: [String]?, plan: String?,
                    passwordHash: String?, now: Int64) throws(LedgerError) -> ClientRecord
    func setDisabled(username: String, _ disabled: Bool, now: Int64) throws(LedgerError) -> ClientRecord
    /// The client's stored password hash, nil for an unknown client.
    func passwordHash(username: String) throws(LedgerError) -> String?

    /// One page of clients whose username, names, email or company contain `search`, by username.
    func clientPage(search: String, limit: Int, offset: Int) throws(LedgerError) -> (total: Int, clients: [ClientRecord])
    func recentCalls(username: String, limit: Int) throws(LedgerError) -> [CallRecord]
    func recentRecharges(username: String, limit: Int) throws(LedgerError) -> [RechargeRecord]

    /// Disabled clients whose disabling is older than `disabledBefore` (unix seconds).
    func purgeCandidates(disabledBefore: Int64) throws(LedgerError) -> [ClientRecord]
    /// Deletes the client and everything that refers to it.
    func purge(username: String, now: Int64) throws(LedgerError)
}

extension Ledger: AgentStore {}

/// What a store connection is for: each kind is tuned the way its work wants (SQLite's holds connection
/// skips the fsync per commit, for one).
public enum StoreRole: String, Sendable {
    case source, api, holds, receiver, delivery, housekeeping
}

/// Opens connections to the configured store, one per service, so no service waits behind another's
/// transaction on a shared connection.
public struct StoreOpener: Sendable {
    /// Where the store is, fit for a log line: a SQLite path, or a PostgreSQL URL (which never holds a password).
    public let location: String
    /// The config key that names the store, for startup errors: `store.path` or `store.url`.
    public let key: String
    /// True when several agents may share the store (PostgreSQL).
    public let shared: Bool
    /// Connections authorize answers through side by side: one for SQLite, whose writers take turns
    /// anyway; several for PostgreSQL, where one connection's round trips would cap an agent's answers.
    public var holdsConnections: Int { shared ? 4 : 1 }
    private let connect: @Sendable (StoreRole) throws(LedgerError) -> any AgentStore

    public init(location: String, key: String, shared: Bool,
                connect: @escaping @Sendable (StoreRole) throws(LedgerError) -> any AgentStore) {
        self.location = location
        self.key = key
        self.shared = shared
        self.connect = connect
    }

    public func open(_ role: StoreRole) throws(LedgerError) -> any AgentStore { try connect(role) }

    /// The SQLite ledger at `path`.
    public static func sqlite(path: String, thresholds: Thresholds) -> StoreOpener {
        StoreOpener(location: path, key: "store.path", shared: false) { (role) throws(LedgerError) -> any AgentStore in
            let ledger = try Ledger(path: path, thresholds: thresholds)
            if role == .holds {
                // Each answer with a call is a commit: at 1,000 a second an fsync each is the whole budget.
                // A hold lost with the machine is a reservation of a call that cannot go on either.
                try ledger.skipSyncPerCommit()
                // The API's main connection checkpoints (`checkpointPassively`), so an answer never does.
                try ledger.leaveCheckpointsToOthers()
                ledger.waitForWriters(milliseconds: 1000)
            }
            return ledger
        }
    }
}

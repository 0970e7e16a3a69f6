import MeterCore

/// What replay and the clients commands need of a store, whichever engine holds it: SQLite's `Ledger`
/// on one PBX host, or PostgreSQL's shared by several. Both give the same answers for the same calls;
/// the ledger test suites that take a `MeteringStore` run against each.
public protocol MeteringStore: AnyObject, Sendable {
    /// The level boundaries used from the next balance change on.
    var thresholds: Thresholds { get set }

    /// Creates an active client with nothing assigned; `accounts` empty means `[username]`.
    func createClient(username: String, fields: ClientFields, accounts: [String], plan: String,
                      passwordHash: String, now: Int64) throws(LedgerError) -> ClientRecord
    /// Adds `amount` µcr to assigned; the same `key` again changes nothing and returns `applied: false`.
    func recharge(username: String, amount: Int64, key: String?, now: Int64) throws(LedgerError) -> (client: ClientRecord, applied: Bool)
    func client(username: String) throws(LedgerError) -> ClientRecord?
    /// Every client, by username.
    func clients() throws(LedgerError) -> [ClientRecord]
    /// Account code → the client it bills to, for the rater.
    func accountDirectory() throws(LedgerError) -> [String: AccountOwner]

    /// The committed read position of this host's source `name`, or nil if it was never read.
    func sourcePosition(name: String) throws(LedgerError) -> Checkpoint?
    /// One batch in one transaction: charges (an identity this host already charged is a duplicate),
    /// Used, level latches and their alerts, balance events, quarantine entries and the read position.
    /// On any error nothing of the batch is kept.
    func commit(_ batch: ChargeBatch, now: Int64) throws(LedgerError) -> BatchOutcome
    /// Runs `body`, a bulk ingest such as a replay, with the store tuned for it.
    func withBulkIngest<T>(_ body: () throws -> T) throws -> T
    /// Everything `body` commits through this store is rolled back at the end.
    func dryRun<T>(_ body: () throws -> T) throws -> T
    /// How a bulk ingest commits several batches in one transaction (see `inOneTransaction`); nil when
    /// each batch is its own transaction.
    var bulkGrouping: BulkGrouping? { get }
    /// Runs `body` in one transaction, each commit inside it a part of that transaction.
    func inOneTransaction<T>(_ body: () throws -> T) throws -> T
    /// Up to `count` more connections to the same store, each committing batches of its own at the same
    /// time as this one (a replay's batches then commit side by side). A store with one writer at a time,
    /// such as SQLite's, returns none.
    func moreWriters(_ count: Int) throws(LedgerError) -> [any MeteringStore]

    /// This host's quarantined lines, oldest first; `limit` nil means all, `reason` filters by exact reason.
    func quarantine(limit: Int?, reason: String?) throws(LedgerError) -> [QuarantineItem]
    /// How many lines this host has in quarantine.
    func quarantineCount() throws(LedgerError) -> Int

    /// Rows and µcr in usage, entries in quarantine.
    func totals() throws(LedgerError) -> (usageRows: Int, usageCost: Int64, quarantined: Int)
    /// The oldest `limit` events of the outbox, in the order they were queued.
    func outboxEvents(limit: Int) throws(LedgerError) -> [(eventID: String, type: String, username: String, body: String)]
}

/// How a bulk ingest (a replay) groups its batches into transactions.
public struct BulkGrouping: Sendable, Equatable {
    /// Charges and quarantine entries one group holds at most.
    public var rows: Int
    /// A group holding at least this many rows ends early once it has charged more than `clients`
    /// distinct clients.
    public var minimumRows: Int
    public var clients: Int
    /// Lines a replay reads into one batch. Smaller than a transaction-per-batch store's 5,000: the group
    /// makes the transaction whatever the batch, and a replay holds three batches in memory at a time.
    public var batchLines: Int

    public init(rows: Int, minimumRows: Int, clients: Int, batchLines: Int = 2_500) {
        self.rows = max(1, rows)
        self.minimumRows = max(1, minimumRows)
        self.clients = max(0, clients)
        self.batchLines = max(1, batchLines)
    }
}

extension MeteringStore {
    /// A store with several writers (PostgreSQL) commits batches side by side instead of grouping them.
    public var bulkGrouping: BulkGrouping? { nil }
    public func inOneTransaction<T>(_ body: () throws -> T) throws -> T { try body() }
}

extension Ledger: MeteringStore {
    /// SQLite lets one connection write at a time: a second writer would only wait for the first.
    public func moreWriters(_ count: Int) throws(LedgerError) -> [any MeteringStore] { [] }
}

import Foundation
import Ledger
import MeterCore

/// Where the PostgreSQL store is and which host this agent is.
public struct PostgresSettings: Sendable {
    /// `postgresql://user@host:port/db?sslmode=…`; never contains a password.
    public var url: String
    /// From `[store] password_file`, already stripped of its trailing newline.
    public var password: String?
    /// `[node] name`: scopes CDR identity, read positions and quarantine entries.
    public var node: String

    public init(url: String, password: String?, node: String) {
        self.url = url
        self.password = password
        self.node = node
    }
}

/// The ledger on PostgreSQL, shared by the agents of several PBX hosts: the same answers and events as
/// SQLite's `Ledger` for the same calls, with charge identity and read positions scoped by node.
///
/// `@unchecked Sendable` because every public method takes one recursive lock before it touches the one
/// connection, so callers on different tasks are serialised; recursive so a `dryRun` body may call back
/// in on the same thread.
public final class PostgresLedger: MeteringStore, @unchecked Sendable {
    let db: PGConnection
    let node: String
    private let lock = NSRecursiveLock()
    private var currentThresholds: Thresholds
    /// Kept for `moreWriters`; the password in it is never logged or shown.
    private let settings: PostgresSettings
    /// Open transactions and savepoints on the connection; under the lock.
    private var depth = 0
    /// Transactions run again after a deadlock or serialization failure, for tests; under the lock.
    package private(set) var retriedTransactions = 0
    /// How many of this node's newest charges `lastChargedStart` reads before it falls back to a scan, as
    /// `Ledger.lastStartWalk`; tests lower it. Under the lock.
    package var lastStartWalk: Int64 = 100_000
    /// For `dataVersion`, under the lock: the notifications counted so far, and the connection session
    /// (`PGConnection.resets`) whose LISTEN they came through; -1 before the first LISTEN.
    var changeCount: Int64 = 0
    var listenedSession = -1
    /// Calls of `outboxSequence` that found events to fan out, so each returns a new value; under the lock.
    var sequenceReads: Int64 = 0

    /// Connects and migrates. A connection that cannot be made is `.unreachable`.
    public init(settings: PostgresSettings, thresholds: Thresholds = .default) throws(LedgerError) {
        db = try PGConnection(url: settings.url, password: settings.password)
        self.settings = settings
        node = settings.node
        currentThresholds = thresholds
        try migrate(url: settings.url)
    }

    /// Applies the missing migrations in one transaction under the migration lock.
    private func migrate(url: String) throws(LedgerError) {
        try locked { () throws(LedgerError) in
            _ = try transaction("migrating the schema", retryOn: Self.transient) { () throws(LedgerError) -> Void in
                var p = PGParams()
                p.int8(PostgresSchema.migrationLock)
                try db.query("SELECT pg_advisory_xact_lock($1)", p, "waiting for the migration lock")
                // Looked up rather than CREATE TABLE IF NOT EXISTS, which needs the CREATE privilege even when the
                // table is there: an agent may run as a role that can only read and write a migrated store.
                if try db.queryInt("SELECT count(*) FROM pg_class WHERE oid = to_regclass('schema_migrations')",
                                   "looking for schema_migrations") == 0 {
                    try db.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)",
                                   "creating schema_migrations")
                }
                let have = try db.query("SELECT coalesce(max(version), 0)::int8 FROM schema_migrations",
                                        "reading the schema version").int64(0, 0)
                let known = PostgresSchema.latestVersion
                guard have <= Int64(known) else {
                    throw .schemaTooNew(path: url, found: Int32(clamping: have), known: known)
                }
                let now = Int64(Date().timeIntervalSince1970)
                for m in PostgresSchema.migrations where Int64(m.version) > have {
                    try db.execute(m.sql, "applying migration \(m.version)")
                    var v = PGParams()
                    v.int8(Int64(m.version))
                    v.int8(now)
                    try db.query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1::int8::integer, $2)", v,
                                 "recording migration \(m.version)")
                }
            }
        }
    }

    /// The level boundaries used from the next balance change on; stored latches are not recomputed.
    public var thresholds: Thresholds {
        get { locked { currentThresholds } }
        set { locked { currentThresholds = newValue } }
    }

    // MARK: locking and transactions

    func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Runs a read under the lock, first reconnecting a connection the server dropped since the last call.
    func reading<T>(_ body: () throws(LedgerError) -> T) throws(LedgerError) -> T {
        try locked { () throws(LedgerError) -> T in
            if depth == 0 { try db.ensureConnected() }
            return try body()
        }
    }

    /// What another writer can make a transaction fail with, which running it again resolves.
    static let transient: Set<String> = [SQLState.deadlock, SQLState.serialization]
    /// For the client calls, also a unique key taken by another agent between the checks and the insert:
    /// run again, the checks see it and give the same error as SQLite does.
    static let transientOrTaken: Set<String> = transient.union([SQLState.uniqueViolation])
    static let attempts = 8

    /// Runs `body` under the lock in one transaction (a savepoint inside a dry run), retried whole on
    /// the SQLSTATEs in `retryOn`.
    /// `settings` (SET LOCAL statements) go to the server with the BEGIN, in the same round trip.
    func write<T>(_ purpose: String, retryOn: Set<String> = transient, settings: String? = nil,
                  _ body: () throws(LedgerError) -> T) throws(LedgerError) -> T {
        try locked { () throws(LedgerError) -> T in try transaction(purpose, retryOn: retryOn, settings: settings, body) }
    }

    /// Call with the lock held.
    private func transaction<T>(_ purpose: String, retryOn: Set<String>, settings: String? = nil,
                                _ body: () throws(LedgerError) -> T) throws(LedgerError) -> T {
        var attempt = 1
        while true {
            try open(purpose, settings: settings)
            do {
                let value = try body()
                try close(purpose)
                return value
            } catch {
                rollback()
                guard attempt < Self.attempts, case .postgres(let state, _, _) = error, retryOn.contains(state) else { throw error }
                // The other writer holds its locks until it commits: give it a moment, a little longer each
                // time and jittered so two retrying writers do not meet again.
                let base = UInt32(5_000 << min(attempt - 1, 5))
                usleep(base + UInt32.random(in: 0...base))
                attempt += 1
                retriedTransactions += 1
            }
        }
    }

    /// One statement of a pipelined transaction.
    typealias Statement = (sql: String, params: PGParams, context: String)

    /// A transaction in two round trips, for the short ones a latency budget is kept for (authorize):
    /// BEGIN, `settings` and `first` sent together; `then` reads their results and returns its value and
    /// the statements to send with the COMMIT. Retried whole as `write` is. Inside a dry run (a savepoint)
    /// the same statements run one at a time.
    func pipelinedWrite<T>(_ purpose: String, settings: String, first: [Statement],
                           then: ([PGResult]) throws(LedgerError) -> (value: T, finish: [Statement])) throws(LedgerError) -> T {
        try locked { () throws(LedgerError) -> T in
            if depth > 0 {
                return try transaction(purpose, retryOn: Self.transient, settings: settings) { () throws(LedgerError) -> T in
                    var results: [PGResult] = []
                    for s in first { results.append(try db.query(s.sql, s.params, s.context)) }
                    let (value, finish) = try then(results)
                    for s in finish { try db.query(s.sql, s.params, s.context) }
                    return value
                }
            }
            var attempt = 1
            while true {
                try db.ensureConnected()
                do throws(LedgerError) {
                    let begin: [Statement] = [("BEGIN", PGParams(), "starting a transaction for \(purpose)"),
                                              (settings, PGParams(), "setting up the transaction for \(purpose)")]
                    let results = try db.pipeline(begin + first)
                    let (value, finish) = try then(Array(results.dropFirst(begin.count)))
                    _ = try db.pipeline(finish + [("COMMIT", PGParams(), "committing the transaction for \(purpose)")])
                    return value
                } catch {
                    // Nothing to undo after a failed COMMIT or a lost connection; the error is dropped then.
                    try? db.execute("ROLLBACK", "rolling back")
                    guard attempt < Self.attempts, case .postgres(let state, _, _) = error, Self.transient.contains(state) else {
                        throw error
                    }
                    let base = UInt32(5_000 << min(attempt - 1, 5))
                    usleep(base + UInt32.random(in: 0...base))
                    attempt += 1
                    retriedTransactions += 1
                }
            }
        }
    }

    private func open(_ purpose: String, settings: String? = nil) throws(LedgerError) {
        let also = settings.map { "; " + $0 } ?? ""
        if depth == 0 {
            try db.ensureConnected()
            try db.execute("BEGIN" + also, "starting a transaction for \(purpose)")
        } else {
            try db.execute("SAVEPOINT sp\(depth)" + also, "opening a savepoint for \(purpose)")
        }
        depth += 1
    }

    /// On failure the transaction (or savepoint) is still counted open; the caller rolls it back.
    private func close(_ purpose: String) throws(LedgerError) {
        if depth == 1 {
            try db.execute("COMMIT", "committing the transaction for \(purpose)")
        } else {
            try db.execute("RELEASE sp\(depth - 1)", "releasing the savepoint of \(purpose)")
        }
        depth -= 1
    }

    /// Undoes the innermost transaction or savepoint. Errors are dropped: after a failed COMMIT or a lost
    /// connection there is nothing left to undo.
    private func rollback() {
        depth -= 1
        if depth == 0 {
            try? db.execute("ROLLBACK", "rolling back")
        } else {
            try? db.execute("ROLLBACK TO SAVEPOINT sp\(depth); RELEASE sp\(depth)", "rolling back to a savepoint")
        }
    }

    /// Everything `body` does through this store (any number of commits, each then a savepoint) is rolled
    /// back at the end; the values it returns describe what would have happened.
    /// New connections with this one's settings and thresholds: PostgreSQL runs their transactions side by
    /// side, and batches charging the same clients queue only for the short update of Used.
    public func moreWriters(_ count: Int) throws(LedgerError) -> [any MeteringStore] {
        var out: [any MeteringStore] = []
        for _ in 0..<max(0, count) { out.append(try PostgresLedger(settings: settings, thresholds: thresholds)) }
        return out
    }

    public func dryRun<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        try open("a dry run")
        defer { rollback() }
        return try body()
    }

    /// Runs `body` as is. SQLite's tuning (page cache, checkpoint interval) has no counterpart on the
    /// client side here: a batch's cost is the server's (heap, indexes, WAL, one fsync per commit), and
    /// the one server knob that would help, synchronous_commit off, could lose batches already reported
    /// committed, with their read positions.
    public func withBulkIngest<T>(_ body: () throws -> T) throws -> T {
        try body()
    }

    // MARK: clients

    public func createClient(username: String, fields: ClientFields, accounts: [String], plan: String,
                             passwordHash: String, now: Int64) throws(LedgerError) -> ClientRecord {
        let codes = try Ledger.validateNewClient(username: username, fields: fields, accounts: accounts, plan: plan,
                                                 passwordHash: passwordHash)
        return try write("creating client '\(username)'", retryOn: Self.transientOrTaken) { () throws(LedgerError) -> ClientRecord in
            if try clientID(username: username) != nil { throw .duplicateUsername(username) }
            if let email = fields.email, try emailOwner(email) != nil { throw .duplicateEmail(email) }
            try checkAccountsFree(codes)
            let level = Meter(assigned: 0, used: 0).level(currentThresholds)
            let given = ClientRecord.empty.merged(with: fields)
            var p = PGParams()
            p.text(username)
            for (_, value) in given.fields.named { p.text(value ?? "") }
            p.text(passwordHash)
            p.text(plan)
            p.text(level.rawValue)
            p.int8(now)
            let r = try db.query("""
                INSERT INTO clients (username, \(ProfileField.allCases.map(\.rawValue).joined(separator: ", ")),
                    password_hash, status, plan, assigned, used, level, created_at, updated_at, disabled_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'active', $15, 0, 0, $16, $17, $17, NULL)
                RETURNING \(Ledger.clientColumns)
                """, p, "inserting a client")
            guard r.rows == 1 else { throw .postgres(sqlstate: "", message: "no row returned", context: "inserting a client") }
            var record = Self.readClient(r, 0)
            record.accounts = codes
            var a = PGParams()
            a.textArray(codes)
            a.int8(record.id)
            try db.query("INSERT INTO accounts (code, client_id) SELECT unnest($1::text[]), $2", a, "assigning account codes")
            try writeEvent("client.created", record, now: now)
            return record
        }
    }

    public func recharge(username: String, amount: Int64, key: String?, now: Int64) throws(LedgerError) -> (client: ClientRecord, applied: Bool) {
        try Ledger.checkRecharge(amount: amount, key: key)
        return try write("recharging client '\(username)'", retryOn: Self.transientOrTaken) { () throws(LedgerError) -> (client: ClientRecord, applied: Bool) in
            // Locked first: a second agent recharging with the same key waits here, then sees the first's row.
            let old = try requireClient(username: username, forUpdate: true)
            if let key {
                var p = PGParams()
                p.text(key)
                let q = try db.query("""
                    SELECT r.amount, c.username FROM recharges r JOIN clients c ON c.id = r.client_id
                    WHERE r.idempotency_key = $1
                    """, p, "looking up a recharge key")
                if q.rows > 0 {
                    try Ledger.checkRepeatedRecharge(key: key, username: username, amount: amount,
                                                     seenClient: q.text(0, 1), seenAmount: q.int64(0, 0))
                    return (old, false)
                }
            }
            let assigned = try Ledger.rechargedAssigned(old.meter.assigned, plus: amount)
            var p = PGParams()
            p.int8(old.id)
            p.int8(amount)
            p.text(key)
            p.int8(now)
            try db.query("INSERT INTO recharges (client_id, amount, idempotency_key, at) VALUES ($1, $2, $3, $4)", p,
                         "recording a recharge")
            let record = try setAssigned(assigned, of: old, now: now, event: "client.recharged",
                                         extra: [("amount", .string(Money.format(amount)))])
            return (record, true)
        }
    }

    /// As `Ledger.setAssigned`: stored with its event, the level relatched (with its alert) and the
    /// balance marked changed. The client row is locked by the caller.
    private func setAssigned(_ assigned: Int64, of old: ClientRecord, now: Int64, event: String,
                             extra: [(String, JSONValue)]) throws(LedgerError) -> ClientRecord {
        var p = PGParams()
        p.int8(old.id)
        p.int8(assigned)
        p.int8(now)
        let r = try db.query("UPDATE clients SET assigned = $2, updated_at = $3 WHERE id = $1 RETURNING \(Ledger.clientColumns)",
                             p, "changing a client's assigned")
        guard r.rows == 1 else { throw .unknownClient(old.username) }
        var record = Self.readClient(r, 0)
        record.accounts = old.accounts
        try writeEvent(event, record, now: now, extra: extra)
        let latch = relatchEvents([(record.id, record.username, record.meter, record.level)], now: now)
        if !latch.changes.isEmpty {
            try storeLatches(latch, now: now)
            record.level = record.meter.level(currentThresholds)
        }
        var d = PGParams()
        d.int8(record.id)
        d.int8(now)
        try db.query("INSERT INTO balance_dirty (client_id, since) VALUES ($1, $2) ON CONFLICT (client_id) DO NOTHING", d,
                     "marking a balance as changed")
        return record
    }

    public func client(username: String) throws(LedgerError) -> ClientRecord? {
        try reading { () throws(LedgerError) -> ClientRecord? in try loadClient(username: username, forUpdate: false) }
    }

    public func clients() throws(LedgerError) -> [ClientRecord] {
        try locked { () throws(LedgerError) -> [ClientRecord] in
            // One snapshot for both reads: accounts and clients as of the same moment.
            try transaction("listing clients", retryOn: Self.transient) { () throws(LedgerError) -> [ClientRecord] in
                var codes: [Int64: [String]] = [:]
                // COLLATE "C": byte order, as SQLite's BINARY, whatever the database's locale.
                let a = try db.query("SELECT client_id, code FROM accounts ORDER BY code COLLATE \"C\"", "listing accounts")
                for i in 0..<a.rows { codes[a.int64(i, 0), default: []].append(a.text(i, 1)) }
                let s = try db.query("SELECT \(Ledger.clientColumns) FROM clients ORDER BY username COLLATE \"C\"", "listing clients")
                return (0..<s.rows).map { i in
                    var r = Self.readClient(s, i)
                    r.accounts = codes[r.id] ?? []
                    return r
                }
            }
        }
    }

    public func accountDirectory() throws(LedgerError) -> [String: AccountOwner] {
        try reading { () throws(LedgerError) -> [String: AccountOwner] in
            let s = try db.query("""
                SELECT a.code, c.id, c.username, c.plan, c.status FROM accounts a JOIN clients c ON c.id = a.client_id
                """, "reading the account directory")
            var out: [String: AccountOwner] = [:]
            for i in 0..<s.rows {
                out[s.text(i, 0)] = AccountOwner(clientID: s.int64(i, 1), username: s.text(i, 2), plan: s.text(i, 3),
                                                 status: ClientStatus(rawValue: s.text(i, 4)) ?? .active)
            }
            return out
        }
    }

    // MARK: reads for tests and replay's verification

    /// Over the whole store, every node's rows.
    public func totals() throws(LedgerError) -> (usageRows: Int, usageCost: Int64, quarantined: Int) {
        try reading { () throws(LedgerError) -> (usageRows: Int, usageCost: Int64, quarantined: Int) in
            // sum(bigint) is numeric: cast back, which fails on overflow rather than rounding.
            let r = try db.query("""
                SELECT (SELECT count(*) FROM usage), (SELECT coalesce(sum(cost), 0)::int8 FROM usage),
                    (SELECT count(*) FROM quarantine)
                """, "totalling usage")
            return (Int(r.int64(0, 0)), r.int64(0, 1), Int(r.int64(0, 2)))
        }
    }

    public func outboxEvents(limit: Int) throws(LedgerError) -> [(eventID: String, type: String, username: String, body: String)] {
        try reading { () throws(LedgerError) -> [(eventID: String, type: String, username: String, body: String)] in
            var p = PGParams()
            p.int8(Int64(limit))
            let r = try db.query("SELECT event_id, type, username, body FROM outbox ORDER BY id LIMIT $1", p, "listing the outbox")
            return (0..<r.rows).map { (r.text($0, 0), r.text($0, 1), r.text($0, 2), r.text($0, 3)) }
        }
    }

    // MARK: helpers (call with the lock held)

    /// Reads a row selected with `Ledger.clientColumns`; accounts are filled in by the caller.
    static func readClient(_ r: PGResult, _ i: Int) -> ClientRecord {
        var c = ClientRecord.empty
        c.id = r.int64(i, 0)
        c.username = r.text(i, 1)
        for (k, field) in ProfileField.allCases.enumerated() { c[field] = r.text(i, 2 + k) }
        // The table's CHECK constraints admit only known values; the fallbacks are never taken.
        c.status = ClientStatus(rawValue: r.text(i, 14)) ?? .active
        c.plan = r.text(i, 15)
        c.meter = Meter(assigned: r.int64(i, 16), used: r.int64(i, 17))
        c.level = Level(rawValue: r.text(i, 18)) ?? .ok
        c.createdAt = r.int64(i, 19)
        c.updatedAt = r.int64(i, 20)
        c.disabledAt = r.optionalInt64(i, 21)
        return c
    }

    func loadClient(username: String, forUpdate: Bool) throws(LedgerError) -> ClientRecord? {
        var p = PGParams()
        p.text(username)
        let s = try db.query("SELECT \(Ledger.clientColumns) FROM clients WHERE username = $1\(forUpdate ? " FOR NO KEY UPDATE" : "")",
                             p, "reading a client")
        guard s.rows > 0 else { return nil }
        var r = Self.readClient(s, 0)
        var a = PGParams()
        a.int8(r.id)
        let codes = try db.query("SELECT code FROM accounts WHERE client_id = $1 ORDER BY code COLLATE \"C\"", a,
                                 "reading a client's accounts")
        r.accounts = (0..<codes.rows).map { codes.text($0, 0) }
        return r
    }

    func requireClient(username: String, forUpdate: Bool) throws(LedgerError) -> ClientRecord {
        guard let r = try loadClient(username: username, forUpdate: forUpdate) else { throw .unknownClient(username) }
        return r
    }

    private func clientID(username: String) throws(LedgerError) -> Int64? {
        var p = PGParams()
        p.text(username)
        let r = try db.query("SELECT id FROM clients WHERE username = $1", p, "looking up a username")
        return r.rows > 0 ? r.int64(0, 0) : nil
    }

    /// The username holding `email` (case-insensitively), other than `excluding`; empty emails never collide.
    func emailOwner(_ email: String, excluding: Int64? = nil) throws(LedgerError) -> String? {
        guard !email.isEmpty else { return nil }
        var p = PGParams()
        p.text(email)
        p.int8(excluding)
        // Spelled like the partial index so it is used.
        let fold = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'"
        let r = try db.query("""
            SELECT username FROM clients WHERE translate(email, \(fold)) = translate($1, \(fold)) AND email <> ''
                AND id IS DISTINCT FROM $2
            """, p, "checking an email is free")
        return r.rows > 0 ? r.text(0, 0) : nil
    }

    /// The first of `codes` (in their order) held by a client other than `clientID`, as SQLite reports it.
    func checkAccountsFree(_ codes: [String], for clientID: Int64? = nil) throws(LedgerError) {
        var p = PGParams()
        p.textArray(codes)
        p.int8(clientID)
        let r = try db.query("""
            SELECT a.code, c.username FROM unnest($1::text[]) WITH ORDINALITY AS x(code, ord)
            JOIN accounts a ON a.code = x.code JOIN clients c ON c.id = a.client_id
            WHERE a.client_id IS DISTINCT FROM $2 ORDER BY x.ord LIMIT 1
            """, p, "checking account codes are free")
        if r.rows > 0 { throw .accountTaken(code: r.text(0, 0), owner: r.text(0, 1)) }
    }

    func writeEvent(_ type: String, _ record: ClientRecord, now: Int64, extra: [(String, JSONValue)] = []) throws(LedgerError) {
        let body = EventFactory.body(type: type, now: now, data: EventFactory.clientData(record, currentThresholds) + extra)
        try insertEvents([(type, record.id, record.username, body)], now: now)
    }

    /// Queues events in the order given (the outbox id follows it), in one statement.
    func insertEvents(_ events: [(type: String, clientID: Int64?, username: String, body: String)], now: Int64) throws(LedgerError) {
        guard !events.isEmpty else { return }
        var p = PGParams()
        p.textArray(events.map { _ in EventFactory.newEventID() })
        p.textArray(events.map(\.type))
        p.int8Array(events.map(\.clientID))
        p.textArray(events.map(\.username))
        p.textArray(events.map(\.body))
        p.int8(now)
        try db.query("""
            INSERT INTO outbox (event_id, type, client_id, username, body, created_at, next_attempt_at)
            SELECT e.event_id, e.type, e.client_id, e.username, e.body, $6, $6
            FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[]) WITH ORDINALITY
                AS e(event_id, type, client_id, username, body, ord)
            ORDER BY e.ord
            """, p, "queueing events")
    }

    /// Level moves of clients whose meter changed, compared with their stored latch, in the order given;
    /// nothing is written yet.
    func relatchEvents(_ clients: [(id: Int64, username: String, meter: Meter, stored: Level)], now: Int64)
        -> (changes: [LevelChange], ids: [Int64], events: [(type: String, clientID: Int64?, username: String, body: String)]) {
        let t = currentThresholds
        var changes: [LevelChange] = [], ids: [Int64] = []
        var events: [(type: String, clientID: Int64?, username: String, body: String)] = []
        for c in clients {
            guard let move = Ledger.latchMove(username: c.username, meter: c.meter, stored: c.stored, t, now: now) else { continue }
            changes.append(move.change)
            ids.append(c.id)
            events.append((move.type, c.id, c.username, move.body))
        }
        return (changes, ids, events)
    }

    /// Writes the latches and alert events `relatchEvents` worked out.
    func storeLatches(_ latch: (changes: [LevelChange], ids: [Int64], events: [(type: String, clientID: Int64?, username: String, body: String)]),
                      now: Int64) throws(LedgerError) {
        var p = PGParams()
        p.int8Array(latch.ids)
        p.textArray(latch.changes.map(\.to.rawValue))
        try db.query("""
            UPDATE clients SET level = x.level FROM unnest($1::int8[], $2::text[]) AS x(id, level) WHERE clients.id = x.id
            """, p, "latching clients' levels")
        try insertEvents(latch.events, now: now)
    }
}

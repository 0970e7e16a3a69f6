import Foundation
import MeterCore

/// The durable ledger: clients and balances, charged usage, quarantine, source positions and the event outbox.
///
/// `@unchecked Sendable` because every public method takes one recursive lock before it touches the
/// store, so callers on different tasks are serialised; the lock is recursive so a `dryRun` body (and a
/// `retryQuarantine` decider) may call back into the ledger on the same thread.
public final class Ledger: @unchecked Sendable {
    package let store: Store
    private let lock = NSRecursiveLock()
    private var currentThresholds: Thresholds
    /// Tests set this to match a chunk's RETURNING rows by key, the path taken should SQLite ever return
    /// them out of insertion order. Read and written under the ledger's lock.
    var matchInsertsByKey = false
    /// `pricings` ids by text, of rows that exist as of `pricingRollbacks` rollbacks: any rollback since may
    /// have undone an insert, so the cache is then emptied. Under the ledger's lock.
    var pricingIDs: [String: Int64] = [:]
    var pricingRollbacks = 0
    /// How many of the newest charges `lastChargedStart` reads before it falls back to a full scan; tests
    /// lower it. Under the ledger's lock.
    var lastStartWalk = 100_000

    /// Opens the database file and migrates it. With `create` a missing store is made owner-only (0600,
    /// its missing directories 0700) whatever the umask; without it a missing store is `.noStore` and
    /// nothing is created, which is what a command that only reads wants at a mistyped path.
    public init(path: String, thresholds: Thresholds = .default, create: Bool = true) throws(LedgerError) {
        store = try Store(path: path, create: create)
        currentThresholds = thresholds
    }

    /// The level boundaries used from the next balance change on; stored latches are not recomputed.
    public var thresholds: Thresholds {
        get { locked { currentThresholds } }
        set { locked { currentThresholds = newValue } }
    }

    package func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Runs `body` under the lock in one transaction.
    package func write<T>(_ purpose: String, _ body: () throws(LedgerError) -> T) throws(LedgerError) -> T {
        try locked { () throws(LedgerError) -> T in try store.transaction(purpose, body) }
    }

    /// How a bulk ingest groups its batches. A SQLite transaction's fixed cost is above all the index
    /// pages it rewrites: every batch dirties a leaf of the index by client for each client it charges,
    /// and each commit writes every such page to the WAL again. So a replay's batches are committed a
    /// dozen or so at a time (40,000 rows; `bench/usage_floor.sh` measures 5,000-row transactions at 1.5
    /// times the cost), while each batch stays as small as the memory budget wants. A group that has
    /// charged more than 250 clients ends at 5,000 rows (what one transaction held when each batch was its
    /// own): each client charged keeps a leaf dirty until the commit, and past about half of the bulk
    /// cache's 500 pages a longer group writes leaves out and reads them back mid-transaction (with 1,000
    /// clients, 40,000-row groups made a replay 6–8 % slower). A crash undoes only the group in flight,
    /// which the same replay run again charges, once.
    public var bulkGrouping: BulkGrouping? {
        get { locked { grouping } }
        set { locked { grouping = newValue } }
    }
    private var grouping: BulkGrouping? = BulkGrouping(rows: 40_000, minimumRows: 5_000, clients: 250)

    /// Runs `body` in one transaction: the commits it makes through this ledger are parts of it, all
    /// committed together when it returns (nothing of them when it throws).
    public func inOneTransaction<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try store.flatTransaction("a group of batches", body)
    }

    /// Everything `body` does through this ledger (any number of commits) is rolled back at the end;
    /// the values it returns describe what would have happened.
    public func dryRun<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try store.rolledBack("a dry run", body)
    }

    // MARK: clients

    /// Creates an active client with nothing assigned; `accounts` empty means `[username]`.
    public func createClient(username: String, fields: ClientFields, accounts: [String], plan: String,
                             passwordHash: String, now: Int64) throws(LedgerError) -> ClientRecord {
        let codes = try Self.validateNewClient(username: username, fields: fields, accounts: accounts, plan: plan,
                                               passwordHash: passwordHash)
        return try write("creating client '\(username)'") { () throws(LedgerError) -> ClientRecord in
            if try clientID(username: username) != nil { throw .duplicateUsername(username) }
            if let email = fields.email, try emailOwner(email, excluding: nil) != nil { throw .duplicateEmail(email) }
            try checkAccountsFree(codes, for: nil)
            let level = Meter(assigned: 0, used: 0).level(currentThresholds)
            let s = try store.statement("""
                INSERT INTO clients (username, \(ProfileField.allCases.map(\.rawValue).joined(separator: ", ")),
                    password_hash, status, plan, assigned, used, level, created_at, updated_at, disabled_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'active', ?15, 0, 0, ?16, ?17, ?17, NULL)
                """, "inserting a client")
            defer { s.reset() }
            try s.bind(1, username)
            try bindFields(s, from: 2, ClientRecord.empty.merged(with: fields))
            try s.bind(14, passwordHash)
            try s.bind(15, plan)
            try s.bind(16, level.rawValue)
            try s.bind(17, now)
            try s.run()
            let id = store.lastInsertRowID
            try insertAccounts(codes, clientID: id)
            let record = try requireClient(id: id, username: username)
            try writeEvent("client.created", record, now: now)
            return record
        }
    }

    /// Changes the given fields; `accounts` replaces the whole set (empty means `[username]`).
    /// Nothing is written, and no event made, when nothing differs.
    public func editClient(username: String, fields: ClientFields, accounts: [String]?, plan: String?,
                           passwordHash: String?, now: Int64) throws(LedgerError) -> ClientRecord {
        if let plan { try Self.checkPlan(plan) }
        if let passwordHash { try Self.checkHash(passwordHash) }
        try Self.checkEmail(fields.email)
        let codes = try accounts.map { (a) throws(LedgerError) -> [String] in try Self.normalizedAccounts(a, username: username) }
        return try write("editing client '\(username)'") { () throws(LedgerError) -> ClientRecord in
            let old = try requireClient(username: username)
            let (new, edits) = old.edited(fields: fields, accounts: codes, plan: plan)
            var changed = edits
            if let passwordHash, try self.passwordHashLocked(id: old.id) != passwordHash { changed.append("password") }
            guard !changed.isEmpty else { return old }

            if new.email != old.email, try emailOwner(new.email, excluding: old.id) != nil { throw .duplicateEmail(new.email) }
            if new.accounts != old.accounts {
                try checkAccountsFree(new.accounts, for: old.id)
                let del = try store.statement("DELETE FROM accounts WHERE client_id = ?1", "replacing a client's accounts")
                defer { del.reset() }
                try del.bind(1, old.id)
                try del.run()
                try insertAccounts(new.accounts, clientID: old.id)
            }
            let s = try store.statement("""
                UPDATE clients SET \(Ledger.profileAssignments),
                    password_hash = coalesce(?14, password_hash), plan = ?15, updated_at = ?16
                WHERE id = ?1
                """, "updating a client")
            defer { s.reset() }
            try s.bind(1, old.id)
            try bindFields(s, from: 2, new)
            try s.bind(14, passwordHash)
            try s.bind(15, new.plan)
            try s.bind(16, now)
            try s.run()
            let record = try requireClient(id: old.id, username: username)
            try writeEvent("client.updated", record, now: now, extra: [("changed", .array(changed.map { .string($0) }))])
            return record
        }
    }

    /// Disables or re-enables console access; a no-op (no event) when already in that state.
    public func setDisabled(username: String, _ disabled: Bool, now: Int64) throws(LedgerError) -> ClientRecord {
        try write(disabled ? "disabling client '\(username)'" : "enabling client '\(username)'") { () throws(LedgerError) -> ClientRecord in
            let old = try requireClient(username: username)
            guard (old.status == .disabled) != disabled else { return old }
            let s = try store.statement("""
                UPDATE clients SET status = ?2, disabled_at = ?3, updated_at = ?4 WHERE id = ?1
                """, "changing a client's status")
            defer { s.reset() }
            try s.bind(1, old.id)
            try s.bind(2, disabled ? ClientStatus.disabled.rawValue : ClientStatus.active.rawValue)
            try s.bind(3, disabled ? now : nil)
            try s.bind(4, now)
            try s.run()
            let record = try requireClient(id: old.id, username: username)
            try writeEvent(disabled ? "client.disabled" : "client.enabled", record, now: now)
            return record
        }
    }

    /// Adds `amount` µcr to assigned. The same `key` again returns `applied: false` and changes nothing;
    /// reusing a key for another client or amount is an error rather than a silent no-op.
    public func recharge(username: String, amount: Int64, key: String?, now: Int64) throws(LedgerError) -> (client: ClientRecord, applied: Bool) {
        try Self.checkRecharge(amount: amount, key: key)
        return try write("recharging client '\(username)'") { () throws(LedgerError) -> (client: ClientRecord, applied: Bool) in
            let old = try requireClient(username: username)
            if let key {
                let q = try store.statement("""
                    SELECT r.amount, c.username FROM recharges r JOIN clients c ON c.id = r.client_id
                    WHERE r.idempotency_key = ?1
                    """, "looking up a recharge key")
                defer { q.reset() }
                try q.bind(1, key)
                if try q.step() {
                    let seenAmount = q.int64(0), seenClient = q.text(1)
                    try Self.checkRepeatedRecharge(key: key, username: username, amount: amount,
                                                   seenClient: seenClient, seenAmount: seenAmount)
                    return (old, false)
                }
            }
            let assigned = try Self.rechargedAssigned(old.meter.assigned, plus: amount)
            let ins = try store.statement("""
                INSERT INTO recharges (client_id, amount, idempotency_key, at) VALUES (?1, ?2, ?3, ?4)
                """, "recording a recharge")
            defer { ins.reset() }
            try ins.bind(1, old.id)
            try ins.bind(2, amount)
            try ins.bind(3, key)
            try ins.bind(4, now)
            try ins.run()
            let record = try setAssigned(assigned, of: old, now: now, event: "client.recharged",
                                         extra: [("amount", .string(Money.format(amount)))])
            return (record, true)
        }
    }

    /// A new Assigned for a client, inside the caller's transaction: stored with its event, the level
    /// relatched (with its alert) and the balance marked changed; the client as it now is.
    func setAssigned(_ assigned: Int64, of old: ClientRecord, now: Int64, event: String,
                     extra: [(String, JSONValue)]) throws(LedgerError) -> ClientRecord {
        let upd = try store.statement("UPDATE clients SET assigned = ?2, updated_at = ?3 WHERE id = ?1", "changing a client's assigned")
        defer { upd.reset() }
        try upd.bind(1, old.id)
        try upd.bind(2, assigned)
        try upd.bind(3, now)
        try upd.run()
        var record = try requireClient(id: old.id, username: old.username)
        try writeEvent(event, record, now: now, extra: extra)
        if try relatch(clientID: record.id, username: old.username, meter: record.meter, stored: record.level, now: now) != nil {
            record = try requireClient(id: old.id, username: old.username)
        }
        try markDirty(clientID: record.id, now: now)
        return record
    }

    /// The client named `username`, or nil.
    public func client(username: String) throws(LedgerError) -> ClientRecord? {
        try locked { () throws(LedgerError) -> ClientRecord? in try loadClient(username: username) }
    }

    /// Every client, by username.
    public func clients() throws(LedgerError) -> [ClientRecord] {
        try locked { () throws(LedgerError) -> [ClientRecord] in
            var codes: [Int64: [String]] = [:]
            let a = try store.statement("SELECT client_id, code FROM accounts ORDER BY code", "listing accounts")
            defer { a.reset() }
            while try a.step() { codes[a.int64(0), default: []].append(a.text(1)) }
            let s = try store.statement("SELECT \(Ledger.clientColumns) FROM clients ORDER BY username", "listing clients")
            defer { s.reset() }
            var out: [ClientRecord] = []
            while try s.step() {
                var r = Ledger.readClient(s)
                r.accounts = codes[r.id] ?? []
                out.append(r)
            }
            return out
        }
    }

    /// The stored password hash, for verification; nil for an unknown client.
    public func passwordHash(username: String) throws(LedgerError) -> String? {
        try locked { () throws(LedgerError) -> String? in
            let s = try store.statement("SELECT password_hash FROM clients WHERE username = ?1", "reading a password hash")
            defer { s.reset() }
            try s.bind(1, username)
            return try s.step() ? s.text(0) : nil
        }
    }

    /// Account code → the client it bills to, for the rater.
    public func accountDirectory() throws(LedgerError) -> [String: AccountOwner] {
        try locked { () throws(LedgerError) -> [String: AccountOwner] in
            let s = try store.statement("""
                SELECT a.code, c.id, c.username, c.plan, c.status FROM accounts a JOIN clients c ON c.id = a.client_id
                """, "reading the account directory")
            defer { s.reset() }
            var out: [String: AccountOwner] = [:]
            while try s.step() {
                out[s.text(0)] = AccountOwner(clientID: s.int64(1), username: s.text(2), plan: s.text(3),
                                              status: ClientStatus(rawValue: s.text(4)) ?? .active)
            }
            return out
        }
    }

    // MARK: helpers shared by the extensions (call with the lock held)

    /// The profile columns sit at 2...13, in `ProfileField` order.
    package static let clientColumns = "id, username, " + ProfileField.allCases.map(\.rawValue).joined(separator: ", ")
        + ", status, plan, assigned, used, level, created_at, updated_at, disabled_at"

    /// `first_name = ?2, …, role = ?13` for an UPDATE binding the fields as `bindFields` does.
    static let profileAssignments = ProfileField.allCases.enumerated()
        .map { "\($0.element.rawValue) = ?\($0.offset + 2)" }.joined(separator: ", ")

    /// Reads a row selected with `clientColumns`; accounts are filled in by the caller.
    static func readClient(_ s: Statement) -> ClientRecord {
        var r = ClientRecord.empty
        r.id = s.int64(0)
        r.username = s.text(1)
        for (i, field) in ProfileField.allCases.enumerated() { r[field] = s.text(Int32(2 + i)) }
        // The table's CHECK constraints admit only known values; the fallbacks are never taken.
        r.status = ClientStatus(rawValue: s.text(14)) ?? .active
        r.plan = s.text(15)
        r.meter = Meter(assigned: s.int64(16), used: s.int64(17))
        r.level = Level(rawValue: s.text(18)) ?? .ok
        r.createdAt = s.int64(19)
        r.updatedAt = s.int64(20)
        r.disabledAt = s.optionalInt64(21)
        return r
    }

    func loadClient(username: String) throws(LedgerError) -> ClientRecord? {
        let s = try store.statement("SELECT \(Ledger.clientColumns) FROM clients WHERE username = ?1", "reading a client")
        defer { s.reset() }
        try s.bind(1, username)
        guard try s.step() else { return nil }
        var r = Ledger.readClient(s)
        r.accounts = try accountCodes(clientID: r.id)
        return r
    }

    func requireClient(username: String) throws(LedgerError) -> ClientRecord {
        guard let r = try loadClient(username: username) else { throw .unknownClient(username) }
        return r
    }

    func requireClient(id: Int64, username: String) throws(LedgerError) -> ClientRecord {
        let s = try store.statement("SELECT \(Ledger.clientColumns) FROM clients WHERE id = ?1", "reading a client by id")
        defer { s.reset() }
        try s.bind(1, id)
        guard try s.step() else { throw .unknownClient(username) }
        var r = Ledger.readClient(s)
        r.accounts = try accountCodes(clientID: id)
        return r
    }

    private func accountCodes(clientID: Int64) throws(LedgerError) -> [String] {
        let s = try store.statement("SELECT code FROM accounts WHERE client_id = ?1 ORDER BY code", "reading a client's accounts")
        defer { s.reset() }
        try s.bind(1, clientID)
        var out: [String] = []
        while try s.step() { out.append(s.text(0)) }
        return out
    }

    private func clientID(username: String) throws(LedgerError) -> Int64? {
        let s = try store.statement("SELECT id FROM clients WHERE username = ?1", "looking up a username")
        defer { s.reset() }
        try s.bind(1, username)
        return try s.step() ? s.int64(0) : nil
    }

    private func passwordHashLocked(id: Int64) throws(LedgerError) -> String {
        let s = try store.statement("SELECT password_hash FROM clients WHERE id = ?1", "reading a password hash by id")
        defer { s.reset() }
        try s.bind(1, id)
        return try s.step() ? s.text(0) : ""
    }

    /// The username holding `email` (case-insensitively), other than `excluding`; empty emails never collide.
    private func emailOwner(_ email: String, excluding: Int64?) throws(LedgerError) -> String? {
        guard !email.isEmpty else { return nil }
        // Spelled like the partial index (lower(email), email <> '') so SQLite can use it.
        let s = try store.statement("""
            SELECT username FROM clients WHERE lower(email) = lower(?1) AND email <> '' AND id IS NOT ?2
            """, "checking an email is free")
        defer { s.reset() }
        try s.bind(1, email)
        try s.bind(2, excluding)
        return try s.step() ? s.text(0) : nil
    }

    private func checkAccountsFree(_ codes: [String], for clientID: Int64?) throws(LedgerError) {
        let s = try store.statement("""
            SELECT c.id, c.username FROM accounts a JOIN clients c ON c.id = a.client_id WHERE a.code = ?1
            """, "checking an account code is free")
        for code in codes {
            defer { s.reset() }
            try s.bind(1, code)
            if try s.step(), s.int64(0) != clientID { throw .accountTaken(code: code, owner: s.text(1)) }
        }
    }

    private func insertAccounts(_ codes: [String], clientID: Int64) throws(LedgerError) {
        let s = try store.statement("INSERT INTO accounts (code, client_id) VALUES (?1, ?2)", "assigning an account code")
        for code in codes {
            defer { s.reset() }
            try s.bind(1, code)
            try s.bind(2, clientID)
            try s.run()
        }
    }

    /// Binds the twelve profile fields, in `ClientFields.named` order, starting at parameter `first`.
    private func bindFields(_ s: Statement, from first: Int32, _ r: ClientRecord) throws(LedgerError) {
        for (i, field) in r.fields.named.enumerated() {
            try s.bind(first + Int32(i), field.value ?? "")
        }
    }

    // The rules below are shared with the PostgreSQL store (LedgerPostgres), so both refuse the same input
    // with the same error.

    /// Checks a new client's fields and returns its account codes, normalized.
    package static func validateNewClient(username: String, fields: ClientFields, accounts: [String], plan: String,
                                          passwordHash: String) throws(LedgerError) -> [String] {
        if let v = ClientRules.usernameViolation(username) { throw .invalidField(field: v.field, rule: v.rule) }
        try checkPlan(plan)
        try checkHash(passwordHash)
        try checkEmail(fields.email)
        return try normalizedAccounts(accounts, username: username)
    }

    package static func checkRecharge(amount: Int64, key: String?) throws(LedgerError) {
        guard amount > 0 else { throw .invalidAmount("must be greater than 0 (got \(Money.format(amount)))") }
        if let key, key.isEmpty { throw .invalidField(field: "idempotency_key", rule: "must not be empty when given") }
    }

    /// A recharge key seen before: fine (nothing to do) for the same client and amount, else a conflict.
    package static func checkRepeatedRecharge(key: String, username: String, amount: Int64,
                                              seenClient: String, seenAmount: Int64) throws(LedgerError) {
        guard seenClient == username, seenAmount == amount else {
            throw .idempotencyConflict(key: key, detail: "for a recharge of \(Money.format(seenAmount)) to '\(seenClient)'")
        }
    }

    package static func rechargedAssigned(_ assigned: Int64, plus amount: Int64) throws(LedgerError) -> Int64 {
        let (sum, overflow) = assigned.addingReportingOverflow(amount)
        guard !overflow else { throw .invalidAmount("would make the assigned total too large") }
        return sum
    }

    package static func checkPlan(_ plan: String) throws(LedgerError) {
        if plan.isEmpty { throw .invalidField(field: "plan", rule: "must not be empty") }
    }

    package static func checkHash(_ hash: String) throws(LedgerError) {
        // A clear-text password passed by mistake would be stored as is: accept only crypt(3) strings.
        if !hash.hasPrefix("$") { throw .invalidField(field: "password", rule: "must be stored as a crypt(3) hash (see PasswordHasher)") }
    }

    package static func checkEmail(_ email: String?) throws(LedgerError) {
        if let email, !email.isEmpty, let v = ClientRules.emailViolation(email) { throw .invalidField(field: v.field, rule: v.rule) }
    }

    package static func normalizedAccounts(_ accounts: [String], username: String) throws(LedgerError) -> [String] {
        let list = accounts.isEmpty ? [username] : accounts
        for code in list {
            if let v = ClientRules.accountCodeViolation(code) { throw .invalidField(field: v.field, rule: "'\(code)' \(v.rule)") }
        }
        return Array(Set(list)).sorted()
    }

    /// Compares the meter's level with the stored latch; on a change writes the latch and one alert event.
    func relatch(clientID: Int64, username: String, meter: Meter, stored: Level, now: Int64) throws(LedgerError) -> LevelChange? {
        guard let move = Self.latchMove(username: username, meter: meter, stored: stored, currentThresholds, now: now) else { return nil }
        let s = try store.statement("UPDATE clients SET level = ?2 WHERE id = ?1", "latching a client's level")
        defer { s.reset() }
        try s.bind(1, clientID)
        try s.bind(2, move.change.to.rawValue)
        try s.run()
        try insertEvent(type: move.type, clientID: clientID, username: username, body: move.body, now: now)
        return move.change
    }

    /// Where a client's latch moves for its new meter, and the alert that says so; nil when it stays.
    /// The one rule both stores latch by.
    package static func latchMove(username: String, meter: Meter, stored: Level, _ t: Thresholds, now: Int64)
        -> (change: LevelChange, type: String, body: String)? {
        let level = meter.level(t)
        guard level != stored else { return nil }
        let type = EventFactory.alertType(from: stored, to: level)
        let body = EventFactory.body(type: type, now: now, data: EventFactory.alertData(username: username, meter: meter, from: stored, t))
        return (LevelChange(username: username, from: stored, to: level, meter: meter), type, body)
    }

    /// Records that the client's balance changed, for the coalesced balance.updated; keeps the earliest time.
    func markDirty(clientID: Int64, now: Int64) throws(LedgerError) {
        let s = try store.statement("""
            INSERT INTO balance_dirty (client_id, since) VALUES (?1, ?2) ON CONFLICT (client_id) DO NOTHING
            """, "marking a balance as changed")
        defer { s.reset() }
        try s.bind(1, clientID)
        try s.bind(2, now)
        try s.run()
    }

    func writeEvent(_ type: String, _ record: ClientRecord, now: Int64, extra: [(String, JSONValue)] = []) throws(LedgerError) {
        let body = EventFactory.body(type: type, now: now, data: EventFactory.clientData(record, currentThresholds) + extra)
        try insertEvent(type: type, clientID: record.id, username: record.username, body: body, now: now)
    }

    package func insertEvent(type: String, clientID: Int64?, username: String, body: String, now: Int64) throws(LedgerError) {
        let s = try store.statement("""
            INSERT INTO outbox (event_id, type, client_id, username, body, created_at, next_attempt_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
            """, "queueing an event")
        defer { s.reset() }
        try s.bind(1, EventFactory.newEventID())
        try s.bind(2, type)
        try s.bind(3, clientID)
        try s.bind(4, username)
        try s.bind(5, body)
        try s.bind(6, now)
        try s.run()
    }
}

extension ClientRecord {
    package static let empty = ClientRecord(
        id: 0, username: "", firstName: "", lastName: "", email: "", phone: "", country: "", state: "", city: "",
        zip: "", address1: "", address2: "", company: "", role: "", status: .active, accounts: [], plan: "",
        meter: Meter(assigned: 0, used: 0), level: .ok, createdAt: 0, updatedAt: 0, disabledAt: nil)

    /// The client after an edit, and what the edit changes by name: fields in their order, then
    /// `accounts` and `plan` (the caller adds `password` when the stored hash differs). Both stores use
    /// it, so an edit changes and reports the same things on either.
    package func edited(fields: ClientFields, accounts: [String]?, plan: String?) -> (record: ClientRecord, changed: [String]) {
        var new = merged(with: fields)
        if let plan { new.plan = plan }
        if let accounts { new.accounts = accounts }
        var changed: [String] = []
        let oldFields = self.fields.named, newFields = new.fields.named
        for i in oldFields.indices where oldFields[i].value != newFields[i].value { changed.append(oldFields[i].name) }
        if new.accounts != self.accounts { changed.append("accounts") }
        if new.plan != self.plan { changed.append("plan") }
        return (new, changed)
    }

    /// This record with every given (non-nil) field replaced.
    package func merged(with f: ClientFields) -> ClientRecord {
        var r = self
        for field in ProfileField.allCases { if let v = f[field] { r[field] = v } }
        return r
    }
}

import Ledger
import MeterCore

/// The admin API's client calls, as SQLite's `Ledger` answers them: the same checks in the same order, the
/// same errors and the same events. Each write locks the client's row first (FOR NO KEY UPDATE, as a batch
/// commit and a recharge do), so two agents editing one client queue instead of losing one's change.
extension PostgresLedger {
    /// Changes the given fields; `accounts` replaces the whole set (empty means `[username]`).
    /// Nothing is written, and no event made, when nothing differs.
    public func editClient(username: String, fields: ClientFields, accounts: [String]?, plan: String?,
                           passwordHash: String?, now: Int64) throws(LedgerError) -> ClientRecord {
        if let plan { try Ledger.checkPlan(plan) }
        if let passwordHash { try Ledger.checkHash(passwordHash) }
        try Ledger.checkEmail(fields.email)
        let codes = try accounts.map { (a) throws(LedgerError) -> [String] in try Ledger.normalizedAccounts(a, username: username) }
        // A unique email or account code another agent takes between the checks and the writes: run again,
        // the checks see it and give SQLite's error.
        return try write("editing client '\(username)'", retryOn: Self.transientOrTaken) { () throws(LedgerError) -> ClientRecord in
            let old = try requireClient(username: username, forUpdate: true)
            let (new, edits) = old.edited(fields: fields, accounts: codes, plan: plan)
            var changed = edits
            if let passwordHash, try storedPasswordHash(id: old.id) != passwordHash { changed.append("password") }
            guard !changed.isEmpty else { return old }

            if new.email != old.email, try emailOwner(new.email, excluding: old.id) != nil { throw .duplicateEmail(new.email) }
            if new.accounts != old.accounts {
                try checkAccountsFree(new.accounts, for: old.id)
                var d = PGParams()
                d.int8(old.id)
                try db.query("DELETE FROM accounts WHERE client_id = $1", d, "replacing a client's accounts")
                var a = PGParams()
                a.textArray(new.accounts)
                a.int8(old.id)
                try db.query("INSERT INTO accounts (code, client_id) SELECT unnest($1::text[]), $2", a, "assigning account codes")
            }
            var p = PGParams()
            p.int8(old.id)
            for (_, value) in new.fields.named { p.text(value ?? "") }
            p.text(passwordHash)
            p.text(new.plan)
            p.int8(now)
            let r = try db.query("""
                UPDATE clients SET \(Self.profileAssignments),
                    password_hash = coalesce($14, password_hash), plan = $15, updated_at = $16
                WHERE id = $1 RETURNING \(Ledger.clientColumns)
                """, p, "updating a client")
            guard r.rows == 1 else { throw .unknownClient(username) }
            var record = Self.readClient(r, 0)
            // Read back rather than `new.accounts`: SQLite's record lists them in byte order, which Swift's
            // sort (by Unicode scalars after normalization) need not give for codes outside ASCII.
            record.accounts = try new.accounts == old.accounts ? old.accounts : accountCodes(clientID: old.id)
            try writeEvent("client.updated", record, now: now, extra: [("changed", .array(changed.map { .string($0) }))])
            return record
        }
    }

    /// Disables or re-enables console access; a no-op (no event) when already in that state.
    public func setDisabled(username: String, _ disabled: Bool, now: Int64) throws(LedgerError) -> ClientRecord {
        try write(disabled ? "disabling client '\(username)'" : "enabling client '\(username)'") { () throws(LedgerError) -> ClientRecord in
            let old = try requireClient(username: username, forUpdate: true)
            guard (old.status == .disabled) != disabled else { return old }
            var p = PGParams()
            p.int8(old.id)
            p.text(disabled ? ClientStatus.disabled.rawValue : ClientStatus.active.rawValue)
            p.int8(disabled ? now : nil)
            p.int8(now)
            let r = try db.query("""
                UPDATE clients SET status = $2, disabled_at = $3, updated_at = $4 WHERE id = $1 RETURNING \(Ledger.clientColumns)
                """, p, "changing a client's status")
            guard r.rows == 1 else { throw .unknownClient(username) }
            var record = Self.readClient(r, 0)
            record.accounts = old.accounts
            try writeEvent(disabled ? "client.disabled" : "client.enabled", record, now: now)
            return record
        }
    }

    /// The stored password hash, for verification; nil for an unknown client.
    public func passwordHash(username: String) throws(LedgerError) -> String? {
        try reading { () throws(LedgerError) -> String? in
            var p = PGParams()
            p.text(username)
            let r = try db.query("SELECT password_hash FROM clients WHERE username = $1", p, "reading a password hash")
            return r.rows > 0 ? r.text(0, 0) : nil
        }
    }

    /// `first_name = $2, …, role = $13`, binding the profile fields in `ClientFields.named` order.
    static let profileAssignments = ProfileField.allCases.enumerated()
        .map { "\($0.element.rawValue) = $\($0.offset + 2)" }.joined(separator: ", ")

    private func accountCodes(clientID: Int64) throws(LedgerError) -> [String] {
        var p = PGParams()
        p.int8(clientID)
        let r = try db.query("SELECT code FROM accounts WHERE client_id = $1 ORDER BY code COLLATE \"C\"", p,
                             "reading a client's accounts")
        return (0..<r.rows).map { r.text($0, 0) }
    }

    /// Call inside the transaction that locked the client.
    private func storedPasswordHash(id: Int64) throws(LedgerError) -> String {
        var p = PGParams()
        p.int8(id)
        let r = try db.query("SELECT password_hash FROM clients WHERE id = $1", p, "reading a password hash by id")
        return r.rows > 0 ? r.text(0, 0) : ""
    }
}

/// Retention purge and statistics.
extension Ledger {
    /// Disabled clients whose `disabled_at` is strictly before `disabledBefore`, by username.
    public func purgeCandidates(disabledBefore: Int64) throws(LedgerError) -> [ClientRecord] {
        try locked { () throws(LedgerError) -> [ClientRecord] in
            let s = try store.statement("""
                SELECT username FROM clients WHERE status = 'disabled' AND disabled_at < ?1 ORDER BY username
                """, "finding clients to purge")
            var names: [String] = []
            do {
                defer { s.reset() }
                try s.bind(1, disabledBefore)
                while try s.step() { names.append(s.text(0)) }
            }
            var out: [ClientRecord] = []
            for name in names {
                if let r = try loadClient(username: name) { out.append(r) }
            }
            return out
        }
    }

    /// Deletes a disabled client with its accounts, recharges, usage and queued events, for good,
    /// and queues a `client.purged` event, all in one transaction.
    public func purge(username: String, now: Int64) throws(LedgerError) {
        try write("purging client '\(username)'") { () throws(LedgerError) in
            let c = try requireClient(username: username)
            guard c.status == .disabled else { throw .notDisabled(username) }
            // The client's usage goes by the foreign key's ON DELETE CASCADE (through the index by client).
            let deletes: [(String, String)] = [
                ("DELETE FROM outbox WHERE client_id = ?1", "purging a client's queued events"),
                ("DELETE FROM recharges WHERE client_id = ?1", "purging a client's recharges"),
                ("DELETE FROM accounts WHERE client_id = ?1", "purging a client's accounts"),
                ("DELETE FROM balance_dirty WHERE client_id = ?1", "purging a client's pending balance event"),
                ("DELETE FROM clients WHERE id = ?1", "purging a client"),
            ]
            for (sql, purpose) in deletes {
                let s = try store.statement(sql, purpose)
                defer { s.reset() }
                try s.bind(1, c.id)
                try s.run()
            }
            // Retention exists to forget personal data, so the event names the client and nothing more.
            let data: [(String, JSONValue)] = [
                ("username", .string(c.username)),
                ("disabled_at", c.disabledAt.map { .string(EventFactory.rfc3339($0)) } ?? .null),
                ("purged_at", .string(EventFactory.rfc3339(now))),
            ]
            try insertEvent(type: "client.purged", clientID: c.id, username: c.username,
                            body: EventFactory.body(type: "client.purged", now: now, data: data), now: now)
        }
    }

    /// Charged CDR count, their total cost (µcr), and the quarantine size.
    public func totals() throws(LedgerError) -> (usageRows: Int, usageCost: Int64, quarantined: Int) {
        try locked { () throws(LedgerError) -> (usageRows: Int, usageCost: Int64, quarantined: Int) in
            // sum() stays an integer (and errors on overflow) where total() would turn to floating point.
            let s = try store.statement("SELECT count(*), coalesce(sum(cost), 0) FROM usage", "totalling usage")
            defer { s.reset() }
            guard try s.step() else { return (0, 0, 0) }
            let rows = Int(s.int64(0)), cost = s.int64(1)
            let q = Int(try store.scalarInt("SELECT count(*) FROM quarantine", purpose: "counting the quarantine"))
            return (rows, cost, q)
        }
    }

    /// CDRs charged at or after `t` (unix seconds) and their cost in µcr.
    ///
    /// Rows are appended with their commit time, so charged_at follows the rowid but for a clock stepped
    /// back: this walks back from the newest row and stops at the first one charged more than an hour
    /// before `t`, which reads today's rows rather than the whole store (a full scan took 1.5 s at ten
    /// million rows, and `status` made one for this alone).
    public func chargedSince(_ t: Int64) throws(LedgerError) -> (count: Int, cost: Int64) {
        try locked { () throws(LedgerError) -> (count: Int, cost: Int64) in
            let s = try store.statement("SELECT charged_at, cost FROM usage ORDER BY id DESC", "totalling recent usage")
            defer { s.reset() }
            var count = 0, cost: Int64 = 0
            let stop = t.subtractingReportingOverflow(Self.clockStepSlack)
            while try s.step() {
                let at = s.int64(0)
                if at >= t {
                    count += 1
                    let (sum, overflow) = cost.addingReportingOverflow(s.int64(1))
                    guard !overflow else { throw .invalidAmount("the cost charged since \(t) overflows") }
                    cost = sum
                } else if !stop.overflow, at < stop.partialValue {
                    break
                }
            }
            return (count, cost)
        }
    }

    /// How far back past the boundary `chargedSince` still looks, for a clock stepped back.
    static let clockStepSlack: Int64 = 3_600

    /// The oldest `limit` outbox events (for tests and the CLI until delivery lands).
    public func outboxEvents(limit: Int) throws(LedgerError) -> [(eventID: String, type: String, username: String, body: String)] {
        try locked { () throws(LedgerError) -> [(eventID: String, type: String, username: String, body: String)] in
            let s = try store.statement("SELECT event_id, type, username, body FROM outbox ORDER BY id LIMIT ?1", "listing the outbox")
            defer { s.reset() }
            try s.bind(1, Int64(limit))
            var out: [(eventID: String, type: String, username: String, body: String)] = []
            while try s.step() { out.append((s.text(0), s.text(1), s.text(2), s.text(3))) }
            return out
        }
    }
}

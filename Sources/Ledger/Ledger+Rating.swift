import MeterCore

/// A charged call as a rerate sees it: what it needs to price the call again, and what it costs now.
public struct UsageRecord: Sendable, Equatable {
    public var id: Int64
    public var clientID: Int64
    public var identity: String
    public var destination: String
    public var billsec: Int64
    /// The moment that selected its row: `answered_at`, or `started_at` for a charge made before rating in time.
    public var answeredAt: Int64?
    /// The cost it was charged.
    public var chargedCost: Int64
    /// The cost after every rerate so far (its newest adjustment's new cost, else `chargedCost`).
    public var currentCost: Int64
    public var pricedBy: String?
}

/// A rerate's verdict on one charge.
public struct RerateChange: Sendable, Equatable {
    public var usageID: Int64
    public var newCost: Int64
    public var pricedBy: String?

    public init(usageID: Int64, newCost: Int64, pricedBy: String?) {
        self.usageID = usageID
        self.newCost = newCost
        self.pricedBy = pricedBy
    }
}

/// What applying one client's rerate did.
public struct RerateOutcome: Sendable, Equatable {
    /// Adjustment rows written (charges whose cost changed).
    public var adjusted: Int
    /// Σ (new − old) µcr: what Used moved by.
    public var delta: Int64
    public var levelChange: LevelChange?
}

/// One line of a client's statement.
public struct StatementEntry: Sendable, Equatable {
    public enum Kind: String, Sendable { case recharge, adjustment, charge, rerate }
    public var kind: Kind
    /// When the ledger recorded it (unix seconds): the order of the statement.
    public var at: Int64
    /// The change to Available in µcr: + for recharges, ± for adjustments, − for charges and dearer rerates.
    public var amount: Int64
    /// Available after this line.
    public var available: Int64
    /// Charges and rerates: the destination, billable seconds, answer time and what priced it.
    public var destination: String?
    public var billsec: Int64?
    public var answeredAt: Int64?
    public var pricedBy: String?
    /// Rerates: the charge's cost before and after.
    public var oldCost: Int64?
    public var newCost: Int64?
    /// Adjustments: the reason; recharges and adjustments: the idempotency key when one was given.
    public var reason: String?
    public var key: String?
}

/// A statement: Available before the first line, the lines, and Available at the end of the range.
public struct ClientStatement: Sendable, Equatable {
    public var username: String
    public var opening: Int64
    public var entries: [StatementEntry]
    public var closing: Int64
}

extension Ledger {
    /// The charges answered in [from, to) (a charge made before rating in time counts by its start),
    /// of one client or all, in answer order.
    public func usage(clientID: Int64?, from: Int64, to: Int64) throws(LedgerError) -> [UsageRecord] {
        try locked { () throws(LedgerError) -> [UsageRecord] in
            // Both read the index by client and moment: one client's range, or every client's range in turn
            // (CROSS JOIN keeps clients the outer loop), then the rows are put in moment order.
            let moment = "coalesce(u.answered_at, u.started_at)"
            let s = try store.statement("""
                SELECT u.id, u.client_id, u.identity, u.destination, u.billsec, \(moment), u.cost,
                    coalesce((SELECT a.new_cost FROM usage_adjustments a WHERE a.usage_id = u.id ORDER BY a.id DESC LIMIT 1), u.cost),
                    coalesce((SELECT p.text FROM pricings p WHERE p.id = u.pricing), u.priced_by)
                """ + (clientID == nil ? "\nFROM clients c CROSS JOIN usage u ON u.client_id = c.id WHERE " : "\nFROM usage u WHERE u.client_id = ?3 AND ") + """
                \(moment) >= ?1 AND \(moment) < ?2
                ORDER BY \(moment), u.id
                """, "listing charges answered in a range")
            defer { s.reset() }
            try s.bind(1, from)
            try s.bind(2, to)
            if let clientID { try s.bind(3, clientID) }
            var out: [UsageRecord] = []
            while try s.step() {
                out.append(UsageRecord(id: s.int64(0), clientID: s.int64(1), identity: s.text(2), destination: s.text(3),
                                       billsec: s.int64(4), answeredAt: s.optionalInt64(5), chargedCost: s.int64(6),
                                       currentCost: s.int64(7), pricedBy: s.isNull(8) ? nil : s.text(8)))
            }
            return out
        }
    }

    /// Applies one client's rerate in one transaction: an adjustment row (old, new cost) for each charge whose
    /// current cost differs from its new one, Used moved by the sum of the deltas, the level relatched (with
    /// its alert), the balance marked changed and one `client.rerated` event carrying the delta. Each charge's
    /// current cost is read again inside the transaction, so a rerate run twice, or run again after being
    /// killed, applies no delta twice. Charges of other clients are refused.
    public func applyRerate(clientID: Int64, changes: [RerateChange], range: (from: Int64, to: Int64),
                            now: Int64) throws(LedgerError) -> RerateOutcome {
        try write("applying a rerate") { () throws(LedgerError) -> RerateOutcome in
            var outcome = RerateOutcome(adjusted: 0, delta: 0, levelChange: nil)
            let current = try store.statement("""
                SELECT u.client_id, coalesce((SELECT a.new_cost FROM usage_adjustments a WHERE a.usage_id = u.id
                    ORDER BY a.id DESC LIMIT 1), u.cost) FROM usage u WHERE u.id = ?1
                """, "reading a charge's current cost")
            let ins = try store.statement("""
                INSERT INTO usage_adjustments (usage_id, client_id, old_cost, new_cost, priced_by, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                """, "recording a rerate adjustment")
            var total = Int128(0)
            for c in changes {
                guard c.newCost >= 0 else { throw .invalidAmount("rerate of charge \(c.usageID) has a negative cost") }
                let old: Int64
                do {
                    defer { current.reset() }
                    try current.bind(1, c.usageID)
                    guard try current.step() else { continue }   // purged meanwhile
                    guard current.int64(0) == clientID else {
                        throw .invalidField(field: "rerate", rule: "charge \(c.usageID) does not belong to client id \(clientID)")
                    }
                    old = current.int64(1)
                }
                if old == c.newCost { continue }
                defer { ins.reset() }
                try ins.bind(1, c.usageID)
                try ins.bind(2, clientID)
                try ins.bind(3, old)
                try ins.bind(4, c.newCost)
                try ins.bind(5, c.pricedBy)
                try ins.bind(6, now)
                try ins.run()
                total += Int128(c.newCost) - Int128(old)
                outcome.adjusted += 1
            }
            guard outcome.adjusted > 0 else { return outcome }
            guard let delta = Int64(exactly: total) else { throw .invalidAmount("the rerate's total delta overflows") }
            outcome.delta = delta
            let before = try requireClient(id: clientID, username: "id \(clientID)")
            let (used, overflow) = before.meter.used.addingReportingOverflow(delta)
            guard !overflow else { throw .invalidAmount("the rerate would make client '\(before.username)''s used total too large") }
            let upd = try store.statement("UPDATE clients SET used = ?2, updated_at = ?3 WHERE id = ?1", "moving used by a rerate")
            defer { upd.reset() }
            try upd.bind(1, clientID)
            try upd.bind(2, used)
            try upd.bind(3, now)
            try upd.run()
            let record = try requireClient(id: clientID, username: before.username)
            try writeEvent("client.rerated", record, now: now, extra: [
                ("delta", .string(Money.format(delta))), ("calls", .int(Int64(outcome.adjusted))),
                ("from", .string(CivilTime.rfc3339(range.from))), ("to", .string(CivilTime.rfc3339(range.to))),
            ])
            outcome.levelChange = try relatch(clientID: clientID, username: record.username, meter: record.meter,
                                              stored: record.level, now: now)
            try markDirty(clientID: clientID, now: now)
            return outcome
        }
    }

    /// A signed correction of assigned, kept with its reason: `-12.5` takes back a wrong recharge. The same
    /// `key` again returns `applied: false` and changes nothing (another client, amount or reason under it is
    /// an error). Assigned may not go below zero through it.
    public func adjust(username: String, amount: Int64, reason: String, key: String?, now: Int64) throws(LedgerError) -> (client: ClientRecord, applied: Bool) {
        guard amount != 0 else { throw .invalidAmount("must not be 0") }
        guard !reason.allSatisfy({ $0 == " " || $0 == "\t" }) else {
            throw .invalidField(field: "reason", rule: "must not be empty: say why the balance is corrected")
        }
        if let key, key.isEmpty { throw .invalidField(field: "idempotency_key", rule: "must not be empty when given") }
        return try write("adjusting client '\(username)'") { () throws(LedgerError) -> (client: ClientRecord, applied: Bool) in
            let old = try requireClient(username: username)
            if let key {
                let q = try store.statement("""
                    SELECT a.amount, a.reason, c.username FROM adjustments a JOIN clients c ON c.id = a.client_id
                    WHERE a.idempotency_key = ?1
                    """, "looking up an adjustment key")
                defer { q.reset() }
                try q.bind(1, key)
                if try q.step() {
                    let seenAmount = q.int64(0), seenReason = q.text(1), seenClient = q.text(2)
                    guard seenClient == username, seenAmount == amount, seenReason == reason else {
                        throw .idempotencyConflict(key: key, detail: "for an adjustment of \(Money.format(seenAmount)) to '\(seenClient)' (\(seenReason))")
                    }
                    return (old, false)
                }
            }
            let (assigned, overflow) = old.meter.assigned.addingReportingOverflow(amount)
            guard !overflow else { throw .invalidAmount("would make the assigned total too large") }
            guard assigned >= 0 else {
                throw .invalidAmount("would take assigned below zero (assigned is \(Money.format(old.meter.assigned)))")
            }
            let ins = try store.statement("""
                INSERT INTO adjustments (client_id, amount, reason, idempotency_key, at) VALUES (?1, ?2, ?3, ?4, ?5)
                """, "recording an adjustment")
            defer { ins.reset() }
            try ins.bind(1, old.id)
            try ins.bind(2, amount)
            try ins.bind(3, reason)
            try ins.bind(4, key)
            try ins.bind(5, now)
            try ins.run()
            let record = try setAssigned(assigned, of: old, now: now, event: "client.adjusted",
                                         extra: [("amount", .string(Money.format(amount))), ("reason", .string(reason))])
            return (record, true)
        }
    }

    /// Every recharge, adjustment, charge and rerate delta of a client recorded in [from, to), in the order
    /// the ledger recorded them, with a running Available. Available before `from` is the opening figure; over
    /// the whole history the last line's Available is the meter's.
    public func statement(username: String, from: Int64?, to: Int64?) throws(LedgerError) -> ClientStatement {
        try locked { () throws(LedgerError) -> ClientStatement in
            let client = try requireClient(username: username)
            // kind order breaks ties at one second: money in before money out, as a recharge then a call would be.
            let s = try store.statement("""
                SELECT 0, at, amount, NULL, NULL, NULL, NULL, NULL, NULL, NULL, idempotency_key, id FROM recharges WHERE client_id = ?1
                UNION ALL
                SELECT 1, at, amount, NULL, NULL, NULL, NULL, NULL, NULL, reason, idempotency_key, id FROM adjustments WHERE client_id = ?1
                UNION ALL
                SELECT 2, charged_at, -cost, destination, billsec, coalesce(answered_at, started_at),
                    coalesce((SELECT p.text FROM pricings p WHERE p.id = usage.pricing), priced_by), NULL, NULL, NULL, NULL, id
                    FROM usage WHERE client_id = ?1
                UNION ALL
                SELECT 3, a.at, a.old_cost - a.new_cost, u.destination, u.billsec, coalesce(u.answered_at, u.started_at), a.priced_by,
                    a.old_cost, a.new_cost, NULL, NULL, a.id
                    FROM usage_adjustments a JOIN usage u ON u.id = a.usage_id WHERE a.client_id = ?1
                ORDER BY 2, 1, 12
                """, "reading a client's statement")
            defer { s.reset() }
            try s.bind(1, client.id)
            var opening = Int128(0), running = Int128(0)
            var entries: [StatementEntry] = []
            let kinds: [StatementEntry.Kind] = [.recharge, .adjustment, .charge, .rerate]
            while try s.step() {
                let at = s.int64(1), amount = s.int64(2)
                if let from, at < from { opening += Int128(amount); running = opening; continue }
                if let to, at >= to { continue }
                running += Int128(amount)
                entries.append(StatementEntry(
                    kind: kinds[Int(s.int64(0))], at: at, amount: amount, available: Int64(clamping: running),
                    destination: s.isNull(3) ? nil : s.text(3), billsec: s.optionalInt64(4), answeredAt: s.optionalInt64(5),
                    pricedBy: s.isNull(6) ? nil : s.text(6), oldCost: s.optionalInt64(7), newCost: s.optionalInt64(8),
                    reason: s.isNull(9) ? nil : s.text(9), key: s.isNull(10) ? nil : s.text(10)))
            }
            return ClientStatement(username: username, opening: Int64(clamping: opening), entries: entries,
                             closing: Int64(clamping: running))
        }
    }
}

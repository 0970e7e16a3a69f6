import Foundation
import Ledger
import MeterCore
import Outbox

/// Webhook delivery from the PostgreSQL store: the same queues, results and dead letters as SQLite's
/// (`Deliveries.swift` in Outbox), for several agents writing events and several delivering them.
///
/// Fan-out. Event ids come from a sequence, and with several writers a lower id may commit after a higher
/// one, so a cursor on ids would skip it. Instead the trigger of migration 4 puts each event in
/// `outbox_fanout` in the transaction that inserts it; fan-out deletes rows from there (lowest ids first)
/// and queues each event for every configured endpoint that wants it, in one transaction. Fan-outs take
/// one transaction-level advisory lock, so two agents never split the queue between them (see `fanOut`).
///
/// A newly configured endpoint starts as SQLite's does (its cursor at 0): it receives every event still in
/// the outbox, not only those written after it appeared. It is registered with `backfill_from` 0 and
/// catches up, page by page, on the events already fanned out to the others (those no longer in
/// `outbox_fanout`); events still in the queue reach it through the queue. Until it has caught up it is
/// sent nothing, so one client's events still go out in order. An endpoint that is dropped from the config
/// is marked behind the first event fanned out without it, so that if it comes back it catches up on what
/// is still in the outbox, as SQLite's cursor makes it. Agents sharing a store should configure the same
/// endpoints: fan-out queues for the coordinating agent's.
///
/// Order. A batch commit locks its clients' rows before it inserts their events (and balance events lock
/// theirs here), so one client's events commit in id order; fan-out takes the lowest committed ids first,
/// so a client's later event is never queued before an earlier one, and `dueDeliveries` sends each
/// client's oldest pending event only, as SQLite's does.
///
/// Leases. A row per lease in `delivery_leases`, taken when free or expired by the server's clock.
extension PostgresLedger: DeliveryStore {
    /// The advisory lock every fan-out and prune takes ("outbox" in ASCII): the queue is taken by one at a
    /// time, so a newly registered endpoint's catch-up and the queue never miss an event between them.
    static let fanOutLock: Int64 = 0x6f_75_74_62_6f_78

    /// The unix ms now by the server's clock, in SQL.
    private static let serverNowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::int8"

    // MARK: fan-out

    /// Nonzero, and different at every call, while committed events wait in `outbox_fanout`; 0 when none
    /// do. (The highest id would not do: an event committing late with a lower id would not change it.)
    public func outboxSequence() throws(LedgerError) -> Int64 {
        try reading { () throws(LedgerError) -> Int64 in
            let waiting = try db.queryInt("SELECT count(*) FROM (SELECT 1 FROM outbox_fanout LIMIT 1) x",
                                          "looking for events to fan out") ?? 0
            guard waiting > 0 else { return 0 }
            sequenceReads &+= 1
            return -sequenceReads
        }
    }

    /// Takes at most `limit` events from the queue and queues them for the endpoints, then moves each
    /// endpoint still catching up on by at most `limit` events; `more` says either has more to do.
    @discardableResult
    public func fanOut(endpoints: [OutboxEndpoint], nowMs: Int64, limit: Int = 1_000) throws(LedgerError) -> (queued: [String: Int], more: Bool) {
        try write("queueing events for the endpoints") { () throws(LedgerError) -> (queued: [String: Int], more: Bool) in
            try advisoryLock(Self.fanOutLock, "waiting for the fan-out lock")
            let names = endpoints.map(\.name)
            try register(names)
            var queued: [String: Int] = [:]
            let taken = try takeQueued(limit: limit)
            if let first = taken.first {
                try markBehind(except: names, before: first.id)
                for e in endpoints { try queue(taken, for: e, nowMs: nowMs, counting: &queued) }
            }
            var more = taken.count >= limit
            for (e, from) in try catchingUp(endpoints) {
                let rows = try fannedOutEvents(after: from, limit: limit)
                try queue(rows, for: e, nowMs: nowMs, counting: &queued)
                let done = rows.count < limit
                try setBackfill(e.name, done ? nil : rows.last?.id)
                if !done { more = true }
            }
            return (queued, more)
        }
    }

    private typealias EventRow = (id: Int64, type: String, client: Int64?, createdAt: Int64)

    private func advisoryLock(_ key: Int64, _ context: String) throws(LedgerError) {
        var p = PGParams()
        p.int8(key)
        try db.query("SELECT pg_advisory_xact_lock($1)", p, context)
    }

    /// Endpoints never seen before start catching up from the beginning of the outbox.
    private func register(_ names: [String]) throws(LedgerError) {
        guard !names.isEmpty else { return }
        var p = PGParams()
        p.textArray(names)
        try db.query("""
            INSERT INTO endpoint_state (endpoint, backfill_from) SELECT unnest($1::text[]), 0 ON CONFLICT DO NOTHING
            """, p, "registering endpoints")
    }

    private static func eventRows(_ r: PGResult) -> [EventRow] {
        (0..<r.rows).map { (r.int64($0, 0), r.text($0, 1), r.optionalInt64($0, 2), r.int64($0, 3)) }
    }

    /// Removes up to `limit` committed events from the queue, lowest ids first, and returns them.
    private func takeQueued(limit: Int) throws(LedgerError) -> [EventRow] {
        var p = PGParams()
        p.int8(Int64(max(1, limit)))
        let r = try db.query("""
            WITH taken AS (
                DELETE FROM outbox_fanout WHERE event IN (SELECT event FROM outbox_fanout ORDER BY event LIMIT $1)
                RETURNING event)
            SELECT o.id, o.type, o.client_id, o.created_at FROM taken t JOIN outbox o ON o.id = t.event ORDER BY o.id
            """, p, "taking events to fan out")
        return Self.eventRows(r)
    }

    /// Endpoints with state here but not configured now miss the events just taken: from the lowest of
    /// them on, they are behind, and catch up should they be configured again.
    private func markBehind(except names: [String], before id: Int64) throws(LedgerError) {
        var p = PGParams()
        p.textArray(names)
        p.int8(id &- 1)
        try db.query("""
            UPDATE endpoint_state SET backfill_from = least(coalesce(backfill_from, $2), $2)
            WHERE NOT (endpoint = ANY($1::text[]))
            """, p, "marking unconfigured endpoints behind")
    }

    /// Queues for `e` the events of `rows` it wants (those already queued for it stay as they are).
    private func queue(_ rows: [EventRow], for e: OutboxEndpoint, nowMs: Int64, counting queued: inout [String: Int]) throws(LedgerError) {
        let wanted = rows.filter { e.wants($0.type) }
        guard !wanted.isEmpty else { return }
        var p = PGParams()
        p.int8Array(wanted.map(\.id))
        p.text(e.name)
        p.int8(nowMs)
        p.int8Array(wanted.map(\.client))
        p.int8Array(wanted.map { $0.createdAt &* 1_000 })
        let r = try db.query("""
            INSERT INTO deliveries (event, endpoint, client_id, status, attempts, next_attempt_ms, age_from_ms, updated_ms)
            SELECT x.event, $2, x.client_id, 'pending', 0, $3, x.age_from, $3
            FROM unnest($1::int8[], $4::int8[], $5::int8[]) AS x(event, client_id, age_from)
            ON CONFLICT DO NOTHING
            """, p, "queueing events for \(e.name)")
        if r.affected > 0 { queued[e.name, default: 0] += r.affected }
    }

    /// The configured endpoints still catching up, with where they are.
    private func catchingUp(_ endpoints: [OutboxEndpoint]) throws(LedgerError) -> [(OutboxEndpoint, Int64)] {
        guard !endpoints.isEmpty else { return [] }
        var p = PGParams()
        p.textArray(endpoints.map(\.name))
        let r = try db.query("""
            SELECT endpoint, backfill_from FROM endpoint_state WHERE endpoint = ANY($1::text[]) AND backfill_from IS NOT NULL
            """, p, "finding endpoints catching up")
        var from: [String: Int64] = [:]
        for i in 0..<r.rows { from[r.text(i, 0)] = r.int64(i, 1) }
        return endpoints.compactMap { e in from[e.name].map { (e, $0) } }
    }

    /// Events after `id` that have left the queue (fanned out to the endpoints known then), lowest first.
    private func fannedOutEvents(after id: Int64, limit: Int) throws(LedgerError) -> [EventRow] {
        var p = PGParams()
        p.int8(id)
        p.int8(Int64(max(1, limit)))
        let r = try db.query("""
            SELECT o.id, o.type, o.client_id, o.created_at FROM outbox o
            WHERE o.id > $1 AND NOT EXISTS (SELECT 1 FROM outbox_fanout f WHERE f.event = o.id)
            ORDER BY o.id LIMIT $2
            """, p, "reading events for an endpoint catching up")
        return Self.eventRows(r)
    }

    private func setBackfill(_ endpoint: String, _ from: Int64?) throws(LedgerError) {
        var p = PGParams()
        p.text(endpoint)
        p.int8(from)
        try db.query("UPDATE endpoint_state SET backfill_from = $2 WHERE endpoint = $1", p, "moving an endpoint's catch-up")
    }

    /// After `store copy`: SQLite's cursors say what it had fanned out to each endpoint. The copied events
    /// are taken out of the queue (the trigger put them there) and each copied endpoint catches up from its
    /// cursor, so nothing SQLite had queued or delivered is queued again. Call inside the copy's transaction.
    func adoptCopiedFanOut() throws(LedgerError) {
        try db.execute("""
            DELETE FROM outbox_fanout;
            UPDATE endpoint_state SET backfill_from = "cursor"
            """, "adopting the copied endpoints' cursors")
    }

    // MARK: balances

    /// As SQLite's: one `balance.updated` per client whose balance changed and whose last one is at least
    /// `intervalSeconds` old. The clients' rows are locked (in id order, as a batch commit locks them)
    /// before their events are inserted, so these events commit in order with the client's others and
    /// carry the figures as committed.
    @discardableResult
    public func materializeBalances(now: Int64, intervalSeconds: Int64) throws(LedgerError) -> Int {
        // Called every second: a read spares a transaction when nothing changed.
        let any = try reading { () throws(LedgerError) -> Int64 in
            try db.queryInt("SELECT count(*) FROM (SELECT 1 FROM balance_dirty LIMIT 1) x", "looking for changed balances") ?? 0
        }
        guard any != 0 else { return 0 }
        let t = thresholds
        return try write("making balance.updated events") { () throws(LedgerError) -> Int in
            var p = PGParams()
            p.int8(now)
            p.int8(max(0, intervalSeconds))
            let due = try db.query("""
                SELECT d.client_id FROM balance_dirty d LEFT JOIN balance_sent s ON s.client_id = d.client_id
                WHERE s.at IS NULL OR s.at <= $1 - $2
                ORDER BY d.since, d.client_id
                """, p, "finding balances to announce")
            let order = (0..<due.rows).map { due.int64($0, 0) }
            guard !order.isEmpty else { return 0 }
            var l = PGParams()
            l.int8Array(order)
            let locked = try db.query("""
                SELECT id, username, assigned, used FROM clients WHERE id = ANY($1::int8[]) ORDER BY id FOR NO KEY UPDATE
                """, l, "locking clients to announce their balances")
            var figures: [Int64: (username: String, meter: Meter)] = [:]
            for i in 0..<locked.rows {
                figures[locked.int64(i, 0)] = (locked.text(i, 1), Meter(assigned: locked.int64(i, 2), used: locked.int64(i, 3)))
            }
            // A client purged meanwhile has no row left (and its dirty mark went with it).
            let clients = order.compactMap { id in figures[id].map { (id: id, username: $0.username, meter: $0.meter) } }
            try insertEvents(clients.map { c in
                let data: [(String, JSONValue)] = [("username", .string(c.username))] + c.meter.jsonFields(t)
                return ("balance.updated", c.id, c.username, EventFactory.body(type: "balance.updated", now: now, data: data))
            }, now: now)
            var d = PGParams()
            d.int8Array(clients.map(\.id))
            try db.query("DELETE FROM balance_dirty WHERE client_id = ANY($1::int8[])", d, "clearing changed balances")
            var s = PGParams()
            s.int8Array(clients.map(\.id))
            s.int8(now)
            try db.query("""
                INSERT INTO balance_sent (client_id, at) SELECT unnest($1::int8[]), $2
                ON CONFLICT (client_id) DO UPDATE SET at = excluded.at
                """, s, "recording balance events")
            return clients.count
        }
    }

    // MARK: queues

    public func dueDeliveries(endpoint: String, nowMs: Int64, limit: Int = 100) throws(LedgerError) -> DueDeliveries {
        try reading { () throws(LedgerError) -> DueDeliveries in
            var e = PGParams()
            e.text(endpoint)
            let st = try db.query("SELECT paused_at, backfill_from FROM endpoint_state WHERE endpoint = $1", e,
                                  "reading an endpoint's pause")
            if st.rows > 0, !st.isNull(0, 0) { return DueDeliveries(paused: true, due: [], nextDueMs: nil) }
            // Catching up: its older events may not be queued yet, and a client's later one must not go first.
            if st.rows > 0, !st.isNull(0, 1) { return DueDeliveries(paused: false, due: [], nextDueMs: nil) }
            var p = PGParams()
            p.text(endpoint)
            p.int8(nowMs)
            p.int8(Int64(max(0, limit)))
            let r = try db.query("""
                SELECT d.event, o.event_id, o.type, d.client_id, o.username, o.body, d.attempts, d.age_from_ms
                FROM deliveries d JOIN outbox o ON o.id = d.event
                WHERE d.endpoint = $1 AND d.status = 'pending' AND d.next_attempt_ms <= $2
                  AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.endpoint = $1 AND e.status = 'pending'
                                  AND e.client_id = d.client_id AND e.event < d.event)
                ORDER BY d.event LIMIT $3
                """, p, "finding due deliveries")
            let due = (0..<r.rows).map { i in
                PendingDelivery(event: r.int64(i, 0), eventID: r.text(i, 1), endpoint: endpoint, type: r.text(i, 2),
                                clientID: r.optionalInt64(i, 3), username: r.text(i, 4), body: r.text(i, 5),
                                attempts: Int(r.int64(i, 6)), ageFromMs: r.int64(i, 7))
            }
            if !due.isEmpty { return DueDeliveries(paused: false, due: due, nextDueMs: nowMs) }
            // Only heads count: a later event of a client waiting on a retry is "due" but blocked.
            let n = try db.query("""
                SELECT min(d.next_attempt_ms) FROM deliveries d
                WHERE d.endpoint = $1 AND d.status = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.endpoint = $1 AND e.status = 'pending'
                                  AND e.client_id = d.client_id AND e.event < d.event)
                """, e, "finding the next due delivery")
            return DueDeliveries(paused: false, due: [], nextDueMs: n.rows > 0 ? n.optionalInt64(0, 0) : nil)
        }
    }

    public func recordDelivery(_ d: PendingDelivery, _ result: DeliveryResult, nowMs: Int64) throws(LedgerError) {
        try write("recording a delivery to \(d.endpoint)") { () throws(LedgerError) in
            var key = PGParams()
            key.int8(d.event)
            key.text(d.endpoint)
            switch result {
            case .delivered:
                let del = try db.query("DELETE FROM deliveries WHERE event = $1 AND endpoint = $2", key, "removing a delivered event")
                guard del.affected > 0 else { return }
                var p = PGParams()
                p.text(d.endpoint)
                p.int8(nowMs / 1_000)
                try db.query("UPDATE endpoint_state SET delivered = delivered + 1, last_delivered_at = $2 WHERE endpoint = $1", p,
                             "counting a delivery")
            case .retry(let at, let error):
                try updatePending(d, status: .pending, nextMs: at, error: error, nowMs: nowMs)
            case .dead(let error):
                try updatePending(d, status: .dead, nextMs: nowMs, error: error, nowMs: nowMs)
            case .paused(let error):
                try updatePending(d, status: .pending, nextMs: nowMs, error: error, nowMs: nowMs)
                var p = PGParams()
                p.text(d.endpoint)
                p.int8(nowMs / 1_000)
                p.text(error)
                try db.query("UPDATE endpoint_state SET paused_at = $2, pause_reason = $3 WHERE endpoint = $1", p, "pausing an endpoint")
            case .expired:
                key.int8(nowMs)
                try db.query("""
                    UPDATE deliveries SET status = 'dead', updated_ms = $3, last_error = \(Self.expiredError)
                    WHERE event = $1 AND endpoint = $2 AND status = 'pending'
                    """, key, "expiring a delivery")
            }
        }
    }

    /// `last_error` of an expired delivery, keeping the error that kept it from being delivered (as SQLite's).
    private static let expiredError = """
        'older than max_age_hours after ' || attempts || ' attempt(s)' || \
        CASE WHEN last_error <> '' THEN '; last error: ' || last_error ELSE '' END
        """

    private func updatePending(_ d: PendingDelivery, status: DeliveryStatus, nextMs: Int64, error: String, nowMs: Int64) throws(LedgerError) {
        var p = PGParams()
        p.int8(d.event)
        p.text(d.endpoint)
        p.text(status.rawValue)
        p.int8(nextMs)
        p.text(error)
        p.int8(nowMs)
        try db.query("""
            UPDATE deliveries SET status = $3, attempts = attempts + 1, next_attempt_ms = $4, last_error = $5, updated_ms = $6
            WHERE event = $1 AND endpoint = $2 AND status = 'pending'
            """, p, "recording a failed delivery")
    }

    @discardableResult
    public func expireDeliveries(nowMs: Int64, maxAgeMs: Int64) throws(LedgerError) -> Int {
        try write("expiring old deliveries") { () throws(LedgerError) -> Int in
            var p = PGParams()
            p.int8(nowMs)
            p.int8(maxAgeMs)
            return try db.query("""
                UPDATE deliveries SET status = 'dead', updated_ms = $1, last_error = \(Self.expiredError)
                WHERE status = 'pending' AND age_from_ms <= $1 - $2
                """, p, "expiring old deliveries").affected
        }
    }

    // MARK: dead letters

    @discardableResult
    public func requeueDeadLetters(endpoint: String? = nil, nowMs: Int64) throws(LedgerError) -> (requeued: Int, resumed: [String]) {
        try write("re-queueing dead letters") { () throws(LedgerError) -> (requeued: Int, resumed: [String]) in
            var e = PGParams()
            e.text(endpoint)
            let paused = try db.query("""
                SELECT endpoint FROM endpoint_state WHERE paused_at IS NOT NULL AND ($1::text IS NULL OR endpoint = $1)
                ORDER BY endpoint COLLATE "C"
                """, e, "listing paused endpoints")
            let resumed = (0..<paused.rows).map { paused.text($0, 0) }
            try refreshDeadBalances(endpoint: endpoint, now: nowMs / 1_000)
            var p = PGParams()
            p.text(endpoint)
            p.int8(nowMs)
            let requeued = try db.query("""
                UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_ms = $2, age_from_ms = $2, updated_ms = $2
                WHERE status = 'dead' AND ($1::text IS NULL OR endpoint = $1)
                """, p, "re-queueing dead letters").affected
            guard !resumed.isEmpty else { return (requeued, resumed) }
            // A paused endpoint's queue waited through no fault of its events: it restarts fresh too.
            var r = PGParams()
            r.textArray(resumed)
            r.int8(nowMs)
            try db.query("""
                UPDATE deliveries SET next_attempt_ms = $2, age_from_ms = $2, updated_ms = $2
                WHERE status = 'pending' AND endpoint = ANY($1::text[])
                """, r, "restarting a paused endpoint's queue")
            var u = PGParams()
            u.textArray(resumed)
            try db.query("UPDATE endpoint_state SET paused_at = NULL, pause_reason = '' WHERE endpoint = ANY($1::text[])", u,
                         "re-enabling endpoints")
            return (requeued, resumed)
        }
    }

    /// As SQLite's: a dead `balance.updated` is dropped when a newer one of its client has been queued for
    /// its endpoint since (fanned out, and not among what the endpoint still has to catch up on), and the
    /// ones left get the client's figures as they are now.
    private func refreshDeadBalances(endpoint: String?, now: Int64) throws(LedgerError) {
        var e = PGParams()
        e.text(endpoint)
        try db.query("""
            DELETE FROM deliveries d WHERE d.status = 'dead' AND ($1::text IS NULL OR d.endpoint = $1)
              AND d.event IN (SELECT id FROM outbox WHERE type = 'balance.updated')
              AND EXISTS (SELECT 1 FROM outbox n JOIN endpoint_state s ON s.endpoint = d.endpoint
                          WHERE n.type = 'balance.updated' AND n.client_id = d.client_id AND n.id > d.event
                            AND NOT EXISTS (SELECT 1 FROM outbox_fanout f WHERE f.event = n.id)
                            AND (s.backfill_from IS NULL OR n.id <= s.backfill_from))
            """, e, "dropping dead balance events that newer ones replace")
        let stale = try db.query("""
            SELECT DISTINCT o.id, c.username, c.assigned, c.used FROM deliveries d
            JOIN outbox o ON o.id = d.event JOIN clients c ON c.id = o.client_id
            WHERE d.status = 'dead' AND ($1::text IS NULL OR d.endpoint = $1) AND o.type = 'balance.updated'
            """, e, "finding dead balance events")
        guard stale.rows > 0 else { return }
        let t = thresholds
        var p = PGParams()
        p.int8Array((0..<stale.rows).map { stale.int64($0, 0) })
        p.textArray((0..<stale.rows).map { i in
            let data: [(String, JSONValue)] = [("username", .string(stale.text(i, 1)))]
                + Meter(assigned: stale.int64(i, 2), used: stale.int64(i, 3)).jsonFields(t)
            return EventFactory.body(type: "balance.updated", now: now, data: data)
        })
        try db.query("""
            UPDATE outbox SET body = x.body FROM unnest($1::int8[], $2::text[]) AS x(id, body) WHERE outbox.id = x.id
            """, p, "refreshing dead balance events")
    }

    // MARK: status

    public func pendingDeliveries(endpoints: [String]) throws(LedgerError) -> [String: Int] {
        try reading { () throws(LedgerError) -> [String: Int] in
            let r = try db.query("SELECT endpoint, count(*) FROM deliveries WHERE status = 'pending' GROUP BY endpoint",
                                 "counting pending deliveries")
            var out = Dictionary(endpoints.map { ($0, 0) }, uniquingKeysWith: { a, _ in a })
            for i in 0..<r.rows where out[r.text(i, 0)] != nil { out[r.text(i, 0)] = Int(r.int64(i, 1)) }
            return out
        }
    }

    public func deliveries(status: DeliveryStatus? = nil, limit: Int? = nil) throws(LedgerError) -> [DeliveryRecord] {
        try reading { () throws(LedgerError) -> [DeliveryRecord] in
            var p = PGParams()
            p.text(status?.rawValue)
            p.int8(limit.map { Int64(max(0, $0)) })
            let r = try db.query("""
                SELECT o.event_id, o.type, o.username, d.endpoint, d.status, d.attempts, d.next_attempt_ms, d.last_error,
                    o.created_at
                FROM deliveries d JOIN outbox o ON o.id = d.event
                WHERE $1::text IS NULL OR d.status = $1
                ORDER BY d.event, d.endpoint COLLATE "C" LIMIT $2
                """, p, "listing deliveries")
            return (0..<r.rows).map { i in
                DeliveryRecord(eventID: r.text(i, 0), type: r.text(i, 1), username: r.text(i, 2), endpoint: r.text(i, 3),
                               status: DeliveryStatus(rawValue: r.text(i, 4)) ?? .pending, attempts: Int(r.int64(i, 5)),
                               nextAttemptMs: r.int64(i, 6), lastError: r.text(i, 7), createdAt: r.int64(i, 8))
            }
        }
    }

    /// As SQLite's; an endpoint's events "not yet queued" are those in the queue it wants, plus, while it
    /// catches up (or was never registered), the fanned-out ones after where it stands.
    public func endpointStatus(endpoints: [OutboxEndpoint]) throws(LedgerError) -> [EndpointStatus] {
        try reading { () throws(LedgerError) -> [EndpointStatus] in
            let st = try db.query("""
                SELECT endpoint, paused_at, pause_reason, delivered, last_delivered_at, backfill_from FROM endpoint_state
                """, "reading endpoint state")
            var known: [String: EndpointState] = [:]
            var backfills: [String: Int64?] = [:]
            for i in 0..<st.rows {
                known[st.text(i, 0)] = EndpointState(pausedAt: st.optionalInt64(i, 1), reason: st.text(i, 2),
                                                     delivered: st.int64(i, 3), last: st.optionalInt64(i, 4))
                backfills[st.text(i, 0)] = st.optionalInt64(i, 5)
            }
            var counts: [String: (pending: Int, dead: Int)] = [:]
            let c = try db.query("SELECT endpoint, status, count(*) FROM deliveries GROUP BY endpoint, status", "counting deliveries")
            for i in 0..<c.rows {
                let n = Int(c.int64(i, 2))
                if c.text(i, 1) == DeliveryStatus.dead.rawValue { counts[c.text(i, 0), default: (0, 0)].dead += n }
                else { counts[c.text(i, 0), default: (0, 0)].pending += n }
            }
            let queuedTypes = try typeCounts("""
                SELECT o.type, count(*) FROM outbox_fanout f JOIN outbox o ON o.id = f.event GROUP BY o.type
                """, PGParams())
            var behindTypes: [Int64: [String: Int]] = [:]
            return try EndpointStatus.list(endpoints: endpoints, known: known, counts: counts) { (e) throws(LedgerError) -> Int in
                var types = queuedTypes
                // Never registered: it would catch up from the start. Registered: from its backfill, if any.
                if let from = backfills[e.name] ?? 0 {
                    if behindTypes[from] == nil {
                        var p = PGParams()
                        p.int8(from)
                        behindTypes[from] = try typeCounts("""
                            SELECT type, count(*) FROM outbox o
                            WHERE o.id > $1 AND NOT EXISTS (SELECT 1 FROM outbox_fanout f WHERE f.event = o.id) GROUP BY type
                            """, p)
                    }
                    types.merge(behindTypes[from] ?? [:], uniquingKeysWith: +)
                }
                return types.reduce(0) { $0 + (e.wants($1.key) ? $1.value : 0) }
            }
        }
    }

    private func typeCounts(_ sql: String, _ p: PGParams) throws(LedgerError) -> [String: Int] {
        let r = try db.query(sql, p, "counting events not yet queued")
        var out: [String: Int] = [:]
        for i in 0..<r.rows { out[r.text(i, 0), default: 0] += Int(r.int64(i, 1)) }
        return out
    }

    // MARK: pruning

    /// As SQLite's: events with no delivery left that every configured endpoint has had (fanned out, and not
    /// among what one still catches up on), or older than `maxAgeSeconds`. Under the fan-out lock, so an
    /// event is never pruned while a fan-out queues it.
    @discardableResult
    public func pruneOutbox(endpoints: [String], now: Int64, maxAgeSeconds: Int64, limit: Int = 5_000) throws(LedgerError) -> Int {
        try write("pruning delivered events") { () throws(LedgerError) -> Int in
            try advisoryLock(Self.fanOutLock, "waiting for the fan-out lock")
            var floor: Int64 = 0
            if !endpoints.isEmpty {
                var e = PGParams()
                e.textArray(endpoints)
                let r = try db.query("""
                    SELECT x.name, CASE WHEN s.endpoint IS NULL THEN 0 ELSE 1 END::int8, s.backfill_from FROM unnest($1::text[]) AS x(name)
                    LEFT JOIN endpoint_state s ON s.endpoint = x.name
                    """, e, "reading where the endpoints stand")
                floor = Int64.max
                for i in 0..<r.rows {
                    // Never registered: it will want everything still here, as SQLite's cursor 0.
                    let registered = r.int64(i, 1) != 0
                    floor = min(floor, registered ? (r.optionalInt64(i, 2) ?? Int64.max) : 0)
                }
            }
            var p = PGParams()
            p.int8(floor)
            p.int8(now &- maxAgeSeconds)
            p.int8(Int64(max(0, limit)))
            return try db.query("""
                DELETE FROM outbox WHERE id IN (
                    SELECT o.id FROM outbox o
                    WHERE ((o.id <= $1 AND NOT EXISTS (SELECT 1 FROM outbox_fanout f WHERE f.event = o.id)) OR o.created_at < $2)
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event = o.id)
                    ORDER BY o.id LIMIT $3)
                """, p, "pruning delivered events").affected
        }
    }

    // MARK: leases

    /// Taken when free, expired (by the server's clock) or already `holder`'s; renewed for `ttlMs` then.
    public func takeLease(_ name: String, holder: String, ttlMs: Int64) throws(LedgerError) -> Bool {
        try write("taking the delivery lease \(name)") { () throws(LedgerError) -> Bool in
            var p = PGParams()
            p.text(name)
            p.text(holder)
            p.int8(max(1, ttlMs))
            let r = try db.query("""
                INSERT INTO delivery_leases AS l (name, holder, expires_ms) VALUES ($1, $2, \(Self.serverNowMs) + $3)
                ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
                WHERE l.holder = excluded.holder OR l.expires_ms <= \(Self.serverNowMs)
                RETURNING holder
                """, p, "taking the delivery lease \(name)")
            return r.rows == 1
        }
    }

    public func releaseLease(_ name: String, holder: String) throws(LedgerError) {
        try write("giving up the delivery lease \(name)") { () throws(LedgerError) in
            var p = PGParams()
            p.text(name)
            p.text(holder)
            try db.query("DELETE FROM delivery_leases WHERE name = $1 AND holder = $2", p, "giving up the delivery lease \(name)")
        }
    }

    /// Every lease row: who holds it and for how many more ms (negative once expired), for status and tests.
    public func deliveryLeases() throws(LedgerError) -> [(name: String, holder: String, remainingMs: Int64)] {
        try reading { () throws(LedgerError) -> [(name: String, holder: String, remainingMs: Int64)] in
            let r = try db.query("""
                SELECT name, holder, expires_ms - \(Self.serverNowMs) FROM delivery_leases ORDER BY name COLLATE "C"
                """, "reading the delivery leases")
            return (0..<r.rows).map { (r.text($0, 0), r.text($0, 1), r.int64($0, 2)) }
        }
    }
}

import Ledger
import MeterCore

/// An endpoint as the outbox sees it: its name and which event types it takes.
public struct OutboxEndpoint: Sendable {
    public var name: String
    public var wants: @Sendable (String) -> Bool

    public init(name: String, wants: @escaping @Sendable (String) -> Bool) {
        self.name = name
        self.wants = wants
    }
}

/// Whether a delivery is still being tried or has been given up on (a dead letter).
public enum DeliveryStatus: String, Sendable, Equatable, Codable {
    case pending, dead
}

/// One event to send to one endpoint, as the sender needs it.
public struct PendingDelivery: Sendable, Equatable {
    /// The outbox row.
    public var event: Int64
    /// The stable `webhook-id`.
    public var eventID: String
    public var endpoint: String
    public var type: String
    public var clientID: Int64?
    public var username: String
    /// The exact bytes to send and sign.
    public var body: String
    /// Attempts already made.
    public var attempts: Int
    /// Unix ms that `max_age_hours` counts from.
    public var ageFromMs: Int64

    public init(event: Int64, eventID: String, endpoint: String, type: String, clientID: Int64?, username: String,
                body: String, attempts: Int, ageFromMs: Int64) {
        self.event = event
        self.eventID = eventID
        self.endpoint = endpoint
        self.type = type
        self.clientID = clientID
        self.username = username
        self.body = body
        self.attempts = attempts
        self.ageFromMs = ageFromMs
    }
}

/// What became of one delivery attempt.
public enum DeliveryResult: Sendable, Equatable {
    case delivered
    /// Try again at this unix ms.
    case retry(atMs: Int64, error: String)
    /// A permanent answer: a dead letter.
    case dead(error: String)
    /// Older than `max_age_hours` when it came up: a dead letter, without an attempt.
    case expired
    /// 410: pause the endpoint; the event stays queued.
    case paused(error: String)
}

/// What an endpoint's sender should do now.
public struct DueDeliveries: Sendable, Equatable {
    /// The endpoint answered 410 and nobody has re-enabled it: send nothing.
    public var paused: Bool
    /// Due now, oldest first, at most one per client (its oldest pending event).
    public var due: [PendingDelivery]
    /// When `due` is empty: the unix ms the next one comes due, nil when nothing is queued.
    public var nextDueMs: Int64?

    public init(paused: Bool, due: [PendingDelivery], nextDueMs: Int64?) {
        self.paused = paused
        self.due = due
        self.nextDueMs = nextDueMs
    }
}

/// A queued or dead delivery, for `outbox list`.
public struct DeliveryRecord: Sendable, Equatable {
    public var eventID: String
    public var type: String
    public var username: String
    public var endpoint: String
    public var status: DeliveryStatus
    public var attempts: Int
    /// Unix ms.
    public var nextAttemptMs: Int64
    public var lastError: String
    /// Unix seconds the event was made.
    public var createdAt: Int64

    public init(eventID: String, type: String, username: String, endpoint: String, status: DeliveryStatus, attempts: Int,
                nextAttemptMs: Int64, lastError: String, createdAt: Int64) {
        self.eventID = eventID
        self.type = type
        self.username = username
        self.endpoint = endpoint
        self.status = status
        self.attempts = attempts
        self.nextAttemptMs = nextAttemptMs
        self.lastError = lastError
        self.createdAt = createdAt
    }
}

/// One endpoint's queue at a glance, for `outbox list` and metrics.
public struct EndpointStatus: Sendable, Equatable {
    public var name: String
    /// False for an endpoint that has state in the store but is no longer in the config.
    public var configured: Bool
    /// Unix seconds it was paused by a 410, nil when sending.
    public var pausedAt: Int64?
    public var pauseReason: String
    public var pending: Int
    public var dead: Int
    /// Events it wants that are in the outbox but not yet queued for it (the daemon queues them).
    public var awaitingFanOut: Int
    /// Events delivered since the store was created.
    public var delivered: Int64
    public var lastDeliveredAt: Int64?

    public init(name: String, configured: Bool, pausedAt: Int64?, pauseReason: String, pending: Int, dead: Int,
                awaitingFanOut: Int, delivered: Int64, lastDeliveredAt: Int64?) {
        self.name = name
        self.configured = configured
        self.pausedAt = pausedAt
        self.pauseReason = pauseReason
        self.pending = pending
        self.dead = dead
        self.awaitingFanOut = awaitingFanOut
        self.delivered = delivered
        self.lastDeliveredAt = lastDeliveredAt
    }
}

/// What a store keeps of one endpoint's delivery: its pause, and what it has delivered.
public struct EndpointState: Sendable {
    public var pausedAt: Int64?
    public var reason: String
    public var delivered: Int64
    public var last: Int64?

    public init(pausedAt: Int64?, reason: String, delivered: Int64, last: Int64?) {
        self.pausedAt = pausedAt
        self.reason = reason
        self.delivered = delivered
        self.last = last
    }
}

extension EndpointStatus {
    /// `outbox list`'s endpoints, whichever store keeps them: every configured endpoint in config order,
    /// with `awaiting` of its events not yet queued for it; then, by name, every other endpoint the store
    /// still has state or deliveries for.
    public static func list(endpoints: [OutboxEndpoint], known: [String: EndpointState],
                            counts: [String: (pending: Int, dead: Int)],
                            awaiting: (OutboxEndpoint) throws(LedgerError) -> Int) throws(LedgerError) -> [EndpointStatus] {
        func status(_ name: String, configured: Bool, awaiting: Int) -> EndpointStatus {
            let k = known[name]
            return EndpointStatus(name: name, configured: configured, pausedAt: k?.pausedAt, pauseReason: k?.reason ?? "",
                                  pending: counts[name]?.pending ?? 0, dead: counts[name]?.dead ?? 0,
                                  awaitingFanOut: awaiting, delivered: k?.delivered ?? 0, lastDeliveredAt: k?.last)
        }
        var out: [EndpointStatus] = []
        for e in endpoints { out.append(status(e.name, configured: true, awaiting: try awaiting(e))) }
        let configured = Set(endpoints.map(\.name))
        for name in Set(known.keys).union(counts.keys).subtracting(configured).sorted() {
            out.append(status(name, configured: false, awaiting: 0))
        }
        return out
    }
}

/// The delivery side of the outbox: fan-out to endpoints, per-endpoint queues, dead letters, pauses,
/// balance coalescing and pruning. Events themselves are written by the ledger changes that cause them.
///
/// Fan-out is lazy: each endpoint keeps a cursor on outbox ids (never reused: AUTOINCREMENT), and the
/// delivery loop queues every newer event the endpoint wants. So writers (daemon or CLI) need not know the
/// endpoints, and an endpoint added to the config receives what is still in the outbox.
extension Ledger {
    /// Changes whenever an event is added (the outbox's AUTOINCREMENT high-water mark): a cheap read that
    /// lets the delivery loop poll often without taking the write lock.
    public func outboxSequence() throws(LedgerError) -> Int64 {
        try locked { () throws(LedgerError) -> Int64 in
            try store.scalarInt("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)",
                                purpose: "reading the outbox sequence")
        }
    }

    /// Queues, for each endpoint, every event after its cursor that it wants, in one transaction. Reads at
    /// most `limit` events per endpoint: `more` says some endpoint has more to read (call again).
    @discardableResult
    public func fanOut(endpoints: [OutboxEndpoint], nowMs: Int64, limit: Int = 1_000) throws(LedgerError) -> (queued: [String: Int], more: Bool) {
        try write("queueing events for the endpoints") { () throws(LedgerError) -> (queued: [String: Int], more: Bool) in
            var queued: [String: Int] = [:]
            var more = false
            let ensure = try store.statement("INSERT INTO endpoint_state (endpoint) VALUES (?1) ON CONFLICT DO NOTHING",
                                             "registering an endpoint")
            let cursor = try store.statement("SELECT cursor FROM endpoint_state WHERE endpoint = ?1", "reading an endpoint's cursor")
            let events = try store.statement("""
                SELECT id, type, client_id, created_at FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2
                """, "reading new events")
            let insert = try store.statement("""
                INSERT INTO deliveries (event, endpoint, client_id, status, attempts, next_attempt_ms, age_from_ms, updated_ms)
                VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?5, ?4) ON CONFLICT DO NOTHING
                """, "queueing an event for an endpoint")
            let advance = try store.statement("UPDATE endpoint_state SET cursor = ?2 WHERE endpoint = ?1", "moving an endpoint's cursor")
            for endpoint in endpoints {
                do {
                    defer { ensure.reset() }
                    try ensure.bind(1, endpoint.name)
                    try ensure.run()
                }
                let from: Int64
                do {
                    defer { cursor.reset() }
                    try cursor.bind(1, endpoint.name)
                    from = try cursor.step() ? cursor.int64(0) : 0
                }
                var rows: [(id: Int64, type: String, client: Int64?, createdAt: Int64)] = []
                do {
                    defer { events.reset() }
                    try events.bind(1, from)
                    try events.bind(2, Int64(limit))
                    while try events.step() {
                        rows.append((events.int64(0), events.text(1), events.optionalInt64(2), events.int64(3)))
                    }
                }
                guard let last = rows.last else { continue }
                if rows.count >= limit { more = true }
                var n = 0
                for row in rows where endpoint.wants(row.type) {
                    defer { insert.reset() }
                    try insert.bind(1, row.id)
                    try insert.bind(2, endpoint.name)
                    try insert.bind(3, row.client)
                    try insert.bind(4, nowMs)
                    try insert.bind(5, row.createdAt &* 1_000)
                    try insert.run()
                    n += store.changes
                }
                defer { advance.reset() }
                try advance.bind(1, endpoint.name)
                try advance.bind(2, last.id)
                try advance.run()
                if n > 0 { queued[endpoint.name] = n }
            }
            return (queued, more)
        }
    }

    /// Makes the coalesced `balance.updated` events: for every client whose balance changed since its last
    /// one, and whose last one is at least `intervalSeconds` old, one event with the figures as they are now.
    /// One transaction; returns how many events were made.
    @discardableResult
    public func materializeBalances(now: Int64, intervalSeconds: Int64) throws(LedgerError) -> Int {
        let t = thresholds
        // Called every second: a read spares the write lock (which the ingest side wants) when nothing changed.
        let any = try locked { () throws(LedgerError) -> Int64 in
            try store.scalarInt("SELECT EXISTS (SELECT 1 FROM balance_dirty)", purpose: "looking for changed balances")
        }
        guard any != 0 else { return 0 }
        return try write("making balance.updated events") { () throws(LedgerError) -> Int in
            let due = try store.statement("""
                SELECT d.client_id, c.username, c.assigned, c.used FROM balance_dirty d
                JOIN clients c ON c.id = d.client_id
                LEFT JOIN balance_sent s ON s.client_id = d.client_id
                WHERE s.at IS NULL OR s.at <= ?1 - ?2
                ORDER BY d.since, d.client_id
                """, "finding balances to announce")
            var clients: [(id: Int64, username: String, meter: Meter)] = []
            do {
                defer { due.reset() }
                try due.bind(1, now)
                try due.bind(2, max(0, intervalSeconds))
                while try due.step() {
                    clients.append((due.int64(0), due.text(1), Meter(assigned: due.int64(2), used: due.int64(3))))
                }
            }
            guard !clients.isEmpty else { return 0 }
            let clean = try store.statement("DELETE FROM balance_dirty WHERE client_id = ?1", "clearing a changed balance")
            let sent = try store.statement("""
                INSERT INTO balance_sent (client_id, at) VALUES (?1, ?2) ON CONFLICT (client_id) DO UPDATE SET at = excluded.at
                """, "recording a balance event")
            for c in clients {
                let data: [(String, JSONValue)] = [("username", .string(c.username))] + c.meter.jsonFields(t)
                try insertEvent(type: "balance.updated", clientID: c.id, username: c.username,
                                body: EventFactory.body(type: "balance.updated", now: now, data: data), now: now)
                do {
                    defer { clean.reset() }
                    try clean.bind(1, c.id)
                    try clean.run()
                }
                defer { sent.reset() }
                try sent.bind(1, c.id)
                try sent.bind(2, now)
                try sent.run()
            }
            return clients.count
        }
    }

    /// The deliveries `endpoint` should attempt now: pending, due, and each the oldest pending event of its
    /// client for this endpoint, so one client's events go out in order even across retries.
    public func dueDeliveries(endpoint: String, nowMs: Int64, limit: Int = 100) throws(LedgerError) -> DueDeliveries {
        try locked { () throws(LedgerError) -> DueDeliveries in
            let p = try store.statement("SELECT paused_at FROM endpoint_state WHERE endpoint = ?1", "reading an endpoint's pause")
            let paused: Bool
            do {
                defer { p.reset() }
                try p.bind(1, endpoint)
                paused = try p.step() && !p.isNull(0)
            }
            if paused { return DueDeliveries(paused: true, due: [], nextDueMs: nil) }
            let s = try store.statement("""
                SELECT d.event, o.event_id, o.type, d.client_id, o.username, o.body, d.attempts, d.age_from_ms
                FROM deliveries d JOIN outbox o ON o.id = d.event
                WHERE d.endpoint = ?1 AND d.status = 'pending' AND d.next_attempt_ms <= ?2
                  AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.endpoint = ?1 AND e.status = 'pending'
                                  AND e.client_id = d.client_id AND e.event < d.event)
                ORDER BY d.event LIMIT ?3
                """, "finding due deliveries")
            var due: [PendingDelivery] = []
            do {
                defer { s.reset() }
                try s.bind(1, endpoint)
                try s.bind(2, nowMs)
                try s.bind(3, Int64(limit))
                while try s.step() {
                    due.append(PendingDelivery(event: s.int64(0), eventID: s.text(1), endpoint: endpoint, type: s.text(2),
                                               clientID: s.optionalInt64(3), username: s.text(4), body: s.text(5),
                                               attempts: Int(s.int64(6)), ageFromMs: s.int64(7)))
                }
            }
            if !due.isEmpty { return DueDeliveries(paused: false, due: due, nextDueMs: nowMs) }
            // Only heads count: a later event of a client waiting on a retry is "due" but blocked.
            let n = try store.statement("""
                SELECT min(d.next_attempt_ms) FROM deliveries d
                WHERE d.endpoint = ?1 AND d.status = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.endpoint = ?1 AND e.status = 'pending'
                                  AND e.client_id = d.client_id AND e.event < d.event)
                """, "finding the next due delivery")
            defer { n.reset() }
            try n.bind(1, endpoint)
            let next = try n.step() ? n.optionalInt64(0) : nil
            return DueDeliveries(paused: false, due: [], nextDueMs: next)
        }
    }

    /// Records one attempt's result in one transaction. A result for a delivery that is no longer pending
    /// (expired or re-queued meanwhile) changes nothing but a `.delivered`, which always removes it.
    public func recordDelivery(_ d: PendingDelivery, _ result: DeliveryResult, nowMs: Int64) throws(LedgerError) {
        try write("recording a delivery to \(d.endpoint)") { () throws(LedgerError) in
            switch result {
            case .delivered:
                let del = try store.statement("DELETE FROM deliveries WHERE event = ?1 AND endpoint = ?2", "removing a delivered event")
                do {
                    defer { del.reset() }
                    try del.bind(1, d.event)
                    try del.bind(2, d.endpoint)
                    try del.run()
                }
                guard store.changes > 0 else { return }
                let s = try store.statement("""
                    UPDATE endpoint_state SET delivered = delivered + 1, last_delivered_at = ?2 WHERE endpoint = ?1
                    """, "counting a delivery")
                defer { s.reset() }
                try s.bind(1, d.endpoint)
                try s.bind(2, nowMs / 1_000)
                try s.run()
            case .retry(let at, let error):
                try updatePending(d, status: .pending, nextMs: at, error: error, nowMs: nowMs)
            case .dead(let error):
                try updatePending(d, status: .dead, nextMs: nowMs, error: error, nowMs: nowMs)
            case .paused(let error):
                try updatePending(d, status: .pending, nextMs: nowMs, error: error, nowMs: nowMs)
                let s = try store.statement("""
                    UPDATE endpoint_state SET paused_at = ?2, pause_reason = ?3 WHERE endpoint = ?1
                    """, "pausing an endpoint")
                defer { s.reset() }
                try s.bind(1, d.endpoint)
                try s.bind(2, nowMs / 1_000)
                try s.bind(3, error)
                try s.run()
            case .expired:
                let s = try store.statement("""
                    UPDATE deliveries SET status = 'dead', updated_ms = ?3, last_error = \(Ledger.expiredError)
                    WHERE event = ?1 AND endpoint = ?2 AND status = 'pending'
                    """, "expiring a delivery")
                defer { s.reset() }
                try s.bind(1, d.event)
                try s.bind(2, d.endpoint)
                try s.bind(3, nowMs)
                try s.run()
            }
        }
    }

    /// `last_error` of an expired delivery, keeping the error that kept it from being delivered.
    private static let expiredError = """
        'older than max_age_hours after ' || attempts || ' attempt(s)' || \
        CASE WHEN last_error <> '' THEN '; last error: ' || last_error ELSE '' END
        """

    private func updatePending(_ d: PendingDelivery, status: DeliveryStatus, nextMs: Int64, error: String, nowMs: Int64) throws(LedgerError) {
        let s = try store.statement("""
            UPDATE deliveries SET status = ?3, attempts = attempts + 1, next_attempt_ms = ?4, last_error = ?5, updated_ms = ?6
            WHERE event = ?1 AND endpoint = ?2 AND status = 'pending'
            """, "recording a failed delivery")
        defer { s.reset() }
        try s.bind(1, d.event)
        try s.bind(2, d.endpoint)
        try s.bind(3, status.rawValue)
        try s.bind(4, nextMs)
        try s.bind(5, error)
        try s.bind(6, nowMs)
        try s.run()
    }

    /// Turns every pending delivery older than `maxAgeMs` into a dead letter (also those stuck behind a
    /// retrying event or a paused endpoint); returns how many.
    @discardableResult
    public func expireDeliveries(nowMs: Int64, maxAgeMs: Int64) throws(LedgerError) -> Int {
        try write("expiring old deliveries") { () throws(LedgerError) -> Int in
            let s = try store.statement("""
                UPDATE deliveries SET status = 'dead', updated_ms = ?1, last_error = \(Ledger.expiredError)
                WHERE status = 'pending' AND age_from_ms <= ?1 - ?2
                """, "expiring old deliveries")
            defer { s.reset() }
            try s.bind(1, nowMs)
            try s.bind(2, maxAgeMs)
            try s.run()
            return store.changes
        }
    }

    /// Re-queues dead letters (all, or one endpoint's) and re-enables paused endpoints; what comes back is
    /// due now and gets a fresh `max_age_hours`. Returns the re-queued count and the endpoints resumed.
    @discardableResult
    public func requeueDeadLetters(endpoint: String? = nil, nowMs: Int64) throws(LedgerError) -> (requeued: Int, resumed: [String]) {
        try write("re-queueing dead letters") { () throws(LedgerError) -> (requeued: Int, resumed: [String]) in
            let p = try store.statement("""
                SELECT endpoint FROM endpoint_state WHERE paused_at IS NOT NULL AND (?1 IS NULL OR endpoint = ?1) ORDER BY endpoint
                """, "listing paused endpoints")
            var resumed: [String] = []
            do {
                defer { p.reset() }
                try p.bind(1, endpoint)
                while try p.step() { resumed.append(p.text(0)) }
            }
            try refreshDeadBalances(endpoint: endpoint, now: nowMs / 1_000)
            let dead = try store.statement("""
                UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_ms = ?2, age_from_ms = ?2, updated_ms = ?2
                WHERE status = 'dead' AND (?1 IS NULL OR endpoint = ?1)
                """, "re-queueing dead letters")
            let requeued: Int
            do {
                defer { dead.reset() }
                try dead.bind(1, endpoint)
                try dead.bind(2, nowMs)
                try dead.run()
                requeued = store.changes
            }
            // A paused endpoint's queue waited through no fault of its events: it restarts fresh too.
            let fresh = try store.statement("""
                UPDATE deliveries SET next_attempt_ms = ?2, age_from_ms = ?2, updated_ms = ?2
                WHERE status = 'pending' AND endpoint = ?1
                """, "restarting a paused endpoint's queue")
            let unpause = try store.statement("""
                UPDATE endpoint_state SET paused_at = NULL, pause_reason = '' WHERE endpoint = ?1
                """, "re-enabling an endpoint")
            for name in resumed {
                do {
                    defer { fresh.reset() }
                    try fresh.bind(1, name)
                    try fresh.bind(2, nowMs)
                    try fresh.run()
                }
                defer { unpause.reset() }
                try unpause.bind(1, name)
                try unpause.run()
            }
            return (requeued, resumed)
        }
    }

    /// A dead `balance.updated` sent after newer figures would leave the receiver with a stale balance. So
    /// before dead letters are re-queued, one is dropped when a newer `balance.updated` of its client has
    /// been queued for its endpoint since (delivered, pending or dead: the newest speaks for them all), and
    /// the ones left get the client's figures as they are now (and the time of the re-queue).
    private func refreshDeadBalances(endpoint: String?, now: Int64) throws(LedgerError) {
        let superseded = try store.statement("""
            DELETE FROM deliveries WHERE status = 'dead' AND (?1 IS NULL OR endpoint = ?1)
              AND event IN (SELECT id FROM outbox WHERE type = 'balance.updated')
              AND EXISTS (SELECT 1 FROM outbox n JOIN endpoint_state s ON s.endpoint = deliveries.endpoint
                          WHERE n.type = 'balance.updated' AND n.client_id = deliveries.client_id
                            AND n.id > deliveries.event AND n.id <= s.cursor)
            """, "dropping dead balance events that newer ones replace")
        do {
            defer { superseded.reset() }
            try superseded.bind(1, endpoint)
            try superseded.run()
        }
        let stale = try store.statement("""
            SELECT DISTINCT o.id, c.username, c.assigned, c.used FROM deliveries d
            JOIN outbox o ON o.id = d.event JOIN clients c ON c.id = o.client_id
            WHERE d.status = 'dead' AND (?1 IS NULL OR d.endpoint = ?1) AND o.type = 'balance.updated'
            """, "finding dead balance events")
        var rows: [(event: Int64, username: String, meter: Meter)] = []
        do {
            defer { stale.reset() }
            try stale.bind(1, endpoint)
            while try stale.step() {
                rows.append((stale.int64(0), stale.text(1), Meter(assigned: stale.int64(2), used: stale.int64(3))))
            }
        }
        let t = thresholds
        let rewrite = try store.statement("UPDATE outbox SET body = ?2 WHERE id = ?1", "refreshing a dead balance event")
        for r in rows {
            let data: [(String, JSONValue)] = [("username", .string(r.username))] + r.meter.jsonFields(t)
            defer { rewrite.reset() }
            try rewrite.bind(1, r.event)
            try rewrite.bind(2, EventFactory.body(type: "balance.updated", now: now, data: data))
            try rewrite.run()
        }
    }

    /// Pending (queued or retrying) deliveries of each endpoint named; 0 for one with none.
    public func pendingDeliveries(endpoints: [String]) throws(LedgerError) -> [String: Int] {
        try locked { () throws(LedgerError) -> [String: Int] in
            let s = try store.statement("""
                SELECT endpoint, count(*) FROM deliveries WHERE status = 'pending' GROUP BY endpoint
                """, "counting pending deliveries")
            defer { s.reset() }
            var out = Dictionary(endpoints.map { ($0, 0) }, uniquingKeysWith: { a, _ in a })
            while try s.step() {
                let name = s.text(0)
                if out[name] != nil { out[name] = Int(s.int64(1)) }
            }
            return out
        }
    }

    /// Queued deliveries, oldest event first: pending and dead, or only one status.
    public func deliveries(status: DeliveryStatus? = nil, limit: Int? = nil) throws(LedgerError) -> [DeliveryRecord] {
        try locked { () throws(LedgerError) -> [DeliveryRecord] in
            let s = try store.statement("""
                SELECT o.event_id, o.type, o.username, d.endpoint, d.status, d.attempts, d.next_attempt_ms, d.last_error,
                    o.created_at
                FROM deliveries d JOIN outbox o ON o.id = d.event
                WHERE ?1 IS NULL OR d.status = ?1
                ORDER BY d.event, d.endpoint LIMIT ?2
                """, "listing deliveries")
            defer { s.reset() }
            try s.bind(1, status?.rawValue)
            try s.bind(2, Int64(limit ?? -1))
            var out: [DeliveryRecord] = []
            while try s.step() {
                out.append(DeliveryRecord(eventID: s.text(0), type: s.text(1), username: s.text(2), endpoint: s.text(3),
                                          status: DeliveryStatus(rawValue: s.text(4)) ?? .pending, attempts: Int(s.int64(5)),
                                          nextAttemptMs: s.int64(6), lastError: s.text(7), createdAt: s.int64(8)))
            }
            return out
        }
    }

    /// Every configured endpoint, then every other endpoint the store still has state for, by name.
    public func endpointStatus(endpoints: [OutboxEndpoint]) throws(LedgerError) -> [EndpointStatus] {
        try locked { () throws(LedgerError) -> [EndpointStatus] in
            var known: [String: EndpointState] = [:]
            var cursors: [String: Int64] = [:]
            let st = try store.statement("""
                SELECT endpoint, cursor, paused_at, pause_reason, delivered, last_delivered_at FROM endpoint_state
                """, "reading endpoint state")
            do {
                defer { st.reset() }
                while try st.step() {
                    known[st.text(0)] = EndpointState(pausedAt: st.optionalInt64(2), reason: st.text(3), delivered: st.int64(4),
                                                      last: st.optionalInt64(5))
                    cursors[st.text(0)] = st.int64(1)
                }
            }
            var counts: [String: (pending: Int, dead: Int)] = [:]
            let c = try store.statement("SELECT endpoint, status, count(*) FROM deliveries GROUP BY endpoint, status",
                                        "counting deliveries")
            do {
                defer { c.reset() }
                while try c.step() {
                    let n = Int(c.int64(2))
                    if c.text(1) == DeliveryStatus.dead.rawValue { counts[c.text(0), default: (0, 0)].dead += n }
                    else { counts[c.text(0), default: (0, 0)].pending += n }
                }
            }
            let types = try store.statement("SELECT type, count(*) FROM outbox WHERE id > ?1 GROUP BY type",
                                            "counting events not yet queued")
            return try EndpointStatus.list(endpoints: endpoints, known: known, counts: counts) { (e) throws(LedgerError) -> Int in
                var awaiting = 0
                defer { types.reset() }
                try types.bind(1, cursors[e.name] ?? 0)
                while try types.step() {
                    if e.wants(types.text(0)) { awaiting += Int(types.int64(1)) }
                }
                return awaiting
            }
        }
    }

    /// Deletes events nothing needs any more: no delivery left (pending or dead), and either queued for
    /// every configured endpoint already or older than `maxAgeSeconds` (an endpoint added later would only
    /// dead-letter them). At most `limit` per call; returns how many.
    @discardableResult
    public func pruneOutbox(endpoints: [String], now: Int64, maxAgeSeconds: Int64, limit: Int = 5_000) throws(LedgerError) -> Int {
        try write("pruning delivered events") { () throws(LedgerError) -> Int in
            var floor: Int64 = 0
            if !endpoints.isEmpty {
                let cur = try store.statement("SELECT cursor FROM endpoint_state WHERE endpoint = ?1", "reading an endpoint's cursor")
                var lowest = Int64.max
                for name in endpoints {
                    defer { cur.reset() }
                    try cur.bind(1, name)
                    lowest = min(lowest, try cur.step() ? cur.int64(0) : 0)
                }
                floor = lowest
            }
            let s = try store.statement("""
                DELETE FROM outbox WHERE id IN (
                    SELECT o.id FROM outbox o
                    WHERE (o.id <= ?1 OR o.created_at < ?2)
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event = o.id)
                    ORDER BY o.id LIMIT ?3)
                """, "pruning delivered events")
            defer { s.reset() }
            try s.bind(1, floor)
            try s.bind(2, now - maxAgeSeconds)
            try s.bind(3, Int64(limit))
            try s.run()
            return store.changes
        }
    }
}

import Foundation
import Testing
import Ledger
import Outbox
import MeterCore

@Suite struct CoalescingTests {
    @Test func manyChangesInOneIntervalMakeOneEventWithTheFinalFigures() throws {
        let t = try TempStore()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1_000)
        for i in 0 ..< 20 { try spend(t.ledger, client: ann, cost: credit, id: "c\(i)", now: 1_000 + Int64(i) / 10) }

        #expect(try t.ledger.materializeBalances(now: 1_002, intervalSeconds: 10) == 1)
        let balances = try t.ledger.outboxEvents(limit: 100).filter { $0.type == "balance.updated" }
        #expect(balances.count == 1)
        let d = data(try #require(balances.first).body)
        #expect(d["username"] as? String == "ann")
        #expect(d["available"] as? String == "80" && d["used"] as? String == "20" && d["assigned"] as? String == "100")
        #expect(d["level"] as? String == "ok" && d["color"] as? String == "primary")
        #expect((d["percent"] as? NSNumber)?.intValue == 80)
        #expect(json(balances[0].body)["timestamp"] as? String == "1970-01-01T00:16:42Z")

        // Nothing changed since: nothing more, whatever the time.
        #expect(try t.ledger.materializeBalances(now: 5_000, intervalSeconds: 10) == 0)
    }

    @Test func aLaterChangeWaitsForTheIntervalAndCarriesTheNewestFigures() throws {
        let t = try TempStore()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1_000)
        #expect(try t.ledger.materializeBalances(now: 1_000, intervalSeconds: 10) == 1)
        try spend(t.ledger, client: ann, cost: 5 * credit, id: "a", now: 1_001)
        #expect(try t.ledger.materializeBalances(now: 1_001, intervalSeconds: 10) == 0)
        try spend(t.ledger, client: ann, cost: 5 * credit, id: "b", now: 1_005)
        #expect(try t.ledger.materializeBalances(now: 1_009, intervalSeconds: 10) == 0)
        #expect(try t.ledger.materializeBalances(now: 1_010, intervalSeconds: 10) == 1)
        let balances = try t.ledger.outboxEvents(limit: 100).filter { $0.type == "balance.updated" }
        #expect(balances.map { data($0.body)["available"] as? String } == ["100", "90"])
    }

    @Test func zeroIntervalAnnouncesEveryTickAndClientsAreIndependent() throws {
        let t = try TempStore()
        defer { t.cleanup() }
        try makeClient(t.ledger, "ann")
        try makeClient(t.ledger, "bob")
        _ = try t.ledger.recharge(username: "ann", amount: credit, key: nil, now: 1_000)
        #expect(try t.ledger.materializeBalances(now: 1_000, intervalSeconds: 10) == 1)
        _ = try t.ledger.recharge(username: "bob", amount: credit, key: nil, now: 1_001)
        // bob never had one: not held back by ann's interval.
        #expect(try t.ledger.materializeBalances(now: 1_001, intervalSeconds: 10) == 1)
        _ = try t.ledger.recharge(username: "ann", amount: credit, key: nil, now: 1_001)
        #expect(try t.ledger.materializeBalances(now: 1_001, intervalSeconds: 0) == 1)
    }
}

@Suite struct QueueTests {
    /// ann and bob, each with three events: client.created, client.recharged, credit.recovered (a new client
    /// has nothing assigned, so it starts exhausted).
    func setUp() throws -> (TempStore, ClientRecord, ClientRecord) {
        let t = try TempStore()
        let ann = try makeClient(t.ledger, "ann")
        let bob = try makeClient(t.ledger, "bob")
        _ = try t.ledger.recharge(username: "ann", amount: 10 * credit, key: nil, now: 1_000)
        _ = try t.ledger.recharge(username: "bob", amount: 10 * credit, key: nil, now: 1_000)
        return (t, ann, bob)
    }

    @Test func fanOutQueuesWhatEachEndpointWantsOnce() throws {
        let (t, _, _) = try setUp()
        defer { t.cleanup() }
        let credit = OutboxEndpoint(name: "credit", wants: { $0.hasPrefix("credit.") })
        let r = try t.ledger.fanOut(endpoints: [everything("a"), credit], nowMs: 0)
        #expect(r.queued == ["a": 6, "credit": 2] && !r.more)
        #expect(try t.ledger.fanOut(endpoints: [everything("a"), credit], nowMs: 0).queued.isEmpty)
        #expect(try t.ledger.deliveries().count == 8)
        // An endpoint added later gets what is still in the outbox.
        #expect(try t.ledger.fanOut(endpoints: [everything("late")], nowMs: 0).queued == ["late": 6])
        // Paging: a small limit says there is more.
        _ = try t.ledger.recharge(username: "ann", amount: 1, key: nil, now: 1_001)
        let paged = try t.ledger.fanOut(endpoints: [everything("p")], nowMs: 0, limit: 2)
        #expect(paged.queued == ["p": 2] && paged.more)
    }

    @Test func oneClientsEventsGoInOrderEvenAcrossRetries() throws {
        let (t, ann, bob) = try setUp()
        defer { t.cleanup() }
        try t.ledger.fanOut(endpoints: [everything("a")], nowMs: 0)
        var due = try t.ledger.dueDeliveries(endpoint: "a", nowMs: 0)
        // One head per client: ann's created, bob's created.
        #expect(due.due.map(\.type) == ["client.created", "client.created"])
        #expect(Set(due.due.map(\.clientID)) == [ann.id, bob.id])
        let annHead = try #require(due.due.first { $0.clientID == ann.id })
        let bobHead = try #require(due.due.first { $0.clientID == bob.id })
        try t.ledger.recordDelivery(annHead, .retry(atMs: 5_000, error: "HTTP 503"), nowMs: 10)
        try t.ledger.recordDelivery(bobHead, .delivered, nowMs: 10)

        // ann's later events wait behind her created event; bob's go, one at a time, in order.
        #expect(try drain(t.ledger, "a", nowMs: 100) == ["client.recharged", "credit.recovered"].map { (bob.id, $0) })
        due = try t.ledger.dueDeliveries(endpoint: "a", nowMs: 100)
        #expect(due.due.isEmpty && due.nextDueMs == 5_000)

        due = try t.ledger.dueDeliveries(endpoint: "a", nowMs: 5_000)
        #expect(due.due.map(\.eventID) == [annHead.eventID] && due.due[0].attempts == 1)
        #expect(try drain(t.ledger, "a", nowMs: 5_000) == ["client.created", "client.recharged", "credit.recovered"].map { (ann.id, $0) })
        #expect(try t.ledger.deliveries().isEmpty)
        let status = try t.ledger.endpointStatus(endpoints: [everything("a")])
        #expect(status.first?.delivered == 6 && status.first?.pending == 0)
    }

    @Test func endpointsAreIndependent() throws {
        let (t, _, _) = try setUp()
        defer { t.cleanup() }
        try t.ledger.fanOut(endpoints: [everything("a"), everything("b")], nowMs: 0)
        let a = try t.ledger.dueDeliveries(endpoint: "a", nowMs: 0).due
        for d in a { try t.ledger.recordDelivery(d, .retry(atMs: 60_000, error: "down"), nowMs: 0) }
        let b = try t.ledger.dueDeliveries(endpoint: "b", nowMs: 0).due
        #expect(b.count == 2)
        for d in b { try t.ledger.recordDelivery(d, .delivered, nowMs: 0) }
        #expect(try t.ledger.dueDeliveries(endpoint: "b", nowMs: 0).due.count == 2)
    }

    @Test func deadLettersUnblockTheClientAndCanBeRequeued() throws {
        let (t, ann, _) = try setUp()
        defer { t.cleanup() }
        try t.ledger.fanOut(endpoints: [everything("a")], nowMs: 0)
        let head = try #require(try t.ledger.dueDeliveries(endpoint: "a", nowMs: 0).due.first { $0.clientID == ann.id })
        try t.ledger.recordDelivery(head, .dead(error: "HTTP 404"), nowMs: 1)
        let dead = try t.ledger.deliveries(status: .dead)
        #expect(dead.count == 1 && dead[0].eventID == head.eventID && dead[0].lastError == "HTTP 404" && dead[0].attempts == 1)
        #expect(dead[0].username == "ann" && dead[0].endpoint == "a" && dead[0].type == "client.created")
        // The next event of ann is not held back by a dead letter.
        let next = try t.ledger.dueDeliveries(endpoint: "a", nowMs: 2).due.filter { $0.clientID == ann.id }
        #expect(next.map(\.type) == ["client.recharged"])

        let r = try t.ledger.requeueDeadLetters(nowMs: 10)
        #expect(r.requeued == 1 && r.resumed.isEmpty)
        #expect(try t.ledger.deliveries(status: .dead).isEmpty)
        let again = try t.ledger.dueDeliveries(endpoint: "a", nowMs: 10).due.filter { $0.clientID == ann.id }
        #expect(again.map(\.eventID) == [head.eventID] && again[0].attempts == 0 && again[0].ageFromMs == 10)
    }

    @Test func pendingCountsAreByEndpointAndLeaveOutDeadLetters() throws {
        let (t, _, _) = try setUp()
        defer { t.cleanup() }
        #expect(try t.ledger.pendingDeliveries(endpoints: ["a", "b"]) == ["a": 0, "b": 0])
        try t.ledger.fanOut(endpoints: [everything("a")], nowMs: 0)
        #expect(try t.ledger.pendingDeliveries(endpoints: ["a", "b"]) == ["a": 6, "b": 0])
        let head = try #require(try t.ledger.dueDeliveries(endpoint: "a", nowMs: 0).due.first)
        try t.ledger.recordDelivery(head, .dead(error: "HTTP 404"), nowMs: 1)
        #expect(try t.ledger.pendingDeliveries(endpoints: ["a"]) == ["a": 5])
    }

    @Test func goneEndpointPausesUntilRetry() throws {
        let (t, _, _) = try setUp()
        defer { t.cleanup() }
        try t.ledger.fanOut(endpoints: [everything("a"), everything("b")], nowMs: 0)
        let head = try #require(try t.ledger.dueDeliveries(endpoint: "a", nowMs: 0).due.first)
        try t.ledger.recordDelivery(head, .paused(error: "HTTP 410"), nowMs: 3_000)
        let paused = try t.ledger.dueDeliveries(endpoint: "a", nowMs: 10_000)
        #expect(paused.paused && paused.due.isEmpty)
        #expect(try t.ledger.dueDeliveries(endpoint: "b", nowMs: 10_000).due.count == 2)
        let status = try t.ledger.endpointStatus(endpoints: [everything("a")])
        #expect(status[0].pausedAt == 3 && status[0].pauseReason == "HTTP 410" && status[0].pending == 6)
        // Persisted: another connection sees it.
        let other = try Ledger(path: t.path)
        #expect(try other.dueDeliveries(endpoint: "a", nowMs: 10_000).paused)

        let r = try other.requeueDeadLetters(nowMs: 20_000)
        #expect(r.resumed == ["a"] && r.requeued == 0)
        let resumed = try t.ledger.dueDeliveries(endpoint: "a", nowMs: 20_000)
        #expect(!resumed.paused && resumed.due.map(\.eventID).contains(head.eventID))
        #expect(resumed.due.allSatisfy { $0.ageFromMs == 20_000 })
    }

    @Test func oldDeliveriesExpireIntoDeadLetters() throws {
        let (t, ann, _) = try setUp()
        defer { t.cleanup() }
        try t.ledger.fanOut(endpoints: [everything("a")], nowMs: 1_000_000)
        let due = try t.ledger.dueDeliveries(endpoint: "a", nowMs: 1_000_000).due
        #expect(due.allSatisfy { $0.ageFromMs == 1_000_000 })
        let annHead = try #require(due.first { $0.clientID == ann.id })
        try t.ledger.recordDelivery(annHead, .retry(atMs: 1_000_500, error: "HTTP 500: oops"), nowMs: 1_000_000)
        #expect(try t.ledger.expireDeliveries(nowMs: 1_000_000 + 3_599_999, maxAgeMs: 3_600_000) == 0)
        #expect(try t.ledger.expireDeliveries(nowMs: 1_000_000 + 3_600_000, maxAgeMs: 3_600_000) == 6)
        let dead = try t.ledger.deliveries(status: .dead)
        #expect(dead.count == 6)
        #expect(dead.first { $0.eventID == annHead.eventID }?.lastError == "older than max_age_hours after 1 attempt(s); last error: HTTP 500: oops")
        // An expiry reported by a sender does the same for one delivery.
        _ = try t.ledger.requeueDeadLetters(nowMs: 0)
        let one = try #require(try t.ledger.dueDeliveries(endpoint: "a", nowMs: 0).due.first)
        try t.ledger.recordDelivery(one, .expired, nowMs: 1)
        #expect(try t.ledger.deliveries(status: .dead).map(\.eventID) == [one.eventID])
    }

    @Test func resultsForDeliveriesNoLongerPendingChangeNothingButDelivery() throws {
        let (t, _, _) = try setUp()
        defer { t.cleanup() }
        try t.ledger.fanOut(endpoints: [everything("a")], nowMs: 0)
        let head = try #require(try t.ledger.dueDeliveries(endpoint: "a", nowMs: 0).due.first)
        try t.ledger.expireDeliveries(nowMs: 10_000_000_000, maxAgeMs: 1)
        try t.ledger.recordDelivery(head, .retry(atMs: 5, error: "x"), nowMs: 1)
        #expect(try t.ledger.deliveries(status: .pending).isEmpty)
        try t.ledger.recordDelivery(head, .delivered, nowMs: 1)
        #expect(try t.ledger.deliveries(status: .dead).count == 5)
    }

    @Test func pruningKeepsWhatIsStillNeeded() throws {
        let (t, ann, _) = try setUp()
        defer { t.cleanup() }
        try t.ledger.fanOut(endpoints: [everything("a")], nowMs: 0)
        // Nothing delivered yet: nothing pruned.
        #expect(try t.ledger.pruneOutbox(endpoints: ["a"], now: 1_000, maxAgeSeconds: 3_600) == 0)
        for d in try t.ledger.dueDeliveries(endpoint: "a", nowMs: 0).due {
            try t.ledger.recordDelivery(d, d.clientID == ann.id ? .dead(error: "HTTP 400") : .delivered, nowMs: 0)
        }
        // bob's delivered created event goes; ann's dead letter and the still-pending recharges stay.
        #expect(try t.ledger.pruneOutbox(endpoints: ["a"], now: 1_000, maxAgeSeconds: 3_600) == 1)
        #expect(try t.ledger.outboxEvents(limit: 10).count == 5)
        // An endpoint that never read the outbox holds everything back, until the events are too old.
        #expect(try drain(t.ledger, "a", nowMs: 0).count == 4)
        #expect(try t.ledger.pruneOutbox(endpoints: ["a", "new"], now: 1_000, maxAgeSeconds: 3_600) == 0)
        #expect(try t.ledger.pruneOutbox(endpoints: ["a", "new"], now: 1_000 + 3_601, maxAgeSeconds: 3_600) == 4)
        #expect(try t.ledger.outboxEvents(limit: 10).count == 1)
    }

    @Test func idsAreNeverReusedAfterAPurgeDeletesTheNewestEvent() throws {
        let (t, ann, _) = try setUp()
        defer { t.cleanup() }
        _ = try t.ledger.setDisabled(username: "ann", true, now: 1_001)
        try t.ledger.fanOut(endpoints: [everything("a")], nowMs: 0)
        let before = try t.ledger.outboxSequence()
        // The purge deletes ann's events (the newest among them) and then queues client.purged.
        try t.ledger.purge(username: "ann", now: 2_000)
        #expect(try t.ledger.outboxSequence() == before + 1)
        let r = try t.ledger.fanOut(endpoints: [everything("a")], nowMs: 0)
        #expect(r.queued == ["a": 1])
        let types = try t.ledger.deliveries().map(\.type)
        #expect(types.contains("client.purged") && !types.contains("client.disabled"))
        #expect(try t.ledger.deliveries().allSatisfy { $0.username != "ann" || $0.type == "client.purged" })
        _ = ann
    }

    @Test func statusCountsWhatAwaitsFanOutAndUnconfiguredEndpoints() throws {
        let (t, _, _) = try setUp()
        defer { t.cleanup() }
        let credit = OutboxEndpoint(name: "credit", wants: { $0.hasPrefix("client.rech") })
        var s = try t.ledger.endpointStatus(endpoints: [everything("a"), credit])
        #expect(s.map(\.awaitingFanOut) == [6, 2] && s.allSatisfy(\.configured))
        try t.ledger.fanOut(endpoints: [everything("a"), everything("gone")], nowMs: 0)
        s = try t.ledger.endpointStatus(endpoints: [everything("a")])
        #expect(s.map(\.name) == ["a", "gone"] && s[1].configured == false && s[1].pending == 6 && s[0].awaitingFanOut == 0)
    }
}

/// Delivers everything due at `nowMs`, head by head, until nothing is due; returns (client, type) in send order.
func drain(_ l: Ledger, _ endpoint: String, nowMs: Int64) throws -> [(Int64?, String)] {
    var out: [(Int64?, String)] = []
    while true {
        let due = try l.dueDeliveries(endpoint: endpoint, nowMs: nowMs).due
        guard let first = due.first else { return out }
        try l.recordDelivery(first, .delivered, nowMs: nowMs)
        out.append((first.clientID, first.type))
    }
}

func == (a: [(Int64?, String)], b: [(Int64, String)]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
}

/// `outbox retry` must not leave a receiver with a stale balance: a dead `balance.updated` comes back with
/// the figures as they are now, or not at all when a newer one has reached that endpoint.
@Suite struct RequeuedBalanceTests {
    static func balancesOnly(_ name: String) -> OutboxEndpoint {
        OutboxEndpoint(name: name, wants: { $0 == "balance.updated" })
    }

    /// Delivers everything due to `endpoint`, as a receiver that always answers 200 would get it, and returns
    /// the `available` figure of each `balance.updated` in the order received.
    static func receiveAll(_ l: Ledger, endpoint: String, nowMs: Int64) throws -> [String] {
        var seen: [String] = []
        for _ in 0 ..< 100 {
            let due = try l.dueDeliveries(endpoint: endpoint, nowMs: nowMs).due
            if due.isEmpty { return seen }
            for d in due {
                if d.type == "balance.updated" { seen.append(data(d.body)["available"] as? String ?? "?") }
                try l.recordDelivery(d, .delivered, nowMs: nowMs)
            }
        }
        return seen
    }

    @Test func aDeadBalanceIsDroppedWhenANewerOneWasDelivered() throws {
        let t = try TempStore()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1_000)
        #expect(try t.ledger.materializeBalances(now: 1_000, intervalSeconds: 10) == 1)
        try t.ledger.fanOut(endpoints: [Self.balancesOnly("a")], nowMs: 1_000_000)
        let first = try #require(try t.ledger.dueDeliveries(endpoint: "a", nowMs: 1_000_000).due.first)
        #expect(data(first.body)["available"] as? String == "100")
        try t.ledger.recordDelivery(first, .dead(error: "HTTP 404"), nowMs: 1_000_000)

        try spend(t.ledger, client: ann, cost: 10 * credit, id: "c1", now: 1_020)
        #expect(try t.ledger.materializeBalances(now: 1_020, intervalSeconds: 10) == 1)
        try t.ledger.fanOut(endpoints: [Self.balancesOnly("a")], nowMs: 1_020_000)
        #expect(try Self.receiveAll(t.ledger, endpoint: "a", nowMs: 1_020_000) == ["90"])

        _ = try t.ledger.requeueDeadLetters(nowMs: 1_030_000)
        // The receiver already holds 90; the dead 100 must not overwrite it.
        #expect(try Self.receiveAll(t.ledger, endpoint: "a", nowMs: 1_030_000) == [])
        #expect(try t.ledger.deliveries().isEmpty)
    }

    @Test func aRequeuedBalanceCarriesTheNewestFigures() throws {
        let t = try TempStore()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1_000)
        #expect(try t.ledger.materializeBalances(now: 1_000, intervalSeconds: 10) == 1)
        try t.ledger.fanOut(endpoints: [Self.balancesOnly("a"), Self.balancesOnly("b")], nowMs: 1_000_000)
        let dead = try #require(try t.ledger.dueDeliveries(endpoint: "a", nowMs: 1_000_000).due.first)
        try t.ledger.recordDelivery(dead, .dead(error: "HTTP 404"), nowMs: 1_000_000)
        // Endpoint b took the same event while it was current.
        #expect(try Self.receiveAll(t.ledger, endpoint: "b", nowMs: 1_000_000) == ["100"])

        // Charged since, not yet announced (still inside the coalescing interval).
        try spend(t.ledger, client: ann, cost: 25 * credit, id: "c1", now: 1_005)
        #expect(try t.ledger.requeueDeadLetters(nowMs: 1_006_000).requeued == 1)
        let again = try #require(try t.ledger.dueDeliveries(endpoint: "a", nowMs: 1_006_000).due.first)
        #expect(again.eventID == dead.eventID)
        let d = data(again.body)
        #expect(d["available"] as? String == "75" && d["used"] as? String == "25" && d["assigned"] as? String == "100")
        #expect(json(again.body)["timestamp"] as? String == "1970-01-01T00:16:46Z")
    }

    @Test func ofSeveralDeadBalancesOnlyTheNewestComesBack() throws {
        let t = try TempStore()
        defer { t.cleanup() }
        let ann = try makeClient(t.ledger, "ann")
        _ = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1_000)
        #expect(try t.ledger.materializeBalances(now: 1_000, intervalSeconds: 10) == 1)
        try spend(t.ledger, client: ann, cost: 10 * credit, id: "c1", now: 1_020)
        #expect(try t.ledger.materializeBalances(now: 1_020, intervalSeconds: 10) == 1)
        try t.ledger.fanOut(endpoints: [Self.balancesOnly("a")], nowMs: 1_020_000)
        // Both die (the receiver was misconfigured), oldest first as the sender sends them.
        for _ in 0 ..< 2 {
            let head = try #require(try t.ledger.dueDeliveries(endpoint: "a", nowMs: 1_020_000).due.first)
            try t.ledger.recordDelivery(head, .dead(error: "HTTP 404"), nowMs: 1_020_000)
        }
        #expect(try t.ledger.deliveries(status: .dead).count == 2)
        #expect(try t.ledger.requeueDeadLetters(nowMs: 1_030_000).requeued == 1)
        #expect(try Self.receiveAll(t.ledger, endpoint: "a", nowMs: 1_030_000) == ["90"])
    }
}

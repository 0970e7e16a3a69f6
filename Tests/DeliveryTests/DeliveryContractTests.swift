import Foundation
import Testing
import Ledger
import LedgerPostgres
import MeterCore
import Outbox
import TestSupport

/// A store delivery runs on, as the contract cases use it: charges and clients, and the delivery calls.
typealias DeliveryLedger = any MeteringStore & DeliveryStore

/// The stores the delivery contract runs on: SQLite always, PostgreSQL when a server is given
/// (CREDITMETER_TEST_PG_DIR) or required (CREDITMETER_REQUIRE_PG=1).
enum DeliveryStoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
    static let available: [DeliveryStoreKind] = PGEnv.enabled ? [.sqlite, .postgres] : [.sqlite]
}

/// A fresh store of either kind; `other()` is a second connection to it; `cleanup()` removes it.
final class DeliveryTestStore {
    let kind: DeliveryStoreKind
    let store: DeliveryLedger
    let temp: TempLedger?
    let db: TestDatabase?

    init(_ kind: DeliveryStoreKind) throws {
        self.kind = kind
        switch kind {
        case .sqlite:
            let t = try TempLedger()
            temp = t
            db = nil
            store = t.ledger
        case .postgres:
            let d = try TestDatabase()
            db = d
            temp = nil
            do { store = try d.ledger() } catch {
                d.drop()
                throw error
            }
        }
    }

    func other(node: String = "pbx2") throws -> DeliveryLedger {
        if let db { return try db.ledger(node: node) }
        guard let temp else { throw TestFailure("no store") }
        return try Ledger(path: temp.path)
    }

    func cleanup() {
        temp?.cleanup()
        db?.drop()
    }
}

@discardableResult
func addClient(_ s: DeliveryLedger, _ username: String, now: Int64 = 1_000) throws -> ClientRecord {
    try s.createClient(username: username, fields: clientFields(email: "\(username)@example.com"), accounts: [],
                       plan: "default", passwordHash: fakeHash, now: now)
}

/// Charges `cost` µcr to the client in one batch.
func charge(_ s: DeliveryLedger, client: ClientRecord, cost: Int64, id: String, now: Int64) throws {
    let c = Charge(identity: id, clientID: client.id, account: client.username, source: "test", position: 0, line: 1,
                   destination: "15551234567", prefix: "1", billsec: 60, chargedSeconds: 60, cost: cost, startedAt: now)
    _ = try s.commit(ChargeBatch(source: "test", position: nil, charges: [c], quarantined: []), now: now)
}

/// Fans out until nothing is left to do; the counts queued per endpoint over all the calls.
@discardableResult
func fanOutAll(_ s: DeliveryLedger, _ endpoints: [OutboxEndpoint], nowMs: Int64, limit: Int = 1_000) throws -> [String: Int] {
    var total: [String: Int] = [:]
    for _ in 0 ..< 1_000 {
        let r = try s.fanOut(endpoints: endpoints, nowMs: nowMs, limit: limit)
        total.merge(r.queued, uniquingKeysWith: +)
        if !r.more { return total }
    }
    throw TestFailure("fan-out never finished")
}

func due(_ s: DeliveryLedger, _ endpoint: String, _ nowMs: Int64) throws -> DueDeliveries {
    try s.dueDeliveries(endpoint: endpoint, nowMs: nowMs, limit: 100)
}

/// Delivers everything due, head by head; (client, type) in send order.
func drainAll(_ s: DeliveryLedger, _ endpoint: String, nowMs: Int64) throws -> [(Int64?, String)] {
    var out: [(Int64?, String)] = []
    while let first = try due(s, endpoint, nowMs).due.first {
        try s.recordDelivery(first, .delivered, nowMs: nowMs)
        out.append((first.clientID, first.type))
    }
    return out
}

func allDeliveries(_ s: DeliveryLedger, _ status: DeliveryStatus? = nil) throws -> [DeliveryRecord] {
    try s.deliveries(status: status, limit: nil)
}

/// The synchronous store suites of this target, one test at a time: each blocks a thread of the Swift
/// concurrency pool while it waits on the store, and run side by side (with LedgerPostgresTests') on a
/// two-core machine they kept the HTTP tests' services from starting for tens of seconds.
@Suite(.serialized) enum DeliveryStoreSuites {}

/// The delivery cases of OutboxLedgerTests, on both stores: the same calls give the same answers.
extension DeliveryStoreSuites {
    @Suite struct DeliveryContractTests {
        /// ann and bob, each with three events: client.created, client.recharged, credit.recovered.
        func setUp(_ kind: DeliveryStoreKind) throws -> (DeliveryTestStore, ClientRecord, ClientRecord) {
            let t = try DeliveryTestStore(kind)
            let ann = try addClient(t.store, "ann")
            let bob = try addClient(t.store, "bob")
            _ = try t.store.recharge(username: "ann", amount: 10 * credit, key: nil, now: 1_000)
            _ = try t.store.recharge(username: "bob", amount: 10 * credit, key: nil, now: 1_000)
            return (t, ann, bob)
        }

        @Test(arguments: DeliveryStoreKind.available)
        func coalescingMakesOneEventWithTheFinalFiguresPerInterval(_ kind: DeliveryStoreKind) throws {
            let t = try DeliveryTestStore(kind)
            defer { t.cleanup() }
            let ann = try addClient(t.store, "ann")
            _ = try t.store.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1_000)
            for i in 0 ..< 20 { try charge(t.store, client: ann, cost: credit, id: "c\(i)", now: 1_000 + Int64(i) / 10) }
            #expect(try t.store.materializeBalances(now: 1_002, intervalSeconds: 10) == 1)
            var balances = try t.store.outboxEvents(limit: 100).filter { $0.type == "balance.updated" }
            #expect(balances.count == 1)
            let d = data(try #require(balances.first).body)
            #expect(d["username"] as? String == "ann" && d["available"] as? String == "80" && d["used"] as? String == "20")
            #expect(json(balances[0].body)["timestamp"] as? String == "1970-01-01T00:16:42Z")
            #expect(try t.store.materializeBalances(now: 5_000, intervalSeconds: 10) == 0)
            // A later change waits for the interval and carries the newest figures.
            try charge(t.store, client: ann, cost: 5 * credit, id: "a", now: 1_003)
            #expect(try t.store.materializeBalances(now: 1_011, intervalSeconds: 10) == 0)
            try charge(t.store, client: ann, cost: 5 * credit, id: "b", now: 1_005)
            #expect(try t.store.materializeBalances(now: 1_012, intervalSeconds: 10) == 1)
            balances = try t.store.outboxEvents(limit: 100).filter { $0.type == "balance.updated" }
            #expect(balances.map { data($0.body)["available"] as? String } == ["80", "70"])
        }

        @Test(arguments: DeliveryStoreKind.available)
        func fanOutQueuesWhatEachEndpointWantsOnceAndNewEndpointsGetTheOutbox(_ kind: DeliveryStoreKind) throws {
            let (t, _, _) = try setUp(kind)
            defer { t.cleanup() }
            let credits = OutboxEndpoint(name: "credit", wants: { $0.hasPrefix("credit.") })
            let r = try t.store.fanOut(endpoints: [everything("a"), credits], nowMs: 0, limit: 1_000)
            #expect(r.queued == ["a": 6, "credit": 2] && !r.more)
            #expect(try t.store.fanOut(endpoints: [everything("a"), credits], nowMs: 0, limit: 1_000).queued.isEmpty)
            #expect(try allDeliveries(t.store).count == 8)
            // An endpoint added later gets what is still in the outbox.
            #expect(try fanOutAll(t.store, [everything("late")], nowMs: 0) == ["late": 6])
            // Paging: a small limit says there is more, and calling again gets the rest.
            _ = try t.store.recharge(username: "ann", amount: 1, key: nil, now: 1_001)
            let paged = try t.store.fanOut(endpoints: [everything("p")], nowMs: 0, limit: 2)
            #expect(paged.more && (paged.queued["p"] ?? 0) >= 2)
            try fanOutAll(t.store, [everything("p")], nowMs: 0, limit: 2)
            // The endpoints left out of those calls get the new event once configured again.
            try fanOutAll(t.store, [everything("a"), credits, everything("late"), everything("p")], nowMs: 0)
            let byEndpoint = Dictionary(grouping: try allDeliveries(t.store), by: \.endpoint).mapValues(\.count)
            #expect(byEndpoint == ["a": 7, "credit": 2, "late": 7, "p": 7])
        }

        @Test(arguments: DeliveryStoreKind.available)
        func oneClientsEventsGoInOrderEvenAcrossRetries(_ kind: DeliveryStoreKind) throws {
            let (t, ann, bob) = try setUp(kind)
            defer { t.cleanup() }
            try fanOutAll(t.store, [everything("a")], nowMs: 0)
            var d = try due(t.store, "a", 0)
            #expect(d.due.map(\.type) == ["client.created", "client.created"])
            let annHead = try #require(d.due.first { $0.clientID == ann.id })
            let bobHead = try #require(d.due.first { $0.clientID == bob.id })
            try t.store.recordDelivery(annHead, .retry(atMs: 5_000, error: "HTTP 503"), nowMs: 10)
            try t.store.recordDelivery(bobHead, .delivered, nowMs: 10)
            #expect(try drainAll(t.store, "a", nowMs: 100) == ["client.recharged", "credit.recovered"].map { (bob.id, $0) })
            d = try due(t.store, "a", 100)
            #expect(d.due.isEmpty && d.nextDueMs == 5_000)
            d = try due(t.store, "a", 5_000)
            #expect(d.due.map(\.eventID) == [annHead.eventID] && d.due[0].attempts == 1)
            #expect(try drainAll(t.store, "a", nowMs: 5_000) == ["client.created", "client.recharged", "credit.recovered"].map { (ann.id, $0) })
            #expect(try allDeliveries(t.store).isEmpty)
            let status = try t.store.endpointStatus(endpoints: [everything("a")])
            #expect(status.first?.delivered == 6 && status.first?.pending == 0)
        }

        @Test(arguments: DeliveryStoreKind.available)
        func deadLettersUnblockTheClientAndCanBeRequeued(_ kind: DeliveryStoreKind) throws {
            let (t, ann, _) = try setUp(kind)
            defer { t.cleanup() }
            try fanOutAll(t.store, [everything("a")], nowMs: 0)
            let head = try #require(try due(t.store, "a", 0).due.first { $0.clientID == ann.id })
            try t.store.recordDelivery(head, .dead(error: "HTTP 404"), nowMs: 1)
            let dead = try allDeliveries(t.store, .dead)
            #expect(dead.count == 1 && dead[0].eventID == head.eventID && dead[0].lastError == "HTTP 404" && dead[0].attempts == 1)
            #expect(try due(t.store, "a", 2).due.filter { $0.clientID == ann.id }.map(\.type) == ["client.recharged"])
            #expect(try t.store.pendingDeliveries(endpoints: ["a", "b"]) == ["a": 5, "b": 0])
            let r = try t.store.requeueDeadLetters(endpoint: nil, nowMs: 10)
            #expect(r.requeued == 1 && r.resumed.isEmpty)
            let again = try due(t.store, "a", 10).due.filter { $0.clientID == ann.id }
            #expect(again.map(\.eventID) == [head.eventID] && again[0].attempts == 0 && again[0].ageFromMs == 10)
        }

        @Test(arguments: DeliveryStoreKind.available)
        func goneEndpointPausesUntilRetryAndAnotherConnectionSeesIt(_ kind: DeliveryStoreKind) throws {
            let (t, _, _) = try setUp(kind)
            defer { t.cleanup() }
            try fanOutAll(t.store, [everything("a"), everything("b")], nowMs: 0)
            let head = try #require(try due(t.store, "a", 0).due.first)
            try t.store.recordDelivery(head, .paused(error: "HTTP 410"), nowMs: 3_000)
            #expect(try due(t.store, "a", 10_000).paused)
            #expect(try due(t.store, "b", 10_000).due.count == 2)
            let status = try t.store.endpointStatus(endpoints: [everything("a")])
            #expect(status[0].pausedAt == 3 && status[0].pauseReason == "HTTP 410" && status[0].pending == 6)
            let other = try t.other()
            #expect(try due(other, "a", 10_000).paused)
            let r = try other.requeueDeadLetters(endpoint: nil, nowMs: 20_000)
            #expect(r.resumed == ["a"] && r.requeued == 0)
            let resumed = try due(t.store, "a", 20_000)
            #expect(!resumed.paused && resumed.due.map(\.eventID).contains(head.eventID))
            #expect(resumed.due.allSatisfy { $0.ageFromMs == 20_000 })
        }

        @Test(arguments: DeliveryStoreKind.available)
        func oldDeliveriesExpireIntoDeadLetters(_ kind: DeliveryStoreKind) throws {
            let (t, ann, _) = try setUp(kind)
            defer { t.cleanup() }
            try fanOutAll(t.store, [everything("a")], nowMs: 1_000_000)
            let d = try due(t.store, "a", 1_000_000).due
            #expect(d.allSatisfy { $0.ageFromMs == 1_000_000 })
            let annHead = try #require(d.first { $0.clientID == ann.id })
            try t.store.recordDelivery(annHead, .retry(atMs: 1_000_500, error: "HTTP 500: oops"), nowMs: 1_000_000)
            #expect(try t.store.expireDeliveries(nowMs: 1_000_000 + 3_599_999, maxAgeMs: 3_600_000) == 0)
            #expect(try t.store.expireDeliveries(nowMs: 1_000_000 + 3_600_000, maxAgeMs: 3_600_000) == 6)
            let dead = try allDeliveries(t.store, .dead)
            #expect(dead.count == 6)
            #expect(dead.first { $0.eventID == annHead.eventID }?.lastError == "older than max_age_hours after 1 attempt(s); last error: HTTP 500: oops")
            _ = try t.store.requeueDeadLetters(endpoint: nil, nowMs: 0)
            let one = try #require(try due(t.store, "a", 0).due.first)
            try t.store.recordDelivery(one, .expired, nowMs: 1)
            #expect(try allDeliveries(t.store, .dead).map(\.eventID) == [one.eventID])
            // A result for a delivery no longer pending changes nothing but a delivery.
            try t.store.recordDelivery(one, .retry(atMs: 5, error: "x"), nowMs: 2)
            #expect(try allDeliveries(t.store, .dead).map(\.eventID) == [one.eventID])
            try t.store.recordDelivery(one, .delivered, nowMs: 3)
            #expect(try allDeliveries(t.store, .dead).isEmpty)
        }

        @Test(arguments: DeliveryStoreKind.available)
        func pruningKeepsWhatIsStillNeeded(_ kind: DeliveryStoreKind) throws {
            let (t, ann, _) = try setUp(kind)
            defer { t.cleanup() }
            try fanOutAll(t.store, [everything("a")], nowMs: 0)
            #expect(try t.store.pruneOutbox(endpoints: ["a"], now: 1_000, maxAgeSeconds: 3_600, limit: 5_000) == 0)
            for d in try due(t.store, "a", 0).due {
                try t.store.recordDelivery(d, d.clientID == ann.id ? .dead(error: "HTTP 400") : .delivered, nowMs: 0)
            }
            #expect(try t.store.pruneOutbox(endpoints: ["a"], now: 1_000, maxAgeSeconds: 3_600, limit: 5_000) == 1)
            #expect(try t.store.outboxEvents(limit: 10).count == 5)
            #expect(try drainAll(t.store, "a", nowMs: 0).count == 4)
            // An endpoint that never read the outbox holds everything back, until the events are too old.
            #expect(try t.store.pruneOutbox(endpoints: ["a", "new"], now: 1_000, maxAgeSeconds: 3_600, limit: 5_000) == 0)
            #expect(try t.store.pruneOutbox(endpoints: ["a", "new"], now: 1_000 + 3_601, maxAgeSeconds: 3_600, limit: 5_000) == 4)
            #expect(try t.store.outboxEvents(limit: 10).count == 1)
        }

        @Test(arguments: DeliveryStoreKind.available)
        func statusCountsWhatAwaitsFanOutAndUnconfiguredEndpoints(_ kind: DeliveryStoreKind) throws {
            let (t, _, _) = try setUp(kind)
            defer { t.cleanup() }
            let recharges = OutboxEndpoint(name: "credit", wants: { $0.hasPrefix("client.rech") })
            var s = try t.store.endpointStatus(endpoints: [everything("a"), recharges])
            #expect(s.map(\.awaitingFanOut) == [6, 2] && s.allSatisfy(\.configured))
            try fanOutAll(t.store, [everything("a"), everything("gone")], nowMs: 0)
            s = try t.store.endpointStatus(endpoints: [everything("a")])
            #expect(s.map(\.name) == ["a", "gone"] && s[1].configured == false && s[1].pending == 6 && s[0].awaitingFanOut == 0)
            _ = try t.store.recharge(username: "ann", amount: 1, key: nil, now: 1_001)
            s = try t.store.endpointStatus(endpoints: [everything("a"), recharges])
            #expect(s.prefix(2).map(\.awaitingFanOut) == [1, 3])
        }

        static func balancesOnly(_ name: String) -> OutboxEndpoint {
            OutboxEndpoint(name: name, wants: { $0 == "balance.updated" })
        }

        static func receiveAll(_ s: DeliveryLedger, endpoint: String, nowMs: Int64) throws -> [String] {
            var seen: [String] = []
            for _ in 0 ..< 100 {
                let d = try due(s, endpoint, nowMs).due
                if d.isEmpty { return seen }
                for x in d {
                    if x.type == "balance.updated" { seen.append(data(x.body)["available"] as? String ?? "?") }
                    try s.recordDelivery(x, .delivered, nowMs: nowMs)
                }
            }
            return seen
        }

        @Test(arguments: DeliveryStoreKind.available)
        func aDeadBalanceIsDroppedWhenANewerOneWasDelivered(_ kind: DeliveryStoreKind) throws {
            let t = try DeliveryTestStore(kind)
            defer { t.cleanup() }
            let ann = try addClient(t.store, "ann")
            _ = try t.store.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1_000)
            #expect(try t.store.materializeBalances(now: 1_000, intervalSeconds: 10) == 1)
            try fanOutAll(t.store, [Self.balancesOnly("a")], nowMs: 1_000_000)
            let first = try #require(try due(t.store, "a", 1_000_000).due.first)
            #expect(data(first.body)["available"] as? String == "100")
            try t.store.recordDelivery(first, .dead(error: "HTTP 404"), nowMs: 1_000_000)
            try charge(t.store, client: ann, cost: 10 * credit, id: "c1", now: 1_020)
            #expect(try t.store.materializeBalances(now: 1_020, intervalSeconds: 10) == 1)
            try fanOutAll(t.store, [Self.balancesOnly("a")], nowMs: 1_020_000)
            #expect(try Self.receiveAll(t.store, endpoint: "a", nowMs: 1_020_000) == ["90"])
            _ = try t.store.requeueDeadLetters(endpoint: nil, nowMs: 1_030_000)
            #expect(try Self.receiveAll(t.store, endpoint: "a", nowMs: 1_030_000) == [])
            #expect(try allDeliveries(t.store).isEmpty)
        }

        @Test(arguments: DeliveryStoreKind.available)
        func aRequeuedBalanceCarriesTheNewestFigures(_ kind: DeliveryStoreKind) throws {
            let t = try DeliveryTestStore(kind)
            defer { t.cleanup() }
            let ann = try addClient(t.store, "ann")
            _ = try t.store.recharge(username: "ann", amount: 100 * credit, key: nil, now: 1_000)
            #expect(try t.store.materializeBalances(now: 1_000, intervalSeconds: 10) == 1)
            try fanOutAll(t.store, [Self.balancesOnly("a"), Self.balancesOnly("b")], nowMs: 1_000_000)
            let dead = try #require(try due(t.store, "a", 1_000_000).due.first)
            try t.store.recordDelivery(dead, .dead(error: "HTTP 404"), nowMs: 1_000_000)
            #expect(try Self.receiveAll(t.store, endpoint: "b", nowMs: 1_000_000) == ["100"])
            try charge(t.store, client: ann, cost: 25 * credit, id: "c1", now: 1_005)
            #expect(try t.store.requeueDeadLetters(endpoint: nil, nowMs: 1_006_000).requeued == 1)
            let again = try #require(try due(t.store, "a", 1_006_000).due.first)
            #expect(again.eventID == dead.eventID)
            let d = data(again.body)
            #expect(d["available"] as? String == "75" && d["used"] as? String == "25" && d["assigned"] as? String == "100")
            #expect(json(again.body)["timestamp"] as? String == "1970-01-01T00:16:46Z")
        }
    }
}

import Foundation
import Logging
import Testing
import Delivery
import Ledger
import LedgerPostgres
import MeterConfig
import MeterCore
import Outbox
import TestSupport

/// What only a store several agents share has: events committing out of id order, and leases.
extension DeliveryStoreSuites {
    @Suite(.enabled(if: PGEnv.enabled, "needs CREDITMETER_TEST_PG_DIR")) struct PostgresFanOutTests {
        /// A writer took a lower id, and commits only after a fan-out has queued a higher one: a cursor on ids
        /// would have passed it by; the queue still has it.
        @Test func anEventCommittedAfterAHigherIdIsStillDelivered() throws {
            let db = try TestDatabase()
            defer { db.drop() }
            let store = try db.ledger()
            let ann = try addClient(store, "ann")
            try addClient(store, "bob")
            try fanOutAll(store, [everything("a")], nowMs: 0)
            _ = try drainAll(store, "a", nowMs: 0)

            // Another agent's transaction: it locks ann's row and writes her event, as a batch commit does, and
            // stays open.
            let slow = try db.connection()
            try slow.execute("BEGIN", "begin")
            try slow.execute("SELECT id FROM clients WHERE id = \(ann.id) FOR NO KEY UPDATE", "lock ann")
            try slow.execute("""
                INSERT INTO outbox (event_id, type, client_id, username, body, created_at, next_attempt_at)
                VALUES ('evt_slow', 'client.updated', \(ann.id), 'ann', '{"type":"client.updated"}', 1000, 1000)
                """, "insert ann's event")
            let low = try #require(try slow.queryInt("SELECT currval('outbox_id_seq')", "its id"))

            // Meanwhile bob's recharge commits with higher ids (client.recharged, credit.recovered: he started
            // exhausted) and is fanned out and delivered.
            _ = try store.recharge(username: "bob", amount: credit, key: nil, now: 1_001)
            #expect(try fanOutAll(store, [everything("a")], nowMs: 0) == ["a": 2])
            let passed = try #require(try db.int("SELECT max(id) FROM outbox"))
            #expect(passed > low, "the fan-out went past the open transaction's id (a cursor would now stand at \(passed))")
            #expect(try drainAll(store, "a", nowMs: 0).map(\.1) == ["client.recharged", "credit.recovered"])

            try slow.execute("COMMIT", "commit")
            #expect(try store.outboxSequence() != 0)
            #expect(try fanOutAll(store, [everything("a")], nowMs: 0) == ["a": 1])
            let late = try #require(try due(store, "a", 0).due.first)
            #expect(late.eventID == "evt_slow" && late.event == low)
            #expect(try store.outboxSequence() == 0)
        }

        /// Endpoints copied from SQLite keep what SQLite had fanned out: nothing is queued twice.
        @Test func aCopiedEndpointCatchesUpFromItsCursor() throws {
            let t = try TempLedger()
            defer { t.cleanup() }
            let ann = try addClient(t.ledger, "ann")
            _ = try t.ledger.recharge(username: "ann", amount: credit, key: nil, now: 1_000)
            try fanOutAll(t.ledger, [everything("a")], nowMs: 0)
            _ = try drainAll(t.ledger, "a", nowMs: 0)
            _ = ann
            _ = try t.ledger.recharge(username: "ann", amount: credit, key: nil, now: 1_001)  // after a's cursor
            let db = try TestDatabase()
            defer { db.drop() }
            let store = try db.ledger()
            _ = try store.copy(from: t.ledger)
            let r = try fanOutAll(store, [everything("a"), everything("new")], nowMs: 0)
            let total = try t.ledger.outboxEvents(limit: 100).count
            #expect(total == 4 && r == ["a": 1, "new": 4])
        }

        @Test func aLeaseIsOneHoldersUntilReleasedOrExpired() throws {
            let db = try TestDatabase()
            defer { db.drop() }
            let one = try db.ledger(node: "pbx1"), two = try db.ledger(node: "pbx2")
            #expect(try one.takeLease("endpoint:a", holder: "pbx1/x", ttlMs: 10_000))
            #expect(try !two.takeLease("endpoint:a", holder: "pbx2/y", ttlMs: 10_000))
            #expect(try one.takeLease("endpoint:a", holder: "pbx1/x", ttlMs: 10_000))
            // Leases are independent.
            #expect(try two.takeLease("endpoint:b", holder: "pbx2/y", ttlMs: 10_000))
            // Only the holder can give it up.
            try two.releaseLease("endpoint:a", holder: "pbx2/y")
            #expect(try !two.takeLease("endpoint:a", holder: "pbx2/y", ttlMs: 10_000))
            try one.releaseLease("endpoint:a", holder: "pbx1/x")
            #expect(try two.takeLease("endpoint:a", holder: "pbx2/y", ttlMs: 300))
            #expect(try !one.takeLease("endpoint:a", holder: "pbx1/x", ttlMs: 10_000))
            // Not renewed: it expires by the server's clock and the other takes it.
            try eventually("pbx1 taking the expired lease", timeout: 5) {
                try one.takeLease("endpoint:a", holder: "pbx1/x", ttlMs: 10_000)
            }
            #expect(try !two.takeLease("endpoint:a", holder: "pbx2/y", ttlMs: 10_000))
            let rows = try one.deliveryLeases()
            #expect(rows.map(\.name) == ["endpoint:a", "endpoint:b"] && rows[0].holder == "pbx1/x")
        }

        @Test func storeErrorsAreThrownAndTheNextCallReconnects() throws {
            let db = try TestDatabase()
            defer { db.drop() }
            let store = try db.ledger()
            try addClient(store, "ann")
            // The server cuts this agent's connection (as a restart or failover would).
            let admin = try db.connection()
            try admin.execute("""
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                """, "cutting the store's connection")
            // The first call may find the connection gone (a LedgerError, nothing else); the next reconnects.
            do { try fanOutAll(store, [everything("a")], nowMs: 0) } catch let e as LedgerError { _ = e }
            try fanOutAll(store, [everything("a")], nowMs: 0)
            #expect(try store.pendingDeliveries(endpoints: ["a"]) == ["a": 1])
        }
    }
}

/// Two agents, one store, one receiver: each event arrives once, in order per client, and when the agent
/// sending to the endpoint dies the other takes over.
@Suite(.serialized, .enabled(if: PGEnv.enabled, "needs CREDITMETER_TEST_PG_DIR")) struct PostgresLeaseDeliveryTests {
    /// What a service told its callbacks: that its coordinator thread runs (it reports every second,
    /// holder or not), and how many attempts it made.
    final class Running: @unchecked Sendable {
        private let lock = NSLock()
        private var yes = false
        private var sent = 0
        private var reported = 0
        func set() { lock.lock(); yes = true; reported += 1; lock.unlock() }
        /// Reports so far: a second of the coordinator's loop each.
        var reports: Int { lock.lock(); defer { lock.unlock() }; return reported }
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return yes }
        func attempted() { lock.lock(); sent += 1; lock.unlock() }
        var attempts: Int { lock.lock(); defer { lock.unlock() }; return sent }
    }

    func service(_ db: TestDatabase, node: String, url: String, running: Running) throws -> DeliveryService {
        try Self.service(store: try db.ledger(node: node), node: node, url: url, running: running)
    }

    static func service(store: PostgresLedger, node: String, url: String, running: Running) throws -> DeliveryService {
        var config = Config()
        config.node = NodeConfig(name: node)
        config.delivery = DeliveryConfig(balanceIntervalSeconds: 0, maxAgeHours: 72)
        config.endpoints = [EndpointConfig(name: "e0", url: url, events: ["*"], secret: testSecret, tokenFile: nil, timeoutSeconds: 10)]
        var logger = Logger(label: "lease-test-\(node)")
        logger.logLevel = ProcessInfo.processInfo.environment["DELIVERY_TEST_LOG"] == nil ? .critical : .trace
        var options = DeliveryService.Options(retry: RetryPolicy(baseMilliseconds: 10, capMilliseconds: 80), pollMilliseconds: 10,
                                              balanceTickMilliseconds: 20, pruneTickMilliseconds: 50, idleMilliseconds: 50)
        // The daemon's lease timings; a stop leaves the lease in place, as a kill -9 would.
        options.releaseLeasesOnStop = false
        options.onPending = { _ in running.set() }
        options.onResult = { _, _ in running.attempted() }
        return try DeliveryService(config: config, store: store, version: "test", logger: logger, options: options)
    }

    /// Events for ann and bob, written by a third agent.
    func story(_ w: DeliveryLedger, tag: String) throws {
        let now = wallNow()
        let ann = try w.client(username: "ann") ?? addClient(w, "ann", now: now)
        if try w.client(username: "bob") == nil { try addClient(w, "bob", now: now) }
        _ = try w.recharge(username: "ann", amount: 100 * credit, key: nil, now: now)
        _ = try w.recharge(username: "bob", amount: 50 * credit, key: nil, now: now)
        for i in 0 ..< 5 { try charge(w, client: ann, cost: 19 * credit, id: "\(tag)-\(i)", now: now) }
    }

    /// Per client, the ids in the order written, and the order received.
    func checkOrder(_ got: [[String: Any]], _ written: [(eventID: String, type: String, username: String, body: String)]) {
        for name in ["ann", "bob"] {
            let sent = written.filter { $0.username == name }.map(\.eventID)
            let arrived = ids(got).filter { Set(sent).contains($0) }
            #expect(arrived == sent, "\(name)'s events out of order")
        }
    }

    @Test func oneAgentSendsAndTheOtherTakesOverWhenItDies() async throws {
        let db = try TestDatabase()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lease-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let r = try PythonReceiver(dir: dir, name: "r", secret: testSecret)
        defer { r.stop(); db.drop(); try? FileManager.default.removeItem(at: dir) }
        let writer = try db.ledger(node: "pbx0")
        try story(writer, tag: "a")
        // Taken now: the coordinator prunes delivered events from the outbox.
        var written = try writer.outboxEvents(limit: 10_000)

        let firstRunning = Running()
        let first = try service(db, node: "pbx1", url: r.url, running: firstRunning)
        let firstTask = Task { try await first.run() }
        // Generous: the service starts on the concurrency pool, which the synchronous tests running alongside
        // may keep busy for a while on a small machine.
        try await eventuallyAsync("pbx1 holding the endpoint's lease", timeout: 60) {
            first.holdsLease(DeliveryService.endpointLease("e0")) && first.holdsLease(DeliveryService.coordinatorLease)
        }
        let secondRunning = Running()
        let second = try service(db, node: "pbx2", url: r.url, running: secondRunning)
        let secondTask = Task { try await second.run() }
        try await eventuallyAsync("pbx2 running", timeout: 60) { secondRunning.isSet }

        // Every event so far, once each; balance.updated events are made by the coordinator only.
        let firstIDs = Set(written.map(\.eventID))
        try await eventuallyAsync("the first events delivered", timeout: 30) {
            let pending = try writer.pendingDeliveries(endpoints: ["e0"])["e0"] ?? 1
            return firstIDs.isSubset(of: Set(ids(r.received()))) && pending == 0
        }
        #expect(!second.holdsLease(DeliveryService.endpointLease("e0")))
        // The agent without the lease sent nothing.
        #expect(secondRunning.attempts == 0 && firstRunning.attempts > 0)

        // The holder dies: it stops renewing and sending, and leaves its lease to run out. Counted from
        // when it has stopped (its last renewal was at most leaseRenewMilliseconds before).
        firstTask.cancel()
        try await firstTask.value
        let killedAt = Date()
        let firstAttempts = firstRunning.attempts
        try story(writer, tag: "b")
        let known = Set(written.map(\.eventID))
        written += try writer.outboxEvents(limit: 10_000).filter { !known.contains($0.eventID) }
        try await eventuallyAsync("pbx2 taking the endpoint over", timeout: 15) {
            second.holdsLease(DeliveryService.endpointLease("e0"))
        }
        let takeover = Date().timeIntervalSince(killedAt)
        let allIDs = Set(written.map(\.eventID))
        try await eventuallyAsync("the later events delivered", timeout: 30) {
            let pending = try writer.pendingDeliveries(endpoints: ["e0"])["e0"] ?? 1
            return allIDs.isSubset(of: Set(ids(r.received()))) && pending == 0
        }
        secondTask.cancel()
        try await secondTask.value
        #expect(firstRunning.attempts == firstAttempts && secondRunning.attempts > 0)
        print("lease takeover after the holder stopped: \(String(format: "%.1f", takeover)) s")
        #expect(takeover < 15)

        let got = r.received()
        #expect(got.allSatisfy { ($0["duplicate"] as? Bool) == false }, "an event arrived twice")
        #expect(ids(got).count == Set(ids(got)).count)
        // Every event written by the third agent arrived (and the coordinators' balance.updated events).
        #expect(Set(written.map(\.eventID)).isSubset(of: Set(ids(got))))
        checkOrder(got, written)
        #expect(got.contains { $0["type"] as? String == "balance.updated" })
    }

    /// While another agent holds the coordinator's and the endpoint's leases, an agent makes no balance
    /// events, queues nothing and sends nothing; once they are given up it does all of it.
    @Test func withoutTheLeasesAnAgentLeavesTheWorkToTheHolder() async throws {
        let db = try TestDatabase()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("idle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let r = try PythonReceiver(dir: dir, name: "r", secret: testSecret)
        defer { r.stop(); db.drop(); try? FileManager.default.removeItem(at: dir) }
        let writer = try db.ledger(node: "pbx0")
        let names = [DeliveryService.coordinatorLease, DeliveryService.endpointLease("e0")]
        for n in names { #expect(try writer.takeLease(n, holder: "other/1", ttlMs: 600_000)) }
        try story(writer, tag: "a")

        let running = Running()
        let service = try service(db, node: "pbx1", url: r.url, running: running)
        let task = Task { try await service.run() }
        // Three seconds of its coordinator's loop (it reports every second, holder or not).
        try await eventuallyAsync("three reports from pbx1", timeout: 60) { running.reports >= 3 }
        #expect(try db.int("SELECT count(*) FROM deliveries") == 0)
        #expect(try db.int("SELECT count(*) FROM outbox WHERE type = 'balance.updated'") == 0)
        #expect(try db.int("SELECT count(*) FROM balance_dirty") == 2)
        #expect(running.attempts == 0 && r.received().isEmpty)

        for n in names { try writer.releaseLease(n, holder: "other/1") }
        let written = Set(try writer.outboxEvents(limit: 10_000).map(\.eventID))
        try await eventuallyAsync("pbx1 delivering once the leases are free", timeout: 30) {
            let got = r.received()
            return written.isSubset(of: Set(ids(got))) && got.contains { $0["type"] as? String == "balance.updated" }
        }
        task.cancel()
        try await task.value
    }
}

/// The agent `PostgresKillTests` kills: this test binary run again with only this test and the database,
/// node and receiver in its environment, delivering until it is killed.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CREDITMETER_DELIVERY_AGENT_URL"] != nil))
struct DeliveryAgentProcess {
    @Test func deliverUntilKilled() async throws {
        let env = ProcessInfo.processInfo.environment
        let settings = PostgresSettings(url: env["CREDITMETER_DELIVERY_AGENT_URL"] ?? "",
                                        password: env["CREDITMETER_DELIVERY_AGENT_PASSWORD"],
                                        node: env["CREDITMETER_DELIVERY_AGENT_NODE"] ?? "agent")
        let service = try PostgresLeaseDeliveryTests.service(store: try PostgresLedger(settings: settings), node: settings.node,
                                                             url: env["CREDITMETER_DELIVERY_AGENT_RECEIVER"] ?? "",
                                                             running: PostgresLeaseDeliveryTests.Running())
        try await service.run()
    }
}

/// A real kill -9 of the agent holding the endpoint: another agent takes over within 15 s.
@Suite(.serialized, .enabled(if: PGEnv.enabled, "needs CREDITMETER_TEST_PG_DIR")) struct PostgresKillTests {
    @Test func aKilledHoldersEndpointIsTakenOverWithin15Seconds() async throws {
        let db = try TestDatabase()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let r = try PythonReceiver(dir: dir, name: "r", secret: testSecret)
        let agent = Process()
        defer {
            if agent.isRunning { kill(agent.processIdentifier, SIGKILL) }
            r.stop()
            db.drop()
            try? FileManager.default.removeItem(at: dir)
        }
        let writer = try db.ledger(node: "pbx0")
        let lease = PostgresLeaseDeliveryTests()
        try lease.story(writer, tag: "a")
        var written = try writer.outboxEvents(limit: 10_000)

        agent.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        agent.arguments = ["--testing-library", "swift-testing", "--filter", "DeliveryAgentProcess"]
        var env = ProcessInfo.processInfo.environment
        env["CREDITMETER_DELIVERY_AGENT_URL"] = db.url
        env["CREDITMETER_DELIVERY_AGENT_PASSWORD"] = db.password
        env["CREDITMETER_DELIVERY_AGENT_NODE"] = "pbx1"
        env["CREDITMETER_DELIVERY_AGENT_RECEIVER"] = r.url
        agent.environment = env
        agent.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        agent.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try agent.run()
        let firstIDs = Set(written.map(\.eventID))
        try await eventuallyAsync("the agent process delivering the first events", timeout: 60) {
            let pending = try writer.pendingDeliveries(endpoints: ["e0"])["e0"] ?? 1
            return firstIDs.isSubset(of: Set(ids(r.received()))) && pending == 0
        }
        let held = try writer.deliveryLeases().first { $0.name == DeliveryService.endpointLease("e0") }
        #expect(held?.holder.hasPrefix("pbx1/") == true)

        let running = PostgresLeaseDeliveryTests.Running()
        let second = try PostgresLeaseDeliveryTests.service(store: try db.ledger(node: "pbx2"), node: "pbx2", url: r.url,
                                                            running: running)
        let task = Task { try await second.run() }
        try await eventuallyAsync("pbx2 running", timeout: 60) { running.isSet }
        #expect(!second.holdsLease(DeliveryService.endpointLease("e0")) && running.attempts == 0)

        kill(agent.processIdentifier, SIGKILL)
        agent.waitUntilExit()
        let killedAt = Date()
        try lease.story(writer, tag: "b")
        let known = Set(written.map(\.eventID))
        written += try writer.outboxEvents(limit: 10_000).filter { !known.contains($0.eventID) }
        try await eventuallyAsync("pbx2 taking the endpoint over", timeout: 15) {
            second.holdsLease(DeliveryService.endpointLease("e0"))
        }
        let takeover = Date().timeIntervalSince(killedAt)
        let allIDs = Set(written.map(\.eventID))
        try await eventuallyAsync("the later events delivered", timeout: 30) {
            let pending = try writer.pendingDeliveries(endpoints: ["e0"])["e0"] ?? 1
            return allIDs.isSubset(of: Set(ids(r.received()))) && pending == 0
        }
        task.cancel()
        try await task.value
        print("lease takeover after kill -9 of the holder: \(String(format: "%.1f", takeover)) s")
        #expect(takeover < 15)
        let got = r.received()
        #expect(got.allSatisfy { ($0["duplicate"] as? Bool) == false }, "an event arrived twice")
        lease.checkOrder(got, written)
    }
}

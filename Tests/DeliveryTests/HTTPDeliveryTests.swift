import Foundation
import Logging
import Testing
import Delivery
import Ledger
import MeterConfig
import MeterCore
import Outbox
import TestSupport

let testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

/// A quick-cycling service on `t`'s store, delivering to `urls` (endpoint names e0, e1, …).
func makeService(_ t: TempStore, urls: [String], events: [String] = ["*"], balanceInterval: Int64 = 0,
                 timeoutSeconds: Int64 = 10, tokenFile: String? = nil) throws -> DeliveryService {
    var config = Config()
    config.store.path = t.path
    config.delivery = DeliveryConfig(balanceIntervalSeconds: balanceInterval, maxAgeHours: 72)
    config.endpoints = urls.enumerated().map { n, url in
        EndpointConfig(name: "e\(n)", url: url, events: events, secret: testSecret, tokenFile: tokenFile,
                       timeoutSeconds: timeoutSeconds)
    }
    var logger = Logger(label: "delivery-test")
    logger.logLevel = ProcessInfo.processInfo.environment["DELIVERY_TEST_LOG"] == nil ? .critical : .trace
    let options = DeliveryService.Options(retry: RetryPolicy(baseMilliseconds: 10, capMilliseconds: 80), pollMilliseconds: 10,
                                          balanceTickMilliseconds: 20, pruneTickMilliseconds: 50, idleMilliseconds: 50)
    return try DeliveryService(config: config, version: "test", logger: logger, options: options)
}

/// ann goes low, critical, exhausted and is recharged; bob just gets a recharge.
func alertStory(_ l: Ledger) throws {
    let ann = try makeClient(l, "ann", now: wallNow())
    try makeClient(l, "bob", now: wallNow())
    let now = wallNow()
    _ = try l.recharge(username: "ann", amount: 100 * credit, key: nil, now: now)
    _ = try l.recharge(username: "bob", amount: 50 * credit, key: nil, now: now)
    try spend(l, client: ann, cost: 80 * credit, id: "c1", now: now)
    try spend(l, client: ann, cost: 12 * credit, id: "c2", now: now)
    try spend(l, client: ann, cost: 8 * credit, id: "c3", now: now)
    _ = try l.recharge(username: "ann", amount: 100 * credit, key: "r2", now: now)
}

/// Delivery expires events older than max_age_hours: the HTTP tests' events are made now.
func wallNow() -> Int64 { Int64(Date().timeIntervalSince1970) }

func ids(_ lines: [[String: Any]]) -> [String] { lines.compactMap { $0["id"] as? String } }

@Suite(.serialized) struct HTTPDeliveryTests {
    @Test func everyEventArrivesOnceSignedAndInOrder() async throws {
        let t = try TempStore()
        let token = t.dir.appendingPathComponent("token").path
        try "s3cret-token\n".write(toFile: token, atomically: true, encoding: .utf8)
        // The receiver answers 401 to a wrong signature, a stale timestamp or a missing bearer token.
        let r = try PythonReceiver(dir: t.dir, name: "r", secret: testSecret, extra: ["--token-file", token])
        defer { r.stop(); t.cleanup() }
        try alertStory(t.ledger)
        let queued = try t.ledger.outboxEvents(limit: 1_000)

        let service = try makeService(t, urls: [r.url], tokenFile: token)
        let task = Task { try await service.run() }
        // The queued events, plus one coalesced balance.updated per client.
        _ = try await r.waitFor(count: queued.count + 2)
        try await allRecorded(t.ledger)
        task.cancel()
        try await task.value

        let got = r.received()
        #expect(got.allSatisfy { ($0["duplicate"] as? Bool) == false }, "an event arrived twice")
        #expect(ids(got).count == Set(ids(got)).count)
        #expect(Set(queued.map(\.eventID)).isSubset(of: Set(ids(got))))
        #expect(got.allSatisfy { $0["user_agent"] as? String == "creditmeter/test" })
        // Per client, the order they happened in.
        for name in ["ann", "bob"] {
            let sent = queued.filter { $0.username == name }.map(\.eventID)
            let arrived = ids(got).filter { Set(sent).contains($0) }
            #expect(arrived == sent, "\(name)'s events out of order")
        }
        let annAlerts = got.filter { ($0["type"] as? String)?.hasPrefix("credit.") == true && data(of: $0)["username"] as? String == "ann" }
        #expect(annAlerts.map { $0["type"] as? String } == ["credit.recovered", "credit.low", "credit.critical", "credit.exhausted", "credit.recovered"])
        #expect(annAlerts.map { data(of: $0)["previous_level"] as? String } == ["exhausted", "ok", "low", "critical", "exhausted"])
        // The last balance.updated of each client is the final ledger.
        for name in ["ann", "bob"] {
            let c = try #require(try t.ledger.client(username: name))
            let last = try #require(got.last { $0["type"] as? String == "balance.updated" && data(of: $0)["username"] as? String == name })
            #expect(data(of: last)["available"] as? String == Money.format(c.meter.available))
            #expect(data(of: last)["assigned"] as? String == Money.format(c.meter.assigned))
        }
        #expect(try t.ledger.deliveries().isEmpty)
    }

    @Test func failingReceiverGetsEverythingOnceAfterRetries() async throws {
        let t = try TempStore()
        // The first 8 requests and then a third of the rest answer 500.
        let r = try PythonReceiver(dir: t.dir, name: "r", secret: testSecret, extra: ["--fail-first", "8", "--fail-rate", "0.33", "--seed", "7"])
        defer { r.stop(); t.cleanup() }
        try alertStory(t.ledger)
        for n in 0 ..< 10 { try makeClient(t.ledger, "cli\(n)", now: wallNow()) }
        let queued = try t.ledger.outboxEvents(limit: 1_000)

        let service = try makeService(t, urls: [r.url], events: ["client.*", "credit.*"])
        let task = Task { try await service.run() }
        _ = try await r.waitFor(count: queued.count)
        try await allRecorded(t.ledger)
        task.cancel()
        try await task.value

        let got = r.received()
        #expect(Set(ids(got)) == Set(queued.map(\.eventID)))
        #expect(ids(got).count == queued.count, "an event arrived twice")
        let ann = queued.filter { $0.username == "ann" }.map(\.eventID)
        #expect(ids(got).filter { Set(ann).contains($0) } == ann)
        #expect(try t.ledger.deliveries().isEmpty)
    }

    @Test func receiverThatTimesOutThenRecoversGetsEverythingOnce() async throws {
        let t = try TempStore()
        // The first request hangs past the 1 s timeout and is not accepted; then all is well.
        let r = try PythonReceiver(dir: t.dir, name: "r", secret: testSecret, extra: ["--hang-first", "1", "--hang-seconds", "3"])
        defer { r.stop(); t.cleanup() }
        for n in 0 ..< 3 { try makeClient(t.ledger, "cli\(n)", now: wallNow()) }
        let queued = try t.ledger.outboxEvents(limit: 100)
        let service = try makeService(t, urls: [r.url], events: ["client.*"], timeoutSeconds: 1)
        let task = Task { try await service.run() }
        _ = try await r.waitFor(count: 3, seconds: 10)
        try await allRecorded(t.ledger)
        task.cancel()
        try await task.value
        let got = r.received()
        #expect(ids(got).sorted() == queued.map(\.eventID).sorted())
        #expect(try t.ledger.deliveries().isEmpty)
    }

    @Test func retryAfterIsHonoured() async throws {
        let t = try TempStore()
        // One 503 asking for a second; the test policy alone would retry after 10 ms.
        let r = try PythonReceiver(dir: t.dir, name: "r", secret: testSecret, extra: ["--fail-first", "1", "--fail-status", "503", "--retry-after", "1"])
        defer { r.stop(); t.cleanup() }
        try makeClient(t.ledger, "ann", now: wallNow())
        let service = try makeService(t, urls: [r.url], events: ["client.*"])
        let start = Date()
        let task = Task { try await service.run() }
        _ = try await r.waitFor(count: 1, seconds: 10)
        let took = Date().timeIntervalSince(start)
        task.cancel()
        try await task.value
        #expect(took >= 0.9, "retried after \(took) s")
    }

    @Test func goneAndPermanentAnswers() async throws {
        let t = try TempStore()
        let gone = try PythonReceiver(dir: t.dir, name: "gone", secret: testSecret, extra: ["--fail-first", "1000", "--fail-status", "410"])
        let notFound = try PythonReceiver(dir: t.dir, name: "nf", secret: testSecret, extra: ["--fail-first", "1", "--fail-status", "404"])
        defer { gone.stop(); notFound.stop(); t.cleanup() }
        try makeClient(t.ledger, "ann", now: wallNow())
        try makeClient(t.ledger, "bob", now: wallNow())

        let service = try makeService(t, urls: [gone.url, notFound.url], events: ["client.*"])
        let task = Task { try await service.run() }
        _ = try await notFound.waitFor(count: 1)
        // Both outcomes recorded: e0 paused by the 410 with both events kept, e1's 404 a dead letter and
        // its other event delivered.
        try await eventuallyAsync("e0 paused and e1 settled", timeout: 10) {
            let status = try t.ledger.endpointStatus(endpoints: [])
            guard let e0 = status.first(where: { $0.name == "e0" }), let e1 = status.first(where: { $0.name == "e1" }) else { return false }
            return e0.pausedAt != nil && e1.pending == 0 && Int64(e1.dead) + Int64(e1.delivered) == 2
        }
        task.cancel()
        try await task.value

        let status = try t.ledger.endpointStatus(endpoints: [])
        let e0 = try #require(status.first { $0.name == "e0" })
        #expect(e0.pausedAt != nil && e0.pauseReason.hasPrefix("HTTP 410") && e0.pending == 2)
        // The 404 made one dead letter; the other event went through.
        let e1 = try #require(status.first { $0.name == "e1" })
        #expect(e1.dead == 1 && e1.pending == 0 && e1.delivered == 1)
        #expect(try t.ledger.deliveries(status: .dead).first?.lastError.hasPrefix("HTTP 404") == true)
    }

    @Test func aSlowEndpointHoldsUpNoOtherAndShutdownCutsItShort() async throws {
        let t = try TempStore()
        let slow = try PythonReceiver(dir: t.dir, name: "slow", secret: testSecret, extra: ["--delay", "30"])
        let fast = try PythonReceiver(dir: t.dir, name: "fast", secret: testSecret)
        defer { slow.stop(); fast.stop(); t.cleanup() }
        for n in 0 ..< 5 { try makeClient(t.ledger, "cli\(n)", now: wallNow()) }

        let service = try makeService(t, urls: [slow.url, fast.url], events: ["client.*"], timeoutSeconds: 60)
        let task = Task { try await service.run() }
        _ = try await fast.waitFor(count: 5, seconds: 5)
        let stopping = Date()
        task.cancel()
        try await task.value
        #expect(Date().timeIntervalSince(stopping) < 3, "shutdown waited for a slow request")
        #expect(slow.received().isEmpty)
        // The cut-short attempt is not recorded: all five stay queued for the slow endpoint.
        #expect(try t.ledger.deliveries(status: .pending).filter { $0.endpoint == "e0" }.count == 5)
    }

    @Test func redirectsAreNotFollowed() async throws {
        let t = try TempStore()
        let target = try PythonReceiver(dir: t.dir, name: "target", secret: testSecret)
        let mover = try PythonReceiver(dir: t.dir, name: "mover", secret: testSecret, extra: ["--redirect", target.url])
        defer { target.stop(); mover.stop(); t.cleanup() }
        try makeClient(t.ledger, "ann", now: wallNow())
        let service = try makeService(t, urls: [mover.url], events: ["client.*"])
        let task = Task { try await service.run() }
        try await eventuallyAsync("a dead letter", timeout: 10) { !(try t.ledger.deliveries(status: .dead).isEmpty) }
        task.cancel()
        try await task.value
        let dead = try t.ledger.deliveries(status: .dead)
        #expect(dead.count == 1 && dead.first?.lastError == "HTTP 307 (redirects are not followed)")
        #expect(target.received().isEmpty)
    }

    @Test func tlsCertificatesAreVerified() async throws {
        let t = try TempStore()
        defer { t.cleanup() }
        let cert = t.dir.appendingPathComponent("cert.pem").path, key = t.dir.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                             "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        openssl.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        openssl.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0, "openssl could not make a test certificate")
        let r = try PythonReceiver(dir: t.dir, name: "tls", secret: testSecret, extra: ["--tls-cert", cert, "--tls-key", key])
        defer { r.stop() }
        #expect(r.url.hasPrefix("https://"))
        // A self-signed certificate is refused (curl 60) and retried, never sent to.
        let d = try await failedAttempts(2, t, url: r.url)
        #expect(d.status == .pending && d.attempts >= 2 && d.lastError.hasPrefix("curl error 60"))
        #expect(r.received().isEmpty)
    }

    @Test func downReceiverRetries() async throws {
        let t = try TempStore()
        defer { t.cleanup() }
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        let d = try await failedAttempts(3, t, url: "http://127.0.0.1:9/")
        #expect(d.status == .pending && d.attempts >= 3 && d.lastError.hasPrefix("curl error 7"))
    }
}

private func data(of line: [String: Any]) -> [String: Any] {
    (line["body"] as? [String: Any])?["data"] as? [String: Any] ?? [:]
}

/// One client's `client.created` sent to `url` until it has been tried `n` times: its delivery then.
private func failedAttempts(_ n: Int64, _ t: TempStore, url: String) async throws -> DeliveryRecord {
    try makeClient(t.ledger, "ann", now: wallNow())
    let service = try makeService(t, urls: [url], events: ["client.*"])
    let task = Task { try await service.run() }
    try await eventuallyAsync("\(n) attempts", timeout: 10) { (try t.ledger.deliveries().first?.attempts ?? 0) >= n }
    task.cancel()
    try await task.value
    return try #require(try t.ledger.deliveries().first)
}

/// Waits until no delivery is pending: every attempt's result is recorded, so nothing can be sent again.
func allRecorded(_ ledger: Ledger) async throws {
    try await eventuallyAsync("every delivery's result recorded", timeout: 20) {
        try ledger.deliveries(status: .pending).isEmpty
    }
}

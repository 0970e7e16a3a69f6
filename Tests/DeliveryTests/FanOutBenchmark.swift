import Foundation
import Testing
import Ledger
import MeterCore
import Outbox
import TestSupport

/// Fan-out and queue throughput on either store, without HTTP: how long queueing a backlog of events for
/// two endpoints takes, and how fast one endpoint's queue drains through `dueDeliveries` and
/// `recordDelivery` (the store's share of each webhook). Runs only when CREDITMETER_BENCH_FANOUT is set
/// (FANOUT_EVENTS, default 5,000); prints its figures and asserts only that everything was queued once.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CREDITMETER_BENCH_FANOUT"] != nil))
struct FanOutBenchmark {
    static let events = Int(ProcessInfo.processInfo.environment["FANOUT_EVENTS"] ?? "") ?? 5_000

    @Test(arguments: DeliveryStoreKind.available)
    func backlogFanOutAndDrain(_ kind: DeliveryStoreKind) throws {
        let t = try DeliveryTestStore(kind)
        defer { t.cleanup() }
        let clients = 100
        for i in 0 ..< clients { try addClient(t.store, "cl\(String(format: "%03d", i))") }
        // One client.recharged per recharge (and a credit.recovered each client's first time).
        for n in 0 ..< Self.events { _ = try t.store.recharge(username: "cl\(String(format: "%03d", n % clients))", amount: 1, key: nil, now: 1_000) }
        let total = try t.store.outboxEvents(limit: 1_000_000).count

        var start = Date()
        let queued = try fanOutAll(t.store, [everything("a"), everything("b")], nowMs: 0)
        let fanOut = Date().timeIntervalSince(start)
        #expect(queued == ["a": total, "b": total])

        start = Date()
        var sent = 0
        while true {
            let due = try t.store.dueDeliveries(endpoint: "a", nowMs: 0, limit: 100).due
            if due.isEmpty { break }
            for d in due { try t.store.recordDelivery(d, .delivered, nowMs: 0) }
            sent += due.count
        }
        let drain = Date().timeIntervalSince(start)
        #expect(sent == total)
        print(String(format: "fan-out bench %@: %d events to 2 endpoints in %.2f s (%.0f events/s); one endpoint drained in %.2f s (%.0f deliveries/s)",
                     kind.rawValue, total, fanOut, Double(total) / max(fanOut, 1e-9), drain, Double(sent) / max(drain, 1e-9)))
    }
}

import Foundation
import Ledger
import LedgerPostgres
import MeterCore
import Synchronization
import Testing
import TestSupport

/// `bench/holds.sh`: check-and-reserve latency on either store, three agents' connections asking at a
/// paced rate for 1,000 clients, and how soon a recharge on one agent reaches another's answer. Runs
/// only when CREDITMETER_BENCH_HOLDS is set; prints its figures and asserts only what must hold whatever
/// the timing (no client held past its credit, the recharge seen by the first answer after it).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CREDITMETER_BENCH_HOLDS"] != nil))
struct HoldsBenchmark {
    static let env = ProcessInfo.processInfo.environment
    static let rate = Int(env["HOLDS_RATE"] ?? "") ?? 1_000
    static let seconds = Int(env["HOLDS_SECONDS"] ?? "") ?? 10

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
    }

    @Test(arguments: StoreKind.available)
    func pacedReserveLatency(_ kind: StoreKind) throws {
        let (all, cleanup) = try HoldsContractTests.agents(kind, count: 4, asAuthorize: true)
        defer { cleanup() }
        // The first connection plays the API's own (clients, recharges, and on SQLite the passive
        // checkpoint every 500 ms that the holds connections leave to it); the other three answer, as three agents.
        let setup = all[0]
        let agents = Array(all[1...])
        let clients = 1_000
        for i in 0..<clients {
            _ = try makeClient(setup, String(format: "b%04d", i))
            _ = try setup.recharge(username: String(format: "b%04d", i), amount: 1_000_000, key: nil, now: 1)
        }
        let running = Atomic<Bool>(true)
        let checkpointer = Thread {
            while running.load(ordering: .relaxed) {
                if let l = setup as? Ledger { try? l.checkpointPassively() }
                usleep(500_000)
            }
        }
        checkpointer.start()
        defer { running.store(false, ordering: .relaxed) }
        // Each agent's thread asks at rate/3 per second, on schedule (latency counted from when the
        // answer was due, so a stall shows, not hides, the answers queued behind it).
        let perAgent = Self.rate / agents.count
        let total = perAgent * Self.seconds
        let latencies = Mutex<[Double]>([])
        let start = DispatchTime.now().uptimeNanoseconds + 50_000_000
        let failures = try onThreads(agents.count, timeout: Double(Self.seconds) * 4 + 60) { w in
            var mine: [Double] = []
            mine.reserveCapacity(total)
            var rng = SplitMix64(seed: UInt64(w + 7))
            for k in 0..<total {
                let due = start + UInt64(k) * 1_000_000_000 / UInt64(perAgent)
                let now = DispatchTime.now().uptimeNanoseconds
                if due > now { usleep(UInt32((due - now) / 1_000)) }
                let client = Int(rng.next() % UInt64(clients))
                // Four live calls a client at most, re-asked: the reservation path, as a PBX retrying.
                let call = "c\(rng.next() % 4)"
                let expires = Int64(k) + 1_000_000
                _ = try agents[w].reserve(account: String(format: "b%04d", client), call: call, now: Int64(k)) { v in
                    guard let v, v.meter.available - v.reserved >= 100_000 else { return (false, nil) }
                    return (true, HoldGrant(cost: 100_000, expiresAt: expires))
                }
                mine.append(Double(DispatchTime.now().uptimeNanoseconds - due) / 1e6)
            }
            latencies.withLock { $0 += mine }
        }
        #expect(failures == [])
        // Whatever the interleaving, no client holds more than its credit.
        for c in try setup.clients() {
            let h = try agents[1].held(clientID: c.id, now: 0)
            #expect(h.cost <= c.meter.available && h.calls <= 4, "\(c.username) holds \(h)")
        }
        let sorted = latencies.withLock { $0 }.sorted()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        print(String(format: "holds bench %@: %d answers in %.1f s (%.0f/s offered %d/s) over %d connections: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                     kind.rawValue, sorted.count, elapsed, Double(sorted.count) / elapsed, Self.rate, agents.count,
                     Self.percentile(sorted, 0.5), Self.percentile(sorted, 0.99), sorted.last ?? 0))

        // A recharge committed on one agent and the next answer on another: the answer must show it.
        var seen: [Double] = []
        for i in 0..<200 {
            let user = String(format: "b%04d", i)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (from, to) = (i % agents.count, (i + 1) % agents.count)
            let after = try agents[from].recharge(username: user, amount: 1, key: nil, now: 2).client.meter.assigned
            var got: Int64 = -1
            _ = try agents[to].reserve(account: user, call: nil, now: 0) { v in got = v?.meter.assigned ?? -1; return (0, nil) }
            #expect(got == after, "agent \(to) answered with assigned \(got) after a recharge to \(after) on agent \(from)")
            seen.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        seen.sort()
        print(String(format: "holds bench %@: recharge on one agent to the next answer on another: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                     kind.rawValue, Self.percentile(seen, 0.5), Self.percentile(seen, 0.99), seen.last ?? 0))
    }
}

import Foundation
import Testing
import TestSupport

/// The daemon with a real webhook receiver (samples/webhook-receiver.py) on 127.0.0.1.
@Suite(.serialized) struct WebhookTests {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    /// A tailing harness whose one endpoint is `receiver`; deck row 5550 costs exactly 0.01 credit a minute, 1/1.
    func harness(_ receiver: PythonReceiver, timeout: Int = 10) throws -> Harness {
        try Harness.tailing(extra: """
            [delivery]
            balance_interval_seconds = 1

            [[endpoint]]
            name = "receiver"
            url = "\(receiver.url)"
            events = ["*"]
            secret = "\(Self.secret)"
            timeout_seconds = \(timeout)
            """)
    }

    static func receiver(_ extra: [String] = []) throws -> (PythonReceiver, URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cm-rx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return (try PythonReceiver(dir: dir, name: "rx", secret: secret, extra: extra), dir)
    }

    static func cdr(_ account: String, billsec: Int, id: Int) -> String {
        #""\#(account)","100","5550123","out","x","SIP/1","SIP/2","Dial","","2026-01-01 10:00:00","2026-01-01 10:00:05","2026-01-01 12:00:00",\#(billsec + 5),\#(billsec),"ANSWERED","DOCUMENTATION","1767261600.\#(id)","","","1767261600.\#(id)",1"#
    }

    static let deck = Harness.defaultDeck + "5550,0.01,0,1,1,test\n"

    func events(_ r: PythonReceiver) -> [(id: String, type: String, data: [String: Any], duplicate: Bool)] {
        r.received().compactMap { e in
            guard let id = e["id"] as? String, let type = e["type"] as? String else { return nil }
            let body = (e["body"] as? [String: Any]) ?? (e["body"] as? String).flatMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            } ?? [:]
            return (id, type, body["data"] as? [String: Any] ?? [:], (e["duplicate"] as? Bool) ?? false)
        }
    }

    func wait(_ what: String, timeout: TimeInterval = 20, _ done: () throws -> Bool) throws {
        try eventually(what, timeout: timeout, done)
    }

    /// The newest balance.updated of `user` equals the ledger's meter.
    func lastBalanceMatches(_ r: PythonReceiver, _ h: Harness, _ user: String) throws -> Bool {
        guard let last = events(r).last(where: { $0.type == "balance.updated" && ($0.data["username"] as? String) == user }),
              let meter = try h.meters()[user] else { return false }
        return ["available", "used", "assigned"].allSatisfy { (last.data[$0] as? String) == meter[$0] }
    }

    @Test func alertsArriveOnceInOrderAndTheLastBalanceIsTheLedger() throws {
        let (r, dir) = try Self.receiver()
        defer { r.stop(); try? FileManager.default.removeItem(at: dir) }
        let h = try harness(r)
        try h.write("rates-default.csv", Self.deck)
        try h.createClients(1, credits: "1")
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("source opened"))
        // 1 credit: 0.8 spent → 20 % (low), 0.15 more → 5 % (critical), 0.1 more → below 0 (exhausted).
        for (n, (billsec, used)) in [(4800, "0.8"), (900, "0.95"), (600, "1.05")].enumerated() {
            try h.append([Self.cdr("c0001", billsec: billsec, id: n)][...])
            try wait("used \(used)") { try h.meters()["c0001"]?["used"] == used }
        }
        try h.ok(["clients", "recharge", "c0001", "10"])
        try wait("five alerts") { events(r).filter { $0.type.hasPrefix("credit.") }.count >= 5 }
        try wait("the final balance") { try lastBalanceMatches(r, h, "c0001") }

        let all = events(r)
        let alerts = all.filter { $0.type.hasPrefix("credit.") }
        // Created with nothing assigned (exhausted), the first recharge recovers it; then the three steps down and back.
        #expect(alerts.map(\.type) == ["credit.recovered", "credit.low", "credit.critical", "credit.exhausted", "credit.recovered"])
        #expect(alerts.map { $0.data["previous_level"] as? String } == ["exhausted", "ok", "low", "critical", "exhausted"])
        #expect(alerts.map { $0.data["color"] as? String } == ["primary", "orange", "red", "red", "primary"])
        #expect(Set(all.map(\.id)).count == all.count, "every event once by id")
        #expect(all.allSatisfy { !$0.duplicate })
        #expect(all.contains { $0.type == "client.created" } && all.filter { $0.type == "client.recharged" }.count == 2)
    }

    @Test func aFailingThenHangingReceiverLosesNothingAndNeverSlowsCharging() throws {
        let (r, dir) = try Self.receiver(["--fail-first", "6", "--hang-first", "1", "--hang-seconds", "3"])
        defer { r.stop(); try? FileManager.default.removeItem(at: dir) }
        let h = try harness(r, timeout: 1)
        try h.createClients(4)
        let lines = try h.generate(count: 800, clients: 4, seed: 21)
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        for chunk in stride(from: 0, to: lines.count, by: 100) {
            try h.append(lines[chunk..<min(chunk + 100, lines.count)])
        }
        // Charging keeps up while every delivery is failing or hanging.
        let used = try h.waitForUsed(Harness.expectedUsed(lines), clients: 4, timeout: 10)
        #expect(used == Dictionary(uniqueKeysWithValues: (1...4).map { i in
            let u = String(format: "c%04d", i)
            return (u, Oracle.format(Harness.expectedUsed(lines)[u] ?? 0))
        }))
        for i in 1...4 {
            try wait("the final balance of client \(i)", timeout: 30) { try lastBalanceMatches(r, h, String(format: "c%04d", i)) }
        }
        let all = events(r)
        #expect(all.filter { $0.type == "client.created" }.count == 4)
        #expect(all.filter { $0.type == "client.recharged" }.count == 4)
        #expect(Set(all.map(\.id)).count == all.count, "nothing twice by id")
    }

    @Test func killedMidDeliveryLosesNothing() throws {
        let (r, dir) = try Self.receiver(["--delay", "0.05"])
        defer { r.stop(); try? FileManager.default.removeItem(at: dir) }
        let h = try harness(r)
        try h.createClients(6)
        let lines = try h.generate(count: 1200, clients: 6, seed: 22)
        var written = 0
        for _ in 0..<5 {
            let d = try DaemonProcess(h)
            try h.append(lines[written..<(written + 200)])
            written += 200
            usleep(UInt32.random(in: 100_000...400_000))
            d.kill9()
        }
        try h.append(lines[written...])
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(try h.waitForUsed(Harness.expectedUsed(lines), clients: 6).count == 6)
        for i in 1...6 {
            try wait("the final balance of client \(i)", timeout: 30) { try lastBalanceMatches(r, h, String(format: "c%04d", i)) }
        }
        let accepted = events(r).filter { !$0.duplicate }
        #expect(accepted.filter { $0.type == "client.created" }.count == 6)
        #expect(accepted.filter { $0.type == "client.recharged" }.count == 6)
        #expect(Set(accepted.map(\.id)).count == accepted.count, "the receiver dedupes repeats by webhook-id")
    }
}

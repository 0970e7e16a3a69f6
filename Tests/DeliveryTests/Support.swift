import Foundation
@_exported import TestSupport
import Ledger
import Outbox
import MeterCore

/// A ledger on a fresh file in a private temp directory, removed by `cleanup()`.
struct TempStore {
    let dir: URL
    let path: String
    let ledger: Ledger

    init(thresholds: Thresholds = .default) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("deliverytest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        path = dir.appendingPathComponent("ledger.db").path
        ledger = try Ledger(path: path, thresholds: thresholds)
    }

    func cleanup() {
        try? FileManager.default.removeItem(at: dir)
    }
}

let credit: Int64 = 1_000_000
let fakeHash = "$y$j9T$notarealsalt$notarealhashnotarealhashnotarealhash"

@discardableResult
func makeClient(_ l: Ledger, _ username: String, now: Int64 = 1_000) throws -> ClientRecord {
    var f = ClientFields()
    f.firstName = "First"
    f.lastName = "Last"
    f.email = "\(username)@example.com"
    return try l.createClient(username: username, fields: f, accounts: [], plan: "default", passwordHash: fakeHash, now: now)
}

/// Charges `cost` µcr to the client in one batch.
@discardableResult
func spend(_ l: Ledger, client: ClientRecord, cost: Int64, id: String, now: Int64) throws -> BatchOutcome {
    let c = Charge(identity: id, clientID: client.id, account: client.username, source: "test", position: 0, line: 1,
                   destination: "15551234567", prefix: "1", billsec: 60, chargedSeconds: 60, cost: cost, startedAt: now)
    return try l.commit(ChargeBatch(source: "test", position: nil, charges: [c], quarantined: []), now: now)
}

/// The parsed JSON body of an event.
func json(_ body: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
}

func data(_ body: String) -> [String: Any] {
    json(body)["data"] as? [String: Any] ?? [:]
}

func everything(_ name: String) -> OutboxEndpoint {
    OutboxEndpoint(name: name, wants: { _ in true })
}


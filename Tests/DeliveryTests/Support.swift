import Foundation
@_exported import TestSupport
import Ledger
import Outbox
import MeterCore

/// The delivery tests' store: TestSupport's temp ledger.
typealias TempStore = TempLedger

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


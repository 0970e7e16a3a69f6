import CSQLite
import Foundation
import MeterCore
@testable import Ledger
import TestSupport

func fields(first: String = "Ann", last: String = "Lee", email: String? = nil) -> ClientFields {
    clientFields(first: first, last: last, email: email)
}

func charge(_ identity: String, client: Int64, cost: Int64, account: String = "acct", line: Int64 = 1) -> Charge {
    Charge(identity: identity, clientID: client, account: account, source: "master", position: line * 100, line: line,
           destination: "15551234567", prefix: "1", billsec: 60, chargedSeconds: 60, cost: cost, startedAt: 1_700_000_000)
}

func entry(_ key: String, reason: String = "unknown_account", raw: String = "\"x\",\"y\"") -> QuarantineEntry {
    QuarantineEntry(key: key, source: "master", position: 42, line: 7, reason: reason, message: "no client for account 'x'",
                    raw: Array(raw.utf8), startKey: 0)
}

func batch(_ charges: [Charge], quarantined: [QuarantineEntry] = [], position: Checkpoint? = nil) -> ChargeBatch {
    ChargeBatch(source: "master", position: position, charges: charges, quarantined: quarantined)
}

/// A parsed outbox event body.
struct EventBody {
    let type: String
    let timestamp: String
    let data: [String: Any]

    init(_ body: String) throws {
        let obj = try JSONSerialization.jsonObject(with: Data(body.utf8))
        guard let top = obj as? [String: Any], let type = top["type"] as? String,
              let ts = top["timestamp"] as? String, let data = top["data"] as? [String: Any] else {
            throw TestFailure("malformed event body: \(body)")
        }
        self.type = type
        self.timestamp = ts
        self.data = data
    }

    func string(_ key: String) -> String? { data[key] as? String }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A store file as a release of schema `version` left it: that release's migrations alone, then `sql`
/// (its rows). `cleanup()` removes it.
struct OldStore {
    struct Failure: Error, CustomStringConvertible { let description: String }
    let dir: URL
    let path: String

    init(version: Int32, _ sql: String) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("upgrade-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        path = dir.appendingPathComponent("v\(version).db").path
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw Failure(description: "cannot open \(path)") }
        defer { sqlite3_close(db) }
        func exec(_ sql: String) throws {
            guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
                throw Failure(description: "\(String(cString: sqlite3_errmsg(db))) in: \(sql.prefix(60))")
            }
        }
        for m in Schema.migrations where m.version <= version { try exec(m.sql) }
        try exec("PRAGMA user_version=\(version)")
        try exec(sql)
    }

    func cleanup() { try? FileManager.default.removeItem(at: dir) }
}

import Foundation
import Ledger
import LedgerPostgres
import MeterCore
import Testing
import TestSupport

/// The two stores the contract cases run against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }

    /// SQLite always; PostgreSQL when a server is given or required.
    static let available: [StoreKind] = PGEnv.enabled ? [.sqlite, .postgres] : [.sqlite]
}

/// A fresh store of either kind; `cleanup()` removes its file or drops its database.
final class TestStore {
    let store: any MeteringStore
    private let onCleanup: () -> Void

    init(_ kind: StoreKind, thresholds: Thresholds = .default) throws {
        switch kind {
        case .sqlite:
            let t = try TempLedger(thresholds: thresholds)
            store = t.ledger
            onCleanup = { t.cleanup() }
        case .postgres:
            let db = try TestDatabase()
            do {
                store = try db.ledger(thresholds: thresholds)
            } catch {
                db.drop()
                throw error
            }
            onCleanup = { db.drop() }
        }
    }

    func cleanup() { onCleanup() }
}

@discardableResult
func makeClient(_ s: any MeteringStore, _ username: String, email: String? = nil, accounts: [String] = [],
                now: Int64 = 1_000) throws -> ClientRecord {
    try s.createClient(username: username, fields: clientFields(email: email ?? "\(username)@example.com"),
                       accounts: accounts, plan: "default", passwordHash: fakeHash, now: now)
}

func charge(_ identity: String, client: Int64, cost: Int64, line: Int64 = 1, startKey: Int64 = 1_700_000_000,
            answeredAt: Int64? = nil, pricedBy: String? = nil) -> Charge {
    Charge(identity: identity, clientID: client, account: "acct", source: "master", position: line * 100, line: line,
           destination: "15551234567", prefix: "1", billsec: 60, chargedSeconds: 60, cost: cost,
           startedAt: answeredAt == nil ? nil : 1_700_000_000, startKey: startKey, answeredAt: answeredAt, pricedBy: pricedBy)
}

func entry(_ key: String, startKey: Int64? = 1_700_000_000, raw: String = "\"x\",\"y\"") -> QuarantineEntry {
    QuarantineEntry(key: key, source: "master", position: 42, line: 7, reason: "unknown_account",
                    message: "no client for account 'x'", raw: Array(raw.utf8), startKey: startKey)
}

func batch(_ charges: [Charge], quarantined: [QuarantineEntry] = [], position: Checkpoint? = nil) -> ChargeBatch {
    ChargeBatch(source: "master", position: position, charges: charges, quarantined: quarantined)
}

func checkpoint(_ offset: Int64, line: Int64) -> Checkpoint {
    Checkpoint(device: UInt64.max - 1, inode: 1 << 63, headHash: "10:abc", offset: offset, tailHash: "5:def", line: line)
}

/// The error a call threw, or nil.
func thrown<T>(_ body: () throws -> T) -> LedgerError? {
    do {
        _ = try body()
        return nil
    } catch let e as LedgerError {
        return e
    } catch {
        return .invalidField(field: "test", rule: "not a LedgerError: \(error)")
    }
}

/// Runs `body` on `count` threads at once and waits for them all, failing after `timeout` seconds.
func onThreads(_ count: Int, timeout: TimeInterval = 120, _ body: @escaping @Sendable (Int) throws -> Void) throws -> [String] {
    let failures = Failures()
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let t = Thread {
            defer { group.leave() }
            do { try body(i) } catch { failures.add("thread \(i): \(error)") }
        }
        t.stackSize = 1 << 22
        t.start()
    }
    guard group.wait(timeout: .now() + timeout) == .success else {
        throw TestFailure("\(count) threads did not finish within \(timeout) s")
    }
    return failures.all
}

final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return list }
}

/// A value one thread hands to another.
final class Results<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<T, any Error>?
    func set(_ r: Result<T, any Error>) { lock.lock(); value = r; lock.unlock() }
    func get() throws -> T? {
        lock.lock()
        defer { lock.unlock() }
        return try value?.get()
    }
}

/// Per-client sums added up from several threads.
final class Sums: @unchecked Sendable {
    private let lock = NSLock()
    private var sums: [Int64: Int64] = [:]
    func add(_ more: [Int64: Int64]) {
        lock.lock()
        defer { lock.unlock() }
        for (k, v) in more { sums[k, default: 0] += v }
    }
    var all: [Int64: Int64] { lock.lock(); defer { lock.unlock() }; return sums }
}

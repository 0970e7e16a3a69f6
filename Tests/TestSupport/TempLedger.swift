import Foundation
import Ledger
import MeterCore

/// A ledger on a fresh file in a private temp directory, removed by `cleanup()`.
public struct TempLedger {
    public let dir: URL
    public let path: String
    public let ledger: Ledger

    public init(thresholds: Thresholds = .default) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ledgertest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        path = dir.appendingPathComponent("ledger.db").path
        ledger = try Ledger(path: path, thresholds: thresholds)
    }

    public func reopen(thresholds: Thresholds = .default) throws -> Ledger {
        try Ledger(path: path, thresholds: thresholds)
    }

    public func cleanup() {
        try? FileManager.default.removeItem(at: dir)
    }
}

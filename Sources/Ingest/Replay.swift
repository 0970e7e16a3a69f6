import CDRSource
import CDRParser
import Ledger
import MeterCore

/// Totals of one replay, as `creditmeter replay --json` prints them.
public struct ReplaySummary: Sendable, Codable, Equatable {
    /// One client's share of what a replay charged.
    public struct ClientTotal: Sendable, Codable, Equatable {
        public var cdrs: Int
        public var cost: String
    }

    public var files: [String] = []
    public var dryRun = false
    public var read = 0
    public var charged = 0
    public var notBillable = 0
    public var filtered = 0
    public var duplicates = 0
    public var quarantined = 0
    public var quarantinedByReason: [String: Int] = [:]
    public var clients: [String: ClientTotal] = [:]
    /// Sum of the cost of everything charged, as an amount string.
    public var cost = "0"

    enum CodingKeys: String, CodingKey {
        case files, read, charged, filtered, duplicates, quarantined, clients, cost
        case dryRun = "dry_run"
        case notBillable = "not_billable"
        case quarantinedByReason = "quarantined_by_reason"
    }

    public init() {}
}

/// Feeds whole files through `Metering` into the ledger in batches, each batch one transaction.
public struct Replayer {
    public var batchSize: Int
    public init(batchSize: Int = 5_000) { self.batchSize = batchSize }

    /// Progress callback: (file, bytes done, bytes total, lines read so far).
    public typealias Progress = (String, Int64, Int64, Int) -> Void

    public func replay(
        files: [String], source: SourceSettings, metering: Metering, ledger: Ledger,
        dryRun: Bool, now: Int64, progress: Progress? = nil
    ) throws -> ReplaySummary {
        var summary = ReplaySummary()
        summary.dryRun = dryRun
        summary.files = files
        var costByClient: [Int64: (cdrs: Int, cost: Int64)] = [:]
        let run = {
            for file in files {
                try replayOne(file: file, source: source, metering: metering, ledger: ledger, now: now,
                              summary: &summary, costByClient: &costByClient, progress: progress)
            }
        }
        if dryRun {
            try ledger.dryRun { try run() }
        } else {
            try run()
        }
        let names = Dictionary(uniqueKeysWithValues: metering.directory.values.map { ($0.clientID, $0.username) })
        var total: Int64 = 0
        for (id, t) in costByClient {
            total += t.cost
            summary.clients[names[id] ?? "#\(id)"] = .init(cdrs: t.cdrs, cost: Money.format(t.cost))
        }
        summary.cost = Money.format(total)
        return summary
    }

    private func replayOne(
        file: String, source: SourceSettings, metering: Metering, ledger: Ledger, now: Int64,
        summary: inout ReplaySummary, costByClient: inout [Int64: (cdrs: Int, cost: Int64)],
        progress: Progress?
    ) throws {
        let reader = try LineReader(path: file)
        let size = reader.fileSize
        var charges: [Charge] = []
        var quarantined: [QuarantineEntry] = []
        charges.reserveCapacity(batchSize)

        func flush() throws {
            guard !charges.isEmpty || !quarantined.isEmpty else { return }
            let outcome = try ledger.commit(
                ChargeBatch(source: source.name, position: nil, charges: charges, quarantined: quarantined), now: now)
            summary.charged += outcome.charged
            summary.duplicates += outcome.duplicates
            // Quarantine counts what this replay found bad, also when an earlier run already kept it.
            for q in quarantined { summary.quarantinedByReason[q.reason, default: 0] += 1 }
            summary.quarantined += quarantined.count
            // Only newly charged CDRs count toward the per-client totals; duplicates cost nothing.
            for (id, cost) in outcome.costByClient { costByClient[id, default: (0, 0)].cost += cost }
            for (id, n) in outcome.countByClient { costByClient[id, default: (0, 0)].cdrs += n }
            charges.removeAll(keepingCapacity: true)
            quarantined.removeAll(keepingCapacity: true)
            progress?(file, reader.offset, size, summary.read)
        }

        _ = try reader.forEachLine(includePartialLastLine: true) { line, offset, number in
            var line = line
            if let last = line.last, last == 0x0D { line = UnsafeBufferPointer(rebasing: line.dropLast()) }
            if line.isEmpty { return true }
            summary.read += 1
            switch metering.classify(line, offset: offset, lineNumber: number, source: source) {
            case .charge(let c): charges.append(c)
            case .notBillable: summary.notBillable += 1
            case .filtered: summary.filtered += 1
            case .quarantine(let q): quarantined.append(q)
            }
            if charges.count + quarantined.count >= batchSize { try flush() }
            return true
        }
        try flush()
    }
}

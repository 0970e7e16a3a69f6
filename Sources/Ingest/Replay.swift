import Foundation
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
///
/// Reading and rating run on the calling thread while a second thread commits the previous batch, so
/// the parsing (a fifth or so of the work) overlaps SQLite's. Batches are committed one at a time, in
/// file order, exactly as they would be on one thread.
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

        let pipe = CommitPipe()
        let committer = Thread { [source] in
            do {
                try ledger.withBulkIngest {
                    // A dry run's transaction belongs to the thread that opened it: this one.
                    if dryRun {
                        try ledger.dryRun { try pipe.drain(into: ledger, source: source.name, now: now) }
                    } else {
                        try pipe.drain(into: ledger, source: source.name, now: now)
                    }
                }
                pipe.finish(nil)
            } catch {
                pipe.finish(error)
            }
        }
        committer.start()
        var readFailure: (any Error)?
        do {
            for file in files {
                try replayOne(file: file, source: source, metering: metering, pipe: pipe,
                              summary: &summary, progress: progress)
            }
        } catch {
            readFailure = error
        }
        // Whatever stopped the reading, the batch in flight is committed (or fails) before returning.
        let committed = pipe.close()
        if let failure = committed.failure ?? readFailure { throw failure }

        summary.charged = committed.charged
        summary.duplicates = committed.duplicates
        // The directory is keyed by account code: a client with several codes appears once per code.
        let names = Dictionary(metering.directory.values.map { ($0.clientID, $0.username) }, uniquingKeysWith: { a, _ in a })
        // Each client's total is checked as it is summed (the ledger refuses one past Int64); the sum across
        // clients is kept wide instead, so a replay of absurd but accepted costs reports rather than traps.
        var total: Int128 = 0
        for (id, t) in committed.byClient {
            total += Int128(t.cost)
            summary.clients[names[id] ?? "#\(id)"] = .init(cdrs: t.cdrs, cost: Money.format(t.cost))
        }
        summary.cost = Money.format(total)
        return summary
    }

    private func replayOne(
        file: String, source: SourceSettings, metering: Metering, pipe: CommitPipe,
        summary: inout ReplaySummary, progress: Progress?
    ) throws {
        // A smaller chunk than the tailer's: read-ahead is cheap here, and the replay has a memory budget.
        let reader = try LineReader(path: file, chunkSize: 256 << 10)
        let size = reader.fileSize
        var charges: [Charge] = []
        var quarantined: [QuarantineEntry] = []
        charges.reserveCapacity(batchSize)

        // Per-line counts stay in locals: `summary` is inout, and every access to it from the line
        // closure would be checked for exclusivity at run time.
        var read = 0, notBillable = 0, filtered = 0
        func flush() throws {
            guard !charges.isEmpty || !quarantined.isEmpty else { return }
            // Quarantine counts what this replay found bad, also when an earlier run already kept it.
            for q in quarantined { summary.quarantinedByReason[q.reason, default: 0] += 1 }
            summary.quarantined += quarantined.count
            try pipe.put(charges: charges, quarantined: quarantined)
            charges = []
            charges.reserveCapacity(batchSize)
            quarantined = []
            progress?(file, reader.offset, size, summary.read + read)
        }

        _ = try reader.forEachLine(includePartialLastLine: true, maxLineBytes: source.maxLineBytes) { line, offset, number in
            var line = line
            if let last = line.last, last == 0x0D { line = UnsafeBufferPointer(rebasing: line.dropLast()) }
            if line.isEmpty { return true }
            read += 1
            switch metering.classify(line, offset: offset, lineNumber: number, source: source) {
            case .charge(let c): charges.append(c)
            case .notBillable: notBillable += 1
            case .filtered: filtered += 1
            case .quarantine(let q): quarantined.append(q)
            }
            if charges.count + quarantined.count >= batchSize { try flush() }
            return true
        } longLine: { long in
            read += 1
            quarantined.append(Metering.tooLong(long, source: source))
            if charges.count + quarantined.count >= batchSize { try flush() }
            return true
        }
        try flush()
        summary.read += read
        summary.notBillable += notBillable
        summary.filtered += filtered
    }
}

/// Hands batches from the reading thread to the committing thread and the totals back.
///
/// At most one batch waits while another commits, so a replay holds two batches at a time.
/// `@unchecked Sendable`: every field is read and written under `condition`.
private final class CommitPipe: @unchecked Sendable {
    struct Totals {
        var charged = 0
        var duplicates = 0
        /// Only newly charged CDRs count toward the per-client totals; duplicates cost nothing.
        var byClient: [Int64: (cdrs: Int, cost: Int64)] = [:]
        var failure: (any Error)?
    }

    private let condition = NSCondition()
    private var next: (charges: [Charge], quarantined: [QuarantineEntry])?
    private var busy = false
    private var closed = false
    private var done = false
    private var totals = Totals()

    /// Queues a batch once the previous one has been committed; throws the committer's error instead
    /// when it has stopped, so the reader stops too.
    func put(charges: [Charge], quarantined: [QuarantineEntry]) throws {
        condition.lock()
        defer { condition.unlock() }
        while (next != nil || busy) && !done { condition.wait() }
        if done { throw totals.failure ?? CancellationError() }
        next = (charges, quarantined)
        condition.broadcast()
    }

    /// No more batches: waits for the committer to finish and returns what it did.
    func close() -> Totals {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while !done { condition.wait() }
        return totals
    }

    /// The committer's loop: commits every batch as it arrives until the reader closes the pipe.
    func drain(into ledger: Ledger, source: String, now: Int64) throws {
        while let batch = take() {
            let outcome = try ledger.commit(
                ChargeBatch(source: source, position: nil, charges: batch.charges, quarantined: batch.quarantined), now: now)
            record(outcome)
        }
    }

    func finish(_ failure: (any Error)?) {
        condition.lock()
        defer { condition.unlock() }
        totals.failure = failure
        done = true
        busy = false
        condition.broadcast()
    }

    private func take() -> (charges: [Charge], quarantined: [QuarantineEntry])? {
        condition.lock()
        defer { condition.unlock() }
        busy = false
        condition.broadcast()
        while next == nil && !closed { condition.wait() }
        guard let batch = next else { return nil }
        next = nil
        busy = true
        return batch
    }

    private func record(_ outcome: BatchOutcome) {
        condition.lock()
        defer { condition.unlock() }
        totals.charged += outcome.charged
        totals.duplicates += outcome.duplicates
        for (id, cost) in outcome.costByClient {
            // Saturating: a replay's per-client figure is a report; the ledger's Used is checked where it is stored.
            let (sum, overflow) = totals.byClient[id, default: (0, 0)].cost.addingReportingOverflow(cost)
            totals.byClient[id, default: (0, 0)].cost = overflow ? Int64.max : sum
        }
        for (id, n) in outcome.countByClient { totals.byClient[id, default: (0, 0)].cdrs += n }
    }
}

import Foundation
import CDRSource
import CDRParser
import Ledger
import MeterCore

/// Totals of one replay, as `creditmeter replay --json` prints them. The line counts (`read`,
/// `charged`, …) are an `IngestCounts`, the daemon's per-source counts, read through as properties.
@dynamicMemberLookup
public struct ReplaySummary: Sendable, Equatable {
    /// One client's share of what a replay charged.
    public struct ClientTotal: Sendable, Equatable {
        public var cdrs: Int
        public var cost: String
    }

    public var files: [String] = []
    public var dryRun = false
    public var counts = IngestCounts()
    public var clients: [String: ClientTotal] = [:]
    /// Sum of the cost of everything charged, as an amount string.
    public var cost = "0"

    public subscript<T>(dynamicMember path: KeyPath<IngestCounts, T>) -> T { counts[keyPath: path] }

    public init() {}

    /// Fills `clients` and `cost` from what was newly charged, by client id.
    mutating func total(_ byClient: [Int64: (cdrs: Int, cost: Int64)], directory: [String: AccountOwner]) {
        // The directory is keyed by account code: a client with several codes appears once per code.
        let names = Dictionary(directory.values.map { ($0.clientID, $0.username) }, uniquingKeysWith: { a, _ in a })
        // Each client's total is checked as it is summed (the ledger refuses one past Int64); the sum across
        // clients is kept wide instead, so a replay of absurd but accepted costs reports rather than traps.
        var sum: Int128 = 0
        for (id, t) in byClient {
            sum += Int128(t.cost)
            clients[names[id] ?? "#\(id)"] = .init(cdrs: t.cdrs, cost: Money.format(t.cost))
        }
        cost = Money.format(sum)
    }
}

/// Feeds whole files through `Metering` into the ledger in batches, each batch one transaction.
///
/// Reading and rating run on the calling thread while other threads commit the batches already read, so
/// the parsing overlaps the store's work. On SQLite one thread commits them one at a time, in file order;
/// on a store with several writers (PostgreSQL) `writers` threads, each on its own connection, commit
/// batches side by side, and the store's uniqueness of identity makes a CDR repeated in two batches
/// committed at once a duplicate all the same.
public struct Replayer {
    /// Lines per batch; nil takes the store's size: its `bulkGrouping`'s batch lines on a store that
    /// groups batches into transactions (SQLite), else 5,000, each batch one transaction.
    public var batchSize: Int?
    /// How many batches may commit at once, on a store that has more than one writer (PostgreSQL); SQLite
    /// commits one at a time whatever this says, and so does a dry run (its transaction is one connection's).
    public var writers: Int
    public init(batchSize: Int? = nil, writers: Int = 1) {
        self.batchSize = batchSize
        self.writers = max(1, writers)
    }

    /// Progress callback: (file, bytes done, bytes total, lines read so far).
    public typealias Progress = (String, Int64, Int64, Int) -> Void

    public func replay(
        files: [String], source: SourceSettings, metering: Metering, ledger: any MeteringStore,
        dryRun: Bool, now: Int64, progress: Progress? = nil
    ) throws -> ReplaySummary {
        var summary = ReplaySummary()
        summary.dryRun = dryRun
        summary.files = files

        let lines = batchSize ?? ledger.bulkGrouping?.batchLines ?? 5_000
        let stores = [ledger] + (dryRun ? [] : try ledger.moreWriters(writers - 1))
        let pipe = CommitPipe(committers: stores.count)
        for store in stores {
            let committer = Thread {
                do {
                    try store.withBulkIngest {
                        // A dry run's transaction belongs to the thread that opened it: this one.
                        if dryRun {
                            try store.dryRun { try pipe.drain(into: store, now: now) }
                        } else {
                            try pipe.drain(into: store, now: now)
                        }
                    }
                    pipe.finish(nil)
                } catch {
                    pipe.finish(error)
                }
            }
            committer.start()
        }
        var readFailure: (any Error)?
        do {
            for file in files {
                try replayOne(file: file, source: source, metering: metering, pipe: pipe, batchSize: lines,
                              summary: &summary, progress: progress)
            }
        } catch {
            readFailure = error
        }
        // Whatever stopped the reading, the batch in flight is committed (or fails) before returning.
        let committed = pipe.close()
        if let failure = committed.failure ?? readFailure { throw failure }

        summary.counts.charged = committed.charged
        summary.counts.duplicates = committed.duplicates
        summary.total(committed.byClient, directory: metering.directory)
        return summary
    }

    private func replayOne(
        file: String, source: SourceSettings, metering: Metering, pipe: CommitPipe, batchSize: Int,
        summary: inout ReplaySummary, progress: Progress?
    ) throws {
        // A smaller chunk than the tailer's: read-ahead is cheap here, and the replay has a memory budget.
        let reader = try LineReader(path: file, chunkSize: 256 << 10)
        let size = reader.fileSize
        // The batch stays a local: `summary` is inout, and every access to it from the line closure
        // would be checked for exclusivity at run time.
        var batch = LineBatch(metering: metering, source: source, capacity: batchSize)
        var read = summary.read
        func flush() throws {
            guard batch.pending > 0 else { return }
            try pipe.put(batch.batch(position: nil))
            read += batch.counts.read
            summary.counts.add(lines: batch.counts)
            batch.clear()
            progress?(file, reader.offset, size, read)
        }
        _ = try reader.forEachLine(includePartialLastLine: true, maxLineBytes: source.maxLineBytes) { line, offset, number in
            batch.add(line, offset: offset, number: number)
            if batch.pending >= batchSize { try flush() }
            return true
        } longLine: { long in
            batch.add(long)
            if batch.pending >= batchSize { try flush() }
            return true
        }
        try flush()
        // Lines that never reached a batch (not billable, filtered) after the last flush.
        summary.counts.add(lines: batch.counts)
    }
}

/// Hands batches from the reading thread to the committing threads and the totals back.
///
/// One batch waits while each committer commits one, so a replay holds one batch more than it has
/// committers (two with SQLite's single writer). A committer's failure stops the others after the batch
/// they hold and the reader at its next batch; what was committed before (whole batches, or on SQLite whole
/// groups of batches) stays committed, as a kill would leave it, and a replay run again charges only the rest.
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
    private var next: ChargeBatch?
    private var closed = false
    /// Committer threads that have not finished.
    private var running: Int
    private var totals = Totals()

    init(committers: Int) { running = committers }

    /// Queues a batch once a committer has taken the previous one; throws a committer's error instead
    /// when one has stopped, so the reader stops too.
    func put(_ batch: ChargeBatch) throws {
        condition.lock()
        defer { condition.unlock() }
        while next != nil && totals.failure == nil && running > 0 { condition.wait() }
        if totals.failure != nil || running == 0 { throw totals.failure ?? CancellationError() }
        next = batch
        condition.broadcast()
    }

    /// No more batches: waits for every committer to finish and returns what they did.
    func close() -> Totals {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        return totals
    }

    /// A committer's loop: commits batches as they arrive until the reader closes the pipe or another
    /// committer fails.
    ///
    /// On a store that groups a bulk ingest's batches (`bulkGrouping`), batches are committed a group
    /// to a transaction; the totals count a group once it has committed.
    func drain(into ledger: any MeteringStore, now: Int64) throws {
        guard let grouping = ledger.bulkGrouping else {
            while let batch = take() { record(try ledger.commit(batch, now: now)) }
            return
        }
        var more = true
        var clients = Set<Int64>()
        while more {
            var outcomes: [BatchOutcome] = []
            clients.removeAll(keepingCapacity: true)
            try ledger.inOneTransaction {
                var rows = 0
                while rows < grouping.rows, rows < grouping.minimumRows || clients.count <= grouping.clients {
                    guard let batch = take() else {
                        more = false
                        return
                    }
                    rows += batch.charges.count + batch.quarantined.count
                    let outcome = try ledger.commit(batch, now: now)
                    clients.formUnion(outcome.countByClient.keys)
                    outcomes.append(outcome)
                }
            }
            for outcome in outcomes { record(outcome) }
        }
    }

    func finish(_ failure: (any Error)?) {
        condition.lock()
        defer { condition.unlock() }
        if totals.failure == nil, let failure { totals.failure = failure }
        running -= 1
        condition.broadcast()
    }

    private func take() -> ChargeBatch? {
        condition.lock()
        defer { condition.unlock() }
        while next == nil && !closed && totals.failure == nil { condition.wait() }
        guard totals.failure == nil, let batch = next else { return nil }
        next = nil
        condition.broadcast()
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

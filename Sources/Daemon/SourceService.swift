import API
import CDRParser
import CDRSource
import Dispatch
import Foundation
import Ingest
import Ledger
import Logging
import MeterConfig
import MeterCore
import ServiceLifecycle

/// Tails one `[[source]]` and charges what it reads: each batch's charges, quarantine entries, level
/// changes and the source's new read position commit in one store transaction, so a crash at any
/// moment re-reads exactly the lines whose charges were not committed. While the store cannot be
/// reached the source waits at its last committed position and retries with backoff.
public final class SourceService: Service, @unchecked Sendable {
    // @unchecked: everything mutable below is touched only on `queue`, one batch at a time.
    private let name: String
    private let runtime: Runtime
    private let ledger: any AgentStore
    private let queue: DispatchQueue
    private let watcher: ChangeWatcher
    private let batchSize: Int
    private var path: String
    private var startAt: StartAt
    private var tailer: Tailer
    private var lastCommitted: Checkpoint?
    /// Size of `lastCommitted`'s file when last looked at, so a file given up can be counted in bytes.
    private var lastCommittedSize: Int64?
    private var settings: SourceSettings
    private var metering: Metering
    private var generation: Int
    private var dataVersion: Int64 = -1
    private var logLimiter = RateLimiter(every: .seconds(10))
    private var failures = 0

    public init(source: SourceConfig, index: Int, runtime: Runtime, ledger: any AgentStore, batchSize: Int = 5_000) throws {
        name = source.name
        path = source.path
        startAt = source.startAt
        self.runtime = runtime
        self.ledger = ledger
        self.batchSize = batchSize
        queue = DispatchQueue(label: "creditmeter.source.\(source.name)")
        let g = runtime.generation
        generation = g.number
        settings = try Assembly.settings(for: source, index: index)
        metering = Metering(accountField: g.config.accounts.cdrField, directory: [:], decks: g.decks,
                            maxBillsec: g.config.rating.maxBillsec)
        lastCommitted = try ledger.sourcePosition(name: source.name)
        tailer = Tailer(path: source.path, checkpoint: lastCommitted, startAt: startAt)
        watcher = try ChangeWatcher(paths: [source.path])
        // A never-seen file that starts at its end must have that position committed now: a crash
        // before the first batch would otherwise move "the end" past lines written meanwhile.
        if lastCommitted == nil, let cp = try tailer.checkpoint {
            _ = try ledger.commit(ChargeBatch(source: name, position: cp, charges: [], quarantined: []), now: Self.now())
            tailer.committed(cp)
            lastCommitted = cp
        }
        MeterMetrics.declare(source: source.name)
        runtime.logger.info("source opened", metadata: [
            "source": "\(name)", "path": "\(path)", "offset": "\(lastCommitted?.offset ?? 0)",
        ])
    }

    public func run() async throws {
        defer { watcher.close() }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let next = await onQueue { self.step() }
            if next == .more { continue }
            // Idle: sleep until inotify says the directory changed, or the periodic stat is due.
            // After a failure, back off (1 s doubling to 30 s) whatever inotify says: a writer that
            // keeps appending must not turn the retries into a busy loop while, say, descriptors
            // are exhausted (libdispatch's pool monitor traps when it cannot open /proc/<tid>/stat,
            // which it does once a second while work is queued).
            if case .failing(let n) = next {
                let delay = Duration.seconds(min(30, 1 << min(n - 1, 5)))
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
            } else {
                _ = await cancelWhenGracefulShutdown { await self.watcher.wait(timeout: .seconds(1)) }
            }
        }
        runtime.logger.info("source stopped", metadata: ["source": "\(name)"])
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { cont in queue.async { cont.resume(returning: body()) } }
    }

    enum Next: Equatable, Sendable {
        case more, idle
        case failing(Int)
    }

    /// Reads and commits one batch, and says whether more lines are waiting right now.
    private func step() -> Next {
        do {
            try refresh()
            var lines = LineBatch(metering: metering, source: settings, gathersCalls: true,
                                  capacity: min(batchSize, 1024))
            let batch = try tailer.read(maxLines: batchSize, maxLineBytes: settings.maxLineBytes) { line, offset, number in
                lines.add(line, offset: offset, number: number)
            } longLine: { long in
                lines.add(long)
            }
            var givenUp: [Int64] = []
            for event in batch.events {
                if case .oldFileLost(_, _, let unread) = event {
                    runtime.logger.error("\(event)", metadata: ["source": "\(name)"])
                    givenUp.append(unread ?? 0)
                } else {
                    runtime.logger.notice("\(event)", metadata: ["source": "\(name)"])
                }
            }
            var outcome: BatchOutcome?
            if let cp = batch.checkpoint, batch.lines > 0 || cp != lastCommitted {
                outcome = try ledger.commit(lines.batch(position: cp), now: Self.now())
                tailer.committed(cp)
                lastCommitted = cp
                if let outcome, outcome.charged > 0 || !outcome.levelChanges.isEmpty {
                    runtime.committed(CommitInfo(source: name, charged: outcome.charged,
                                                 levelChanges: outcome.levelChanges.count))
                }
            }
            // Counted even when nothing was committed (no file at the path yet): the event is not repeated.
            if !givenUp.isEmpty { recordGivenUp(givenUp) }
            if failures > 0 {
                runtime.logger.notice("source recovered: charging again", metadata: ["source": "\(name)"])
                failures = 0
            }
            report(batch: batch, outcome: outcome, lines: lines)
            return batch.more ? .more : .idle
        } catch {
            failures += 1
            runtime.logger.error("source cannot charge: \(error); position kept, will retry", metadata: ["source": "\(name)"])
            runtime.update(source: name) { $0.failing = true; $0.failure = "\(error)"; $0.heartbeat = .now }
            MeterMetrics.storeFailure(source: name)
            // The tailer may have moved past lines whose charges did not commit: go back to the last
            // commit. Rewinding keeps its files open, so a rotated-away file is not searched for by
            // name (which fails while descriptors are short) nor lost if it was deleted meanwhile.
            if !tailer.rewind(to: lastCommitted) {
                tailer = Tailer(path: path, checkpoint: lastCommitted, startAt: startAt, lastSize: lastCommittedSize)
            }
            return .failing(failures)
        }
    }

    private func report(batch: TailBatch, outcome: BatchOutcome?, lines: LineBatch) {
        let quarantined = lines.quarantined
        if let outcome {
            for change in outcome.levelChanges {
                runtime.logger.info("level \(change.from.rawValue) → \(change.to.rawValue)", metadata: [
                    "client": "\(change.username)", "meter": "\(change.meter.display)",
                ])
            }
        }
        if let first = quarantined.first, logLimiter.allow() {
            runtime.logger.warning("quarantined: \(first.reason): \(first.message)", metadata: [
                "source": "\(name)", "line": "\(first.line)", "in_batch": "\(quarantined.count)",
            ])
        }
        let status = tailer.status
        if let cp = lastCommitted, status.inode == cp.inode { lastCommittedSize = status.size }
        MeterMetrics.batch(source: name, read: lines.counts.read, charged: outcome?.charged ?? 0,
                           quarantined: quarantined.count,
                           microcredits: Int64(clamping: outcome?.totalCost ?? 0))
        MeterMetrics.sourceLag(source: name, bytes: status.lagBytes)
        runtime.update(source: name) { c in
            c.lines.add(lines: lines.counts)
            if let outcome { c.lines.record(outcome) }
            c.lagBytes = status.lagBytes
            c.heartbeat = .now
            c.failing = false
        }
    }

    /// Picks up a reloaded config and clients changed by other processes before each batch. A store that
    /// cannot say whether anything changed is a failure like a failed commit: the source waits.
    private func refresh() throws {
        let g = runtime.generation
        if g.number != generation {
            generation = g.number
            metering.decks = g.decks
            metering.accountField = g.config.accounts.cdrField
            metering.maxBillsec = g.config.rating.maxBillsec
            if let i = g.config.sources.firstIndex(where: { $0.name == name }),
               let s = try? Assembly.settings(for: g.config.sources[i], index: i) {
                settings = s
            }
        }
        let v = try ledger.dataVersion()
        if v != dataVersion {
            metering.directory = try ledger.accountDirectory()
            dataVersion = v
        }
    }

    /// Files given up in the batch just committed: counted in the store (for `status`), the metrics and the log.
    private func recordGivenUp(_ unread: [Int64]) {
        let bytes = unread.reduce(0, +)
        MeterMetrics.givenUp(source: name, files: unread.count, bytes: bytes)
        runtime.update(source: name) { $0.givenUpFiles += unread.count; $0.givenUpBytes += bytes }
        do {
            try ledger.recordGivenUp(source: name, files: unread.count, bytes: bytes, now: Self.now())
        } catch {
            // The charges are committed; only the tally for `status` is missing, and the error line says it.
            runtime.logger.error("cannot count the given-up file in the store: \(error)", metadata: ["source": "\(name)"])
        }
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }
}

/// Lets one log line through per interval, so a flood of bad CDRs cannot flood the journal.
struct RateLimiter {
    let every: Duration
    private var last: ContinuousClock.Instant?
    init(every: Duration) { self.every = every }
    mutating func allow() -> Bool {
        let now = ContinuousClock.now
        if let last, now - last < every { return false }
        last = now
        return true
    }
}

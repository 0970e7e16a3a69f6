import CDRParser
import Dispatch
import Foundation
import Ingest
import Ledger
import Logging
import MeterConfig
import MeterCore
import Rater
import Synchronization

/// The rating inputs of the daemon's current generation, so posted CDRs follow SIGHUP reloads.
public struct ReceiverRating: Sendable {
    /// Changes when a reload brings new inputs; the account index is rebuilt only then.
    public var generation: Int
    public var accountField: CDRField
    public var decks: [String: RateDeck]
    public var maxBillsec: Int64

    public init(generation: Int, accountField: CDRField, decks: [String: RateDeck], maxBillsec: Int64) {
        self.generation = generation
        self.accountField = accountField
        self.decks = decks
        self.maxBillsec = maxBillsec
    }
}

/// Group commit for posted CDRs: every request waiting when the previous transaction ends goes
/// into the next one, so sixteen posters cost one fsync, not sixteen. Each request resumes only
/// once the transaction holding its CDRs has committed.
///
/// The transactions run one at a time on a dispatch queue of their own: SQLite blocks, and the
/// cooperative pool that answers authorize must not wait on an fsync.
final class CDRCommitter: Sendable {
    typealias Rating = ReceiverRating

    /// What committed transactions did, for the hooks that release holds and wake delivery; several
    /// transactions are summed into one while the hook is still busy with an earlier one.
    struct Committed: Sendable {
        var charged = 0
        var levelChanges = 0

        mutating func add(_ o: Committed) {
            charged += o.charged
            levelChanges += o.levelChanges
        }
    }

    typealias Commit = @Sendable (ChargeBatch) throws(LedgerError) -> BatchOutcome

    private struct Waiting {
        var posted: Posted
        var resume: CheckedContinuation<Result<Received, LedgerError>, Never>
    }

    private struct State {
        var waiting: [Waiting] = []
        var draining = false
    }

    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "creditmeter.api.cdr-commit")
    private let ledger: any AgentStore
    private let commitBatch: Commit
    private let rating: @Sendable () -> Rating
    private let committed: @Sendable (Committed) -> Void
    private let logger: Logger
    /// Touched only on `queue`.
    private nonisolated(unsafe) var metering: Metering
    private nonisolated(unsafe) var dataVersion: Int64 = -1
    private nonisolated(unsafe) var generation: Int
    private let transactionCount = Atomic<Int>(0)

    /// - Parameter commit: the transaction; the ledger's own `commit` unless a test stands in for a failing store.
    init(ledger: any AgentStore, rating: @escaping @Sendable () -> Rating, logger: Logger,
         commit: Commit? = nil, committed: @escaping @Sendable (Committed) -> Void = { _ in }) {
        self.ledger = ledger
        if let commit {
            commitBatch = commit
        } else {
            commitBatch = { (b: ChargeBatch) throws(LedgerError) -> BatchOutcome in
                try ledger.commit(b, now: Int64(Date().timeIntervalSince1970))
            }
        }
        self.rating = rating
        self.committed = committed
        self.logger = logger
        let r = rating()
        metering = Metering(accountField: r.accountField, directory: [:], decks: r.decks, maxBillsec: r.maxBillsec)
        generation = r.generation
    }

    private let hookQueue = DispatchQueue(label: "creditmeter.api.cdr-committed")
    /// What the hook has not seen yet, and whether a run of it is scheduled.
    private let unreported = Mutex<(pending: Committed, scheduled: Bool)>((Committed(), false))

    /// Runs the `committed` hook off the commit queue, after the answers went out: the hook reloads
    /// every client's balance, which must not stretch each transaction, and transactions that end
    /// while it runs are reported to it together, once.
    private func notify(_ done: Committed) {
        let schedule = unreported.withLock { u -> Bool in
            u.pending.add(done)
            if u.scheduled { return false }
            u.scheduled = true
            return true
        }
        guard schedule else { return }
        hookQueue.async {
            while true {
                let next = self.unreported.withLock { u -> Committed? in
                    guard u.pending.charged > 0 || u.pending.levelChanges > 0 else {
                        u.scheduled = false
                        return nil
                    }
                    defer { u.pending = Committed() }
                    return u.pending
                }
                guard let next else { return }
                self.committed(next)
            }
        }
    }

    /// Requests waiting for the next transaction.
    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// Transactions committed or attempted so far.
    var transactions: Int { transactionCount.load(ordering: .relaxed) }

    /// Rates and commits `posted` with whatever else is waiting; returns once that transaction ended.
    func commit(_ posted: Posted) async -> Result<Received, LedgerError> {
        await withCheckedContinuation { resume in
            let start = state.withLock { s -> Bool in
                s.waiting.append(Waiting(posted: posted, resume: resume))
                if s.draining { return false }
                s.draining = true
                return true
            }
            if start { queue.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let group = state.withLock { s -> [Waiting] in
                let g = s.waiting
                s.waiting = []
                if g.isEmpty { s.draining = false }
                return g
            }
            if group.isEmpty { return }
            refresh()
            let rated = group.map { rate($0.posted) }
            switch transaction(rated) {
            case .success(let done):
                for (w, r) in zip(group, rated) { w.resume.resume(returning: .success(r.received)) }
                notify(done)
            case .failure(let e) where group.count > 1:
                // One request's CDR can fail a whole transaction (its client purged meanwhile): alone,
                // each of the others still commits, and only that one is asked to retry.
                logger.warning("cdr receiver: a grouped commit failed (\(e)); committing its \(group.count) requests one by one")
                for (w, r) in zip(group, rated) {
                    let alone = transaction([r])
                    w.resume.resume(returning: alone.map { _ in r.received })
                    if case .success(let done) = alone { notify(done) }
                }
            case .failure(let e):
                group[0].resume.resume(returning: .failure(e))
            }
        }
    }

    /// One request's CDRs, rated.
    private struct Rated {
        var source: String
        var charges: [Charge] = []
        var quarantined: [QuarantineEntry] = []
        var callIDs: [HoldKey] = []
        var received = Received()
    }

    private func rate(_ posted: Posted) -> Rated {
        var r = Rated(source: posted.settings.name)
        r.received.bLegs = posted.bLegs
        let settings = posted.settings
        for item in posted.items {
            r.received.cdrs += 1
            switch item {
            case .bad(let q):
                r.quarantined.append(q)
                r.received.quarantined += 1
            case .cdr(let cdr, let raw, let offset, let line):
                let outcome = raw.withUnsafeBufferPointer {
                    metering.classify(cdr, raw: $0, offset: offset, lineNumber: line, source: settings)
                }
                switch outcome {
                case .charge(let c):
                    r.charges.append(c)
                    r.received.charges += 1
                    if let id = cdr.value(.uuid) ?? cdr.value(.uniqueid), !id.isEmpty {
                        r.callIDs.append(HoldKey(clientID: c.clientID, call: id))
                    }
                case .notBillable, .filtered: r.received.notBillable += 1
                case .quarantine(let q):
                    r.quarantined.append(q)
                    r.received.quarantined += 1
                }
            }
        }
        r.received.cdrs += posted.bLegs
        return r
    }

    private func transaction(_ rated: [Rated]) -> Result<Committed, LedgerError> {
        transactionCount.add(1, ordering: .relaxed)
        let batch = ChargeBatch(source: "http", position: nil, charges: rated.flatMap(\.charges),
                                quarantined: rated.flatMap(\.quarantined), releases: rated.flatMap(\.callIDs))
        do throws(LedgerError) {
            let outcome = try commitBatch(batch)
            var bySource: [String: Received] = [:]
            for r in rated { bySource[r.source, default: Received()].add(r.received) }
            for (source, r) in bySource {
                // Exact when one source fills the transaction (the usual case); with several, each is
                // credited with what it handed in, since the ledger's outcome is not split by source.
                let one = bySource.count == 1
                MeterMetrics.batch(source: source, read: r.cdrs, charged: one ? outcome.charged : r.charges,
                                   quarantined: r.quarantined, microcredits: one ? Int64(clamping: outcome.totalCost) : 0)
            }
            return .success(Committed(charged: outcome.charged, levelChanges: outcome.levelChanges.count))
        } catch {
            MeterMetrics.storeFailure(source: "http")
            return .failure(error)
        }
    }

    /// Picks up decks reloaded by SIGHUP and clients changed by any connection.
    private func refresh() {
        let r = rating()
        if r.generation != generation {
            generation = r.generation
            metering.decks = r.decks
            metering.accountField = r.accountField
            metering.maxBillsec = r.maxBillsec
        }
        if let v = try? ledger.dataVersion(), v != dataVersion, let dir = try? ledger.accountDirectory() {
            metering.directory = dir
            dataVersion = v
        }
    }
}

import API
import CDRParser
import Foundation
import Ingest
import Ledger
import Logging
import MeterConfig
import Rater
import Synchronization

/// What the running daemon was configured with; SIGHUP swaps in a new generation atomically.
public struct Generation: Sendable {
    public var number: Int
    public var config: Config
    public var decks: [String: RateDeck]
}

/// Shared, thread-safe state of one daemon: the current generation and per-source counters.
public final class Runtime: Sendable {
    private let current: Mutex<Generation>
    private let counters: Mutex<[String: SourceCounters]>
    public let logger: Logger
    public let notifier: SystemdNotifier

    public init(config: Config, decks: [String: RateDeck], logger: Logger, notifier: SystemdNotifier) {
        current = Mutex(Generation(number: 1, config: config, decks: decks))
        counters = Mutex([:])
        self.logger = logger
        self.notifier = notifier
    }

    public var generation: Generation { current.withLock { $0 } }

    /// Validates a new config and its decks fully before swapping; the running generation stays on failure.
    public func reload(path: String) throws -> Generation {
        let config = try Config.load(path: path)
        // The same refusals as at start: a reload must not take a config that a restart would refuse.
        let decks = try Preflight.check(config).decks
        return current.withLock { g in
            g = Generation(number: g.number + 1, config: config, decks: decks)
            return g
        }
    }

    public func update(source: String, _ body: (inout SourceCounters) -> Void) {
        counters.withLock { body(&$0[source, default: SourceCounters()]) }
    }

    public var allCounters: [String: SourceCounters] { counters.withLock { $0 } }

    private let commitHooks = Mutex<[@Sendable (CommitInfo) -> Void]>([])

    /// Registers work to run after every committed batch (wake the delivery loop, release reservations).
    public func onCommit(_ hook: @escaping @Sendable (CommitInfo) -> Void) {
        commitHooks.withLock { $0.append(hook) }
    }

    func committed(_ info: CommitInfo) {
        for hook in commitHooks.withLock({ $0 }) { hook(info) }
    }
}

/// What one committed batch did, for the hooks that react to it.
public struct CommitInfo: Sendable {
    public var source: String
    public var charged: Int
    public var levelChanges: Int
}

/// What one source has done since start, for STATUS= lines, the watchdog and `/readyz`. The line
/// counts are the same `IngestCounts` a replay reports, read through as properties.
@dynamicMemberLookup
public struct SourceCounters: Sendable {
    public var lines = IngestCounts()
    public subscript<T>(dynamicMember path: KeyPath<IngestCounts, T>) -> T { lines[keyPath: path] }
    public var lagBytes: Int64 = 0
    /// Rotated-away files given up (none with their identity left) and the bytes known unread in them.
    public var givenUpFiles = 0
    public var givenUpBytes: Int64 = 0
    public var heartbeat = ContinuousClock.now
    public var failing = false
    /// What the last failed batch said, for `/readyz` while `failing`.
    public var failure = ""
}

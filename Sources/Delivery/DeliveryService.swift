import Foundation
import Ledger
import Logging
import MeterConfig
import Outbox
import ServiceLifecycle

/// Delivers the outbox to the configured webhook endpoints until graceful shutdown (SPEC 6).
///
/// It runs on its own threads, never on the Swift cooperative pool: one coordinator thread makes the
/// coalesced `balance.updated` events, queues new events for each endpoint, expires and prunes; one sender
/// thread per endpoint (with its own kept-alive libcurl handle) sends that endpoint's due deliveries, so a
/// slow or dead receiver holds up nobody else. All of it goes through its own store connection and only
/// touches the outbox tables, so delivery never slows CDR ingestion.
///
/// Several agents may share one store (PostgreSQL): a lease thread takes and renews a lease per endpoint
/// and one for the coordinator's work, and only the holder of a lease does that work, so each endpoint is
/// sent to by one agent at a time and balances, fan-out, expiry and pruning run once. An agent that dies
/// stops renewing; another takes over once the lease has expired (`leaseMilliseconds`, noticed within
/// `leaseRenewMilliseconds`). SQLite grants every lease: nothing changes there. Delivery stays at least
/// once across a takeover: an attempt under way when the lease runs out (or whose result could not be
/// recorded) is sent again by the next holder, with the same `webhook-id`.
public final class DeliveryService: Service, Sendable {
    /// Timings and sources of time and randomness; tests shorten them.
    public struct Options: Sendable {
        public var retry: RetryPolicy
        /// How often the coordinator looks for new events (a cheap read); `wake()` cuts the wait short.
        public var pollMilliseconds: Int64
        /// How often dirty balances are turned into `balance.updated` events.
        public var balanceTickMilliseconds: Int64
        /// How often pending deliveries older than `max_age_hours` are swept into the dead letters.
        public var expireTickMilliseconds: Int64
        /// How often delivered events are pruned from the outbox.
        public var pruneTickMilliseconds: Int64
        /// The longest a sender sleeps without looking at its queue (it also notices `outbox retry` this way).
        public var idleMilliseconds: Int64
        /// Unix milliseconds.
        public var clock: @Sendable () -> Int64
        /// A draw in [0, 1) for the backoff jitter.
        public var jitter: @Sendable () -> Double
        /// Told each attempt's result (`delivered`, `retry`, `dead`, `paused`) by endpoint, for the metrics.
        public var onResult: @Sendable (_ endpoint: String, _ result: String) -> Void = { _, _ in }
        /// Told every second how many deliveries each endpoint has pending, for the metrics.
        public var onPending: @Sendable (_ pending: [String: Int]) -> Void = { _ in }
        /// How long a lease lasts without renewal: another agent takes an endpoint over this long (plus up
        /// to one renewal interval) after its holder died.
        public var leaseMilliseconds: Int64 = 10_000
        /// How often held leases are renewed and free ones tried; keep it a third of `leaseMilliseconds` or less
        /// (a lease is believed held for four fifths of its length after each renewal).
        public var leaseRenewMilliseconds: Int64 = 3_000
        /// Whether a graceful stop gives the leases up, so another agent takes over at once. Tests turn it
        /// off to stand for an agent killed without a chance to.
        public var releaseLeasesOnStop = true

        public init(retry: RetryPolicy = .standard, pollMilliseconds: Int64 = 50, balanceTickMilliseconds: Int64 = 1_000,
                    expireTickMilliseconds: Int64 = 60_000, pruneTickMilliseconds: Int64 = 10_000,
                    idleMilliseconds: Int64 = 1_000,
                    clock: @escaping @Sendable () -> Int64 = DeliveryService.wallClockMilliseconds,
                    jitter: @escaping @Sendable () -> Double = { Double.random(in: 0 ..< 1) }) {
            self.retry = retry
            self.pollMilliseconds = max(1, pollMilliseconds)
            self.balanceTickMilliseconds = max(1, balanceTickMilliseconds)
            self.expireTickMilliseconds = max(1, expireTickMilliseconds)
            self.pruneTickMilliseconds = max(1, pruneTickMilliseconds)
            self.idleMilliseconds = max(1, idleMilliseconds)
            self.clock = clock
            self.jitter = jitter
        }
    }

    public let endpoints: [ResolvedEndpoint]
    private let store: any DeliveryStore
    /// This agent's name in the lease rows: the node and a token of this process, so two agents started
    /// with the same node name (a misconfiguration, or a restart before the old lease expired) differ.
    public let leaseHolder: String
    private let delivery: DeliveryConfig
    private let userAgent: String
    private let logger: Logger
    private let options: Options
    private let coordinatorSignal = Signal()
    private let leaseSignal = Signal()
    private let leases = LeaseBook()

    /// The lease of the coordinator's work (balances, fan-out, expiry, pruning) and of each endpoint.
    public static let coordinatorLease = "coordinator"
    public static func endpointLease(_ endpoint: String) -> String { "endpoint:" + endpoint }

    /// Opens its own `Ledger` connection on `config.store.path` and reads every endpoint's secret and token
    /// file; throws `DeliveryError` (naming the config key) or `LedgerError`. `version` goes into the
    /// `User-Agent: creditmeter/<version>` header.
    public convenience init(config: Config, version: String, logger: Logger, options: Options = Options()) throws {
        var resolved: [ResolvedEndpoint] = []
        for (n, e) in config.endpoints.enumerated() { resolved.append(try ResolvedEndpoint.resolve(e, index: n)) }
        let ledger = try Ledger(path: config.store.path, thresholds: config.thresholds)
        self.init(store: ledger, endpoints: resolved, delivery: config.delivery, node: config.node.name, version: version,
                  logger: logger, options: options)
    }

    /// Delivers through `store` (say a `PostgresLedger` shared with other agents) with `config`'s endpoints,
    /// delivery settings and node name; reads every endpoint's secret and token file; throws `DeliveryError`.
    /// `store` should be a connection of its own: it serialises its callers.
    public convenience init(config: Config, store: any DeliveryStore, version: String, logger: Logger,
                            options: Options = Options()) throws {
        var resolved: [ResolvedEndpoint] = []
        for (n, e) in config.endpoints.enumerated() { resolved.append(try ResolvedEndpoint.resolve(e, index: n)) }
        self.init(store: store, endpoints: resolved, delivery: config.delivery, node: config.node.name, version: version,
                  logger: logger, options: options)
    }

    /// Delivers through `ledger`, which should be a connection of its own (the ledger serialises its callers).
    public convenience init(ledger: Ledger, endpoints: [ResolvedEndpoint], delivery: DeliveryConfig, version: String,
                            logger: Logger, options: Options = Options()) {
        self.init(store: ledger, endpoints: endpoints, delivery: delivery, node: NodeConfig.hostName(), version: version,
                  logger: logger, options: options)
    }

    /// Delivers through `store`; `node` names this agent in the store's lease rows.
    public init(store: any DeliveryStore, endpoints: [ResolvedEndpoint], delivery: DeliveryConfig, node: String,
                version: String, logger: Logger, options: Options = Options()) {
        self.store = store
        self.leaseHolder = "\(node)/\(UUID().uuidString.prefix(8).lowercased())"
        self.endpoints = endpoints
        self.delivery = delivery
        self.userAgent = "creditmeter/\(version)"
        self.logger = logger
        self.options = options
    }

    /// Asks the coordinator to look for new events now rather than at its next poll (e.g. after a commit
    /// that made alerts); safe from any thread.
    public func wake() { coordinatorSignal.poke() }

    public static let wallClockMilliseconds: @Sendable () -> Int64 = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Runs until graceful shutdown (or cancellation); an attempt in flight is cut short and stays queued.
    /// Store and network errors are logged and retried, never thrown: delivery must not stop the daemon.
    public func run() async throws {
        let stop = StopFlag()
        var senders: [Sender] = []
        for e in endpoints {
            var log = logger
            log[metadataKey: "endpoint"] = "\(e.name)"
            senders.append(Sender(endpoint: e, client: try CurlClient(userAgent: userAgent, stop: stop), logger: log))
        }
        let group = DispatchGroup()
        let workers = DispatchGroup()
        let signals = Dictionary(senders.map { ($0.endpoint.name, $0.signal) }, uniquingKeysWith: { a, _ in a })
        var wakes = Dictionary(senders.map { (Self.endpointLease($0.endpoint.name), $0.signal) }, uniquingKeysWith: { a, _ in a })
        wakes[Self.coordinatorLease] = coordinatorSignal
        let wakeOnGain = wakes
        spawn("cm-lease", group) { [self] in keepLeases(stop: stop, workers: workers, wake: wakeOnGain) }
        spawn("cm-outbox", group, workers) { [self] in coordinate(stop: stop, senders: signals) }
        for s in senders {
            spawn("cm-send-\(s.endpoint.name)", group, workers) { [self] in send(s, stop: stop) }
        }
        logger.info("delivery started", metadata: ["endpoints": "\(endpoints.map(\.name).joined(separator: ","))"])

        try? await gracefulShutdown()

        stop.set()
        coordinatorSignal.poke()
        leaseSignal.poke()
        for s in senders { s.signal.poke() }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            group.notify(queue: .global()) { c.resume() }
        }
        logger.info("delivery stopped")
    }

    private func spawn(_ name: String, _ groups: DispatchGroup..., body: @escaping @Sendable () -> Void) {
        for g in groups { g.enter() }
        let t = Thread {
            body()
            for g in groups { g.leave() }
        }
        t.name = name
        t.start()
    }

    /// Whether this agent holds the lease `name` now, as far as its own clock can tell.
    public func holdsLease(_ name: String) -> Bool { leases.holds(name) }

    // MARK: leases

    /// Takes and renews the leases until stop; then, once the workers are done (nothing is sent after it),
    /// gives them up unless told not to. A lease is believed held until `leaseMilliseconds` minus a fifth
    /// after the request that renewed it was sent: the store counts from when it received it, so the lease
    /// ends here before it ends there, and an attempt under way then has that fifth to finish.
    private func keepLeases(stop: StopFlag, workers: DispatchGroup, wake: [String: Signal]) {
        let names = [Self.coordinatorLease] + endpoints.map { Self.endpointLease($0.name) }
        let ttl = max(options.leaseMilliseconds, 1)
        var errors = ErrorLatch(logger: logger)
        while !stop.isSet {
            do {
                for name in names {
                    let asked = LeaseBook.monotonicMs()
                    if try store.takeLease(name, holder: leaseHolder, ttlMs: ttl) {
                        if leases.hold(name, untilMs: asked + ttl - ttl / 5) {
                            logger.notice("took the delivery lease", metadata: ["lease": "\(name)", "holder": "\(leaseHolder)"])
                            wake[name]?.poke()
                        }
                    } else if leases.drop(name) {
                        logger.warning("lost the delivery lease to another agent", metadata: ["lease": "\(name)"])
                    }
                }
                errors.clear()
            } catch {
                // Held leases simply run out (the workers stop on their own) unless a later renewal works.
                errors.report("renewing the delivery leases failed, will retry: \(error)")
            }
            leaseSignal.wait(milliseconds: max(options.leaseRenewMilliseconds, 1))
        }
        workers.wait()
        guard options.releaseLeasesOnStop else { return }
        for name in names {
            // Given up in the store even when it ran out here: the store may still count it ours.
            leases.drop(name)
            do { try store.releaseLease(name, holder: leaseHolder) } catch {
                logger.warning("could not give up a delivery lease; it expires on its own: \(error)", metadata: ["lease": "\(name)"])
            }
        }
    }

    // MARK: coordinator

    private func coordinate(stop: StopFlag, senders: [String: Signal]) {
        let outbox = endpoints.map(\.outbox)
        let names = endpoints.map(\.name)
        let wantsBalances = endpoints.contains { $0.config.wants("balance.updated") }
        let maxAgeMs = delivery.maxAgeHours * 3_600_000
        var lastSequence: Int64 = -1
        var lastBalance: Int64?, lastExpire: Int64?, lastPrune: Int64?, lastCount: Int64?
        /// True (and the tick restarted) when `every` ms have passed since `last`, or it never ran.
        func tick(_ last: inout Int64?, _ now: Int64, every: Int64) -> Bool {
            if let l = last, now - l < every, now >= l { return false }
            last = now
            return true
        }
        var errors = ErrorLatch(logger: logger)
        while !stop.isSet {
            let now = options.clock()
            guard leases.holds(Self.coordinatorLease) else {
                // Another agent coordinates; the metrics are this agent's own to report.
                // (A store error skips a report: the next one comes a second later.)
                if tick(&lastCount, now, every: 1_000), let pending = try? store.pendingDeliveries(endpoints: names) {
                    options.onPending(pending)
                }
                // Fan out at once when the lease comes (the lease thread pokes this wait short).
                lastSequence = -1
                coordinatorSignal.wait(milliseconds: min(1_000, options.leaseRenewMilliseconds))
                continue
            }
            do {
                // With no endpoint for them, balances stay marked dirty and are announced with the then newest
                // figures once one is configured.
                if wantsBalances, tick(&lastBalance, now, every: options.balanceTickMilliseconds) {
                    try store.materializeBalances(now: now / 1_000, intervalSeconds: delivery.balanceIntervalSeconds)
                }
                let sequence = try store.outboxSequence()
                if sequence != lastSequence, !outbox.isEmpty {
                    var more = true
                    while more, !stop.isSet {
                        let r = try store.fanOut(endpoints: outbox, nowMs: options.clock(), limit: 1_000)
                        more = r.more
                        for name in r.queued.keys { senders[name]?.poke() }
                    }
                }
                lastSequence = sequence
                if tick(&lastCount, now, every: 1_000) { options.onPending(try store.pendingDeliveries(endpoints: names)) }
                if tick(&lastExpire, now, every: options.expireTickMilliseconds) {
                    let n = try store.expireDeliveries(nowMs: now, maxAgeMs: maxAgeMs)
                    if n > 0 { logger.warning("deliveries older than max_age_hours moved to the dead letters", metadata: ["count": "\(n)"]) }
                }
                if tick(&lastPrune, now, every: options.pruneTickMilliseconds) {
                    while try store.pruneOutbox(endpoints: names, now: now / 1_000, maxAgeSeconds: delivery.maxAgeHours * 3_600,
                                                 limit: 5_000) > 0,
                          !stop.isSet {}
                }
                errors.clear()
            } catch {
                errors.report("outbox upkeep failed, will retry: \(error)")
                // A store error (say, a long lock by another process) is not worth a hot loop.
                coordinatorSignal.wait(milliseconds: options.idleMilliseconds)
                continue
            }
            coordinatorSignal.wait(milliseconds: options.pollMilliseconds)
        }
    }

    // MARK: senders

    private func send(_ s: Sender, stop: StopFlag) {
        var errors = ErrorLatch(logger: s.logger)
        let lease = Self.endpointLease(s.endpoint.name)
        while !stop.isSet {
            // Another agent sends to this endpoint; the lease thread wakes this one when it is ours.
            guard leases.holds(lease) else {
                s.signal.wait(milliseconds: options.leaseRenewMilliseconds)
                continue
            }
            let now = options.clock()
            let batch: DueDeliveries
            do {
                batch = try store.dueDeliveries(endpoint: s.endpoint.name, nowMs: now, limit: 100)
                errors.clear()
            } catch {
                errors.report("reading the delivery queue failed, will retry: \(error)")
                s.signal.wait(milliseconds: options.idleMilliseconds)
                continue
            }
            if batch.paused {
                if !s.pausedLogged {
                    // Paused before this process started (or by another one): say so once.
                    s.pausedLogged = true
                    s.logger.error("endpoint is paused after a 410 Gone; nothing is sent to it until `creditmeter outbox retry`")
                }
                s.signal.wait(milliseconds: options.idleMilliseconds)
                continue
            }
            if s.pausedLogged {
                s.pausedLogged = false
                s.logger.notice("endpoint re-enabled; sending again")
            }
            if batch.due.isEmpty {
                let wait = batch.nextDueMs.map { min(max($0 - now, 1), options.idleMilliseconds) } ?? options.idleMilliseconds
                s.signal.wait(milliseconds: wait)
                continue
            }
            for d in batch.due {
                if stop.isSet { return }
                if !leases.holds(lease) { break }
                do {
                    if try !attempt(d, sender: s) { break }
                } catch {
                    // The attempt may have gone through; the event stays pending and is sent again (at-least-once).
                    errors.report("recording a delivery failed, will retry: \(error)")
                    s.signal.wait(milliseconds: options.idleMilliseconds)
                    break
                }
            }
        }
    }

    /// Sends one delivery and records the result; false when the sender should stop this batch.
    private func attempt(_ d: PendingDelivery, sender s: Sender) throws(LedgerError) -> Bool {
        let start = options.clock()
        let maxAgeMs = delivery.maxAgeHours * 3_600_000
        if d.ageFromMs <= start - maxAgeMs {
            try store.recordDelivery(d, .expired, nowMs: start)
            options.onResult(s.endpoint.name, "dead")
            s.logger.warning("event older than max_age_hours: moved to the dead letters",
                             metadata: ["event": "\(d.eventID)", "type": "\(d.type)", "attempts": "\(d.attempts)"])
            return true
        }
        let body = Array(d.body.utf8)
        let headers = s.endpoint.headers(eventID: d.eventID, timestamp: start / 1_000, body: body)
        let outcome = s.client.post(url: s.endpoint.config.url, headers: headers, body: body,
                                    timeoutMs: Int(s.endpoint.config.timeoutSeconds * 1_000))
        if outcome.aborted { return false }
        let done = options.clock()
        let meta: Logger.Metadata = ["event": "\(d.eventID)", "type": "\(d.type)", "attempt": "\(d.attempts + 1)"]
        switch Verdict.classify(status: outcome.status, curlError: outcome.curlCode) {
        case .delivered:
            try store.recordDelivery(d, .delivered, nowMs: done)
            options.onResult(s.endpoint.name, "delivered")
            if s.failing {
                s.failing = false
                s.logger.notice("endpoint answering again", metadata: meta)
            }
            s.logger.trace("delivered", metadata: meta)
            return true
        case .retry:
            let asked = outcome.retryAfter.flatMap { RetryAfter.seconds($0, now: done / 1_000) }
            let delay = Backoff.delay(attempt: d.attempts + 1, retryAfter: asked, jitter: options.jitter(), policy: options.retry)
            let error = Self.describe(outcome)
            try store.recordDelivery(d, .retry(atMs: done + delay, error: error), nowMs: done)
            options.onResult(s.endpoint.name, "retry")
            if !s.failing {
                s.failing = true
                s.logger.warning("delivery failing, retrying with backoff: \(error)", metadata: meta)
            } else {
                s.logger.debug("retry in \(delay) ms: \(error)", metadata: meta)
            }
            return true
        case .pause:
            let error = Self.describe(outcome)
            try store.recordDelivery(d, .paused(error: error), nowMs: done)
            options.onResult(s.endpoint.name, "paused")
            s.pausedLogged = true
            s.logger.error("endpoint answered 410 Gone: paused; nothing more is sent to it until `creditmeter outbox retry`",
                           metadata: meta)
            return false
        case .dead:
            let error = Self.describe(outcome)
            try store.recordDelivery(d, .dead(error: error), nowMs: done)
            options.onResult(s.endpoint.name, "dead")
            s.logger.warning("permanent failure, event moved to the dead letters: \(error)", metadata: meta)
            return true
        }
    }

    /// The error text stored with a delivery: the status and the start of the answer, or curl's message.
    /// Never the URL (it may carry a token in its query) nor any header sent.
    static func describe(_ o: HTTPOutcome) -> String {
        guard let status = o.status else { return "curl error \(o.curlCode): \(o.curlMessage)" }
        var text = "HTTP \(status)"
        if (300 ... 399).contains(status) { text += " (redirects are not followed)" }
        let snippet = o.bodyPrefix.prefix(200).map { $0.isNewline ? " " : $0 }
        if !snippet.isEmpty { text += ": " + String(snippet) }
        return text
    }
}

/// The leases this agent believes it holds, each until a time on the monotonic clock (wall-clock steps
/// must not stretch a lease); shared by the lease thread and the workers.
final class LeaseBook: @unchecked Sendable {
    private let lock = NSLock()
    private var until: [String: Int64] = [:]

    static func monotonicMs() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    func holds(_ name: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let u = until[name] else { return false }
        return Self.monotonicMs() < u
    }

    /// Records a renewal; true when the lease was not held a moment ago (newly taken).
    func hold(_ name: String, untilMs: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let was = until[name].map { Self.monotonicMs() < $0 } ?? false
        until[name] = untilMs
        return !was
    }

    /// Forgets a lease; true when it was held.
    @discardableResult
    func drop(_ name: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let was = until[name].map { Self.monotonicMs() < $0 } ?? false
        until[name] = nil
        return was
    }
}

/// One endpoint's sender: its curl handle and its wake-up signal; used only by its own thread.
private final class Sender: @unchecked Sendable {
    let endpoint: ResolvedEndpoint
    let client: CurlClient
    let logger: Logger
    let signal = Signal()
    var failing = false
    var pausedLogged = false

    init(endpoint: ResolvedEndpoint, client: CurlClient, logger: Logger) {
        self.endpoint = endpoint
        self.client = client
        self.logger = logger
    }
}

/// A sleep that another thread can cut short.
final class Signal: @unchecked Sendable {
    private let condition = NSCondition()
    private var poked = false

    func poke() {
        condition.lock()
        poked = true
        condition.signal()
        condition.unlock()
    }

    /// Returns after `milliseconds`, or at once when poked since the last wait.
    func wait(milliseconds: Int64) {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: Double(milliseconds) / 1_000)
        while !poked {
            if !condition.wait(until: deadline) { break }
        }
        poked = false
    }
}

/// Logs a recurring error once, then again only when it changes or a minute has passed.
private struct ErrorLatch {
    let logger: Logger
    private var last: String?
    private var at: Int64 = 0

    init(logger: Logger) { self.logger = logger }

    mutating func report(_ message: String) {
        let now = DeliveryService.wallClockMilliseconds()
        if message != last || now - at >= 60_000 {
            logger.error("\(message)")
            last = message
            at = now
        }
    }

    mutating func clear() {
        if last != nil { logger.notice("recovered") }
        last = nil
    }
}

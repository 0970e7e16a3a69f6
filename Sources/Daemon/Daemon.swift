import API
import Console
import Delivery
import Foundation
import Ingest
import Ledger
import Logging
import MeterConfig
import Outbox
import ServiceLifecycle

/// Builds the daemon from a config: one service per source plus purge, reload and watchdog, in one
/// `ServiceGroup` that owns signal handling (SIGTERM/SIGINT: finish the batch in hand, commit, exit 0).
public struct Daemon {
    public let runtime: Runtime
    public let group: ServiceGroup
    /// Tells `/readyz` that the sources are open.
    let ready: ReadyFlag
    let ledger: any AgentStore
    let store: StoreOpener
    let sources: Int

    public init(configPath: String, config: Config, logger: Logger, version: String, batchSize: Int = 5_000,
                extraServices: (Runtime, any AgentStore) throws -> [any Service] = { _, _ in [] }) throws {
        let preflight = try Preflight.check(config)
        for w in preflight.warnings {
            logger.warning("secret readable by group or others: \(w)", metadata: ["key": "\(w.key)", "file": "\(w.file)", "mode": "\(w.mode)"])
        }
        let decks = preflight.decks
        let notifier = SystemdNotifier()
        runtime = Runtime(config: config, decks: decks, logger: logger, notifier: notifier)
        let counters = runtime
        ready = ReadyFlag(problems: {
            counters.allCounters.filter(\.value.failing).sorted { $0.key < $1.key }
                .map { "source \($0.key) cannot charge (position kept, retrying): \($0.value.failure)" }
        })
        MeterMetrics.buildInfo(version: version)
        let store = try StoreOpener.configured(config)
        self.store = store
        ledger = try store.open(.source)
        var services: [(String, any Service)] = []
        for (i, s) in config.sources.enumerated() {
            services.append(("source \(s.name)", try SourceService(source: s, index: i, runtime: runtime, ledger: ledger, batchSize: batchSize)))
        }
        sources = services.count
        if !config.endpoints.isEmpty {
            // Our own commits wake delivery at once; the poll only finds events queued by the CLI.
            var options = DeliveryService.Options(pollMilliseconds: 500)
            options.onResult = { MeterMetrics.delivery(endpoint: $0, result: $1) }
            options.onPending = { for (endpoint, n) in $0 { MeterMetrics.outboxDepth(endpoint: endpoint, pending: n) } }
            for e in config.endpoints { MeterMetrics.declare(endpoint: e.name) }
            // Both stores keep the outbox; the cast only meets a store type that does not.
            guard let outbox = try store.open(.delivery) as? any DeliveryStore else {
                throw LedgerError.open(path: store.location, message: "this store cannot deliver webhooks")
            }
            let delivery = try DeliveryService(config: config, store: outbox, version: version, logger: logger, options: options)
            runtime.onCommit { _ in delivery.wake() }
            services.append(("delivery", delivery))
        }
        // The local HTTP API (SPEC 9): its own ledger connection; charged calls release their holds.
        let runtime = self.runtime
        // The web console and portal (`[console]`) on the same listener, over the API's handler.
        let console = config.console.enabled ? try Console(config: config) : nil
        let api = try APIService(
            config: config, store: store,
            settings: { let g = runtime.generation; return APISettings(config: g.config, decks: g.decks) },
            ready: ready, registry: APIMetrics.bootstrap(), logger: logger,
            // Refreshed after every commit of ours; the poll only finds changes made by the CLI.
            pollInterval: .milliseconds(500),
            rating: {
                let g = runtime.generation
                return ReceiverRating(generation: g.number, accountField: g.config.accounts.cdrField, decks: g.decks,
                                      maxBillsec: g.config.rating.maxBillsec)
            },
            // Posted CDRs released their holds in their own transaction; this wakes delivery for their events.
            onCDRCommit: { charged, changes in
                runtime.committed(CommitInfo(source: "http", charged: charged, levelChanges: changes))
            },
            routes: { handler, router in console?.register(on: router, handler: handler) })
        runtime.onCommit { _ in api.refreshBalances() }
        services.append(("api", api))
        services += try extraServices(runtime, ledger).map { ("\(type(of: $0))", $0) }
        services.append(("purge", PurgeService(runtime: runtime, ledger: try store.open(.housekeeping))))
        services.append(("reload", ReloadService(runtime: runtime, ledger: ledger, configPath: configPath)))
        services.append(("watchdog", WatchdogService(runtime: runtime)))
        group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map {
                .init(service: $0.1, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: $0.0)
            },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
    }

    public func run() async throws {
        runtime.logger.notice("creditmeter started", metadata: [
            "sources": "\(sources)", "store": "\(store.location)", "pid": "\(getpid())",
        ])
        ready.set()
        runtime.notifier.ready(status: "tailing \(sources) sources")
        defer { runtime.notifier.stopping() }
        try await group.run()
        runtime.logger.notice("creditmeter stopped")
    }
}

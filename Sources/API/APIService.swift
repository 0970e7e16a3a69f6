import Foundation
import HTTPTypes
import Hummingbird
import Ledger
import Logging
import MeterConfig
import MeterCore
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// Why the API refused to start: the config key at fault and what to do about it.
public struct APIStartupError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var message: String
    /// The store's error when the store could not be opened, so `run` can tell a server it may wait for
    /// (down, restarting, out of connection slots) from a setting to fix.
    public var store: LedgerError?
    public var description: String { "\(key): \(message)" }

    public init(key: String, message: String, store: LedgerError? = nil) {
        self.key = key
        self.message = message
        self.store = store
    }
}

/// The local HTTP API of SPEC 9 as one `Service`: the Hummingbird server plus the loop that keeps
/// the in-memory balances current (`PRAGMA data_version` every `pollInterval`, 500 ms in the daemon;
/// expired holds swept every 20th poll, 10 s there).
///
/// It opens its own store connections (admin, holds, posted CDRs), so the daemon's ingest and the API's
/// admin writes never share a lock; the store's data version tells each side about the other's commits.
public struct APIService: Service {
    public let handler: APIHandler
    public let authorizer: Authorizer
    let address: BindAddress
    let listen: String
    let logger: Logger
    let pollInterval: Duration
    let readTimeout: TimeAmount
    let maxConnections: Int
    /// Registers routes beyond the API's own (the console's) on the server's router.
    let routes: @Sendable (APIHandler, Router<APIContext>) -> Void

    /// - Parameters:
    ///   - config: the config the daemon started with; `[api]` (listen address, admin token file, read
    ///     timeout, max connections) and the store are read once here: changing them takes a restart.
    ///   - store: opens the API's connections; nil means the SQLite ledger at `config.store.path`.
    ///   - settings: the current generation's `[authorize]`, thresholds, plans and rate decks, read on
    ///     every request so a SIGHUP reload applies at once.
    ///   - ready: set by the daemon when its sources are open (`/readyz`).
    ///   - registry: from `APIMetrics.bootstrap()`, rendered by `/metrics`.
    /// - Throws: `APIStartupError` naming `api.listen` (unresolvable, or non-loopback without a token file),
    ///   `api.admin_token_file` (unreadable, empty or short token) or `store.path`.
    ///   - rating: the rating inputs of the current generation, for CDRs posted to `receive = "http"`
    ///     sources; default: the ones `config` starts with.
    ///   - onCDRCommit: called after each committed transaction of posted CDRs (charged count, level
    ///     changes), after the holds of the charged calls were released.
    public init(config: Config, store: StoreOpener? = nil, settings: @escaping @Sendable () -> APISettings, ready: ReadyFlag,
                registry: PrometheusCollectorRegistry, logger: Logger,
                pollInterval: Duration = .milliseconds(50), rating: (@Sendable () -> ReceiverRating)? = nil,
                onCDRCommit: @escaping @Sendable (_ charged: Int, _ levelChanges: Int) -> Void = { _, _ in },
                routes: @escaping @Sendable (APIHandler, Router<APIContext>) -> Void = { _, _ in }) throws(APIStartupError) {
        let api = config.api
        let token = try Self.checkStartup(api)
        let receiving = try CDRReceiver.sources(config.receivers)
        let store = store ?? .sqlite(path: config.store.path, thresholds: config.thresholds)
        let ledger: any AgentStore
        let cache: BalanceCache
        let reservations: ReservationBook
        var lanes = 1
        do {
            ledger = try store.open(.api)
            cache = try BalanceCache(ledger: ledger, wanted: { settings().authorize.whenStoreDown == .cached })
            // Holds on connections of their own: a check-and-reserve never waits behind an admin write.
            let holds: any HoldStore = store.holdsConnections == 1 ? try store.open(.holds)
                : HoldStorePool(try (0..<store.holdsConnections).map { _ throws(LedgerError) in try store.open(.holds) })
            lanes = store.holdsConnections
            let said = Mutex<Int64>(0)
            let policy: @Sendable () -> StoreDownPolicy = { settings().authorize.whenStoreDown }
            reservations = ReservationBook(ledger: holds, storeFailed: { error in
                // Once every 10 s at most: a store that is down fails every answer.
                let now = ReservationBook.unixMillis()
                guard said.withLock({ last in
                    guard now - last >= 10_000 else { return false }
                    last = now
                    return true
                }) else { return }
                logger.error("authorize: the store cannot take holds (answering as when_store_down = \(policy().rawValue)): \(error)")
            })
        } catch {
            throw APIStartupError(key: store.key, message: "the API cannot open the store: \(error)", store: error as? LedgerError)
        }
        let authorizer = Authorizer(cache: cache, book: reservations)
        self.authorizer = authorizer
        var receiver: CDRReceiver?
        if !receiving.isEmpty {
            // A connection of its own: a group commit never waits behind an admin write or a cache reload.
            let cdrLedger: any AgentStore
            do { cdrLedger = try store.open(.receiver) } catch {
                throw APIStartupError(key: store.key, message: "the CDR receiver cannot open the store: \(error)", store: error)
            }
            let start = ReceiverRating(generation: 0, accountField: config.accounts.cdrField, decks: settings().decks,
                                       maxBillsec: config.rating.maxBillsec)
            let committer = CDRCommitter(ledger: cdrLedger, rating: rating ?? { start }, logger: logger, committed: { done in
                do { try authorizer.cache.refresh() } catch {
                    logger.error("api: balance cache refresh failed: \(error)")
                }
                onCDRCommit(done.charged, done.levelChanges)
            })
            receiver = CDRReceiver(sources: receiving, committer: committer)
        }
        do {
            handler = try APIHandler(authorizer: authorizer, ledger: ledger, holdsLanes: lanes, settings: settings, adminToken: token,
                                     ready: ready, metrics: { registry.emitToBuffer() }, logger: logger, receiver: receiver)
        } catch {
            throw APIStartupError(key: "api", message: "cannot prepare password verification: \(error)")
        }
        address = .hostname(api.host, port: api.port)
        listen = api.listen
        readTimeout = .seconds(api.readTimeoutSeconds)
        maxConnections = api.maxConnections
        self.logger = logger
        self.pollInterval = pollInterval
        self.routes = routes
    }

    /// Reloads the balances now if the store changed; the daemon may call it right after a commit
    /// (the poll loop would otherwise notice within `pollInterval`). Blocks for the reload.
    public func refreshBalances() {
        do { try authorizer.cache.refresh() } catch {
            logger.error("api: balance cache refresh failed: \(error)")
        }
    }

    public func run() async throws {
        let refresher = Refresher(service: self)
        let listen = self.listen
        let logger = self.logger
        let counter = ConnectionCounter(limit: maxConnections)
        let timeout = readTimeout
        let app = Application(
            router: handler.makeRouter { [handler, routes] in routes(handler, $0) },
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionGuard(counter: counter, timeout: timeout)])),
            configuration: ApplicationConfiguration(address: address, serverName: nil),
            services: [refresher],
            onServerRunning: { channel in
                let port = channel.localAddress?.port.map(String.init) ?? "?"
                logger.notice("api listening", metadata: ["listen": "\(listen)", "port": "\(port)"])
            },
            logger: logger)
        try await app.run()
    }

    /// What the API refuses about `[api]` before it binds (`config check` runs it too): a listen host
    /// that does not resolve, a non-loopback one without an admin token, an unusable token file.
    /// Returns the admin token, nil when the admin endpoints are off. Opens no socket.
    public static func checkStartup(_ api: APIConfig) throws(APIStartupError) -> String? {
        guard resolves(api.host) else {
            throw APIStartupError(key: "api.listen", message: "'\(api.host)' in '\(api.listen)' is not an address of this host "
                + "and does not resolve to one")
        }
        guard api.adminTokenFile != nil || Self.isLoopback(api.host) else {
            throw APIStartupError(key: "api.listen", message: "'\(api.listen)' is not a loopback address, and api.admin_token_file "
                + "is not set: refusing to expose the API without an admin token (set api.admin_token_file, or listen on 127.0.0.1)")
        }
        return try api.adminTokenFile.map { (path) throws(APIStartupError) -> String in try Self.readToken(path, key: "api.admin_token_file") }
    }

    /// Whether the server's own lookup (getaddrinfo, as NIO does it) finds an address for `host`.
    static func resolves(_ host: String) -> Bool {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &result)
        if let result { freeaddrinfo(result) }
        return rc == 0
    }

    /// 127.0.0.0/8, ::1 and `localhost`.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// The receiving sources' token files, read as `run` reads them (`config check` runs it too).
    public static func checkReceivers(_ receivers: [ReceiverConfig]) throws(APIStartupError) {
        _ = try CDRReceiver.sources(receivers)
    }

    static func readToken(_ path: String, key: String) throws(APIStartupError) -> String {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            let why = FileManager.default.fileExists(atPath: path) ? "cannot be read (permissions?)" : "no such file"
            throw APIStartupError(key: key, message: "\(path): \(why)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw APIStartupError(key: key, message: "\(path): is not UTF-8 text")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        // A short token can be guessed over the network; 16 characters of `openssl rand -hex 16` is 128 bits.
        guard token.count >= 16 else {
            throw APIStartupError(key: key,
                                  message: "\(path): the token must be at least 16 characters (e.g. `openssl rand -hex 32 > \(path)`)")
        }
        guard !token.contains(where: { $0.isWhitespace }) else {
            throw APIStartupError(key: key, message: "\(path): the token must be one word without spaces")
        }
        return token
    }

    /// Keeps the balance cache current and sweeps expired holds until the group shuts down.
    struct Refresher: Service {
        let service: APIService

        func run() async throws {
            var ticks = 0
            let every = service.pollInterval
            let handler = service.handler
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: every) }
                } catch {
                    return
                }
                ticks += 1
                let sweep = ticks % 20 == 0
                await handler.onLedger { [service] in
                    service.refreshBalances()
                    // SQLite's holds connection leaves checkpoints to this one, so no answer waits for the sync.
                    do { try (service.handler.ledger as? Ledger)?.checkpointPassively() } catch {
                        service.logger.error("api: checkpointing the store failed: \(error)")
                    }
                    if sweep {
                        do { try service.authorizer.book.sweep() } catch {
                            service.logger.error("api: dropping expired holds failed: \(error)")
                        }
                    }
                }
            }
        }
    }
}

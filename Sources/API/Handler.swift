import Dispatch
import Foundation
import Synchronization
import HTTPTypes
import Hummingbird
import Ledger
import Logging
import MeterConfig
import MeterCore
import Rater

/// Answers every endpoint of the local API. Blocking work (SQLite, password hashing) runs on
/// two serial dispatch queues so that it never occupies the cooperative thread pool that the
/// authorize path runs on; on 2 cores one slow yescrypt per thread would otherwise stall authorize.
public final class APIHandler: Sendable {
    let authorizer: Authorizer
    package let ledger: any AgentStore
    package let settings: @Sendable () -> APISettings
    package let adminToken: [UInt8]?
    let ready: ReadyFlag
    let metrics: @Sendable () -> [UInt8]
    let counters: AuthorizeCounters
    package let logger: Logger
    package let clock: @Sendable () -> Int64
    /// A hash of a random password with the default cost: unknown users are verified against it so
    /// that they take as long as a wrong password.
    package let dummyHash: String
    let ledgerQueue = DispatchQueue(label: "creditmeter.api.ledger")
    let passwordQueue = DispatchQueue(label: "creditmeter.api.password")
    /// Check-and-reserve is a store transaction that may wait for another writer: off the event loop,
    /// on queues of its own so it never waits behind an admin write either; one per holds connection, so
    /// as many answers as there are connections are in flight and no more threads than that wait.
    let holdsQueues: [DispatchQueue]
    private let nextLane = Atomic<UInt>(0)
    /// `POST /v1/cdr/{source}`; nil when no `[[source]]` has `receive = "http"`.
    let receiver: CDRReceiver?

    static let maxBody = 64 * 1024

    public init(authorizer: Authorizer, ledger: any AgentStore, holdsLanes: Int = 1, settings: @escaping @Sendable () -> APISettings,
                adminToken: String?, ready: ReadyFlag, metrics: @escaping @Sendable () -> [UInt8],
                logger: Logger, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
                receiver: CDRReceiver? = nil) throws(LedgerError) {
        self.receiver = receiver
        holdsQueues = (0..<max(1, holdsLanes)).map { DispatchQueue(label: "creditmeter.api.holds.\($0)") }
        self.authorizer = authorizer
        self.ledger = ledger
        self.settings = settings
        self.adminToken = adminToken.map { Array($0.utf8) }
        self.ready = ready
        self.metrics = metrics
        self.counters = AuthorizeCounters()
        self.logger = logger
        self.clock = clock
        var random = SystemRandomNumberGenerator()
        let seed = (0 ..< 4).map { _ in String(random.next(), radix: 36) }.joined()
        dummyHash = try PasswordHasher.hash("Aa1!" + seed)
    }

    // MARK: routing

    /// The routes, for the server or for calling in process. Admin routes sit in a group behind
    /// `AdminAuthMiddleware`, so a request without the admin token is answered before its body is read.
    /// - Parameter extra: more routes on the same router (the web console's pages).
    public func makeRouter(extra: (Router<APIContext>) -> Void = { _ in }) -> Router<APIContext> {
        let router = Router(context: APIContext.self)
        router.add(middleware: TransportMiddleware())
        router.route("healthz", [.get: { _, _ in Reply.plain(.ok, "ok") }])
        router.route("readyz", [.get: { [self] _, _ in readiness() }])
        router.route("metrics", [.get: { [self] _, _ in await metricsResponse() }])
        router.route("v1/authorize", [.get: { [self] request, _ in await authorize(request) }])
        router.route("v1/me", [.get: { [self] request, _ in try await me(request) }])
        addAdminRoutes(router.group("v1/clients").add(middleware: AdminAuthMiddleware(handler: self)))
        receiver?.addRoutes(router)
        extra(router)
        return router
    }

    /// 200 `ready`, or 503 with one `not ready: …` line per reason.
    func readiness() -> Response {
        let reasons = ready.notReadyReasons
        if reasons.isEmpty { return Reply.plain(.ok, "ready") }
        return Reply.plain(.serviceUnavailable, reasons.map { "not ready: \($0)" }.joined(separator: "\n"))
    }

    func metricsResponse() async -> Response {
        let quarantined = await onLedger { [ledger] in try? ledger.quarantineCount() }
        MeterMetrics.beforeScrape(quarantined: quarantined)
        let live = await onHolds { [authorizer] in authorizer.book.liveCount }
        counters.beforeScrape(liveReservations: live, ready: ready.notReadyReasons.isEmpty)
        return Reply.make(.ok, "text/plain; version=0.0.4; charset=utf-8", metrics(), [])
    }

    // MARK: authorize

    func authorize(_ r: Request) async -> Response {
        let start = ContinuousClock.now
        defer { counters.took(ContinuousClock.now - start) }
        let q = URLText.query(r.uri.query.map { Substring($0) })
        let text = q["format"] == "text"
        func bad(_ field: String, _ rule: String) -> Response {
            counters.count("bad_request")
            return text ? Reply.plain(.badRequest, "DENY bad_request") : Reply.json(.badRequest, APIError.body([.init(field: field, rule: rule)]))
        }
        if let f = q["format"], f != "text", f != "json" { return bad("format", "must be text or json") }
        guard let account = q["account"], !account.isEmpty else { return bad("account", "is required") }
        guard account.utf8.count <= 80 else { return bad("account", "must be at most 80 bytes") }
        guard let dst = q["dst"], !dst.isEmpty else { return bad("dst", "is required") }
        guard dst.utf8.count <= 128 else { return bad("dst", "must be at most 128 bytes") }
        var call = q["call"]
        if call?.isEmpty == true { call = nil }
        if let call, call.utf8.count > 128 { return bad("call", "must be at most 128 bytes") }
        let now = settings()
        let d = await onHolds { [authorizer, call] in
            authorizer.authorize(account: account, destination: dst, call: call, settings: now)
        }
        counters.count(d.reason.rawValue)
        return text ? Reply.plain(.ok, d.text) : Reply.json(.ok, d.json)
    }

    // MARK: off-pool work

    package func onLedger<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in ledgerQueue.async { c.resume(returning: body()) } }
    }

    func onHolds<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        let lane = Int(nextLane.wrappingAdd(1, ordering: .relaxed).oldValue % UInt(holdsQueues.count))
        return await withCheckedContinuation { c in holdsQueues[lane].async { c.resume(returning: body()) } }
    }

    package func onPassword<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in passwordQueue.async { c.resume(returning: body()) } }
    }

    /// Runs a ledger write on the ledger queue and, when it succeeds, reloads the balance cache
    /// before answering, so an authorize right after a recharge sees the new credit.
    package func write<T: Sendable>(_ body: @escaping @Sendable (any AgentStore) throws(LedgerError) -> T) async -> Result<T, LedgerError> {
        await onLedger { [ledger, authorizer, logger] in
            do throws(LedgerError) {
                let v = try body(ledger)
                do { try authorizer.cache.refresh(force: true) } catch {
                    logger.error("api: balance cache reload failed after a write: \(error)")
                }
                return .success(v)
            } catch {
                return .failure(error)
            }
        }
    }

    /// The 401/403 an admin request gets, or nil when its bearer token is the admin token.
    package func adminDenial(_ header: String?) -> APIError? {
        guard let adminToken else {
            return APIError(.forbidden, field: "authorization", "admin API disabled: set [api] admin_token_file")
        }
        let challenge = [("WWW-Authenticate", "Bearer realm=\"creditmeter admin\"")]
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            return APIError(.unauthorized, field: "authorization", "send the admin token as 'Authorization: Bearer TOKEN'", headers: challenge)
        }
        let given = Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        guard ConstantTime.equals(given, adminToken) else {
            return APIError(.unauthorized, field: "authorization", "the bearer token is not the admin token", headers: challenge)
        }
        return nil
    }

    // MARK: self-service

    func me(_ r: Request) async throws -> Response {
        let challenge = [("WWW-Authenticate", "Basic realm=\"creditmeter\", charset=\"UTF-8\"")]
        guard let header = r.headers[.authorization], header.count > 6, header.prefix(6).lowercased() == "basic ",
              let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let decoded = String(data: data, encoding: .utf8), let colon = decoded.firstIndex(of: ":") else {
            throw APIError(.unauthorized, field: "authorization", "send your username and password with HTTP Basic authentication", headers: challenge)
        }
        let username = String(decoded[..<colon])
        let password = String(decoded[decoded.index(after: colon)...])
        guard let c = try await verifiedClient(username: username, password: password) else {
            throw APIError(.unauthorized, field: "authorization", "wrong username or password", headers: challenge)
        }
        if c.status == .disabled { throw APIError(.forbidden, field: "status", "this account is disabled") }
        return Reply.json(.ok, ClientJSON.detail(c, settings().thresholds))
    }

    /// The client whose username and password these are, or nil; `/v1/me` and the portal's sign-in.
    package func verifiedClient(username: String, password: String) async throws -> ClientRecord? {
        let dummy = dummyHash
        // Look-up and verify run the same steps whether or not the user exists: an unknown user is
        // verified against the dummy hash, which has the same cost as a real one.
        let outcome: Result<ClientRecord?, LedgerError> = await onPassword { [ledger] in
            let stored: String?
            do throws(LedgerError) { stored = try ledger.passwordHash(username: username) } catch { return .failure(error) }
            let ok = PasswordHasher.verify(password, against: stored ?? dummy) && stored != nil
            guard ok else { return .success(nil) }
            return Result { () throws(LedgerError) in try ledger.client(username: username) }
        }
        return try outcome.get()
    }
}

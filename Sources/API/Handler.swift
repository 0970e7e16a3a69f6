import Dispatch
import Foundation
import Ledger
import Logging
import MeterConfig
import MeterCore
import Rater

/// A request as the API sees it, independent of the HTTP server (so handlers are testable directly).
public struct APIRequest: Sendable {
    public var method: String
    /// The raw (percent-encoded) path.
    public var path: String
    /// The raw query string after `?`, if any.
    public var query: String?
    public var authorization: String?
    public var idempotencyKey: String?
    public var body: [UInt8]

    public init(method: String, path: String, query: String? = nil, authorization: String? = nil,
                idempotencyKey: String? = nil, body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.authorization = authorization
        self.idempotencyKey = idempotencyKey
        self.body = body
    }

    /// `GET /v1/authorize?account=…` style shorthand for tests and tools: splits at the first `?`.
    public init(_ method: String, _ target: String, authorization: String? = nil, body: String? = nil) {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.init(method: method, path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : nil,
                  authorization: authorization, body: body.map { Array($0.utf8) } ?? [])
    }
}

/// A response as the API produces it.
public struct APIResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, contentType: String, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    static func json(_ status: Int, _ v: JSONValue, headers: [(String, String)] = []) -> APIResponse {
        APIResponse(status: status, contentType: "application/json", headers: headers, body: Array((v.serialized() + "\n").utf8))
    }

    static func plain(_ status: Int, _ s: String, headers: [(String, String)] = []) -> APIResponse {
        APIResponse(status: status, contentType: "text/plain; charset=utf-8", headers: headers, body: Array((s + "\n").utf8))
    }

    /// `{"error": {"field", "rule"}, "errors": [...]}`: the first problem, and all of them.
    static func error(_ status: Int, _ problems: [ClientRules.Violation], headers: [(String, String)] = []) -> APIResponse {
        func one(_ v: ClientRules.Violation) -> JSONValue { .object([("field", .string(v.field)), ("rule", .string(v.rule))]) }
        let first = problems.first ?? ClientRules.Violation(field: "", rule: "error")
        return json(status, .object([("error", one(first)), ("errors", .array(problems.map(one)))]), headers: headers)
    }

    static func error(_ status: Int, field: String, _ rule: String, headers: [(String, String)] = []) -> APIResponse {
        error(status, [ClientRules.Violation(field: field, rule: rule)], headers: headers)
    }
}

/// Routes and answers every endpoint of SPEC 9. Blocking work (SQLite, password hashing) runs on
/// two serial dispatch queues so that it never occupies the cooperative thread pool that the
/// authorize path runs on; on 2 cores one slow yescrypt per thread would otherwise stall authorize.
public final class APIHandler: Sendable {
    let authorizer: Authorizer
    let ledger: Ledger
    let settings: @Sendable () -> APISettings
    let adminToken: [UInt8]?
    let ready: ReadyFlag
    let metrics: @Sendable () -> [UInt8]
    let counters: AuthorizeCounters
    let logger: Logger
    let clock: @Sendable () -> Int64
    /// A hash of a random password with the default cost: unknown users are verified against it so
    /// that they take as long as a wrong password.
    let dummyHash: String
    let ledgerQueue = DispatchQueue(label: "creditmeter.api.ledger")
    let passwordQueue = DispatchQueue(label: "creditmeter.api.password")

    static let maxBody = 64 * 1024

    public init(authorizer: Authorizer, ledger: Ledger, settings: @escaping @Sendable () -> APISettings,
                adminToken: String?, ready: ReadyFlag, metrics: @escaping @Sendable () -> [UInt8],
                logger: Logger, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) throws(LedgerError) {
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

    /// What the server should do with a request's body, decided from its head alone.
    public enum BodyUse: Sendable {
        /// An admin write that passed authentication: read up to `maxBody` bytes.
        case read
        /// No endpoint here takes a body: leave it unread.
        case ignore
        /// Answer this without reading a byte of the body (the admin token is missing or wrong).
        case refuse(APIResponse)
    }

    /// Checked before the body is read, so an unauthenticated client cannot make the server buffer
    /// one. Only admin writes (`POST`/`PATCH` under `/v1/clients`) read bodies.
    public func bodyUse(_ r: APIRequest) -> BodyUse {
        let parts = Self.route(r.path)
        let m = r.method.uppercased()
        guard parts.count >= 2, parts[0] == "v1", parts[1] == "clients", m == "POST" || m == "PATCH" else { return .ignore }
        if let denied = adminDenial(r) { return .refuse(denied) }
        return .read
    }

    /// The decoded path segments, without a trailing slash.
    static func route(_ raw: String) -> [String] {
        var path = raw
        if path.count > 1, path.hasSuffix("/") { path.removeLast() }
        return path.split(separator: "/", omittingEmptySubsequences: true).map { URLText.percentDecode($0) }
    }

    public func handle(_ r: APIRequest) async -> APIResponse {
        let parts = Self.route(r.path)
        let m = r.method.uppercased()
        func only(_ method: String, _ body: () async -> APIResponse) async -> APIResponse {
            m == method ? await body() : Self.notAllowed([method])
        }
        switch parts.count {
        case 1 where parts[0] == "healthz": return await only("GET") { .plain(200, "ok") }
        case 1 where parts[0] == "readyz":
            return await only("GET") { readiness() }
        case 1 where parts[0] == "metrics": return await only("GET") { await metricsResponse() }
        case 2 where parts[0] == "v1" && parts[1] == "authorize": return await only("GET") { authorize(r) }
        case 2 where parts[0] == "v1" && parts[1] == "me": return await only("GET") { await me(r) }
        case 2 where parts[0] == "v1" && parts[1] == "clients":
            if m == "GET" { return await admin(r) { await listClients() } }
            if m == "POST" { return await admin(r) { await createClient(r) } }
            return Self.notAllowed(["GET", "POST"])
        case 3 where parts[0] == "v1" && parts[1] == "clients":
            let u = parts[2]
            if m == "GET" { return await admin(r) { await showClient(u) } }
            if m == "PATCH" { return await admin(r) { await editClient(u, r) } }
            return Self.notAllowed(["GET", "PATCH"])
        case 4 where parts[0] == "v1" && parts[1] == "clients" && ["disable", "enable", "recharge"].contains(parts[3]):
            let u = parts[2]
            return await only("POST") {
                await admin(r) {
                    switch parts[3] {
                    case "disable": return await setDisabled(u, true)
                    case "enable": return await setDisabled(u, false)
                    default: return await recharge(u, r)
                    }
                }
            }
        default:
            return .error(404, field: "path", "no such endpoint: \(r.method) \(r.path)")
        }
    }

    static func notAllowed(_ methods: [String]) -> APIResponse {
        .error(405, field: "method", "use \(methods.joined(separator: " or "))", headers: [("Allow", methods.joined(separator: ", "))])
    }

    /// 200 `ready`, or 503 with one `not ready: …` line per reason.
    func readiness() -> APIResponse {
        let reasons = ready.notReadyReasons
        if reasons.isEmpty { return .plain(200, "ready") }
        return .plain(503, reasons.map { "not ready: \($0)" }.joined(separator: "\n"))
    }

    func metricsResponse() async -> APIResponse {
        let quarantined = await onLedger { [ledger] in try? ledger.quarantineCount() }
        MeterMetrics.beforeScrape(quarantined: quarantined)
        counters.beforeScrape(liveReservations: authorizer.book.liveCount, ready: ready.notReadyReasons.isEmpty)
        return APIResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics())
    }

    // MARK: authorize

    func authorize(_ r: APIRequest) -> APIResponse {
        let start = ContinuousClock.now
        defer { counters.took(ContinuousClock.now - start) }
        let q = URLText.query(r.query.map { Substring($0) })
        let text = q["format"] == "text"
        func bad(_ field: String, _ rule: String) -> APIResponse {
            counters.count("bad_request")
            return text ? .plain(400, "DENY bad_request") : .error(400, field: field, rule)
        }
        if let f = q["format"], f != "text", f != "json" { return bad("format", "must be text or json") }
        guard let account = q["account"], !account.isEmpty else { return bad("account", "is required") }
        guard account.utf8.count <= 80 else { return bad("account", "must be at most 80 bytes") }
        guard let dst = q["dst"], !dst.isEmpty else { return bad("dst", "is required") }
        guard dst.utf8.count <= 128 else { return bad("dst", "must be at most 128 bytes") }
        var call = q["call"]
        if call?.isEmpty == true { call = nil }
        if let call, call.utf8.count > 128 { return bad("call", "must be at most 128 bytes") }
        let d = authorizer.authorize(account: account, destination: dst, call: call, settings: settings())
        counters.count(d.reason.rawValue)
        return text ? .plain(200, d.text) : .json(200, d.json)
    }

    // MARK: off-pool work

    func onLedger<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in ledgerQueue.async { c.resume(returning: body()) } }
    }

    func onPassword<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in passwordQueue.async { c.resume(returning: body()) } }
    }

    /// Runs a ledger write on the ledger queue and, when it succeeds, reloads the balance cache
    /// before answering, so an authorize right after a recharge sees the new credit.
    func write<T: Sendable>(_ body: @escaping @Sendable (Ledger) throws(LedgerError) -> T) async -> Result<T, LedgerError> {
        await onLedger { [ledger, authorizer, logger] in
            do throws(LedgerError) {
                let v = try body(ledger)
                do { try authorizer.cache.refresh(force: true, book: authorizer.book) } catch {
                    logger.error("api: balance cache reload failed after a write: \(error)")
                }
                return .success(v)
            } catch {
                return .failure(error)
            }
        }
    }

    func failure(_ e: LedgerError) -> APIResponse {
        switch e {
        case .duplicateUsername(let u): return .error(409, field: "username", "'\(u)' is already taken")
        case .duplicateEmail(let m):
            return .error(409, field: "email", "'\(m)' is already used by another client (emails compare case-insensitively)")
        case .accountTaken(let code, let owner): return .error(409, field: "account", "'\(code)' is already billed to client '\(owner)'")
        case .unknownClient(let u): return .error(404, field: "username", "no client named '\(u)'")
        case .invalidAmount(let why): return .error(422, field: "amount", why)
        case .invalidField(let f, let rule): return .error(422, field: f, rule)
        case .idempotencyConflict(let key, let detail): return .error(409, field: "idempotency_key", "'\(key)' was already used \(detail)")
        default:
            logger.error("api: store error: \(e)")
            return .error(500, field: "store", "internal error; the agent's log has the details")
        }
    }

    // MARK: admin

    func admin(_ r: APIRequest, _ body: () async -> APIResponse) async -> APIResponse {
        if let denied = adminDenial(r) { return denied }
        return await body()
    }

    /// The 401/403 an admin request gets, or nil when its bearer token is the admin token.
    func adminDenial(_ r: APIRequest) -> APIResponse? {
        guard let adminToken else {
            return .error(403, field: "authorization", "admin API disabled: set [api] admin_token_file")
        }
        let challenge = [("WWW-Authenticate", "Bearer realm=\"creditmeter admin\"")]
        guard let header = r.authorization, header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            return .error(401, field: "authorization", "send the admin token as 'Authorization: Bearer TOKEN'", headers: challenge)
        }
        let given = Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        guard ConstantTime.equals(given, adminToken) else {
            return .error(401, field: "authorization", "the bearer token is not the admin token", headers: challenge)
        }
        return nil
    }

    func listClients() async -> APIResponse {
        let t = settings().thresholds
        switch await onLedger({ [ledger] in Result { () throws(LedgerError) in try ledger.clients() } }) {
        case .success(let all): return .json(200, .array(all.map { ClientJSON.summary($0, t) }))
        case .failure(let e): return failure(e)
        }
    }

    func showClient(_ username: String) async -> APIResponse {
        let t = settings().thresholds
        switch await onLedger({ [ledger] in Result { () throws(LedgerError) in try ledger.client(username: username) } }) {
        case .success(let c?): return .json(200, ClientJSON.detail(c, t))
        case .success(nil): return failure(.unknownClient(username))
        case .failure(let e): return failure(e)
        }
    }

    func createClient(_ r: APIRequest) async -> APIResponse {
        var b = BodyReader(r.body, allowed: ClientForm.createKeys)
        let username = b.string("username")
        let form = ClientForm(reading: &b)
        let password = b.string("password")
        let confirmation = b.string("password_confirmation")
        var v = b.problems
        if !b.isValidBody { return .error(b.status, v) }
        if let username {
            if let bad = ClientRules.usernameViolation(username) { v.append(bad) }
        } else {
            v.append(.init(field: "username", rule: "is required"))
        }
        v += form.violations(creating: true)
        let s = settings()
        let plan = form.plan ?? "default"
        if let bad = Self.planViolation(plan, s) { v.append(bad) }
        v += Self.passwordViolations(password, confirmation, required: true)
        guard v.isEmpty, let username, let password else { return .error(422, v) }
        let hashed = await onPassword { Result { () throws(LedgerError) in try PasswordHasher.hash(password) } }
        guard case .success(let hash) = hashed else {
            if case .failure(let e) = hashed { return failure(e) }
            return .error(500, field: "password", "could not be hashed")
        }
        let now = clock()
        let fields = form.fields
        let accounts = form.accounts ?? []
        let result = await write { (l) throws(LedgerError) in
            try l.createClient(username: username, fields: fields, accounts: accounts, plan: plan, passwordHash: hash, now: now)
        }
        switch result {
        case .success(let c):
            logger.info("api: client created", metadata: ["client": "\(c.username)"])
            return .json(201, ClientJSON.detail(c, s.thresholds), headers: [("Location", "/v1/clients/\(c.username)")])
        case .failure(let e): return failure(e)
        }
    }

    func editClient(_ username: String, _ r: APIRequest) async -> APIResponse {
        var b = BodyReader(r.body, allowed: ClientForm.editKeys, emptyIsObject: true)
        if b.has("username") { b.problem("username", "cannot be changed") }
        let form = ClientForm(reading: &b)
        let password = b.string("password")
        let confirmation = b.string("password_confirmation")
        var v = b.problems
        if !b.isValidBody { return .error(b.status, v) }
        v += form.violations(creating: false)
        let s = settings()
        if let plan = form.plan, let bad = Self.planViolation(plan, s) { v.append(bad) }
        let changesPassword = password != nil || confirmation != nil
        if changesPassword { v += Self.passwordViolations(password, confirmation, required: true) }
        guard v.isEmpty else { return .error(422, v) }
        var hash: String?
        if changesPassword, let password {
            switch await onPassword({ Result { () throws(LedgerError) in try PasswordHasher.hash(password) } }) {
            case .success(let h): hash = h
            case .failure(let e): return failure(e)
            }
        }
        let now = clock()
        let fields = form.fields, accounts = form.accounts, plan = form.plan, newHash = hash
        let result = await write { (l) throws(LedgerError) in
            try l.editClient(username: username, fields: fields, accounts: accounts, plan: plan, passwordHash: newHash, now: now)
        }
        switch result {
        case .success(let c): return .json(200, ClientJSON.detail(c, s.thresholds))
        case .failure(let e): return failure(e)
        }
    }

    func setDisabled(_ username: String, _ disabled: Bool) async -> APIResponse {
        let now = clock()
        let t = settings().thresholds
        switch await write({ (l) throws(LedgerError) in try l.setDisabled(username: username, disabled, now: now) }) {
        case .success(let c):
            logger.info("api: client \(disabled ? "disabled" : "enabled")", metadata: ["client": "\(c.username)"])
            return .json(200, ClientJSON.detail(c, t))
        case .failure(let e): return failure(e)
        }
    }

    func recharge(_ username: String, _ r: APIRequest) async -> APIResponse {
        var b = BodyReader(r.body, allowed: ["amount", "idempotency_key"])
        let amountText = b.amount("amount")
        var key = b.string("idempotency_key")
        var v = b.problems
        if !b.isValidBody { return .error(b.status, v) }
        if let header = r.idempotencyKey {
            if let key, key != header {
                v.append(.init(field: "idempotency_key", rule: "differs from the Idempotency-Key header"))
            }
            key = header
        }
        if let key, key.isEmpty { v.append(.init(field: "idempotency_key", rule: "must not be empty when given")) }
        if let key, key.utf8.count > 200 { v.append(.init(field: "idempotency_key", rule: "must be at most 200 bytes")) }
        var micro: Int64 = 0
        if let amountText {
            do {
                micro = try Money.parse(amountText)
                if micro <= 0 { v.append(.init(field: "amount", rule: "must be greater than 0")) }
            } catch {
                v.append(.init(field: "amount", rule: "'\(amountText)' \(error)"))
            }
        } else if !v.contains(where: { $0.field == "amount" }) {
            v.append(.init(field: "amount", rule: "is required (credits as a string, e.g. \"12.5\")"))
        }
        guard v.isEmpty else { return .error(422, v) }
        let now = clock()
        let t = settings().thresholds
        let amount = micro, k = key
        switch await write({ (l) throws(LedgerError) in try l.recharge(username: username, amount: amount, key: k, now: now) }) {
        case .success(let (c, applied)):
            guard case .object(var pairs) = ClientJSON.detail(c, t) else { return .json(200, ClientJSON.detail(c, t)) }
            pairs.append(("applied", .bool(applied)))
            logger.info("api: recharge \(applied ? "applied" : "already applied")", metadata: [
                "client": "\(c.username)", "amount": "\(Money.format(amount))",
            ])
            return .json(200, .object(pairs), headers: applied ? [] : [("Idempotent-Replayed", "true")])
        case .failure(let e): return failure(e)
        }
    }

    static func planViolation(_ plan: String, _ s: APISettings) -> ClientRules.Violation? {
        if plan.isEmpty { return .init(field: "plan", rule: "must not be empty") }
        if !s.plans.isEmpty, !s.plans.contains(plan) { return .init(field: "plan", rule: "'\(plan)' is not a [[plan]] in the config") }
        return nil
    }

    static func passwordViolations(_ password: String?, _ confirmation: String?, required: Bool) -> [ClientRules.Violation] {
        var v: [ClientRules.Violation] = []
        if password == nil { v.append(.init(field: "password", rule: "is required")) }
        if confirmation == nil { v.append(.init(field: "password_confirmation", rule: "is required")) }
        if let password, let confirmation { v += ClientRules.passwordViolations(password, confirmation: confirmation) }
        return v
    }

    // MARK: self-service

    func me(_ r: APIRequest) async -> APIResponse {
        let challenge = [("WWW-Authenticate", "Basic realm=\"creditmeter\", charset=\"UTF-8\"")]
        guard let header = r.authorization, header.count > 6, header.prefix(6).lowercased() == "basic ",
              let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let decoded = String(data: data, encoding: .utf8), let colon = decoded.firstIndex(of: ":") else {
            return .error(401, field: "authorization", "send your username and password with HTTP Basic authentication", headers: challenge)
        }
        let username = String(decoded[..<colon])
        let password = String(decoded[decoded.index(after: colon)...])
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
        switch outcome {
        case .failure(let e): return failure(e)
        case .success(nil):
            return .error(401, field: "authorization", "wrong username or password", headers: challenge)
        case .success(let c?):
            if c.status == .disabled { return .error(403, field: "status", "this account is disabled") }
            return .json(200, ClientJSON.detail(c, settings().thresholds))
        }
    }
}

/// Reads a JSON object body field by field, collecting every problem instead of stopping at the first.
struct BodyReader {
    private var values: [String: JSONValue] = [:]
    private(set) var problems: [ClientRules.Violation] = []
    /// False when the body is not a JSON object at all (400); field problems keep it true (422).
    private(set) var isValidBody = true
    var status: Int { isValidBody ? 422 : 400 }

    init(_ body: [UInt8], allowed: [String], emptyIsObject: Bool = true) {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            if !emptyIsObject { fail("body", "a JSON object is required") }
            return
        }
        let parsed: JSONValue
        do { parsed = try JSONParser.parse(body) } catch {
            fail("body", error.description)
            return
        }
        guard case .object(let pairs) = parsed else {
            fail("body", "must be a JSON object")
            return
        }
        for (k, v) in pairs {
            if allowed.contains(k) { values[k] = v } else { problem(k, "is not a known field") }
        }
    }

    private mutating func fail(_ field: String, _ rule: String) {
        isValidBody = false
        problems.append(.init(field: field, rule: rule))
    }

    mutating func problem(_ field: String, _ rule: String) { problems.append(.init(field: field, rule: rule)) }

    func has(_ key: String) -> Bool { values[key] != nil }

    /// A string field; `null` counts as absent.
    mutating func string(_ key: String) -> String? {
        switch values[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: problem(key, "must be a string"); return nil
        }
    }

    mutating func strings(_ key: String) -> [String]? {
        switch values[key] {
        case nil, .null?: return nil
        case .array(let items)?:
            var out: [String] = []
            for item in items {
                guard case .string(let s) = item else { problem(key, "must be an array of strings"); return nil }
                out.append(s)
            }
            return out
        case .string(let s)?: return [s]
        default: problem(key, "must be an array of strings"); return nil
        }
    }

    /// An amount as a string (`"12.5"`) or a bare JSON number, taken as its exact text.
    mutating func amount(_ key: String) -> String? {
        switch values[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case .int(let i)?: return String(i)
        case .number(let n)?:
            if n.contains(where: { $0 == "e" || $0 == "E" }) {
                problem(key, "must be a plain decimal such as \"12.5\" (no exponent)")
                return nil
            }
            return n
        default: problem(key, "must be an amount such as \"12.5\""); return nil
        }
    }
}

/// The Create Client form's fields as the API takes them, with the CLI's rules (`clients create|edit`).
public struct ClientForm: Sendable {
    public var fields = ClientFields()
    public var accounts: [String]?
    public var plan: String?

    static let profileKeys = ["first_name", "last_name", "email", "phone", "country", "state", "city", "zip",
                              "address1", "address2", "company", "role"]
    static let createKeys = ["username"] + profileKeys + ["accounts", "plan", "password", "password_confirmation"]
    static let editKeys = profileKeys + ["accounts", "plan", "password", "password_confirmation", "username"]

    public init(fields: ClientFields = ClientFields(), accounts: [String]? = nil, plan: String? = nil) {
        self.fields = fields
        self.accounts = accounts
        self.plan = plan
    }

    init(reading b: inout BodyReader) {
        fields.firstName = b.string("first_name")
        fields.lastName = b.string("last_name")
        fields.email = b.string("email")
        fields.phone = b.string("phone")
        fields.country = b.string("country")
        fields.state = b.string("state")
        fields.city = b.string("city")
        fields.zip = b.string("zip")
        fields.address1 = b.string("address1")
        fields.address2 = b.string("address2")
        fields.company = b.string("company")
        fields.role = b.string("role")
        accounts = b.strings("accounts")
        plan = b.string("plan")
    }

    /// The rules that need no store, exactly as `creditmeter clients create|edit` checks them:
    /// first name, last name and email required on create (and non-blank when given on edit), other
    /// text fields at most 200 characters, the email's shape, and each account code.
    public func violations(creating: Bool) -> [ClientRules.Violation] {
        var v: [ClientRules.Violation] = []
        let f = fields
        for (name, value) in [("first_name", f.firstName), ("last_name", f.lastName), ("email", f.email)] {
            if creating {
                if let bad = ClientRules.requiredTextViolation(field: name, value ?? "") { v.append(bad) }
            } else if let value, let bad = ClientRules.requiredTextViolation(field: name, value) {
                v.append(bad)
            }
        }
        for (name, value) in [("phone", f.phone), ("country", f.country), ("state", f.state), ("city", f.city),
                              ("zip", f.zip), ("address1", f.address1), ("address2", f.address2),
                              ("company", f.company), ("role", f.role)] {
            if let value, value.count > 200 { v.append(.init(field: name, rule: "must be at most 200 characters")) }
        }
        if let email = f.email, !email.isEmpty, let bad = ClientRules.emailViolation(email) { v.append(bad) }
        for code in accounts ?? [] { if let bad = ClientRules.accountCodeViolation(code) { v.append(bad) } }
        return v
    }
}

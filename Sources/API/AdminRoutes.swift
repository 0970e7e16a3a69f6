import HTTPTypes
import Hummingbird
import Ledger
import MeterConfig
import MeterCore

/// The admin endpoints (`clients create|edit|disable|enable|recharge|list|show` over HTTP); the
/// group they are added to has already checked the admin token.
extension APIHandler {
    func addAdminRoutes(_ clients: RouterGroup<APIContext>) {
        clients.route("", [
            .get: { [self] _, _ in try await listClients() },
            .post: { [self] request, context in try await createClient(try await context.body(of: request, limit: Self.maxBody)) },
        ])
        clients.route(":username", [
            .get: { [self] _, context in try await showClient(context.parameter("username")) },
            .patch: { [self] request, context in
                try await editClient(context.parameter("username"), try await context.body(of: request, limit: Self.maxBody))
            },
        ])
        clients.route(":username/disable", [.post: { [self] _, context in try await setDisabled(context.parameter("username"), true) }])
        clients.route(":username/enable", [.post: { [self] _, context in try await setDisabled(context.parameter("username"), false) }])
        clients.route(":username/recharge", [
            .post: { [self] request, context in
                let header = HTTPField.Name("Idempotency-Key").flatMap { request.headers[$0] }
                return try await recharge(context.parameter("username"), try await context.body(of: request, limit: Self.maxBody),
                                          idempotencyKey: header)
            },
        ])
    }

    func listClients() async throws -> Response {
        let t = settings().thresholds
        let all = try await onLedger({ [ledger] in Result { () throws(LedgerError) in try ledger.clients() } }).get()
        return Reply.json(.ok, .array(all.map { ClientJSON.summary($0, t) }))
    }

    func showClient(_ username: String) async throws -> Response {
        let t = settings().thresholds
        let found = try await onLedger({ [ledger] in Result { () throws(LedgerError) in try ledger.client(username: username) } }).get()
        guard let c = found else { throw LedgerError.unknownClient(username) }
        return Reply.json(.ok, ClientJSON.detail(c, t))
    }

    func createClient(_ body: [UInt8]) async throws -> Response {
        var b = BodyReader(body, allowed: ClientForm.createKeys)
        let username = b.string("username")
        let form = ClientForm(reading: &b)
        let password = b.string("password")
        let confirmation = b.string("password_confirmation")
        if !b.isValidBody { throw APIError.form(b, b.problems) }
        let c = try await createClient(username: username, form: form, password: password, confirmation: confirmation,
                                       problems: b.problems)
        return Reply.json(.created, ClientJSON.detail(c, settings().thresholds), headers: [("Location", "/v1/clients/\(c.username)")])
    }

    /// Creates a client with the CLI's rules, for the admin API and the console alike. `problems` are
    /// those already found reading the request; every rule broken is reported together, as a 422
    /// `APIError`, and a clash in the store (username, email, account) as the `LedgerError`.
    package func createClient(username: String?, form: ClientForm, password: String?, confirmation: String?,
                              problems: [ClientRules.Violation] = []) async throws -> ClientRecord {
        var v = problems
        if let username {
            if let bad = ClientRules.usernameViolation(username) { v.append(bad) }
        } else {
            v.append(.init(field: "username", rule: "is required"))
        }
        v += form.violations(creating: true)
        let s = settings()
        let plan = form.plan ?? "default"
        if let bad = Self.planViolation(plan, s) { v.append(bad) }
        v += Self.passwordViolations(password, confirmation)
        guard v.isEmpty, let username, let password else { throw APIError(.unprocessableContent, v) }
        let hash = try await onPassword { Result { () throws(LedgerError) in try PasswordHasher.hash(password) } }.get()
        let now = clock()
        let fields = form.fields
        let accounts = form.accounts ?? []
        let c = try await write { (l) throws(LedgerError) in
            try l.createClient(username: username, fields: fields, accounts: accounts, plan: plan, passwordHash: hash, now: now)
        }.get()
        logger.info("api: client created", metadata: ["client": "\(c.username)"])
        return c
    }

    func editClient(_ username: String, _ body: [UInt8]) async throws -> Response {
        var b = BodyReader(body, allowed: ClientForm.editKeys, emptyIsObject: true)
        if b.has("username") { b.problem("username", "cannot be changed") }
        let form = ClientForm(reading: &b)
        let password = b.string("password")
        let confirmation = b.string("password_confirmation")
        if !b.isValidBody { throw APIError.form(b, b.problems) }
        let c = try await editClient(username, form: form, password: password, confirmation: confirmation, problems: b.problems)
        return Reply.json(.ok, ClientJSON.detail(c, settings().thresholds))
    }

    /// Edits a client with the CLI's rules (fields left nil keep their value; a password needs its
    /// confirmation); errors as `createClient(username:form:password:confirmation:problems:)`.
    package func editClient(_ username: String, form: ClientForm, password: String?, confirmation: String?,
                            problems: [ClientRules.Violation] = []) async throws -> ClientRecord {
        var v = problems
        v += form.violations(creating: false)
        let s = settings()
        if let plan = form.plan, let bad = Self.planViolation(plan, s) { v.append(bad) }
        let changesPassword = password != nil || confirmation != nil
        if changesPassword { v += Self.passwordViolations(password, confirmation) }
        guard v.isEmpty else { throw APIError(.unprocessableContent, v) }
        var hash: String?
        if changesPassword, let password {
            hash = try await onPassword({ Result { () throws(LedgerError) in try PasswordHasher.hash(password) } }).get()
        }
        let now = clock()
        let fields = form.fields, accounts = form.accounts, plan = form.plan, newHash = hash
        return try await write { (l) throws(LedgerError) in
            try l.editClient(username: username, fields: fields, accounts: accounts, plan: plan, passwordHash: newHash, now: now)
        }.get()
    }

    func setDisabled(_ username: String, _ disabled: Bool) async throws -> Response {
        let c = try await setStatus(username, disabled: disabled)
        return Reply.json(.ok, ClientJSON.detail(c, settings().thresholds))
    }

    /// Disables or enables a client, for the admin API and the console.
    package func setStatus(_ username: String, disabled: Bool) async throws -> ClientRecord {
        let now = clock()
        let c = try await write({ (l) throws(LedgerError) in try l.setDisabled(username: username, disabled, now: now) }).get()
        logger.info("api: client \(disabled ? "disabled" : "enabled")", metadata: ["client": "\(c.username)"])
        return c
    }

    func recharge(_ username: String, _ body: [UInt8], idempotencyKey header: String?) async throws -> Response {
        var b = BodyReader(body, allowed: ["amount", "idempotency_key"])
        let amountText = b.amount("amount")
        var key = b.string("idempotency_key")
        var v = b.problems
        if !b.isValidBody { throw APIError.form(b, v) }
        if let header {
            if let key, key != header {
                v.append(.init(field: "idempotency_key", rule: "differs from the Idempotency-Key header"))
            }
            key = header
        }
        let (c, applied) = try await recharge(username, amount: amountText, key: key, problems: v)
        var pairs = ClientJSON.summaryPairs(c, settings().thresholds) + ClientJSON.detailPairs(c)
        pairs.append(("applied", .bool(applied)))
        return Reply.json(.ok, .object(pairs), headers: applied ? [] : [("Idempotent-Replayed", "true")])
    }

    /// Adds `amount` credits (decimal text) once per idempotency key, for the admin API and the console;
    /// `applied` is false when the key had already recharged. Broken rules throw a 422 `APIError`.
    package func recharge(_ username: String, amount amountText: String?, key: String?,
                          problems: [ClientRules.Violation] = []) async throws -> (client: ClientRecord, applied: Bool) {
        var v = problems
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
        guard v.isEmpty else { throw APIError(.unprocessableContent, v) }
        let now = clock()
        let amount = micro, k = key
        let (c, applied) = try await write({ (l) throws(LedgerError) in
            try l.recharge(username: username, amount: amount, key: k, now: now)
        }).get()
        logger.info("api: recharge \(applied ? "applied" : "already applied")", metadata: [
            "client": "\(c.username)", "amount": "\(Money.format(amount))",
        ])
        return (c, applied)
    }

    static func planViolation(_ plan: String, _ s: APISettings) -> ClientRules.Violation? {
        if plan.isEmpty { return .init(field: "plan", rule: "must not be empty") }
        if !s.plans.isEmpty, !s.plans.contains(plan) { return .init(field: "plan", rule: "'\(plan)' is not a [[plan]] in the config") }
        return nil
    }

    /// Both are required whenever either is given; then the password rules apply.
    static func passwordViolations(_ password: String?, _ confirmation: String?) -> [ClientRules.Violation] {
        var v: [ClientRules.Violation] = []
        if password == nil { v.append(.init(field: "password", rule: "is required")) }
        if confirmation == nil { v.append(.init(field: "password_confirmation", rule: "is required")) }
        if let password, let confirmation { v += ClientRules.passwordViolations(password, confirmation: confirmation) }
        return v
    }
}

import Foundation
import HTTPTypes
import Hummingbird
import Ledger
import MeterCore
import NIOCore
import API

/// The console's and the portal's routes over one `APIHandler`: each operation is the admin API's
/// (`createClient`, `editClient`, `setStatus`, `recharge`, `verifiedClient`), rendered as pages.
struct Site: Sendable {
    let console: Console
    let handler: APIHandler

    static let operatorCookie = "cm_console"
    static let portalCookie = "cm_portal"
    /// The sign-in forms' CSRF token, double-submitted: the form's hidden field must equal this cookie.
    static let signInCookie = "cm_signin"
    static let maxForm = 64 * 1024

    func register(_ router: Router<APIContext>) {
        router.route("console", [.get: { request, context in try await consoleHome(request, context) }])
        router.route("console/signin", [.post: { request, context in try await operatorSignIn(request, context) }])
        router.route("console/signout", [.post: { request, context in try await signOut(request, context, portal: false) }])
        router.route("console/clients", [.post: { request, context in try await Self.refusing { try await create(request, context) } }])
        router.route("console/clients/new", [.get: { request, context in try await newClient(request, context) }])
        router.route("console/clients/:username", [.post: { request, context in try await Self.refusing { try await save(request, context) } }])
        router.route("console/clients/:username/edit", [.get: { request, context in try await edit(request, context) }])
        router.route("console/clients/:username/disable", [
            .get: { request, context in try await confirmDisable(request, context) },
            .post: { request, context in try await Self.refusing { try await setStatus(request, context, disabled: true) } },
        ])
        router.route("console/clients/:username/enable", [.post: { request, context in try await Self.refusing { try await setStatus(request, context, disabled: false) } }])
        router.route("console/clients/:username/recharge", [.post: { request, context in try await Self.refusing { try await recharge(request, context) } }])
        router.route("console/password-check", [.post: { request, context in try await passwordCheck(request, context) }])
        router.route("console/meters.json", [.get: { request, context in try await consoleMeters(request, context) }])
        router.route("console/assets/style.css", [.get: { _, _ in Web.response(.ok, "text/css; charset=utf-8", console.stylesheet, cache: true) }])
        router.route("console/assets/app.js", [.get: { _, _ in Web.response(.ok, "text/javascript; charset=utf-8", console.script, cache: true) }])
        router.route("console/assets/logo", [.get: { _, _ in
            guard let logo = console.logo else { return Web.html(.notFound, "no logo\n") }
            return Web.response(.ok, logo.type, logo.bytes, cache: true)
        }])
        router.route("portal", [.get: { request, context in try await portalHome(request, context) }])
        router.route("portal/signin", [.post: { request, context in try await portalSignIn(request, context) }])
        router.route("portal/signout", [.post: { request, context in try await signOut(request, context, portal: true) }])
        router.route("portal/meter.json", [.get: { request, context in try await portalMeter(request) }])
    }

    var thresholds: Thresholds { handler.settings().thresholds }

    // MARK: sessions and forms

    func operatorSession(_ r: Request) -> (id: String, session: Session)? {
        guard let id = Web.cookie(Self.operatorCookie, in: r), let s = console.sessions.session(id), s.principal == .operatorUser else {
            return nil
        }
        return (id, s)
    }

    func clientSession(_ r: Request) -> (id: String, session: Session, username: String)? {
        guard let id = Web.cookie(Self.portalCookie, in: r), let s = console.sessions.session(id),
              case .client(let username) = s.principal else { return nil }
        return (id, s, username)
    }

    func form(_ r: Request, _ context: APIContext) async throws -> FormData {
        let body = try await context.body(of: r, limit: Self.maxForm)
        return FormData(Substring(decoding: body, as: UTF8.self))
    }

    /// A state-changing request must carry its session's CSRF token (form field `csrf`, or the
    /// `X-CSRF-Token` header for the script's requests).
    static func csrfMatches(_ given: String?, _ session: Session) -> Bool {
        guard let given, !given.isEmpty else { return false }
        return ConstantTime.equals(given, session.csrf)
    }

    func forbidden(_ why: String) -> Response {
        Web.html(.forbidden, console.render("message", page: "Refused", ["heading": "Refused", "text": why], session: nil))
    }

    /// A signed-in operator's POST with its form; throws the refusal page (no session, stale CSRF
    /// token), which `refusing` turns into the answer, so nothing the request asked for is done.
    func operatorForm(_ r: Request, _ context: APIContext) async throws -> (Session, FormData) {
        guard let (_, session) = operatorSession(r) else {
            throw RefusedPage(response: forbidden("Your session has ended. Sign in again."))
        }
        let f = try await form(r, context)
        guard Self.csrfMatches(f["csrf"], session) else {
            throw RefusedPage(response: forbidden("This form has expired (its security token does not match). Reload the page and try again."))
        }
        return (session, f)
    }

    /// Answers a refused operator form with its page.
    static func refusing(_ body: () async throws -> Response) async throws -> Response {
        do { return try await body() } catch let refused as RefusedPage { return refused.response }
    }

    func remoteKey(_ context: APIContext) -> String {
        context.channel?.remoteAddress?.ipAddress ?? "local"
    }

    // MARK: operator sign-in

    func consoleHome(_ r: Request, _ context: APIContext) async throws -> Response {
        guard let (_, session) = operatorSession(r) else { return signInPage(portal: false) }
        return try await clientsPage(r, session)
    }

    func signInPage(portal: Bool, alert: String? = nil, username: String = "", status: HTTPResponse.Status = .ok,
                    headers: [(String, String)] = []) -> Response {
        let token = Token.make()
        var values: [String: Any] = [
            "heading": portal ? "Sign in to your account" : "Operator sign-in",
            "action": portal ? "/portal/signin" : "/console/signin", "operator": !portal, "csrf": token, "username": username,
        ]
        if let alert {
            values["hasAlert"] = true
            values["alert"] = alert
        }
        let cookie = Web.cookie(Self.signInCookie, token, path: "/", maxAge: 3600, secure: console.config.cookieSecure)
        return Web.html(status, console.render("signin", page: "Sign in", values, session: nil),
                        headers: headers + [("Set-Cookie", cookie)])
    }

    /// The sign-in form's double-submitted token: cross-site pages can post the form but cannot read or
    /// set the cookie, so a forged sign-in (into the attacker's session) is refused.
    func signInTokenMatches(_ r: Request, _ f: FormData) -> Bool {
        guard let cookie = Web.cookie(Self.signInCookie, in: r), !cookie.isEmpty, let given = f["csrf"] else { return false }
        return ConstantTime.equals(given, cookie)
    }

    func operatorSignIn(_ r: Request, _ context: APIContext) async throws -> Response {
        let f = try await form(r, context)
        guard signInTokenMatches(r, f) else {
            return signInPage(portal: false, alert: "The sign-in form expired. Please try again.", status: .forbidden)
        }
        let keys = ["console:" + remoteKey(context)]
        let now = console.clock()
        if let wait = console.limiter.retryAfter(keys, now: now) {
            return signInPage(portal: false, alert: "Too many failed sign-ins. Try again in \(wait) seconds.",
                              status: .tooManyRequests, headers: [("Retry-After", String(wait))])
        }
        guard handler.adminToken != nil else {
            return signInPage(portal: false, alert: "The console is off: set [api] admin_token_file.", status: .forbidden)
        }
        let token = (f["token"] ?? "").trimmingCharacters(in: .whitespaces)
        // The admin API's own bearer check, in constant time.
        guard !token.isEmpty, handler.adminDenial("Bearer " + token) == nil else {
            console.limiter.failed(keys, now: now)
            handler.logger.notice("console: operator sign-in refused", metadata: ["from": "\(remoteKey(context))"])
            return signInPage(portal: false, alert: "That is not the admin token.", status: .unauthorized)
        }
        console.limiter.succeeded(keys)
        let (id, _) = console.sessions.create(.operatorUser)
        return Web.redirect("/console/", cookies: [
            Web.cookie(Self.operatorCookie, id, path: "/console", maxAge: SessionStore.lifetime, secure: console.config.cookieSecure),
        ])
    }

    func signOut(_ r: Request, _ context: APIContext, portal: Bool) async throws -> Response {
        let name = portal ? Self.portalCookie : Self.operatorCookie
        let id = Web.cookie(name, in: r)
        let f = try await form(r, context)
        if let session = console.sessions.session(id), Self.csrfMatches(f["csrf"], session) { console.sessions.end(id) }
        let path = portal ? "/portal" : "/console"
        return Web.redirect(path + "/", cookies: [Web.cookie(name, "", path: path, maxAge: 0, secure: console.config.cookieSecure)])
    }

    // MARK: clients page

    struct PageQuery {
        var search: String
        var page: Int

        init(_ r: Request) {
            let q = FormData(r.uri.query.map { Substring($0) })
            search = (q["q"] ?? "").trimmingCharacters(in: .whitespaces)
            page = max(1, min(1_000_000, Int(q["page"] ?? "") ?? 1))
        }

        func link(page p: Int) -> String {
            var pairs: [(String, String)] = []
            if !search.isEmpty { pairs.append(("q", search)) }
            if p > 1 { pairs.append(("page", String(p))) }
            return "/console/" + (pairs.isEmpty ? "" : "?" + FormData.encode(pairs))
        }
    }

    func loadPage(_ q: PageQuery) async throws -> (total: Int, clients: [ClientRecord]) {
        let ledger = handler.ledger
        let offset = (q.page - 1) * Console.pageSize
        return try await handler.onLedger {
            Result { () throws(LedgerError) in try ledger.clientPage(search: q.search, limit: Console.pageSize, offset: offset) }
        }.get()
    }

    /// The bar's fill and `aria-valuenow`: the whole percent, clamped to 0–100.
    static func bar(_ m: Meter) -> Int64 { min(100, max(0, m.percentHundredths / 100)) }

    static func meterValues(_ c: ClientRecord, _ t: Thresholds) -> [String: Any] {
        let level = c.meter.level(t)
        return ["display": c.meter.display, "bar": bar(c.meter), "level": level.rawValue, "color": level.color]
    }

    static func row(_ c: ClientRecord, _ t: Thresholds) -> [String: Any] {
        var v = meterValues(c, t)
        v["username"] = c.username
        v["name"] = "\(c.firstName) \(c.lastName)"
        v["company"] = c.company
        v["status"] = c.status.rawValue
        v["statusLabel"] = c.status == .active ? "Active" : "Disabled"
        v["active"] = c.status == .active
        return v
    }

    func clientsPage(_ r: Request, _ session: Session, alert: String? = nil,
                     status: HTTPResponse.Status = .ok) async throws -> Response {
        let q = PageQuery(r)
        let (total, rows) = try await loadPage(q)
        let t = thresholds
        let first = (q.page - 1) * Console.pageSize
        var values: [String: Any] = [
            "q": q.search, "hasQuery": !q.search.isEmpty, "clients": rows.map { Self.row($0, t) },
            "total": total, "range": rows.isEmpty ? "0" : "\(first + 1)–\(first + rows.count)",
            "hasPrevious": q.page > 1, "previous": q.link(page: q.page - 1),
            "hasNext": first + rows.count < total, "next": q.link(page: q.page + 1),
            "csrf": session.csrf, "here": q.link(page: q.page),
        ]
        if let alert {
            values["hasAlert"] = true
            values["alert"] = alert
        }
        return Web.html(status, console.render("clients", page: "Clients", values, session: session,
                                               signout: "/console/signout", meters: "/console/meters.json"))
    }

    /// The meters of the clients on the page the browser shows (same search and page), for the script.
    func consoleMeters(_ r: Request, _ context: APIContext) async throws -> Response {
        guard operatorSession(r) != nil else { return Web.json(.unauthorized, .object([("error", .string("sign in"))])) }
        let (_, rows) = try await loadPage(PageQuery(r))
        let t = thresholds
        return Web.json(.ok, .object([("meters", .array(rows.map { Self.meterJSON($0, t) }))]))
    }

    /// The API's client summary (`clients list --json`) plus the bar's clamped percent.
    static func meterJSON(_ c: ClientRecord, _ t: Thresholds) -> JSONValue {
        guard case .object(var pairs) = ClientJSON.summary(c, t) else { return ClientJSON.summary(c, t) }
        pairs.append(("bar", .int(bar(c.meter))))
        return .object(pairs)
    }

    // MARK: create and edit

    static let labels: [String: String] = [
        "username": "Username", "first_name": "First Name", "last_name": "Last Name", "email": "Email Address",
        "phone": "Phone Number", "country": "Country", "state": "State / Region", "city": "City", "zip": "Zip / Postal Code",
        "address1": "Address Line 1", "address2": "Address Line 2", "company": "Company", "role": "Role",
        "password": "Password", "password_confirmation": "Confirm Password", "amount": "Credits", "account": "Account",
        "plan": "Plan",
    ]

    static func autocomplete(_ name: String) -> String {
        let map = ["username": "off", "first_name": "given-name", "last_name": "family-name", "email": "email", "phone": "tel",
                   "country": "country-name", "state": "address-level1", "city": "address-level2", "zip": "postal-code",
                   "address1": "address-line1", "address2": "address-line2", "company": "organization", "role": "organization-title",
                   "password": "new-password", "password_confirmation": "new-password"]
        return map[name] ?? "off"
    }

    /// The Create Client (or Edit) form's values: each field with its label, what was typed (never a
    /// password), and the server's errors beside the field they name; errors naming no field go on top.
    func formPage(creating: Bool, username: String, typed: [String: String], problems: [ClientRules.Violation],
                  session: Session, status: HTTPResponse.Status) -> Response {
        var names = ["username"] + ProfileField.allCases.map(\.rawValue)
        if creating { names += ["password", "password_confirmation"] }
        var byField: [String: [String]] = [:]
        var general: [String] = []
        for p in problems {
            if names.contains(p.field) { byField[p.field, default: []].append(p.rule) } else {
                general.append("\(Self.labels[p.field] ?? p.field) \(p.rule)")
            }
        }
        let conditions = ClientRules.PasswordCondition.allCases.map { ["id": $0.rawValue, "label": $0.label] }
        let fields: [[String: Any]] = names.map { name in
            let isPassword = name == "password" || name == "password_confirmation"
            let label = Self.labels[name] ?? name
            var v: [String: Any] = [
                "name": name, "label": label, "type": isPassword ? "password" : (name == "email" ? "email" : "text"),
                "value": isPassword ? "" : (name == "username" && !creating ? username : typed[name] ?? ""),
                "autocomplete": Self.autocomplete(name), "readonly": name == "username" && !creating,
                "hasConditions": name == "password_confirmation", "conditions": conditions,
            ]
            if let rules = byField[name] {
                v["invalid"] = true
                v["error"] = rules.map { "\(label) \($0)" }.joined(separator: "; ")
            }
            return v
        }
        let values: [String: Any] = [
            "heading": creating ? "Create Client" : "Edit \(username)", "general": general, "fields": fields,
            "action": creating ? "/console/clients" : "/console/clients/\(username)", "submit": creating ? "Create" : "Save",
            "csrf": session.csrf,
        ]
        return Web.html(status, console.render("form", page: creating ? "Create Client" : "Edit Client", values, session: session,
                                               signout: "/console/signout"))
    }

    func newClient(_ r: Request, _ context: APIContext) async throws -> Response {
        guard let (_, session) = operatorSession(r) else { return Web.redirect("/console/") }
        return formPage(creating: true, username: "", typed: [:], problems: [], session: session, status: .ok)
    }

    /// The profile fields as typed. On create a field the form did not send is empty (as the CLI
    /// stores it); on edit it is left as it was, so a form missing a field never blanks it.
    static func clientForm(_ f: FormData, creating: Bool) -> ClientForm {
        var form = ClientForm()
        for field in ProfileField.allCases { form.fields[field] = f[field.rawValue] ?? (creating ? "" : nil) }
        return form
    }

    /// The problems a refused create or edit reports, or nil when the failure is not the operator's to fix.
    static func problems(_ error: any Error) -> [ClientRules.Violation]? {
        if let e = error as? APIError { return e.problems }
        if let e = error as? LedgerError, e.status != .internalServerError { return [e.problem] }
        return nil
    }

    func create(_ r: Request, _ context: APIContext) async throws -> Response {
        let (session, f) = try await operatorForm(r, context)
        let username = f["username"] ?? ""
        do {
            _ = try await handler.createClient(username: username, form: Self.clientForm(f, creating: true), password: f["password"] ?? "",
                                               confirmation: f["password_confirmation"] ?? "")
        } catch {
            guard let problems = Self.problems(error) else { throw error }
            return formPage(creating: true, username: username, typed: f.values, problems: problems, session: session,
                            status: .unprocessableContent)
        }
        return Web.redirect(PageQuery.link(search: username))
    }

    func edit(_ r: Request, _ context: APIContext) async throws -> Response {
        guard let (_, session) = operatorSession(r) else { return Web.redirect("/console/") }
        let username = context.parameter("username")
        guard let c = try await loadClient(username) else { return notFound(username, session) }
        var typed: [String: String] = [:]
        for field in ProfileField.allCases { typed[field.rawValue] = c[field] }
        return formPage(creating: false, username: username, typed: typed, problems: [], session: session, status: .ok)
    }

    func save(_ r: Request, _ context: APIContext) async throws -> Response {
        let (session, f) = try await operatorForm(r, context)
        let username = context.parameter("username")
        do {
            _ = try await handler.editClient(username, form: Self.clientForm(f, creating: false), password: nil, confirmation: nil)
        } catch {
            guard let problems = Self.problems(error) else { throw error }
            return formPage(creating: false, username: username, typed: f.values, problems: problems, session: session,
                            status: .unprocessableContent)
        }
        return Web.redirect(PageQuery.link(search: username))
    }

    func loadClient(_ username: String) async throws -> ClientRecord? {
        let ledger = handler.ledger
        return try await handler.onLedger { Result { () throws(LedgerError) in try ledger.client(username: username) } }.get()
    }

    func notFound(_ username: String, _ session: Session) -> Response {
        Web.html(.notFound, console.render("message", page: "Not found", [
            "heading": "No such client", "text": "There is no client named “\(username)”.",
        ], session: session, signout: "/console/signout"))
    }

    // MARK: disable, enable, recharge

    func confirmDisable(_ r: Request, _ context: APIContext) async throws -> Response {
        guard let (_, session) = operatorSession(r) else { return Web.redirect("/console/") }
        let username = context.parameter("username")
        guard let c = try await loadClient(username) else { return notFound(username, session) }
        let deny = handler.settings().authorize.denyDisabled
        let calls = deny
            ? "This agent is set to refuse its calls while it is disabled ([authorize] deny_disabled = true), so the PBX will not put them through."
            : "Its calls are still metered and still go through the PBX, unless the PBX restricts them ([authorize] deny_disabled = true)."
        let values: [String: Any] = [
            "username": c.username, "name": "\(c.firstName) \(c.lastName)", "calls": calls, "days": console.disabledDays,
            "csrf": session.csrf,
        ]
        return Web.html(.ok, console.render("disable", page: "Disable \(c.username)", values, session: session,
                                            signout: "/console/signout"))
    }

    func setStatus(_ r: Request, _ context: APIContext, disabled: Bool) async throws -> Response {
        let (session, _) = try await operatorForm(r, context)
        let username = context.parameter("username")
        do {
            _ = try await handler.setStatus(username, disabled: disabled)
        } catch LedgerError.unknownClient {
            return notFound(username, session)
        }
        // Console access ends at once, not when the portal session would have expired.
        if disabled { console.sessions.endAll(client: username) }
        return Web.redirect(PageQuery.link(search: username))
    }

    func recharge(_ r: Request, _ context: APIContext) async throws -> Response {
        let (session, f) = try await operatorForm(r, context)
        let username = context.parameter("username")
        let key = f["idempotency_key"].flatMap { $0.isEmpty ? nil : $0 }
        do {
            _ = try await handler.recharge(username, amount: (f["credits"] ?? "").trimmingCharacters(in: .whitespaces), key: key)
        } catch {
            guard let problems = Self.problems(error) else { throw error }
            let text = problems.map { "\(Self.labels[$0.field] ?? $0.field) \($0.rule)" }.joined(separator: "; ")
            return try await clientsPage(r, session, alert: "Recharge of \(username) refused: \(text)", status: .unprocessableContent)
        }
        // Back to the page the dialog was opened on; only a console path, never another site.
        let back = f["return"] ?? ""
        let safe = back.hasPrefix("/console/") && !back.hasPrefix("//") && !back.contains("\\") ? back : "/console/"
        return Web.redirect(safe)
    }

    /// Which password conditions the typed password meets: the Create Client form asks as the operator
    /// types, so the list it ticks is the server's own rule.
    func passwordCheck(_ r: Request, _ context: APIContext) async throws -> Response {
        guard let (_, session) = operatorSession(r) else { return Web.json(.unauthorized, .object([("error", .string("sign in"))])) }
        guard Self.csrfMatches(HTTPField.Name("X-CSRF-Token").flatMap { r.headers[$0] }, session) else {
            return Web.json(.forbidden, .object([("error", .string("csrf token"))]))
        }
        let f = try await form(r, context)
        let password = f["password"] ?? "", confirmation = f["password_confirmation"] ?? ""
        let items = ClientRules.PasswordCondition.allCases.map { c -> JSONValue in
            .object([("id", .string(c.rawValue)), ("met", .bool(c.isMet(password, confirmation: confirmation)))])
        }
        return Web.json(.ok, .object([("conditions", .array(items))]))
    }

    // MARK: portal

    func portalHome(_ r: Request, _ context: APIContext) async throws -> Response {
        guard let (id, session, username) = clientSession(r) else { return signInPage(portal: true) }
        guard let c = try await loadClient(username), c.status == .active else {
            console.sessions.end(id)
            return signInPage(portal: true, alert: "This account is disabled.", status: .forbidden)
        }
        let ledger = handler.ledger
        let (calls, recharges) = try await handler.onLedger {
            Result { () throws(LedgerError) in
                (try ledger.recentCalls(username: username, limit: 50), try ledger.recentRecharges(username: username, limit: 50))
            }
        }.get()
        var values = Self.meterValues(c, thresholds)
        values["username"] = c.username
        values["name"] = "\(c.firstName) \(c.lastName)"
        values["calls"] = calls.map { call -> [String: Any] in
            ["time": Self.time(call.at), "destination": call.destination, "duration": Self.duration(call.billsec),
             "cost": Money.format(call.cost)]
        }
        values["recharges"] = recharges.map { ["time": Self.time($0.at), "amount": Money.format($0.amount)] }
        return Web.html(.ok, console.render("portal", page: "My credits", values, session: session, signout: "/portal/signout",
                                            meters: "/portal/meter.json"))
    }

    static func time(_ epoch: Int64) -> String {
        let t = CivilTime(epoch: epoch)
        return "\(t.date) \(t.time) UTC"
    }

    static func duration(_ seconds: Int64) -> String {
        let s = max(0, seconds)
        let tail = String(s % 60)
        return "\(s / 60):" + (tail.count < 2 ? "0" + tail : tail)
    }

    func portalSignIn(_ r: Request, _ context: APIContext) async throws -> Response {
        let f = try await form(r, context)
        let username = f["username"] ?? ""
        guard signInTokenMatches(r, f) else {
            return signInPage(portal: true, alert: "The sign-in form expired. Please try again.", username: username, status: .forbidden)
        }
        // Both keys: one address cannot try many accounts, nor many addresses one account.
        let keys = ["portal:" + remoteKey(context), "portal-user:" + username.lowercased()]
        let now = console.clock()
        if let wait = console.limiter.retryAfter(keys, now: now) {
            return signInPage(portal: true, alert: "Too many failed sign-ins. Try again in \(wait) seconds.", username: username,
                              status: .tooManyRequests, headers: [("Retry-After", String(wait))])
        }
        guard let c = try await handler.verifiedClient(username: username, password: f["password"] ?? "") else {
            console.limiter.failed(keys, now: now)
            return signInPage(portal: true, alert: "Wrong username or password.", username: username, status: .unauthorized)
        }
        guard c.status == .active else {
            return signInPage(portal: true, alert: "This account is disabled.", username: username, status: .forbidden)
        }
        console.limiter.succeeded(keys)
        let (id, _) = console.sessions.create(.client(c.username))
        return Web.redirect("/portal/", cookies: [
            Web.cookie(Self.portalCookie, id, path: "/portal", maxAge: SessionStore.lifetime, secure: console.config.cookieSecure),
        ])
    }

    func portalMeter(_ r: Request) async throws -> Response {
        guard let (_, _, username) = clientSession(r) else { return Web.json(.unauthorized, .object([("error", .string("sign in"))])) }
        guard let c = try await loadClient(username), c.status == .active else {
            return Web.json(.forbidden, .object([("error", .string("disabled"))]))
        }
        return Web.json(.ok, .object([("meters", .array([Self.meterJSON(c, thresholds)]))]))
    }
}

/// A page sent instead of doing what a request asked (no session, a stale CSRF token).
struct RefusedPage: Error {
    let response: Response
}

extension Site.PageQuery {
    /// The Clients page searched for one client: where a change to it lands, showing its row.
    static func link(search: String) -> String {
        "/console/" + (search.isEmpty ? "" : "?" + FormData.encode([("q", search)]))
    }
}


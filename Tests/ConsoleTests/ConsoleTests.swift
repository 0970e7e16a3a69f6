@testable import Console
import Foundation
import Ledger
import MeterConfig
import MeterCore
import Testing

/// Everything a hostile user might type: markup, both quotes, an ampersand.
let hostile = "<script>alert(\"x\")</script>'&"

@Suite("Console pages, driven in process")
struct ConsolePageTests {
    @Test("sign-in: the admin token opens a 12 h HttpOnly, SameSite=Strict session; a wrong one does not")
    func signIn() async throws {
        let b = try ConsoleBench()
        let form = try await b.request("GET", "/console/")
        #expect(form.status == 200 && form.text.contains("<label for=\"token\">Admin token</label>"))
        let wrong = try await b.request("POST", "/console/signin", form: [("csrf", ConsoleBench.csrf(form) ?? ""), ("token", "nope")])
        #expect(wrong.status == 401 && wrong.text.contains("That is not the admin token."))
        #expect(b.jar[Site.operatorCookie] == nil)
        let ok = try await b.signIn()
        #expect(ok.status == 303 && ok.header("Location") == "/console/")
        let cookie = try #require(ok.cookies.first { $0.hasPrefix(Site.operatorCookie + "=") })
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age=43200"))
        #expect(!cookie.contains("Secure"))
        let home = try await b.request("GET", "/console/")
        #expect(home.status == 200 && home.text.contains("New Client") && home.text.contains(">Sign out</button>"))
        b.clock.advance(12 * 3600)
        let expired = try await b.request("GET", "/console/")
        #expect(expired.text.contains("Admin token") && !expired.text.contains("New Client"))
    }

    @Test("cookie_secure marks the session cookie Secure")
    func secureCookie() async throws {
        var c = ConsoleConfig()
        c.cookieSecure = true
        let b = try ConsoleBench(console: c)
        let ok = try await b.signIn()
        #expect(ok.cookies.allSatisfy { $0.hasSuffix("; Secure") })
    }

    @Test("sign-in without the form's token is refused, and failures are rate-limited")
    func signInLimits() async throws {
        let b = try ConsoleBench()
        _ = try await b.request("GET", "/console/")
        let forged = try await b.request("POST", "/console/signin", form: [("csrf", "guess"), ("token", adminToken)])
        #expect(forged.status == 403 && b.jar[Site.operatorCookie] == nil)
        for _ in 0 ..< 5 { #expect(try await b.signIn(token: "wrong-token").status == 401) }
        let limited = try await b.signIn()
        #expect(limited.status == 429 && limited.header("Retry-After") != nil && b.jar[Site.operatorCookie] == nil)
        b.clock.advance(61)
        #expect(try await b.signIn().status == 303)
    }

    @Test("every state-changing form needs the session's CSRF token")
    func csrf() async throws {
        let (b, good) = try await ConsoleBench.signedIn(with: "alice")
        #expect(!good.isEmpty)
        let posts: [(String, [(String, String)])] = [
            ("/console/clients", [("username", "bob"), ("first_name", "B"), ("last_name", "C"), ("email", "b@example.com"),
                                  ("password", goodPassword), ("password_confirmation", goodPassword)]),
            ("/console/clients/alice", [("first_name", "X"), ("last_name", "Y"), ("email", "alice@example.com")]),
            ("/console/clients/alice/recharge", [("credits", "5"), ("idempotency_key", "k1")]),
            ("/console/clients/alice/disable", []),
        ]
        for (path, form) in posts {
            #expect(try await b.request("POST", path, form: form).status == 403, "no token: \(path)")
            #expect(try await b.request("POST", path, form: form + [("csrf", "wrong")]).status == 403, "wrong token: \(path)")
        }
        let alice = try #require(try b.ledger.client(username: "alice"))
        #expect(alice.status == .active && alice.meter.assigned == 0 && alice.firstName == "Ann")
        #expect(try b.ledger.client(username: "bob") == nil)
        let check = try await b.request("POST", "/console/password-check", form: [("password", "a")])
        #expect(check.status == 403)
        let checked = try await b.request("POST", "/console/password-check", form: [("password", "abc"), ("password_confirmation", "abc")],
                                          headers: [("X-CSRF-Token", good)])
        #expect(checked.status == 200 && checked.text.contains("{\"id\":\"lowercase\",\"met\":true}")
            && checked.text.contains("{\"id\":\"length\",\"met\":false}"))
    }

    @Test("Create Client: the server's errors beside their fields, typed values kept, passwords never")
    func createErrors() async throws {
        let b = try ConsoleBench()
        _ = try await b.signIn()
        let csrf = try await b.pageCsrf()
        let form: [(String, String)] = [
            ("csrf", csrf), ("username", "carol"), ("first_name", "Carol"), ("last_name", ""), ("email", "carol@example.com"),
            ("company", "Acme"), ("password", "weak"), ("password_confirmation", "weak"),
        ]
        let refused = try await b.request("POST", "/console/clients", form: form)
        #expect(refused.status == 422)
        #expect(refused.text.contains("id=\"password\" name=\"password\" type=\"password\" value=\"\""))
        #expect(!refused.text.contains("value=\"weak\""))
        #expect(refused.text.contains("id=\"first_name\" name=\"first_name\" type=\"text\" value=\"Carol\""))
        #expect(refused.text.contains("value=\"Acme\""))
        #expect(refused.text.contains("name=\"last_name\" type=\"text\" value=\"\" autocomplete=\"family-name\" aria-invalid=\"true\""))
        #expect(refused.text.contains("Last Name is required"))
        #expect(refused.text.contains("Password must contain at least one digit"))
        #expect(try b.ledger.client(username: "carol") == nil)
        let good = form.map { ($0.0, $0.0 == "last_name" ? "Ray" : $0.0.hasPrefix("password") ? goodPassword : $0.1) }
        let created = try await b.request("POST", "/console/clients", form: good)
        #expect(created.status == 303 && created.header("Location") == "/console/?q=carol")
        let c = try #require(try b.ledger.client(username: "carol"))
        let stored = try b.ledger.passwordHash(username: "carol") ?? ""
        #expect(c.company == "Acme" && c.lastName == "Ray" && PasswordHasher.verify(goodPassword, against: stored))
        let again = try await b.request("POST", "/console/clients", form: good)
        #expect(again.status == 422 && again.text.contains("Username &#39;carol&#39; is already taken"))
    }

    @Test("a new client's meter is 0 | 0 | 0, exhausted, red, at 0 %; the row carries its hooks")
    func meterHooks() async throws {
        let b = try ConsoleBench()
        try b.makeClient("dave")
        _ = try await b.signIn()
        let page = try await b.request("GET", "/console/")
        #expect(page.text.contains("<tr class=\"client\" data-username=\"dave\">"))
        #expect(page.text.contains("<div class=\"meter-text\">0 | 0 | 0</div>"))
        #expect(page.text.contains("role=\"meter\" aria-label=\"Credits of dave\" aria-valuemin=\"0\" aria-valuemax=\"100\" aria-valuenow=\"0\""))
        #expect(page.text.contains("data-level=\"exhausted\" data-color=\"red\""))
        #expect(page.text.contains(">Active</span>") && page.text.contains(">Recharge Credits</button>"))
        #expect(page.text.contains(">Edit</a>") && page.text.contains(">Disable</a>"))
    }

    @Test("Recharge: one idempotency key recharges once; the page shows the new figures")
    func recharge() async throws {
        let (b, csrf) = try await ConsoleBench.signedIn(with: "erin")
        let form = [("csrf", csrf), ("credits", "100"), ("idempotency_key", "dialog-1"), ("return", "/console/?q=erin")]
        let first = try await b.request("POST", "/console/clients/erin/recharge", form: form)
        let second = try await b.request("POST", "/console/clients/erin/recharge", form: form)
        #expect(first.status == 303 && second.status == 303 && first.header("Location") == "/console/?q=erin")
        #expect(try b.ledger.client(username: "erin")?.meter == Meter(assigned: 100_000_000, used: 0))
        let page = try await b.request("GET", "/console/?q=erin")
        #expect(page.text.contains("100 | 0 | 100") && page.text.contains("aria-valuenow=\"100\"")
            && page.text.contains("data-level=\"ok\" data-color=\"primary\""))
        let bad = try await b.request("POST", "/console/clients/erin/recharge", form: [("csrf", csrf), ("credits", "0")])
        #expect(bad.status == 422 && bad.text.contains("Credits must be greater than 0"), "\(bad.text)")
        let offsite = try await b.request("POST", "/console/clients/erin/recharge",
                                          form: [("csrf", csrf), ("credits", "1"), ("return", "//evil.example/")])
        #expect(offsite.header("Location") == "/console/")
        let meters = try await b.request("GET", "/console/meters.json?q=erin")
        #expect(meters.text.contains("\"username\":\"erin\"") && meters.text.contains("\"available\":\"101\"")
            && meters.text.contains("\"bar\":100"))
    }

    @Test("Disable warns what it means; a disabled client cannot sign in to the portal, and its session ends")
    func disableAndPortal() async throws {
        let b = try ConsoleBench()
        try b.makeClient("fay")
        _ = try b.ledger.recharge(username: "fay", amount: 10_000_000, key: nil, now: 1_800_000_000)
        let portalForm = try await b.request("GET", "/portal/")
        #expect(portalForm.text.contains("<label for=\"username\">Username</label>") && !portalForm.text.contains("Admin token"))
        let wrong = try await b.request("POST", "/portal/signin", form: [("csrf", ConsoleBench.csrf(portalForm) ?? ""),
                                                                         ("username", "fay"), ("password", "Wrong0ne!")])
        #expect(wrong.status == 401 && wrong.text.contains("Wrong username or password."))
        let ok = try await b.request("POST", "/portal/signin", form: [("csrf", ConsoleBench.csrf(wrong) ?? ""),
                                                                      ("username", "fay"), ("password", goodPassword)])
        #expect(ok.status == 303 && ok.header("Location") == "/portal/")
        let mine = try await b.request("GET", "/portal/")
        #expect(mine.text.contains("10 | 0 | 10") && mine.text.contains("role=\"meter\"") && mine.text.contains("No calls yet."))
        // The operator disables fay.
        _ = try await b.signIn()
        let confirm = try await b.request("GET", "/console/clients/fay/disable")
        #expect(confirm.text.contains("takes away its console access only"))
        #expect(confirm.text.contains("still go through the PBX, unless the PBX restricts them ([authorize] deny_disabled = true)"))
        #expect(confirm.text.contains("disabled for more than 90 days is deleted with all its data, beyond recovery"))
        let done = try await b.request("POST", "/console/clients/fay/disable", form: [("csrf", ConsoleBench.csrf(confirm) ?? "")])
        #expect(done.status == 303)
        let row = try await b.request("GET", "/console/?q=fay")
        #expect(row.text.contains(">Disabled</span>") && row.text.contains(">Enable</button>"))
        let after = try await b.request("GET", "/portal/")
        #expect(after.text.contains("Sign in") && !after.text.contains("10 | 0 | 10"))
        let refused = try await b.request("POST", "/portal/signin", form: [("csrf", ConsoleBench.csrf(after) ?? ""),
                                                                           ("username", "fay"), ("password", goodPassword)])
        #expect(refused.status == 403 && refused.text.contains("This account is disabled."))
        #expect(try await b.request("GET", "/portal/meter.json").status == 401)
        let unknown = try await b.request("POST", "/console/clients/nobody/enable", form: [("csrf", ConsoleBench.csrf(confirm) ?? "")])
        #expect(unknown.status == 404 && unknown.text.contains("There is no client named “nobody”."))
    }

    @Test("the portal lists the client's own calls, newest first, at their current (rerated) cost")
    func portalCalls() async throws {
        let b = try ConsoleBench()
        let ivy = try b.makeClient("ivy")
        let other = try b.makeClient("jon")
        _ = try b.ledger.recharge(username: "ivy", amount: 50_000_000, key: nil, now: 1_800_000_000)
        func charge(_ c: ClientRecord, _ n: Int, billsec: Int64, cost: Int64) -> Charge {
            Charge(identity: "call-\(n)", clientID: c.id, account: c.username, source: "test", position: Int64(n), line: Int64(n),
                   destination: "+44\(n)", prefix: "44", billsec: billsec, chargedSeconds: billsec, cost: cost,
                   startedAt: 1_800_000_000 + Int64(n) * 60)
        }
        _ = try b.ledger.commit(ChargeBatch(source: "test", position: nil, charges: [
            charge(ivy, 1, billsec: 61, cost: 1_500_000), charge(other, 2, billsec: 5, cost: 100_000),
            charge(ivy, 3, billsec: 7, cost: 250_000),
        ], quarantined: []), now: 1_800_000_500)
        let first = try #require(try b.ledger.usage(clientID: ivy.id, from: 0, to: 2_000_000_000).first)
        _ = try b.ledger.applyRerate(clientID: ivy.id, changes: [RerateChange(usageID: first.id, newCost: 1_000_000, pricedBy: nil)],
                                     range: (0, 2_000_000_000), now: 1_800_000_600)
        var page = try await b.request("GET", "/portal/")
        page = try await b.request("POST", "/portal/signin", form: [("csrf", ConsoleBench.csrf(page) ?? ""),
                                                                    ("username", "ivy"), ("password", goodPassword)])
        let mine = try await b.request("GET", "/portal/")
        let rows = mine.text.components(separatedBy: "<tr class=\"call\">").dropFirst().map { $0.prefix { $0 != "\n" } }
        #expect(rows == [
            "<td>2027-01-15 08:03:00 UTC</td><td>+443</td><td>0:07</td><td>0.25</td></tr>",
            "<td>2027-01-15 08:01:00 UTC</td><td>+441</td><td>1:01</td><td>1</td></tr>",
        ], "\(rows)")
        #expect(mine.text.contains("<td>50</td>"))
    }

    @Test("portal sign-in is rate-limited per username")
    func portalLimit() async throws {
        let b = try ConsoleBench()
        try b.makeClient("gus")
        var page = try await b.request("GET", "/portal/")
        for _ in 0 ..< 5 {
            page = try await b.request("POST", "/portal/signin", form: [("csrf", ConsoleBench.csrf(page) ?? ""),
                                                                        ("username", "gus"), ("password", "Bad-pass1")])
            #expect(page.status == 401)
        }
        page = try await b.request("POST", "/portal/signin", form: [("csrf", ConsoleBench.csrf(page) ?? ""),
                                                                    ("username", "gus"), ("password", goodPassword)])
        #expect(page.status == 429 && b.jar[Site.portalCookie] == nil)
    }

    @Test("Edit keeps the rules and says Save; search and paging run on the server")
    func editSearchPaging() async throws {
        let b = try ConsoleBench()
        for i in 0 ..< 120 { try b.makeClient(String(format: "u%03d", i), ["last_name": i == 77 ? "Zebra" : "Lee"]) }
        _ = try await b.signIn()
        let edit = try await b.request("GET", "/console/clients/u005/edit")
        #expect(edit.text.contains(">Save</button>") && edit.text.contains("value=\"u005\" autocomplete=\"off\" readonly"))
        let saved = try await b.request("POST", "/console/clients/u005", form: [
            ("csrf", ConsoleBench.csrf(edit) ?? ""), ("first_name", "Ann"), ("last_name", "Lee"), ("email", "u005@example.com"),
            ("company", "New Co"),
        ])
        let edited = try b.ledger.client(username: "u005")
        #expect(saved.status == 303 && edited?.company == "New Co")
        // A field the form did not send keeps its value.
        _ = try await b.request("POST", "/console/clients/u005", form: [("csrf", ConsoleBench.csrf(edit) ?? ""), ("city", "Oslo")])
        let kept = try b.ledger.client(username: "u005")
        #expect(kept?.company == "New Co" && kept?.city == "Oslo" && kept?.firstName == "Ann")
        let blank = try await b.request("POST", "/console/clients/u005", form: [
            ("csrf", ConsoleBench.csrf(edit) ?? ""), ("first_name", ""), ("last_name", "Lee"), ("email", "u005@example.com"),
        ])
        #expect(blank.status == 422 && blank.text.contains("First Name is required"))
        let first = try await b.request("GET", "/console/")
        #expect(first.text.components(separatedBy: "<tr class=\"client\"").count - 1 == 50)
        #expect(first.text.contains("1–50 of 120") && first.text.contains("href=\"/console/?page=2\""))
        let third = try await b.request("GET", "/console/?page=3")
        #expect(third.text.contains("101–120 of 120") && third.text.contains("data-username=\"u119\""))
        let found = try await b.request("GET", "/console/?q=zebra")
        #expect(found.text.contains("data-username=\"u077\"") && found.text.contains("1–1 of 1"))
        let byEmail = try await b.request("GET", "/console/?q=u042%40example")
        #expect(byEmail.text.contains("data-username=\"u042\"") && byEmail.text.contains("of 1"))
        let literal = try await b.request("GET", "/console/?q=%25")
        #expect(literal.text.contains("No clients match"))
    }
}

@Suite("Console escaping and headers")
struct ConsoleEscapingTests {
    @Test("markup and quotes typed into every field come back escaped on every page")
    func escaping() async throws {
        let b = try ConsoleBench()
        var fields: [String: String] = [:]
        for f in ProfileField.allCases { fields[f.rawValue] = hostile }
        fields["email"] = "x@example.com"
        try b.makeClient("mallory", fields)
        _ = try b.ledger.recharge(username: "mallory", amount: 1_000_000, key: nil, now: 1_800_000_000)
        _ = try await b.signIn()
        var pages = [
            try await b.request("GET", "/console/"),
            try await b.request("GET", "/console/?q=" + FormData.encode([("", hostile)]).dropFirst()),
            try await b.request("GET", "/console/clients/mallory/edit"),
            try await b.request("GET", "/console/clients/mallory/disable"),
        ]
        // A refused create echoes what was typed, username included.
        let csrf = ConsoleBench.csrf(pages[0]) ?? ""
        pages.append(try await b.request("POST", "/console/clients", form: [("csrf", csrf), ("username", hostile)]
            + ProfileField.allCases.map { ($0.rawValue, hostile) }))
        let portal = try await b.request("GET", "/portal/")
        pages.append(try await b.request("POST", "/portal/signin", form: [("csrf", ConsoleBench.csrf(portal) ?? ""),
                                                                          ("username", hostile), ("password", "x")]))
        // Each sign-in page sets a fresh sign-in token: answer the last one.
        _ = try await b.request("POST", "/portal/signin", form: [("csrf", ConsoleBench.csrf(pages[pages.count - 1]) ?? ""),
                                                                 ("username", "mallory"), ("password", goodPassword)])
        pages.append(try await b.request("GET", "/portal/"))
        for (i, p) in pages.enumerated() {
            #expect(!p.text.contains("<script>alert"), "page \(i) has the raw markup")
            #expect(!p.text.contains("alert(\"x\")"), "page \(i) has a raw quote")
            #expect(p.text.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;"), "page \(i) lacks the escaped text")
        }
        #expect(pages[0].text.contains("<td>&lt;script&gt;"))
        #expect(pages[2].text.contains("value=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;\""))
    }

    @Test("pages carry a CSP without inline script, and run only the script file")
    func headers() async throws {
        let b = try ConsoleBench()
        try b.makeClient("hal")
        let signin = try await b.request("GET", "/console/")
        _ = try await b.signIn()
        let pages = [signin, try await b.request("GET", "/console/"), try await b.request("GET", "/console/clients/new"),
                     try await b.request("GET", "/portal/")]
        for p in pages {
            let csp = try #require(p.header("Content-Security-Policy"))
            #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("default-src 'none'"))
            #expect(p.header("Cache-Control") == "no-store" && p.header("X-Frame-Options") == "DENY")
            let scripts = p.text.components(separatedBy: "<script").dropFirst()
            #expect(scripts.count == 1 && scripts.allSatisfy { $0.hasPrefix(" src=\"/console/assets/app.js\"") })
            #expect(p.text.range(of: #"\son[a-z]+="#, options: .regularExpression) == nil)
            #expect(p.text.range(of: #"style="#) == nil)
            #expect(!p.text.contains("http://") && !p.text.contains("https://"))
        }
        let css = try await b.request("GET", "/console/assets/style.css")
        #expect(css.status == 200 && css.text.contains("--primary:#1a73e8") && css.text.contains(".w37{width:37%}"))
        let js = try await b.request("GET", "/console/assets/app.js")
        #expect(js.status == 200 && js.header("Content-Type")?.hasPrefix("text/javascript") == true)
    }

    @Test("branding reaches every page")
    func branding() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("console-logo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let logo = dir.appendingPathComponent("logo.png")
        try Data([0x89, 0x50, 0x4E, 0x47]).write(to: logo)
        let b = try ConsoleBench(console: ConsoleConfig(title: "Acme <Voice>", primaryColor: "#ff0000", logoFile: logo.path))
        for p in [try await b.request("GET", "/console/"), try await b.request("GET", "/portal/")] {
            #expect(p.text.contains("<span class=\"brand\">Acme &lt;Voice&gt;</span>") && p.text.contains("<title>Sign in · Acme &lt;Voice&gt;</title>"))
            #expect(p.text.contains("<img src=\"/console/assets/logo\" alt=\"\">"))
        }
        let image = try await b.request("GET", "/console/assets/logo")
        #expect(image.status == 200 && image.header("Content-Type") == "image/png")
        #expect(try await b.request("GET", "/console/assets/style.css").text.contains("--primary:#ff0000"))
        #expect(throws: ConsoleStartupError.self) {
            var config = Config()
            config.console.logoFile = dir.appendingPathComponent("missing.png").path
            _ = try Console(config: config)
        }
    }
}

@Suite("[console] config")
struct ConsoleConfigTests {
    static func parse(_ text: String) throws(ConfigError) -> Config {
        try Config.parse(text, file: "test.toml", baseDirectory: "/etc/creditmeter", environment: [:])
    }

    @Test("defaults, the SPEC example, and errors naming key and line")
    func keys() throws {
        let d = try Self.parse("")
        #expect(d.console == ConsoleConfig(enabled: true, title: "creditmeter", primaryColor: "#1a73e8", logoFile: nil, cookieSecure: false))
        let c = try Self.parse("""
            [console]
            enabled = true
            title = "Acme Voice"
            primary_color = "#1a73e8"
            logo_file = "logo.png"
            cookie_secure = true
            """)
        #expect(c.console == ConsoleConfig(enabled: true, title: "Acme Voice", primaryColor: "#1a73e8",
                                           logoFile: "/etc/creditmeter/logo.png", cookieSecure: true))
        do {
            _ = try Self.parse("[console]\ntitle = \"x\"\ncolour = \"red\"\nprimary_color = \"red;}\"\n")
            Issue.record("accepted an unknown key")
        } catch {
            let issues = error.issues.map { "\($0.key)@\($0.line ?? 0)" }
            #expect(issues.contains("console.colour@3") && issues.contains("console.primary_color@4"), "\(issues)")
        }
    }

    @Test("a SIGHUP reload names changed [console] keys as needing a restart")
    func reload() throws {
        let running = try Self.parse("[console]\ntitle = \"A\"\n")
        #expect(try Self.parse("[console]\ntitle = \"A\"\n").keysNeedingRestart(comparedTo: running) == [])
        let edited = try Self.parse("[console]\ntitle = \"B\"\ncookie_secure = true\n")
        #expect(edited.keysNeedingRestart(comparedTo: running) == ["console.title", "console.cookie_secure"])
    }
}

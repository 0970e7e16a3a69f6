@testable import API
import Foundation
import Ledger
import MeterConfig
import MeterCore
import Testing

let token = "admin-token-0123456789"

/// A valid create body, with overrides.
func createBody(_ username: String, _ overrides: [String: String] = [:], accounts: [String]? = nil) -> String {
    var fields: [String: String] = [
        "username": username, "first_name": "Ann", "last_name": "Lee", "email": "\(username)@example.com",
        "password": "Passw0rd!", "password_confirmation": "Passw0rd!",
    ]
    for (k, v) in overrides { fields[k] = v }
    var pairs = fields.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \(JSONValue.string($0.value).serialized())" }
    if let accounts { pairs.append("\"accounts\": [\(accounts.map { JSONValue.string($0).serialized() }.joined(separator: ","))]") }
    return "{" + pairs.joined(separator: ", ") + "}"
}

@Suite("HTTP handlers, called directly")
struct HandlerTests {
    @Test("authorize: JSON and text, bad requests")
    func authorize() async throws {
        let s = try Store()
        try s.client("alice", credits: "1")
        try s.refresh()
        let h = try s.handler(limits: AuthorizeConfig(maxCallSeconds: 600))
        let j = await h.call("GET", "/v1/authorize?account=alice&dst=%2B4420&call=u1")
        #expect(j.status == 200 && j.contentType == "application/json")
        #expect(j.object["allow"] as? Bool == true && j.object["max_seconds"] as? Int == 600)
        #expect(j.object["available"] as? String == "1" && j.object["hold"] as? String == "0.31")
        let t = await h.call("GET", "/v1/authorize?account=alice&dst=4420&format=text")
        #expect(t.status == 200 && t.text == "ALLOW 600\n") // 1 - 0.31 held = 0.69 → 1335 s, capped at 600
        let u = await h.call("GET", "/v1/authorize?account=zed&dst=4420&format=text")
        #expect(u.text == "DENY unknown_account\n")
        let plus = await h.call("GET", "/v1/authorize?account=alice&dst=+4420&format=text")
        #expect(plus.text == "ALLOW 600\n") // a literal '+' is a plus, not a space
        let missing = await h.call("GET", "/v1/authorize?dst=4420")
        #expect(missing.status == 400 && missing.errorField == "account")
        let missingText = await h.call("GET", "/v1/authorize?account=alice&format=text")
        #expect(missingText.status == 400 && missingText.text == "DENY bad_request\n")
        let post = await h.call("POST", "/v1/authorize?account=alice&dst=4420")
        #expect(post.status == 405 && post.headers.contains { $0.0 == "Allow" && $0.1 == "GET" })
    }

    @Test("health, readiness and 404")
    func health() async throws {
        let s = try Store()
        let ready = ReadyFlag()
        let h = try s.handler(ready: ready)
        #expect(await h.call("GET", "/healthz").status == 200)
        #expect(await h.call("GET", "/readyz").status == 503)
        ready.set()
        #expect(await h.call("GET", "/readyz/").status == 200)
        #expect(await h.call("GET", "/nope").status == 404)
    }

    @Test("admin endpoints need the bearer token; without a token file they are off")
    func adminAuth() async throws {
        let s = try Store()
        let h = try s.handler()
        let none = await h.call("GET", "/v1/clients")
        #expect(none.status == 401 && none.errorField == "authorization")
        #expect(none.headers.contains { $0.0 == "WWW-Authenticate" })
        #expect(await h.call("GET", "/v1/clients", token: "admin-token-012345678").status == 401)
        #expect(await h.call("GET", "/v1/clients", token: token + "x").status == 401)
        #expect(await h.call("GET", "/v1/clients", token: token).status == 200)
        let off = try s.handler(token: nil)
        let r = await off.call("GET", "/v1/clients", token: token)
        #expect(r.status == 403 && r.text.contains("admin API disabled"))
    }

    @Test("the body is read only for an authenticated admin write; the rest is decided from the head")
    func bodyUseFromTheHead() async throws {
        let s = try Store()
        let h = try s.handler()
        /// "read" when the handler took the body, else "refuse <status>" or "ignore" (answered without it).
        func use(_ m: String, _ path: String, _ auth: String? = nil, _ handler: APIHandler? = nil) async -> String {
            let touched = Flag()
            let r = await (handler ?? h).call(m, path, body: "{}", authorization: auth, watched: touched)
            if touched.isSet { return "read" }
            return [401, 403].contains(r.status) ? "refuse \(r.status)" : "ignore"
        }
        #expect(await use("POST", "/v1/clients") == "refuse 401")
        #expect(await use("POST", "/v1/clients/alice/recharge", "Bearer wrong-token-0123456789") == "refuse 401")
        #expect(await use("PATCH", "/v1/clients/alice/", "bearer \(token)") == "read")
        #expect(await use("POST", "/v1/clients", "Bearer \(token)") == "read")
        #expect(await use("POST", "/v1/clients", "Bearer \(token)", try s.handler(token: nil)) == "refuse 403")
        #expect(await use("GET", "/v1/clients") == "refuse 401") // answered from the head, no body involved
        #expect(await use("POST", "/v1/authorize") == "ignore")
        #expect(await use("POST", "/v1/me") == "ignore")
        // An answer that left a body unread closes the connection.
        let refused = await h.call("POST", "/v1/clients", body: "{}")
        #expect(refused.headers.contains { $0.0 == "Connection" && $0.1 == "close" })
    }

    @Test("create enforces every client rule, as the CLI does")
    func createRules() async throws {
        let s = try Store()
        let h = try s.handler()
        func create(_ body: String) async -> APIResponse { await h.call("POST", "/v1/clients", token: token, body: body) }

        let ok = await create(createBody("ann", accounts: ["3001", "3002"]))
        #expect(ok.status == 201, "\(ok.text)")
        #expect(ok.object["username"] as? String == "ann" && ok.object["accounts"] as? [String] == ["3001", "3002"])
        #expect(ok.object["available"] as? String == "0" && ok.object["status"] as? String == "active")
        #expect(ok.headers.contains { $0 == ("Location", "/v1/clients/ann") })
        // The new account authorizes at once (the cache reloads after an API write).
        let a = await h.call("GET", "/v1/authorize?account=3002&dst=4420")
        #expect(a.object["reason"] as? String == "no_credit")

        let cases: [(String, String, Int)] = [
            (createBody("bob", ["password": "short1!", "password_confirmation": "short1!"]), "password", 422),
            (createBody("bob", ["password": "nodigitsHere!", "password_confirmation": "nodigitsHere!"]), "password", 422),
            (createBody("bob", ["password": "NOLOWER1!", "password_confirmation": "NOLOWER1!"]), "password", 422),
            (createBody("bob", ["password": "noupper1!", "password_confirmation": "noupper1!"]), "password", 422),
            (createBody("bob", ["password": "NoSpecial1", "password_confirmation": "NoSpecial1"]), "password", 422),
            (createBody("bob", ["password": "ThisIsWayTooLong123!!", "password_confirmation": "ThisIsWayTooLong123!!"]), "password", 422),
            (createBody("bob", ["password_confirmation": "Passw0rd?"]), "password_confirmation", 422),
            (createBody("b"), "username", 422),
            (createBody("-bob"), "username", 422),
            (createBody("bob", ["first_name": "  "]), "first_name", 422),
            (createBody("bob", ["last_name": ""]), "last_name", 422),
            (createBody("bob", ["email": "not-an-email"]), "email", 422),
            (createBody("bob", ["phone": String(repeating: "1", count: 201)]), "phone", 422),
            (createBody("bob", ["plan": "gold"]), "plan", 422),
            (createBody("bob", accounts: ["has space"]), "account", 422),
            (createBody("bob", ["nickname": "x"]), "nickname", 422),
            (createBody("ann"), "username", 409),
            (createBody("bob", ["email": "ANN@Example.COM"]), "email", 409),
            (createBody("bob", accounts: ["3001"]), "account", 409),
            ("{\"username\": 5}", "username", 422),
            ("[1]", "body", 400),
            ("{bad json", "body", 400),
        ]
        for (body, field, status) in cases {
            let r = await create(body)
            #expect(r.status == status && r.errorFields.contains(field), "\(body) → \(r.status) \(r.text)")
        }
        // Every rule broken is reported at once.
        let many = await create(#"{"username":"x","email":"bad","password":"a","password_confirmation":"b"}"#)
        #expect(many.status == 422)
        #expect(Set(many.errorFields).isSuperset(of: ["username", "first_name", "last_name", "email", "password", "password_confirmation"]))
        // Nothing above created a client besides ann.
        let list = await h.call("GET", "/v1/clients", token: token)
        #expect((try? JSONSerialization.jsonObject(with: Data(list.body)) as? [[String: Any]])?.count == 1)
    }

    @Test("edit, disable, enable, show, list")
    func editAndStatus() async throws {
        let s = try Store()
        let h = try s.handler()
        _ = await h.call("POST", "/v1/clients", token: token, body: createBody("cat"))
        _ = await h.call("POST", "/v1/clients", token: token, body: createBody("dog"))
        let e = await h.call("PATCH", "/v1/clients/cat", token: token, body: #"{"company":"Acme","accounts":["4001"]}"#)
        #expect(e.status == 200 && e.object["company"] as? String == "Acme" && e.object["accounts"] as? [String] == ["4001"])
        #expect(await h.call("PATCH", "/v1/clients/cat", token: token, body: #"{"email":"DOG@example.com"}"#).status == 409)
        #expect(await h.call("PATCH", "/v1/clients/cat", token: token, body: #"{"first_name":""}"#).status == 422)
        #expect(await h.call("PATCH", "/v1/clients/cat", token: token, body: #"{"password":"Newpass1!"}"#).errorField == "password_confirmation")
        #expect(await h.call("PATCH", "/v1/clients/cat", token: token, body: #"{"username":"cow"}"#).errorField == "username")
        #expect(await h.call("PATCH", "/v1/clients/nobody", token: token, body: "{}").status == 404)
        let d = await h.call("POST", "/v1/clients/cat/disable", token: token)
        #expect(d.status == 200 && d.object["status"] as? String == "disabled" && d.object["disabled_at"] is String)
        let en = await h.call("POST", "/v1/clients/cat/enable", token: token)
        #expect(en.object["status"] as? String == "active" && en.object["disabled_at"] is NSNull)
        #expect(await h.call("POST", "/v1/clients/nobody/disable", token: token).status == 404)
        let show = await h.call("GET", "/v1/clients/cat", token: token)
        #expect(show.status == 200 && show.object["first_name"] as? String == "Ann")
        #expect((show.object["created_at"] as? String)?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/) != nil)
        #expect(await h.call("GET", "/v1/clients/nobody", token: token).status == 404)
        let list = await h.call("GET", "/v1/clients", token: token)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(list.body)) as? [[String: Any]])
        #expect(rows.map { $0["username"] as? String } == ["cat", "dog"])
        #expect(Set(rows[0].keys) == ["username", "status", "available", "used", "assigned", "percent", "level", "color", "plan", "accounts"])
    }

    @Test("recharge: amounts, idempotency key in body or header")
    func recharge() async throws {
        let s = try Store()
        let h = try s.handler()
        _ = await h.call("POST", "/v1/clients", token: token, body: createBody("eve"))
        func rc(_ body: String, key: String? = nil) async -> APIResponse {
            await h.call("POST", "/v1/clients/eve/recharge", token: token, body: body, idempotencyKey: key)
        }
        let first = await rc(#"{"amount":"12.5","idempotency_key":"k1"}"#)
        #expect(first.status == 200 && first.object["assigned"] as? String == "12.5" && first.object["applied"] as? Bool == true)
        let second = await rc(#"{"amount":"12.5","idempotency_key":"k1"}"#)
        #expect(second.status == 200 && second.object["assigned"] as? String == "12.5" && second.object["applied"] as? Bool == false)
        #expect(second.headers.contains { $0 == ("Idempotent-Replayed", "true") })
        let header = await rc(#"{"amount":2}"#, key: "k2")
        #expect(header.object["assigned"] as? String == "14.5")
        #expect(await rc(#"{"amount":2}"#, key: "k2").object["assigned"] as? String == "14.5")
        #expect(await rc(#"{"amount":"3","idempotency_key":"k1"}"#).status == 409)
        #expect(await rc(#"{"amount":"1","idempotency_key":"a"}"#, key: "b").errorField == "idempotency_key")
        for bad in [#"{"amount":"0"}"#, #"{"amount":"-1"}"#, #"{"amount":"1.0000001"}"#, #"{"amount":"abc"}"#, "{}", #"{"amount":1e3}"#, #"{"amount":true}"#] {
            let r = await rc(bad)
            #expect(r.status == 422 && r.errorField == "amount", "\(bad) → \(r.text)")
        }
        #expect(await h.call("POST", "/v1/clients/nobody/recharge", token: token, body: #"{"amount":"1"}"#).status == 404)
        // The API's own write reaches authorize at once.
        let a = await h.call("GET", "/v1/authorize?account=eve&dst=4420&format=text")
        #expect(a.text == "ALLOW 14400\n")
    }

    @Test("/v1/me: 401 unknown user or wrong password, 403 disabled, 200 with the meter")
    func me() async throws {
        let s = try Store()
        try s.client("fred", credits: "40")
        let h = try s.handler()
        #expect(await h.call("GET", "/v1/me").status == 401)
        #expect(await h.call("GET", "/v1/me", basic: ("fred", "wrong")).status == 401)
        #expect(await h.call("GET", "/v1/me", basic: ("nobody", Fixtures.password)).status == 401)
        let ok = await h.call("GET", "/v1/me", basic: ("fred", Fixtures.password))
        #expect(ok.status == 200 && ok.object["available"] as? String == "40" && ok.object["level"] as? String == "ok")
        _ = try s.writer.setDisabled(username: "fred", true, now: 1_700_000_500)
        #expect(await h.call("GET", "/v1/me", basic: ("fred", Fixtures.password)).status == 403)
        // A disabled client with a wrong password learns nothing about its status.
        #expect(await h.call("GET", "/v1/me", basic: ("fred", "wrong")).status == 401)
    }

    @Test("unknown user and wrong password take about as long (both run one yescrypt)")
    func meTiming() async throws {
        let s = try Store()
        try s.client("gail", credits: "1")
        let h = try s.handler()
        let clock = ContinuousClock()
        var unknown: [Duration] = [], wrong: [Duration] = []
        for _ in 0 ..< 5 {
            unknown.append(await clock.measure { _ = await h.call("GET", "/v1/me", basic: ("nobody", "Wrong-pass1")) })
            wrong.append(await clock.measure { _ = await h.call("GET", "/v1/me", basic: ("gail", "Wrong-pass1")) })
        }
        // Minimums: other tests run in parallel, and interference only ever adds time.
        let mu = unknown.min() ?? .zero, mw = wrong.min() ?? .zero
        print("api: /v1/me fastest unknown user \(mu), wrong password \(mw)")
        // Without the dummy hash an unknown user would answer in microseconds, >100x faster.
        #expect(mu > mw / 4 && mw > mu / 4)
    }

    @Test("/metrics is Prometheus text and counts authorize answers by reason")
    func metrics() async throws {
        let s = try Store()
        try s.client("hank", credits: "1")
        try s.refresh()
        let h = try s.handler()
        _ = await h.call("GET", "/v1/authorize?account=hank&dst=4420&call=m1")
        _ = await h.call("GET", "/v1/authorize?account=ghost&dst=4420")
        MeterMetrics.batch(source: "unit", read: 3, charged: 2, quarantined: 1, microcredits: 1234)
        MeterMetrics.sourceLag(source: "unit", bytes: 77)
        MeterMetrics.outboxDepth(endpoint: "mgmt", pending: 4)
        MeterMetrics.delivery(endpoint: "mgmt", result: "delivered")
        let r = await h.call("GET", "/metrics")
        #expect(r.status == 200 && r.contentType.hasPrefix("text/plain"))
        let lines = r.text.split(separator: "\n").map(String.init)
        for line in lines where !line.hasPrefix("#") {
            #expect(PromLine.parse(line) != nil, "not a sample line: \(line)")
        }
        let samples = Dictionary(lines.compactMap(PromLine.parse).map { ($0.key, $0.text) }, uniquingKeysWith: { a, _ in a })
        func count(_ key: String) -> Int64? { samples[key].flatMap { Int64($0) } }
        #expect((count(#"creditmeter_authorize_total{reason="unknown_account"}"#) ?? 0) >= 1)
        #expect((count(#"creditmeter_authorize_total{reason="ok"}"#) ?? 0) >= 1)
        #expect(count(#"creditmeter_authorize_total{reason="too_many_calls"}"#) != nil)
        // µcr stay integers all the way to the scrape.
        #expect(count(#"creditmeter_credits_charged_microcredits_total{source="unit"}"#) == 1234)
        #expect(samples[#"creditmeter_source_lag_bytes{source="unit"}"#].flatMap { Double($0) } == 77)
        #expect(samples[#"creditmeter_outbox_pending{endpoint="mgmt"}"#].flatMap { Double($0) } == 4)
        #expect(count(#"creditmeter_deliveries_total{endpoint="mgmt",result="delivered"}"#) == 1)
        #expect(samples["creditmeter_reservations_live"] != nil)
    }
}

@Suite("support")
struct SupportTests {
    @Test("RFC 3339 timestamps as the CLI prints them")
    func timestamps() {
        #expect(Timestamp.rfc3339(0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.rfc3339(1_700_000_000) == "2023-11-14T22:13:20Z")
        #expect(Timestamp.rfc3339(951_782_400) == "2000-02-29T00:00:00Z")
        #expect(Timestamp.rfc3339(-1) == "1969-12-31T23:59:59Z")
    }

    @Test("query strings: percent escapes decoded, '+' kept, first value wins")
    func query() {
        let q = URLText.query("account=a%20b&dst=+44%2B1&dst=9&flag&bad=%zz")
        #expect(q["account"] == "a b" && q["dst"] == "+44+1" && q["flag"] == "" && q["bad"] == "%zz")
    }

    @Test("JSON bodies keep numbers exact and refuse duplicates")
    func json() throws {
        let v = try JSONParser.parse(Array(#" {"a": 12.50, "b": [true, null, "\u00e9\ud83d\ude00"], "c": -3} "#.utf8))
        #expect(v.serialized() == #"{"a":12.50,"b":[true,null,"é😀"],"c":-3}"#)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Array(#"{"a":1,"a":2}"#.utf8)) }
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Array(#"{"a":01}"#.utf8)) }
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Array("[1] x".utf8)) }
    }

    @Test("loopback detection for api.listen")
    func loopback() {
        for h in ["127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST"] { #expect(APIService.isLoopback(h), "\(h)") }
        for h in ["0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "example.com", "127.0.0", "128.0.0.1"] { #expect(!APIService.isLoopback(h), "\(h)") }
    }
}

/// One Prometheus sample line: `name{labels} value`, labels optional.
enum PromLine {
    static func parse(_ line: String) -> (key: String, text: String)? {
        guard let space = line.lastIndex(of: " ") else { return nil }
        let key = String(line[..<space])
        let text = String(line[line.index(after: space)...])
        guard Double(text) != nil || ["NaN", "+Inf", "-Inf"].contains(text) else { return nil }
        let name: Substring
        if let brace = key.firstIndex(of: "{") {
            guard key.hasSuffix("}") else { return nil }
            name = key[..<brace]
            let labels = key[key.index(after: brace) ..< key.index(before: key.endIndex)]
            let ok = labels.isEmpty || labels.split(separator: ",").allSatisfy { l in
                let kv = l.split(separator: "=", maxSplits: 1)
                return kv.count == 2 && kv[1].hasPrefix("\"") && kv[1].hasSuffix("\"") && kv[1].count >= 2
            }
            guard ok else { return nil }
        } else {
            name = Substring(key)
        }
        guard let first = name.first, first.isLetter || first == "_" || first == ":",
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") }) else { return nil }
        return (key, text)
    }
}

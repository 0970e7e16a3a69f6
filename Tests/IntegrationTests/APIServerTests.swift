import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `creditmeter run` with the HTTP API on a free loopback port, and a curl-based client for it.
final class APIDaemon: @unchecked Sendable {
    static let token = "integration-admin-token-0123456789"
    static let deck = """
        prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment
        *,0.05,0,60,60
        49,0.0205,0,60,60
        33,0.02,0,30,6
        44,0.031,0,1,1
        447,0.107,0.0005,30,1
        8,0.0333,0.002,45,30

        """
    static let maxCallSeconds: Int64 = 600

    /// An 18-column Asterisk CDR of a 30-second answered call from `account` to 4420, with `uniqueid`.
    func appendAnsweredCall(account: String, uniqueid: String) throws {
        try h.append(["""
            "\(account)","\(account)","4420","from-internal","","SIP/\(account)-00000001","SIP/trunk-00000002","Dial","SIP/trunk/4420,60",\
            "2024-05-01 10:00:00","2024-05-01 10:00:05","2024-05-01 10:00:35",35,30,"ANSWERED","DOCUMENTATION","\(uniqueid)",""
            """][...])
    }

    let h: Harness
    let port: Int
    let daemon: DaemonProcess
    var base: String { "http://127.0.0.1:\(port)" }

    /// `api` and `authorize` are extra lines for those tables; `more` is config text appended as it is
    /// (say, an `[[endpoint]]`).
    init(tailing: Bool = false, api: String = "", authorize: String = "", more: String = "") throws {
        port = try Self.freePort()
        var extra = """
            [api]
            listen = "127.0.0.1:\(port)"
            admin_token_file = "admin.token"
            \(api)

            [authorize]
            max_call_seconds = \(Self.maxCallSeconds)
            \(authorize)

            """
        if tailing {
            extra += """
                [[source]]
                name = "pbx"
                path = "Master.csv"
                format = "asterisk-csv"
                timezone = "UTC"
                start_at = "beginning"

                """
        }
        extra += more
        h = try Harness(config: extra, plans: ["default": Self.deck])
        try h.write("admin.token", Self.token + "\n")
        if tailing { try h.write("Master.csv", "") }
        daemon = try DaemonProcess(h)
    }

    deinit { _ = daemon.terminate() }

    /// Polls /healthz until the API answers; false (with the log in the failure) if it never does.
    func waitUntilUp(timeout: TimeInterval = 30) -> Bool {
        _ = holds(within: timeout) { (try? get("/healthz").status) == 200 || !daemon.process.isRunning }
        if (try? get("/healthz").status) == 200 { return true }
        Issue.record("the API never answered on \(base); is APIService wired into `creditmeter run`? log:\n\(daemon.log)")
        return false
    }

    struct Reply {
        var status: Int
        var body: String
        /// The body without its final newline (`format=text` answers one line).
        var line: String { body.hasSuffix("\n") ? String(body.dropLast()) : body }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
        var array: [[String: Any]] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [[String: Any]] ?? [] }
        var errorFields: [String] { ((json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String } }
    }

    func request(_ method: String, _ path: String, headers: [String] = [], body: String? = nil, user: String? = nil) throws -> Reply {
        var args = ["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20", "-X", method]
        for hd in headers { args += ["-H", hd] }
        if let body { args += ["-H", "Content-Type: application/json", "--data-binary", body] }
        if let user { args += ["-u", user] }
        args.append(base + path)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let nl = text.lastIndex(of: "\n") else { return Reply(status: 0, body: text) }
        return Reply(status: Int(text[text.index(after: nl)...]) ?? 0, body: String(text[..<nl]))
    }

    func get(_ path: String, user: String? = nil) throws -> Reply { try request("GET", path, user: user) }

    func admin(_ method: String, _ path: String, body: String? = nil, headers: [String] = []) throws -> Reply {
        try request(method, path, headers: ["Authorization: Bearer \(Self.token)"] + headers, body: body)
    }

    /// Creates a client through the admin API, recharged with `credits` when non-zero.
    @discardableResult
    func client(_ username: String, credits: String = "0", accounts: [String] = [], email: String? = nil) throws -> Reply {
        let accountList = accounts.map { "\"\($0)\"" }.joined(separator: ",")
        let r = try admin("POST", "/v1/clients", body: """
            {"username":"\(username)","first_name":"Test","last_name":"User","email":"\(email ?? username + "@example.com")",
             "password":"Passw0rd!","password_confirmation":"Passw0rd!","accounts":[\(accountList)]}
            """)
        #expect(r.status == 201, "create \(username): \(r.status) \(r.body)")
        if credits != "0" {
            let rc = try admin("POST", "/v1/clients/\(username)/recharge", body: #"{"amount":"\#(credits)"}"#)
            #expect(rc.status == 200, "recharge \(username): \(rc.body)")
        }
        return r
    }

    static func freePort() throws -> Int { try TestSupport.freePort() }
}

/// SPEC 3's cost, and the longest affordable billsec found by trying every second: independent of `Rating`.
enum APIOracle {
    struct Row { var rate: Int64; var fee: Int64; var i: Int64; var s: Int64 }

    static func cost(_ r: Row, _ b: Int64) -> Int64 {
        let c = b <= r.i ? r.i : r.i + ((b - r.i) + r.s - 1) / r.s * r.s
        return r.fee + (r.rate * c + 59) / 60
    }

    static func maxSeconds(_ r: Row, credit: Int64, cap: Int64) -> Int64? {
        var best: Int64?
        for b in 1 ... cap where cost(r, b) <= credit { best = b }
        return best
    }

    static func credits(_ micro: Int64) -> String {
        let whole = micro / 1_000_000, frac = micro % 1_000_000
        if frac == 0 { return "\(whole)" }
        var f = String(frac)
        f = String(repeating: "0", count: 6 - f.count) + f
        while f.hasSuffix("0") { f.removeLast() }
        return "\(whole).\(f)"
    }
}

@Suite("HTTP API against the running daemon", .serialized)
struct APIServerTests {
    /// Destination → its row in `APIDaemon.deck`.
    static let rows: [(dst: String, row: APIOracle.Row)] = [
        ("4930", .init(rate: 20_500, fee: 0, i: 60, s: 60)),      // 60/60
        ("3361", .init(rate: 20_000, fee: 0, i: 30, s: 6)),       // 30/6
        ("4420", .init(rate: 31_000, fee: 0, i: 1, s: 1)),        // 1/1
        ("447700", .init(rate: 107_000, fee: 500, i: 30, s: 1)),  // connect fee
        ("811", .init(rate: 33_300, fee: 2_000, i: 45, s: 30)),   // connect fee, 45/30
    ]

    @Test func authorizeMatchesTheOracleNearEveryBoundary() throws {
        let api = try APIDaemon()
        guard api.waitUntilUp() else { return }
        // Balances at each row's first and second step cost, one µcr either side, and zero.
        var balances: Set<Int64> = [0]
        for (_, r) in Self.rows {
            for c in [r.i > 0 ? r.i : r.s, (r.i > 0 ? r.i : r.s) + r.s] {
                let k = APIOracle.cost(r, c)
                balances.formUnion([k - 1, k, k + 1])
            }
            balances.formUnion([r.fee, r.fee + 1])
        }
        for (n, credit) in balances.sorted().enumerated() where credit >= 0 {
            let user = "bal\(n)"
            try api.client(user, credits: APIOracle.credits(credit))
            for (dst, r) in Self.rows {
                let want = APIOracle.maxSeconds(r, credit: credit, cap: APIDaemon.maxCallSeconds)
                let j = try api.get("/v1/authorize?account=\(user)&dst=\(dst)")
                let t = try api.get("/v1/authorize?account=\(user)&dst=\(dst)&format=text")
                if let want {
                    #expect(j.json["allow"] as? Bool == true && (j.json["max_seconds"] as? Int).map(Int64.init) == want,
                            "credit \(credit) dst \(dst): \(j.body), want \(want)")
                    #expect(t.line == "ALLOW \(want)", "credit \(credit) dst \(dst): \(t.body)")
                } else {
                    #expect(j.json["reason"] as? String == "no_credit", "credit \(credit) dst \(dst): \(j.body)")
                    #expect(t.line == "DENY no_credit")
                }
            }
        }
        #expect(try api.get("/v1/authorize?account=nobody&dst=4420&format=text").line == "DENY unknown_account")
    }

    @Test func concurrentAuthorizationsSeeEachOthersReservation() throws {
        let api = try APIDaemon()
        guard api.waitUntilUp() else { return }
        // 60/60 at 0.0205/min: 0.03 buys one minute, and not a second one.
        try api.client("pair", credits: "0.03")
        let results = Collected<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { n in
            let r = try? api.get("/v1/authorize?account=pair&dst=4930&call=call-\(n)&format=text")
            results.append(r?.line ?? "error")
        }
        #expect(results.value.sorted() == ["ALLOW 60", "DENY no_credit"], "\(results.value)")
        let j = try api.get("/v1/authorize?account=pair&dst=4930").json
        #expect(j["reserved"] as? String == "0.0205")
    }

    @Test func aChargedCDRReleasesItsCallsReservation() throws {
        let api = try APIDaemon(tailing: true)
        guard api.waitUntilUp() else { return }
        try api.client("tess", credits: "1", accounts: ["5001"])
        let uniqueid = "1714557600.42"
        let allow = try api.get("/v1/authorize?account=5001&dst=4420&call=\(uniqueid)").json
        #expect(allow["max_seconds"] as? Int == 600 && allow["hold"] as? String == "0.31")
        #expect(try api.get("/v1/authorize?account=5001&dst=4420").json["reserved"] as? String == "0.31")
        // The call ends after 30 s; Asterisk writes its CDR with the same uniqueid (18 columns).
        try api.appendAnsweredCall(account: "5001", uniqueid: uniqueid)
        var last: [String: Any] = [:]
        _ = try holds(within: 20) {
            last = try api.get("/v1/authorize?account=5001&dst=4420").json
            return last["reserved"] as? String == "0" && last["available"] as? String == "0.9845"
        }
        // 30 s at 0.031/min, 1/1 = 0.0155 charged; the 0.31 hold is gone, not counted twice.
        #expect(last["reserved"] as? String == "0" && last["available"] as? String == "0.9845", "\(last)\n\(api.daemon.log)")
    }

    @Test func adminEndpointsEnforceTheClientRules() throws {
        let api = try APIDaemon()
        guard api.waitUntilUp() else { return }
        #expect(try api.request("GET", "/v1/clients").status == 401)
        #expect(try api.request("GET", "/v1/clients", headers: ["Authorization: Bearer wrong-token-0123456789"]).status == 401)
        let weak = try api.admin("POST", "/v1/clients", body: """
            {"username":"weak","first_name":"W","last_name":"K","email":"w@example.com","password":"password","password_confirmation":"password"}
            """)
        #expect(weak.status == 422 && weak.errorFields.contains("password"), "\(weak.body)")
        #expect(try api.admin("GET", "/v1/clients/weak").status == 404)
        try api.client("first", email: "Same@Example.com")
        let dup = try api.admin("POST", "/v1/clients", body: """
            {"username":"second","first_name":"S","last_name":"C","email":"same@EXAMPLE.com","password":"Passw0rd!","password_confirmation":"Passw0rd!"}
            """)
        #expect(dup.status == 409 && dup.errorFields == ["email"], "\(dup.body)")
        #expect(try api.admin("POST", "/v1/clients", body: #"{"username":"first"}"#).status == 422)
        let once = try api.admin("POST", "/v1/clients/first/recharge", body: #"{"amount":"12.5"}"#, headers: ["Idempotency-Key: rk-1"])
        let twice = try api.admin("POST", "/v1/clients/first/recharge", body: #"{"amount":"12.5"}"#, headers: ["Idempotency-Key: rk-1"])
        #expect(once.json["assigned"] as? String == "12.5" && twice.json["assigned"] as? String == "12.5")
        #expect(twice.json["applied"] as? Bool == false)
        // The CLI reads the same ledger: one recharge, and the API's JSON is the CLI's.
        let cli = try api.h.json(["clients", "show", "first", "--json"]) as? [String: Any]
        #expect(cli?["assigned"] as? String == "12.5")
        let show = try api.admin("GET", "/v1/clients/first").json
        #expect(Set(show.keys) == Set((cli ?? [:]).keys))
        let list = try api.admin("GET", "/v1/clients").array
        #expect(list.map { $0["username"] as? String } == ["first"])
    }

    @Test func meFollowsActiveAndDisabled() throws {
        let api = try APIDaemon()
        guard api.waitUntilUp() else { return }
        try api.client("mia", credits: "5")
        #expect(try api.get("/v1/me").status == 401)
        #expect(try api.get("/v1/me", user: "mia:Wrong-pass1").status == 401)
        #expect(try api.get("/v1/me", user: "nobody:Passw0rd!").status == 401)
        let ok = try api.get("/v1/me", user: "mia:Passw0rd!")
        #expect(ok.status == 200 && ok.json["available"] as? String == "5")
        #expect(try api.admin("POST", "/v1/clients/mia/disable").status == 200)
        #expect(try api.get("/v1/me", user: "mia:Passw0rd!").status == 403)
        #expect(try api.admin("POST", "/v1/clients/mia/enable").status == 200)
        #expect(try api.get("/v1/me", user: "mia:Passw0rd!").status == 200)
    }

    @Test func metricsHealthAndReadiness() throws {
        let api = try APIDaemon(tailing: true)
        guard api.waitUntilUp() else { return }
        _ = try api.get("/v1/authorize?account=ghost&dst=4420")
        var ready = 0
        _ = try holds(within: 15) {
            ready = try api.get("/readyz").status
            return ready == 200
        }
        #expect(ready == 200)
        let m = try api.get("/metrics")
        #expect(m.status == 200)
        var samples = 0
        for line in m.body.split(separator: "\n") where !line.hasPrefix("#") {
            samples += 1
            #expect(line.wholeMatch(of: /[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.eE+-]+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (NaN|\+Inf|-Inf)/) != nil,
                    "not a Prometheus sample: \(line)")
        }
        #expect(samples > 0)
        #expect(m.body.contains(#"creditmeter_authorize_total{reason="unknown_account"} 1"#), "\(m.body)")
    }

    @Test func refusesANonLoopbackAddressWithoutAToken() throws {
        let port = try APIDaemon.freePort()
        let h = try Harness(config: "[api]\nlisten = \"0.0.0.0:\(port)\"\n")
        let d = try DaemonProcess(h)
        _ = holds(within: 20) { !d.process.isRunning }
        #expect(!d.process.isRunning, "the daemon started on 0.0.0.0 without an admin token")
        if d.process.isRunning { d.kill9() }
        #expect(d.process.terminationStatus != 0)
        #expect(d.log.contains("api.listen") && d.log.contains("api.admin_token_file"), "\(d.log)")
    }
}

/// A tiny lock box for collecting results from concurrentPerform.
final class Collected<T>: @unchecked Sendable {
    private var v: T
    private let lock = NSLock()
    init(_ v: T) { self.v = v }
    var value: T { lock.lock(); defer { lock.unlock() }; return v }
    func append<E>(_ e: E) where T == [E] { lock.lock(); v.append(e); lock.unlock() }
}

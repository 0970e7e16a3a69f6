@testable import API
import Foundation
import Logging
import MeterConfig
import MeterCore
import ServiceLifecycle
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif


/// `curl` as a child process: (status, body). The test machines have curl; the API has no client library.
func curl(_ args: [String]) throws -> (status: Int, body: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    p.arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"] + args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard let nl = text.lastIndex(of: "\n") else { return (0, text) }
    return (Int(text[text.index(after: nl)...]) ?? 0, String(text[..<nl]))
}

@Suite("the Hummingbird server on loopback, in process")
struct ServerTests {
    func config(_ s: Store, port: Int, host: String = "127.0.0.1", tokenFile: String? = nil) -> Config {
        var c = Config()
        c.store = StoreConfig(path: s.dir.appendingPathComponent("store.db").path)
        c.api = APIConfig(listen: "\(host):\(port)", host: host, port: port, adminTokenFile: tokenFile)
        return c
    }

    @Test("serves authorize, admin, metrics and health over real HTTP")
    func serves() async throws {
        let s = try Store()
        try s.client("alice", credits: "2")
        let tokenFile = s.dir.appendingPathComponent("admin.token").path
        try Data("\(token)\n".utf8).write(to: URL(fileURLWithPath: tokenFile))
        let port = try freePort()
        let ready = ReadyFlag()
        let settings = try Fixtures.settings(AuthorizeConfig(maxCallSeconds: 300))
        let service = try APIService(config: config(s, port: port, tokenFile: tokenFile), settings: { settings },
                                     ready: ready, registry: APIMetrics.bootstrap(),
                                     logger: Logger(label: "test"))
        let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        defer { running.cancel() }
        let base = "http://127.0.0.1:\(port)"
        var health = (status: 0, body: "")
        for _ in 0 ..< 100 {
            health = try curl([base + "/healthz"])
            if health.status == 200 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(health.status == 200 && health.body == "ok\n")
        #expect(try curl([base + "/readyz"]).status == 503)
        ready.set()
        #expect(try curl([base + "/readyz"]).status == 200)

        let text = try curl([base + "/v1/authorize?account=alice&dst=%2B4420&call=c-1&format=text"])
        #expect(text.status == 200 && text.body == "ALLOW 300\n")
        let json = try curl([base + "/v1/authorize?account=alice&dst=4420"])
        #expect(json.body.contains(#""reserved":"0.155""#), "\(json.body)")

        let noAuth = try curl(["-X", "POST", base + "/v1/clients/alice/recharge", "-d", #"{"amount":"1"}"#])
        #expect(noAuth.status == 401)
        let rc = try curl(["-X", "POST", base + "/v1/clients/alice/recharge", "-H", "Authorization: Bearer \(token)",
                           "-H", "Idempotency-Key: once", "-d", #"{"amount":"1"}"#])
        #expect(rc.status == 200 && rc.body.contains(#""assigned":"3""#), "\(rc.body)")
        let rc2 = try curl(["-X", "POST", base + "/v1/clients/alice/recharge", "-H", "Authorization: Bearer \(token)",
                            "-H", "Idempotency-Key: once", "-d", #"{"amount":"1"}"#])
        #expect(rc2.body.contains(#""assigned":"3""#) && rc2.body.contains(#""applied":false"#))
        let big = try curl(["-X", "POST", base + "/v1/clients", "-H", "Authorization: Bearer \(token)",
                            "-d", ""])
        #expect(big.status == 422) // empty body: every required field reported
        let me = try curl(["-u", "alice:\(Fixtures.password)", base + "/v1/me"])
        #expect(me.status == 200 && me.body.contains(#""username":"alice""#))
        let metrics = try curl([base + "/metrics"])
        #expect(metrics.status == 200 && metrics.body.contains(#"creditmeter_authorize_total{reason="ok"}"#))
        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test("refuses a non-loopback address without an admin token, and a bad token file")
    func refuses() throws {
        let s = try Store()
        let settings = try Fixtures.settings()
        func make(_ c: Config) throws(APIStartupError) -> APIService {
            try APIService(config: c, settings: { settings }, ready: ReadyFlag(),
                           registry: APIMetrics.bootstrap(), logger: Logger(label: "test"))
        }
        do {
            _ = try make(config(s, port: 8787, host: "0.0.0.0"))
            Issue.record("started on 0.0.0.0 without a token")
        } catch {
            #expect(error.key == "api.listen" && error.description.contains("api.admin_token_file"))
        }
        let missing = s.dir.appendingPathComponent("missing.token").path
        #expect(throws: APIStartupError.self) { try make(config(s, port: 8787, host: "0.0.0.0", tokenFile: missing)) }
        let short = s.dir.appendingPathComponent("short.token").path
        try Data("abc\n".utf8).write(to: URL(fileURLWithPath: short))
        do {
            _ = try make(config(s, port: 8787, tokenFile: short))
            Issue.record("accepted a 3-character token")
        } catch {
            #expect(error.key == "api.admin_token_file")
        }
        // With a good token file, a non-loopback address is allowed.
        let good = s.dir.appendingPathComponent("good.token").path
        try Data(token.utf8).write(to: URL(fileURLWithPath: good))
        #expect(throws: Never.self) { _ = try make(config(s, port: 8787, host: "0.0.0.0", tokenFile: good)) }
    }
}

import API
@testable import Console
import Foundation
import HTTPTypes
import Hummingbird
import Ledger
import Logging
import MeterConfig
import MeterCore
import Synchronization
import TestSupport

let adminToken = "console-admin-token-0123456789"
let goodPassword = "Passw0rd!"

/// A clock the test moves by hand, in seconds.
final class TestClock: Sendable {
    private let s = Mutex<Int64>(1_800_000_000)
    var now: @Sendable () -> Int64 { { [self] in s.withLock { $0 } } }
    func advance(_ seconds: Int64) { s.withLock { $0 += seconds } }
}

/// An answer as a browser would see it.
struct Page: Sendable {
    var status: Int
    var headers: [(String, String)]
    var text: String

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    var cookies: [String] { headers.filter { $0.0.lowercased() == "set-cookie" }.map(\.1) }
}

/// The console over a scratch store, driven in process through the API's router, with a cookie jar.
final class ConsoleBench: @unchecked Sendable {
    let temp: TempLedger
    let handler: APIHandler
    let console: Console
    let router: Router<APIContext>
    let clock = TestClock()
    var jar: [String: String] = [:]

    init(console consoleConfig: ConsoleConfig = ConsoleConfig(), denyDisabled: Bool = false) throws {
        temp = try TempLedger()
        let api = try Ledger(path: temp.path)
        let cache = try BalanceCache(ledger: api)
        let authorizer = Authorizer(cache: cache, book: ReservationBook(ledger: try Ledger(path: temp.path)))
        var authorize = AuthorizeConfig()
        authorize.denyDisabled = denyDisabled
        let settings = APISettings(authorize: authorize, decks: [:], plans: [])
        handler = try APIHandler(authorizer: authorizer, ledger: api, settings: { settings }, adminToken: adminToken,
                                 ready: ReadyFlag(), metrics: { [] }, logger: Logger(label: "test"))
        var config = Config()
        config.console = consoleConfig
        console = try Console(config: config, clock: clock.now)
        let (h, c) = (handler, console)
        router = handler.makeRouter { c.register(on: $0, handler: h) }
    }

    deinit { temp.cleanup() }

    var ledger: Ledger { temp.ledger }

    func request(_ method: String, _ target: String, form: [(String, String)]? = nil,
                 headers extra: [(String, String)] = []) async throws -> Page {
        var fields = HTTPFields()
        if !jar.isEmpty, let name = HTTPField.Name("Cookie") {
            fields[name] = jar.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        }
        for (n, v) in extra { if let name = HTTPField.Name(n) { fields[name] = v } }
        let bytes = Array((form.map { FormData.encode($0) } ?? "").utf8)
        if !bytes.isEmpty { fields[.contentLength] = String(bytes.count) }
        let head = HTTPRequest(method: HTTPRequest.Method(method) ?? .get, scheme: "http", authority: "127.0.0.1",
                               path: target, headerFields: fields)
        let response = try await router.buildResponder().respond(to: Request(head: head, body: RequestBody(buffer: ByteBuffer(bytes: bytes))),
                                                                 context: APIContext(logger: Logger(label: "test")))
        let sink = Sink()
        try await response.body.write(SinkWriter(sink: sink))
        let page = Page(status: response.status.code, headers: response.headers.map { ($0.name.rawName, $0.value) },
                        text: String(decoding: sink.bytes, as: UTF8.self))
        for cookie in page.cookies {
            let kv = cookie.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = kv.count > 1 ? String(kv[1]) : ""
            if cookie.contains("Max-Age=0") || value.isEmpty { jar[String(kv[0])] = nil } else { jar[String(kv[0])] = value }
        }
        return page
    }

    /// The hidden `csrf` field of a page's first form.
    static func csrf(_ page: Page) -> String? { attribute(page.text, after: "name=\"csrf\" value=\"") }

    static func attribute(_ text: String, after marker: String) -> String? {
        guard let r = text.range(of: marker) else { return nil }
        return String(text[r.upperBound...].prefix { $0 != "\"" })
    }

    func signIn(token: String = adminToken) async throws -> Page {
        let form = try await request("GET", "/console/")
        return try await request("POST", "/console/signin", form: [("csrf", Self.csrf(form) ?? ""), ("token", token)])
    }

    /// The CSRF token of the signed-in operator's pages.
    func pageCsrf() async throws -> String { Self.csrf(try await request("GET", "/console/clients/new")) ?? "" }

    /// A bench with `client` made and the operator signed in, and the CSRF token its forms carry.
    static func signedIn(with client: String) async throws -> (ConsoleBench, csrf: String) {
        let b = try ConsoleBench()
        try b.makeClient(client)
        _ = try await b.signIn()
        return (b, try await b.pageCsrf())
    }

    @discardableResult
    func makeClient(_ username: String, _ overrides: [String: String] = [:]) throws -> ClientRecord {
        var f = ClientFields()
        f.firstName = overrides["first_name"] ?? "Ann"
        f.lastName = overrides["last_name"] ?? "Lee"
        f.email = overrides["email"] ?? "\(username)@example.com"
        for field in ProfileField.allCases where overrides[field.rawValue] != nil { f[field] = overrides[field.rawValue] }
        return try ledger.createClient(username: username, fields: f, accounts: [], plan: "default",
                                       passwordHash: try PasswordHasher.hash(goodPassword), now: 1_800_000_000)
    }
}

final class Sink: @unchecked Sendable { var bytes: [UInt8] = [] }

struct SinkWriter: ResponseBodyWriter {
    let sink: Sink
    mutating func write(_ buffer: ByteBuffer) async throws { sink.bytes += Array(buffer.readableBytesView) }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

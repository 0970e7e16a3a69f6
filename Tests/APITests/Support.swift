@testable import API
import Foundation
import HTTPTypes
import Hummingbird
import Ledger
import Logging
import MeterConfig
import MeterCore
import Rater
import Synchronization
import Testing

/// A clock the test moves by hand, in milliseconds.
final class ManualClock: Sendable {
    private let ms = Mutex<Int64>(1_000_000)
    var now: @Sendable () -> Int64 { { [self] in ms.withLock { $0 } } }
    func advance(seconds: Int64) { ms.withLock { $0 += seconds * 1000 } }
}

enum Fixtures {
    static let password = "Passw0rd!"
    /// Hashing is deliberately slow: do it once per test process.
    static let hash: String = (try? PasswordHasher.hash(password)) ?? ""

    /// The plan's rows: 60/60, 30/6, 1/1, and connect-fee rows, keyed by prefix.
    static let deckCSV = """
        prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment
        *,0.05,0,60,60
        1,0.006,0,30,6
        44,0.031,0,1,1
        447,0.107,0.0005,30,1
        8,0.0333,0.002,45,30
        9,0.017,0.01,0,6
        """

    static func deck() throws -> RateDeck { try RateDeck.parse(Array(deckCSV.utf8), file: "test.csv") }

    static func settings(_ authorize: AuthorizeConfig = AuthorizeConfig()) throws -> APISettings {
        APISettings(authorize: authorize, decks: ["default": try deck()], plans: ["default"])
    }
}

/// A scratch store with three connections: `writer` plays the daemon and the CLI, `api` is the API's own,
/// `holds` the reservation book's.
final class Store: @unchecked Sendable {
    let dir: URL
    let writer: Ledger
    let api: Ledger
    let holds: Ledger
    let clock = ManualClock()
    let cache: BalanceCache
    let book: ReservationBook
    let authorizer: Authorizer
    private var nextIdentity = 0

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cm-api-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("store.db").path
        writer = try Ledger(path: path)
        api = try Ledger(path: path)
        holds = try Ledger(path: path)
        try holds.skipSyncPerCommit()
        cache = try BalanceCache(ledger: api)
        book = ReservationBook(ledger: holds, clock: clock.now)
        authorizer = Authorizer(cache: cache, book: book)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    @discardableResult
    func client(_ username: String, credits: String = "0", accounts: [String] = []) throws -> ClientRecord {
        var f = ClientFields()
        f.firstName = "T"; f.lastName = "U"; f.email = "\(username)@example.com"
        var c = try writer.createClient(username: username, fields: f, accounts: accounts, plan: "default",
                                        passwordHash: Fixtures.hash, now: 1_700_000_000)
        if let micro = try? Money.parse(credits), micro > 0 {
            c = try writer.recharge(username: username, amount: micro, key: nil, now: 1_700_000_000).client
        }
        return c
    }

    /// Charges `cost` µcr to `client` as if the daemon had committed a CDR.
    /// `releasing` names the call ids whose holds the batch settles, as the daemon's sources pass them.
    func charge(_ client: ClientRecord, cost: Int64, releasing calls: [String] = []) throws {
        nextIdentity += 1
        let c = Charge(identity: "test-\(nextIdentity)", clientID: client.id, account: client.accounts.first ?? client.username,
                       source: "test", position: 0, line: Int64(nextIdentity), destination: "441", prefix: "44",
                       billsec: 60, chargedSeconds: 60, cost: cost, startedAt: 1_700_000_000)
        _ = try writer.commit(ChargeBatch(source: "test", position: nil, charges: [c], quarantined: [],
                                          releases: calls.map { HoldKey(clientID: client.id, call: $0) }), now: 1_700_000_000)
    }

    func refresh() throws { try cache.refresh() }

    func authorize(_ account: String, _ dst: String, call: String? = nil,
                   _ limits: AuthorizeConfig = AuthorizeConfig()) throws -> AuthorizeDecision {
        authorizer.authorize(account: account, destination: dst, call: call, settings: try Fixtures.settings(limits))
    }

    /// An `APIHandler` over this store; `token` nil leaves the admin API off.
    func handler(token: String? = "admin-token-0123456789", ready: ReadyFlag = ReadyFlag(),
                 limits: AuthorizeConfig = AuthorizeConfig()) throws -> APIHandler {
        let registry = APIMetrics.bootstrap()
        let settings = try Fixtures.settings(limits)
        return try APIHandler(authorizer: authorizer, ledger: api, settings: { settings }, adminToken: token,
                              ready: ready, metrics: { registry.emitToBuffer() }, logger: Logger(label: "test"))
    }
}

/// The cost formula of SPEC 3, written out again here so the tests do not trust `Rating`.
enum Oracle {
    static func cost(_ row: RateRow, _ b: Int64) -> Int64 {
        let i = row.initialIncrement, s = row.subsequentIncrement
        let c: Int64 = b <= i ? i : i + ((b - i) + s - 1) / s * s
        let timed = (row.ratePerMinute * c + 59) / 60
        return row.connectFee + timed
    }

    /// The longest billsec in 1...cap whose cost fits in `credit`, by trying every one; nil when none does.
    static func maxSeconds(_ row: RateRow, credit: Int64, cap: Int64) -> Int64? {
        var best: Int64?
        var b: Int64 = 1
        while b <= cap {
            if cost(row, b) <= credit { best = b }
            b += 1
        }
        return best
    }
}

/// An answer as the tests read it: status, headers and body, taken from the router's `Response`.
struct APIResponse: Sendable {
    var status: Int
    var contentType: String
    var headers: [(String, String)]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// Collects what a `ResponseBody` writes.
final class BodySink: @unchecked Sendable {
    var bytes: [UInt8] = []
}

struct CollectingWriter: ResponseBodyWriter {
    let sink: BodySink
    mutating func write(_ buffer: ByteBuffer) async throws { sink.bytes += Array(buffer.readableBytesView) }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// A request body that records whether anyone iterated it.
struct WatchedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let bytes: [UInt8]
    let touched: Flag

    struct AsyncIterator: AsyncIteratorProtocol {
        var pending: [UInt8]?
        let touched: Flag
        mutating func next() async throws -> ByteBuffer? {
            touched.value.withLock { $0 = true }
            defer { pending = nil }
            return pending.map { ByteBuffer(bytes: $0) }
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(pending: bytes, touched: touched) }
}

/// Whether a body was read.
final class Flag: Sendable {
    let value = Mutex<Bool>(false)
    var isSet: Bool { value.withLock { $0 } }
}

extension APIHandler {
    /// Runs one request through the router in process, as the server would, without a socket.
    func call(_ method: String, _ target: String, token: String? = nil, basic: (String, String)? = nil,
              body: String? = nil, idempotencyKey: String? = nil, authorization: String? = nil,
              watched: Flag? = nil) async -> APIResponse {
        var fields = HTTPFields()
        if let token { fields[.authorization] = "Bearer \(token)" }
        if let (u, p) = basic { fields[.authorization] = "Basic " + Data("\(u):\(p)".utf8).base64EncodedString() }
        if let authorization { fields[.authorization] = authorization }
        if let idempotencyKey, let name = HTTPField.Name("Idempotency-Key") { fields[name] = idempotencyKey }
        let bytes = Array((body ?? "").utf8)
        if !bytes.isEmpty { fields[.contentLength] = String(bytes.count) }
        let head = HTTPRequest(method: HTTPRequest.Method(method) ?? .get, scheme: "http", authority: "127.0.0.1",
                               path: target, headerFields: fields)
        let requestBody = watched.map { RequestBody(asyncSequence: WatchedBody(bytes: bytes, touched: $0)) }
            ?? RequestBody(buffer: ByteBuffer(bytes: bytes))
        let request = Request(head: head, body: requestBody)
        let context = APIContext(logger: Logger(label: "test"))
        do {
            let response = try await makeRouter().buildResponder().respond(to: request, context: context)
            let sink = BodySink()
            try await response.body.write(CollectingWriter(sink: sink))
            let headers = response.headers.map { ($0.name.rawName, $0.value) }
            return APIResponse(status: response.status.code, contentType: response.headers[.contentType] ?? "",
                               headers: headers, body: sink.bytes)
        } catch {
            return APIResponse(status: 0, contentType: "", headers: [], body: Array("\(error)".utf8))
        }
    }
}

extension APIResponse {
    var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    var errorField: String? { (object["error"] as? [String: Any])?["field"] as? String }
    var errorFields: [String] { ((object["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String } }
}

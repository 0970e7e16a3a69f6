import CDRParser
import Foundation
import HTTPTypes
import Hummingbird
import Ingest
import Ledger
import Logging
import MeterConfig
import MeterCore

/// `POST /v1/cdr/{source}` for the `[[source]]` tables with `receive = "http"`: FreeSWITCH's
/// mod_json_cdr (one document a request) or any poster of JSON lines.
///
/// A request is answered 2xx only once its CDRs are committed or quarantined, so the poster may
/// retry anything else; a retry charges nothing twice because the ledger dedupes on the CDR's
/// identity (the FreeSWITCH uuid). Parsing runs in the request's task; rating and the commit run in
/// `CDRCommitter`, which puts every request waiting at that moment into one transaction.
public final class CDRReceiver: Sendable {
    /// One receiving source, ready to take requests.
    struct Source: Sendable {
        let config: ReceiverConfig
        let token: [UInt8]
        let settings: SourceSettings
    }

    let sources: [String: Source]
    let committer: CDRCommitter
    /// mod_json_cdr posts a whole call's variables, app log and call flow: documents of tens of KB
    /// are common, and a URL-encoded one is up to three times its JSON.
    static let maxBody = 4 << 20

    init(sources: [Source], committer: CDRCommitter) {
        self.sources = Dictionary(sources.map { ($0.config.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.committer = committer
    }

    /// Reads the token files and builds each source's parser; the errors name the key at fault.
    static func sources(_ receivers: [ReceiverConfig]) throws(APIStartupError) -> [Source] {
        var out: [Source] = []
        for r in receivers {
            let token = try APIService.readToken(r.tokenFile, key: "source[\(r.name)].token_file")
            let parser: CDRParser
            do { parser = try CDRParser(r.parserOptions) } catch {
                throw APIStartupError(key: "source[\(r.name)].format", message: "\(error)")
            }
            out.append(Source(config: r, token: Array(token.utf8),
                              settings: SourceSettings(name: r.name, parser: parser, filter: nil, maxLineBytes: maxBody)))
        }
        return out
    }

    func addRoutes(_ router: Router<APIContext>) {
        router.route("v1/cdr/:source", [.post: { [self] request, context in try await receive(request, context) }])
    }

    func receive(_ request: Request, _ context: APIContext) async throws -> Response {
        let name = context.parameter("source")
        guard let source = sources[name] else {
            throw APIError(.notFound, field: "source", "no [[source]] named '\(name)' with receive = \"http\"")
        }
        try Self.authenticate(request.headers[.authorization], token: source.token)
        let body = try await context.body(of: request, limit: Self.maxBody)
        let posted = Self.parse(body, source: source)
        switch await committer.commit(posted) {
        case .success(let r):
            return Reply.json(.ok, .object([
                ("source", .string(name)), ("cdrs", .int(Int64(r.cdrs))), ("charged", .int(Int64(r.charges))),
                ("quarantined", .int(Int64(r.quarantined))), ("not_billable", .int(Int64(r.notBillable))),
                ("b_legs", .int(Int64(r.bLegs))),
            ]))
        case .failure(let e):
            context.logger.error("cdr receiver: cannot commit; the poster will retry", metadata: ["source": "\(name)", "error": "\(e)"])
            throw APIError(.serviceUnavailable, field: "store", "the store cannot commit right now; retry later",
                           headers: [("Retry-After", "5")])
        }
    }

    /// The source's token as a bearer token, or as the password of HTTP Basic (mod_json_cdr's
    /// `cred = "user:token"`; the user name is not checked). Compared in constant time.
    static func authenticate(_ header: String?, token: [UInt8]) throws(APIError) {
        let challenge = [("WWW-Authenticate", "Basic realm=\"creditmeter cdr\", charset=\"UTF-8\"")]
        let h = Array((header ?? "").utf8)
        guard let space = h.firstIndex(of: 0x20) else {
            throw APIError(.unauthorized, field: "authorization",
                           "send the source's token as 'Authorization: Bearer TOKEN' or HTTP Basic user:TOKEN", headers: challenge)
        }
        // Every request carries it, so it is read as bytes: the scheme's case ignored, blanks around the credentials dropped.
        let scheme = h[..<space].map { $0 | 0x20 }
        var credentials = h[(space + 1)...]
        while credentials.first == 0x20 { credentials = credentials.dropFirst() }
        while credentials.last == 0x20 { credentials = credentials.dropLast() }
        var given: [UInt8]?
        if scheme == Array("bearer".utf8) {
            given = Array(credentials)
        } else if scheme == Array("basic".utf8), let data = Data(base64Encoded: Data(credentials)) {
            let pair = [UInt8](data)
            if let colon = pair.firstIndex(of: UInt8(ascii: ":")) { given = Array(pair[(colon + 1)...]) }
        }
        guard let given, ConstantTime.equals(given, token) else {
            throw APIError(.unauthorized, field: "authorization", "the token is not this source's token_file", headers: challenge)
        }
    }

    /// The body's CDRs: one document for freeswitch-json, one a line for jsonl. What cannot be read
    /// is kept whole for the quarantine, keyed by its bytes so a retried body is quarantined once.
    static func parse(_ body: [UInt8], source: Source) -> Posted {
        let s = source.settings
        var posted = Posted(settings: s)
        func bad(_ raw: ArraySlice<UInt8>, offset: Int64, line: Int64, _ failure: ParseFailure) {
            let key = raw.withUnsafeBufferPointer { Metering.rawKey($0, source: s.name, offset: offset) }
            posted.items.append(.bad(QuarantineEntry(key: key, source: s.name, position: offset, line: line,
                                                     reason: failure.reason, message: failure.message, raw: Array(raw))))
        }
        if source.config.format == .freeswitchJSON {
            switch s.parser.parseFreeSwitch(body) {
            case .failure(let f): bad(body[...], offset: 0, line: 1, f)
            case .success(let doc) where doc.isBLeg && !source.config.chargeBLegs: posted.bLegs += 1
            case .success(let doc): posted.items.append(.cdr(doc.cdr, raw: body, offset: 0, line: 1))
            }
            return posted
        }
        var start = 0, line: Int64 = 0
        while start < body.count {
            let end = body[start...].firstIndex(of: 0x0A) ?? body.count
            line += 1
            var raw = body[start..<end]
            if raw.last == 0x0D { raw = raw.dropLast() }
            let offset = Int64(start)
            start = end + 1
            if raw.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            switch raw.withUnsafeBufferPointer({ s.parser.parse($0) }) {
            case .failure(let f): bad(raw, offset: offset, line: line, f)
            case .success(let cdr): posted.items.append(.cdr(cdr, raw: Array(raw), offset: offset, line: line))
            }
        }
        return posted
    }
}

/// What one request brought, parsed but not rated: rating needs the client list as of the commit.
struct Posted: Sendable {
    enum Item: Sendable {
        case cdr(CDR, raw: [UInt8], offset: Int64, line: Int64)
        case bad(QuarantineEntry)
    }

    var settings: SourceSettings
    var items: [Item] = []
    var bLegs = 0
}

/// What became of one request's CDRs, once committed. `charges` counts the CDRs given to the ledger
/// to charge; a retried one among them is a duplicate there and moves no balance.
struct Received: Sendable, Equatable {
    var cdrs = 0
    var charges = 0
    var quarantined = 0
    var notBillable = 0
    var bLegs = 0

    mutating func add(_ o: Received) {
        cdrs += o.cdrs
        charges += o.charges
        quarantined += o.quarantined
        notBillable += o.notBillable
        bLegs += o.bLegs
    }
}

import HTTPTypes
import Hummingbird
import Ledger
import MeterCore
import NIOCore

/// A refused request: its status, every problem found (`{"error": first, "errors": all}`), and any
/// header the answer needs (`Allow`, `WWW-Authenticate`, `Retry-After`).
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var problems: [ClientRules.Violation]
    public var headers: [(String, String)]

    public init(_ status: HTTPResponse.Status, _ problems: [ClientRules.Violation], headers: [(String, String)] = []) {
        self.status = status
        self.problems = problems
        self.headers = headers
    }

    public init(_ status: HTTPResponse.Status, field: String, _ rule: String, headers: [(String, String)] = []) {
        self.init(status, [ClientRules.Violation(field: field, rule: rule)], headers: headers)
    }

    /// 400 when the body was not a JSON object at all, 422 when only its fields were wrong.
    static func form(_ b: BodyReader, _ problems: [ClientRules.Violation]) -> APIError {
        APIError(b.isValidBody ? .unprocessableContent : .badRequest, problems)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Reply.json(status, Self.body(problems), headers: headers)
    }

    static func body(_ problems: [ClientRules.Violation]) -> JSONValue {
        func one(_ v: ClientRules.Violation) -> JSONValue { .object([("field", .string(v.field)), ("rule", .string(v.rule))]) }
        let first = problems.first ?? ClientRules.Violation(field: "", rule: "error")
        return .object([("error", one(first)), ("errors", .array(problems.map(one)))])
    }
}

/// A ledger refusal answers with the status that fits it; a store failure is a 500 whose details go
/// to the log only, since they name paths and SQL.
extension LedgerError: HTTPResponseError {
    public var status: HTTPResponse.Status {
        switch self {
        case .duplicateUsername, .duplicateEmail, .accountTaken, .idempotencyConflict: return .conflict
        case .unknownClient: return .notFound
        case .invalidAmount, .invalidField: return .unprocessableContent
        default: return .internalServerError
        }
    }

    package var problem: ClientRules.Violation {
        switch self {
        case .duplicateUsername(let u): return .init(field: "username", rule: "'\(u)' is already taken")
        case .duplicateEmail(let m):
            return .init(field: "email", rule: "'\(m)' is already used by another client (emails compare case-insensitively)")
        case .accountTaken(let code, let owner): return .init(field: "account", rule: "'\(code)' is already billed to client '\(owner)'")
        case .unknownClient(let u): return .init(field: "username", rule: "no client named '\(u)'")
        case .invalidAmount(let why): return .init(field: "amount", rule: why)
        case .invalidField(let f, let rule): return .init(field: f, rule: rule)
        case .idempotencyConflict(let key, let detail): return .init(field: "idempotency_key", rule: "'\(key)' was already used \(detail)")
        default: return .init(field: "store", rule: "internal error; the agent's log has the details")
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        if status == .internalServerError { context.logger.error("api: store error: \(self)") }
        return Reply.json(status, APIError.body([problem]))
    }
}

/// The answers the API builds: JSON or one text line, each ending in a newline.
enum Reply {
    static func json(_ status: HTTPResponse.Status, _ v: JSONValue, headers: [(String, String)] = []) -> Response {
        make(status, "application/json", Array((v.serialized() + "\n").utf8), headers)
    }

    static func plain(_ status: HTTPResponse.Status, _ s: String, headers: [(String, String)] = []) -> Response {
        make(status, "text/plain; charset=utf-8", Array((s + "\n").utf8), headers)
    }

    static func make(_ status: HTTPResponse.Status, _ contentType: String, _ body: [UInt8],
                     _ extra: [(String, String)]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        for (name, value) in extra { if let n = HTTPField.Name(name) { headers[n] = value } }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

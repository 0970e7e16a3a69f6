import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// What every API request carries besides itself: its connection (for `100 Continue`), and whether
/// a handler took its body, so an answer that left one unread closes the connection.
public struct APIContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Nil when the router is driven in process (tests) rather than by the server.
    package let channel: (any Channel)?
    let bodyTaken = BodyTaken()

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// A context without a connection, for calling the router in process.
    public init(logger: Logger) {
        coreContext = .init(source: LoggerSource(logger: logger))
        channel = nil
    }

    struct LoggerSource: RequestContextSource { let logger: Logger }

    /// Collects the request's body up to `limit` bytes, first telling a client that sent
    /// `Expect: 100-continue` to go on; reached only after the route's authentication passed.
    package func body(of request: Request, limit: Int) async throws(APIError) -> [UInt8] {
        bodyTaken.set()
        let tooLarge = APIError(.contentTooLarge, field: "body", "must be at most \(limit) bytes", headers: [("Connection", "close")])
        if let announced = request.headers[.contentLength].flatMap({ Int($0) }), announced > limit { throw tooLarge }
        if let channel, request.headers[.expect]?.lowercased() == "100-continue" {
            channel.triggerUserOutboundEvent(ConnectionGuard.SendContinue(), promise: nil)
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch {
            throw tooLarge
        }
    }
}

/// Set once a handler starts reading the body; shared by the copies of the context a request passes through.
final class BodyTaken: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

/// The outermost layer: answers an unknown path with the API's JSON 404, and closes the connection
/// after an answer that left a body unread (Hummingbird would otherwise drain it before the next
/// request, which lets an unauthenticated client make the server read a body).
struct TransportMiddleware: RouterMiddleware {
    typealias Context = APIContext

    func handle(_ request: Request, context: APIContext,
                next: (Request, APIContext) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let e as HTTPError where e.status == .notFound && context.endpointPath == nil {
            response = try APIError(.notFound, field: "path", "no such endpoint: \(request.method) \(request.uri.path)")
                .response(from: request, context: context)
        } catch let e as any HTTPResponseError {
            response = try e.response(from: request, context: context)
        }
        let announced = request.headers[.contentLength].flatMap { Int($0) } ?? 0
        if !context.bodyTaken.isSet, announced > 0 || request.headers[.transferEncoding] != nil {
            response.headers[.connection] = "close"
        }
        return response
    }
}

/// Lets a request through only with the admin bearer token; runs before any admin route reads a body.
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let handler: APIHandler

    func handle(_ request: Request, context: APIContext,
                next: (Request, APIContext) async throws -> Response) async throws -> Response {
        if let denied = handler.adminDenial(request.headers[.authorization]) { throw denied }
        return try await next(request, context)
    }
}

/// A route's handler: the request, the context, and the path's decoded parameters.
package typealias RouteHandler = @Sendable (Request, APIContext) async throws -> Response

extension RouterMethods where Context == APIContext {
    /// Registers each method's handler on `path`, and a 405 naming them for every other method.
    package func route(_ path: RouterPath, _ methods: KeyValuePairs<HTTPRequest.Method, RouteHandler>) {
        for (method, handler) in methods { on(path, method: method, use: handler) }
        let allowed = methods.map(\.key)
        let names = allowed.map(\.rawValue).joined(separator: ", ")
        let refusal = APIError(.methodNotAllowed, field: "method", "use \(allowed.map(\.rawValue).joined(separator: " or "))",
                               headers: [("Allow", names)])
        let common: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]
        for method in common where !allowed.contains(method) {
            on(path, method: method) { _, _ -> Response in throw refusal }
        }
    }
}

extension APIContext {
    /// A path parameter, percent-decoded (`/v1/clients/a%2Db` names `a-b`).
    package func parameter(_ name: String) -> String {
        URLText.percentDecode(Substring(parameters.get(name) ?? ""))
    }
}

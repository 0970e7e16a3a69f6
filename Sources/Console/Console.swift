import Foundation
import HTTPTypes
import Hummingbird
import MeterConfig
import MeterCore
import Mustache
import NIOCore
import API

/// Why the console refused to start: the `[console]` key at fault and what is wrong with it.
public struct ConsoleStartupError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var message: String
    public var description: String { "\(key): \(message)" }
}

/// The operator console (`/console/`) and the client portal (`/portal/`): server-rendered pages over
/// the admin API's own operations (`APIHandler`), so every rule and word is the API's and the CLI's.
/// Built once at start-up from `[console]`; `register` adds its routes to the API's router.
public final class Console: Sendable {
    let config: ConsoleConfig
    let disabledDays: Int64
    let library: MustacheLibrary
    let stylesheet: ByteBuffer
    let script: ByteBuffer
    let logo: (bytes: ByteBuffer, type: String)?
    let sessions: SessionStore
    let limiter: SignInLimiter
    let clock: @Sendable () -> Int64

    static let pageSize = 50

    /// - Throws: `ConsoleStartupError` naming `console.logo_file` when the logo cannot be read.
    public init(config: Config, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) })
        throws(ConsoleStartupError) {
        self.config = config.console
        disabledDays = config.retention.disabledDays
        var library = MustacheLibrary()
        for (name, text) in Templates.all {
            // The templates are constants of this file's module; a parse failure is a bug that the
            // rendering tests catch, reported here rather than trapped.
            do { try library.register(text, named: name) } catch {
                throw ConsoleStartupError(key: "console", message: "template \(name) does not parse: \(error)")
            }
        }
        self.library = library
        stylesheet = ByteBuffer(string: Assets.stylesheet(primary: config.console.primaryColor))
        script = ByteBuffer(string: Assets.script)
        logo = try config.console.logoFile.map { (path) throws(ConsoleStartupError) in try Self.readLogo(path) }
        sessions = SessionStore(clock: clock)
        limiter = SignInLimiter()
        self.clock = clock
    }

    /// The logo's bytes and media type; `config check` calls it too, so it refuses what `run` would.
    public static func readLogo(_ path: String) throws(ConsoleStartupError) -> (bytes: ByteBuffer, type: String) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConsoleStartupError(key: "console.logo_file", message: "\(path): cannot be read (missing, or permissions?)")
        }
        guard data.count <= 1 << 20 else {
            throw ConsoleStartupError(key: "console.logo_file", message: "\(path): must be at most 1 MiB")
        }
        let ext = (path as NSString).pathExtension.lowercased()
        let types = ["png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
                     "svg": "image/svg+xml"]
        guard let type = types[ext] else {
            throw ConsoleStartupError(key: "console.logo_file", message: "\(path): must be a .png, .jpg, .gif, .webp or .svg file")
        }
        return (ByteBuffer(bytes: data), type)
    }

    /// Adds the console's and the portal's routes to the API's router.
    public func register(on router: Router<APIContext>, handler: APIHandler) {
        Site(console: self, handler: handler).register(router)
    }

    // MARK: rendering

    /// A page: the named template inside the layout, with the branding and, when signed in, the
    /// CSRF token and the Sign out button.
    func render(_ template: String, page: String, _ values: [String: Any], session: Session?,
                signout: String? = nil, meters: String? = nil) -> String {
        let body = library.render(values, withTemplate: template) ?? ""
        var layout: [String: Any] = [
            "page": page, "title": config.title, "hasLogo": logo != nil, "body": body,
        ]
        if let session {
            layout["hasCsrf"] = true
            layout["csrf"] = session.csrf
            if let signout {
                layout["hasSignout"] = true
                layout["signout"] = signout
                if case .client(let u) = session.principal { layout["who"] = u } else { layout["who"] = "Operator" }
            }
        }
        if let meters {
            layout["hasMeters"] = true
            layout["meters"] = meters
        }
        return library.render(layout, withTemplate: "layout") ?? ""
    }
}

/// What every console and portal answer carries: no caching of personal pages, no framing, no
/// sniffing, and a policy that runs only the script file this server sends (no inline script or style).
enum Web {
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    static func response(_ status: HTTPResponse.Status, _ type: String, _ body: ByteBuffer,
                         headers extra: [(String, String)] = [], cache: Bool = false) -> Response {
        var h = HTTPFields()
        let fixed = [
            ("Content-Type", type), ("Content-Security-Policy", contentSecurityPolicy), ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin"), ("Cache-Control", cache ? "max-age=300" : "no-store"),
        ]
        // Every name here is a constant token; `HTTPField.Name` is optional only for names read from input.
        for (name, value) in fixed + extra { if let n = HTTPField.Name(name) { h.append(HTTPField(name: n, value: value)) } }
        return Response(status: status, headers: h, body: ResponseBody(byteBuffer: body))
    }

    static func html(_ status: HTTPResponse.Status, _ text: String, headers: [(String, String)] = []) -> Response {
        response(status, "text/html; charset=utf-8", ByteBuffer(string: text), headers: headers)
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        response(status, "application/json", ByteBuffer(string: value.serialized() + "\n"))
    }

    /// 303: after a form's POST the browser GETs the next page, so a reload does not post again.
    static func redirect(_ location: String, cookies: [String] = []) -> Response {
        response(.seeOther, "text/plain; charset=utf-8", ByteBuffer(string: "see \(location)\n"),
                 headers: [("Location", location)] + cookies.map { ("Set-Cookie", $0) })
    }

    /// A cookie that scripts cannot read and other sites' requests do not carry.
    static func cookie(_ name: String, _ value: String, path: String, maxAge: Int64, secure: Bool) -> String {
        "\(name)=\(value); Path=\(path); Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    /// The value of cookie `name`, from every `Cookie` field of the request.
    static func cookie(_ name: String, in request: Request) -> String? {
        for field in request.headers[values: .cookie] {
            for part in field.split(separator: ";") {
                let kv = part.trimmingCharacters(in: .whitespaces)
                if kv.hasPrefix(name + "=") { return String(kv.dropFirst(name.count + 1)) }
            }
        }
        return nil
    }
}

/// An `application/x-www-form-urlencoded` body or query: `+` is a space here (unlike the API's
/// query, where `+` starts an E.164 number); the first occurrence of a name wins.
struct FormData {
    var values: [String: String] = [:]

    init(_ text: Substring?) {
        guard let text else { return }
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.decode(kv[0])
            if values[key] == nil { values[key] = kv.count > 1 ? Self.decode(kv[1]) : "" }
        }
    }

    static func decode(_ s: Substring) -> String {
        URLText.percentDecode(Substring(s.replacingOccurrences(of: "+", with: " ")))
    }

    subscript(_ name: String) -> String? { values[name] }

    /// `q=a%20b&page=2` for links that keep the operator's search.
    static func encode(_ pairs: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return pairs.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
    }
}


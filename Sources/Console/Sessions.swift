import Synchronization

/// Who signed in: the operator (with the admin token) or one client (with its password).
enum Principal: Sendable, Equatable {
    case operatorUser
    case client(String)
}

/// A signed-in browser: who it is, the CSRF token its forms must carry, and when it ends.
struct Session: Sendable, Equatable {
    var principal: Principal
    var csrf: String
    var expires: Int64
}

/// The signed-in sessions, in memory: a restart signs everyone out, which for a single-host agent is
/// cheaper and safer than keeping session secrets on disk.
final class SessionStore: Sendable {
    static let lifetime: Int64 = 12 * 3600
    /// Sessions are only made after a sign-in succeeds, but a bound keeps memory fixed even so.
    static let capacity = 10_000
    private let sessions = Mutex<[String: Session]>([:])
    let clock: @Sendable () -> Int64

    init(clock: @escaping @Sendable () -> Int64) { self.clock = clock }

    /// A new session id (the cookie's value) and its session.
    func create(_ principal: Principal) -> (id: String, session: Session) {
        let now = clock()
        let id = Token.make(), s = Session(principal: principal, csrf: Token.make(), expires: now + Self.lifetime)
        sessions.withLock { all in
            if all.count >= Self.capacity {
                all = all.filter { $0.value.expires > now }
                if all.count >= Self.capacity, let oldest = all.min(by: { $0.value.expires < $1.value.expires }) {
                    all[oldest.key] = nil
                }
            }
            all[id] = s
        }
        return (id, s)
    }

    /// The live session with this id; an expired one is forgotten.
    func session(_ id: String?) -> Session? {
        guard let id, !id.isEmpty else { return nil }
        let now = clock()
        return sessions.withLock { all in
            guard let s = all[id] else { return nil }
            if s.expires <= now {
                all[id] = nil
                return nil
            }
            return s
        }
    }

    func end(_ id: String?) {
        guard let id else { return }
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    /// Ends every portal session of `username` (it was just disabled).
    func endAll(client username: String) {
        sessions.withLock { all in all = all.filter { $0.value.principal != .client(username) } }
    }
}

/// Failed sign-ins per key (the remote address, and for the portal also the username): past `limit`
/// failures within `window` seconds, that key is refused until the oldest failure ages out.
final class SignInLimiter: Sendable {
    let limit: Int
    let window: Int64
    private let failures = Mutex<[String: [Int64]]>([:])

    init(limit: Int = 5, window: Int64 = 60) {
        self.limit = limit
        self.window = window
    }

    /// Seconds to wait before `keys` may try again, or nil when none is over the limit.
    func retryAfter(_ keys: [String], now: Int64) -> Int64? {
        failures.withLock { all in
            var wait: Int64?
            for key in keys {
                let recent = (all[key] ?? []).filter { $0 > now - window }
                all[key] = recent.isEmpty ? nil : recent
                if recent.count >= limit, let first = recent.first { wait = max(wait ?? 0, first + window - now) }
            }
            return wait
        }
    }

    func failed(_ keys: [String], now: Int64) {
        failures.withLock { all in
            // Bound the table: a flood of distinct keys drops the stale ones first, then the lot.
            if all.count > 50_000 { all = all.filter { ($0.value.last ?? 0) > now - window } }
            if all.count > 50_000 { all = [:] }
            for key in keys { all[key, default: []].append(now) }
        }
    }

    func succeeded(_ keys: [String]) {
        failures.withLock { all in for key in keys { all[key] = nil } }
    }
}

/// Random tokens for session ids, CSRF tokens and default idempotency keys: 128 bits, hex.
enum Token {
    static func make() -> String {
        var g = SystemRandomNumberGenerator()
        return (0 ..< 2).map { _ in
            let s = String(g.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }.joined()
    }
}

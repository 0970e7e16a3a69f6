import Dispatch
import Ledger
import MeterConfig
import MeterCore
import Rater
import Synchronization

/// Why `/v1/authorize` allowed or denied a call (SPEC 9), plus `too_many_calls` for
/// `[authorize] max_concurrent_calls`.
public enum AuthorizeReason: String, Sendable, CaseIterable {
    case ok
    case unknownAccount = "unknown_account"
    case disabled
    case noCredit = "no_credit"
    case noRate = "no_rate"
    case tooManyCalls = "too_many_calls"
}

/// One authorize answer with the figures it was computed from; amounts in µcr.
public struct AuthorizeDecision: Sendable, Equatable {
    public var reason: AuthorizeReason
    /// The longest billsec whose cost fits in the credit left, capped by `max_call_seconds`; 0 on deny.
    public var maxSeconds: Int64
    public var account: String
    public var username: String?
    /// The ledger's available (assigned − used), before reservations; nil for an unknown account.
    public var available: Int64?
    /// Held by the client's other live calls (and by calls charged but not yet seen in the cache).
    public var reserved: Int64
    /// Reserved for this call: the cost of `maxSeconds`; 0 without `call` or on deny.
    public var hold: Int64
    public var call: String?
    /// The rate row's prefix ("" for the catch-all); nil when no row applied.
    public var prefix: String?

    public var allow: Bool { reason == .ok }

    /// The body for `format=text`: `ALLOW n` or `DENY reason`.
    public var text: String { allow ? "ALLOW \(maxSeconds)" : "DENY \(reason.rawValue)" }

    public var json: JSONValue {
        .object([
            ("allow", .bool(allow)),
            ("max_seconds", .int(maxSeconds)),
            ("reason", .string(reason.rawValue)),
            ("username", username.map { .string($0) } ?? .null),
            ("account", .string(account)),
            ("available", available.map { .string(Money.format($0)) } ?? .null),
            ("reserved", .string(Money.format(reserved))),
            ("hold", .string(Money.format(hold))),
            ("call", call.map { .string($0) } ?? .null),
            ("prefix", prefix.map { .string($0) } ?? .null),
        ])
    }
}

/// What authorize needs to know about a client, copied out of the ledger.
public struct CachedClient: Sendable, Equatable {
    public var id: Int64
    public var username: String
    public var status: ClientStatus
    public var plan: String
    public var meter: Meter

    public init(id: Int64, username: String, status: ClientStatus, plan: String, meter: Meter) {
        self.id = id
        self.username = username
        self.status = status
        self.plan = plan
        self.meter = meter
    }
}

/// An immutable picture of every account's client and balance, swapped whole on refresh.
public final class BalanceSnapshot: Sendable {
    public let byAccount: [String: CachedClient]
    public let clients: Int

    public init(records: [ClientRecord]) {
        var map: [String: CachedClient] = [:]
        for r in records {
            let c = CachedClient(id: r.id, username: r.username, status: r.status, plan: r.plan, meter: r.meter)
            for a in r.accounts { map[a] = c }
        }
        byAccount = map
        clients = records.count
    }
}

/// Clients, accounts, plans and balances held in memory so that authorize never waits on SQLite.
///
/// `refresh` reloads only when `PRAGMA data_version` moved, i.e. when another connection (the daemon's
/// ingest, the CLI) committed; the API's own writes call `refresh(force: true)`, since a connection
/// does not see its own commits in `data_version`.
public final class BalanceCache: Sendable {
    private let ledger: Ledger
    private let current: Mutex<BalanceSnapshot>
    /// Serialises refreshes so an older snapshot can never replace a newer one.
    private let refreshing = Mutex<Int64>(-1)

    public init(ledger: Ledger) throws(LedgerError) {
        self.ledger = ledger
        let version = try ledger.dataVersion()
        current = Mutex(BalanceSnapshot(records: try ledger.clients()))
        refreshing.withLock { $0 = version }
    }

    public var snapshot: BalanceSnapshot { current.withLock { $0 } }

    /// Reloads when the store changed (or when forced), then lets `book` forget the reservations
    /// released before this refresh began: their charges are in the balances now.
    public func refresh(force: Bool = false, book: ReservationBook) throws(LedgerError) {
        try refreshing.withLock { (seen: inout Int64) throws(LedgerError) in
            // Taken before reading the version: every release up to here followed its commit, and the
            // commit is visible to a read that starts after this point.
            let releasedThrough = book.releaseSequence
            let version = try ledger.dataVersion()
            if force || version != seen {
                let fresh = BalanceSnapshot(records: try ledger.clients())
                current.withLock { $0 = fresh }
                seen = version
            }
            book.settle(through: releasedThrough)
        }
    }
}

/// Live call reservations: an allowed authorization that names its call holds the cost of its
/// `max_seconds` until the call's CDR is charged (`release(callIDs:)`) or the hold expires.
///
/// Released holds are kept until the balance cache has reloaded past the release, so that the
/// credit a charge takes is never counted as free in between (the charge is committed before the
/// daemon calls `release`, but the cache sees it only at its next refresh).
public final class ReservationBook: Sendable {
    struct Hold: Sendable {
        var clientID: Int64
        var cost: Int64
        var expiresAt: Int64
    }

    struct Released: Sendable {
        var clientID: Int64
        var cost: Int64
        var sequence: UInt64
        var expiresAt: Int64
    }

    struct State: Sendable {
        var byCall: [String: Hold] = [:]
        var byClient: [Int64: Set<String>] = [:]
        var released: [Released] = []
        var sequence: UInt64 = 0
    }

    private let state = Mutex(State())
    let now: @Sendable () -> Int64

    /// `clock` returns monotonic milliseconds (tests pass a manual clock).
    public init(clock: @escaping @Sendable () -> Int64 = ReservationBook.monotonicMillis) {
        now = clock
    }

    public static func monotonicMillis() -> Int64 {
        Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
    }

    /// The daemon calls this after each committed batch with the call ids (Asterisk `uniqueid`,
    /// FreeSWITCH `uuid`) of the CDRs it charged; unknown ids are ignored.
    public func release<S: Sequence>(callIDs: S) where S.Element == String {
        state.withLock { st in
            for id in callIDs {
                guard let h = st.byCall.removeValue(forKey: id) else { continue }
                st.byClient[h.clientID]?.remove(id)
                if st.byClient[h.clientID]?.isEmpty == true { st.byClient[h.clientID] = nil }
                st.sequence &+= 1
                st.released.append(Released(clientID: h.clientID, cost: h.cost, sequence: st.sequence, expiresAt: h.expiresAt))
            }
        }
    }

    /// Live holds (not counting released ones waiting for the cache).
    public var liveCount: Int { state.withLock { $0.byCall.count } }

    /// µcr held for a client and its number of live calls, expired holds excluded.
    public func held(clientID: Int64) -> (cost: Int64, calls: Int) {
        let t = now()
        return state.withLock { st in Self.held(&st, clientID: clientID, now: t, excluding: nil) }
    }

    var releaseSequence: UInt64 { state.withLock { $0.sequence } }

    func settle(through sequence: UInt64) {
        state.withLock { st in
            if !st.released.isEmpty { st.released.removeAll { $0.sequence <= sequence } }
        }
    }

    /// Drops every expired hold, so calls that never produced a CDR do not pile up.
    public func sweep() {
        let t = now()
        state.withLock { st in
            for (id, h) in st.byCall where h.expiresAt <= t { Self.drop(&st, id) }
            st.released.removeAll { $0.expiresAt <= t }
        }
    }

    private static func drop(_ st: inout State, _ id: String) {
        guard let h = st.byCall.removeValue(forKey: id) else { return }
        st.byClient[h.clientID]?.remove(id)
        if st.byClient[h.clientID]?.isEmpty == true { st.byClient[h.clientID] = nil }
    }

    private static func held(_ st: inout State, clientID: Int64, now: Int64, excluding: String?) -> (cost: Int64, calls: Int) {
        var cost: Int64 = 0
        var calls = 0
        if let ids = st.byClient[clientID] {
            for id in ids {
                guard let h = st.byCall[id] else { continue }
                if h.expiresAt <= now { drop(&st, id); continue }
                if id == excluding { continue }
                cost = cost.addingReportingOverflow(h.cost).overflow ? Int64.max : cost + h.cost
                calls += 1
            }
        }
        for r in st.released where r.clientID == clientID && r.expiresAt > now {
            cost = cost.addingReportingOverflow(r.cost).overflow ? Int64.max : cost + r.cost
        }
        return (cost, calls)
    }

    /// The decision of SPEC 9 for a client already looked up, made under the book's lock so that two
    /// concurrent authorizations for one client see each other's hold.
    func decide(account: String, client: CachedClient?, destination: String, call: String?,
                settings: APISettings) -> AuthorizeDecision {
        var d = AuthorizeDecision(reason: .unknownAccount, maxSeconds: 0, account: account, username: nil,
                                  available: nil, reserved: 0, hold: 0, call: call, prefix: nil)
        guard let client else { return d }
        d.username = client.username
        d.available = client.meter.available
        let limits = settings.authorize
        if client.status == .disabled && limits.denyDisabled {
            d.reason = .disabled
            return d
        }
        guard let row = settings.decks[client.plan]?.match(destination) else {
            d.reason = .noRate
            return d
        }
        d.prefix = row.prefix
        let t = now()
        return state.withLock { st in
            // The same call asking again is re-computed from scratch: its old hold does not count.
            if let call { Self.drop(&st, call) }
            let (reserved, calls) = Self.held(&st, clientID: client.id, now: t, excluding: call)
            d.reserved = reserved
            let (left, o) = client.meter.available.subtractingReportingOverflow(reserved)
            let credit = o ? Int64.min : left
            guard let max = Rating.maxSeconds(row, credit: credit, cap: limits.maxCallSeconds) else {
                d.reason = .noCredit
                return d
            }
            if let cap = limits.maxConcurrentCalls, calls >= cap {
                d.reason = .tooManyCalls
                return d
            }
            d.reason = .ok
            d.maxSeconds = max
            if let call {
                let cost = Rating.cost(row, billsec: max).cost
                let (expires, eo) = t.addingReportingOverflow(limits.reservationSeconds.multipliedReportingOverflow(by: 1000).partialValue)
                st.byCall[call] = Hold(clientID: client.id, cost: cost, expiresAt: eo ? Int64.max : expires)
                st.byClient[client.id, default: []].insert(call)
                d.hold = cost
            }
            return d
        }
    }
}

/// What the API reads from the daemon's current config generation on every request, so that a
/// SIGHUP reload (new decks, thresholds or `[authorize]` limits) applies at once.
public struct APISettings: Sendable {
    public var authorize: AuthorizeConfig
    public var thresholds: Thresholds
    public var decks: [String: RateDeck]
    /// Plan names a client may be given; empty means any (a config without `[[plan]]`, as in the CLI).
    public var plans: [String]

    public init(authorize: AuthorizeConfig = AuthorizeConfig(), thresholds: Thresholds = .default,
                decks: [String: RateDeck], plans: [String]? = nil) {
        self.authorize = authorize
        self.thresholds = thresholds
        self.decks = decks
        self.plans = plans ?? decks.keys.sorted()
    }

    public init(config: Config, decks: [String: RateDeck]) {
        self.init(authorize: config.authorize, thresholds: config.thresholds, decks: decks,
                  plans: config.plans.map(\.name))
    }
}

/// Authorize over the in-memory balances and the reservation book.
public final class Authorizer: Sendable {
    public let cache: BalanceCache
    public let book: ReservationBook

    public init(cache: BalanceCache, book: ReservationBook) {
        self.cache = cache
        self.book = book
    }

    public func authorize(account: String, destination: String, call: String?, settings: APISettings) -> AuthorizeDecision {
        let client = cache.snapshot.byAccount[account]
        return book.decide(account: account, client: client, destination: destination, call: call, settings: settings)
    }
}

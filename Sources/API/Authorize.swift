import Foundation
import Dispatch
import Ledger
import MeterConfig
import MeterCore
import Rater
import Synchronization

/// Why `/v1/authorize` allowed or denied a call (SPEC 9), plus `too_many_calls` for
/// `[authorize] max_concurrent_calls` and `max_holds_per_client`, and `store_unavailable`.
public enum AuthorizeReason: String, Sendable, CaseIterable {
    case ok
    case unknownAccount = "unknown_account"
    case disabled
    case noCredit = "no_credit"
    case noRate = "no_rate"
    case tooManyCalls = "too_many_calls"
    /// The store could not be read or written and `[authorize] when_store_down` is `deny`.
    case storeUnavailable = "store_unavailable"
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

/// Clients, accounts, plans and balances as last read from the store: what authorize answers from
/// while the store is down and `[authorize] when_store_down` is `cached`.
///
/// `refresh` reloads only when `PRAGMA data_version` moved, i.e. when another connection (the daemon's
/// ingest, the CLI) committed; the API's own writes call `refresh(force: true)`, since a connection
/// does not see its own commits in `data_version`.
public final class BalanceCache: Sendable {
    private let ledger: any AgentStore
    private let current: Mutex<BalanceSnapshot>
    /// Serialises refreshes so an older snapshot can never replace a newer one.
    private let refreshing = Mutex<Int64>(-1)
    /// Whether anything answers from the copy (`when_store_down = "cached"`, read per call so a reload
    /// applies): reloading every client after every commit costs, and with `deny` nothing reads it.
    private let wanted: @Sendable () -> Bool

    public init(ledger: any AgentStore, wanted: @escaping @Sendable () -> Bool = { true }) throws(LedgerError) {
        self.ledger = ledger
        self.wanted = wanted
        let version = try ledger.dataVersion()
        current = Mutex(BalanceSnapshot(records: try ledger.clients()))
        refreshing.withLock { $0 = version }
    }

    public var snapshot: BalanceSnapshot { current.withLock { $0 } }

    /// Reloads when the store changed (or when forced), while anything answers from the copy.
    public func refresh(force: Bool = false) throws(LedgerError) {
        guard wanted() else { return }
        try refreshing.withLock { (seen: inout Int64) throws(LedgerError) in
            let version = try ledger.dataVersion()
            if force || version != seen {
                let fresh = BalanceSnapshot(records: try ledger.clients())
                current.withLock { $0 = fresh }
                seen = version
            }
        }
    }
}

/// Authorize's holds, kept in the store so that every agent sharing it sees every hold: an allowed
/// authorization that names its call holds the cost of its `max_seconds` until the call's CDR is
/// charged (the batch that charges it deletes the hold in the same transaction) or the hold expires.
///
/// Check-and-reserve is one write transaction on a connection of the book's own, so two agents (or two
/// requests of one agent) asking for one client at once are serialised by the store, and the balances
/// it decides on are the store's at that moment, whoever changed them. An answer reads one client's
/// row and at most `max_holds_per_client` holds, whatever other clients hold.
///
/// While the store cannot answer, `[authorize] when_store_down` decides: `deny`, or `cached` (the
/// balances last read, and holds this agent keeps in memory until the store takes them again).
public final class ReservationBook: Sendable {
    private let ledger: any HoldStore
    /// Unix milliseconds: hold expiry, a clock every agent sharing the store reads alike.
    let now: @Sendable () -> Int64
    /// Unix seconds: "now" as the answer moment that selects a rate row (windows and price lists).
    let wallClock: @Sendable () -> Int64
    /// Holds granted from cached balances while the store was down, written once it answers again.
    private let pending = Mutex<[HoldKey: HoldGrant]>([:])
    /// Told of each answer the store could not give (the daemon logs it, at most every 10 s).
    private let storeFailed: @Sendable (LedgerError) -> Void

    /// `ledger` should be a connection of the book's own: each answer with a call is a transaction.
    /// Tests pass manual clocks.
    public init(ledger: any HoldStore, clock: @escaping @Sendable () -> Int64 = ReservationBook.unixMillis,
                wallClock: @escaping @Sendable () -> Int64 = ReservationBook.unixSeconds,
                storeFailed: @escaping @Sendable (LedgerError) -> Void = { _ in }) {
        self.ledger = ledger
        now = clock
        self.wallClock = wallClock
        self.storeFailed = storeFailed
    }

    public static func unixSeconds() -> Int64 { Int64(Date().timeIntervalSince1970.rounded(.down)) }

    public static func unixMillis() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// Live holds in the store (every agent's) plus any this agent still keeps for it; nil when the
    /// store cannot be read.
    public var liveCount: Int? {
        let t = now()
        guard let stored = try? ledger.liveHoldCount(now: t) else { return nil }
        return stored + pending.withLock { $0.values.filter { $0.expiresAt > t }.count }
    }

    /// µcr held for a client and its number of live calls, expired holds excluded.
    public func held(clientID: Int64) throws(LedgerError) -> (cost: Int64, calls: Int) {
        try ledger.held(clientID: clientID, now: now())
    }

    /// Holds granted from cached balances and not yet in the store.
    public var pendingCount: Int { pending.withLock { $0.count } }

    /// Drops every expired hold, and hands the store the holds kept while it was down.
    public func sweep() throws(LedgerError) {
        let t = now()
        try flushPending(now: t)
        try ledger.sweepHolds(now: t)
    }

    private func flushPending(now t: Int64) throws(LedgerError) {
        let held = pending.withLock { p in
            p = p.filter { $0.value.expiresAt > t }
            return p
        }
        guard !held.isEmpty else { return }
        try ledger.keepHolds(held)
        pending.withLock { p in for (k, g) in held where p[k] == g { p[k] = nil } }
    }

    /// The decision of SPEC 9, made inside the store's check-and-reserve. `cached` is the client as the
    /// balance cache last read it, for `when_store_down = "cached"`.
    func decide(account: String, destination: String, call: String?, settings: APISettings,
                cached: @autoclosure () -> CachedClient?) -> AuthorizeDecision {
        let answeredAt = wallClock()
        let t = now()
        do {
            if pendingCount > 0 { try flushPending(now: t) }
            return try ledger.reserve(account: account, call: call, now: t) { view in
                Self.decide(view: view, account: account, destination: destination, call: call, settings: settings,
                            answeredAt: answeredAt, now: t)
            }
        } catch {
            storeFailed(error)
            var d = AuthorizeDecision(reason: .storeUnavailable, maxSeconds: 0, account: account, username: nil,
                                      available: nil, reserved: 0, hold: 0, call: call, prefix: nil)
            guard settings.authorize.whenStoreDown == .cached else { return d }
            guard let c = cached() else {
                d.reason = .unknownAccount
                return d
            }
            // Answered from the last balances read, against the holds this agent kept since: others'
            // holds taken meanwhile are not seen, which is what `cached` accepts to keep calls going.
            return pending.withLock { p in
                if let call { p[HoldKey(clientID: c.id, call: call)] = nil }
                let mine = p.filter { $0.key.clientID == c.id && $0.value.expiresAt > t }
                let reserved = mine.values.reduce(Int64(0)) { let (s, o) = $0.addingReportingOverflow($1.cost); return o ? .max : s }
                let view = HoldView(clientID: c.id, username: c.username, status: c.status, plan: c.plan, meter: c.meter,
                                    reserved: reserved, calls: mine.count)
                let (decision, grant) = Self.decide(view: view, account: account, destination: destination, call: call,
                                                    settings: settings, answeredAt: answeredAt, now: t)
                if let call, let grant { p[HoldKey(clientID: c.id, call: call)] = grant }
                return decision
            }
        }
    }

    /// The pure rule: what to answer for `view` (nil: no client owns the account), and the hold to take.
    static func decide(view: HoldView?, account: String, destination: String, call: String?, settings: APISettings,
                       answeredAt: Int64, now t: Int64) -> (value: AuthorizeDecision, grant: HoldGrant?) {
        var d = AuthorizeDecision(reason: .unknownAccount, maxSeconds: 0, account: account, username: nil,
                                  available: nil, reserved: 0, hold: 0, call: call, prefix: nil)
        guard let client = view else { return (d, nil) }
        d.username = client.username
        d.available = client.meter.available
        let limits = settings.authorize
        if client.status == .disabled && limits.denyDisabled {
            d.reason = .disabled
            return (d, nil)
        }
        // Windows and price lists are chosen with now as the answer moment; with split the answer
        // below walks the windows ahead, so it stays exact across a change of price.
        guard let deck = settings.decks[client.plan], let row = deck.match(destination, at: answeredAt) else {
            d.reason = .noRate
            return (d, nil)
        }
        d.prefix = row.prefix
        d.reserved = client.reserved
        let (left, o) = client.meter.available.subtractingReportingOverflow(client.reserved)
        let credit = o ? Int64.min : left
        guard let max = deck.maxSeconds(destination, now: answeredAt, credit: credit, cap: limits.maxCallSeconds)?.maxSeconds else {
            d.reason = .noCredit
            return (d, nil)
        }
        if let cap = limits.maxConcurrentCalls, client.calls >= cap {
            d.reason = .tooManyCalls
            return (d, nil)
        }
        if call != nil, client.calls >= limits.maxHoldsPerClient {
            d.reason = .tooManyCalls
            return (d, nil)
        }
        d.reason = .ok
        d.maxSeconds = max
        guard call != nil else { return (d, nil) }
        let cost = deck.price(destination, billsec: max, answeredAt: answeredAt)?.cost ?? Rating.cost(row, billsec: max).cost
        let (expires, eo) = t.addingReportingOverflow(limits.reservationSeconds.multipliedReportingOverflow(by: 1000).partialValue)
        d.hold = cost
        return (d, HoldGrant(cost: cost, expiresAt: eo ? Int64.max : expires))
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

/// Authorize over the store's balances and holds, with the last balances read for when it is down.
public final class Authorizer: Sendable {
    public let cache: BalanceCache
    public let book: ReservationBook

    public init(cache: BalanceCache, book: ReservationBook) {
        self.cache = cache
        self.book = book
    }

    public func authorize(account: String, destination: String, call: String?, settings: APISettings) -> AuthorizeDecision {
        book.decide(account: account, destination: destination, call: call, settings: settings,
                    cached: self.cache.snapshot.byAccount[account])
    }
}

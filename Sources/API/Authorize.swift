import Foundation
import Dispatch
import Ledger
import MeterConfig
import MeterCore
import Rater
import Synchronization

/// Why `/v1/authorize` allowed or denied a call (SPEC 9), plus `too_many_calls` for
/// `[authorize] max_concurrent_calls` and `max_holds_per_client`.
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

/// A reservation's identity: the client it was allowed for and the PBX call id it names. Two
/// accounts may name the same call id (by accident or on purpose); their holds never meet.
public struct HoldKey: Hashable, Sendable {
    public var clientID: Int64
    public var call: String

    public init(clientID: Int64, call: String) {
        self.clientID = clientID
        self.call = call
    }
}

/// Live call reservations: an allowed authorization that names its call holds the cost of its
/// `max_seconds` until the call's CDR is charged (`release(_:)`) or the hold expires.
///
/// Released holds are kept until the balance cache has reloaded past the release, so that the
/// credit a charge takes is never counted as free in between (the charge is committed before the
/// daemon calls `release`, but the cache sees it only at its next refresh).
///
/// Everything is indexed per client, with the client's reserved total kept as a running sum and its
/// expiries in a heap: an answer costs O(log h) in that client's own holds, whatever other clients
/// hold, and `max_holds_per_client` bounds h.
public final class ReservationBook: Sendable {
    struct Hold: Sendable {
        var cost: Int64
        var expiresAt: Int64
        /// Tells this hold from an earlier one of the same call still in the expiry heap.
        var serial: UInt64
    }

    struct Released: Sendable {
        var cost: Int64
        var sequence: UInt64
        var expiresAt: Int64
    }

    struct Expiry: Comparable, Sendable {
        var at: Int64
        var serial: UInt64
        var call: String
        static func < (a: Expiry, b: Expiry) -> Bool { (a.at, a.serial) < (b.at, b.serial) }
    }

    struct ClientHolds: Sendable {
        var holds: [String: Hold] = [:]
        /// Sum of `holds`' costs. Wrapping arithmetic keeps it exact through any add/remove order:
        /// each hold was sized to fit in the credit left after the others, so the true sum fits.
        var cost: Int64 = 0
        var expiries = MinHeap<Expiry>()
        /// In release order; at most the holds released since the cache's last reload.
        var released: [Released] = []

        var isEmpty: Bool { holds.isEmpty && released.isEmpty }

        /// Drops holds and released entries whose time is up; amortised O(log h) per hold.
        mutating func expire(now: Int64) -> Int {
            var dropped = 0
            while let first = expiries.min, first.at <= now {
                expiries.removeMin()
                if let h = holds[first.call], h.serial == first.serial {
                    holds[first.call] = nil
                    cost &-= h.cost
                    dropped += 1
                }
            }
            if released.contains(where: { $0.expiresAt <= now }) { released.removeAll { $0.expiresAt <= now } }
            return dropped
        }

        mutating func remove(_ call: String) -> Hold? {
            guard let h = holds.removeValue(forKey: call) else { return nil }
            cost &-= h.cost
            return h
        }

        mutating func insert(_ call: String, _ h: Hold) {
            holds[call] = h
            cost &+= h.cost
            expiries.insert(Expiry(at: h.expiresAt, serial: h.serial, call: call))
            // A call asked again leaves its old entry behind; rebuild before they outnumber the holds.
            if expiries.count > 2 * holds.count + 16 {
                expiries = MinHeap(holds.map { Expiry(at: $0.value.expiresAt, serial: $0.value.serial, call: $0.key) })
            }
        }

        /// Live holds plus released ones not yet in the balances, saturating at Int64.max.
        var reserved: Int64 {
            var total = cost < 0 ? Int64.max : cost
            for r in released {
                let (sum, o) = total.addingReportingOverflow(r.cost)
                total = o ? Int64.max : sum
            }
            return total
        }
    }

    struct State: Sendable {
        var clients: [Int64: ClientHolds] = [:]
        /// Clients with released entries, so `settle` visits only those.
        var withReleased: Set<Int64> = []
        var live = 0
        var sequence: UInt64 = 0
        var serial: UInt64 = 0

        /// Runs `body` on one client's holds, first expiring what is due, and forgets an emptied client.
        mutating func client<T>(_ id: Int64, now: Int64, _ body: (inout ClientHolds) -> T) -> T {
            var c = clients.removeValue(forKey: id) ?? ClientHolds()
            live -= c.expire(now: now)
            let before = c.holds.count
            let out = body(&c)
            live += c.holds.count - before
            if c.released.isEmpty { withReleased.remove(id) } else { withReleased.insert(id) }
            if !c.isEmpty { clients[id] = c }
            return out
        }
    }

    private let state = Mutex(State())
    let now: @Sendable () -> Int64
    /// Unix seconds: "now" as the answer moment that selects a rate row (windows and price lists).
    let wallClock: @Sendable () -> Int64

    /// `clock` returns monotonic milliseconds, `wallClock` unix seconds (tests pass manual clocks).
    public init(clock: @escaping @Sendable () -> Int64 = ReservationBook.monotonicMillis,
                wallClock: @escaping @Sendable () -> Int64 = ReservationBook.unixSeconds) {
        now = clock
        self.wallClock = wallClock
    }

    public static func unixSeconds() -> Int64 { Int64(Date().timeIntervalSince1970.rounded(.down)) }

    public static func monotonicMillis() -> Int64 {
        Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
    }

    /// The daemon calls this after each committed batch with the (client, call id) of each CDR it
    /// charged (Asterisk `uniqueid`, FreeSWITCH `uuid`); keys without a hold are ignored.
    public func release<S: Sequence>(_ keys: S) where S.Element == HoldKey {
        let t = now()
        state.withLock { st in
            for key in keys {
                guard st.clients[key.clientID]?.holds[key.call] != nil else { continue }
                st.sequence &+= 1
                let sequence = st.sequence
                st.client(key.clientID, now: t) { c in
                    guard let h = c.remove(key.call) else { return }
                    c.released.append(Released(cost: h.cost, sequence: sequence, expiresAt: h.expiresAt))
                }
            }
        }
    }

    /// Live holds (not counting released ones waiting for the cache).
    public var liveCount: Int { state.withLock { $0.live } }

    /// µcr held for a client and its number of live calls, expired holds excluded.
    public func held(clientID: Int64) -> (cost: Int64, calls: Int) {
        let t = now()
        return state.withLock { st in st.client(clientID, now: t) { c in (c.reserved, c.holds.count) } }
    }

    /// Entries in a client's expiry heap, stale ones included (tests check it stays bounded).
    func expiryEntries(clientID: Int64) -> Int {
        state.withLock { $0.clients[clientID]?.expiries.count ?? 0 }
    }

    var releaseSequence: UInt64 { state.withLock { $0.sequence } }

    func settle(through sequence: UInt64) {
        state.withLock { st in
            for id in st.withReleased {
                guard var c = st.clients.removeValue(forKey: id) else { continue }
                c.released.removeAll { $0.sequence <= sequence }
                if !c.isEmpty { st.clients[id] = c }
            }
            st.withReleased = st.withReleased.filter { st.clients[$0]?.released.isEmpty == false }
        }
    }

    /// Drops every expired hold, so calls that never produced a CDR do not pile up: a visit per
    /// client with holds, and heap pops only for what expired.
    public func sweep() {
        let t = now()
        state.withLock { st in
            for id in Array(st.clients.keys) { st.client(id, now: t) { _ in } }
        }
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
        // Windows and price lists are chosen with now as the answer moment; with split the answer
        // below walks the windows ahead, so it stays exact across a change of price.
        let answeredAt = wallClock()
        guard let deck = settings.decks[client.plan], let row = deck.match(destination, at: answeredAt) else {
            d.reason = .noRate
            return d
        }
        d.prefix = row.prefix
        let t = now()
        return state.withLock { st in
            st.serial &+= 1
            let serial = st.serial
            return st.client(client.id, now: t) { c in
                // The same call asking again is re-computed from scratch: its old hold does not count.
                if let call { _ = c.remove(call) }
                let reserved = c.reserved
                let calls = c.holds.count
                d.reserved = reserved
                let (left, o) = client.meter.available.subtractingReportingOverflow(reserved)
                let credit = o ? Int64.min : left
                guard let max = deck.maxSeconds(destination, now: answeredAt, credit: credit, cap: limits.maxCallSeconds)?.maxSeconds else {
                    d.reason = .noCredit
                    return d
                }
                if let cap = limits.maxConcurrentCalls, calls >= cap {
                    d.reason = .tooManyCalls
                    return d
                }
                if call != nil, calls >= limits.maxHoldsPerClient {
                    d.reason = .tooManyCalls
                    return d
                }
                d.reason = .ok
                d.maxSeconds = max
                if let call {
                    let cost = deck.price(destination, billsec: max, answeredAt: answeredAt)?.cost
                        ?? Rating.cost(row, billsec: max).cost
                    let (expires, eo) = t.addingReportingOverflow(limits.reservationSeconds.multipliedReportingOverflow(by: 1000).partialValue)
                    c.insert(call, Hold(cost: cost, expiresAt: eo ? Int64.max : expires, serial: serial))
                    d.hold = cost
                }
                return d
            }
        }
    }
}

/// A binary min-heap: O(log n) insert and remove-min, O(1) peek.
struct MinHeap<Element: Comparable & Sendable>: Sendable {
    private var items: [Element] = []

    init() {}

    init<S: Sequence>(_ elements: S) where S.Element == Element {
        items = Array(elements)
        var i = items.count / 2 - 1
        while i >= 0 {
            siftDown(i)
            i -= 1
        }
    }

    var count: Int { items.count }
    var min: Element? { items.first }

    mutating func insert(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i] < items[parent] else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func removeMin() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        siftDown(0)
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, items[l] < items[m] { m = l }
            if r < items.count, items[r] < items[m] { m = r }
            if m == i { return }
            items.swapAt(i, m)
            i = m
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

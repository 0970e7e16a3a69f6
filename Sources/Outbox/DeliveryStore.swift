import Ledger

/// What delivery needs from a store: the outbox's fan-out to endpoints, each endpoint's queue, dead letters
/// and pauses, balance coalescing, pruning, and leases so that several agents sharing one store deliver
/// each endpoint from one agent at a time. `Ledger` (SQLite) and `PostgresLedger` implement it.
///
/// Every method throws only `LedgerError`; a store whose connection was lost reconnects on the next call.
public protocol DeliveryStore: AnyObject, Sendable {
    /// A cheap read that changes when fan-out may have something new to do: the delivery loop polls it and
    /// calls `fanOut` only when it differs from the last value seen.
    func outboxSequence() throws(LedgerError) -> Int64

    /// Queues new events for the endpoints that want them, in one transaction; reads at most `limit`
    /// events per step. `more` says there is more to read (call again).
    @discardableResult
    func fanOut(endpoints: [OutboxEndpoint], nowMs: Int64, limit: Int) throws(LedgerError) -> (queued: [String: Int], more: Bool)

    /// Makes the coalesced `balance.updated` events (unix seconds); returns how many.
    @discardableResult
    func materializeBalances(now: Int64, intervalSeconds: Int64) throws(LedgerError) -> Int

    /// What `endpoint` should send now: the oldest pending event of each client, due at `nowMs`.
    func dueDeliveries(endpoint: String, nowMs: Int64, limit: Int) throws(LedgerError) -> DueDeliveries

    /// Records one attempt's result.
    func recordDelivery(_ d: PendingDelivery, _ result: DeliveryResult, nowMs: Int64) throws(LedgerError)

    /// Dead-letters pending deliveries older than `maxAgeMs`; returns how many.
    @discardableResult
    func expireDeliveries(nowMs: Int64, maxAgeMs: Int64) throws(LedgerError) -> Int

    /// Pending deliveries per endpoint named (0 for one with none).
    func pendingDeliveries(endpoints: [String]) throws(LedgerError) -> [String: Int]

    /// Deletes events nothing needs any more; at most `limit`; returns how many.
    @discardableResult
    func pruneOutbox(endpoints: [String], now: Int64, maxAgeSeconds: Int64, limit: Int) throws(LedgerError) -> Int

    /// `outbox retry`: re-queues dead letters and re-enables paused endpoints (all, or one).
    @discardableResult
    func requeueDeadLetters(endpoint: String?, nowMs: Int64) throws(LedgerError) -> (requeued: Int, resumed: [String])

    /// `outbox list`: queued and dead deliveries, oldest event first.
    func deliveries(status: DeliveryStatus?, limit: Int?) throws(LedgerError) -> [DeliveryRecord]

    /// `outbox list`: every configured endpoint, then the others the store has state for.
    func endpointStatus(endpoints: [OutboxEndpoint]) throws(LedgerError) -> [EndpointStatus]

    /// Takes or renews the lease `name` for `holder` for `ttlMs` from now (the store's clock, so agents on
    /// hosts whose clocks differ agree): true when `holder` holds it now, false when another holder's lease
    /// has not yet expired. A store only one agent delivers from (SQLite) always grants it.
    func takeLease(_ name: String, holder: String, ttlMs: Int64) throws(LedgerError) -> Bool

    /// Gives the lease up if `holder` has it, so another agent can take it at once.
    func releaseLease(_ name: String, holder: String) throws(LedgerError)
}

/// SQLite: the functions of `Deliveries.swift`, unchanged. One agent delivers from a SQLite file (it is
/// one host's), so leases are always granted and nothing is stored for them.
extension Ledger: DeliveryStore {
    public func takeLease(_ name: String, holder: String, ttlMs: Int64) throws(LedgerError) -> Bool { true }

    public func releaseLease(_ name: String, holder: String) throws(LedgerError) {}
}

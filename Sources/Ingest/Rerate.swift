import CDRParser
import Ledger
import MeterConfig
import MeterCore
import Rater

/// What a rerate found (and, unless it was a dry run, applied).
public struct RerateReport: Sendable {
    public struct ClientLine: Sendable {
        public var username: String
        /// Charges answered in the range.
        public var calls: Int
        /// Charges whose cost changed: one adjustment row each.
        public var changed: Int
        /// Charges the decks as loaded no longer price (no plan, or no row): they keep their cost.
        public var unpriced: Int
        /// Σ (new − old) µcr.
        public var delta: Int64
        /// Used after the rerate (what it would be, in a dry run).
        public var used: Int64
    }

    public var clients: [ClientLine] = []
    /// Quarantined `no_rate` CDRs answered in the range that a row now covers, and were charged.
    public var quarantineCharged = 0
    /// What those charges cost, µcr.
    public var quarantineCost: Int64 = 0

    public var changed: Int { clients.reduce(0) { $0 + $1.changed } }
    public var delta: Int128 { clients.reduce(Int128(0)) { $0 + Int128($1.delta) } }
}

/// `creditmeter rerate`: prices the calls answered in a range again under the decks as now loaded.
///
/// Each client is one transaction (its adjustment rows, Used, level and events, see
/// `Ledger.applyRerate`), and every charge's current cost is read again inside it: a rerate killed
/// between two clients and run again redoes only the clients it had not committed, and a second
/// identical run finds nothing to change.
public enum Rerater {
    public static func run(ledger: Ledger, config: Config, decks: [String: RateDeck], metering: Metering,
                           from: Int64, to: Int64, username: String?, dryRun: Bool, now: Int64) throws -> RerateReport {
        var report = RerateReport()
        let clients = try ledger.clients()
        var only: Int64?
        if let username {
            guard let c = clients.first(where: { $0.username == username }) else { throw LedgerError.unknownClient(username) }
            only = c.id
        }
        // Client by client, so memory holds one client's calls in the range, not the whole store's.
        for client in clients.sorted(by: { $0.id < $1.id }) where only == nil || client.id == only {
            let id = client.id
            let rows = try ledger.usage(clientID: id, from: from, to: to)
            if rows.isEmpty { continue }
            var line = RerateReport.ClientLine(username: client.username, calls: rows.count, changed: 0, unpriced: 0,
                                               delta: 0, used: client.meter.used)
            var changes: [RerateChange] = []
            var delta = Int128(0)
            for u in rows {
                guard let deck = decks[client.plan],
                      let priced = deck.price(u.destination, billsec: u.billsec, answeredAt: u.answeredAt ?? 0) else {
                    line.unpriced += 1
                    continue
                }
                if priced.cost != u.currentCost {
                    changes.append(RerateChange(usageID: u.id, newCost: priced.cost, pricedBy: priced.pricedBy))
                    delta += Int128(priced.cost) - Int128(u.currentCost)
                }
            }
            if dryRun || changes.isEmpty {
                line.changed = changes.count
                line.delta = Int64(clamping: delta)
                line.used = Int64(clamping: Int128(client.meter.used) + delta)
            } else {
                let outcome = try ledger.applyRerate(clientID: id, changes: changes, range: (from, to), now: now)
                line.changed = outcome.adjusted
                line.delta = outcome.delta
                line.used = try ledger.client(username: client.username)?.meter.used ?? line.used
            }
            report.clients.append(line)
        }

        // Quarantined no_rate CDRs answered in the range: charged now if a row covers them.
        let charge = { () throws -> (Int, Int64) in
            var cost: Int64 = 0
            var settingsCache: [String: SourceSettings?] = [:]
            let result = try ledger.retryQuarantine(now: now) { item -> Charge? in
                guard item.entry.reason == "no_rate", item.entry.length == nil else { return nil }
                let name = item.entry.source
                if settingsCache[name] == nil { settingsCache[name] = .some(try? Assembly.settings(named: name, config: config)) }
                guard let settings = settingsCache[name] ?? nil else { return nil }
                return item.entry.raw.withUnsafeBufferPointer { raw -> Charge? in
                    guard case .charge(let c) = metering.classify(raw, offset: item.entry.position, lineNumber: item.entry.line,
                                                                 source: settings),
                          let at = c.answeredAt ?? c.startedAt, at >= from, at < to, only == nil || c.clientID == only
                    else { return nil }
                    cost = Int64(clamping: Int128(cost) + Int128(c.cost))
                    return c
                }
            }
            return (result.charged, cost)
        }
        let (charged, cost) = dryRun ? try ledger.dryRun(charge) : try charge()
        report.quarantineCharged = charged
        report.quarantineCost = cost
        return report
    }
}

import Foundation
import Ledger
import LedgerPostgres
import MeterCore
import Synchronization
import Testing
import TestSupport

/// Authorize's holds on either store, through three connections as three agents would have them: the
/// check-and-reserve is atomic per client across all of them, and a batch's charge settles its hold.
@Suite struct HoldsContractTests {
    /// `count` connections to one fresh store of `kind` (agents), and its cleanup. `asAuthorize` sets
    /// SQLite's connections after the first up as an agent's holds connection is (no sync per commit,
    /// checkpoints left to another connection, which the caller then runs).
    static func agents(_ kind: StoreKind, count: Int = 3, asAuthorize: Bool = false) throws
        -> (stores: [any HoldStore & MeteringStore], cleanup: () -> Void) {
        switch kind {
        case .sqlite:
            let t = try TempLedger()
            let more = try (1..<count).map { _ in try Ledger(path: t.path) }
            if asAuthorize {
                for l in more {
                    try l.skipSyncPerCommit()
                    try l.leaveCheckpointsToOthers()
                }
            }
            return ([t.ledger] + more, { t.cleanup() })
        case .postgres:
            let db = try TestDatabase()
            do {
                return (try (1...count).map { try db.ledger(node: "pbx\($0)") }, { db.drop() })
            } catch {
                db.drop()
                throw error
            }
        }
    }

    /// Grants `price` when the credit left after the other holds covers it.
    static func grant(_ price: Int64, expiresAt: Int64) -> (HoldView?) -> (value: Int64, grant: HoldGrant?) {
        { view in
            guard let v = view, v.meter.available - v.reserved >= price else { return (0, nil) }
            return (price, HoldGrant(cost: price, expiresAt: expiresAt))
        }
    }

    @Test(arguments: StoreKind.available)
    func sixtyConcurrentReservationsOverThreeAgentsNeverExceedWhatIsAvailable(_ kind: StoreKind) throws {
        let (agents, cleanup) = try Self.agents(kind)
        defer { cleanup() }
        _ = try makeClient(agents[0], "tight", accounts: ["1001", "1002"])
        _ = try agents[0].recharge(username: "tight", amount: 500_000, key: nil, now: 1)
        let granted = Mutex<[Int64]>([])
        let failures = try onThreads(60) { n in
            let store = agents[n % 3]
            let got = try store.reserve(account: n % 2 == 0 ? "1001" : "1002", call: "call-\(n)", now: 1_000,
                                        Self.grant(50_000, expiresAt: 100_000))
            granted.withLock { $0.append(got) }
        }
        #expect(failures == [])
        let all = granted.withLock { $0 }
        #expect(all.count == 60)
        #expect(all.reduce(0, +) == 500_000 && all.filter { $0 > 0 }.count == 10, "\(all)")
        let id = try #require(try agents[1].client(username: "tight")).id
        for a in agents { #expect(try a.held(clientID: id, now: 1_000) == (cost: 500_000, calls: 10)) }
        #expect(try agents[2].liveHoldCount(now: 1_000) == 10)
        #expect(try agents[0].heldTotal(now: 1_000) == (cost: 500_000, calls: 10))
    }

    @Test(arguments: StoreKind.available)
    func aChargeSettlesItsHoldInItsOwnTransactionAndOnlyThatClients(_ kind: StoreKind) throws {
        let (agents, cleanup) = try Self.agents(kind)
        defer { cleanup() }
        let ann = try makeClient(agents[0], "ann")
        let bob = try makeClient(agents[0], "bob")
        for u in ["ann", "bob"] { _ = try agents[0].recharge(username: u, amount: 100_000, key: nil, now: 1) }
        #expect(try agents[0].reserve(account: "ann", call: "X", now: 1_000, Self.grant(60_000, expiresAt: 9_000)) == 60_000)
        #expect(try agents[1].reserve(account: "bob", call: "X", now: 1_000, Self.grant(60_000, expiresAt: 9_000)) == 60_000)
        // Ann has 40,000 left beside her hold: another 60,000 does not fit, from any agent.
        #expect(try agents[2].reserve(account: "ann", call: "Y", now: 1_000, Self.grant(60_000, expiresAt: 9_000)) == 0)
        // Another agent charges Ann's call X: Used moves and the hold goes in the same commit; Bob's X stays.
        var b = batch([charge("cdr-x", client: ann.id, cost: 25_000)])
        b.releases = [HoldKey(clientID: ann.id, call: "X")]
        _ = try agents[1].commit(b, now: 2_000)
        #expect(try agents[0].held(clientID: ann.id, now: 1_000) == (cost: 0, calls: 0))
        #expect(try agents[0].held(clientID: bob.id, now: 1_000) == (cost: 60_000, calls: 1))
        var seen: HoldView?
        _ = try agents[2].reserve(account: "ann", call: nil, now: 1_000) { v in seen = v; return (0, nil) }
        #expect(seen?.meter == Meter(assigned: 100_000, used: 25_000) && seen?.reserved == 0)
        // Re-asking a call replaces its hold; an unknown account is nil.
        #expect(try agents[0].reserve(account: "bob", call: "X", now: 1_500, Self.grant(70_000, expiresAt: 9_000)) == 70_000)
        #expect(try agents[1].held(clientID: bob.id, now: 1_500) == (cost: 70_000, calls: 1))
        _ = try agents[0].reserve(account: "nobody", call: "Z", now: 1_500) { v in seen = v; return (0, nil) }
        #expect(seen == nil)
    }

    @Test(arguments: StoreKind.available)
    func holdsExpireAndKeptHoldsArriveLater(_ kind: StoreKind) throws {
        let (agents, cleanup) = try Self.agents(kind)
        defer { cleanup() }
        let cyd = try makeClient(agents[0], "cyd")
        _ = try agents[0].recharge(username: "cyd", amount: 100_000, key: nil, now: 1)
        #expect(try agents[0].reserve(account: "cyd", call: "A", now: 1_000, Self.grant(10_000, expiresAt: 5_000)) == 10_000)
        // Expired holds stop counting at once and are deleted by the sweep.
        #expect(try agents[1].held(clientID: cyd.id, now: 4_999) == (cost: 10_000, calls: 1))
        #expect(try agents[1].held(clientID: cyd.id, now: 5_000) == (cost: 0, calls: 0))
        #expect(try agents[2].sweepHolds(now: 5_000) == 1)
        #expect(try agents[2].sweepHolds(now: 5_000) == 0)
        // Holds kept by an agent while the store was down arrive; a deleted client's are skipped.
        try agents[1].keepHolds([HoldKey(clientID: cyd.id, call: "B"): HoldGrant(cost: 7_000, expiresAt: 9_000),
                                 HoldKey(clientID: 999_999, call: "C"): HoldGrant(cost: 1, expiresAt: 9_000)])
        #expect(try agents[0].held(clientID: cyd.id, now: 6_000) == (cost: 7_000, calls: 1))
        #expect(try agents[0].liveHoldCount(now: 6_000) == 1)
        // Kept again with another cost: replaced, not added (the running totals follow an update too).
        try agents[2].keepHolds([HoldKey(clientID: cyd.id, call: "B"): HoldGrant(cost: 3_000, expiresAt: 9_000)])
        #expect(try agents[1].held(clientID: cyd.id, now: 6_000) == (cost: 3_000, calls: 1))
        // Many expired holds not yet swept: left out of the totals until the next reserve deletes them.
        for k in 0..<20 {
            #expect(try agents[k % 3].reserve(account: "cyd", call: "E\(k)", now: 6_000, Self.grant(1_000, expiresAt: 7_000)) == 1_000)
        }
        #expect(try agents[0].held(clientID: cyd.id, now: 6_500) == (cost: 23_000, calls: 21))
        #expect(try agents[0].held(clientID: cyd.id, now: 7_000) == (cost: 3_000, calls: 1))
        #expect(try agents[1].reserve(account: "cyd", call: "F", now: 7_000, Self.grant(1_000, expiresAt: 9_000)) == 1_000)
        #expect(try agents[2].held(clientID: cyd.id, now: 7_000) == (cost: 4_000, calls: 2))
        #expect(try agents[2].liveHoldCount(now: 7_000) == 2)
    }
}

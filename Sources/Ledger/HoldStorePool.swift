import Dispatch
import Synchronization

/// Several connections to one store acting as one `HoldStore`: each call borrows a connection no other
/// call is using, so answers for different clients run side by side on a store that takes concurrent
/// writers (PostgreSQL), while each client's check-and-reserve stays atomic in the store itself (its row
/// lock). One connection answers at the pace of its round trips (about 700 answers a second on a local
/// PostgreSQL here), below the 1,000 a second an agent should take.
public final class HoldStorePool: HoldStore {
    private let members: [any HoldStore]
    private let free: Mutex<[Int]>
    /// Counts the members not lent out, so a borrower waits for one rather than spinning.
    private let available: DispatchSemaphore

    /// `members` must be distinct connections to the same store.
    public init(_ members: [any HoldStore]) {
        precondition(!members.isEmpty, "a pool needs a connection")
        self.members = members
        free = Mutex(Array(members.indices))
        available = DispatchSemaphore(value: members.count)
    }

    public var size: Int { members.count }

    private func borrowing<T>(_ body: (any HoldStore) throws(LedgerError) -> T) throws(LedgerError) -> T {
        available.wait()
        let i = free.withLock { $0.removeLast() }
        defer {
            free.withLock { $0.append(i) }
            available.signal()
        }
        return try body(members[i])
    }

    public func reserve<T>(account: String, call: String?, now: Int64,
                           _ decide: (HoldView?) -> (value: T, grant: HoldGrant?)) throws(LedgerError) -> T {
        try borrowing { (s) throws(LedgerError) -> T in try s.reserve(account: account, call: call, now: now, decide) }
    }

    public func held(clientID: Int64, now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int) {
        try borrowing { (s) throws(LedgerError) -> (cost: Int64, calls: Int) in try s.held(clientID: clientID, now: now) }
    }

    public func heldTotal(now: Int64) throws(LedgerError) -> (cost: Int64, calls: Int) {
        try borrowing { (s) throws(LedgerError) -> (cost: Int64, calls: Int) in try s.heldTotal(now: now) }
    }

    @discardableResult
    public func sweepHolds(now: Int64) throws(LedgerError) -> Int {
        try borrowing { (s) throws(LedgerError) -> Int in try s.sweepHolds(now: now) }
    }

    public func keepHolds(_ holds: [HoldKey: HoldGrant]) throws(LedgerError) {
        try borrowing { (s) throws(LedgerError) in try s.keepHolds(holds) }
    }
}

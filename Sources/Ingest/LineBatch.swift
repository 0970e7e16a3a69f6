import CDRSource
import Ledger
import MeterCore

/// What reading lines did, summed the same way for `replay` and for each source of `run`.
public struct IngestCounts: Sendable, Equatable {
    /// Non-empty lines read, long ones included.
    public var read = 0
    /// Newly charged CDRs (the ledger's count: an identity already charged is a duplicate).
    public var charged = 0
    public var duplicates = 0
    public var notBillable = 0
    public var filtered = 0
    /// Quarantined lines as found by this reading, also when an earlier run already kept them.
    public var quarantined = 0
    public var quarantinedByReason: [String: Int] = [:]

    public init() {}

    /// Adds what the ledger made of a committed batch.
    public mutating func record(_ outcome: BatchOutcome) {
        charged += outcome.charged
        duplicates += outcome.duplicates
    }
}

/// The one per-line step of the data flow, used by `replay` and by each source of `run`: a line is
/// stripped of its CR, skipped when empty, classified by `Metering` and gathered into the next
/// ledger batch; a line longer than the source allows is quarantined in its place.
public struct LineBatch {
    public let metering: Metering
    public let source: SourceSettings
    /// Whether charged CDRs' call ids are gathered in `calls`, the authorize holds the batch's commit
    /// releases (the daemon's sources take holds; a replay's do not).
    public let gathersCalls: Bool
    public private(set) var charges: [Charge] = []
    public private(set) var quarantined: [QuarantineEntry] = []
    public private(set) var calls: [HoldKey] = []
    /// Lines of this batch so far; `quarantined` counts only the ones in `self.quarantined`.
    public private(set) var counts = IngestCounts()

    public init(metering: Metering, source: SourceSettings, gathersCalls: Bool = false, capacity: Int = 1024) {
        self.metering = metering
        self.source = source
        self.gathersCalls = gathersCalls
        charges.reserveCapacity(capacity)
    }

    /// Charges and quarantine entries waiting for the next commit.
    public var pending: Int { charges.count + quarantined.count }

    public mutating func add(_ line: UnsafeBufferPointer<UInt8>, offset: Int64, number: Int64) {
        var line = line
        if let last = line.last, last == 0x0D { line = UnsafeBufferPointer(rebasing: line.dropLast()) }
        if line.isEmpty { return }
        counts.read += 1
        let (outcome, callID) = metering.classify(line, offset: offset, lineNumber: number, source: source,
                                                  callID: gathersCalls)
        switch outcome {
        case .charge(let c):
            charges.append(c)
            if let callID { calls.append(HoldKey(clientID: c.clientID, call: callID)) }
        case .notBillable: counts.notBillable += 1
        case .filtered: counts.filtered += 1
        case .quarantine(let q): quarantine(q)
        }
    }

    public mutating func add(_ long: LongLine) {
        counts.read += 1
        quarantine(Metering.tooLong(long, source: source))
    }

    private mutating func quarantine(_ q: QuarantineEntry) {
        quarantined.append(q)
        counts.quarantined += 1
        counts.quarantinedByReason[q.reason, default: 0] += 1
    }

    /// The ledger batch of what was gathered, with the reader's position after it (nil for replay).
    public func batch(position: Checkpoint?) -> ChargeBatch {
        ChargeBatch(source: source.name, position: position, charges: charges, quarantined: quarantined, releases: calls)
    }

    /// Starts the next batch, keeping nothing of this one.
    public mutating func clear() {
        let capacity = charges.capacity
        charges = []
        charges.reserveCapacity(capacity)
        quarantined = []
        calls = []
        counts = IngestCounts()
    }
}

extension IngestCounts {
    /// Adds a batch's line counts (its `charged` and `duplicates` come from the ledger, through `record`).
    public mutating func add(lines other: IngestCounts) {
        read += other.read
        notBillable += other.notBillable
        filtered += other.filtered
        quarantined += other.quarantined
        for (reason, n) in other.quarantinedByReason { quarantinedByReason[reason, default: 0] += n }
    }
}

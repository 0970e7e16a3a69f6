import CDRParser
import CDRSource
import Crypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Ledger
import MeterConfig
import MeterCore
import Rater

/// What became of one CDR line on its way from parser to ledger.
public enum LineOutcome: Sendable {
    case charge(Charge)
    case notBillable
    case filtered
    case quarantine(QuarantineEntry)
}

/// How one source's lines are read: its parser, its filter and the name its charges carry.
public struct SourceSettings: Sendable {
    public var name: String
    public var parser: CDRParser
    public var filter: CDRFilter?
    /// A longer line is quarantined (`line_too_long`) without being parsed.
    public var maxLineBytes: Int

    public init(name: String, parser: CDRParser, filter: CDRFilter?, maxLineBytes: Int = 65_536) {
        self.name = name
        self.parser = parser
        self.filter = filter
        self.maxLineBytes = maxLineBytes
    }
}

/// The pure middle of the data flow: parse → filter → billable? → attribute → rate.
///
/// It holds the account directory and rate decks in memory, so classifying a line costs no I/O;
/// the caller refreshes the directory after clients change.
public struct Metering: Sendable {
    public var accountField: CDRField
    /// `[rating] max_billsec`: a billable CDR longer than this is quarantined as `implausible_duration`
    /// rather than charged, so no single record can carry a cost near the limits of the arithmetic.
    public var maxBillsec: Int64
    public var directory: [String: AccountOwner] { didSet { index = AccountIndex(directory, decks) } }
    public var decks: [String: RateDeck] { didSet { index = AccountIndex(directory, decks) } }
    /// `directory` and `decks` joined and keyed by the account's bytes, so a line is attributed
    /// without building a String or hashing one.
    private var index: AccountIndex

    /// The config's default, spelled once there.
    public static let defaultMaxBillsec = RatingConfig().maxBillsec

    /// Every quarantine reason: the ones rating gives, then the parser's.
    public static let quarantineReasons = ["unknown_account", "no_rate", "implausible_duration", "line_too_long"] + ParseFailure.reasons

    public init(accountField: CDRField, directory: [String: AccountOwner], decks: [String: RateDeck],
                maxBillsec: Int64 = Metering.defaultMaxBillsec) {
        self.accountField = accountField
        self.maxBillsec = maxBillsec
        self.directory = directory
        self.decks = decks
        self.index = AccountIndex(directory, decks)
    }

    public func classify(_ line: UnsafeBufferPointer<UInt8>, offset: Int64, lineNumber: Int64,
                         source: SourceSettings) -> LineOutcome {
        classify(line, offset: offset, lineNumber: lineNumber, source: source, callID: false).outcome
    }

    /// `classify`, also giving a charged CDR's PBX call id (Asterisk uniqueid, FreeSWITCH uuid) when
    /// `callID` is set: the daemon releases that call's authorization hold once the charge commits.
    func classify(_ line: UnsafeBufferPointer<UInt8>, offset: Int64, lineNumber: Int64,
                  source: SourceSettings, callID: Bool) -> (outcome: LineOutcome, callID: String?) {
        var outcome = LineOutcome.notBillable
        var id: String?
        source.parser.withParsed(line) { parsed in
            switch parsed {
            case .failure(let failure):
                outcome = .quarantine(QuarantineEntry(
                    key: Self.rawKey(line, source: source.name, offset: offset),
                    source: source.name, position: offset, line: lineNumber,
                    reason: failure.reason, message: failure.message, raw: Array(line)))
            case .success(let cdr):
                outcome = classify(cdr, raw: line, offset: offset, lineNumber: lineNumber, source: source)
                if callID, case .charge = outcome, let v = cdr.value(.uniqueid) ?? cdr.value(.uuid), !v.isEmpty { id = v }
            }
        }
        return (outcome, id)
    }

    public func classify(_ cdr: CDR, raw: UnsafeBufferPointer<UInt8>, offset: Int64, lineNumber: Int64,
                         source: SourceSettings) -> LineOutcome {
        cdr.withView { classify($0, raw: raw, offset: offset, lineNumber: lineNumber, source: source) }
    }

    public func classify(_ cdr: CDRView, raw: UnsafeBufferPointer<UInt8>, offset: Int64, lineNumber: Int64,
                         source: SourceSettings) -> LineOutcome {
        if let filter = source.filter, !filter.accepts(cdr) { return .filtered }
        guard cdr.isBillable else { return .notBillable }
        func quarantine(_ reason: String, _ message: String) -> LineOutcome {
            .quarantine(QuarantineEntry(key: cdr.identity, source: source.name, position: offset,
                                        line: lineNumber, reason: reason, message: message, raw: Array(raw),
                                        startKey: cdr.startKey))
        }
        guard cdr.billableSeconds <= maxBillsec else {
            return quarantine("implausible_duration",
                              "\(cdr.billableSeconds) billable seconds is more than [rating] max_billsec (\(maxBillsec))")
        }
        let accountBytes = cdr.bytes(accountField) ?? UnsafeBufferPointer(start: nil, count: 0)
        guard !accountBytes.isEmpty else {
            return quarantine("unknown_account", "the CDR's \(accountField.rawValue) is empty")
        }
        let entry: AccountIndex.Entry
        if let k = index.find(accountBytes) {
            entry = index.entries[k]
        } else {
            // Not an ASCII key byte for byte: String equality (canonical equivalence) still decides.
            let account = cdr.value(accountField) ?? ""
            guard let owner = directory[account] else {
                return quarantine("unknown_account", "no client has account code '\(account)'")
            }
            entry = AccountIndex.Entry(account: account, owner: owner, deck: decks[owner.plan].map(SharedDeck.init))
        }
        let account = entry.account, owner = entry.owner
        guard let deck = entry.deck?.deck else {
            return quarantine("no_rate", "client \(owner.username)'s plan '\(owner.plan)' is not configured")
        }
        let dstBytes = cdr.bytes(.dst) ?? UnsafeBufferPointer(start: nil, count: 0)
        let dst = cdr.value(.dst) ?? ""
        guard deck.isTimed == false || cdr.answeredAt != nil else {
            return quarantine("no_rate", "plan '\(owner.plan)' prices by time of day or date, and the CDR has no answer, end or start time")
        }
        let at = cdr.answeredAt ?? 0
        // An ASCII destination's bytes are its String's UTF-8; anything else is matched as the String
        // it is stored as, exactly as before.
        let choice = CDRView.isASCII(dstBytes)
            ? deck.choose(bytes: dstBytes, billsec: cdr.billableSeconds, answeredAt: at)
            : deck.choose(dst, billsec: cdr.billableSeconds, answeredAt: at)
        let prefix: String, chargedSeconds: Int64, cost: Int64, pricedBy: String
        switch choice {
        case nil:
            return quarantine("no_rate", "plan '\(owner.plan)' has no rate for destination '\(dst)'"
                + (deck.isTimed ? " at \(CivilTime.rfc3339(at))" + (deck.split ? " or during the call" : "") : ""))
        case .row(let k, let c, let total)?:
            // One row prices the call: its text was built with the deck, and nothing of the row is copied.
            (prefix, chargedSeconds, cost, pricedBy) = (deck.rows[k].prefix, c, total, deck.rowPricedBy[k])
        case .parts(let priced)?:
            (prefix, chargedSeconds, cost, pricedBy) = (priced.row.prefix, priced.chargedSeconds, priced.cost, priced.pricedBy)
        }
        return .charge(Charge(
            identity: cdr.identity, clientID: owner.clientID, account: account, source: source.name,
            position: offset, line: lineNumber, destination: dst, prefix: prefix,
            billsec: cdr.billableSeconds, chargedSeconds: chargedSeconds, cost: cost,
            startedAt: cdr.startEpoch, startKey: cdr.startKey, answeredAt: cdr.answeredAt, pricedBy: pricedBy))
    }

    /// A line longer than the source's `maxLineBytes`: quarantined with its start, length and hash,
    /// never parsed (a cut line could parse as a different CDR).
    public static func tooLong(_ line: LongLine, source: SourceSettings) -> QuarantineEntry {
        QuarantineEntry(
            key: "raw:\(source.name):\(line.offset):\(line.sha256.prefix(32))",
            source: source.name, position: line.offset, line: line.number, reason: "line_too_long",
            message: "the line is \(line.length) bytes, longer than max_line_bytes (\(source.maxLineBytes)); its first \(line.head.count) bytes are kept",
            raw: line.head, length: line.length, sha256: line.sha256)
    }

    /// A line that does not parse has no identity; its bytes and place stand in for one, so
    /// replaying the same file twice quarantines it once.
    public static func rawKey(_ line: UnsafeBufferPointer<UInt8>, source: String, offset: Int64) -> String {
        let digest = SHA256.hash(data: line)
        let hex = digest.prefix(16).map { b in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined()
        return "raw:\(source):\(offset):\(hex)"
    }
}

/// The account directory as an open-addressing table over the accounts' UTF-8 bytes.
///
/// Only ASCII account codes are indexed: for those, equal bytes and equal Strings are the same thing.
/// A lookup that misses here is settled by the String-keyed directory (see `Metering.classify`).
struct AccountIndex: Sendable {
    struct Entry: Sendable {
        var account: String
        var owner: AccountOwner
        /// The owner's plan's deck, resolved once; nil when the plan is not configured. Boxed: a deck is
        /// a dozen arrays, and copying it out for each CDR cost a retain and a release of each.
        var deck: SharedDeck?
    }

    private(set) var entries: [Entry] = []
    private var keyBytes: [UInt8] = []
    private var keyStart: [Int] = [0]
    /// Entry index + 1 per slot, 0 for empty; the count is a power of two at least twice the entries.
    private var slots: [Int32] = []

    init(_ directory: [String: AccountOwner], _ decks: [String: RateDeck]) {
        var boxes: [String: SharedDeck?] = [:]
        for (account, owner) in directory where account.utf8.allSatisfy({ $0 < 0x80 }) {
            let boxed = boxes[owner.plan] ?? decks[owner.plan].map(SharedDeck.init)
            boxes[owner.plan] = boxed
            entries.append(Entry(account: account, owner: owner, deck: boxed))
            keyBytes.append(contentsOf: account.utf8)
            keyStart.append(keyBytes.count)
        }
        var size = 16
        while size < entries.count * 2 { size *= 2 }
        slots = [Int32](repeating: 0, count: size)
        keyBytes.withUnsafeBufferPointer { keys in
            for k in entries.indices {
                let key = UnsafeBufferPointer(rebasing: keys[keyStart[k]..<keyStart[k + 1]])
                var s = Self.hash(key) & (size - 1)
                while slots[s] != 0 { s = (s + 1) & (size - 1) }
                slots[s] = Int32(k + 1)
            }
        }
    }

    /// The entry whose account is exactly these bytes.
    func find(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let mask = slots.count - 1
        var s = Self.hash(bytes) & mask
        return keyBytes.withUnsafeBufferPointer { keys -> Int? in
            while true {
                let k = Int(slots[s]) - 1
                if k < 0 { return nil }
                let a = keyStart[k], b = keyStart[k + 1]
                if b - a == bytes.count {
                    guard let kb = keys.baseAddress, let qb = bytes.baseAddress else { return k }  // both empty
                    if memcmp(kb + a, qb, bytes.count) == 0 { return k }
                }
                s = (s + 1) & mask
            }
        }
    }

    /// FNV-1a: account codes are short, and the table is private to this process.
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }
}

/// One plan's deck behind a reference, shared by every account of the plan.
final class SharedDeck: Sendable {
    let deck: RateDeck
    init(_ deck: RateDeck) { self.deck = deck }
}

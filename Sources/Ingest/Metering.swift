import CDRParser
import Crypto
import Ledger
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

    public init(name: String, parser: CDRParser, filter: CDRFilter?) {
        self.name = name
        self.parser = parser
        self.filter = filter
    }
}

/// The pure middle of the data flow: parse → filter → billable? → attribute → rate.
///
/// It holds the account directory and rate decks in memory, so classifying a line costs no I/O;
/// the caller refreshes the directory after clients change.
public struct Metering: Sendable {
    public var accountField: CDRField
    public var directory: [String: AccountOwner]
    public var decks: [String: RateDeck]

    public init(accountField: CDRField, directory: [String: AccountOwner], decks: [String: RateDeck]) {
        self.accountField = accountField
        self.directory = directory
        self.decks = decks
    }

    public func classify(_ line: UnsafeBufferPointer<UInt8>, offset: Int64, lineNumber: Int64,
                         source: SourceSettings) -> LineOutcome {
        switch source.parser.parse(line) {
        case .failure(let failure):
            return .quarantine(QuarantineEntry(
                key: Self.rawKey(line, source: source.name, offset: offset),
                source: source.name, position: offset, line: lineNumber,
                reason: failure.reason, message: failure.message, raw: Array(line)))
        case .success(let cdr):
            return classify(cdr, raw: line, offset: offset, lineNumber: lineNumber, source: source)
        }
    }

    public func classify(_ cdr: CDR, raw: UnsafeBufferPointer<UInt8>, offset: Int64, lineNumber: Int64,
                         source: SourceSettings) -> LineOutcome {
        if let filter = source.filter, !filter.accepts(cdr) { return .filtered }
        guard cdr.isBillable else { return .notBillable }
        func quarantine(_ reason: String, _ message: String) -> LineOutcome {
            .quarantine(QuarantineEntry(key: cdr.identity, source: source.name, position: offset,
                                        line: lineNumber, reason: reason, message: message, raw: Array(raw)))
        }
        let account = cdr.value(accountField) ?? ""
        guard !account.isEmpty else {
            return quarantine("unknown_account", "the CDR's \(accountField.rawValue) is empty")
        }
        guard let owner = directory[account] else {
            return quarantine("unknown_account", "no client has account code '\(account)'")
        }
        guard let deck = decks[owner.plan] else {
            return quarantine("no_rate", "client \(owner.username)'s plan '\(owner.plan)' is not configured")
        }
        let dst = cdr.dst
        guard let row = deck.match(dst) else {
            return quarantine("no_rate", "plan '\(owner.plan)' has no rate for destination '\(dst)'")
        }
        let rated = Rating.cost(row, billsec: cdr.billableSeconds)
        return .charge(Charge(
            identity: cdr.identity, clientID: owner.clientID, account: account, source: source.name,
            position: offset, line: lineNumber, destination: dst, prefix: row.prefix,
            billsec: cdr.billableSeconds, chargedSeconds: rated.chargedSeconds, cost: rated.cost,
            startedAt: cdr.startEpoch))
    }

    /// A line that does not parse has no identity; its bytes and place stand in for one, so
    /// replaying the same file twice quarantines it once.
    static func rawKey(_ line: UnsafeBufferPointer<UInt8>, source: String, offset: Int64) -> String {
        let digest = SHA256.hash(data: line)
        let hex = digest.prefix(16).map { b in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined()
        return "raw:\(source):\(offset):\(hex)"
    }
}

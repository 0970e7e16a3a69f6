import MeterCore

/// Whether a client may use the console (SPEC 4); disabled clients are still metered.
public enum ClientStatus: String, Sendable, Codable {
    case active, disabled
}

/// The editable text fields of a client; `nil` means "not given" on create and "unchanged" on edit.
public struct ClientFields: Sendable, Equatable {
    public var firstName: String?
    public var lastName: String?
    public var email: String?
    public var phone: String?
    public var country: String?
    public var state: String?
    public var city: String?
    public var zip: String?
    public var address1: String?
    public var address2: String?
    public var company: String?
    public var role: String?

    public init() {}

    /// A field by its form name; setting nil marks it "not given".
    public subscript(_ field: ProfileField) -> String? {
        get { self[keyPath: field.paths.given] }
        set { self[keyPath: field.paths.given] = newValue }
    }

    /// Each field with its snake_case name, in form order, for events, diffs and the CLI.
    package var named: [(name: String, value: String?)] { ProfileField.allCases.map { ($0.rawValue, self[$0]) } }
}

extension ProfileField {
    /// Where the field lives in the two client shapes: the one place that ties the form's names to
    /// Swift properties.
    var paths: (given: WritableKeyPath<ClientFields, String?>, stored: WritableKeyPath<ClientRecord, String>) {
        switch self {
        case .firstName: (\.firstName, \.firstName)
        case .lastName: (\.lastName, \.lastName)
        case .email: (\.email, \.email)
        case .phone: (\.phone, \.phone)
        case .country: (\.country, \.country)
        case .state: (\.state, \.state)
        case .city: (\.city, \.city)
        case .zip: (\.zip, \.zip)
        case .address1: (\.address1, \.address1)
        case .address2: (\.address2, \.address2)
        case .company: (\.company, \.company)
        case .role: (\.role, \.role)
        }
    }
}

/// A client as stored: profile, accounts, plan, balance and the latched level.
public struct ClientRecord: Sendable, Equatable {
    public var id: Int64
    public var username: String
    public var firstName: String
    public var lastName: String
    public var email: String
    public var phone: String
    public var country: String
    public var state: String
    public var city: String
    public var zip: String
    public var address1: String
    public var address2: String
    public var company: String
    public var role: String
    public var status: ClientStatus
    /// Sorted.
    public var accounts: [String]
    public var plan: String
    public var meter: Meter
    /// The level last alerted on, which the next balance change is compared against.
    public var level: Level
    public var createdAt: Int64
    public var updatedAt: Int64
    public var disabledAt: Int64?

    /// A profile field by its form name.
    public subscript(_ field: ProfileField) -> String {
        get { self[keyPath: field.paths.stored] }
        set { self[keyPath: field.paths.stored] = newValue }
    }

    /// The profile fields as a fully given `ClientFields`.
    public var fields: ClientFields {
        var f = ClientFields()
        for field in ProfileField.allCases { f[field] = self[field] }
        return f
    }
}

/// One rated CDR to charge; `identity` is what makes charging exactly-once.
public struct Charge: Sendable, Equatable {
    public var identity: String
    public var clientID: Int64
    public var account: String
    public var source: String
    /// Byte offset of the CDR's line in its source.
    public var position: Int64
    public var line: Int64
    public var destination: String
    public var prefix: String
    public var billsec: Int64
    public var chargedSeconds: Int64
    /// µcr.
    public var cost: Int64
    public var startedAt: Int64?
    /// The CDR's start as wall-clock seconds with no zone applied (`CDRView.startKey`), 0 without one. With
    /// `identity` it is the dedupe key; leading the index with it keeps inserts close together.
    public var startKey: Int64
    /// The moment that selected the rate row (answer time), UTC unix seconds; what `rerate` ranges over.
    public var answeredAt: Int64?
    /// What priced the call: a JSON array of the deck row or rows and their validity (`Priced.pricedBy`).
    public var pricedBy: String?

    public init(identity: String, clientID: Int64, account: String, source: String, position: Int64, line: Int64,
                destination: String, prefix: String, billsec: Int64, chargedSeconds: Int64, cost: Int64, startedAt: Int64?,
                startKey: Int64 = 0, answeredAt: Int64? = nil, pricedBy: String? = nil) {
        self.startKey = startKey
        self.answeredAt = answeredAt
        self.pricedBy = pricedBy
        self.identity = identity
        self.clientID = clientID
        self.account = account
        self.source = source
        self.position = position
        self.line = line
        self.destination = destination
        self.prefix = prefix
        self.billsec = billsec
        self.chargedSeconds = chargedSeconds
        self.cost = cost
        self.startedAt = startedAt
    }
}

/// A line that could not be charged, kept with its raw bytes so it can be retried.
public struct QuarantineEntry: Sendable, Equatable {
    /// Dedupe key: the CDR identity when the line parsed, else "raw:" + a hash chosen by the caller.
    public var key: String
    public var source: String
    public var position: Int64
    public var line: Int64
    public var reason: String
    public var message: String
    public var raw: [UInt8]
    /// The CDR's `Charge.startKey` when the line parsed (with `key`, the identity it would be charged under).
    public var startKey: Int64?
    /// For a line cut to its start (`line_too_long`): its full length and SHA-256 hex; nil otherwise.
    public var length: Int64?
    public var sha256: String?

    public init(key: String, source: String, position: Int64, line: Int64, reason: String, message: String, raw: [UInt8],
                startKey: Int64? = nil, length: Int64? = nil, sha256: String? = nil) {
        self.startKey = startKey
        self.key = key
        self.source = source
        self.position = position
        self.line = line
        self.reason = reason
        self.message = message
        self.raw = raw
        self.length = length
        self.sha256 = sha256
    }
}

/// A stored quarantine row.
public struct QuarantineItem: Sendable, Equatable {
    public var id: Int64
    public var entry: QuarantineEntry
    public var at: Int64

    package init(id: Int64, entry: QuarantineEntry, at: Int64) {
        self.id = id
        self.entry = entry
        self.at = at
    }
}

/// What one read of a source produced, committed atomically with the source's new position.
public struct ChargeBatch: Sendable {
    public var source: String
    /// Where the source's reader stands after these lines; nil for replay (positions are not moved).
    public var position: Checkpoint?
    public var charges: [Charge]
    public var quarantined: [QuarantineEntry]
    /// The authorize holds these charges settle: deleted in the batch's own transaction, so a call's
    /// cost is never counted twice (charged and still held) nor not at all, by any agent.
    public var releases: [HoldKey]

    public init(source: String, position: Checkpoint?, charges: [Charge], quarantined: [QuarantineEntry],
                releases: [HoldKey] = []) {
        self.source = source
        self.position = position
        self.charges = charges
        self.quarantined = quarantined
        self.releases = releases
    }
}

/// A hold's identity: the client it was allowed for and the PBX call id it names (Asterisk `uniqueid`,
/// FreeSWITCH `uuid`). Two accounts may name the same call id, by accident or on purpose; their holds
/// never meet.
public struct HoldKey: Hashable, Sendable {
    public var clientID: Int64
    public var call: String

    public init(clientID: Int64, call: String) {
        self.clientID = clientID
        self.call = call
    }
}

/// A client's latched level moved; one alert event was written for it.
public struct LevelChange: Sendable, Equatable {
    public var username: String
    public var from: Level
    public var to: Level
    public var meter: Meter

    package init(username: String, from: Level, to: Level, meter: Meter) {
        self.username = username
        self.from = from
        self.to = to
        self.meter = meter
    }
}

/// What a commit did.
public struct BatchOutcome: Sendable, Equatable {
    public var charged: Int
    /// Charges whose identity was already in the ledger: not charged again.
    public var duplicates: Int
    /// Quarantine entries newly inserted.
    public var quarantined: Int
    public var levelChanges: [LevelChange]
    /// Client id → µcr newly charged in this batch.
    public var costByClient: [Int64: Int64]
    /// Client id → number of CDRs newly charged in this batch (same keys as `costByClient`).
    public var countByClient: [Int64: Int]

    package init(charged: Int, duplicates: Int, quarantined: Int, levelChanges: [LevelChange],
                 costByClient: [Int64: Int64], countByClient: [Int64: Int]) {
        self.charged = charged
        self.duplicates = duplicates
        self.quarantined = quarantined
        self.levelChanges = levelChanges
        self.costByClient = costByClient
        self.countByClient = countByClient
    }

    /// µcr newly charged in this batch across all clients, summed wide: each client's total fits Int64,
    /// their sum need not.
    public var totalCost: Int128 { costByClient.values.reduce(Int128(0)) { $0 + Int128($1) } }
}

/// Who an account code bills to, for rating.
public struct AccountOwner: Sendable, Equatable {
    public var clientID: Int64
    public var username: String
    public var plan: String
    public var status: ClientStatus

    package init(clientID: Int64, username: String, plan: String, status: ClientStatus) {
        self.clientID = clientID
        self.username = username
        self.plan = plan
        self.status = status
    }
}

/// Why a ledger operation failed; each description is one line naming the field or rule.
public enum LedgerError: Error, CustomStringConvertible, Equatable {
    case duplicateUsername(String)
    case duplicateEmail(String)
    case accountTaken(code: String, owner: String)
    case unknownClient(String)
    case invalidAmount(String)
    case invalidField(field: String, rule: String)
    /// A recharge key was seen before with a different client or amount.
    case idempotencyConflict(key: String, detail: String)
    /// Purge deletes only disabled clients.
    case notDisabled(String)
    case open(path: String, message: String)
    /// No store at the path, and the caller asked not to create one.
    case noStore(path: String)
    case schemaTooNew(path: String, found: Int32, known: Int32)
    case passwordHash(String)
    case sqlite(code: Int32, message: String, context: String)
    case postgres(sqlstate: String, message: String, context: String)
    /// No connection to the PostgreSQL server could be made (down, refused, authentication failed).
    case unreachable(String)

    public var description: String {
        switch self {
        case .duplicateUsername(let u): return "username: '\(u)' is already taken"
        case .duplicateEmail(let e): return "email: '\(e)' is already used by another client (emails compare case-insensitively)"
        case .accountTaken(let code, let owner): return "account: '\(code)' is already billed to client '\(owner)'"
        case .unknownClient(let u): return "username: no client named '\(u)'"
        case .invalidAmount(let why): return "amount: \(why)"
        case .invalidField(let field, let rule): return "\(field): \(rule)"
        case .idempotencyConflict(let key, let detail): return "idempotency key '\(key)' was already used \(detail)"
        case .notDisabled(let u): return "client '\(u)' is not disabled; only disabled clients can be purged"
        case .open(let path, let message): return "cannot open ledger database \(path): \(message)"
        case .noStore(let path):
            return "store.path: no store at \(path) (only run, replay and clients create make a new one)"
        case .schemaTooNew(let path, let found, let known):
            return "ledger database \(path) has schema version \(found), newer than this creditmeter knows (\(known)); upgrade creditmeter"
        case .passwordHash(let why): return "password hashing failed: \(why)"
        case .sqlite(let code, let message, let context): return "sqlite error \(code) while \(context): \(message)"
        case .postgres(let sqlstate, let message, let context): return "postgresql error \(sqlstate) while \(context): \(message)"
        case .unreachable(let why): return "store: cannot reach the PostgreSQL server: \(why)"
        }
    }
}

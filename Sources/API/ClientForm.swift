import Ledger
import MeterCore

/// Reads a JSON object body field by field, collecting every problem instead of stopping at the first.
struct BodyReader {
    private var values: [String: JSONValue] = [:]
    private(set) var problems: [ClientRules.Violation] = []
    /// False when the body is not a JSON object at all (400); field problems keep it true (422).
    private(set) var isValidBody = true

    init(_ body: [UInt8], allowed: [String], emptyIsObject: Bool = true) {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            if !emptyIsObject { fail("body", "a JSON object is required") }
            return
        }
        let parsed: JSONValue
        do { parsed = try JSONParser.parse(body) } catch {
            fail("body", error.description)
            return
        }
        guard case .object(let pairs) = parsed else {
            fail("body", "must be a JSON object")
            return
        }
        for (k, v) in pairs {
            if allowed.contains(k) { values[k] = v } else { problem(k, "is not a known field") }
        }
    }

    private mutating func fail(_ field: String, _ rule: String) {
        isValidBody = false
        problems.append(.init(field: field, rule: rule))
    }

    mutating func problem(_ field: String, _ rule: String) { problems.append(.init(field: field, rule: rule)) }

    func has(_ key: String) -> Bool { values[key] != nil }

    /// A string field; `null` counts as absent.
    mutating func string(_ key: String) -> String? {
        switch values[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: problem(key, "must be a string"); return nil
        }
    }

    mutating func strings(_ key: String) -> [String]? {
        switch values[key] {
        case nil, .null?: return nil
        case .array(let items)?:
            var out: [String] = []
            for item in items {
                guard case .string(let s) = item else { problem(key, "must be an array of strings"); return nil }
                out.append(s)
            }
            return out
        case .string(let s)?: return [s]
        default: problem(key, "must be an array of strings"); return nil
        }
    }

    /// An amount as a string (`"12.5"`) or a bare JSON number, taken as its exact text.
    mutating func amount(_ key: String) -> String? {
        switch values[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case .int(let i)?: return String(i)
        case .number(let n)?:
            if n.contains(where: { $0 == "e" || $0 == "E" }) {
                problem(key, "must be a plain decimal such as \"12.5\" (no exponent)")
                return nil
            }
            return n
        default: problem(key, "must be an amount such as \"12.5\""); return nil
        }
    }
}

/// The Create Client form's fields as the API takes them, with the CLI's rules (`clients create|edit`).
public struct ClientForm: Sendable {
    public var fields = ClientFields()
    public var accounts: [String]?
    public var plan: String?

    static let profileKeys = ProfileField.allCases.map(\.rawValue)
    static let createKeys = ["username"] + profileKeys + ["accounts", "plan", "password", "password_confirmation"]
    static let editKeys = profileKeys + ["accounts", "plan", "password", "password_confirmation", "username"]

    public init(fields: ClientFields = ClientFields(), accounts: [String]? = nil, plan: String? = nil) {
        self.fields = fields
        self.accounts = accounts
        self.plan = plan
    }

    init(reading b: inout BodyReader) {
        for field in ProfileField.allCases { fields[field] = b.string(field.rawValue) }
        accounts = b.strings("accounts")
        plan = b.string("plan")
    }

    /// The rules that need no store, the same function `creditmeter clients create|edit` checks.
    public func violations(creating: Bool) -> [ClientRules.Violation] {
        ClientRules.profileViolations(creating: creating, accounts: accounts ?? []) { fields[$0] }
    }
}

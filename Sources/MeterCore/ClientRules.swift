/// The management console's Create Client rules, as pure checks shared by the CLI and the API.
public enum ClientRules {
    /// A rule that a client field broke: the field's name and the rule, for a one-line error.
    public struct Violation: Error, Equatable, Sendable, CustomStringConvertible {
        public var field: String
        public var rule: String
        public init(field: String, rule: String) {
            self.field = field
            self.rule = rule
        }
        public var description: String { "\(field): \(rule)" }
    }

    public static let passwordSpecials = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

    /// SPEC section 4: 8–20 characters, a digit, an upper- and a lowercase letter, a special
    /// character, and the confirmation must match. Returns every rule broken, first one first.
    public static func passwordViolations(_ password: String, confirmation: String) -> [Violation] {
        PasswordCondition.allCases.filter { !$0.isMet(password, confirmation: confirmation) }
            .map { $0.violation(password) }
    }

    /// One condition of the password policy: what `passwordViolations` checks, and what the console's
    /// Create Client form lists and ticks as the operator types (it asks the server, so this is the one copy).
    public enum PasswordCondition: String, CaseIterable, Sendable {
        case length, digit, uppercase, lowercase, special, match

        public func isMet(_ password: String, confirmation: String) -> Bool {
            switch self {
            case .length: return (8 ... 20).contains(password.count)
            case .digit: return password.contains(where: { $0.isASCII && $0.isNumber })
            case .uppercase: return password.contains(where: { $0.isUppercase })
            case .lowercase: return password.contains(where: { $0.isLowercase })
            case .special: return password.contains(where: { ClientRules.passwordSpecials.contains($0) })
            case .match: return password == confirmation
            }
        }

        /// The condition as the form lists it.
        public var label: String {
            switch self {
            case .length: return "8 to 20 characters"
            case .digit: return "At least one digit"
            case .uppercase: return "At least one uppercase letter"
            case .lowercase: return "At least one lowercase letter"
            case .special: return "At least one special character"
            case .match: return "Password and Confirm Password match"
            }
        }

        func violation(_ password: String) -> Violation {
            switch self {
            case .length: return .init(field: "password", rule: "must be 8 to 20 characters long (got \(password.count))")
            case .digit: return .init(field: "password", rule: "must contain at least one digit")
            case .uppercase: return .init(field: "password", rule: "must contain at least one uppercase letter")
            case .lowercase: return .init(field: "password", rule: "must contain at least one lowercase letter")
            case .special:
                return .init(field: "password",
                             rule: "must contain at least one special character (one of \(String(ClientRules.passwordSpecials.sorted())))")
            case .match: return .init(field: "password_confirmation", rule: "does not match the password")
            }
        }
    }

    /// Usernames double as the default PBX account code, so they stay in a dialplan-safe alphabet.
    public static func usernameViolation(_ username: String) -> Violation? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if username.count < 3 || username.count > 32 {
            return .init(field: "username", rule: "must be 3 to 32 characters long")
        }
        if !username.allSatisfy({ allowed.contains($0) }) {
            return .init(field: "username", rule: "may contain only letters, digits, '.', '_' and '-'")
        }
        if let first = username.first, !(first.isLetter || first.isNumber) {
            return .init(field: "username", rule: "must start with a letter or digit")
        }
        return nil
    }

    /// A deliberately plain shape check: one '@', a non-empty local part, a dotted domain, no spaces.
    public static func emailViolation(_ email: String) -> Violation? {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        let ok = parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".")
            && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".")
            && !email.contains(where: { $0.isWhitespace }) && email.count <= 254
        return ok ? nil : .init(field: "email", rule: "must be an address like name@example.com")
    }

    /// Account codes are matched byte for byte against CDR fields, so they must be non-empty and printable.
    public static func accountCodeViolation(_ code: String) -> Violation? {
        if code.isEmpty || code.count > 80 || code.contains(where: { $0.isWhitespace || $0 == "," || $0 == "\"" }) {
            return .init(field: "account", rule: "must be 1 to 80 characters without spaces, commas or quotes")
        }
        return nil
    }

    /// Required text fields of the form: non-empty after trimming, at most `max` characters.
    public static func requiredTextViolation(field: String, _ value: String, max: Int = 100) -> Violation? {
        let t = value.drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace })
        if t.isEmpty { return .init(field: field, rule: "is required") }
        if t.count > max { return .init(field: field, rule: "must be at most \(max) characters") }
        return nil
    }
}

/// The Create Client form's profile fields in form order, named as the API's JSON keys and the
/// store's columns spell them: the one list the ledger, the CLI and the API walk.
public enum ProfileField: String, CaseIterable, Sendable {
    case firstName = "first_name", lastName = "last_name", email, phone, country, state, city, zip
    case address1, address2, company, role

    /// First name, last name and email must be given on create and may not be blanked on edit.
    public var isRequired: Bool { self == .firstName || self == .lastName || self == .email }
}

extension ClientRules {
    /// The form's rules that need no store, for `clients create|edit` and the admin API alike:
    /// required fields given (on create) and not blank, other text fields at most 200 characters,
    /// the email's shape, and each account code. `value` is nil for a field not given.
    public static func profileViolations(creating: Bool, accounts: [String],
                                         _ value: (ProfileField) -> String?) -> [Violation] {
        var v: [Violation] = []
        for field in ProfileField.allCases where field.isRequired {
            let given = value(field)
            guard creating || given != nil else { continue }
            if let bad = requiredTextViolation(field: field.rawValue, given ?? "") { v.append(bad) }
        }
        for field in ProfileField.allCases where !field.isRequired {
            if let given = value(field), given.count > 200 { v.append(.init(field: field.rawValue, rule: "must be at most 200 characters")) }
        }
        if let email = value(.email), !email.isEmpty, let bad = emailViolation(email) { v.append(bad) }
        for code in accounts { if let bad = accountCodeViolation(code) { v.append(bad) } }
        return v
    }
}

import Ledger
import MeterCore

/// One credit in µcr.
public let credit: Int64 = 1_000_000
/// A well-formed password hash that no password matches: creating a client without hashing one.
public let fakeHash = "$y$j9T$notarealsalt$notarealhashnotarealhashnotarealhash"

/// Profile fields good enough for any client a test makes.
public func clientFields(first: String = "Ann", last: String = "Lee", email: String? = nil) -> ClientFields {
    var f = ClientFields()
    f.firstName = first
    f.lastName = last
    f.email = email
    return f
}

/// An active client on the default plan, its email `<username>@example.com` unless given.
@discardableResult
public func makeClient(_ l: Ledger, _ username: String, email: String? = nil, accounts: [String] = [],
                       now: Int64 = 1_000) throws -> ClientRecord {
    try l.createClient(username: username, fields: clientFields(email: email ?? "\(username)@example.com"),
                       accounts: accounts, plan: "default", passwordHash: fakeHash, now: now)
}

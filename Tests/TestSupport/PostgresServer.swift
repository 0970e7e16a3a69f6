import Foundation
import Ledger
import LedgerPostgres
import MeterCore

/// The PostgreSQL server the tests use, given by `CREDITMETER_TEST_PG_DIR` (a directory made by
/// `scripts/pg-server start DIR`); the tests never start one themselves.
public enum PGEnv {
    public static let dir: String? = ProcessInfo.processInfo.environment["CREDITMETER_TEST_PG_DIR"].flatMap { $0.isEmpty ? nil : $0 }
    /// CI sets CREDITMETER_REQUIRE_PG=1: a run that forgot the server then fails instead of passing silently.
    public static let required = ProcessInfo.processInfo.environment["CREDITMETER_REQUIRE_PG"] == "1"
    /// The PostgreSQL cases run when a server is given, and when one is required (so that they fail).
    public static let enabled = dir != nil || required

    public static func server() throws -> (url: String, password: String?) {
        guard let dir else {
            throw TestFailure("""
                CREDITMETER_REQUIRE_PG=1 but CREDITMETER_TEST_PG_DIR is not set: start a server with \
                scripts/pg-server start DIR and set CREDITMETER_TEST_PG_DIR=DIR
                """)
        }
        let base = URL(fileURLWithPath: dir)
        guard let url = try? String(contentsOf: base.appendingPathComponent("url"), encoding: .utf8) else {
            throw TestFailure("CREDITMETER_TEST_PG_DIR=\(dir) has no readable url file (made by scripts/pg-server start)")
        }
        let password = try? String(contentsOf: base.appendingPathComponent("password"), encoding: .utf8)
        return (url.trimmingCharacters(in: .whitespacesAndNewlines),
                password.map { $0.hasSuffix("\n") ? String($0.dropLast()) : $0 })
    }
}


/// A database of its own on the test server, `cm_<random>`, dropped by `drop()`.
public final class TestDatabase: @unchecked Sendable {
    public let name: String
    public let url: String
    public let password: String?
    private let serverURL: String

    public init() throws {
        let s = try PGEnv.server()
        serverURL = s.url
        password = s.password
        name = "cm_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        guard var parts = URLComponents(string: s.url) else { throw TestFailure("cannot parse the server URL \(s.url)") }
        parts.path = "/" + name
        guard let u = parts.string else { throw TestFailure("cannot make a URL for \(name)") }
        url = u
        let admin = try PGConnection(url: s.url, password: s.password)
        try admin.execute("CREATE DATABASE \(name)", "creating the test database")
    }

    public func settings(node: String = "pbx1") -> PostgresSettings {
        PostgresSettings(url: url, password: password, node: node)
    }

    public func ledger(node: String = "pbx1", thresholds: Thresholds = .default) throws -> PostgresLedger {
        try PostgresLedger(settings: settings(node: node), thresholds: thresholds)
    }

    /// A connection of the test's own to this database, for checks the store has no call for.
    package func connection() throws -> PGConnection { try PGConnection(url: url, password: password) }

    public func int(_ sql: String) throws -> Int64? { try connection().queryInt(sql, "checking: \(sql)") }

    public func drop() {
        // FORCE: the stores under test may still hold their connections.
        if let admin = try? PGConnection(url: serverURL, password: password) {
            try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)", "dropping the test database")
        }
    }
}


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

    /// The URL and password of the server in `dir` (a `scripts/pg-server start` directory), by default
    /// the one `CREDITMETER_TEST_PG_DIR` names.
    public static func server(in given: String? = nil) throws -> (url: String, password: String?) {
        guard let dir = given ?? dir else {
            throw TestFailure("""
                CREDITMETER_REQUIRE_PG=1 but CREDITMETER_TEST_PG_DIR is not set: start a server with \
                scripts/pg-server start DIR and set CREDITMETER_TEST_PG_DIR=DIR
                """)
        }
        let base = URL(fileURLWithPath: dir)
        guard let url = try? String(contentsOf: base.appendingPathComponent("url"), encoding: .utf8) else {
            throw TestFailure("\(dir) has no readable url file (made by scripts/pg-server start)")
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

    /// On the test server, or on the server in `serverDir` (an `OwnServer`'s).
    public init(serverDir: String? = nil) throws {
        let s = try PGEnv.server(in: serverDir)
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


/// A server of one test's own, for what must not touch the shared one (a restart cuts every connection):
/// `scripts/pg-server start` in a fresh directory, stopped and removed by `stop()`. Takes a few seconds.
public final class OwnServer: @unchecked Sendable {
    public let dir: String
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/pg-server").path

    /// `tls`: TCP takes TLS only, and the server's URL asks for sslmode=verify-full against the CA in
    /// `dir/ca.crt` (`dir/other-ca.crt` signed nothing).
    public init(tls: Bool = false) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cm-pg-\(UUID().uuidString.prefix(8))").path
        try Self.run(["start", dir], environment: tls ? "PG_SERVER_TLS=1 " : "")
    }

    /// A fast restart: the server cuts every connection and comes back on the same port.
    public func restart() throws { try Self.run(["restart", dir]) }

    /// Stops the server and keeps it, for `resume`: the store is unreachable meanwhile.
    public func halt() throws { try Self.run(["stop", dir]) }

    /// Starts the server `halt` stopped, on the same port.
    public func resume() throws { try Self.run(["resume", dir]) }

    public func stop() {
        try? Self.run(["stop", dir])
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func run(_ args: [String], environment: String = "") throws {
        // system(3), not Process: the server pg_ctl starts inherits the child's descriptors, and Foundation's
        // Process was seen never to return from waitUntilExit for a script that had left one behind.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("cm-pg-server-\(UUID().uuidString).err").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let quoted = ([script] + args + [log]).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command = environment + "/bin/bash \(quoted[0]) \(quoted[1..<(quoted.count - 1)].joined(separator: " ")) </dev/null >/dev/null 2>\(quoted[quoted.count - 1])"
        let status = system(command)
        guard status == 0 else {
            let e = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw TestFailure("scripts/pg-server \(args.joined(separator: " ")) failed (status \(status)): \(e)")
        }
    }
}

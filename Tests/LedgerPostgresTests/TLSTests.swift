import Foundation
import Ledger
@testable import LedgerPostgres
import Testing
import TestSupport

/// `sslmode=verify-full` against a server of the test's own that takes TLS only.
@Suite(.enabled(if: PGEnv.enabled)) struct TLSTests {
    @Test func verifyFullConnectsOverTLSAndRefusesWhatItCannotVerify() throws {
        let server = try OwnServer(tls: true)
        defer { server.stop() }
        let db = try TestDatabase(serverDir: server.dir)
        defer { db.drop() }
        #expect(db.url.contains("sslmode=verify-full") && db.url.contains("sslrootcert="))
        let l = try db.ledger()
        let ann = try makeClient(l, "ann")
        #expect(try l.commit(batch([charge("tls-1", client: ann.id, cost: 7)]), now: 2).charged == 1)
        // The connection really is encrypted.
        #expect(try db.connection().queryInt("SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl", "checking TLS") == 1)

        func refused(_ url: String, _ why: String) {
            let e = thrown { try PostgresLedger(settings: PostgresSettings(url: url, password: db.password, node: "pbx1")) }
            guard case .unreachable = e else {
                Issue.record("\(url): expected .unreachable, got \(String(describing: e))")
                return
            }
            let text = e.map { String(describing: $0) } ?? ""
            #expect(text.contains(why), "\(text)")
            if let password = db.password { #expect(!text.contains(password)) }
        }
        // A CA that did not sign the server's certificate, a host name the certificate does not name, and
        // no TLS at all (the server takes none): each refused.
        refused(db.url.replacingOccurrences(of: "/ca.crt", with: "/other-ca.crt"), "certificate verify failed")
        refused(db.url.replacingOccurrences(of: "@127.0.0.1:", with: "@localhost:"), "does not match host name")
        refused(db.url.replacingOccurrences(of: "sslmode=verify-full", with: "sslmode=disable"), "no encryption")
    }
}

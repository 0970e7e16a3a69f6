import Foundation
import Testing
@testable import MeterConfig

/// Which changed keys a SIGHUP reload leaves to a restart.
@Suite struct ReloadScopeTests {
    static let base = """
        [store]
        path = "/var/lib/creditmeter/creditmeter.db"

        [api]
        listen = "127.0.0.1:8787"

        [[source]]
        name = "pbx"
        path = "/var/log/asterisk/cdr-csv/Master.csv"
        format = "asterisk-csv"

        [[endpoint]]
        name = "crm"
        url = "https://crm.example/hook"
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

        """

    static func config(_ text: String) throws -> Config {
        try Config.parse(text, file: "test.toml", baseDirectory: "/etc/creditmeter", environment: [:])
    }

    static func keys(_ edited: String) throws -> [String] {
        try config(edited).keysNeedingRestart(comparedTo: config(base))
    }

    @Test func whatAReloadAppliesNeedsNoRestart() throws {
        #expect(try Self.keys(Self.base) == [])
        let applied = Self.base.replacingOccurrences(of: "format = \"asterisk-csv\"",
                                                     with: "format = \"asterisk-csv\"\ntimezone = \"UTC\"")
            + "\n[thresholds]\nlow_percent = 30\n\n[authorize]\nmax_call_seconds = 600\n\n[retention]\ndisabled_days = 10\n"
        #expect(try Self.keys(applied) == [])
    }

    @Test func eachKeyTheRunningServicesKeepIsNamed() throws {
        #expect(try Self.keys(Self.base.replacingOccurrences(of: "creditmeter.db", with: "other.db")) == ["store.path"])
        #expect(try Self.keys(Self.base.replacingOccurrences(of: "Master.csv", with: "Other.csv")) == ["source[pbx].path"])
        #expect(try Self.keys(Self.base.replacingOccurrences(of: "8787", with: "8788")) == ["api.listen"])
        #expect(try Self.keys(Self.base.replacingOccurrences(of: "crm.example/hook", with: "crm.example/v2")) == ["endpoint[crm].url"])
        #expect(try Self.keys(Self.base + "\n[delivery]\nmax_age_hours = 1\n") == ["delivery.max_age_hours"])
        let renamed = Self.base.replacingOccurrences(of: "name = \"pbx\"", with: "name = \"fs\"")
        #expect(try Self.keys(renamed) == ["source[fs] (added)", "source[pbx] (removed)"])
        let noEndpoint = Self.base.components(separatedBy: "[[endpoint]]")[0]
        #expect(try Self.keys(noEndpoint) == ["endpoint[crm] (removed)"])
    }
}

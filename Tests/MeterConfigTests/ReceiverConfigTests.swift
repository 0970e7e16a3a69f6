import CDRParser
import Foundation
@testable import MeterConfig
import Testing
import TestSupport

@Suite("[[source]] receive = \"http\"")
struct ReceiverConfigTests {
    @Test("a receiving source takes a format, a token file, a zone and charge_b_legs, and no path")
    func parses() throws {
        let c = try ConfigTests.parse("""
            \(SampleConfig.httpSource)

            [[source]]
            name = "lines"
            receive = "http"
            format = "jsonl"
            token_file = "/etc/creditmeter/lines.token"
            charge_b_legs = true
            """)
        #expect(c.sources.isEmpty)
        #expect(c.receivers.map(\.name) == ["fs-http", "lines"])
        #expect(c.receivers[0].format == .freeswitchJSON && c.receivers[0].tokenFile == "/etc/creditmeter/cdr.token")
        #expect(c.receivers[0].timezone == "UTC" && !c.receivers[0].chargeBLegs)
        #expect(c.receivers[1].format == .jsonl && c.receivers[1].chargeBLegs && c.receivers[1].timezone == "local")
    }

    @Test("each mistake is named with its key")
    func refusals() {
        func keys(_ body: String) -> [String] {
            ConfigTests.issues("[[source]]\nname = \"x\"\n" + body).map(\.key)
        }
        #expect(keys("receive = \"http\"\nformat = \"jsonl\"") == ["source[0].token_file"])
        #expect(keys("receive = \"ftp\"\nformat = \"jsonl\"\ntoken_file = \"t\"") == ["source[0].receive"])
        #expect(keys("receive = \"http\"\nformat = \"asterisk-csv\"\ntoken_file = \"t\"") == ["source[0].format"])
        #expect(keys("receive = \"http\"\nformat = \"jsonl\"\ntoken_file = \"t\"\npath = \"/x.csv\"").contains("source[0].path"))
        #expect(keys("receive = \"http\"\nformat = \"jsonl\"\ntoken_file = \"t\"\ntimezone = \"Mars/Base\"") == ["source[0].timezone"])
        // A file source cannot read documents that are posted whole.
        #expect(keys("path = \"/var/log/x.json\"\nformat = \"freeswitch-json\"") == ["source[0].format"])
    }

    @Test("a new store url, password file or node name needs a restart")
    func storeNeedsRestart() throws {
        let running = try ConfigTests.parse("[store]\nurl = \"postgresql://cm@db/cm\"\n[node]\nname = \"pbx1\"\n")
        let moved = try ConfigTests.parse("""
            [store]
            url = "postgresql://cm@db2/cm"
            password_file = "/etc/creditmeter/pg.password"
            [node]
            name = "pbx2"
            """)
        #expect(moved.keysNeedingRestart(comparedTo: running) == ["store.url", "store.password_file", "node.name"])
        #expect(running.keysNeedingRestart(comparedTo: running).isEmpty)
    }

    @Test("a changed, added or removed receiving source needs a restart")
    func restart() throws {
        let base = "[[source]]\nname = \"fs\"\nreceive = \"http\"\nformat = \"freeswitch-json\"\ntoken_file = \"/t\"\n"
        let running = try ConfigTests.parse(base)
        #expect(try ConfigTests.parse(base).keysNeedingRestart(comparedTo: running).isEmpty)
        let changed = try ConfigTests.parse(base.replacingOccurrences(of: "/t", with: "/u"))
        #expect(changed.keysNeedingRestart(comparedTo: running) == ["source[fs]"])
        #expect(try ConfigTests.parse("").keysNeedingRestart(comparedTo: running) == ["source[fs] (removed)"])
        #expect(running.keysNeedingRestart(comparedTo: try ConfigTests.parse("")) == ["source[fs] (added)"])
    }
}

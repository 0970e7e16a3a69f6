import Foundation
import Testing
@testable import MeterConfig

/// `[store] url`, `password_file` and `[node] name`: a PostgreSQL store shared by several hosts.
@Suite struct StoreURLTests {
    static func issues(_ text: String) -> [String: String] {
        Dictionary(ConfigTests.issues(text).map { ($0.key, $0.message) }, uniquingKeysWith: { a, _ in a })
    }

    @Test func urlPasswordFileAndNodeAreRead() throws {
        let c = try ConfigTests.parse("""
            [store]
            url = "postgresql://creditmeter@db.example.com:5432/creditmeter?sslmode=verify-full"
            password_file = "pg.password"
            [node]
            name = "pbx1"
            """)
        #expect(c.store.url == "postgresql://creditmeter@db.example.com:5432/creditmeter?sslmode=verify-full")
        #expect(c.store.passwordFile == "/etc/creditmeter/pg.password")
        #expect(c.node.name == "pbx1")
    }

    @Test func nodeDefaultsToTheShortHostName() throws {
        let c = try ConfigTests.parse("")
        #expect(c.node.name == NodeConfig.hostName())
        #expect(!c.node.name.contains("."))
        #expect(c.store.url == nil)
    }

    @Test func pathAndURLExcludeEachOther() {
        let i = Self.issues("""
            [store]
            path = "x.db"
            url = "postgresql://u@h/db"
            """)
        #expect(i["store.url"]?.contains("not both") == true, "\(i)")
    }

    @Test(arguments: [
        "postgresql://creditmeter:s3cret@db:5432/creditmeter",
        "postgres://creditmeter:s3cret@db/creditmeter?sslmode=require",
        "postgresql://creditmeter@db/creditmeter?sslmode=require&password=s3cret",
    ])
    func aPasswordInTheURLIsRefusedAndNotRepeated(url: String) {
        let i = Self.issues("[store]\nurl = \"\(url)\"\n")
        let message = i["store.url"] ?? ""
        #expect(message.contains("password_file"), "\(i)")
        #expect(!message.contains("s3cret"), "the refusal repeats the password: \(message)")
    }

    @Test func redactedDropsEveryCredential() {
        #expect(StoreConfig.redacted("postgresql://u:pw@h:5/db?sslmode=verify-full") == "postgresql://u@h:5/db?sslmode=verify-full")
        #expect(StoreConfig.redacted("postgresql://u@h/db?password=pw&sslmode=require") == "postgresql://u@h/db?password=…&sslmode=require")
        #expect(StoreConfig.redacted("postgresql://h/db") == "postgresql://h/db")
    }

    @Test func otherSchemesAndBadNodeNamesAreRefused() {
        #expect(Self.issues("[store]\nurl = \"mysql://u@h/db\"\n")["store.url"]?.contains("postgresql://") == true)
        #expect(Self.issues("[node]\nname = \"pbx 1\"\n")["node.name"] != nil)
        #expect(Self.issues("[node]\nname = \"\"\n")["node.name"] != nil)
        #expect(Self.issues("[node]\nname = \"pbx-1.dc_2\"\n").isEmpty)
    }

    @Test func passwordFileNeedsURL() {
        #expect(Self.issues("[store]\npassword_file = \"/x\"\n")["store.password_file"]?.contains("url") == true)
    }

    @Test func thePasswordIsItsLineWithoutTheNewline() throws {
        let dir = try ConfigTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = dir + "/pw"
        for (content, expected) in [("p w#1\n", "p w#1"), ("p w#1", "p w#1"), ("p w#1\r\n", "p w#1"), (" lead\n", " lead")] {
            try content.write(toFile: f, atomically: true, encoding: .utf8)
            #expect(try StoreConfig.readPassword(f) == expected)
        }
        for bad in ["", "\n", "one\ntwo\n"] {
            try bad.write(toFile: f, atomically: true, encoding: .utf8)
            #expect(throws: ConfigError.self) { try StoreConfig.readPassword(f) }
        }
        #expect(throws: ConfigError.self) { try StoreConfig.readPassword(dir + "/missing") }
    }

    @Test func theTwoHostSamplesDifferOnlyInTheirNode() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("samples/postgres")
        let one = try Config.load(path: dir.appendingPathComponent("pbx1.toml").path)
        let two = try Config.load(path: dir.appendingPathComponent("pbx2.toml").path)
        #expect(one.node.name == "pbx1" && two.node.name == "pbx2")
        #expect(one.store == two.store && one.store.url?.hasSuffix("sslmode=verify-full") == true)
        #expect(one.store.passwordFile == "/etc/creditmeter/pg.password")
        #expect(one.sources.map(\.name) == two.sources.map(\.name))
        #expect(try one.loadRateDecks().keys.sorted() == ["default"])
    }
}

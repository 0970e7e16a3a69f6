import Foundation
import Testing

@Suite(.serialized) struct ClientsCLITests {
    @Test func createShowListAndTheMeter() throws {
        let h = try Harness()
        let r = try h.createClient("alice", accounts: ["1001", "1002"])
        #expect(r.status == 0, "\(r.stderr)")
        try h.ok(["clients", "recharge", "alice", "100"])
        let shown = try h.ok(["clients", "show", "alice"])
        #expect(shown.contains("100 | 0 | 100"))
        guard let j = try h.json(["clients", "show", "alice", "--json"]) as? [String: Any] else {
            Issue.record("no JSON"); return
        }
        #expect(j["accounts"] as? [String] == ["1001", "1002"])
        #expect(j["level"] as? String == "ok")
        #expect(j["color"] as? String == "primary")
        #expect(j["percent"] as? Int == 100)
        #expect(!String(describing: j).contains("$y$"), "the password hash never leaves the store")
        let list = try h.ok(["clients", "list"])
        #expect(list.contains("alice") && list.contains("100 | 0 | 100"))
    }

    @Test func everyRuleRefusesAndChangesNothing() throws {
        let h = try Harness()
        #expect(try h.createClient("alice").status == 0)
        let cases: [(Harness.Result, String)] = [
            (try h.createClient("alice", email: "other@example.com"), "username"),
            (try h.createClient("bob", email: "ALICE@example.com"), "email"),
            (try h.createClient("carol", password: "short1!"), "8 to 20"),
            (try h.createClient("dave", password: "nodigits!!A"), "digit"),
            (try h.createClient("erin", password: "NOLOWER1!"), "lowercase"),
            (try h.createClient("frank", password: "noupper1!"), "uppercase"),
            (try h.createClient("gina", password: "NoSpecial12"), "special"),
            (try h.createClient("x", email: "x@example.com"), "username"),
            (try h.createClient("hank", email: "not-an-email"), "email"),
            (try h.createClient("ivan", accounts: ["alice"]), "account"),
        ]
        for (r, word) in cases {
            #expect(r.status == 65, "expected exit 65 for \(word), got \(r.status): \(r.stderr)")
            #expect(r.stderr.contains(word), "stderr should name \(word): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        }
        let mismatch = try h.run(["clients", "create", "--username", "judy", "--first-name", "J", "--last-name", "D",
                                  "--email", "judy@example.com", "--password-stdin"], stdin: "Passw0rd!\nPassw0rd?\n")
        #expect(mismatch.status == 65 && mismatch.stderr.contains("password_confirmation"))
        let missing = try h.run(["clients", "create", "--username", "kim", "--email", "kim@example.com", "--password-stdin"],
                                stdin: "Passw0rd!\nPassw0rd!\n")
        #expect(missing.status == 65 && missing.stderr.contains("first_name"))
        #expect(try h.meters().keys.sorted() == ["alice"])
    }

    @Test func rechargeIsIdempotentWithAKey() throws {
        let h = try Harness()
        #expect(try h.createClient("alice").status == 0)
        try h.ok(["clients", "recharge", "alice", "12.5", "--key", "inv-1"])
        try h.ok(["clients", "recharge", "alice", "12.5", "--key", "inv-1"])
        try h.ok(["clients", "recharge", "alice", "0.000001"])
        #expect(try h.meters()["alice"]?["assigned"] == "12.500001")
        for bad in ["0", "-5", "1.0000001", "abc"] {
            let r = try h.run(["clients", "recharge", "alice", bad])
            #expect(r.status == 65 || r.status == 64, "\(bad): \(r.status) \(r.stderr)")
        }
        let unknown = try h.run(["clients", "recharge", "nobody", "5"])
        #expect(unknown.status == 65 && unknown.stderr.contains("nobody"))
        #expect(try h.meters()["alice"]?["assigned"] == "12.500001")
    }

    @Test func disableEnableAndPurge() throws {
        let h = try Harness()
        #expect(try h.createClient("alice").status == 0)
        #expect(try h.createClient("bob").status == 0)
        try h.ok(["clients", "disable", "alice"])
        #expect(try h.meters()["alice"]?["status"] == "disabled")
        try h.ok(["clients", "disable", "bob"])
        try h.ok(["clients", "enable", "bob"])
        #expect(try h.meters()["bob"]?["status"] == "active")

        // Not yet 90 days: nothing to purge.
        #expect(try h.ok(["purge", "--dry-run"]).contains("no client"))
        let later = ISO8601DateFormatter().string(from: Date().addingTimeInterval(91 * 86_400)).prefix(10)
        let dry = try h.ok(["purge", "--dry-run", "--as-of", String(later)])
        #expect(dry.contains("would delete alice"))
        #expect(try h.meters().count == 2)
        let done = try h.ok(["purge", "--as-of", String(later)])
        #expect(done.contains("deleted alice"))
        #expect(try h.meters().keys.sorted() == ["bob"])
    }

    @Test func badConfigNamesTheKeyAndExits78() throws {
        let h = try Harness(config: "[thresholds]\nlow_percent = 25\nbogus_key = 1\n")
        let r = try h.run(["clients", "list"])
        #expect(r.status == 78)
        #expect(r.stderr.contains("bogus_key"))
        let check = try h.run(["config", "check"])
        #expect(check.status == 78 && check.stderr.contains("bogus_key"))
        let missing = try h.run(["clients", "list", "--config", h.path("nope.toml")], config: false)
        #expect(missing.status == 78 && missing.stderr.contains("nope.toml"))
    }

    @Test func missingReplayFileExits66() throws {
        let h = try Harness()
        let r = try h.run(["replay", "--format", "asterisk-csv", h.path("absent.csv")])
        #expect(r.status == 66 && r.stderr.contains("absent.csv"))
        let u = try h.run(["replay", "--format", "nonsense", h.path("absent.csv")])
        #expect(u.status == 64 || u.status == 66)
    }
}

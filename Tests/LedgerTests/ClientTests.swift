import TestSupport
import Foundation
import Testing
import MeterCore
@testable import Ledger

@Suite struct ClientTests {
    @Test("each profile field is stored in its own column and read back under its own name")
    func everyProfileFieldRoundTrips() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        var f = ClientFields()
        for field in ProfileField.allCases { f[field] = field == .email ? "x@example.com" : "v-\(field.rawValue)" }
        #expect(f.firstName == "v-first_name" && f.role == "v-role" && f.address2 == "v-address2")
        let c = try t.ledger.createClient(username: "all", fields: f, accounts: [], plan: "default", passwordHash: fakeHash, now: 1)
        let back = try #require(try t.ledger.client(username: "all"))
        for field in ProfileField.allCases {
            #expect(back[field] == f[field], "\(field.rawValue)")
            #expect(c.fields[field] == f[field], "\(field.rawValue)")
        }
        #expect(back.lastName == "v-last_name" && back.zip == "v-zip" && back.company == "v-company")
    }

    @Test func createShowList() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        var f = fields(email: "Ann@Example.com")
        f.city = "Lyon"
        let ann = try t.ledger.createClient(username: "ann", fields: f, accounts: [], plan: "default", passwordHash: fakeHash, now: 1000)
        #expect(ann.accounts == ["ann"])
        #expect(ann.status == .active)
        #expect(ann.city == "Lyon" && ann.phone == "")
        #expect(ann.meter == Meter(assigned: 0, used: 0))
        #expect(ann.level == .exhausted)
        #expect(ann.createdAt == 1000 && ann.updatedAt == 1000 && ann.disabledAt == nil)
        let bob = try t.ledger.createClient(username: "bob", fields: fields(email: "bob@example.com"), accounts: ["200", "100", "200"],
                                            plan: "gold", passwordHash: fakeHash, now: 1001)
        #expect(bob.accounts == ["100", "200"])
        #expect(bob.plan == "gold")

        #expect(try t.ledger.client(username: "ann") == ann)
        #expect(try t.ledger.client(username: "nobody") == nil)
        #expect(try t.ledger.clients().map(\.username) == ["ann", "bob"])
        #expect(try t.ledger.clients()[1] == bob)
        #expect(try t.ledger.passwordHash(username: "bob") == fakeHash)

        let dir = try t.ledger.accountDirectory()
        #expect(dir.count == 3)
        #expect(dir["100"]?.username == "bob" && dir["100"]?.plan == "gold" && dir["100"]?.clientID == bob.id)
        #expect(dir["ann"]?.status == .active)

        let events = try t.ledger.outboxEvents(limit: 10)
        #expect(events.map(\.type) == ["client.created", "client.created"])
        let body = try EventBody(events[0].body)
        #expect(body.type == "client.created")
        #expect(body.timestamp == "1970-01-01T00:16:40Z")
        #expect(body.string("username") == "ann")
        #expect(body.string("email") == "Ann@Example.com")
        #expect(body.string("city") == "Lyon")
        #expect(body.data["password_hash"] == nil)
        #expect(!events[0].body.contains(fakeHash))
        #expect(events.allSatisfy { $0.eventID.hasPrefix("evt_") && $0.eventID.count == 30 })
        #expect(events[0].eventID != events[1].eventID)
    }

    @Test func editChangesOnlyWhatIsGiven() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        try makeClient(t.ledger, "ann", accounts: ["a1"])
        var f = ClientFields()
        f.phone = "+33 1 23"
        f.lastName = ""
        let edited = try t.ledger.editClient(username: "ann", fields: f, accounts: ["a2", "a3"], plan: "gold",
                                             passwordHash: "$y$other", now: 2000)
        #expect(edited.phone == "+33 1 23")
        #expect(edited.lastName == "")
        #expect(edited.firstName == "Ann")
        #expect(edited.email == "ann@example.com")
        #expect(edited.accounts == ["a2", "a3"])
        #expect(edited.plan == "gold")
        #expect(edited.updatedAt == 2000 && edited.createdAt == 1000)
        #expect(try t.ledger.passwordHash(username: "ann") == "$y$other")
        #expect(try t.ledger.accountDirectory().keys.sorted() == ["a2", "a3"])

        let events = try t.ledger.outboxEvents(limit: 10)
        #expect(events.map(\.type) == ["client.created", "client.updated"])
        let body = try EventBody(events[1].body)
        #expect(body.data["changed"] as? [String] == ["last_name", "phone", "accounts", "plan", "password"])
        #expect(!events[1].body.contains("$y$other"))

        // The same values again change nothing and queue nothing.
        let again = try t.ledger.editClient(username: "ann", fields: f, accounts: ["a3", "a2"], plan: "gold",
                                            passwordHash: "$y$other", now: 3000)
        #expect(again == edited)
        #expect(try t.ledger.outboxEvents(limit: 10).count == 2)

        // Empty accounts fall back to the username, as on create.
        #expect(try t.ledger.editClient(username: "ann", fields: ClientFields(), accounts: [], plan: nil,
                                        passwordHash: nil, now: 4000).accounts == ["ann"])
    }

    @Test func disableAndEnable() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        try makeClient(t.ledger, "ann")
        let off = try t.ledger.setDisabled(username: "ann", true, now: 5000)
        #expect(off.status == .disabled && off.disabledAt == 5000)
        // Disabling twice is a no-op: the original time stays and no second event is queued.
        #expect(try t.ledger.setDisabled(username: "ann", true, now: 6000).disabledAt == 5000)
        #expect(try t.ledger.accountDirectory()["ann"]?.status == .disabled)
        let on = try t.ledger.setDisabled(username: "ann", false, now: 7000)
        #expect(on.status == .active && on.disabledAt == nil && on.updatedAt == 7000)
        #expect(try t.ledger.outboxEvents(limit: 10).map(\.type) == ["client.created", "client.disabled", "client.enabled"])
    }

    @Test func uniquenessRules() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        try makeClient(t.ledger, "ann", email: "Ann@Example.com", accounts: ["100"])
        try makeClient(t.ledger, "bob", email: "bob@example.com")

        #expect(throws: LedgerError.duplicateUsername("ann")) { try makeClient(t.ledger, "ann", email: "other@example.com") }
        #expect(throws: LedgerError.duplicateEmail("ann@EXAMPLE.com")) { try makeClient(t.ledger, "cat", email: "ann@EXAMPLE.com") }
        #expect(throws: LedgerError.accountTaken(code: "100", owner: "ann")) {
            try makeClient(t.ledger, "cat", accounts: ["300", "100"])
        }
        // A username that is someone else's account code is taken too, since it becomes the default account.
        try makeClient(t.ledger, "dan", accounts: ["eve"])
        #expect(throws: LedgerError.accountTaken(code: "eve", owner: "dan")) { try makeClient(t.ledger, "eve") }

        var f = ClientFields()
        f.email = "ANN@example.COM"
        #expect(throws: LedgerError.duplicateEmail("ANN@example.COM")) {
            try t.ledger.editClient(username: "bob", fields: f, accounts: nil, plan: nil, passwordHash: nil, now: 2)
        }
        #expect(throws: LedgerError.accountTaken(code: "100", owner: "ann")) {
            try t.ledger.editClient(username: "bob", fields: ClientFields(), accounts: ["100"], plan: nil, passwordHash: nil, now: 2)
        }
        // Changing the case of one's own email is not a collision.
        #expect(try t.ledger.editClient(username: "ann", fields: f, accounts: ["100"], plan: nil, passwordHash: nil, now: 2).email == "ANN@example.COM")
        // Empty emails never collide.
        var empty = ClientFields()
        empty.email = ""
        _ = try t.ledger.createClient(username: "fay", fields: empty, accounts: [], plan: "default", passwordHash: fakeHash, now: 3)
        _ = try t.ledger.createClient(username: "gus", fields: empty, accounts: [], plan: "default", passwordHash: fakeHash, now: 3)

        // Failed creates left nothing behind.
        #expect(try t.ledger.clients().map(\.username) == ["ann", "bob", "dan", "fay", "gus"])
        #expect(try t.ledger.accountDirectory()["300"] == nil)
    }

    @Test func unknownClientsAndInvalidInput() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        #expect(throws: LedgerError.unknownClient("zed")) {
            try t.ledger.editClient(username: "zed", fields: ClientFields(), accounts: nil, plan: "x", passwordHash: nil, now: 1)
        }
        #expect(throws: LedgerError.unknownClient("zed")) { try t.ledger.setDisabled(username: "zed", true, now: 1) }
        #expect(throws: LedgerError.unknownClient("zed")) { try t.ledger.recharge(username: "zed", amount: 1, key: nil, now: 1) }
        #expect(throws: LedgerError.unknownClient("zed")) { try t.ledger.purge(username: "zed", now: 1) }
        #expect(throws: LedgerError.self) { try makeClient(t.ledger, "a b") }
        #expect(throws: LedgerError.self) { try makeClient(t.ledger, "ann", email: "not-an-email") }
        #expect(throws: LedgerError.self) { try makeClient(t.ledger, "ann", accounts: ["has space"]) }
        #expect(throws: LedgerError.self) {
            try t.ledger.createClient(username: "ann", fields: ClientFields(), accounts: [], plan: "default", passwordHash: "Secret1!", now: 1)
        }
        #expect(LedgerError.accountTaken(code: "100", owner: "ann").description == "account: '100' is already billed to client 'ann'")
    }

    @Test func rechargeWithAndWithoutKey() throws {
        let t = try TempLedger()
        defer { t.cleanup() }
        try makeClient(t.ledger, "ann")
        try makeClient(t.ledger, "bob")
        var r = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 10)
        #expect(r.applied && r.client.meter.assigned == 100 * credit)
        r = try t.ledger.recharge(username: "ann", amount: 100 * credit, key: nil, now: 11)
        #expect(r.applied && r.client.meter.assigned == 200 * credit)

        r = try t.ledger.recharge(username: "ann", amount: 12_500, key: "k1", now: 12)
        #expect(r.applied && r.client.meter.assigned == 200 * credit + 12_500)
        r = try t.ledger.recharge(username: "ann", amount: 12_500, key: "k1", now: 13)
        #expect(!r.applied && r.client.meter.assigned == 200 * credit + 12_500)

        #expect(throws: LedgerError.self) { try t.ledger.recharge(username: "ann", amount: 99, key: "k1", now: 14) }
        #expect(throws: LedgerError.self) { try t.ledger.recharge(username: "bob", amount: 12_500, key: "k1", now: 14) }
        #expect(throws: LedgerError.self) { try t.ledger.recharge(username: "ann", amount: 0, key: nil, now: 14) }
        #expect(throws: LedgerError.self) { try t.ledger.recharge(username: "ann", amount: -5, key: nil, now: 14) }
        #expect(try t.ledger.client(username: "ann")?.meter.assigned == 200 * credit + 12_500)
        #expect(try t.ledger.client(username: "bob")?.meter.assigned == 0)

        let types = try t.ledger.outboxEvents(limit: 20).map(\.type)
        #expect(types.filter { $0 == "client.recharged" }.count == 3)
        let recharged = try t.ledger.outboxEvents(limit: 20).filter { $0.type == "client.recharged" }
        #expect(try EventBody(recharged[2].body).string("amount") == "0.0125")
    }
}

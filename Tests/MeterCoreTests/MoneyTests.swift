import Testing
@testable import MeterCore

@Suite struct MoneyTests {
    @Test(arguments: [
        ("100", Int64(100_000_000)), ("0.0125", 12_500), ("0.000001", 1), ("22.50", 22_500_000),
        ("7", 7_000_000), (".5", 500_000), ("0.1000000", 100_000), (" 3.25 ", 3_250_000),
    ])
    func parses(_ text: String, _ micro: Int64) throws {
        #expect(try Money.parse(text) == micro)
    }

    @Test func negativeOnlyWhenAllowed() throws {
        #expect(throws: Money.ParseError.negativeNotAllowed) { try Money.parse("-1") }
        #expect(try Money.parse("-3.25", allowNegative: true) == -3_250_000)
    }

    @Test(arguments: ["", "abc", "1.2.3", "0.0000001", "1e5", "99999999999999", "-", "."])
    func rejects(_ text: String) {
        #expect(throws: Money.ParseError.self) { try Money.parse(text, allowNegative: true) }
    }

    @Test(arguments: [
        (Int64(100_000_000), "100"), (22_500_000, "22.5"), (1, "0.000001"), (-3_250_000, "-3.25"),
        (0, "0"), (-1, "-0.000001"), (1_000_001, "1.000001"), (Int64.min, "-9223372036854.775808"),
    ])
    func formats(_ micro: Int64, _ text: String) {
        #expect(Money.format(micro) == text)
    }

    @Test func roundTripsEveryMicroNearBoundaries() throws {
        for v in Int64(-2_000_100)...Int64(-1_999_900) {
            #expect(try Money.parse(Money.format(v), allowNegative: true) == v)
        }
    }
}

@Suite struct MeterTests {
    let t = Thresholds.default

    @Test func levelsAtBoundaries() {
        #expect(Meter(assigned: 100_000_000, used: 0).level(t) == .ok)
        #expect(Meter(assigned: 100_000_000, used: 75_000_000).level(t) == .ok)           // exactly 25 %
        #expect(Meter(assigned: 100_000_000, used: 75_000_001).level(t) == .low)
        #expect(Meter(assigned: 100_000_000, used: 90_000_000).level(t) == .low)          // exactly 10 %
        #expect(Meter(assigned: 100_000_000, used: 90_000_001).level(t) == .critical)
        #expect(Meter(assigned: 100_000_000, used: 99_999_999).level(t) == .critical)
        #expect(Meter(assigned: 100_000_000, used: 100_000_000).level(t) == .exhausted)
        #expect(Meter(assigned: 100_000_000, used: 130_000_000).level(t) == .exhausted)
        #expect(Meter(assigned: 0, used: 0).level(t) == .exhausted)
    }

    @Test func colors() {
        #expect(Level.ok.color == "primary")
        #expect(Level.low.color == "orange")
        #expect(Level.critical.color == "red")
        #expect(Level.exhausted.color == "red")
        #expect(Level.exhausted > Level.low)
    }

    @Test func displayAndPercent() {
        let m = Meter(assigned: 100_000_000, used: 62_500_000)
        #expect(m.display == "37.5 | 62.5 | 100")
        #expect(m.percentText == "37.5")
        #expect(Meter(assigned: 100_000_000, used: 0).display == "100 | 0 | 100")
        #expect(Meter(assigned: 0, used: 0).percentText == "0")
        #expect(Meter(assigned: 3_000_000, used: 2_000_000).percentText == "33.33")
        #expect(Meter(assigned: 100_000_000, used: 112_250_000).percentText == "-12.25")
        #expect(Meter(assigned: 100_000_000, used: 95_000_000).percentText == "5")
        #expect(Meter(assigned: 100_000_000, used: 99_950_000).percentText == "0.05")
    }
}

@Suite struct ClientRuleTests {
    @Test func goodPassword() {
        #expect(ClientRules.passwordViolations("Secr3t!pw", confirmation: "Secr3t!pw").isEmpty)
    }

    @Test(arguments: [
        ("Sh0rt!", "8 to 20"), ("Waytoolongpassword1!xx", "8 to 20"), ("NoDigits!!", "digit"),
        ("nouppercase1!", "uppercase"), ("NOLOWERCASE1!", "lowercase"), ("NoSpecial123", "special"),
    ])
    func badPasswords(_ pw: String, _ rule: String) {
        let v = ClientRules.passwordViolations(pw, confirmation: pw)
        #expect(v.count == 1)
        #expect(v.first?.rule.contains(rule) == true)
    }

    @Test func mismatchedConfirmation() {
        let v = ClientRules.passwordViolations("Secr3t!pw", confirmation: "Secr3t!pX")
        #expect(v.map(\.field) == ["password_confirmation"])
    }

    @Test func usernamesAndEmails() {
        #expect(ClientRules.usernameViolation("alice") == nil)
        #expect(ClientRules.usernameViolation("al") != nil)
        #expect(ClientRules.usernameViolation("al ice") != nil)
        #expect(ClientRules.usernameViolation("-alice") != nil)
        #expect(ClientRules.emailViolation("a@b.co") == nil)
        #expect(ClientRules.emailViolation("a@b") != nil)
        #expect(ClientRules.emailViolation("a b@c.de") != nil)
        #expect(ClientRules.requiredTextViolation(field: "first_name", "  ") != nil)
    }
}

@Suite struct JSONValueTests {
    @Test func serializesInOrderWithEscapes() {
        let v = JSONValue.object([
            ("b", .string("a\"b\\c\n\u{1}")), ("a", .int(-3)), ("p", .number("37.5")),
            ("l", .array([.bool(true), .null])), ("e", .object([])),
        ])
        #expect(v.serialized() == #"{"b":"a\"b\\c\n\u0001","a":-3,"p":37.5,"l":[true,null],"e":{}}"#)
    }

    @Test func meterFields() {
        let f = JSONValue.object(Meter(assigned: 100_000_000, used: 95_000_000).jsonFields(.default))
        #expect(f.serialized() == #"{"available":"5","used":"95","assigned":"100","percent":5,"level":"critical","color":"red"}"#)
    }
}

@Suite struct CivilTimeTests {
    static let cases: [(Int64, String)] = [
        (0, "1970-01-01T00:00:00Z"), (1_614_265_330, "2021-02-25T15:02:10Z"), (-1, "1969-12-31T23:59:59Z"),
        (951_782_400, "2000-02-29T00:00:00Z"), (4_107_542_399, "2100-02-28T23:59:59Z"), (-86_400 * 366, "1968-12-31T00:00:00Z"),
    ]

    @Test(arguments: cases)
    func formats(_ epoch: Int64, _ text: String) {
        #expect(CivilTime.rfc3339(epoch) == text)
    }

    @Test func cdrLayout() {
        #expect(CivilTime.cdrText(1_706_368_044) == "2024-01-27 15:07:24")
    }
}

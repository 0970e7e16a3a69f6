import Testing
import TestSupport
import Foundation
import MeterCore
import CDRParser
import Rater
@testable import MeterConfig

/// Config loading: defaults, the SPEC example, and every kind of bad key reported with its line.
@Suite struct ConfigTests {
    static let noEnv: [String: String] = [:]

    static func parse(_ text: String, base: String = "/etc/creditmeter",
                      env: [String: String] = noEnv) throws(ConfigError) -> Config {
        try Config.parse(text, file: "test.toml", baseDirectory: base, environment: env)
    }

    /// The issues a text produces (empty when it is valid).
    static func issues(_ text: String) -> [ConfigIssue] {
        do {
            _ = try parse(text)
            return []
        } catch {
            return error.issues
        }
    }

    static func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cmcfg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static let specExample = """
        \(SampleConfig.storeAndAsteriskSource)

        \(SampleConfig.accountsAndDefaultPlan)

        \(SampleConfig.thresholdsDeliveryAndEndpoint)

        [api]
        listen = "127.0.0.1:8787"
        admin_token_file = "/etc/creditmeter/admin.token"

        [authorize]
        deny_disabled = false
        max_call_seconds = 14400

        [retention]
        disabled_days = 90
        """

    @Test func specExampleParses() throws {
        let c = try Self.parse(Self.specExample)
        #expect(c.file == "test.toml")
        #expect(c.store.path == "/var/lib/creditmeter/creditmeter.db")
        #expect(c.sources.count == 1)
        let s = try #require(c.source(named: "asterisk"))
        #expect(s.path == "/var/log/asterisk/cdr-csv/Master.csv")
        #expect(s.format == .asteriskCSV)
        #expect(s.timezone == "local")
        #expect(s.timeZone == TimeZone.current)
        #expect(s.startAt == .end)
        #expect(s.extra == nil && s.columns == nil && s.filter == nil)
        #expect(s.delimiter == UInt8(ascii: ","))
        #expect(c.accounts.field == "accountcode")
        #expect(c.accounts.cdrField == .accountcode)
        #expect(c.plans == [PlanConfig(name: "default", rates: "/etc/creditmeter/rates.csv")])
        #expect(c.plan(named: "default")?.rates == "/etc/creditmeter/rates.csv")
        #expect(c.plan(named: "gold") == nil)
        #expect(c.thresholds == Thresholds(lowPercent: 25, criticalPercent: 10))
        #expect(c.delivery == DeliveryConfig(balanceIntervalSeconds: 10, maxAgeHours: 72))
        let e = try #require(c.endpoints.first)
        #expect(e.name == "management")
        #expect(e.url == "https://console.example.com/api/pbx/events")
        #expect(e.events == ["balance.updated", "credit.*", "client.*"])
        #expect(e.secret == nil)
        #expect(e.secretFile == "/etc/creditmeter/management.secret")
        #expect(e.tokenFile == "/etc/creditmeter/management.token")
        #expect(e.timeoutSeconds == 10)
        #expect(e.wants("credit.low") && e.wants("client.purged") && e.wants("balance.updated"))
        #expect(c.api.listen == "127.0.0.1:8787")
        #expect(c.api.host == "127.0.0.1" && c.api.port == 8787)
        #expect(c.api.adminTokenFile == "/etc/creditmeter/admin.token")
        #expect(c.authorize.denyDisabled == false)
        #expect(c.authorize.maxCallSeconds == 14400)
        #expect(c.authorize.maxConcurrentCalls == nil)
        #expect(c.authorize.reservationSeconds == 14460)
        #expect(c.retention.disabledDays == 90)
    }

    /// The SPEC example with its files next to it (relative paths), loaded from disk with its deck.
    @Test func specExampleFromDiskWithRelativePaths() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = Self.specExample
            .replacingOccurrences(of: "\"/etc/creditmeter/", with: "\"")
            .replacingOccurrences(of: "path = \"/var/lib/creditmeter/creditmeter.db\"", with: "path = \"state/cm.db\"")
        try text.write(toFile: dir + "/creditmeter.toml", atomically: true, encoding: .utf8)
        try "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n1,0.006,0,30,6\n"
            .write(toFile: dir + "/rates.csv", atomically: true, encoding: .utf8)
        try "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n".write(toFile: dir + "/management.secret", atomically: true, encoding: .utf8)

        let c = try Config.load(path: dir + "/creditmeter.toml", environment: Self.noEnv)
        #expect(c.store.path == dir + "/state/cm.db")
        #expect(c.plans.first?.rates == dir + "/rates.csv")
        #expect(c.endpoints.first?.secretFile == dir + "/management.secret")
        #expect(c.endpoints.first?.tokenFile == dir + "/management.token")   // not read, need not exist
        #expect(c.api.adminTokenFile == dir + "/admin.token")
        let decks = try c.loadRateDecks()
        let row = try #require(decks["default"]?.match("+15551234"))
        #expect(Rating.cost(row, billsec: 32).cost == 3600)
    }

    @Test func everyDefault() throws {
        let c = try Self.parse("")
        #expect(c.store.path == "/var/lib/creditmeter/creditmeter.db")
        #expect(c.sources.isEmpty && c.plans.isEmpty && c.endpoints.isEmpty)
        #expect(c.accounts.field == "accountcode")
        #expect(c.thresholds.lowPercent == 25 && c.thresholds.criticalPercent == 10)
        #expect(c.delivery.balanceIntervalSeconds == 10 && c.delivery.maxAgeHours == 72)
        #expect(c.api.listen == "127.0.0.1:8787" && c.api.port == 8787 && c.api.adminTokenFile == nil)
        #expect(c.authorize == AuthorizeConfig(denyDisabled: false, maxCallSeconds: 14400,
                                               maxConcurrentCalls: nil, reservationSeconds: 14460))
        #expect(c.retention.disabledDays == 90)
        #expect(try c.loadRateDecks().isEmpty)
        // The memberwise default agrees with parsing nothing.
        let d = Config(environment: Self.noEnv)
        #expect(d.store == c.store && d.thresholds == c.thresholds && d.api == c.api && d.authorize == c.authorize)
    }

    @Test func sourceDefaults() throws {
        let c = try Self.parse("""
            [[source]]
            name = "fs"
            path = "cdr/Master.csv"
            format = "freeswitch-csv"
            """, base: "/srv/cm")
        let s = try #require(c.sources.first)
        #expect(s.path == "/srv/cm/cdr/Master.csv")
        #expect(s.timezone == "local" && s.startAt == .end && s.delimiter == 0x2C && s.filter == nil)
        #expect(s.parserOptions.format == .freeswitchCSV)
    }

    @Test func stateDirectoryDefault() throws {
        let one = try Self.parse("", env: ["STATE_DIRECTORY": "/var/lib/creditmeter-x"])
        #expect(one.store.path == "/var/lib/creditmeter-x/creditmeter.db")
        let two = try Self.parse("", env: ["STATE_DIRECTORY": "/a/:/b"])
        #expect(two.store.path == "/a/creditmeter.db")
        // An explicit path wins over the environment, and a relative one follows the config file.
        let explicit = try Self.parse("[store]\npath = \"db/x.db\"\n", base: "/etc/cm", env: ["STATE_DIRECTORY": "/s"])
        #expect(explicit.store.path == "/etc/cm/db/x.db")
        let dotted = try Self.parse("[store]\npath = \"../state/x.db\"\n", base: "/etc/cm")
        #expect(dotted.store.path == "/etc/state/x.db")
    }

    @Test func durationsAndAuthorize() throws {
        let c = try Self.parse("""
            [authorize]
            deny_disabled = true
            max_call_seconds = 3600
            max_concurrent_calls = 2
            [delivery]
            balance_interval_seconds = 0
            """)
        #expect(c.authorize.denyDisabled)
        #expect(c.authorize.maxConcurrentCalls == 2)
        #expect(c.authorize.reservationSeconds == 3660)
        #expect(c.delivery.balanceIntervalSeconds == 0)
        let r = try Self.parse("[authorize]\nmax_call_seconds = 600\nreservation_seconds = 900\n")
        #expect(r.authorize.reservationSeconds == 900)
        let short = Self.issues("[authorize]\nmax_call_seconds = 600\nreservation_seconds = 300\n")
        #expect(short.map(\.key) == ["authorize.reservation_seconds"])
        #expect(short.first?.line == 3)
    }

    @Test func hostileLoadLimits() throws {
        let d = try Self.parse("")
        #expect(d.api.readTimeoutSeconds == 10 && d.api.maxConnections == 512)
        #expect(d.authorize.maxHoldsPerClient == 64)
        let c = try Self.parse("""
            [api]
            read_timeout_seconds = 3
            max_connections = 8
            [authorize]
            max_holds_per_client = 5
            """)
        #expect(c.api.readTimeoutSeconds == 3 && c.api.maxConnections == 8)
        #expect(c.authorize.maxHoldsPerClient == 5)
        let bad = Self.issues("""
            [api]
            read_timeout_seconds = 0
            max_connections = 0
            [authorize]
            max_holds_per_client = 0
            """)
        #expect(bad.map(\.key) == ["api.read_timeout_seconds", "api.max_connections", "authorize.max_holds_per_client"])
        #expect(bad.map(\.line) == [2, 3, 5])
    }

    // MARK: unknown keys and lines

    @Test func unknownKeysEverywhereWithLines() {
        let text = """
            verbose = true
            [store]
            path = "x.db"
            size = 3

            [[source]]
            name = "a"
            path = "a.csv"
            format = "asterisk-csv"

            [[source]]
            name = "b"
            path = "b.csv"
            format = "csv"
            columns = ["accountcode", "dst", "billsec"]
            tail = true

            [source.filter]
            dcontext = ["from-internal"]
            context = ["x"]

            [[endpoint]]
            name = "m"
            url = "https://example.com/hook"
            secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            retries = 5

            [api]
            listen = "127.0.0.1:8787"
            [api.tls]
            cert = "x"
            """
        let issues = Self.issues(text)
        let byKey = Dictionary(issues.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byKey["verbose"]?.line == 1)
        #expect(byKey["store.size"]?.line == 4)
        #expect(byKey["source[1].tail"]?.line == 16)
        #expect(byKey["source[1].filter.context"]?.line == 20)
        #expect(byKey["endpoint[0].retries"]?.line == 26)
        #expect(byKey["api.tls"]?.line == 30)
        #expect(issues.count == 6, "\(issues)")
        #expect(byKey["verbose"]?.message.hasPrefix("unknown key \"verbose\"") == true)
        #expect(byKey["source[1].filter.context"]?.message.contains("did you mean \"dcontext\"") == true)
    }

    @Test func unknownKeyInSecondSourceIsNamedSourceOne() {
        let issues = Self.issues("""
            [[source]]
            name = "a"
            path = "a.csv"
            format = "jsonl"
            [[source]]
            name = "b"
            path = "b.csv"
            format = "jsonl"
            fromat = "csv"
            """)
        #expect(issues.count == 1)
        #expect(issues.first?.key == "source[1].fromat")
        #expect(issues.first?.line == 9)
        #expect(issues.first?.message.contains("did you mean \"format\"") == true)
    }

    @Test func inlineTablesAndDottedKeysHaveLines() {
        let issues = Self.issues("""
            [[source]]
            name = "a"
            path = "a.csv"
            format = "asterisk-csv"
            filter = { dcontext = ["x"], bogus = 1 }
            thresholds.low_percent = 200
            """)
        let keys = issues.map(\.key)
        #expect(keys.contains("source[0].filter.bogus"))
        #expect(issues.first { $0.key == "source[0].filter.bogus" }?.line == 5)
        // `thresholds.low_percent` under [[source]] is a key of the source, not the top-level table.
        #expect(issues.first { $0.key == "source[0].thresholds" }?.line == 6)
    }

    @Test func wrongTypesNameTheExpectedType() {
        let issues = Self.issues("""
            [thresholds]
            low_percent = "25"
            critical_percent = 10.5
            [authorize]
            deny_disabled = "no"
            [api]
            listen = 8787
            [[endpoint]]
            name = "m"
            url = "https://x.example"
            events = "credit.*"
            secret_file = "s"
            """)
        let byKey = Dictionary(issues.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byKey["thresholds.low_percent"]?.message == "expected an integer, found a string")
        #expect(byKey["thresholds.low_percent"]?.line == 2)
        #expect(byKey["thresholds.critical_percent"]?.message == "expected an integer, found a floating-point number")
        #expect(byKey["authorize.deny_disabled"]?.message == "expected true or false, found a string")
        #expect(byKey["api.listen"]?.message == "expected a string, found an integer")
        #expect(byKey["endpoint[0].events"]?.message == "expected an array of strings, found a string")
        #expect(byKey["endpoint[0].events"]?.line == 11)
        #expect(issues.count == 5)
    }

    @Test func sectionOfTheWrongShape() {
        let issues = Self.issues("store = \"x\"\nsource = { name = \"a\" }\n[plan]\nname = \"x\"\n")
        let keys = issues.map(\.key)
        #expect(keys == ["store", "source", "plan"])
        #expect(issues[1].message.contains("[[source]]"))
        #expect(issues[2].line == 3)
    }

    @Test func syntaxErrorCarriesTheLine() {
        do {
            _ = try Self.parse("[store]\npath = \"x\"\n\n[api\nlisten = 1\n")
            Issue.record("expected a syntax error")
        } catch {
            #expect(error.issues.count == 1)
            #expect(error.issues.first?.line == 4)
            #expect(error.issues.first?.message.hasPrefix("TOML syntax:") == true)
            #expect(error.description.hasPrefix("test.toml:4: TOML syntax:"))
        }
        // A key given twice is a TOML error too.
        #expect(Self.issues("[api]\nlisten = \"a:1\"\nlisten = \"b:2\"\n").first?.line == 3)
    }

    @Test func allIssuesAreCollectedInFileOrder() throws {
        let issues = Self.issues("""
            [thresholds]
            low_percent = 101
            [[plan]]
            name = "default"
            [[plan]]
            rates = "r.csv"
            [retention]
            disabled_days = 0
            [api]
            listen = "localhost"
            """)
        #expect(issues.map(\.key) == ["thresholds.low_percent", "plan[0].rates", "plan[1].name",
                                      "retention.disabled_days", "api.listen"])
        #expect(issues.map(\.line) == [2, 3, 5, 8, 10])
        #expect(issues[1].message == "is required")
        let error = ConfigError(file: "c.toml", issues: issues)
        let lines = error.description.split(separator: "\n")
        #expect(lines.count == 5)
        #expect(lines[0] == "c.toml:2: thresholds.low_percent: must be from 0 to 100, not 101")
    }

    @Test func duplicateNames() {
        let issues = Self.issues("""
            [[source]]
            name = "pbx"
            path = "a.csv"
            format = "jsonl"
            [[source]]
            name = "pbx"
            path = "b.csv"
            format = "jsonl"
            [[plan]]
            name = "default"
            rates = "a.csv"
            [[plan]]
            name = "default"
            rates = "b.csv"
            [[endpoint]]
            name = "m"
            url = "https://a.example"
            secret_file = "s"
            [[endpoint]]
            name = "m"
            url = "https://b.example"
            secret_file = "s"
            """)
        #expect(issues.map(\.key) == ["source[1].name", "plan[1].name", "endpoint[1].name"])
        #expect(issues.map(\.line) == [6, 13, 20])
        #expect(issues[0].message == "duplicate source name \"pbx\" (also source[0] on line 2)")
    }

    @Test("thresholds bounds", arguments: [
        ("low_percent = 10\ncritical_percent = 20", "thresholds.critical_percent", "must not be above"),
        ("critical_percent = 30", "thresholds.critical_percent", "must not be above low_percent (25)"),
        ("low_percent = 5", "thresholds.low_percent", "must not be above low_percent (5)"),
        ("low_percent = -1", "thresholds.low_percent", "must be from 0 to 100"),
        ("critical_percent = 101", "thresholds.critical_percent", "must be from 0 to 100"),
    ])
    func badThresholds(body: String, key: String, fragment: String) {
        let issues = Self.issues("[thresholds]\n" + body + "\n")
        #expect(issues.count == 1)
        #expect(issues.first?.key == key)
        #expect(issues.first?.message.contains(fragment) == true, "\(issues)")
    }

    @Test func thresholdEdgesAreValid() throws {
        let c = try Self.parse("[thresholds]\nlow_percent = 100\ncritical_percent = 100\n")
        #expect(c.thresholds == Thresholds(lowPercent: 100, criticalPercent: 100))
        let z = try Self.parse("[thresholds]\nlow_percent = 0\ncritical_percent = 0\n")
        #expect(z.thresholds == Thresholds(lowPercent: 0, criticalPercent: 0))
    }

    // MARK: sources

    static func source(_ extra: String, format: String = "asterisk-csv") -> String {
        "[[source]]\nname = \"s\"\npath = \"s.csv\"\nformat = \"\(format)\"\n" + extra + "\n"
    }

    @Test func timezones() throws {
        let utc = try Self.parse(Self.source("timezone = \"UTC\"")).sources[0].timeZone
        #expect(utc.secondsFromGMT(for: Date(timeIntervalSince1970: 1_720_000_000)) == 0)
        #expect(utc.secondsFromGMT(for: Date(timeIntervalSince1970: 1_700_000_000)) == 0)
        let berlin = try Self.parse(Self.source("timezone = \"Europe/Berlin\"")).sources[0]
        #expect(berlin.timeZone.identifier == "Europe/Berlin")
        #expect(berlin.timezone == "Europe/Berlin")
        for bad in ["Europe/Berln", "Mars/Olympus", "CEST", "", "+02:00"] {
            let issues = Self.issues(Self.source("timezone = \"\(bad)\""))
            #expect(issues.map(\.key) == ["source[0].timezone"], "\(bad)")
            #expect(issues.first?.line == 5)
        }
    }

    @Test func formatsAndLayouts() throws {
        let unknown = Self.issues(Self.source("", format: "cdr_csv"))
        #expect(unknown.map(\.key) == ["source[0].format"])
        #expect(unknown.first?.message.contains("asterisk-csv, freeswitch-csv, csv, jsonl") == true)

        let csv = try Self.parse(Self.source("columns = [\"accountcode\", \"\", \"dst\", \"billsec\"]\ndelimiter = \"\\t\"", format: "csv"))
        #expect(csv.sources[0].delimiter == 0x09)
        #expect(csv.sources[0].columns == ["accountcode", "", "dst", "billsec"])

        #expect(Self.issues(Self.source("", format: "csv")).map(\.key) == ["source[0].columns"])
        let badCols = Self.issues(Self.source("columns = [\"dst\", \"billsecs\", \"nope\"]", format: "csv"))
        #expect(badCols.count == 2)
        #expect(badCols.allSatisfy { $0.key == "source[0].columns" && $0.line == 5 })
        // The parser's own rule: rating needs dst and billsec.
        let noDst = Self.issues(Self.source("columns = [\"accountcode\", \"billsec\"]", format: "csv"))
        #expect(noDst.map(\.key) == ["source[0].columns"])
        #expect(noDst.first?.message.contains("dst") == true)

        let ast = try Self.parse(Self.source("extra = [\"loguniqueid\", \"userfield\"]"))
        #expect(ast.sources[0].extra == ["loguniqueid", "userfield"])
        #expect(Self.issues(Self.source("extra = [\"linkedid\", \"bogus\"]")).map(\.key) == ["source[0].extra"])
        #expect(Self.issues(Self.source("extra = [\"uniqueid\"]", format: "jsonl")).map(\.key) == ["source[0].extra"])
        #expect(Self.issues(Self.source("columns = [\"dst\"]")).map(\.key) == ["source[0].columns"])
        #expect(Self.issues(Self.source("delimiter = \";\"")).map(\.key) == ["source[0].delimiter"])
        #expect(Self.issues(Self.source("columns = [\"dst\",\"billsec\"]\ndelimiter = \";;\"", format: "csv")).map(\.key)
            == ["source[0].delimiter"])
        #expect(Self.issues(Self.source("start_at = \"middle\"")).map(\.key) == ["source[0].start_at"])
        #expect(try Self.parse(Self.source("start_at = \"beginning\"")).sources[0].startAt == .beginning)
    }

    @Test func maxLineBytes() throws {
        #expect(try Self.parse(Self.source("")).sources[0].maxLineBytes == 65_536)
        #expect(try Self.parse(Self.source("max_line_bytes = 4096")).sources[0].maxLineBytes == 4096)
        let small = Self.issues(Self.source("max_line_bytes = 100"))
        #expect(small.map(\.key) == ["source[0].max_line_bytes"])
        #expect(small.first?.line == 5)
        #expect(Self.issues(Self.source("max_line_bytes = \"64k\"")).map(\.key) == ["source[0].max_line_bytes"])
    }

    @Test func requiredSourceKeys() {
        let issues = Self.issues("[[source]]\nname = \"x\"\n")
        #expect(issues.map(\.key) == ["source[0].path", "source[0].format"])
        #expect(issues.allSatisfy { $0.line == 1 })
    }

    @Test func filters() throws {
        let c = try Self.parse(Self.source("""
            [source.filter]
            dcontext = ["from-internal", "from-trunk"]
            lastapp = ["Dial"]
            channel = "^(SIP|PJSIP)/"
            """))
        let f = try #require(c.sources[0].filter)
        #expect(f.dcontext == ["from-internal", "from-trunk"])
        #expect(f.channel == "^(SIP|PJSIP)/")
        #expect(f.dstchannel == nil)
        #expect(try c.sources[0].makeFilter() != nil)

        let bad = Self.issues(Self.source("""
            [source.filter]
            dcontext = []
            dstchannel = "PJSIP/(("
            """))
        #expect(bad.map(\.key) == ["source[0].filter.dcontext", "source[0].filter.dstchannel"])
        #expect(bad.map(\.line) == [6, 7])
    }

    // MARK: accounts, endpoints, api

    @Test func accountsField() throws {
        #expect(try Self.parse("[accounts]\nfield = \"userfield\"\n").accounts.cdrField == .userfield)
        #expect(try Self.parse("[accounts]\nfield = \"account_code\"\n").accounts.cdrField == .accountcode)
        let bad = Self.issues("[accounts]\nfield = \"acount\"\n")
        #expect(bad.map(\.key) == ["accounts.field"])
        #expect(bad.first?.line == 2)
    }

    static func endpoint(_ body: String) -> String {
        "[[endpoint]]\nname = \"e\"\nurl = \"https://hooks.example.com/x\"\n" + body + "\n"
    }

    @Test func whsecSecrets() throws {
        let ok = try Self.parse(Self.endpoint("secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\""))
        #expect(ok.endpoints[0].secret == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        #expect(ok.endpoints[0].events == ["*"])
        #expect(ok.endpoints[0].timeoutSeconds == 10)
        #expect(EndpointConfig.decodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?.count == 24)
        // Padding may be left off: 25 bytes encode to 36 characters with one '='.
        let padded = "whsec_" + Data(repeating: 7, count: 25).base64EncodedString()
        #expect(EndpointConfig.decodeSecret(padded)?.count == 25)
        #expect(EndpointConfig.decodeSecret(String(padded.dropLast()))?.count == 25)
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!!MfKQ9r8GKYqrTwjUPD8ILPZIo2",
                    "whsec_c2hvcnQ=", "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"] {
            let issues = Self.issues(Self.endpoint("secret = \"\(bad)\""))
            #expect(issues.map(\.key) == ["endpoint[0].secret"], "\(bad)")
            #expect(issues.first?.line == 4)
        }
        let both = Self.issues(Self.endpoint("secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nsecret_file = \"s\""))
        #expect(both.map(\.key) == ["endpoint[0].secret_file"])
        let neither = Self.issues(Self.endpoint(""))
        #expect(neither.map(\.key) == ["endpoint[0]"])
        #expect(neither.first?.line == 1)
    }

    @Test func endpointURLsEventsAndTimeouts() {
        func keys(_ body: String, url: String = "https://hooks.example.com/x") -> [String] {
            Self.issues("[[endpoint]]\nname = \"e\"\nurl = \"\(url)\"\nsecret_file = \"s\"\n" + body + "\n").map(\.key)
        }
        #expect(keys("").isEmpty)
        #expect(keys("", url: "http://127.0.0.1:9000/hook").isEmpty)
        #expect(keys("", url: "ftp://example.com/x") == ["endpoint[0].url"])
        #expect(keys("", url: "console.example.com/x") == ["endpoint[0].url"])
        #expect(keys("", url: "https://user:pw@example.com/") == ["endpoint[0].url"])
        #expect(keys("events = [\"credit.*\", \"client.recharged\", \"*\"]").isEmpty)
        #expect(keys("events = [\"credit.lo\"]") == ["endpoint[0].events"])
        #expect(keys("events = [\"billing.*\"]") == ["endpoint[0].events"])
        #expect(keys("events = []") == ["endpoint[0].events"])
        #expect(keys("timeout_seconds = 0") == ["endpoint[0].timeout_seconds"])
        #expect(Self.issues("[[endpoint]]\nsecret_file = \"s\"\n").map(\.key) == ["endpoint[0].name", "endpoint[0].url"])
    }

    @Test func eventPatterns() {
        let e = EndpointConfig(name: "x", url: "https://x", events: ["credit.*", "client.recharged"])
        #expect(e.wants("credit.exhausted"))
        #expect(e.wants("client.recharged"))
        #expect(!e.wants("client.created"))
        #expect(!e.wants("balance.updated"))
        #expect(!EndpointConfig.pattern("credit.*", matches: "creditx.low"))
    }

    @Test func apiListen() throws {
        let v6 = try Self.parse("[api]\nlisten = \"[::1]:9000\"\n")
        #expect(v6.api.host == "::1" && v6.api.port == 9000)
        let any = try Self.parse("[api]\nlisten = \"0.0.0.0:80\"\n")
        #expect(any.api.host == "0.0.0.0" && any.api.port == 80)
        #expect(try Self.parse("[api]\nlisten = \"localhost:8787\"\n").api.host == "localhost")
        for bad in ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":8787", "127.0.0.1:http", "[::1]8787", "a b:1"] {
            #expect(Self.issues("[api]\nlisten = \"\(bad)\"\n").map(\.key) == ["api.listen"], "\(bad)")
        }
    }

    // MARK: files

    @Test func missingConfigFileNamesIt() {
        do {
            _ = try Config.load(path: "/nonexistent/creditmeter.toml")
            Issue.record("expected an error")
        } catch {
            #expect(error.file == "/nonexistent/creditmeter.toml")
            #expect(error.description == "/nonexistent/creditmeter.toml: cannot read the config file: no such file")
        }
    }

    @Test func rateDeckErrorsNamePlanKeyAndDeckLine() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            [[plan]]
            name = "good"
            rates = "good.csv"

            [[plan]]
            name = "bad"
            rates = "bad.csv"

            [[plan]]
            name = "gone"
            rates = "missing.csv"
            """.write(toFile: dir + "/c.toml", atomically: true, encoding: .utf8)
        let header = "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n"
        try (header + "1,0.01,0,1,1\n").write(toFile: dir + "/good.csv", atomically: true, encoding: .utf8)
        try (header + "1,0.01,0,1,1\n2,0.0000001,0,1,1\n").write(toFile: dir + "/bad.csv", atomically: true, encoding: .utf8)
        let c = try Config.load(path: dir + "/c.toml")
        do {
            _ = try c.loadRateDecks()
            Issue.record("expected deck errors")
        } catch {
            #expect(error.issues.map(\.key) == ["plan[1].rates", "plan[2].rates"])
            #expect(error.issues.map(\.line) == [7, 11])
            #expect(error.issues[0].message == "\(dir)/bad.csv:3: column rate_per_minute: has more than 6 fractional digits")
            #expect(error.issues[1].message.hasPrefix("\(dir)/missing.csv: cannot open"))
            #expect(error.description.hasPrefix("\(dir)/c.toml:7: plan[1].rates: \(dir)/bad.csv:3:"))
        }
    }
}

import CDRParser
import Foundation
import MeterConfig
import MeterCore
import Testing
import TestSupport

extension Fuzz {
    /// The config loader, fed mutated and randomly assembled TOML: a `Config` or a `ConfigError` whose
    /// issues each have a message (and a line inside the file when one is given), never a crash; and
    /// what it accepts keeps the loader's promises (every source's parser and filter can be built).
    @Suite struct ConfigFuzzTests {
        static let defaultCount = 500

        static let full = """
            \(SampleConfig.storeAndAsteriskSource)
            extra = ["uniqueid", "userfield", "peeraccount", "linkedid", "sequence"]

            [source.filter]
            dcontext = ["from-internal", "outbound"]
            lastapp = ["Dial"]
            channel = '^(PJSIP|SIP)/'

            [[source]]
            name = "fs"
            path = "fs/Master.csv"
            format = "freeswitch-csv"
            timezone = "Europe/Berlin"
            columns = ["caller_id_name", "src", "dst", "", "start", "answer", "end", "duration", "billmsec", "-", "uuid"]

            [[source]]
            name = "custom"
            path = "cdr-custom/Master.csv"
            format = "csv"
            delimiter = "|"
            columns = ["clid", "src", "dst", "billsec", "disposition", "accountcode"]
            timezone = "UTC"
            start_at = "beginning"

            [[source]]
            name = "json"
            path = "/var/log/cdr.jsonl"
            format = "jsonl"

            \(SampleConfig.accountsAndDefaultPlan)

            [[plan]]
            name = "gold"
            rates = 'rates/gold.csv'

            \(SampleConfig.thresholdsDeliveryAndEndpoint)

            [[endpoint]]
            name = "local"
            url = "http://127.0.0.1:8080/"
            secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            events = ["*"]

            [api]
            listen = "[::1]:8787"
            admin_token_file = "/etc/creditmeter/admin.token"

            [authorize]
            deny_disabled = false
            max_call_seconds = 14400
            max_concurrent_calls = 4
            reservation_seconds = 14500

            [retention]
            disabled_days = 90

            """

        static let corpus: [String] = [full, Corpus.text("samples/creditmeter.toml"), "", "[store]\n"]

        /// TOML values of every type, and malformed ones.
        static let values: [String] = [
            "1", "0", "-1", "65536", "9223372036854775807", "-9223372036854775808", "99999999999999999999", "0x7fff",
            "0o17", "0b1", "1_000", "1.5", "-0.0", "nan", "inf", "-inf", "1e400", "true", "false", "\"\"", "''",
            "\"x\"", "\"local\"", "\"UTC\"", "\"Mars/Olympus\"", "\"Etc/GMT+14\"", "\"GMT\"", "\"beginning\"", "\"end\"",
            "\"asterisk-csv\"", "\"freeswitch-csv\"", "\"csv\"", "\"jsonl\"", "\"\\t\"", "\"|\"", "\";\"", "\"\\\"\"",
            "\"\\u00e9\"", "\"é\"", "\"\\n\"", "\"a\\\\b\"", "\"\"\"\nmulti\nline\"\"\"", "'''\nlit\n'''", "[]",
            "[\"dst\", \"billsec\"]", "[\"dst\", \"billsec\", \"dst\"]", "[\"\", \"-\", \"dst\", \"billmsec\"]", "[1, \"a\"]",
            "[[1], [2]]", "{}", "{ a = 1, b = { c = [1, { d = 2 }] } }", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00",
            "\"whsec_\"", "\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"", "\"https://user:pw@host/\"", "\"ftp://x/\"",
            "\"http://\"", "\"127.0.0.1:0\"", "\"[::1]:65535\"", "\"host:99999\"", "\"[(]\"", "\"(?<\"", "\"credit.*\"",
            "[\"nothing.*\"]", "[\"uniqueid\", \"uniqueid\"]", "[\"bogus\"]", "\"account_code\"", "\"userfield\"",
            "\"/\"", "\"../../etc/passwd\"", "\"\\u0000\"", "\"\\uD800\"", "\"unterminated", "[1, 2", "{ a = 1",
            "1979-05-27 07:32:00", "1979-05-27 07:32", "1979-05-27 7", "1979-02-30", "07:32", "24:00:00",
            "1979-05-27T07:32:00.999999+25:00", "0x", "0b2", "+inf", "-nan", "1e", "1__0", "_1", "0.", ".1", "+",
            "[}", "{,}", "[,]", "{ a = 1, }", "'''", "\"\"\"", "\"\\x41\"", "\"\\U0010FFFF\"", "\"\\U00110000\"",
        ]

        static let keys: [String] = [
            "name", "path", "format", "timezone", "start_at", "extra", "columns", "delimiter", "filter", "field", "rates",
            "low_percent", "critical_percent", "balance_interval_seconds", "max_age_hours", "url", "events", "secret",
            "secret_file", "token_file", "timeout_seconds", "listen", "admin_token_file", "deny_disabled",
            "max_call_seconds", "max_concurrent_calls", "reservation_seconds", "disabled_days", "dcontext", "lastapp",
            "channel", "dstchannel", "nmae", "paths", "\"quoted key\"", "\"\"", "\"k\\u0000\"", "a.b.c", "'lit'", "ключ", "store",
        ]

        static let headers: [String] = [
            "[store]", "[[source]]", "[source]", "[source.filter]", "[[source.filter]]", "[accounts]", "[[plan]]",
            "[plan]", "[thresholds]", "[delivery]", "[[endpoint]]", "[api]", "[authorize]", "[retention]", "[bogus]",
            "[store.path]", "[a.b.c]", "[[a.b]]", "[\"quoted\"]", "[ store ]", "[[", "[]",
        ]

        @Test func configLoader() {
            let report = fuzz("config", count: Self.defaultCount, generate: { rng, _ in
                Self.input(&rng)
            }, check: { Self.check(String(decoding: $0, as: UTF8.self)) })
            #expect(report.violations.isEmpty)
            #expect(report.accepted > report.cases / 50 && report.rejected > report.cases / 5)
        }

        static func input(_ rng: inout FuzzRNG) -> [UInt8] {
            var lines = rng.pick(corpus).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let allLines = corpus.flatMap { $0.split(separator: "\n").map(String.init) }
            var m = Mutator(rng: FuzzRNG(seed: rng.next()), corpus: allLines.map { Array($0.utf8) }, delimiter: UInt8(ascii: "="))
            for _ in 0..<rng.int(1...4) {
                let i = rng.below(lines.count + 1)
                switch rng.below(12) {
                case 0..<3:  // a key's value of another type, or malformed
                    let assigned = lines.indices.filter { lines[$0].contains("=") }
                    if let k = assigned.isEmpty ? nil : rng.pick(assigned), let eq = lines[k].firstIndex(of: "=") {
                        lines[k] = String(lines[k][...eq]) + " " + rng.pick(values)
                    }
                case 3:  // a key that is known somewhere, unknown here, or a typo
                    lines.insert("\(rng.pick(keys)) = \(rng.pick(values))", at: i)
                case 4:  // a table header
                    lines.insert(rng.pick(headers), at: i)
                case 5:  // a line removed or repeated (duplicate keys and tables)
                    if !lines.isEmpty {
                        let k = rng.below(lines.count)
                        if rng.chance(50) { lines.remove(at: k) } else { lines.insert(lines[k], at: i) }
                    }
                case 6:  // deep arrays and inline tables
                    let n = rng.pick([1, 10, 100, 300, 1_000, 5_000])
                    let open = rng.chance(50) ? "[" : "{ a = "
                    let close = open == "[" ? "]" : "}"
                    lines.insert("\(rng.pick(keys)) = " + String(repeating: open, count: n) + "1"
                                 + String(repeating: close, count: rng.chance(80) ? n : rng.below(n + 1)), at: i)
                case 7:  // a huge value
                    lines.insert("\(rng.pick(keys)) = \"" + String(repeating: "x", count: rng.pick([100, 10_000, 200_000])) + "\"", at: i)
                default:  // byte-level damage to one line
                    if !lines.isEmpty {
                        let k = rng.below(lines.count)
                        lines[k] = String(decoding: m.mutate(Array(lines[k].utf8)), as: UTF8.self)
                    }
                }
            }
            return Array(lines.joined(separator: "\n").utf8)
        }

        static func parse(_ text: String) -> Result<Config, ConfigError> {
            do {
                return .success(try Config.parse(text, file: "fuzz.toml", baseDirectory: "/etc/creditmeter", environment: [:]))
            } catch {
                return .failure(error)
            }
        }

        static func check(_ text: String) -> FuzzOutcome {
            // By bytes: as Characters, "\r\n" is one grapheme that is not "\n".
            let lineCount = text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).count
            switch parse(text) {
            case .failure(let error):
                guard !error.issues.isEmpty else { return .violation("a ConfigError with no issues") }
                for issue in error.issues {
                    guard !issue.message.isEmpty else { return .violation("an issue without a message: \(issue.key)") }
                    if let l = issue.line, !(1...lineCount + 1).contains(l) {
                        return .violation("issue \(issue) points at line \(l) of \(lineCount)")
                    }
                }
                guard case .failure(let again) = parse(text), again.issues == error.issues else {
                    return .violation("the same text is judged differently twice")
                }
                return .rejected
            case .success(let config):
                return promises(config)
            }
        }

        /// What a config that passed validation guarantees to the code that uses it.
        static func promises(_ c: Config) -> FuzzOutcome {
            var names = Set<String>()
            for s in c.sources {
                guard !s.name.isEmpty, names.insert(s.name).inserted else { return .violation("source name \"\(s.name)\" empty or twice") }
                guard !s.path.isEmpty else { return .violation("source \(s.name) has an empty path") }
                do { _ = try CDRParser(s.parserOptions) } catch {
                    return .violation("accepted source \(s.name) cannot build its parser: \(error)")
                }
                do { _ = try s.makeFilter() } catch {
                    return .violation("accepted source \(s.name) cannot build its filter: \(error)")
                }
            }
            names = []
            for p in c.plans {
                guard !p.name.isEmpty, names.insert(p.name).inserted, p.rates.hasPrefix("/") else {
                    return .violation("plan \(p.name) empty, twice or with a relative deck path \(p.rates)")
                }
            }
            names = []
            for e in c.endpoints {
                guard !e.name.isEmpty, names.insert(e.name).inserted else { return .violation("endpoint \(e.name) empty or twice") }
                guard (1...300).contains(e.timeoutSeconds), !e.events.isEmpty else { return .violation("endpoint \(e.name) timeout/events") }
                if let s = e.secret, EndpointConfig.decodeSecret(s) == nil { return .violation("endpoint \(e.name): bad secret accepted") }
                guard (e.secret == nil) != (e.secretFile == nil) else { return .violation("endpoint \(e.name): secret and secret_file") }
            }
            guard c.thresholds.criticalPercent <= c.thresholds.lowPercent,
                  (0...100).contains(c.thresholds.criticalPercent), (0...100).contains(c.thresholds.lowPercent) else {
                return .violation("thresholds \(c.thresholds)")
            }
            guard (1...65535).contains(c.api.port), !c.api.host.isEmpty else { return .violation("api \(c.api)") }
            guard c.authorize.reservationSeconds >= c.authorize.maxCallSeconds, c.authorize.maxCallSeconds >= 1 else {
                return .violation("authorize \(c.authorize)")
            }
            guard c.retention.disabledDays >= 1, c.delivery.maxAgeHours >= 1, c.delivery.balanceIntervalSeconds >= 0 else {
                return .violation("retention/delivery out of range")
            }
            return .accepted
        }

        @Test(arguments: RegressionCases.configs)
        func regression(_ c: RegressionCases.Blob) {
            let outcome = Self.check(c.text)
            if case .violation(let m) = outcome { Issue.record("\(c.note): \(m)") }
            if let expected = c.expect { #expect(outcome == expected, "\(c.note)") }
        }
    }
}

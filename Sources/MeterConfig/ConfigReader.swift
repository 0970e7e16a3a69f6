import Foundation
import MeterCore
import CDRParser
import TOMLKit

/// Turns TOML text into a `Config`, collecting every issue instead of stopping at the first.
struct ConfigReader {
    let text: String
    let file: String
    let baseDirectory: String
    let environment: [String: String]
    var lines = KeyLines()
    var issues: [ConfigIssue] = []

    init(text: String, file: String, baseDirectory: String, environment: [String: String]) {
        self.text = text
        self.file = file
        self.baseDirectory = baseDirectory
        self.environment = environment
    }

    static let topKeys = ["store", "node", "source", "accounts", "plan", "thresholds", "delivery", "endpoint",
                          "api", "authorize", "retention", "rating", "console"]

    mutating func read() throws(ConfigError) -> Config {
        // Text that TOMLKit would crash on rather than report (see KeyLines.refusal).
        let scanned = KeyLines(scanning: text)
        if let r = scanned.refusal {
            throw ConfigError(file: file, issues: [ConfigIssue(key: "", line: r.line, message: r.message)])
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(file: file, issues: [ConfigIssue(key: "", line: error.source.begin.line,
                                                               message: "TOML syntax: \(error.description)")])
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(key: "", line: nil, message: "TOML syntax: \(error)")])
        }
        lines = scanned
        var config = Config(file: file, environment: environment)
        config.keyLines = lines

        checkKeys(root, path: "", allowed: Self.topKeys)
        // In this order: a section may read what an earlier one set.
        typealias One = (inout ConfigReader, TOMLTable, inout Config) -> Void
        typealias Many = (inout ConfigReader, [TOMLTable], inout Config) -> Void
        let sections: [(String, One?, Many?)] = [
            ("store", { $0.readStore($1, into: &$2) }, nil), ("node", { $0.readNode($1, into: &$2) }, nil),
            ("source", nil, { $0.readSources($1, into: &$2) }),
            ("accounts", { $0.readAccounts($1, into: &$2) }, nil), ("plan", nil, { $0.readPlans($1, into: &$2) }),
            ("thresholds", { $0.readThresholds($1, into: &$2) }, nil), ("delivery", { $0.readDelivery($1, into: &$2) }, nil),
            ("endpoint", nil, { $0.readEndpoints($1, into: &$2) }), ("api", { $0.readAPI($1, into: &$2) }, nil),
            ("authorize", { $0.readAuthorize($1, into: &$2) }, nil), ("retention", { $0.readRetention($1, into: &$2) }, nil),
            ("rating", { $0.readRating($1, into: &$2) }, nil), ("console", { $0.readConsole($1, into: &$2) }, nil),
        ]
        for (name, one, many) in sections {
            if let one, let t = table(root, name, path: "") { one(&self, t, &config) }
            if let many, let ts = tables(root, name, path: "") { many(&self, ts, &config) }
        }

        if !issues.isEmpty {
            // Report in file order; issues without a line (rare) go last.
            let ordered = issues.enumerated().sorted { a, b in
                let la = a.element.line ?? Int.max, lb = b.element.line ?? Int.max
                return la != lb ? la < lb : a.offset < b.offset
            }.map(\.element)
            throw ConfigError(file: file, issues: ordered)
        }
        return config
    }

    // MARK: sections

    mutating func readStore(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "store", allowed: ["path", "url", "password_file"])
        if let p = path(t, "path", in: "store") { c.store.path = p }
        if let u = string(t, "url", in: "store") {
            if t["path"] != nil {
                issue("store.url", "give either path (SQLite) or url (PostgreSQL), not both")
            } else if let problem = StoreConfig.urlProblem(u) {
                issue("store.url", problem)
            } else {
                c.store.url = u
            }
        }
        if let f = path(t, "password_file", in: "store") {
            if t["url"] == nil { issue("store.password_file", "is only read with url (a PostgreSQL store)") }
            c.store.passwordFile = f
        }
    }

    mutating func readNode(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "node", allowed: ["name"])
        if let n = string(t, "name", in: "node") {
            if let problem = NodeConfig.nameProblem(n) { issue("node.name", problem) } else { c.node.name = n }
        }
    }

    mutating func readSources(_ ts: [TOMLTable], into c: inout Config) {
        var seen: [String: Int] = [:]
        for (n, t) in ts.enumerated() {
            let at = "source[\(n)]"
            if t["receive"] != nil {
                readReceiver(t, at: at, seen: &seen, into: &c)
                continue
            }
            checkKeys(t, path: at, allowed: ["name", "path", "format", "timezone", "start_at", "extra", "columns",
                                             "delimiter", "filter", "max_line_bytes"])
            let name = requiredName(t, in: at, seen: &seen, kind: "source")
            let filePath = path(t, "path", in: at, required: true)
            var format: CDRFormat?
            if let f = string(t, "format", in: at, required: true) {
                format = CDRFormat(rawValue: f)
                if format == nil {
                    issue("\(at).format", "unknown format \"\(f)\" (expected one of \(CDRFormat.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
            }
            let (zoneName, zone) = timeZone(t, in: at)
            var startAt = StartAt.end
            if let s = string(t, "start_at", in: at) {
                if let v = StartAt(rawValue: s) { startAt = v } else {
                    issue("\(at).start_at", "must be \"beginning\" or \"end\", not \"\(s)\"")
                }
            }
            let extra = stringArray(t, "extra", in: at)
            let columns = stringArray(t, "columns", in: at)
            var delimiter = UInt8(ascii: ",")
            let delimiterGiven = t["delimiter"] != nil
            if let d = string(t, "delimiter", in: at) {
                let bytes = Array(d.utf8)
                if bytes.count != 1 || bytes[0] >= 0x80 {
                    issue("\(at).delimiter", "must be one ASCII character such as \",\", \";\", \"|\" or \"\\t\"")
                } else if [UInt8(ascii: "\""), 0x0A, 0x0D].contains(bytes[0]) {
                    issue("\(at).delimiter", "cannot be a quote or a line break")
                } else {
                    delimiter = bytes[0]
                }
            }
            // At least the 4 KiB a cut line keeps; at most 1 GiB, which is already no bound at all.
            let maxLineBytes = int(t, "max_line_bytes", in: at, range: 4096...(1 << 30)).map(Int.init)
                ?? SourceConfig.defaultMaxLineBytes
            var filter: FilterConfig?
            if let ft = table(t, "filter", path: at) {
                filter = readFilter(ft, at: "\(at).filter")
            }
            if format == .freeswitchJSON {
                issue("\(at).format", "freeswitch-json documents are posted, not appended to a file: "
                    + "use receive = \"http\" (or `creditmeter replay --format freeswitch-json` for err-log-dir files)")
            } else if let format {
                let before = issues.count
                checkLayout(format: format, extra: extra, columns: columns, delimiterGiven: delimiterGiven, at: at)
                // The parser is the authority on layouts (it also insists that dst and billsec are
                // mapped); ask it only when the finer checks above, which report every bad item, passed.
                if issues.count == before {
                    do {
                        _ = try CDRParser(ParserOptions(format: format, extra: extra, columns: columns,
                                                        delimiter: delimiter, timeZone: zone))
                    } catch {
                        parserIssue(error, at: at)
                    }
                }
            }
            if let name, let filePath, let format {
                c.sources.append(SourceConfig(name: name, path: filePath, format: format, timezone: zoneName,
                                              timeZone: zone, startAt: startAt, extra: extra, columns: columns,
                                              delimiter: delimiter, filter: filter, maxLineBytes: maxLineBytes))
            }
        }
    }

    /// A `[[source]]` with `receive`: only `"http"` is known; it takes a token file instead of a path.
    mutating func readReceiver(_ t: TOMLTable, at: String, seen: inout [String: Int], into c: inout Config) {
        checkKeys(t, path: at, allowed: ["name", "receive", "format", "token_file", "timezone", "charge_b_legs"])
        let name = requiredName(t, in: at, seen: &seen, kind: "source")
        if let r = string(t, "receive", in: at), r != "http" {
            issue("\(at).receive", "must be \"http\" (CDRs posted to POST /v1/cdr/NAME), not \"\(r)\"; "
                + "for a file, remove `receive` and set `path`")
        }
        var format: CDRFormat?
        if let f = string(t, "format", in: at, required: true) {
            if let v = CDRFormat(rawValue: f), v == .freeswitchJSON || v == .jsonl {
                format = v
            } else {
                issue("\(at).format", "a receive = \"http\" source takes \"freeswitch-json\" or \"jsonl\", not \"\(f)\"")
            }
        }
        let tokenFile = path(t, "token_file", in: at, required: true)
        let (zoneName, zone) = timeZone(t, in: at)
        let chargeBLegs = bool(t, "charge_b_legs", in: at) ?? false
        if let name, let format, let tokenFile {
            c.receivers.append(ReceiverConfig(name: name, format: format, tokenFile: tokenFile, timezone: zoneName,
                                              timeZone: zone, chargeBLegs: chargeBLegs))
        }
    }

    /// Files a parser/filter refusal under the key it concerns; its text starts with that key, dropped here.
    mutating func parserIssue(_ error: ParserConfigError, at: String) {
        let key: String
        switch error {
        case .unknownColumn, .duplicateColumn, .columnsRequired, .columnsNotAllowed, .missingColumn: key = "columns"
        case .badExtra, .duplicateExtra, .extraNotAllowed: key = "extra"
        case .badDelimiter: key = "delimiter"
        case .badRegex(let k, _, _), .emptyFilterList(let k): key = "filter." + k
        @unknown default: key = ""
        }
        var message = error.description
        if let colon = message.range(of: ": ") { message = String(message[colon.upperBound...]) }
        issue(key.isEmpty ? at : "\(at).\(key)", message)
    }

    /// The table's `timezone` key: its text and the zone, `local` when absent (and when unknown, after an issue).
    mutating func timeZone(_ t: TOMLTable, in at: String) -> (String, TimeZone) {
        guard let z = string(t, "timezone", in: at) else { return ("local", TimeZone.current) }
        guard let tz = Self.timeZone(z) else {
            issue("\(at).timezone", "unknown time zone \"\(z)\" (expected local, UTC or an IANA name such as Europe/Berlin)")
            return (z, TimeZone.current)
        }
        return (z, tz)
    }

    static func timeZone(_ name: String) -> TimeZone? {
        switch name {
        case "local": return TimeZone.current
        case "UTC", "utc": return TimeZone(identifier: "UTC")
        default:
            // Foundation also accepts abbreviations ("EST"), whose meaning is ambiguous; insist on
            // a Region/City name so a typo cannot silently pick a different zone.
            guard name.contains("/") || name.hasPrefix("Etc") || name == "GMT" else { return nil }
            return TimeZone(identifier: name)
        }
    }

    mutating func readFilter(_ t: TOMLTable, at: String) -> FilterConfig {
        checkKeys(t, path: at, allowed: ["dcontext", "lastapp", "channel", "dstchannel"])
        let f = FilterConfig(dcontext: stringArray(t, "dcontext", in: at), lastapp: stringArray(t, "lastapp", in: at),
                             channel: string(t, "channel", in: at), dstchannel: string(t, "dstchannel", in: at))
        for (key, list) in [("dcontext", f.dcontext), ("lastapp", f.lastapp)] {
            if let list, list.isEmpty {
                issue("\(at).\(key)", "the list is empty, which would reject every CDR; remove the key to accept all")
            }
        }
        // Built here only to validate, with exactly the regex dialect the parser will use; an empty
        // list was reported above, so it is left out to let a bad regex be reported as well.
        do {
            _ = try CDRFilter(dcontext: f.dcontext?.isEmpty == true ? nil : f.dcontext,
                              lastapp: f.lastapp?.isEmpty == true ? nil : f.lastapp,
                              channel: f.channel, dstchannel: f.dstchannel)
        } catch {
            parserIssue(error, at: String(at.dropLast(".filter".count)))
        }
        return f
    }

    /// Which layout keys each format takes (SPEC section 7).
    mutating func checkLayout(format: CDRFormat, extra: [String]?, columns: [String]?, delimiterGiven: Bool, at: String) {
        if extra != nil, format != .asteriskCSV {
            issue("\(at).extra", "only the asterisk-csv format takes `extra` (use `columns` for \(format.rawValue))")
        }
        if let extra, format == .asteriskCSV {
            let allowed = ["uniqueid", "userfield", "peeraccount", "linkedid", "sequence"]
            var seen = Set<String>()
            for e in extra {
                let canon = CDRField.named(e)?.rawValue ?? e
                if !allowed.contains(canon) {
                    issue("\(at).extra", "\"\(e)\" is not an optional cdr_csv column (expected \(allowed.joined(separator: ", ")))")
                } else if !seen.insert(canon).inserted {
                    issue("\(at).extra", "\"\(e)\" is listed twice")
                }
            }
        }
        if columns != nil, format == .asteriskCSV || format == .jsonl {
            issue("\(at).columns", format == .jsonl
                ? "the jsonl format names its fields in each object; remove `columns`"
                : "the asterisk-csv format has a fixed layout; use `extra` for its optional columns")
        }
        if columns == nil, format == .csv {
            issue("\(at).columns", "the csv format needs `columns = [...]` naming each column's field")
        }
        if let columns, format == .csv || format == .freeswitchCSV {
            var seen = Set<CDRField>()
            for name in columns where !(name.isEmpty || name == "-") {
                if let f = CDRField.named(name) {
                    if !seen.insert(f).inserted { issue("\(at).columns", "field \"\(name)\" is mapped twice") }
                } else {
                    issue("\(at).columns", "unknown field name \"\(name)\" (use a name such as accountcode, src, dst, billsec, or \"\" to ignore the column)")
                }
            }
        }
        if delimiterGiven, format != .csv {
            issue("\(at).delimiter", "only the csv format takes a delimiter (\(format.rawValue) is always comma-separated)")
        }
    }

    mutating func readAccounts(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "accounts", allowed: ["field"])
        if let f = string(t, "field", in: "accounts") {
            if let field = CDRField.named(f) {
                c.accounts = AccountsConfig(field: f, cdrField: field)
            } else {
                issue("accounts.field", "unknown CDR field \"\(f)\" (such as accountcode, userfield, peeraccount, src)")
            }
        }
    }

    mutating func readPlans(_ ts: [TOMLTable], into c: inout Config) {
        var seen: [String: Int] = [:]
        for (n, t) in ts.enumerated() {
            let at = "plan[\(n)]"
            checkKeys(t, path: at, allowed: ["name", "rates", "timezone", "split"])
            let name = requiredName(t, in: at, seen: &seen, kind: "plan")
            let rates = path(t, "rates", in: at, required: true)
            let (zoneName, zone) = timeZone(t, in: at)
            let split = bool(t, "split", in: at) ?? false
            if let name, let rates {
                c.plans.append(PlanConfig(name: name, rates: rates, timezone: zoneName, timeZone: zone, split: split))
            }
        }
    }

    mutating func readThresholds(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "thresholds", allowed: ["low_percent", "critical_percent"])
        let low = int(t, "low_percent", in: "thresholds", range: 0 ... 100)
        let critical = int(t, "critical_percent", in: "thresholds", range: 0 ... 100)
        let l = low ?? c.thresholds.lowPercent
        let cr = critical ?? c.thresholds.criticalPercent
        if cr > l {
            let key = critical != nil ? "thresholds.critical_percent" : "thresholds.low_percent"
            issue(key, "critical_percent (\(cr)) must not be above low_percent (\(l))")
        }
        c.thresholds = Thresholds(lowPercent: l, criticalPercent: cr)
    }

    mutating func readDelivery(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "delivery", allowed: ["balance_interval_seconds", "max_age_hours"])
        if let v = int(t, "balance_interval_seconds", in: "delivery", range: 0 ... 86_400) {
            c.delivery.balanceIntervalSeconds = v
        }
        if let v = int(t, "max_age_hours", in: "delivery", range: 1 ... 24 * 365) { c.delivery.maxAgeHours = v }
    }

    mutating func readEndpoints(_ ts: [TOMLTable], into c: inout Config) {
        var seen: [String: Int] = [:]
        for (n, t) in ts.enumerated() {
            let at = "endpoint[\(n)]"
            checkKeys(t, path: at, allowed: ["name", "url", "events", "secret", "secret_file", "token_file",
                                             "timeout_seconds"])
            let name = requiredName(t, in: at, seen: &seen, kind: "endpoint")
            let url = string(t, "url", in: at, required: true)
            if let url, let problem = Self.urlProblem(url) { issue("\(at).url", problem) }
            var events = ["*"]
            if let list = stringArray(t, "events", in: at) {
                events = list
                if list.isEmpty { issue("\(at).events", "the list is empty, so nothing would be sent (remove the key for all events)") }
                for p in list where !Self.validPattern(p) {
                    issue("\(at).events", "\"\(p)\" matches no event (use a type such as credit.low, a family such as credit.* or client.*, or *)")
                }
            }
            let secret = string(t, "secret", in: at)
            if let secret, EndpointConfig.decodeSecret(secret) == nil {
                issue("\(at).secret", "must be \"whsec_\" followed by the base64 of a 24 to 64 byte key")
            }
            let secretFile = path(t, "secret_file", in: at)
            if t["secret"] != nil && t["secret_file"] != nil {
                issue("\(at).secret_file", "give either secret or secret_file, not both")
            } else if t["secret"] == nil && t["secret_file"] == nil {
                issue(at, "needs a signing secret: secret = \"whsec_…\" or secret_file = \"PATH\"")
            }
            let tokenFile = path(t, "token_file", in: at)
            let timeout = int(t, "timeout_seconds", in: at, range: 1 ... 300) ?? 10
            if let name, let url {
                c.endpoints.append(EndpointConfig(name: name, url: url, events: events, secret: secret,
                                                  secretFile: secretFile, tokenFile: tokenFile, timeoutSeconds: timeout))
            }
        }
    }

    static func urlProblem(_ url: String) -> String? {
        guard let comps = URLComponents(string: url), let scheme = comps.scheme?.lowercased() else {
            return "\"\(url)\" is not a URL"
        }
        guard scheme == "http" || scheme == "https" else { return "must be an http:// or https:// URL, not \(scheme)://" }
        guard let host = comps.host, !host.isEmpty else { return "\"\(url)\" has no host" }
        if comps.user != nil || comps.password != nil {
            return "must not carry credentials (use token_file for a bearer token)"
        }
        return nil
    }

    static func validPattern(_ p: String) -> Bool {
        if p == "*" { return true }
        if p.hasSuffix(".*") {
            let family = p.dropLast(1)
            return EndpointConfig.eventTypes.contains { $0.hasPrefix(family) }
        }
        return EndpointConfig.eventTypes.contains(p)
    }

    mutating func readAPI(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "api", allowed: ["listen", "admin_token_file", "read_timeout_seconds", "max_connections"])
        if let l = string(t, "listen", in: "api") {
            if let (host, port) = Self.hostPort(l) {
                c.api.listen = l
                c.api.host = host
                c.api.port = port
            } else {
                issue("api.listen", "must be host:port, such as 127.0.0.1:8787 or [::1]:8787, with a port from 1 to 65535")
            }
        }
        c.api.adminTokenFile = path(t, "admin_token_file", in: "api")
        if let r = int(t, "read_timeout_seconds", in: "api", range: 1 ... 3600) { c.api.readTimeoutSeconds = r }
        if let m = int(t, "max_connections", in: "api", range: 1 ... 65_536) { c.api.maxConnections = Int(m) }
    }

    /// `host:port` or `[v6]:port`; the host is an address or a DNS name.
    static func hostPort(_ s: String) -> (String, Int)? {
        let host: Substring
        let portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            host = s[s.index(after: s.startIndex) ..< close]
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
            guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") })
            else { return nil }
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), portText.count <= 5,
              let port = Int(portText), (1 ... 65535).contains(port) else { return nil }
        return (String(host), port)
    }

    mutating func readAuthorize(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "authorize", allowed: ["deny_disabled", "max_call_seconds", "max_concurrent_calls",
                                                  "reservation_seconds", "max_holds_per_client", "when_store_down"])
        if let b = bool(t, "deny_disabled", in: "authorize") { c.authorize.denyDisabled = b }
        if let w = string(t, "when_store_down", in: "authorize") {
            if let p = StoreDownPolicy(rawValue: w) { c.authorize.whenStoreDown = p } else {
                issue("authorize.when_store_down", "must be \"deny\" or \"cached\", not \"\(w)\"")
            }
        }
        let maxCall = int(t, "max_call_seconds", in: "authorize", range: 1 ... 7 * 86_400)
        if let maxCall { c.authorize.maxCallSeconds = maxCall }
        if let m = int(t, "max_concurrent_calls", in: "authorize", range: 1 ... 100_000) {
            c.authorize.maxConcurrentCalls = Int(m)
        }
        if let m = int(t, "max_holds_per_client", in: "authorize", range: 1 ... 100_000) {
            c.authorize.maxHoldsPerClient = Int(m)
        }
        if let r = int(t, "reservation_seconds", in: "authorize", range: 1 ... 8 * 86_400) {
            if r < c.authorize.maxCallSeconds {
                issue("authorize.reservation_seconds",
                      "must be at least max_call_seconds (\(c.authorize.maxCallSeconds)), or a long call's reservation would expire while it runs")
            }
            c.authorize.reservationSeconds = r
        } else {
            c.authorize.reservationSeconds = c.authorize.maxCallSeconds + 60
        }
    }

    mutating func readRating(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "rating", allowed: ["max_billsec"])
        if let v = int(t, "max_billsec", in: "rating", range: 1 ... Int64.max) { c.rating.maxBillsec = v }
    }

    mutating func readConsole(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "console", allowed: ["enabled", "title", "primary_color", "logo_file", "cookie_secure"])
        if let e = bool(t, "enabled", in: "console") { c.console.enabled = e }
        if let title = string(t, "title", in: "console") {
            if title.isEmpty || title.count > 80 { issue("console.title", "must be 1 to 80 characters") } else { c.console.title = title }
        }
        if let color = string(t, "primary_color", in: "console") {
            // The colour goes into a stylesheet, so only a plain #rgb / #rrggbb can reach it.
            if ConsoleConfig.isHexColor(color) { c.console.primaryColor = color } else {
                issue("console.primary_color", "must be a colour like #1a73e8 (# and 3 or 6 hex digits), got '\(color)'")
            }
        }
        c.console.logoFile = path(t, "logo_file", in: "console")
        if let s = bool(t, "cookie_secure", in: "console") { c.console.cookieSecure = s }
    }

    mutating func readRetention(_ t: TOMLTable, into c: inout Config) {
        checkKeys(t, path: "retention", allowed: ["disabled_days"])
        if let d = int(t, "disabled_days", in: "retention", range: 1 ... 36_500) { c.retention.disabledDays = d }
    }

    // MARK: typed access; each records an issue and returns nil on a bad value

    mutating func issue(_ key: String, _ message: String) {
        issues.append(ConfigIssue(key: key, line: lines.line(key), message: message))
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }

    static func typeName(_ t: TOMLType) -> String {
        switch t {
        case .table: return "a table"
        case .array: return "an array"
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a floating-point number"
        case .bool: return "a boolean"
        case .date: return "a date"
        case .time: return "a time"
        case .dateTime: return "a date-time"
        }
    }

    mutating func wrongType(_ key: String, expected: String, found: TOMLType) {
        issue(key, "expected \(expected), found \(Self.typeName(found))")
    }

    mutating func checkKeys(_ t: TOMLTable, path: String, allowed: [String]) {
        for (key, _) in t where !allowed.contains(key) {
            let full = Self.join(path, key)
            var message = "unknown key \"\(key)\""
            if let near = allowed.first(where: { Self.close(key, $0) }) { message += " (did you mean \"\(near)\"?)" }
            message += "; \(path.isEmpty ? "the top level" : "this table") takes \(allowed.joined(separator: ", "))"
            issue(full, message)
        }
    }

    /// Edit distance at most 2, or a plural/singular slip: enough to catch typos.
    static func close(_ a: String, _ b: String) -> Bool {
        if a + "s" == b || b + "s" == a { return true }
        let x = Array(a), y = Array(b)
        guard abs(x.count - y.count) <= 2 else { return false }
        var prev = Array(0 ... y.count)
        for i in 1 ... max(x.count, 1) where !x.isEmpty {
            var row = [i] + Array(repeating: 0, count: y.count)
            for j in 1 ... max(y.count, 1) where !y.isEmpty {
                row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            prev = row
        }
        return prev[y.count] <= 2
    }

    mutating func table(_ t: TOMLTable, _ key: String, path: String) -> TOMLTable? {
        guard let v = t[key] else { return nil }
        guard let table = v.table else {
            wrongType(Self.join(path, key), expected: "a table ([\(Self.join(path, key))])", found: v.type)
            return nil
        }
        return table
    }

    mutating func tables(_ t: TOMLTable, _ key: String, path: String) -> [TOMLTable]? {
        guard let v = t[key] else { return nil }
        let full = Self.join(path, key)
        guard let array = v.array else {
            wrongType(full, expected: "an array of tables ([[\(full)]])", found: v.type)
            return nil
        }
        var out: [TOMLTable] = []
        for (n, element) in array.enumerated() {
            if let table = element.table { out.append(table) } else {
                wrongType("\(full)[\(n)]", expected: "a table", found: element.type)
            }
        }
        return out
    }

    mutating func string(_ t: TOMLTable, _ key: String, in path: String, required: Bool = false) -> String? {
        let full = Self.join(path, key)
        guard let v = t[key] else {
            if required { issue(full, "is required") }
            return nil
        }
        guard let s = v.string else {
            wrongType(full, expected: "a string", found: v.type)
            return nil
        }
        return s
    }

    mutating func int(_ t: TOMLTable, _ key: String, in path: String, range: ClosedRange<Int64>) -> Int64? {
        let full = Self.join(path, key)
        guard let v = t[key] else { return nil }
        guard let i = v.int else {
            wrongType(full, expected: "an integer", found: v.type)
            return nil
        }
        let value = Int64(i)
        guard range.contains(value) else {
            issue(full, "must be from \(range.lowerBound) to \(range.upperBound), not \(value)")
            return nil
        }
        return value
    }

    mutating func bool(_ t: TOMLTable, _ key: String, in path: String) -> Bool? {
        let full = Self.join(path, key)
        guard let v = t[key] else { return nil }
        guard let b = v.bool else {
            wrongType(full, expected: "true or false", found: v.type)
            return nil
        }
        return b
    }

    mutating func stringArray(_ t: TOMLTable, _ key: String, in path: String) -> [String]? {
        let full = Self.join(path, key)
        guard let v = t[key] else { return nil }
        guard let array = v.array else {
            wrongType(full, expected: "an array of strings", found: v.type)
            return nil
        }
        var out: [String] = []
        var ok = true
        for (n, element) in array.enumerated() {
            if let s = element.string { out.append(s) } else {
                wrongType("\(full)[\(n)]", expected: "a string", found: element.type)
                ok = false
            }
        }
        return ok ? out : nil
    }

    /// A string path, resolved against the config file's directory when relative.
    mutating func path(_ t: TOMLTable, _ key: String, in at: String, required: Bool = false) -> String? {
        guard let p = string(t, key, in: at, required: required) else { return nil }
        guard !p.isEmpty else {
            issue(Self.join(at, key), "must not be empty")
            return nil
        }
        return Self.resolve(p, against: baseDirectory)
    }

    static func resolve(_ p: String, against base: String) -> String {
        if p.hasPrefix("/") { return p }
        let dir = base.isEmpty ? "." : base
        let joined = dir.hasSuffix("/") ? dir + p : dir + "/" + p
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    /// `name`: required, non-empty, unique within its kind; duplicates name the first one's line.
    mutating func requiredName(_ t: TOMLTable, in at: String, seen: inout [String: Int], kind: String) -> String? {
        guard let name = string(t, "name", in: at, required: true) else { return nil }
        if name.isEmpty {
            issue("\(at).name", "must not be empty")
            return nil
        }
        if let first = seen[name] {
            let where_ = lines.line("\(kind)[\(first)].name").map { " on line \($0)" } ?? ""
            issue("\(at).name", "duplicate \(kind) name \"\(name)\" (also \(kind)[\(first)]\(where_))")
            return nil
        }
        seen[name] = Int(at.drop(while: { $0 != "[" }).dropFirst().dropLast()) ?? 0
        return name
    }
}

import Foundation
import MeterCore
import Rater
import CDRParser

/// The whole `creditmeter.toml` (SPEC section 11), validated, with paths made absolute.
///
/// `load`/`parse` check every key's presence, type and value, and collect all problems before
/// failing. They do not open the files the config names (sources, secret and token files): a source
/// file may appear later, and secrets are read where they are used; `creditmeter config check`
/// reads them, and `loadRateDecks()` reads the plans' decks.
public struct Config: Sendable {
    /// The path the config was loaded from (as given), used in messages.
    public var file: String
    public var store: StoreConfig
    public var node: NodeConfig
    public var sources: [SourceConfig]
    /// The `[[source]]` tables with `receive = "http"`: CDRs posted to the API instead of a file.
    public var receivers: [ReceiverConfig]
    public var accounts: AccountsConfig
    public var plans: [PlanConfig]
    public var thresholds: Thresholds
    public var delivery: DeliveryConfig
    public var endpoints: [EndpointConfig]
    public var api: APIConfig
    public var authorize: AuthorizeConfig
    public var retention: RetentionConfig
    public var rating: RatingConfig
    public var console: ConsoleConfig
    /// Line of each key path, for messages about values checked after loading (rate decks).
    var keyLines: KeyLines

    /// A config with every default and no source, plan or endpoint.
    public init(file: String = "<defaults>",
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.file = file
        self.store = StoreConfig(path: StoreConfig.defaultPath(environment: environment))
        self.node = NodeConfig()
        self.sources = []
        self.receivers = []
        self.accounts = AccountsConfig()
        self.plans = []
        self.thresholds = Thresholds()
        self.delivery = DeliveryConfig()
        self.endpoints = []
        self.api = APIConfig()
        self.authorize = AuthorizeConfig()
        self.retention = RetentionConfig()
        self.rating = RatingConfig()
        self.console = ConsoleConfig()
        self.keyLines = KeyLines()
    }

    /// The line of a key path such as `endpoint[1].secret_file` (or of its nearest table), for messages
    /// about values checked after loading.
    public func line(of key: String) -> Int? { keyLines.line(key) }

    /// The plan called `name`, if the config has one.
    public func plan(named name: String) -> PlanConfig? {
        plans.first { $0.name == name }
    }

    /// The source called `name`, if the config has one.
    public func source(named name: String) -> SourceConfig? {
        sources.first { $0.name == name }
    }

    /// Reads and validates the config file at `path`; relative paths inside resolve against its directory.
    public static func load(path: String,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> Config {
        let url = URL(fileURLWithPath: path)
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            let reason: String
            if !FileManager.default.fileExists(atPath: path) {
                reason = "no such file"
            } else if !FileManager.default.isReadableFile(atPath: path) {
                reason = "permission denied"
            } else {
                reason = "cannot be read (is it a directory?)"
            }
            throw ConfigError(file: path, issues: [ConfigIssue(key: "", line: nil, message: "cannot read the config file: \(reason)")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, issues: [ConfigIssue(key: "", line: nil, message: "is not valid UTF-8 text")])
        }
        return try parse(text, file: path, baseDirectory: url.deletingLastPathComponent().path,
                         environment: environment)
    }

    /// Validates config text; `file` names it in messages and `baseDirectory` anchors relative paths.
    public static func parse(_ text: String, file: String, baseDirectory: String,
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> Config {
        var reader = ConfigReader(text: text, file: file, baseDirectory: baseDirectory, environment: environment)
        return try reader.read()
    }

    /// Loads every plan's rate deck, by plan name. Every bad deck is reported (not just the first),
    /// under the plan's `rates` key with the deck's own `file:line: column` inside the message.
    public func loadRateDecks() throws(ConfigError) -> [String: RateDeck] {
        var decks: [String: RateDeck] = [:]
        var issues: [ConfigIssue] = []
        for (n, plan) in plans.enumerated() {
            let key = "plan[\(n)].rates"
            do {
                decks[plan.name] = try RateDeck.load(path: plan.rates, zone: ZoneTable(plan.timeZone), split: plan.split)
            } catch {
                issues.append(ConfigIssue(key: key, line: keyLines.line(key), message: error.description))
            }
        }
        if !issues.isEmpty { throw ConfigError(file: file, issues: issues) }
        return decks
    }
}

/// One problem in the config: the key path, its line when known, and what is wrong.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    /// Key path such as `source[1].format` or `thresholds.low_percent`; empty for file-level problems.
    public var key: String
    public var line: Int?
    public var message: String

    public init(key: String, line: Int?, message: String) {
        self.key = key
        self.line = line
        self.message = message
    }

    /// `line 14: source[1].format: …` (the file is added by `ConfigError`).
    public var description: String {
        (line.map { "line \($0): " } ?? "") + (key.isEmpty ? "" : key + ": ") + message
    }
}

/// Every problem found in a config file; `description` is one `FILE:LINE: KEY: MESSAGE` line per issue.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var issues: [ConfigIssue]

    public init(file: String, issues: [ConfigIssue]) {
        self.file = file
        self.issues = issues
    }

    public var description: String {
        issues.map { issue in
            file + (issue.line.map { ":\($0)" } ?? "") + ": "
                + (issue.key.isEmpty ? "" : issue.key + ": ") + issue.message
        }.joined(separator: "\n")
    }
}

/// `[store]`: the SQLite file (`path`, the default) or a PostgreSQL database shared by several hosts (`url`).
public struct StoreConfig: Sendable, Equatable {
    /// Absolute path of the SQLite database; unused when `url` is set.
    public var path: String
    /// `postgresql://user@host:port/db?sslmode=…`, never with a password in it.
    public var url: String?
    /// The PostgreSQL password, one line (a trailing newline is not part of it).
    public var passwordFile: String?

    public init(path: String, url: String? = nil, passwordFile: String? = nil) {
        self.path = path
        self.url = url
        self.passwordFile = passwordFile
    }

    /// The URL as logs and messages may show it: any user information and any password parameter
    /// removed, whatever the reader let through.
    public static func redacted(_ url: String) -> String {
        var out = url
        if let scheme = out.range(of: "://") {
            let rest = out[scheme.upperBound...]
            let hostEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            if let at = rest[..<hostEnd].lastIndex(of: "@") {
                let user = rest[..<at].split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
                out = String(out[..<scheme.upperBound]) + user + String(rest[at...])
            }
        }
        if let q = out.firstIndex(of: "?") {
            let params = out[out.index(after: q)...].split(separator: "&").map { p -> String in
                p.lowercased().hasPrefix("password=") ? "password=…" : String(p)
            }
            out = String(out[...q]) + params.joined(separator: "&")
        }
        return out
    }

    /// The password in `file`: its one line, without the newline that ends it. A file of several lines
    /// is refused rather than guessed at (a password may hold any character but a line break).
    public static func readPassword(_ file: String) throws(ConfigError) -> String {
        func refuse(_ message: String) -> ConfigError {
            ConfigError(file: file, issues: [ConfigIssue(key: "store.password_file", line: nil, message: message)])
        }
        guard let data = FileManager.default.contents(atPath: file) else { throw refuse("cannot read \(file)") }
        // Bytes, not Characters: Swift reads "\r\n" as one Character, which would hide the line break.
        var bytes = [UInt8](data)
        if bytes.last == 0x0A {
            bytes.removeLast()
            if bytes.last == 0x0D { bytes.removeLast() }
        }
        guard !bytes.isEmpty else { throw refuse("\(file) is empty") }
        guard !bytes.contains(0x0A) else { throw refuse("\(file) holds more than one line; it must hold the password alone") }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Why `url` cannot be used, or nil: a PostgreSQL URL scheme, and no password in it (the password
    /// belongs in `password_file`, where it is neither logged nor shown by `ps` or `config check`).
    public static func urlProblem(_ url: String) -> String? {
        let lower = url.lowercased()
        guard lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://") else {
            return "must be a postgresql:// URL (got \"\(redacted(url))\")"
        }
        let rest = url[url.index(url.startIndex, offsetBy: lower.hasPrefix("postgresql://") ? 13 : 11)...]
        let authority = rest.prefix(while: { $0 != "/" && $0 != "?" })
        if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") {
            return "holds a password (\(redacted(url))): put it in password_file instead"
        }
        if let q = url.firstIndex(of: "?"),
           url[url.index(after: q)...].split(separator: "&").contains(where: { $0.lowercased().hasPrefix("password=") }) {
            return "holds a password parameter (\(redacted(url))): put it in password_file instead"
        }
        return nil
    }

    /// `$STATE_DIRECTORY/creditmeter.db` under systemd (the first entry when it lists several),
    /// else `/var/lib/creditmeter/creditmeter.db`.
    public static func defaultPath(environment: [String: String]) -> String {
        if let dirs = environment["STATE_DIRECTORY"],
           let first = dirs.split(separator: ":").first, !first.isEmpty {
            return (first.hasSuffix("/") ? String(first) : first + "/") + "creditmeter.db"
        }
        return "/var/lib/creditmeter/creditmeter.db"
    }
}

/// `[node]`: this agent's name among those sharing a PostgreSQL store.
public struct NodeConfig: Sendable, Equatable {
    /// Scopes CDR identity and read positions: unique among the agents that share a store.
    public var name: String
    public init(name: String = NodeConfig.hostName()) { self.name = name }

    /// The host name up to its first dot, or "localhost" when the system has none.
    public static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "localhost" }
        let full = String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let short = full.split(separator: ".").first.map(String.init) ?? ""
        return short.isEmpty ? "localhost" : short
    }

    /// Letters, digits, `.`, `_` and `-`, 1 to 64 of them: it appears in logs, metrics and the store.
    public static func nameProblem(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 64 else { return "must be 1 to 64 characters (got \(name.utf8.count))" }
        let ok = name.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "." || c == "_" || c == "-"
        }
        return ok ? nil : "may hold only letters, digits, '.', '_' and '-' (got \"\(name)\")"
    }
}

/// `[source.filter]`: which CDR lines of a source are metered (others are counted, not charged).
public struct FilterConfig: Sendable, Equatable {
    public var dcontext: [String]?
    public var lastapp: [String]?
    /// Regular expressions, as written.
    public var channel: String?
    public var dstchannel: String?

    public init(dcontext: [String]? = nil, lastapp: [String]? = nil, channel: String? = nil, dstchannel: String? = nil) {
        self.dcontext = dcontext
        self.lastapp = lastapp
        self.channel = channel
        self.dstchannel = dstchannel
    }
}

/// One `[[source]]`: a CDR file to tail and how to read it.
public struct SourceConfig: Sendable {
    public var name: String
    /// Absolute path of the file.
    public var path: String
    public var format: CDRFormat
    /// As written: `local`, `UTC` or an IANA name.
    public var timezone: String
    /// The zone `timezone` names (`local` is the host's zone at load time).
    public var timeZone: TimeZone
    public var startAt: StartAt
    public var extra: [String]?
    public var columns: [String]?
    public var delimiter: UInt8
    public var filter: FilterConfig?
    /// A longer line is quarantined as `line_too_long` with its first 4 KiB, length and SHA-256.
    public var maxLineBytes: Int

    public static let defaultMaxLineBytes = 65_536

    public init(name: String, path: String, format: CDRFormat, timezone: String = "local",
                timeZone: TimeZone = .current, startAt: StartAt = .end, extra: [String]? = nil,
                columns: [String]? = nil, delimiter: UInt8 = UInt8(ascii: ","), filter: FilterConfig? = nil,
                maxLineBytes: Int = SourceConfig.defaultMaxLineBytes) {
        self.name = name
        self.path = path
        self.format = format
        self.timezone = timezone
        self.timeZone = timeZone
        self.startAt = startAt
        self.extra = extra
        self.columns = columns
        self.delimiter = delimiter
        self.filter = filter
        self.maxLineBytes = maxLineBytes
    }

    /// The line filter this source asks for; nil when it has none. `Config.load` already built it
    /// once, so this fails only for a hand-made `SourceConfig`.
    public func makeFilter() throws(ParserConfigError) -> CDRFilter? {
        guard let filter else { return nil }
        return try CDRFilter(dcontext: filter.dcontext, lastapp: filter.lastapp,
                             channel: filter.channel, dstchannel: filter.dstchannel)
    }

    /// The parser settings this source implies.
    public var parserOptions: ParserOptions {
        ParserOptions(format: format, extra: extra, columns: columns, delimiter: delimiter, timeZone: timeZone)
    }
}

/// A `[[source]]` with `receive = "http"`: its CDRs arrive as `POST /v1/cdr/{name}` requests.
public struct ReceiverConfig: Sendable, Equatable {
    public var name: String
    /// `freeswitch-json` (one mod_json_cdr document a request) or `jsonl` (one CDR a line).
    public var format: CDRFormat
    /// The file holding the token a poster must present (bearer, or the password of HTTP Basic).
    public var tokenFile: String
    /// As written: `local`, `UTC` or an IANA name; reads `*_stamp` times that carry no epoch.
    public var timezone: String
    public var timeZone: TimeZone
    /// `false` (the default): a FreeSWITCH B-leg is counted, not charged, since its A-leg is.
    public var chargeBLegs: Bool

    public init(name: String, format: CDRFormat, tokenFile: String, timezone: String = "local",
                timeZone: TimeZone = .current, chargeBLegs: Bool = false) {
        self.name = name
        self.format = format
        self.tokenFile = tokenFile
        self.timezone = timezone
        self.timeZone = timeZone
        self.chargeBLegs = chargeBLegs
    }

    public var parserOptions: ParserOptions { ParserOptions(format: format, timeZone: timeZone) }
}

/// `[accounts]`: which CDR field names the client's account.
public struct AccountsConfig: Sendable, Equatable {
    /// The field name as written (canonical or an alias such as `account_code`).
    public var field: String
    public var cdrField: CDRField

    public init(field: String = "accountcode", cdrField: CDRField = .accountcode) {
        self.field = field
        self.cdrField = cdrField
    }
}

/// One `[[plan]]`: a named rate deck, the zone its windows and dates are read in, and whether calls
/// crossing a window boundary are priced in parts.
public struct PlanConfig: Sendable, Equatable {
    public var name: String
    /// Absolute path of the deck's CSV file.
    public var rates: String
    /// `timezone` as written (`local` by default).
    public var timezone: String = "local"
    public var timeZone: TimeZone = .current
    /// `split` (default false).
    public var split: Bool = false
    // Only the config reader (and its tests) make one: the memberwise init Swift writes serves them.
}

/// `[delivery]`: webhook pacing.
public struct DeliveryConfig: Sendable, Equatable {
    /// At most one `balance.updated` per client per this many seconds; 0 sends every change.
    public var balanceIntervalSeconds: Int64
    /// Events older than this go to the dead letter list instead of being retried.
    public var maxAgeHours: Int64

    public init(balanceIntervalSeconds: Int64 = 10, maxAgeHours: Int64 = 72) {
        self.balanceIntervalSeconds = balanceIntervalSeconds
        self.maxAgeHours = maxAgeHours
    }
}

/// One `[[endpoint]]`: a webhook receiver.
public struct EndpointConfig: Sendable, Equatable {
    public var name: String
    public var url: String
    /// Patterns: an event type, `family.*`, or `*`.
    public var events: [String]
    /// `whsec_` + base64, when given inline.
    public var secret: String?
    /// Absolute path of a file holding the `whsec_…` secret.
    public var secretFile: String?
    /// Absolute path of a file holding a bearer token.
    public var tokenFile: String?
    public var timeoutSeconds: Int64

    public init(name: String, url: String, events: [String] = ["*"], secret: String? = nil,
                secretFile: String? = nil, tokenFile: String? = nil, timeoutSeconds: Int64 = 10) {
        self.name = name
        self.url = url
        self.events = events
        self.secret = secret
        self.secretFile = secretFile
        self.tokenFile = tokenFile
        self.timeoutSeconds = timeoutSeconds
    }

    /// Every event type the agent emits (SPEC section 6); `events` patterns are checked against it.
    public static let eventTypes = [
        "balance.updated",
        "credit.low", "credit.critical", "credit.exhausted", "credit.recovered",
        "client.created", "client.updated", "client.recharged", "client.disabled", "client.enabled",
        "client.purged", "client.adjusted", "client.rerated",
    ]

    /// True when one of `events` matches `type`.
    public func wants(_ type: String) -> Bool {
        events.contains { Self.pattern($0, matches: type) }
    }

    /// `*` matches all, `credit.*` matches `credit.` + anything, otherwise the type itself.
    public static func pattern(_ pattern: String, matches type: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasSuffix(".*") { return type.hasPrefix(pattern.dropLast()) }
        return pattern == type
    }

    /// The HMAC key of a `whsec_` secret, or nil when it is not `whsec_` + base64 of 24 to 64 bytes
    /// (the Standard Webhooks range). Padding may be left off. Also used on `secret_file` contents.
    public static func decodeSecret(_ secret: String) -> [UInt8]? {
        guard secret.hasPrefix("whsec_") else { return nil }
        var body = String(secret.dropFirst(6))
        guard !body.isEmpty, body.utf8.allSatisfy({ b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "+") || b == UInt8(ascii: "/") || b == UInt8(ascii: "=")
        }) else { return nil }
        if body.utf8.count % 4 != 0 { body += String(repeating: "=", count: 4 - body.utf8.count % 4) }
        guard let data = Data(base64Encoded: body), (24 ... 64).contains(data.count) else { return nil }
        return Array(data)
    }
}

/// `[api]`: the local HTTP listener.
public struct APIConfig: Sendable, Equatable {
    /// `host:port` as written; `[::1]:8787` for IPv6.
    public var listen: String
    public var host: String
    public var port: Int
    /// Absolute path of the admin bearer token file; nil leaves the admin endpoints off.
    public var adminTokenFile: String?
    /// A total deadline, not a per-read timer: once a connection opens or has been answered, its next
    /// request (head and body) must arrive within this many seconds, or the connection is closed.
    public var readTimeoutSeconds: Int64
    /// Open connections past this are accepted and closed at once, so a flood cannot exhaust descriptors.
    public var maxConnections: Int

    public init(listen: String = "127.0.0.1:8787", host: String = "127.0.0.1", port: Int = 8787,
                adminTokenFile: String? = nil, readTimeoutSeconds: Int64 = 10, maxConnections: Int = 512) {
        self.listen = listen
        self.host = host
        self.port = port
        self.adminTokenFile = adminTokenFile
        self.readTimeoutSeconds = readTimeoutSeconds
        self.maxConnections = maxConnections
    }
}

/// `[authorize]`: the pre-call check of SPEC section 9.
public struct AuthorizeConfig: Sendable, Equatable {
    public var denyDisabled: Bool
    public var maxCallSeconds: Int64
    /// nil: no per-client cap on concurrent calls.
    public var maxConcurrentCalls: Int?
    /// Live holds one client may have; past it a new call is `too_many_calls`. Bounds the memory and
    /// the work that made-up call ids can cost, whether or not `maxConcurrentCalls` is set.
    public var maxHoldsPerClient: Int
    /// How long a reservation lives without its CDR. Defaults to `max_call_seconds + 60`: a
    /// reservation must outlive the longest call it allows, plus the time the PBX takes to write
    /// the CDR and the agent to charge it. A smaller value is refused (it would let calls overdraw).
    public var reservationSeconds: Int64
    /// What authorize answers while the store cannot be read or written (`when_store_down`).
    public var whenStoreDown: StoreDownPolicy

    public init(denyDisabled: Bool = false, maxCallSeconds: Int64 = 14400, maxConcurrentCalls: Int? = nil,
                reservationSeconds: Int64? = nil, maxHoldsPerClient: Int = 64, whenStoreDown: StoreDownPolicy = .deny) {
        self.whenStoreDown = whenStoreDown
        self.denyDisabled = denyDisabled
        self.maxCallSeconds = maxCallSeconds
        self.maxConcurrentCalls = maxConcurrentCalls
        self.maxHoldsPerClient = maxHoldsPerClient
        self.reservationSeconds = reservationSeconds ?? maxCallSeconds + 60
    }
}

/// `[authorize] when_store_down`: a call asked about while the store is unreachable is denied
/// (`store_unavailable`), or answered from the balances last read, its hold kept by this agent and
/// written to the store once it answers again (`cached`: calls go on through an outage, at the risk of
/// agents spending the same credit until then).
public enum StoreDownPolicy: String, Sendable, Equatable, CaseIterable {
    case deny
    case cached
}

/// `[retention]`: how long disabled clients are kept.
public struct RetentionConfig: Sendable, Equatable {
    public var disabledDays: Int64

    public init(disabledDays: Int64 = 90) { self.disabledDays = disabledDays }
}

/// `[rating]`: limits on what a single CDR may be charged for.
public struct RatingConfig: Sendable, Equatable {
    /// Billable seconds above this (a week by default) quarantine the CDR as `implausible_duration`.
    public var maxBillsec: Int64

    public init(maxBillsec: Int64 = 604_800) { self.maxBillsec = maxBillsec }
}

/// `[console]`: the operator console at `/console/` and the client portal at `/portal/` on the `[api]` listener.
public struct ConsoleConfig: Sendable, Equatable {
    public var enabled: Bool
    /// The reseller's name, at the top of every page and in its title.
    public var title: String
    /// The meter's "primary" colour (level ok) and the buttons', as `#rrggbb` or `#rgb`.
    public var primaryColor: String
    /// An image shown beside the title; absolute path (relative paths are taken from the config's directory).
    public var logoFile: String?
    /// Marks the session cookies `Secure`: set when the listener is reached through TLS.
    public var cookieSecure: Bool

    public init(enabled: Bool = true, title: String = "creditmeter", primaryColor: String = "#1a73e8",
                logoFile: String? = nil, cookieSecure: Bool = false) {
        self.enabled = enabled
        self.title = title
        self.primaryColor = primaryColor
        self.logoFile = logoFile
        self.cookieSecure = cookieSecure
    }

    /// `#` and 3 or 6 hex digits.
    public static func isHexColor(_ s: String) -> Bool {
        let digits = s.dropFirst()
        return s.first == "#" && (digits.count == 3 || digits.count == 6) && digits.allSatisfy { $0.isHexDigit }
    }
}

import API
import ArgumentParser
import Foundation
import Ledger
import MeterConfig
import MeterCore

struct ClientsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clients",
        abstract: "Create, edit, disable, enable, recharge and inspect clients.",
        discussion: """
        A client owns one or more PBX account codes (default: its username); every CDR whose account field names one of them is charged to it under its rate plan (default: "default"). Passwords are never taken from the command line: give them on a TTY prompt, or as the first two lines of stdin (password, then confirmation) with --password-stdin.

        Examples:
          creditmeter clients create --username alice --first-name Alice \\
              --last-name Smith --email alice@example.com --account 1001
          creditmeter clients recharge alice 100 --key invoice-4711
          creditmeter clients list
        """,
        subcommands: [Create.self, Edit.self, Disable.self, Enable.self, Recharge.self, Adjust.self, Statement.self, List.self, Show.self]
    )

    /// The Create Client form's fields, shared by `create` and `edit`.
    struct Fields: ParsableArguments {
        @Option(name: .customLong("first-name")) var firstName: String?
        @Option(name: .customLong("last-name")) var lastName: String?
        @Option var email: String?
        @Option var phone: String?
        @Option var country: String?
        @Option(help: "State or region.") var state: String?
        @Option var city: String?
        @Option(help: "Zip or postal code.") var zip: String?
        @Option var address1: String?
        @Option var address2: String?
        @Option var company: String?
        @Option var role: String?
        @Option(name: .customLong("account"), help: ArgumentHelp(
            "A PBX account code billed to this client (repeatable).", valueName: "code"))
        var accounts: [String] = []
        @Option(help: ArgumentHelp("Rate plan name.", valueName: "name")) var plan: String?

        /// The flag that carries each form field; ArgumentParser needs one property per flag.
        func value(_ field: ProfileField) -> String? {
            switch field {
            case .firstName: firstName
            case .lastName: lastName
            case .email: email
            case .phone: phone
            case .country: country
            case .state: state
            case .city: city
            case .zip: zip
            case .address1: address1
            case .address2: address2
            case .company: company
            case .role: role
            }
        }

        var ledgerFields: ClientFields {
            var f = ClientFields()
            for field in ProfileField.allCases { f[field] = value(field) }
            return f
        }

        /// The rules that do not need the store; the store enforces uniqueness.
        func violations(creating: Bool) -> [ClientRules.Violation] {
            ClientRules.profileViolations(creating: creating, accounts: accounts, value)
        }
    }

    struct PasswordSource: ParsableArguments {
        @Flag(name: .customLong("password-stdin"),
              help: "Read the password and its confirmation as the first two lines of stdin.")
        var passwordStdin = false
    }

    static func readPassword(stdin: Bool) throws -> (String, String) {
        if stdin {
            var lines: [String] = []
            while lines.count < 2, let line = readLine(strippingNewline: true) { lines.append(line) }
            guard lines.count == 2 else {
                throw CLIError(.usage, "--password-stdin: expected two lines on stdin (password, then confirmation), got \(lines.count)")
            }
            return (lines[0], lines[1])
        }
        guard isatty(0) == 1 else {
            throw CLIError(.usage, "no TTY to prompt for the password: give it with --password-stdin")
        }
        guard let p1 = getpass("Password: ").map({ String(cString: $0) }),
              let p2 = getpass("Confirm password: ").map({ String(cString: $0) }) else {
            throw CLIError(.ioError, "could not read the password from the TTY")
        }
        return (p1, p2)
    }

    static func fail(_ violations: [ClientRules.Violation]) -> CLIError {
        // One line, naming every rule broken, so a script's operator fixes them all at once.
        CLIError(.dataError, violations.map(\.description).joined(separator: "; "))
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a client (first name, last name, email and password required).",
            discussion: """
            The username is 3 to 32 letters, digits, '.', '_' or '-'; the email is unique ignoring case; the password is 8 to 20 characters with a digit, an uppercase and a lowercase letter and a special character. Without --account the client's account code is its username.

            Examples:
              creditmeter clients create --username alice --first-name Alice \\
                  --last-name Smith --email alice@example.com --account 1001
              printf 'Str0ng!pass\\nStr0ng!pass\\n' | creditmeter clients create \\
                  --username bob --first-name Bob --last-name Jones \\
                  --email bob@example.com --plan gold --password-stdin
            """)
        @OptionGroup var options: ConfigOptions
        @Option var username: String
        @OptionGroup var fields: Fields
        @OptionGroup var password: PasswordSource
        @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false

        func run() throws {
            try guarded {
                var violations: [ClientRules.Violation] = []
                if let bad = ClientRules.usernameViolation(username) { violations.append(bad) }
                violations += fields.violations(creating: true)
                if !violations.isEmpty { throw fail(violations) }
                let (config, ledger) = try options.openStore(creating: true)
                let plan = fields.plan ?? "default"
                if !config.plans.isEmpty, config.plan(named: plan) == nil {
                    throw CLIError(.dataError, "plan: '\(plan)' is not a [[plan]] in \(config.file)")
                }
                let (pw, confirm) = try readPassword(stdin: password.passwordStdin)
                let pwViolations = ClientRules.passwordViolations(pw, confirmation: confirm)
                if !pwViolations.isEmpty { throw fail(pwViolations) }
                let hash = try PasswordHasher.hash(pw)
                let client = try ledger.createClient(
                    username: username, fields: fields.ledgerFields, accounts: fields.accounts, plan: plan,
                    passwordHash: hash, now: nowEpoch())
                ClientsCommand.print(client, config: config, json: json)
            }
        }
    }

    struct Edit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a client's fields, account codes, plan or password.",
            discussion: """
            Only the options given change. --account replaces the client's whole list of account codes.

            Examples:
              creditmeter clients edit alice --email alice@acme.example
              creditmeter clients edit alice --account 1001 --account 1002 --plan gold
              creditmeter clients edit alice --change-password
            """)
        @OptionGroup var options: ConfigOptions
        @Argument var username: String
        @OptionGroup var fields: Fields
        @Flag(name: .customLong("change-password"), help: "Prompt for a new password (or read it with --password-stdin).")
        var changePassword = false
        @OptionGroup var password: PasswordSource
        @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false

        func run() throws {
            try guarded {
                let violations = fields.violations(creating: false)
                if !violations.isEmpty { throw fail(violations) }
                let (config, ledger) = try options.openStore()
                if let plan = fields.plan, !config.plans.isEmpty, config.plan(named: plan) == nil {
                    throw CLIError(.dataError, "plan: '\(plan)' is not a [[plan]] in \(config.file)")
                }
                var hash: String?
                if changePassword || password.passwordStdin {
                    let (pw, confirm) = try readPassword(stdin: password.passwordStdin)
                    let pwViolations = ClientRules.passwordViolations(pw, confirmation: confirm)
                    if !pwViolations.isEmpty { throw fail(pwViolations) }
                    hash = try PasswordHasher.hash(pw)
                }
                let client = try ledger.editClient(
                    username: username, fields: fields.ledgerFields,
                    accounts: fields.accounts.isEmpty ? nil : fields.accounts,
                    plan: fields.plan, passwordHash: hash, now: nowEpoch())
                ClientsCommand.print(client, config: config, json: json)
            }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take away a client's console access (its calls are still metered).",
            discussion: """
            A client disabled for more than [retention] disabled_days is deleted by `creditmeter purge` and the daemon's daily check.

            Example:
              creditmeter clients disable alice
            """)
        @OptionGroup var options: ConfigOptions
        @Argument var username: String
        func run() throws { try ClientsCommand.setDisabled(username, true, options) }
    }

    /// The one AMOUNT word of `recharge` and `adjust`, as written and in µcr (negative allowed here, so
    /// `-5` reaches the command's own rule rather than the parser's "unknown option").
    static func amount(_ words: [String], example: String) throws -> (String, Int64) {
        guard words.count == 1, let amount = words.first else {
            throw CLIError(.usage, words.isEmpty ? example : "give one AMOUNT, not \(words.map { "'\($0)'" }.joined(separator: " "))")
        }
        do { return (amount, try Money.parse(amount, allowNegative: true)) } catch {
            throw CLIError(.usage, "AMOUNT: '\(amount)' \(error)")
        }
    }

    /// `disable` and `enable`: the client's new status, printed as `show` prints it.
    static func setDisabled(_ username: String, _ disabled: Bool, _ options: ConfigOptions) throws {
        try options.guardedOpenStore { config, ledger in
            ClientsCommand.print(try ledger.setDisabled(username: username, disabled, now: nowEpoch()), config: config, json: false)
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a disabled client its console access back.",
            discussion: """
            Example:
              creditmeter clients enable alice
            """)
        @OptionGroup var options: ConfigOptions
        @Argument var username: String
        func run() throws { try ClientsCommand.setDisabled(username, false, options) }
    }

    struct Recharge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add credits: assigned and available grow by AMOUNT.",
            usage: "creditmeter clients recharge [--config <path>] <username> <amount> [--key <key>] [--json]",
            discussion: """
            AMOUNT is credits, more than 0, with at most 6 decimals. With --key, the same key given again recharges once (safe to retry from scripts).

            Examples:
              creditmeter clients recharge alice 100
              creditmeter clients recharge alice 12.5 --key invoice-4711
            """)
        @OptionGroup var options: ConfigOptions
        @Argument var username: String
        // Collects every word left over, "-5" included: as a plain argument a negative number reads as an
        // unknown option and the parser would answer "Missing expected argument" instead of naming the rule.
        @Argument(parsing: .allUnrecognized, help: ArgumentHelp(
            "Credits to add, more than 0, e.g. 100 or 0.5 (at most 6 decimals).", valueName: "amount"))
        var amountWords: [String] = []
        @Option(help: ArgumentHelp("Idempotency key.", valueName: "key")) var key: String?
        @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false

        func run() throws {
            try guarded {
                let (amount, micro) = try ClientsCommand.amount(amountWords, example: "give the AMOUNT to add, e.g. 100")
                guard micro > 0 else { throw CLIError(.usage, "AMOUNT must be more than 0 (got '\(amount)')") }
                let (config, ledger) = try options.openStore()
                let result = try ledger.recharge(username: username, amount: micro, key: key, now: nowEpoch())
                if !result.applied { Console.note("recharge with key '\(key ?? "")' was already applied; nothing changed") }
                ClientsCommand.print(result.client, config: config, json: json)
            }
        }
    }

    struct Adjust: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Correct assigned by a signed AMOUNT, kept with its reason (a refund, or taking back a wrong recharge).",
            usage: "creditmeter clients adjust [--config <path>] <username> <amount> --reason <text> [--key <key>] [--json]",
            discussion: """
            AMOUNT is credits with at most 6 decimals, positive or negative, not 0; assigned and available move by it. Assigned may not go below zero through an adjustment. The reason is stored with the adjustment, shown in statements and sent in the client.adjusted event. With --key, the same key given again adjusts once (the same key with another client, amount or reason is an error).

            Examples:
              creditmeter clients adjust alice -12.5 --reason "booked twice"
              creditmeter clients adjust alice 3 --reason "refund" --key ticket-881
            """)
        @OptionGroup var options: ConfigOptions
        @Argument var username: String
        @Argument(parsing: .allUnrecognized, help: ArgumentHelp(
            "Signed credits, e.g. -12.5 or 3 (at most 6 decimals, not 0).", valueName: "amount"))
        var amountWords: [String] = []
        @Option(help: ArgumentHelp("Why the balance is corrected (required).", valueName: "text")) var reason: String
        @Option(help: ArgumentHelp("Idempotency key.", valueName: "key")) var key: String?
        @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false

        func run() throws {
            try guarded {
                let (_, micro) = try ClientsCommand.amount(amountWords, example: "give the signed AMOUNT, e.g. -12.5")
                let (config, ledger) = try options.open()
                let result = try ledger.adjust(username: username, amount: micro, reason: reason, key: key, now: nowEpoch())
                if !result.applied { Console.note("adjustment with key '\(key ?? "")' was already applied; nothing changed") }
                ClientsCommand.print(result.client, config: config, json: json)
            }
        }
    }

    struct Statement: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every recharge, adjustment, charge and rerate delta of a client, in order, with a running Available.",
            discussion: """
            Lines are in the order the ledger recorded them (at ties: recharges, adjustments, charges, rerates). Each line shows the change to Available and Available after it; with --from, the first line starts from Available as it stood then (the opening figure). Over a client's whole history the last Available is the meter's. Charges and rerates show the destination, billable seconds, answer time and the deck row(s) that priced them. DATE is as for rerate: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] in local time, or with Z or an offset; --from inclusive, --to exclusive.

            --json prints {username, opening, closing, available, used, assigned, entries: [{kind, at, amount, available, ...}]}; --csv prints a header line naming the columns (kind, at, amount, available, destination, billsec, answered_at, old_cost, new_cost, reason, key, priced_by) and one line per entry.

            Examples:
              creditmeter clients statement alice
              creditmeter clients statement alice --from 2026-03-01 --csv
              creditmeter clients statement alice --to 2026-04-01 --json
            """)
        @OptionGroup var options: ConfigOptions
        @Argument var username: String
        @Option(help: ArgumentHelp("First day or time, inclusive.", valueName: "date")) var from: String?
        @Option(help: ArgumentHelp("End, exclusive.", valueName: "date")) var to: String?
        @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false
        @Flag(help: "Print CSV.") var csv = false

        func run() throws {
            try guarded {
                if json && csv { throw CLIError(.usage, "give --json or --csv, not both") }
                let start = try from.map { try parseLocalDate($0, option: "--from") }
                let end = try to.map { try parseLocalDate($0, option: "--to") }
                let (_, ledger) = try options.open()
                let st = try ledger.statement(username: username, from: start, to: end)
                let meter = try ledger.client(username: username)?.meter ?? Meter(assigned: 0, used: 0)
                func opt(_ v: Int64?, money: Bool = false) -> String { v.map { money ? Money.format($0) : String($0) } ?? "" }
                if json {
                    Console.json(.object([
                        ("username", .string(st.username)), ("opening", .string(Money.format(st.opening))),
                        ("closing", .string(Money.format(st.closing))), ("available", .string(Money.format(meter.available))),
                        ("used", .string(Money.format(meter.used))), ("assigned", .string(Money.format(meter.assigned))),
                        ("entries", .array(st.entries.map { e in
                            var o: [(String, JSONValue)] = [("kind", .string(e.kind.rawValue)), ("at", .string(rfc3339(e.at))),
                                                            ("amount", .string(Money.format(e.amount))),
                                                            ("available", .string(Money.format(e.available)))]
                            if let d = e.destination { o.append(("destination", .string(d))) }
                            if let b = e.billsec { o.append(("billsec", .int(b))) }
                            if let a = e.answeredAt { o.append(("answered_at", .string(rfc3339(a)))) }
                            if let p = e.pricedBy { o.append(("priced_by", .number(p))) }
                            if let c = e.oldCost { o.append(("old_cost", .string(Money.format(c)))) }
                            if let c = e.newCost { o.append(("new_cost", .string(Money.format(c)))) }
                            if let r = e.reason { o.append(("reason", .string(r))) }
                            if let k = e.key { o.append(("key", .string(k))) }
                            return .object(o)
                        })),
                    ]))
                    return
                }
                if csv {
                    func field(_ s: String) -> String {
                        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
                    }
                    Console.out("kind,at,amount,available,destination,billsec,answered_at,old_cost,new_cost,reason,key,priced_by")
                    for e in st.entries {
                        Console.out([e.kind.rawValue, rfc3339(e.at), Money.format(e.amount), Money.format(e.available),
                                     e.destination ?? "", opt(e.billsec), e.answeredAt.map(rfc3339) ?? "", opt(e.oldCost, money: true),
                                     opt(e.newCost, money: true), e.reason ?? "", e.key ?? "", e.pricedBy ?? ""].map(field).joined(separator: ","))
                    }
                    return
                }
                Console.out("\(st.username): opening available \(Money.format(st.opening))")
                for e in st.entries {
                    var what: String
                    switch e.kind {
                    case .recharge: what = "recharge" + (e.key.map { " (key \($0))" } ?? "")
                    case .adjustment: what = "adjustment: \(e.reason ?? "")"
                    case .charge: what = "call to \(e.destination ?? "") \(opt(e.billsec)) s answered \(e.answeredAt.map(rfc3339) ?? "?")"
                    case .rerate: what = "rerate of the call to \(e.destination ?? "") answered \(e.answeredAt.map(rfc3339) ?? "?"): "
                        + "\(opt(e.oldCost, money: true)) → \(opt(e.newCost, money: true))"
                    }
                    Console.out("\(rfc3339(e.at))  \(Money.format(e.amount))  = \(Money.format(e.available))  \(what)")
                }
                Console.out("closing available \(Money.format(st.closing)) (meter: \(Money.format(meter.available)) | \(Money.format(meter.used)) | \(Money.format(meter.assigned)))")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every client's meter: Available | Used | Assigned, percent, level.",
            discussion: """
            --json prints an array of {username, status, available, used, assigned, percent, level, color, plan, accounts}.

            Examples:
              creditmeter clients list
              creditmeter clients list --json
            """)
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false
        func run() throws {
            try options.guardedOpenStore { config, ledger in
                let all = try ledger.clients()
                if json {
                    Console.json(JSONValue.array(all.map { ClientsCommand.summaryJSON($0, config) }))
                    return
                }
                if all.isEmpty { Console.note("no clients yet: add one with `creditmeter clients create`"); return }
                let rows = all.map { c -> [String] in
                    let level = c.meter.level(config.thresholds)
                    return [c.username, c.status.rawValue, c.meter.display, c.meter.percentText + "%", level.rawValue]
                }
                let header = ["USERNAME", "STATUS", "AVAILABLE | USED | ASSIGNED", "PERCENT", "LEVEL"]
                var widths = header.map(\.count)
                for r in rows { for (i, cell) in r.enumerated() { widths[i] = max(widths[i], cell.count) } }
                func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: w - s.count) }
                Console.out(header.enumerated().map { pad($1, widths[$0]) }.joined(separator: "  "))
                for (c, r) in zip(all, rows) {
                    let level = c.meter.level(config.thresholds)
                    let cells = r.enumerated().map { i, cell -> String in
                        let padded = pad(cell, widths[i])
                        return i == 2 || i == 4 ? Console.paint(padded, level) : padded
                    }
                    Console.out(cells.joined(separator: "  "))
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One client's fields and meter.",
            discussion: """
            --json adds the form's fields (first_name, last_name, email, phone, …, created_at, disabled_at) to what `clients list --json` prints.

            Examples:
              creditmeter clients show alice
              creditmeter clients show alice --json
            """)
        @OptionGroup var options: ConfigOptions
        @Argument var username: String
        @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false
        func run() throws {
            try options.guardedOpenStore { config, ledger in
                guard let c = try ledger.client(username: username) else {
                    throw CLIError(.dataError, "username: no client named '\(username)'")
                }
                ClientsCommand.print(c, config: config, json: json)
            }
        }
    }

    // The same shapes the admin API answers with (API.ClientJSON), so scripts can use either.
    static func summaryJSON(_ c: ClientRecord, _ config: Config) -> JSONValue { ClientJSON.summary(c, config.thresholds) }
    static func detailJSON(_ c: ClientRecord, _ config: Config) -> JSONValue { ClientJSON.detail(c, config.thresholds) }

    static func print(_ c: ClientRecord, config: Config, json: Bool) {
        if json { Console.json(detailJSON(c, config)); return }
        let level = c.meter.level(config.thresholds)
        let name = [c.firstName, c.lastName].filter { !$0.isEmpty }.joined(separator: " ")
        var lines = [
            "\(c.username) (\(name)) — \(c.status.rawValue)",
            "  Available | Used | Assigned: " + Console.paint(c.meter.display, level)
                + "  (\(c.meter.percentText)%, \(level.rawValue))",
            "  email: \(c.email)   plan: \(c.plan)   accounts: \(c.accounts.joined(separator: ", "))",
        ]
        let shown: [ProfileField] = [.phone, .company, .role, .country, .state, .city, .zip, .address1, .address2]
        let extra = shown.map { ($0.rawValue, c[$0]) }.filter { !$0.1.isEmpty }
        if !extra.isEmpty { lines.append("  " + extra.map { "\($0.0): \($0.1)" }.joined(separator: "   ")) }
        if let d = c.disabledAt { lines.append("  disabled since \(rfc3339(d))") }
        Console.out(lines.joined(separator: "\n"))
    }
}

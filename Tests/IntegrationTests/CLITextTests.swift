import Foundation
import Testing
import TestSupport

/// What a user reads from the command line: help text, refusals, exit codes and the `--json` style.
@Suite(.serialized) struct CLITextTests {
    /// Every command path the binary has: the root, each subcommand and each of theirs.
    static let commands: [[String]] = [
        [], ["run"], ["replay"], ["cdrgen"], ["purge"], ["status"],
        ["clients"], ["clients", "create"], ["clients", "edit"], ["clients", "disable"], ["clients", "enable"],
        ["clients", "recharge"], ["clients", "list"], ["clients", "show"],
        ["quarantine"], ["quarantine", "list"], ["quarantine", "retry"],
        ["outbox"], ["outbox", "list"], ["outbox", "retry"],
        ["config"], ["config", "check"], ["rerate"], ["store"], ["store", "copy"],
    ]

    /// `--help` at a known terminal width (ArgumentParser reads COLUMNS when stdout is not a terminal).
    static func help(_ h: Harness, _ command: [String], columns: Int = 80) throws -> Harness.Result {
        let p = Process()
        Harness.command(p, command + ["--help"], umask: nil)
        p.currentDirectoryURL = h.dir
        var env = ProcessInfo.processInfo.environment
        env["COLUMNS"] = "\(columns)"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Harness.Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                              stderr: String(decoding: e, as: UTF8.self))
    }

    @Test func everyCommandsHelpHasAnExample() throws {
        let h = try Harness()
        #expect(Self.commands.count == 25)
        var without: [String] = []
        for c in Self.commands {
            let r = try Self.help(h, c)
            #expect(r.status == 0, "\(c) --help: \(r.stderr)")
            if !r.stdout.contains("Example") { without.append(c.isEmpty ? "creditmeter" : c.joined(separator: " ")) }
        }
        #expect(without.isEmpty, "--help without an example: \(without)")
    }

    /// Help text written pre-wrapped at ~100 columns comes out re-wrapped at 80 by the parser: a
    /// paragraph line cut short ("…JSON lines),") and an example whose tail lands at column 0 ("Smith \").
    @Test func helpIsWrappedOnlyByTheParser() throws {
        let h = try Harness()
        var problems: [String] = []
        for c in Self.commands {
            let text = try Self.help(h, c).stdout
            let name = c.isEmpty ? "creditmeter" : c.joined(separator: " ")
            // The overview and discussion: everything above USAGE.
            let lines = text.components(separatedBy: "\n").prefix { !$0.hasPrefix("USAGE:") }.map { $0 }
            for (i, line) in lines.enumerated() {
                #expect(line.count <= 80, "\(name): longer than 80 columns: \(line)")
                guard i + 1 < lines.count else { continue }
                let next = lines[i + 1]
                let indented = line.hasPrefix(" ")
                if indented, !next.isEmpty, !next.hasPrefix(" ") {
                    problems.append("\(name): example broken across lines: '\(line)' / '\(next)'")
                }
                if !indented, !line.isEmpty, !next.isEmpty, !next.hasPrefix(" "), line.count < 50 {
                    problems.append("\(name): paragraph line cut short: '\(line)' / '\(next)'")
                }
            }
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    /// One stderr line, the exit status, and that it names what is wrong.
    func expectRefusal(_ r: Harness.Result, status: Int32, mentions words: [String],
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "exit \(r.status), want \(status): \(r.stderr)", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "one stderr line: \(r.stderr)", sourceLocation: sourceLocation)
        for w in words { #expect(r.stderr.contains(w), "stderr should say \(w): \(r.stderr)", sourceLocation: sourceLocation) }
    }

    @Test func aNegativeOrZeroRechargeNamesTheRule() throws {
        let h = try Harness()
        #expect(try h.createClient("alice").status == 0)
        expectRefusal(try h.run(["clients", "recharge", "alice", "-5"]), status: 64,
                      mentions: ["AMOUNT must be more than 0", "-5"])
        expectRefusal(try h.run(["clients", "recharge", "alice", "0"]), status: 64, mentions: ["AMOUNT must be more than 0"])
        expectRefusal(try h.run(["clients", "recharge", "alice", "-0.5", "--key", "k1"]), status: 64,
                      mentions: ["AMOUNT must be more than 0"])
        // Still a plain argument otherwise, with the options on either side of it.
        try h.ok(["clients", "recharge", "--key", "k2", "alice", "2.5"])
        #expect(try h.meters()["alice"]?["assigned"] == "2.5")
    }

    @Test func anUnknownQuarantineReasonIsRefused() throws {
        let h = try Harness()
        #expect(try h.createClient("alice").status == 0)
        expectRefusal(try h.run(["quarantine", "list", "--reason", "bogus"]), status: 64,
                      mentions: ["bogus", "unknown_account", "no_rate", "implausible_duration", "column_count"])
        // Every reason the agent can quarantine under is accepted, the ones of every stage included.
        for reason in ["no_rate", "unknown_account", "implausible_duration", "line_too_long", "bad_line"] {
            let ok = try h.run(["quarantine", "list", "--reason", reason])
            #expect(ok.status == 0, "--reason \(reason): \(ok.stderr)")
        }
    }

    @Test func replayingADirectoryExits66NamingIt() throws {
        let h = try Harness()
        let dir = h.path("cdr-dir")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        expectRefusal(try h.run(["replay", "--format", "asterisk-csv", dir]), status: 66, mentions: [dir, "directory"])
        #expect(!FileManager.default.fileExists(atPath: h.storePath), "nothing created for a refused replay")
    }

    /// A store in a directory the user may not write is an I/O error (74), not bad data.
    @Test func anUnwritableStoreDirectoryExits74() throws {
        // Root writes anywhere: run the binary as nobody when the tests run as root.
        let asUser: [String]
        if geteuid() == 0 {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
            asUser = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        } else {
            asUser = []
        }
        let h = try Harness(config: "")
        let locked = h.path("locked")
        try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: true)
        try h.write("creditmeter.toml", "[store]\npath = \"\(locked)/store.db\"\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: h.dir.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: h.configPath)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: locked)
        try h.write("Master.csv", "")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: h.path("Master.csv"))
        for args in [["clients", "create", "--username", "alice", "--first-name", "A", "--last-name", "B",
                      "--email", "a@example.com", "--password-stdin"],
                     ["replay", "--format", "asterisk-csv", h.path("Master.csv")]] {
            let p = Process()
            let full = args + ["--config", h.configPath]
            p.executableURL = URL(fileURLWithPath: asUser.first ?? Harness.binary)
            p.arguments = asUser.isEmpty ? full : Array(asUser.dropFirst()) + [Harness.binary] + full
            p.currentDirectoryURL = h.dir
            let err = Pipe(), inp = Pipe()
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            p.standardInput = inp
            try p.run()
            inp.fileHandleForWriting.write(Data("Passw0rd!\nPassw0rd!\n".utf8))
            try inp.fileHandleForWriting.close()
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            expectRefusal(Harness.Result(status: p.terminationStatus, stdout: "", stderr: e), status: 74,
                          mentions: [locked])
        }
    }

    @Test func quarantineListNamesTheSourcesFile() throws {
        let h = try Harness.tailing()
        #expect(try h.createClient("c0001").status == 0)
        let lines = try h.generate(count: 40, clients: 3, seed: 4)
        try h.append(lines[...])
        try h.ok(["replay", "--source", "pbx", h.path("Master.csv")])
        let text = try h.ok(["quarantine", "list", "--reason", "unknown_account"])
        #expect(text.contains("pbx (") && text.contains("/Master.csv) line "), "\(text)")
        guard let items = try h.json(["quarantine", "list", "--json"]) as? [[String: Any]], let first = items.first else {
            Issue.record("no quarantine entries"); return
        }
        #expect(first["source"] as? String == "pbx")
        #expect((first["file"] as? String)?.hasSuffix("/Master.csv") == true, "\(first)")
    }

    /// The one `--json` style: pretty-printed with two-space indents, `"key": value`, keys sorted.
    static func styleProblems(_ text: String) -> [String] {
        var problems: [String] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            .filter { !$0.isEmpty }
        guard let first = lines.first, first == "{" || first == "[" else { return ["does not start with { or [ on its own line"] }
        if lines.count < 3 { problems.append("not pretty-printed") }
        if text.contains("\" : ") { problems.append("space before a colon") }
        var lastKey: [Int: String] = [:]
        for line in lines {
            let indent = line.prefix { $0 == " " }.count
            if indent % 2 != 0 { problems.append("odd indent: \(line)") }
            let body = line.dropFirst(indent)
            if body.hasPrefix("\""), let close = body.dropFirst().firstIndex(of: "\""),
               body[body.index(after: close)...].hasPrefix(":") {
                let key = String(body[body.index(after: body.startIndex)..<close])
                if let last = lastKey[indent], last > key { problems.append("'\(key)' after '\(last)'") }
                lastKey[indent] = key
            }
            if line.hasSuffix("{") { lastKey[indent + 2] = nil }
        }
        return problems
    }

    @Test func everyJSONOutputHasTheOneStyle() throws {
        let h = try Harness.tailing()
        #expect(try h.createClient("c0001").status == 0)
        #expect(try h.createClient("c0002").status == 0)
        try h.ok(["clients", "recharge", "c0001", "10"])
        let lines = try h.generate(count: 60, clients: 3, seed: 9)
        try h.append(lines[...])
        let outputs: [(String, String)] = [
            ("replay --json", try h.ok(["replay", "--source", "pbx", "--json", h.path("Master.csv")])),
            ("clients list --json", try h.ok(["clients", "list", "--json"])),
            ("clients show --json", try h.ok(["clients", "show", "c0001", "--json"])),
            ("status --json", try h.ok(["status", "--json"])),
            ("quarantine list --json", try h.ok(["quarantine", "list", "--json"])),
            ("quarantine retry --json", try h.ok(["quarantine", "retry", "--json"])),
            ("outbox list --json", try h.ok(["outbox", "list", "--json"])),
            ("purge --json", try h.ok(["purge", "--dry-run", "--json"])),
        ]
        for (name, text) in outputs {
            #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8))) != nil, "\(name) is JSON: \(text)")
            let problems = Self.styleProblems(text)
            #expect(problems.isEmpty, "\(name): \(problems)\n\(text)")
        }
    }

    @Test func theStyleCheckCatchesEachDeviation() {
        #expect(!Self.styleProblems("[{\"b\":1}]").isEmpty)
        #expect(!Self.styleProblems("{\n  \"a\" : 1\n}").isEmpty)
        #expect(!Self.styleProblems("{\n  \"b\": 1,\n  \"a\": 2\n}").isEmpty)
        #expect(Self.styleProblems("[\n  {\n    \"b\": 1\n  },\n  {\n    \"a\": 2\n  }\n]").isEmpty)
    }
}

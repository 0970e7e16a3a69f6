import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Who may read the files the agent keeps and reads: the store is created owner-only whatever the umask,
/// commands that only read never create one, and secret files others can read are pointed out.
@Suite struct StoreFilesTests {
    /// Permission bits of `path`, or nil when it does not exist.
    static func mode(_ path: String) -> Int? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return Int(st.st_mode) & 0o7777
    }

    static func octal(_ m: Int?) -> String { m.map { String($0, radix: 8) } ?? "missing" }

    /// A harness whose store lives at `store` (relative to its directory).
    static func harness(store: String, config extra: String = "") throws -> Harness {
        let h = try Harness(config: extra)
        let toml = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try h.write("creditmeter.toml", toml.replacingOccurrences(of: "path = \"store.db\"", with: "path = \"\(store)\""))
        return h
    }

    static let createArgs = ["clients", "create", "--username", "alice", "--first-name", "A", "--last-name", "B",
                             "--email", "alice@example.com", "--password-stdin"]

    @Test(arguments: ["000", "022"])
    func clientsCreateMakesAnOwnerOnlyStoreWhateverTheUmask(umask: String) throws {
        let h = try Self.harness(store: "new/dir/store.db")
        let r = try h.run(Self.createArgs, stdin: "Passw0rd!\nPassw0rd!\n", umask: umask)
        #expect(r.status == 0, "\(r.stderr)")
        let db = h.path("new/dir/store.db")
        #expect(Self.mode(db) == 0o600, "store.db under umask \(umask): \(Self.octal(Self.mode(db)))")
        for suffix in ["-wal", "-shm", "-journal"] where Self.mode(db + suffix) != nil {
            #expect(Self.mode(db + suffix) == 0o600, "store.db\(suffix) under umask \(umask): \(Self.octal(Self.mode(db + suffix)))")
        }
        for dir in ["new", "new/dir"] {
            #expect(Self.mode(h.path(dir)) == 0o700, "\(dir)/ under umask \(umask): \(Self.octal(Self.mode(h.path(dir))))")
        }
    }

    /// The WAL and shared-memory files exist only while a connection is open: look at them under a running daemon.
    @Test func daemonStoreWalAndShmAreOwnerOnlyUnderUmask000() throws {
        let h = try Harness.tailing()
        let d = try DaemonProcess(h, umask: "000")
        defer { _ = d.terminate() }
        #expect(d.waitForLog("creditmeter started"), "\(d.log)")
        for suffix in ["", "-wal", "-shm"] {
            let m = Self.mode(h.storePath + suffix)
            #expect(m == 0o600, "store.db\(suffix) of a daemon under umask 000: \(Self.octal(m))")
        }
    }

    @Test func anExistingStoreOthersCanReadIsTightenedWhenOpened() throws {
        let h = try Harness()
        #expect(try h.createClient("alice").status == 0)
        #expect(chmod(h.storePath, 0o644) == 0)
        try h.ok(["clients", "list"])
        #expect(Self.mode(h.storePath) == 0o600, "after clients list: \(Self.octal(Self.mode(h.storePath)))")
    }

    static let readOnly: [[String]] = [
        ["clients", "list"], ["clients", "list", "--json"], ["clients", "show", "alice"], ["status"], ["status", "--json"],
        ["quarantine", "list"], ["outbox", "list"], ["outbox", "list", "--dead"], ["purge", "--dry-run"],
        ["replay", "--dry-run", "--format", "asterisk-csv", "cdr.csv"],
        // These change a store, but only one that already has clients, events or quarantine in it.
        ["clients", "recharge", "alice", "5"], ["clients", "disable", "alice"], ["quarantine", "retry"], ["outbox", "retry"],
        ["purge"],
    ]

    @Test(arguments: readOnly)
    func aCommandThatNeedsAStoreNeverCreatesOne(args: [String]) throws {
        let h = try Self.harness(store: "missing/deeper/store.db")
        try h.write("cdr.csv", "")
        let r = try h.run(args)
        let cmd = args.joined(separator: " ")
        #expect(r.status == 66, "\(cmd) exited \(r.status): \(r.stderr)")
        #expect(r.stderr.contains(h.path("missing/deeper/store.db")), "\(cmd): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(cmd): one line: \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: h.path("missing")), "\(cmd) created the store's directory")
    }

    static let secretsConfig = """
        [api]
        listen = "127.0.0.1:PORT"
        admin_token_file = "admin.token"

        [[endpoint]]
        name = "hook"
        url = "http://127.0.0.1:9/"
        secret_file = "hook.secret"
        token_file = "hook.token"

        """

    static func secretsHarness(admin: mode_t, secret: mode_t, token: mode_t) throws -> Harness {
        let h = try Harness(config: secretsConfig.replacingOccurrences(of: "PORT", with: "\(try freePort())"))
        for (name, text, m) in [("admin.token", "0123456789abcdef0123456789abcdef", admin),
                                ("hook.secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", secret),
                                ("hook.token", "bearer-token-1", token)] {
            try h.write(name, text + "\n")
            #expect(chmod(h.path(name), m) == 0)
        }
        return h
    }

    @Test func configCheckWarnsForSecretFilesGroupOrOthersCanRead() throws {
        let h = try Self.secretsHarness(admin: 0o644, secret: 0o640, token: 0o600)
        let r = try h.run(["config", "check"])
        #expect(r.status == 0, "a readable secret file is a warning, not an error: \(r.stderr)")
        let warnings = r.stderr.split(separator: "\n").filter { $0.contains("warning") }
        #expect(warnings.contains { $0.contains("api.admin_token_file") && $0.contains(h.path("admin.token")) && $0.contains("0644") },
                "\(r.stderr)")
        #expect(warnings.contains { $0.contains("endpoint[0].secret_file") && $0.contains(h.path("hook.secret")) && $0.contains("0640") },
                "\(r.stderr)")
        #expect(!r.stderr.contains("endpoint[0].token_file"), "hook.token is 0600: \(r.stderr)")
        #expect(!r.stderr.contains("0123456789abcdef") && !r.stderr.contains("whsec_"), "no secret in the output")

        for name in ["admin.token", "hook.secret"] { #expect(chmod(h.path(name), 0o600) == 0) }
        let quiet = try h.run(["config", "check"])
        #expect(quiet.status == 0 && quiet.stderr.isEmpty, "all 0600: \(quiet.stderr)")
    }

    @Test func runWarnsAtStartForASecretFileOthersCanRead() throws {
        let h = try Self.secretsHarness(admin: 0o604, secret: 0o600, token: 0o600)
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("creditmeter started"), "\(d.log)")
        let lines = d.log.split(separator: "\n")
        #expect(lines.contains { $0.contains("WARNING") && $0.contains("api.admin_token_file") && $0.contains(h.path("admin.token"))
                    && $0.contains("0604") }, "\(d.log)")
        #expect(!d.log.contains("endpoint[0].secret_file") && !d.log.contains("endpoint[0].token_file"),
                "only the readable file is named: \(d.log)")
    }

    /// SIGHUP goes through the same checks: a config a restart would refuse is not taken while running.
    @Test func aReloadRefusesWhatAStartWouldRefuse() throws {
        let h = try Harness.tailing()
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("reload: SIGHUP re-reads"), "\(d.log)")
        try h.write("short.token", "abcde\n")
        let toml = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try h.write("creditmeter.toml", toml.replacingOccurrences(of: "[api]\n", with: "[api]\nadmin_token_file = \"short.token\"\n"))
        kill(d.process.processIdentifier, SIGHUP)
        #expect(d.waitForLog("reload refused"), "\(d.log)")
        #expect(d.log.contains("api.admin_token_file"), "\(d.log)")
        #expect(d.process.isRunning)
    }

    /// A config `run` refuses at start, the files it names, and the key the refusal must name.
    struct Refusal: Sendable, CustomTestStringConvertible {
        var name: String
        var config: String
        var files: [String: [UInt8]] = [:]
        var key: String
        var testDescription: String { name }
    }

    static let endpoint = """
        [[endpoint]]
        name = "hook"
        url = "http://127.0.0.1:9/"

        """

    static let refusals: [Refusal] = [
        Refusal(name: "listen on 0.0.0.0 without an admin token", config: "[api]\nlisten = \"0.0.0.0:PORT\"\n", key: "api.listen"),
        Refusal(name: "a 5-character admin token", config: "[api]\nlisten = \"127.0.0.1:PORT\"\nadmin_token_file = \"t\"\n",
                files: ["t": Array("abcde\n".utf8)], key: "api.admin_token_file"),
        Refusal(name: "an admin token with a space", config: "[api]\nlisten = \"127.0.0.1:PORT\"\nadmin_token_file = \"t\"\n",
                files: ["t": Array("0123456789 abcdef0123456789\n".utf8)], key: "api.admin_token_file"),
        Refusal(name: "an admin token that is not UTF-8", config: "[api]\nlisten = \"127.0.0.1:PORT\"\nadmin_token_file = \"t\"\n",
                files: ["t": Array("0123456789abcdef".utf8) + [0xFF, 0xFE]], key: "api.admin_token_file"),
        Refusal(name: "an admin token file that is a directory", config: "[api]\nlisten = \"127.0.0.1:PORT\"\nadmin_token_file = \"d\"\n",
                files: ["d/x": Array("".utf8)], key: "api.admin_token_file"),
        Refusal(name: "a listen host that does not resolve",
                config: "[api]\nlisten = \"no-such-host.invalid:PORT\"\nadmin_token_file = \"t\"\n",
                files: ["t": Array("0123456789abcdef0123456789abcdef\n".utf8)], key: "api.listen"),
        Refusal(name: "a secret_file without a whsec_ secret", config: "[api]\nlisten = \"127.0.0.1:PORT\"\n\n" + endpoint + "secret_file = \"s\"\n",
                files: ["s": Array("not-a-webhook-secret\n".utf8)], key: "endpoint[0].secret_file"),
        Refusal(name: "an empty token_file", config: "[api]\nlisten = \"127.0.0.1:PORT\"\n\n" + endpoint
                    + "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\ntoken_file = \"k\"\n",
                files: ["k": Array("\n".utf8)], key: "endpoint[0].token_file"),
        Refusal(name: "a token_file of two lines", config: "[api]\nlisten = \"127.0.0.1:PORT\"\n\n" + endpoint
                    + "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\ntoken_file = \"k\"\n",
                files: ["k": Array("one\ntwo\n".utf8)], key: "endpoint[0].token_file"),
        Refusal(name: "a store path that is a directory", config: "[api]\nlisten = \"127.0.0.1:PORT\"\n", files: ["store.db/x": []],
                key: "store.path"),
    ]

    @Test(arguments: refusals)
    func configCheckRefusesWhatRunRefuses(_ c: Refusal) throws {
        let h = try Harness(config: c.config.replacingOccurrences(of: "PORT", with: "\(try freePort())"))
        for (name, bytes) in c.files {
            let path = h.path(name)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(chmod(path, 0o600) == 0)
        }
        let check = try h.run(["config", "check"])
        #expect(check.status == 78, "config check, \(c.name): exit \(check.status): \(check.stdout)\(check.stderr)")
        #expect(check.stderr.contains(c.key), "config check, \(c.name): \(check.stderr)")

        let d = try DaemonProcess(h)
        let status = d.waitForExit(timeout: 20)
        #expect(status == 78, "run, \(c.name): exit \(status.map(String.init) ?? "none (still running)"): \(d.log)")
        #expect(d.log.contains(c.key), "run, \(c.name): \(d.log)")
    }
}

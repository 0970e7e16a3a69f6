import Foundation
import Testing
import TestSupport

/// Runs the real `creditmeter` binary in a scratch directory with its own config and store.
final class Harness: @unchecked Sendable {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    let dir: URL
    var configPath: String { dir.appendingPathComponent("creditmeter.toml").path }
    var storePath: String { dir.appendingPathComponent("store.db").path }

    static let binary: String = {
        if let env = ProcessInfo.processInfo.environment["CREDITMETER_BIN"] { return env }
        // The test runner sits in the same build folder as the executable product.
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        if dir.lastPathComponent.hasSuffix(".xctest") || dir.path.contains(".xctest/") {
            while dir.path.contains(".xctest") { dir = dir.deletingLastPathComponent() }
        }
        return dir.appendingPathComponent("creditmeter").path
    }()

    /// `store` replaces the `[store]` table (a SQLite file in the scratch directory), e.g. with a
    /// PostgreSQL `url` and `[node]`.
    init(config extra: String = "", plans: [String: String] = ["default": Harness.defaultDeck], store: String? = nil) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cm-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var store = store
        if store == nil, Harness.onPostgres {
            // The suites that run on both stores: the same cases against a database of their own.
            let db = try TestDatabase()
            database = db
            try write("pg.password", (db.password ?? "") + "\n")
            store = "[store]\nurl = \"\(db.url)\"\npassword_file = \"pg.password\"\n\n[node]\nname = \"pbx1\""
        }
        var toml = (store ?? "[store]\npath = \"store.db\"") + "\n\n"
        for (name, deck) in plans.sorted(by: { $0.key < $1.key }) {
            try write("rates-\(name).csv", deck)
            toml += "[[plan]]\nname = \"\(name)\"\nrates = \"rates-\(name).csv\"\n\n"
        }
        toml += extra
        try write("creditmeter.toml", toml)
        #expect(FileManager.default.isExecutableFile(atPath: Harness.binary),
                "build the creditmeter product first (swift build --build-tests): \(Harness.binary)")
    }

    /// The database of a harness made with `CREDITMETER_TEST_STORE=postgres`, dropped with it.
    private(set) var database: TestDatabase?

    /// `CREDITMETER_TEST_STORE=postgres`: a harness given no store gets a PostgreSQL database, not a SQLite file.
    static let onPostgres = ProcessInfo.processInfo.environment["CREDITMETER_TEST_STORE"] == "postgres"

    deinit {
        database?.drop()
        try? FileManager.default.removeItem(at: dir)
    }

    static let defaultDeck = SampleDeck.harness

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// `umask` (octal, e.g. "022") runs the binary under that file-creation mask through /bin/sh; the
    /// test process's own umask is process-wide and shared with tests running beside it.
    func run(_ args: [String], stdin: String? = nil, config: Bool = true, umask: String? = nil) throws -> Result {
        let p = Process()
        let full = args + (config && args.first != "cdrgen" ? ["--config", configPath] : [])
        Harness.command(p, full, umask: umask)
        p.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        env.removeValue(forKey: "CREDITMETER_CONFIG")
        p.environment = env
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try inp.fileHandleForWriting.close()
        // Read both pipes before waiting so a chatty child never blocks on a full pipe.
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: e, as: UTF8.self))
    }

    /// Points `p` at the binary with `args`, under `umask` when given (the shell execs, so the pid is the binary's).
    static func command(_ p: Process, _ args: [String], umask: String?) {
        if let umask {
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "umask \(umask) && exec \"$0\" \"$@\"", binary] + args
        } else {
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = args
        }
    }

    /// Runs and requires exit 0, returning stdout.
    @discardableResult
    func ok(_ args: [String], stdin: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try run(args, stdin: stdin)
        #expect(r.status == 0, "creditmeter \(args.joined(separator: " ")) exited \(r.status): \(r.stderr)",
                sourceLocation: sourceLocation)
        return r.stdout
    }

    func json(_ args: [String], stdin: String? = nil) throws -> Any {
        let out = try ok(args, stdin: stdin)
        return try JSONSerialization.jsonObject(with: Data(out.utf8))
    }

    func createClient(_ username: String, accounts: [String] = [], email: String? = nil,
                      password: String = "Passw0rd!", plan: String? = nil) throws -> Result {
        var args = ["clients", "create", "--username", username, "--first-name", "Test", "--last-name", "User",
                    "--email", email ?? "\(username)@example.com", "--password-stdin"]
        for a in accounts { args += ["--account", a] }
        if let plan { args += ["--plan", plan] }
        return try run(args, stdin: "\(password)\n\(password)\n")
    }

    /// `clients list --json` as username → (available, used, assigned) strings and level.
    func meters() throws -> [String: [String: String]] {
        guard let list = try json(["clients", "list", "--json"]) as? [[String: Any]] else { return [:] }
        var out: [String: [String: String]] = [:]
        for c in list {
            guard let u = c["username"] as? String else { continue }
            var m: [String: String] = [:]
            for k in ["available", "used", "assigned", "level", "color", "status"] { m[k] = c[k] as? String }
            out[u] = m
        }
        return out
    }
}

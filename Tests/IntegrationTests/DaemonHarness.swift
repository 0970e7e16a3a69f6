import Foundation
import Testing
import TestSupport

/// A running `creditmeter run` child process, its log file, and the CDR file it tails.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String

    /// `umask` is set before exec; `openFiles` sets RLIMIT_NOFILE before exec: the hard limit, and the soft
    /// one too unless `softOpenFiles` gives it (with both equal the daemon cannot raise it).
    init(_ h: Harness, extraEnv: [String: String] = [:], arguments: [String] = [], umask: String? = nil,
         openFiles: Int? = nil, softOpenFiles: Int? = nil) throws {
        logPath = h.path("daemon-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        var setup: [String] = []
        if let umask { setup.append("umask \(umask)") }
        if let openFiles {
            setup.append(softOpenFiles.map { "ulimit -Sn \($0) && ulimit -Hn \(openFiles)" } ?? "ulimit -n \(openFiles)")
        }
        let args = ["run", "--config", h.configPath] + arguments
        if setup.isEmpty {
            process.executableURL = URL(fileURLWithPath: Harness.binary)
            process.arguments = args
        } else {
            // `exec` keeps the pid, so `process.processIdentifier` is the daemon's.
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", setup.joined(separator: " && ") + " && exec \"$0\" \"$@\"", Harness.binary] + args
        }
        process.currentDirectoryURL = h.dir
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        env.removeValue(forKey: "JOURNAL_STREAM")
        env.merge(extraEnv) { _, new in new }
        process.environment = env
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then the exit status (or nil if it did not exit within `timeout`).
    func terminate(timeout: TimeInterval = 10) -> Int32? {
        kill(process.processIdentifier, SIGTERM)
        guard holds(within: timeout, { !process.isRunning }) else { kill9(); return nil }
        return process.terminationStatus
    }

    /// The exit status once the process ends by itself, or nil (and killed) if it still runs after `timeout`.
    func waitForExit(timeout: TimeInterval = 15) -> Int32? {
        guard holds(within: timeout, { !process.isRunning }) else { kill9(); return nil }
        return process.terminationStatus
    }

    /// Waits until the log contains `text` (e.g. "source opened").
    func waitForLog(_ text: String, timeout: TimeInterval = 15) -> Bool {
        // A process that has exited writes no more: its log is final.
        _ = holds(within: timeout) { log.contains(text) || !process.isRunning }
        return log.contains(text)
    }
}

extension Harness {
    /// A harness whose config tails `Master.csv` in its directory from the beginning.
    /// `port` is the API's (a free one unless given); `api` are extra lines for the `[api]` table.
    static func tailing(format: String = "asterisk-csv", startAt: String = "beginning", port: Int? = nil,
                        api: String = "", extra: String = "",
                        plans: [String: String] = ["default": Harness.defaultDeck], store: String? = nil) throws -> Harness {
        // Each daemon gets its own API port, so tests never fight over 127.0.0.1:8787.
        try Harness(config: """
            [api]
            listen = "127.0.0.1:\(try port ?? freePort())"
            \(api)

            [[source]]
            name = "pbx"
            path = "Master.csv"
            format = "\(format)"
            timezone = "UTC"
            start_at = "\(startAt)"

            \(extra)
            """, plans: plans, store: store)
    }

    /// A tailing harness with client c0001 and a daemon that has opened its source; the caller
    /// terminates the daemon.
    static func runningWithOneClient(sourceLocation: SourceLocation = #_sourceLocation) throws -> (Harness, DaemonProcess) {
        let h = try Harness.tailing()
        try h.createClients(1)
        let d = try DaemonProcess(h)
        #expect(d.waitForLog("source opened"), sourceLocation: sourceLocation)
        return (h, d)
    }

    /// Lines of a seeded cdrgen file (without newlines).
    func generate(count: Int, clients: Int, seed: Int) throws -> [String] {
        let file = path("gen-\(seed).csv")
        try ok(["cdrgen", "--format", "asterisk-csv", "--count", "\(count)", "--clients", "\(clients)", "--seed", "\(seed)", "-o", file])
        return try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func append(_ lines: ArraySlice<String>, to name: String = "Master.csv") throws {
        let p = path(name)
        if !FileManager.default.fileExists(atPath: p) { _ = FileManager.default.createFile(atPath: p, contents: nil) }
        guard let fh = FileHandle(forWritingAtPath: p) else { throw CocoaError(.fileNoSuchFile) }
        defer { try? fh.close() }
        try fh.seekToEnd()
        try fh.write(contentsOf: Data(lines.map { $0 + "\n" }.joined().utf8))
    }

    func createClients(_ count: Int, credits: String = "1000") throws {
        for i in 1...count {
            let u = String(format: "c%04d", i)
            let r = try createClient(u)
            #expect(r.status == 0, "\(r.stderr)")
            try ok(["clients", "recharge", u, credits])
        }
    }

    /// Polls `clients list --json` until every account's Used equals the oracle's, or the timeout.
    /// Waits until clients c0001…c000N show exactly the expected Used; throws naming what they showed
    /// last when that does not happen in time.
    func waitForUsed(_ expected: [String: Int64], clients: Int, timeout: TimeInterval = 20) throws -> [String: String] {
        let want = Dictionary(uniqueKeysWithValues: (1...clients).map { i -> (String, String) in
            let u = String(format: "c%04d", i)
            return (u, Oracle.format(expected[u] ?? 0))
        })
        var used: [String: String] = [:]
        do {
            try eventually("Used \(want)", timeout: timeout, every: 0.1) {
                used = try meters().mapValues { $0["used"] ?? "?" }
                return used == want
            }
        } catch var e as WaitTimeout {
            e.last = "\(used)"
            throw e
        }
        return used
    }

    static func expectedUsed(_ lines: [String], deck: String = defaultDeck) -> [String: Int64] {
        Oracle.expectAsterisk(lines.joined(separator: "\n"), deck: Oracle.deck(deck)).usedByAccount
    }
}

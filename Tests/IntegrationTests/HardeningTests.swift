import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A store the daemon cannot write, made for real: a small tmpfs mounted under the store and filled up
/// (SQLite answers SQLITE_FULL), and the store's files made immutable with `chattr +i` (the kernel
/// refuses every write: SQLITE_IOERR). The daemon must say so, keep running without charging or moving
/// its position, and once writes work again catch up with every CDR charged exactly once.
///
/// Needs root (mount, chattr) and a filesystem with immutable files under the temporary directory;
/// where either is missing the test is skipped, not passed.
@Suite(.serialized) struct HardeningTests {
    /// Runs a command; its exit status and output.
    @discardableResult
    static func sh(_ args: String...) -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { return (-1, "\(error)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cm-hardening-probe").path

    static let canMount: Bool = {
        let dir = scratch + "-mnt"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).status == 0 else { return false }
        return sh("umount", dir).status == 0
    }()

    static let canChattr: Bool = {
        let file = scratch + "-attr"
        guard FileManager.default.createFile(atPath: file, contents: Data("x".utf8)) else { return false }
        defer { sh("chattr", "-i", file); try? FileManager.default.removeItem(atPath: file) }
        guard sh("chattr", "+i", file).status == 0 else { return false }
        // Immutable must stop root too, or the test would prove nothing.
        return FileHandle(forWritingAtPath: file) == nil
    }()

    /// A tailing harness whose store lives in `db/` (so a filesystem can be mounted there).
    static func harness() throws -> Harness {
        let h = try Harness.tailing()
        let toml = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try h.write("creditmeter.toml", toml.replacingOccurrences(of: "path = \"store.db\"", with: "path = \"db/store.db\""))
        try FileManager.default.createDirectory(atPath: h.path("db"), withIntermediateDirectories: true)
        return h
    }

    /// Fills the filesystem holding `dir` to the last block; returns the filler's path.
    static func fill(_ dir: String) -> String {
        let path = dir + "/filler"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return path }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0xA5, count: 1 << 20)
        for size in [1 << 20, 4096, 512, 1] {
            while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, size) }) > 0 {}
        }
        fsync(fd)
        return path
    }

    func committedOffset(_ h: Harness) throws -> Int64? {
        guard let status = try h.json(["status", "--json"]) as? [String: Any],
              let src = (status["sources"] as? [[String: Any]])?.first else { return nil }
        return (src["offset"] as? NSNumber)?.int64Value
    }

    func usedStrings(_ expected: [String: Int64], clients: Int) -> [String: String] {
        Dictionary(uniqueKeysWithValues: (1...clients).map { i in
            let u = String(format: "c%04d", i)
            return (u, Oracle.format(expected[u] ?? 0))
        })
    }

    /// The shared script: charge a first part, break the store, append the rest, watch the daemon
    /// refuse to charge and hold its position, mend the store, watch it catch up exactly once.
    func breakAndMend(_ h: Harness, clients: Int, seed: Int, expectedError: String,
                      breakStore: () throws -> Void, mend: () throws -> Void) throws {
        try h.createClients(clients)
        let lines = try h.generate(count: 3_200, clients: clients, seed: seed)
        try h.append(lines[0..<200])
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("source opened"), "\(d.log)")
        let before = try h.waitForUsed(Harness.expectedUsed(Array(lines[0..<200])), clients: clients)
        #expect(before == usedStrings(Harness.expectedUsed(Array(lines[0..<200])), clients: clients), "first part charged")
        let offset = try committedOffset(h)

        try breakStore()
        // One batch far bigger than anything written so far, so the WAL must grow (SQLite reuses WAL
        // space it already has, which a small batch might fit in).
        try h.append(lines[200...])
        #expect(d.waitForLog("source cannot charge", timeout: 20), "the daemon says it cannot charge: \(d.log)")
        #expect(d.log.contains(expectedError), "the error names the cause (\(expectedError)): \(d.log)")
        #expect(d.log.contains("position kept, will retry"))
        // At least one retry, still failing: the error line again.
        try eventually("a retry that fails too", timeout: 20) {
            d.log.components(separatedBy: "source cannot charge").count - 1 >= 2
        }
        #expect(d.process.isRunning, "the daemon keeps running")
        #expect(try h.meters().mapValues { $0["used"] ?? "?" } == before, "nothing charged while the store is broken")
        #expect(try committedOffset(h) == offset, "the committed position has not moved")

        try mend()
        let all = Harness.expectedUsed(lines)
        let after = try h.waitForUsed(all, clients: clients, timeout: 60)
        #expect(after == usedStrings(all, clients: clients), "caught up: every CDR charged once: \(d.log)")
        #expect(d.log.contains("source recovered: charging again"))
        let size = (try FileManager.default.attributesOfItem(atPath: h.path("Master.csv"))[.size] as? NSNumber)?.int64Value
        #expect(try committedOffset(h) == size, "position at the end of the file")
        guard let q = try h.json(["quarantine", "list", "--json"]) as? [Any] else { return }
        #expect(q.isEmpty, "nothing quarantined")
        #expect(d.terminate() == 0, "and it still stops cleanly: \(d.log)")
    }

    /// A 6 MiB tmpfs over the harness's store directory; the caller unmounts it, mentioning `h` in that
    /// defer so the harness (whose deinit deletes the directory) lives until after the unmount.
    static func smallDisk(_ h: Harness) throws -> String {
        let db = h.path("db")
        #expect(sh("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", db).status == 0)
        return db
    }

    @Test(.enabled(if: canMount, "needs root and mount(8) for a small tmpfs"))
    func diskFullStopsChargingAndCatchesUp() throws {
        let h = try Self.harness()
        let db = try Self.smallDisk(h)
        defer { Self.sh("umount", "-l", db); withExtendedLifetime(h) {} }
        var filler = ""
        try breakAndMend(h, clients: 5, seed: 41, expectedError: "database or disk is full", breakStore: {
            filler = Self.fill(db)
            // Prove the filesystem really is full before relying on it.
            #expect(!FileManager.default.createFile(atPath: db + "/probe", contents: Data(repeating: 1, count: 8192)),
                    "the tmpfs is full")
        }, mend: {
            try FileManager.default.removeItem(atPath: filler)
        })
    }

    @Test(.enabled(if: canChattr, "needs root and a filesystem with immutable files (chattr +i)"))
    func readOnlyStoreStopsChargingAndCatchesUp() throws {
        let h = try Self.harness()
        let files = ["store.db", "store.db-wal"].map { h.path("db/\($0)") }
        defer { for f in files { Self.sh("chattr", "-i", f) }; withExtendedLifetime(h) {} }
        try breakAndMend(h, clients: 4, seed: 42, expectedError: "sqlite error", breakStore: {
            for f in files { #expect(Self.sh("chattr", "+i", f).status == 0, "chattr +i \(f)") }
        }, mend: {
            for f in files { #expect(Self.sh("chattr", "-i", f).status == 0) }
        })
    }

    /// Killed while the disk is full, started again on the still-full disk: it must start, wait and
    /// keep the committed position, then catch up when space returns.
    @Test(.enabled(if: canMount, "needs root and mount(8) for a small tmpfs"))
    func restartOnAFullDiskWaitsAndCatchesUp() throws {
        let h = try Self.harness()
        let db = try Self.smallDisk(h)
        defer { Self.sh("umount", "-l", db); withExtendedLifetime(h) {} }
        try h.createClients(3)
        let lines = try h.generate(count: 3_000, clients: 3, seed: 43)
        try h.append(lines[0..<100])
        var d = try DaemonProcess(h)
        let first = Harness.expectedUsed(Array(lines[0..<100]))
        #expect(try h.waitForUsed(first, clients: 3) == usedStrings(first, clients: 3))
        let filler = Self.fill(db)
        try h.append(lines[100...])
        #expect(d.waitForLog("source cannot charge", timeout: 20), "\(d.log)")
        d.kill9()
        d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("source cannot charge", timeout: 20), "started on a full disk, it says so: \(d.log)")
        usleep(1_000_000)
        #expect(d.process.isRunning, "and keeps running: \(d.log)")
        #expect(try h.meters().mapValues { $0["used"] ?? "?" } == usedStrings(first, clients: 3))
        try FileManager.default.removeItem(atPath: filler)
        let all = Harness.expectedUsed(lines)
        #expect(try h.waitForUsed(all, clients: 3, timeout: 60) == usedStrings(all, clients: 3), "\(d.log)")
    }

    /// Config text the fuzzer found to crash TOMLKit (an assertion in toml++, a trap in TOMLKit): a SIGHUP
    /// reload of it must be refused with the daemon still running and still charging.
    @Test func reloadingAConfigThatCrashedTheTOMLParserIsRefused() throws {
        let h = try Harness.tailing()
        try h.createClients(1)
        let lines = try h.generate(count: 40, clients: 1, seed: 44)
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("source opened"), "\(d.log)")
        // A SIGHUP before the reload service traps it is ignored (not fatal): wait until it listens.
        #expect(d.waitForLog("SIGHUP re-reads the config"), "\(d.log)")
        let good = try String(contentsOfFile: h.configPath, encoding: .utf8)
        let bad = ["[=]\n", "[[[store]]]\n", "a = [}\n", "a = 2024-12-31 1\n", "\"k\\u0000\" = 1\n"]
        for (n, text) in bad.enumerated() {
            try h.write("creditmeter.toml", good + text)
            kill(d.process.processIdentifier, SIGHUP)
            _ = holds(within: 10) { d.log.components(separatedBy: "reload refused").count >= n + 2 }
            #expect(d.log.components(separatedBy: "reload refused").count == n + 2, "\(text) refused: \(d.log)")
            #expect(d.process.isRunning, "still running after reloading \(text)")
        }
        try h.write("creditmeter.toml", good)
        try h.append(lines[...])
        let want = Harness.expectedUsed(lines)
        #expect(try h.waitForUsed(want, clients: 1) == usedStrings(want, clients: 1), "still charging: \(d.log)")
    }
}

import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The tailer under file-descriptor exhaustion: a rotated-away file must never be taken as gone
/// because the daemon could not open or list something for a while.
@Suite(.serialized) struct TailPressureTests {
    /// Descriptors open in process `pid` now.
    /// How many of the descriptor numbers below `limit` process `pid` has open: what it can still open is
    /// `limit` minus this. Not the count of all its descriptors: one inherited above the limit (a test
    /// process's socket without close-on-exec) counts there without taking a number the daemon could use.
    static func usedBelow(_ limit: Int, _ pid: Int32) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap(Int.init).filter { $0 < limit }.count
    }

    /// An idle TCP connection to 127.0.0.1:`port`, or -1.
    static func connectLoopback(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if r != 0 { close(fd); return -1 }
        return fd
    }

    /// Holds idle connections until the daemon has no descriptor left, each one accepted before the
    /// next is made, so none waits in the listen backlog to grab a descriptor the tailer frees.
    static func exhaust(pid: Int32, port: Int, limit: Int) -> [Int32] {
        var held: [Int32] = []
        while usedBelow(limit, pid) < limit && held.count < limit {
            let before = usedBelow(limit, pid)
            let fd = connectLoopback(port)
            guard fd >= 0 else { break }
            held.append(fd)
            // Not accepted within 5 s: already full.
            guard holds(within: 5, every: 0.005, { usedBelow(limit, pid) > before }) else { break }
        }
        return held
    }

    /// "Max open files" soft and hard limits of process `pid`.
    static func openFilesLimits(_ pid: Int32) -> (soft: String, hard: String)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }) else { return nil }
        let fields = line.dropFirst("Max open files".count).split(separator: " ")
        guard fields.count >= 2 else { return nil }
        return (String(fields[0]), String(fields[1]))
    }

    @Test func aRotatedFileGoneWhileStoppedIsGivenUpAndCounted() throws {
        let port = try freePort()
        let h = try Harness.tailing(port: port)
        try h.createClients(2)
        let lines = try h.generate(count: 60, clients: 2, seed: 41)
        try h.append(lines[0..<20])
        var d = try DaemonProcess(h)
        let first = Harness.expectedUsed(Array(lines[0..<20]))
        #expect(try h.waitForUsed(first, clients: 2)["c0001"] == Oracle.format(first["c0001"] ?? 0))
        #expect(d.terminate() == 0)
        // While it is down: lines it never reads, then the file rotated and removed (compressed away).
        try h.append(lines[20..<40])
        #expect(rename(h.path("Master.csv"), h.path("Master.csv.1")) == 0)
        #expect(unlink(h.path("Master.csv.1")) == 0)
        try h.append(lines[40...])
        d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        let expected = Harness.expectedUsed(Array(lines[0..<20] + lines[40...]))
        let used = try h.waitForUsed(expected, clients: 2)
        #expect(used["c0002"] == Oracle.format(expected["c0002"] ?? 0), "the new file is charged")
        #expect(d.log.contains("ERROR the file read before the restart"), "an error line: \(d.log)")
        guard let status = try h.json(["status", "--json"]) as? [String: Any],
              let src = (status["sources"] as? [[String: Any]])?.first else {
            Issue.record("no status"); return
        }
        #expect((src["given_up_files"] as? NSNumber)?.intValue == 1)
        // The earlier run's size is not known to this one: the bytes are counted as 0.
        #expect((src["given_up_bytes"] as? NSNumber)?.intValue == 0)
        #expect(try h.ok(["status"]).contains("GIVEN UP 1 rotated file(s)"))
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-sf", "http://127.0.0.1:\(port)/metrics"]
        let out = Pipe()
        curl.standardOutput = out
        try curl.run()
        let metrics = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        curl.waitUntilExit()
        #expect(metrics.contains(#"creditmeter_source_given_up_files_total{source="pbx"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"creditmeter_source_given_up_bytes_total{source="pbx"} 0"#))
    }

    @Test func runRaisesItsOpenFilesSoftLimitToTheHardLimit() throws {
        let h = try Harness.tailing()
        let d = try DaemonProcess(h, openFiles: 4096, softOpenFiles: 256)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("source opened"), "\(d.log)")
        let limits = Self.openFilesLimits(d.process.processIdentifier)
        #expect(limits?.soft == "4096", "soft limit raised to the hard one: \(String(describing: limits))")
        #expect(limits?.hard == "4096")
    }

    @Test func renameRotationUnderDescriptorExhaustionLosesNothing() throws {
        // The scenario needs every descriptor of the daemon taken from the rotation until the pressure is
        // released, so the API's idle timeout is set far out of the way (at 10 s it closed the held
        // connections mid-scenario on a loaded machine, and the tailer then rightly finished the renamed
        // file and switched while the writer still appended to it). A descriptor the daemon holds only for
        // a moment can still make the count look full while one is free; then the tailer switches at once
        // and the scenario tests nothing, so such an attempt is started again (a fresh daemon and
        // directory). A loss under real exhaustion still fails the test.
        for attempt in 1...3 {
            if try rotationUnderExhaustion(attempt: attempt) { return }
        }
        Issue.record("the daemon never ran out of descriptors at the rotation in 3 attempts")
    }

    /// False when the precondition did not hold (the tailer never hit the limit); true when it ran.
    private func rotationUnderExhaustion(attempt: Int) throws -> Bool {
        let port = try freePort()
        // The held connections are the pressure: the API must not close them as idle meanwhile.
        let h = try Harness.tailing(port: port, api: "read_timeout_seconds = 3600")
        try h.createClients(4)
        let lines = try h.generate(count: 900, clients: 4, seed: 31)
        try h.append(lines[0..<300])
        let limit = 64
        let d = try DaemonProcess(h, openFiles: limit)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("source opened"), "\(d.log)")
        let first = Harness.expectedUsed(Array(lines[0..<300]))
        let before = try h.waitForUsed(first, clients: 4)
        #expect(before["c0001"] == Oracle.format(first["c0001"] ?? 0), "the first lines are charged before the pressure")
        let pid = d.process.processIdentifier

        var held = Self.exhaust(pid: pid, port: port, limit: limit)
        defer { held.forEach { close($0) } }
        #expect(Self.usedBelow(limit, pid) == limit, "the daemon's descriptors are all in use (\(held.count) connections held)")

        // Rename rotation; the new file appears with its lines at once, and the writer still appends
        // to the renamed file (FreeSWITCH until it is told to reopen).
        try FileManager.default.moveItem(atPath: h.path("Master.csv"), toPath: h.path("Master.csv.1"))
        try h.append(lines[600...], to: "next.tmp")
        #expect(rename(h.path("next.tmp"), h.path("Master.csv")) == 0)
        guard d.waitForLog("source cannot charge", timeout: 10) else {
            // Only a tailer that found a free descriptor gets past the rotation without an error.
            #expect(d.log.contains("now reading"), "attempt \(attempt): neither an error nor a switch: \(d.log)")
            return false
        }
        // The writer goes on appending to the renamed file for 3 s, 10 lines every 100 ms: each append
        // wakes the source, but it retries on its back-off (1 s, then 2 s), not at every wake-up. (A
        // retry loop that spins while descriptors are short keeps work queued on libdispatch, whose
        // pool monitor opens /proc/<tid>/stat once a second and traps when that open fails.)
        for start in stride(from: 300, to: 600, by: 10) {
            try h.append(lines[start..<(start + 10)], to: "Master.csv.1")
            usleep(100_000)
        }
        let failures = d.log.components(separatedBy: "source cannot charge").count - 1
        #expect(failures >= 2 && failures <= 4, "retried with back-off, not at every append: \(failures) failures in 3 s")

        held.forEach { close($0) }
        held = []
        let expected = Harness.expectedUsed(lines)
        let used = try h.waitForUsed(expected, clients: 4, timeout: 60)
        for i in 1...4 {
            let u = String(format: "c%04d", i)
            #expect(used[u] == Oracle.format(expected[u] ?? 0), "used of \(u) after the pressure is released: \(d.log)")
        }
        #expect(!d.log.contains("are lost"), "no file given up: \(d.log)")
        let status = try h.json(["status", "--json"]) as? [String: Any]
        let source = (status?["sources"] as? [[String: Any]])?.first
        #expect((source?["given_up_files"] as? NSNumber)?.intValue == 0)
        #expect(d.process.isRunning, "the daemon survived: \(d.log)")
        return true
    }
}

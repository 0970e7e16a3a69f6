import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A unix datagram socket standing in for systemd's `$NOTIFY_SOCKET`.
final class NotifySocket {
    let path: String
    let fd: Int32

    init(dir: URL) throws {
        path = dir.appendingPathComponent("notify.sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(rc == 0, "bind \(path)")
    }

    deinit { close(fd) }

    /// Every datagram received within `timeout`, until one contains `until`.
    func receive(until: String, timeout: TimeInterval = 10) -> [String] {
        var out: [String] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buf = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 {
                let msg = String(decoding: buf[0..<n], as: UTF8.self)
                out.append(msg)
                if msg.contains(until) { break }
            }
        }
        return out
    }
}

@Suite(.serialized) struct ServiceTests {
    @Test func speaksTheSystemdNotifyProtocol() throws {
        let h = try Harness.tailing()
        let sock = try NotifySocket(dir: h.dir)
        let d = try DaemonProcess(h, extraEnv: ["NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "2000000", "JOURNAL_STREAM": "8:1234"])
        let start = sock.receive(until: "WATCHDOG=1")
        #expect(start.contains { $0.contains("READY=1") }, "\(start)")
        #expect(start.contains { $0.contains("STATUS=") })
        #expect(start.contains { $0 == "WATCHDOG=1" })
        #expect(d.terminate() == 0)
        let stop = sock.receive(until: "STOPPING=1", timeout: 3)
        #expect(stop.contains("STOPPING=1"), "\(stop)")
        // Under journald every log line carries a syslog priority prefix.
        let lines = d.log.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix("<") }, "\(d.log)")
        #expect(d.log.contains("<5>creditmeter started"))
    }

    @Test func sighupReloadsRatesAndRefusesABadConfig() throws {
        let (h, d) = try Harness.runningWithOneClient()
        defer { _ = d.terminate() }
        func cdr(_ id: Int) -> String {
            #""c0001","100","12125550100","out","x","SIP/1","SIP/2","Dial","","2026-01-01 10:00:00","2026-01-01 10:00:05","2026-01-01 10:01:05",65,60,"ANSWERED","DOCUMENTATION","1767261600.\#(id)","","","1767261600.\#(id)",1"#
        }
        try h.append([cdr(1)][...])
        #expect(try h.waitForUsed(["c0001": 10_900], clients: 1)["c0001"] == "0.0109")

        // A new deck: New York now costs 1 credit a minute, 60/60, no fee.
        try h.write("rates-default.csv", Harness.defaultDeck.replacingOccurrences(of: "1212,0.0099,0.001,30,6", with: "1212,1,0,60,60"))
        kill(d.process.processIdentifier, SIGHUP)
        #expect(d.waitForLog("config reloaded"), "\(d.log)")
        try h.append([cdr(2)][...])
        #expect(try h.waitForUsed(["c0001": 1_010_900], clients: 1)["c0001"] == "1.0109")

        // A broken deck is refused and the running rates stay.
        try h.write("rates-default.csv", "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n1212,abc,0,1,1\n")
        kill(d.process.processIdentifier, SIGHUP)
        #expect(d.waitForLog("reload refused"), "\(d.log)")
        #expect(d.log.contains("rates-default.csv:2"), "the error names the file and line")
        try h.append([cdr(3)][...])
        #expect(try h.waitForUsed(["c0001": 2_010_900], clients: 1)["c0001"] == "2.0109")
        #expect(d.process.isRunning)
    }

    @Test func badConfigStopsStartWithExit78() throws {
        let h = try Harness(config: "[[source]]\nname = \"pbx\"\npath = \"Master.csv\"\nformat = \"nope\"\n")
        let r = try h.run(["run"])
        #expect(r.status == 78)
        #expect(r.stderr.contains("source[0].format"), "\(r.stderr)")
    }
}

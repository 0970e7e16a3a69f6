import Foundation
import Testing
import TestSupport

/// A SIGHUP reload takes the new config but the running services keep what they were built with:
/// each key that only a restart applies must be named in the log, not silently ignored.
@Suite(.serialized) struct ReloadScopeTests {
    @Test func aReloadNamesEveryKeyThatNeedsARestart() throws {
        let h = try Harness.tailing()
        let d = try DaemonProcess(h)
        defer { _ = d.terminate() }
        #expect(d.waitForLog("SIGHUP re-reads the config"), "\(d.log)")
        let before = try String(contentsOfFile: h.configPath, encoding: .utf8)
        guard let listen = before.split(separator: "\n").first(where: { $0.hasPrefix("listen = ") }) else {
            Issue.record("no listen line in \(before)"); return
        }
        let after = before
            .replacingOccurrences(of: String(listen), with: "listen = \"127.0.0.1:\(try freePort())\"")
            .replacingOccurrences(of: "path = \"Master.csv\"", with: "path = \"Other.csv\"")
            + "\n[thresholds]\nlow_percent = 30\n"
        try h.write("creditmeter.toml", after)
        kill(d.process.processIdentifier, SIGHUP)
        #expect(d.waitForLog("config reloaded"), "\(d.log)")
        #expect(d.waitForLog("reload: source[pbx].path changed; restart creditmeter to apply it"), "\(d.log)")
        #expect(d.waitForLog("reload: api.listen changed; restart creditmeter to apply it"), "\(d.log)")
        // [thresholds] is applied by the reload itself: no restart line for it.
        #expect(!d.log.contains("thresholds.low_percent"), "\(d.log)")
        #expect(d.process.isRunning)
    }
}

import Foundation
import Testing
import TestSupport

/// The console and the portal in a real headless Chromium (Selenium), against the real daemon on
/// 127.0.0.1: `Tests/Browser/console_walk.py` walks the operator's and the client's steps and saves
/// the screenshots under `docs/`. `scripts/setup` installs chromium, chromium-driver and selenium.
@Suite("Console in a real browser", .serialized)
struct ConsoleBrowserTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("sign in, create, recharge, live meters, double click, edit, portal, disable")
    func walk() throws {
        let port = try freePort()
        let token = "browser-admin-token-0123456789abcdef"
        // 1 credit per billed second, so each appended call moves the meter by a round figure.
        let h = try Harness.tailing(port: port, api: "admin_token_file = \"admin.token\"", extra: "[console]\ntitle = \"Acme Voice\"\n",
                                    plans: ["default": "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n*,60,0,1,1\n"])
        try h.write("admin.token", token + "\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: h.path("admin.token"))
        try h.write("Master.csv", "")
        let daemon = try DaemonProcess(h)
        defer { _ = daemon.terminate() }
        #expect(daemon.waitForLog("api listening"), "\(daemon.log)")

        let shots = Self.repo.appendingPathComponent("docs").path
        let walk = Process()
        walk.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        walk.arguments = ["python3", Self.repo.appendingPathComponent("Tests/Browser/console_walk.py").path,
                          "http://127.0.0.1:\(port)", token, h.path("Master.csv"), shots]
        let out = Pipe()
        walk.standardOutput = out
        walk.standardError = out
        try walk.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        walk.waitUntilExit()
        #expect(walk.terminationStatus == 0, "\(text)\n--- daemon log ---\n\(daemon.log)")
        #expect(text.contains("browser walk: all steps passed"), "\(text)")
        // What the browser did, read back from the store by the CLI.
        let shown = try h.run(["clients", "show", "ann.lee", "--json"])
        #expect(shown.stdout.contains("\"assigned\": \"150\"") && shown.stdout.contains("\"status\": \"disabled\"")
            && shown.stdout.contains("\"company\": \"Lee Holdings\""), "\(shown.stdout)")
    }
}

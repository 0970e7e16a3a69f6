import Foundation
import Testing

/// A line far longer than `max_line_bytes`, through the real binary: quarantined as `line_too_long`
/// with its start, length and SHA-256, and the lines around it charged as usual (the default
/// max_line_bytes, 65536).
@Suite(.serialized) struct LongLineIntegrationTests {
    /// SHA-256 of a file's bytes by coreutils.
    static func sha256(ofFile path: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(String(decoding: o, as: UTF8.self).prefix(64))
    }

    @Test func replayQuarantinesAnOverlongLineKeepingItsStartLengthAndHash() throws {
        let h = try Harness(config: """
            [[source]]
            name = "pbx"
            path = "Master.csv"
            format = "asterisk-csv"
            timezone = "UTC"
            """)
        try h.createClients(2)
        let lines = try h.generate(count: 40, clients: 2, seed: 7)
        // 3 MB without a newline until its end: a writer gone wrong, or an attack.
        let long = String((0..<3_000_000).map { Character(Unicode.Scalar(UInt8(ascii: "A") + UInt8($0 % 26))) })
        try h.write("long.bin", long)
        let expectedHash = try Self.sha256(ofFile: h.path("long.bin"))
        try h.write("Master.csv", lines[0..<20].map { $0 + "\n" }.joined() + long + "\n" + lines[20...].map { $0 + "\n" }.joined())

        guard let summary = try h.json(["replay", "--source", "pbx", "--json", h.path("Master.csv")]) as? [String: Any] else {
            Issue.record("replay --json printed no object"); return
        }
        #expect(summary["read"] as? Int == 41)
        #expect(summary["quarantined"] as? Int == 1)
        #expect((summary["quarantined_by_reason"] as? [String: Int])?["line_too_long"] == 1)
        let expected = Harness.expectedUsed(lines)
        let used = try h.meters()
        for u in ["c0001", "c0002"] {
            #expect(used[u]?["used"] == Oracle.format(expected[u] ?? 0), "the lines around it are charged: \(u)")
        }

        guard let q = try h.json(["quarantine", "list", "--json"]) as? [[String: Any]], q.count == 1, let e = q.first else {
            Issue.record("expected one quarantined line"); return
        }
        #expect(e["reason"] as? String == "line_too_long")
        #expect((e["length"] as? NSNumber)?.int64Value == 3_000_000)
        #expect(e["sha256"] as? String == expectedHash)
        #expect((e["raw"] as? String)?.utf8.count == 4096)
        #expect(e["raw"] as? String == String(long.prefix(4096)))
        #expect((e["line"] as? NSNumber)?.intValue == 21)
        let listing = try h.ok(["quarantine", "list", "--json"])
        #expect(listing.utf8.count < 10_000, "the listing prints the start only: \(listing.utf8.count) bytes")

        // Retry leaves it: its cut start must never be charged as if it were the CDR.
        try h.ok(["quarantine", "retry"])
        #expect((try h.json(["quarantine", "list", "--json"]) as? [Any])?.count == 1)
    }
}

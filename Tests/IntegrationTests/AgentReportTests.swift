import Foundation
import Testing
import TestSupport

/// What the running agent reports about itself (`/metrics`, `/readyz`) against the real binary.
@Suite("what the running agent reports", .serialized)
struct AgentReportTests {
    /// Whether Prometheus' own Python parser is installed (`scripts/setup deps` installs it).
    static let hasPrometheusClient: Bool = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import prometheus_client"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    /// Parses the exposition text with `prometheus_client` and returns, per family, its type, help and samples
    /// (name, labels, value as text).
    static func parse(_ text: String) throws -> [String: (type: String, help: String, samples: [(String, [String: String], String)])] {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for f in text_string_to_metric_families(sys.stdin.read()):
                out[f.name] = {"type": f.type, "help": f.documentation,
                               "samples": [[s.name, s.labels, repr(s.value)] for s in f.samples]}
            print(json.dumps(out))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = errors
        try p.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let families = try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]] else {
            throw TestFailure("prometheus_client refused the /metrics text: \(err)\n\(text)")
        }
        return families.mapValues { f in
            let samples = (f["samples"] as? [[Any]] ?? []).map { s in
                (s[0] as? String ?? "", s[1] as? [String: String] ?? [:], s[2] as? String ?? "")
            }
            return (f["type"] as? String ?? "", f["help"] as? String ?? "", samples)
        }
    }

    /// Polls `path` until `check` accepts the reply, or the deadline passes; returns the last reply.
    static func poll(_ api: APIDaemon, _ path: String, seconds: TimeInterval,
                     until check: (APIDaemon.Reply) -> Bool) throws -> APIDaemon.Reply {
        var last = try api.get(path)
        _ = try holds(within: seconds, every: 0.05) {
            if check(last) || !api.daemon.process.isRunning { return true }
            last = try api.get(path)
            return false
        }
        return last
    }

    static func value(_ body: String, _ series: String) -> Double? {
        for line in body.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test(.enabled(if: AgentReportTests.hasPrometheusClient,
                   "the prometheus_client Python package is missing: run scripts/setup deps"))
    func metricsParseWithPrometheusAndEachHasHelp() throws {
        let (receiver, rxDir) = try WebhookTests.receiver()
        defer { receiver.stop(); try? FileManager.default.removeItem(at: rxDir) }
        let api = try APIDaemon(tailing: true, more: """
            [[endpoint]]
            name = "rx"
            url = "\(receiver.url)"
            events = ["*"]
            secret = "\(WebhookTests.secret)"

            """)
        guard api.waitUntilUp() else { return }
        try api.client("c0001", credits: "1000")
        try api.h.append(try api.h.generate(count: 20, clients: 1, seed: 11)[...])
        _ = try api.get("/v1/authorize?account=c0001&dst=4420")
        let m = try Self.poll(api, "/metrics", seconds: 30) { r in
            (Self.value(r.body, #"creditmeter_cdrs_charged_total{source="pbx"}"#) ?? 0) >= 1
                && (Self.value(r.body, #"creditmeter_deliveries_total{endpoint="rx",result="delivered"}"#) ?? 0) >= 1
        }
        #expect((Self.value(m.body, #"creditmeter_cdrs_charged_total{source="pbx"}"#) ?? 0) >= 1, "\(m.body)")
        let families = try Self.parse(m.body)
        for (name, f) in families {
            #expect(!f.help.isEmpty, "no # HELP for \(name)")
        }
        func family(_ name: String, _ type: String) -> [(String, [String: String], String)] {
            guard let f = families[name] else {
                Issue.record("\(name) is missing from /metrics:\n\(m.body)")
                return []
            }
            #expect(f.type == type, "\(name) is a \(f.type), not a \(type)")
            return f.samples
        }
        // prometheus_client names a counter's family without its `_total`.
        #expect(family("creditmeter_outbox_pending", "gauge").contains { $0.1 == ["endpoint": "rx"] })
        let deliveries = family("creditmeter_deliveries", "counter")
        for result in ["delivered", "retry", "dead"] {
            #expect(deliveries.contains { $0.0 == "creditmeter_deliveries_total" && $0.1 == ["endpoint": "rx", "result": result] })
        }
        #expect(deliveries.contains { $0.1["result"] == "delivered" && (Double($0.2) ?? 0) >= 1 })
        let histogram = family("creditmeter_authorize_duration_seconds", "histogram")
        #expect(histogram.contains { $0.0 == "creditmeter_authorize_duration_seconds_count" && (Double($0.2) ?? 0) >= 1 })
        #expect(histogram.contains { $0.0 == "creditmeter_authorize_duration_seconds_bucket" && $0.1["le"] == "+Inf" })
        let build = family("creditmeter_build_info", "gauge")
        #expect(build.count == 1 && build.first.flatMap { Double($0.2) } == 1 && !(build.first?.1["version"] ?? "").isEmpty)
        let age = family("creditmeter_last_charged_cdr_age_seconds", "gauge")
        #expect(age.contains { $0.1 == ["source": "pbx"] && (Double($0.2) ?? -1) >= 0 && (Double($0.2) ?? 1e9) < 60 })
        #expect(family("creditmeter_quarantine_lines", "gauge").count == 1)
        let failures = family("creditmeter_store_failures", "counter")
        #expect(failures.contains { $0.1 == ["source": "pbx"] && Double($0.2) == 0 }, "\(failures)")
        #expect(family("creditmeter_source_given_up_bytes", "counter").contains { $0.1 == ["source": "pbx"] })
        #expect(family("creditmeter_ready", "gauge").first.flatMap { Double($0.2) } == 1)
    }

    @Test(.disabled(if: Harness.onPostgres, "holds SQLite's write lock; MultiHostTests stops PostgreSQL under the agents"))
    func readinessFailsWhileTheStoreCannotCommit() throws {
        let api = try APIDaemon(tailing: true)
        guard api.waitUntilUp() else { return }
        let up = try Self.poll(api, "/readyz", seconds: 15) { $0.status == 200 }
        #expect(up.status == 200, "\(up.body)")

        // A second connection holds the store's write lock, as a stuck or crashed writer would.
        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        locker.arguments = ["python3", "-c", """
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
            c.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            sys.stdin.readline()
            c.execute("ROLLBACK")
            """, api.h.storePath]
        let toLocker = Pipe(), fromLocker = Pipe()
        locker.standardInput = toLocker
        locker.standardOutput = fromLocker
        locker.standardError = FileHandle.nullDevice
        try locker.run()
        defer { if locker.isRunning { kill(locker.processIdentifier, SIGKILL) }; locker.waitUntilExit() }
        let said = String(decoding: fromLocker.fileHandleForReading.availableData, as: UTF8.self)
        try #require(said.hasPrefix("locked"), "the lock holder said '\(said)'")

        let lines = try api.h.generate(count: 3, clients: 1, seed: 5)
        try api.h.append(lines[...])
        let down = try Self.poll(api, "/readyz", seconds: 30) { $0.status == 503 }
        #expect(down.status == 503, "log:\n\(api.daemon.log)")
        #expect(down.body.contains("not ready: source pbx cannot charge"), "\(down.body)")
        #expect(down.body.contains("database is locked"), "\(down.body)")
        let m = try api.get("/metrics")
        #expect((Self.value(m.body, #"creditmeter_store_failures_total{source="pbx"}"#) ?? 0) >= 1, "\(m.body)")
        #expect(Self.value(m.body, "creditmeter_ready") == 0)

        toLocker.fileHandleForWriting.write(Data("release\n".utf8))
        let back = try Self.poll(api, "/readyz", seconds: 60) { $0.status == 200 }
        #expect(back.status == 200, "\(back.body)\nlog:\n\(api.daemon.log)")
        // What waited is read once the store takes it.
        let read = try api.get("/metrics")
        #expect(Self.value(read.body, #"creditmeter_cdrs_read_total{source="pbx"}"#) == Double(lines.count), "\(read.body)")
    }
}

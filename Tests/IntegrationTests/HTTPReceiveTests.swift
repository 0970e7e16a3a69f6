import Foundation
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `[[source]] receive = "http"` against the real binary: mod_json_cdr's posts, its retries, and kills.
@Suite("CDRs over HTTP, real process", .serialized)
struct HTTPReceiveTests {
    static let token = "cdr-token-0123456789abcdef"

    static func harness(port: Int) throws -> Harness {
        let h = try Harness(config: """
            [api]
            listen = "127.0.0.1:\(port)"

            \(SampleConfig.httpSource)
            """)
        let tokenPath = try h.write("cdr.token", token + "\n")
        chmod(tokenPath, 0o600)
        return h
    }

    static func fixture(_ name: String) throws -> String {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/freeswitch-json")
        return try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
    }

    @Test("16 posters, the agent SIGKILLed 10 times, every post retried until 2xx: Used equals the oracle to the µcr")
    func killedWhilePosting() throws {
        let port = try freePort()
        let h = try Self.harness(port: port)
        let clients = 8
        for i in 1...clients {
            let u = String(format: "c%04d", i)
            // c0001 and c0002 also own the fixtures' account codes.
            let extra = i == 1 ? ["1001"] : i == 2 ? ["2002"] : []
            #expect(try h.createClient(u, accounts: extra.isEmpty ? [] : [u] + extra).status == 0)
            try h.ok(["clients", "recharge", u, "1000"])
        }
        // The B-legs' account: were B-legs charged, its Used would show it.
        #expect(try h.createClient("trunk").status == 0)

        let generated = try h.ok(["cdrgen", "--format", "freeswitch-json", "--count", "3000", "--clients", "\(clients)", "--seed", "14"])
            .split(separator: "\n").map(String.init)
        let fixtures = try ["a-leg-1.10.json", "b-leg-1.10.json", "object-callflow-1.4.json", "sub-second.json", "unanswered.json"]
            .map(Self.fixture)
        // Malformed: the truncated fixture and three generated documents cut in half.
        let malformed = [try Self.fixture("truncated.json")] + generated.prefix(3).map { String($0.prefix($0.utf8.count / 2)) }
        let docs = generated + fixtures + malformed
        let expected = FSOracle.used(of: generated + fixtures, deck: Oracle.deck(Harness.defaultDeck),
                                     owners: ["1001": "c0001", "2002": "c0002"])
        #expect(expected.values.reduce(0, +) > 0)

        var daemon = try DaemonProcess(h)
        #expect(daemon.waitForLog("api listening", timeout: 30), "\(daemon.log)")

        let posters = 16
        let acked = Counter()
        let attempts = Counter()
        let finished = DispatchGroup()
        for p in 0 ..< posters {
            let mine = stride(from: p, to: docs.count, by: posters).map { docs[$0] }
            finished.enter()
            Thread.detachNewThread {
                defer { finished.leave() }
                for (k, doc) in mine.enumerated() {
                    let body = FSPoster.body(doc, form: (p + k) % 2 == 0)
                    let auth = p % 2 == 0 ? "Bearer \(Self.token)"
                        : "Basic " + Data("freeswitch:\(Self.token)".utf8).base64EncodedString()
                    // As mod_json_cdr does with retries and a delay: whatever got no 2xx is sent again.
                    while !FSPoster.post(port: port, body: body, form: (p + k) % 2 == 0, authorization: auth) {
                        attempts.add()
                        usleep(20_000)
                    }
                    acked.add()
                }
            }
        }

        // Ten kills, spread over the run: each waits until more posts were answered since the last.
        for kill in 1...10 {
            let target = docs.count * kill / 12
            let deadline = Date().addingTimeInterval(60)
            while acked.value < target && Date() < deadline { usleep(5_000) }
            #expect(acked.value >= target, "kill \(kill): only \(acked.value) posts answered")
            daemon.kill9()
            daemon = try DaemonProcess(h)
            #expect(daemon.waitForLog("api listening", timeout: 30), "restart \(kill): \(daemon.log)")
        }
        #expect(finished.wait(timeout: .now() + 180) == .success, "posters did not finish: \(acked.value) of \(docs.count)")
        print("http receive: \(docs.count) documents, \(attempts.value) retried posts, 10 kills")
        #expect(daemon.terminate() == 0)

        let meters = try h.meters()
        for i in 1...clients {
            let u = String(format: "c%04d", i)
            #expect(meters[u]?["used"] == Oracle.format(expected[u] ?? 0), "\(u): \(meters[u] ?? [:]) vs \(Oracle.format(expected[u] ?? 0))")
        }
        #expect(meters["trunk"]?["used"] == "0")
        let quarantined = try h.json(["quarantine", "list", "--json"]) as? [[String: Any]] ?? []
        #expect(quarantined.count == malformed.count, "\(quarantined.map { $0["reason"] ?? "?" })")
        #expect(quarantined.allSatisfy { $0["reason"] as? String == "bad_json" })
    }

    @Test("Expect: 100-continue is answered once the token passed, and not before; a wrong token gets no 100")
    func expectContinue() throws {
        let port = try freePort()
        let h = try Self.harness(port: port)
        #expect(try h.createClient("c0001", accounts: ["c0001", "1001"]).status == 0)
        let daemon = try DaemonProcess(h)
        defer { _ = daemon.terminate() }
        #expect(daemon.waitForLog("api listening", timeout: 30), "\(daemon.log)")
        let body = try h.write("a-leg.json", try Self.fixture("a-leg-1.10.json"))
        func curl(_ token: String) throws -> (out: String, err: String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            p.arguments = ["-sv", "--max-time", "10", "-o", "-", "-w", "\n%{http_code} %{time_total}",
                           "--expect100-timeout", "5", "-H", "Expect: 100-continue", "-H", "Content-Type: application/json",
                           "-u", "freeswitch:\(token)", "--data-binary", "@\(body)", "http://127.0.0.1:\(port)/v1/cdr/fs-http?uuid=x"]
            let out = Pipe(), err = Pipe()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
        }
        let ok = try curl(Self.token)
        #expect(ok.err.contains("HTTP/1.1 100 Continue"), "\(ok.err)")
        let last = ok.out.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("200 "), "\(ok.out)")
        // curl waits --expect100-timeout (5 s here) for a 100 that never comes: an answered one is quick.
        #expect((Double(last.split(separator: " ").last ?? "") ?? 99) < 4, "\(last)")
        let denied = try curl("wrong-token-0123456789abcdef")
        #expect(!denied.err.contains("100 Continue") && denied.out.contains("\n401 "), "\(denied.err)")
    }
}

extension HTTPReceiveTests {
    @Test("replay --format freeswitch-json reads err-log-dir files in every encoding, and a directory; twice charges once")
    func replayErrLogDir() throws {
        let h = try Self.harness(port: try freePort())
        #expect(try h.createClient("c0001", accounts: ["c0001", "1001"]).status == 0)
        #expect(try h.createClient("c0002", accounts: ["c0002", "2002"]).status == 0)
        let dir = h.path("json_cdr_errors")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let aLeg = try Self.fixture("a-leg-1.10.json")
        // As mod_json_cdr writes them: the posted text and a newline; encode=true leaves it URL-encoded
        // (no "cdr="), encode=base64 base64.
        let urlEncoded = String(decoding: FSPoster.body(try Self.fixture("sub-second.json"), form: true).dropFirst(4), as: UTF8.self)
        try Data((aLeg + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/a_2b9c6e1f-3d4a-4e5b-8c7d-9e0f1a2b3c4d.cdr.json"))
        try Data((try Self.fixture("b-leg-1.10.json") + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/d41d8cd9-8f00-4b20-9e98-0ecf8427e001.cdr.json"))
        try Data((urlEncoded + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/a_a0b1c2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d.cdr.json"))
        try Data((Data(try Self.fixture("object-callflow-1.4.json").utf8).base64EncodedString() + "\n").utf8)
            .write(to: URL(fileURLWithPath: dir + "/a_6f1e2d3c-4b5a-4968-8776-554433221100.cdr.json"))
        let deck = Oracle.deck(Harness.defaultDeck)
        let expected = FSOracle.used(of: [aLeg, try Self.fixture("b-leg-1.10.json"), try Self.fixture("sub-second.json"),
                                          try Self.fixture("object-callflow-1.4.json")],
                                     deck: deck, owners: ["1001": "c0001", "2002": "c0002"])
        let first = try h.json(["replay", "--format", "freeswitch-json", "--json", dir]) as? [String: Any] ?? [:]
        #expect(first["read"] as? Int == 4 && first["charged"] as? Int == 3 && first["filtered"] as? Int == 1, "\(first)")
        // Read as the receiving source reads them: the same documents, nothing new to charge.
        let second = try h.json(["replay", "--source", "fs-http", "--json", dir + "/a_2b9c6e1f-3d4a-4e5b-8c7d-9e0f1a2b3c4d.cdr.json", dir])
            as? [String: Any] ?? [:]
        #expect(second["charged"] as? Int == 0 && second["duplicates"] as? Int == 4, "\(second)")
        let meters = try h.meters()
        #expect(meters["c0001"]?["used"] == Oracle.format(expected["c0001"] ?? -1))
        #expect(meters["c0002"]?["used"] == Oracle.format(expected["c0002"] ?? -1))
        #expect((expected["c0001"] ?? 0) > 0 && (expected["c0002"] ?? 0) > 0)
        #expect(try h.run(["replay", "--format", "freeswitch-json", h.path("missing")]).status == 66)
    }

    @Test("config check and run refuse a receiving source whose token file is missing or short, naming the key")
    func tokenFileChecked() throws {
        let h = try Self.harness(port: try freePort())
        try FileManager.default.removeItem(atPath: h.path("cdr.token"))
        let missing = try h.run(["config", "check"])
        #expect(missing.status == 78 && missing.stderr.contains("source[fs-http].token_file"), "\(missing.stderr)")
        let run = try h.run(["run"])
        #expect(run.status == 78 && run.stderr.contains("source[fs-http].token_file"), "\(run.stderr)")
        chmod(try h.write("cdr.token", "short\n"), 0o600)
        let short = try h.run(["config", "check"])
        #expect(short.status == 78 && short.stderr.contains("at least 16 characters"), "\(short.stderr)")
    }

    @Test("samples/json_cdr.conf.xml posts to a receiving source with a body that always decodes, and keeps what fails")
    func sampleConfig() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let xml = try String(contentsOf: root.appendingPathComponent("samples/json_cdr.conf.xml"), encoding: .utf8)
        var params: [String: String] = [:]
        let pattern = try NSRegularExpression(pattern: #"<param name="([^"]+)" value="([^"]*)"/>"#)
        for m in pattern.matches(in: xml, range: NSRange(xml.startIndex..., in: xml)) {
            guard let k = Range(m.range(at: 1), in: xml), let v = Range(m.range(at: 2), in: xml) else { continue }
            params[String(xml[k])] = String(xml[v])
        }
        #expect(params["url"] == "http://127.0.0.1:8787/v1/cdr/fs-http")
        #expect(xml.contains("name = \"fs-http\"") && xml.contains("receive = \"http\"") && xml.contains("format = \"freeswitch-json\""))
        #expect(params["encode"] == "false" && params["encode-values"] == "true")
        #expect((Int(params["retries"] ?? "") ?? 0) >= 1 && (Int(params["delay"] ?? "") ?? 0) >= 1)
        #expect(params["log-errors-to-disk"] == "true" && !(params["err-log-dir"] ?? "").isEmpty)
        #expect(params["cred"]?.hasPrefix("freeswitch:") == true && params["auth-scheme"] == "basic")
        #expect(params["disable-100-continue"] == nil)
    }
}

/// A count shared by the poster threads.
final class Counter: Sendable {
    private let v = Atomic<Int>(0)
    func add() { v.add(1, ordering: .relaxed) }
    var value: Int { v.load(ordering: .relaxed) }
}

/// An independent reading of the documents: JSONSerialization, not the agent's parser.
enum FSOracle {
    static func used(of docs: [String], deck: [Oracle.Row], owners: [String: String]) -> [String: Int64] {
        var out: [String: Int64] = [:]
        var seen = Set<String>()
        for d in docs {
            guard let doc = try? JSONSerialization.jsonObject(with: Data(d.utf8)) as? [String: Any],
                  let vars = doc["variables"] as? [String: Any] else { continue }
            func text(_ k: String) -> String? {
                if let s = vars[k] as? String { return s.removingPercentEncoding ?? s }
                return (vars[k] as? NSNumber).map { $0.stringValue }
            }
            let flow = (doc["callflow"] as? [[String: Any]])?.first ?? doc["callflow"] as? [String: Any]
            let profile = flow?["caller_profile"] as? [String: Any]
            if profile?["originator"] != nil || !(text("originating_leg_uuid") ?? "").isEmpty { continue }
            guard let uuid = text("uuid"), seen.insert(uuid).inserted else { continue }
            guard let answer = text("answer_epoch") ?? text("answer_stamp"), !answer.isEmpty, answer != "0" else { continue }
            var billable = Int64(text("billsec") ?? "0") ?? 0
            if let ms = text("billmsec").flatMap({ Int64($0) }) { billable = (ms + 999) / 1000 }
            guard billable > 0, let dst = profile?["destination_number"] as? String,
                  let row = Oracle.match(deck, dst), let account = text("accountcode") else { continue }
            out[owners[account] ?? account, default: 0] += Oracle.cost(row, billsec: billable)
        }
        return out
    }
}

/// One POST over a fresh connection, as mod_json_cdr's libcurl does it; true only for a 2xx.
enum FSPoster {
    static func body(_ doc: String, form: Bool) -> [UInt8] {
        guard form else { return Array(doc.utf8) }
        var out = Array("cdr=".utf8)
        for b in doc.utf8 {
            let safe = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x2E || b == 0x5F
            if safe { out.append(b) } else { out += Array(String(format: "%%%02X", b).utf8) }
        }
        return out
    }

    static func post(port: Int, body: [UInt8], form: Bool, authorization: String) -> Bool {
        guard let c = try? RawConnection(port: port) else { return false }
        let head = "POST /v1/cdr/fs-http?uuid=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: freeswitch-json/1.0\r\n"
            + "Authorization: \(authorization)\r\n"
            + "Content-Type: \(form ? "application/x-www-form-urlencoded" : "application/json")\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        guard c.send(Array(head.utf8) + body) else { return false }
        let done = c.read(timeout: 15) { r in
            guard let end = r.firstRange(of: Array("\r\n\r\n".utf8)) else { return false }
            let headers = String(decoding: r[..<end.lowerBound], as: UTF8.self).lowercased()
            let length = headers.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            return r.count >= end.upperBound + length
        }
        guard done else { return false }
        let status = String(decoding: c.received.prefix(12), as: UTF8.self)
        return status.hasPrefix("HTTP/1.1 2")
    }
}

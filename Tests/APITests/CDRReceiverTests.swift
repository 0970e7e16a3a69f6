@testable import API
import CDRParser
import Foundation
import Ingest
import Ledger
import Logging
import MeterConfig
import MeterCore
import Synchronization
import Testing

let cdrToken = "cdr-token-0123456789abcdef"

/// mod_json_cdr documents shaped as FreeSWITCH writes them (Tests/Fixtures/freeswitch-json).
func fixture(_ name: String) throws -> [UInt8] {
    let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/freeswitch-json")
    return [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
}

extension Store {
    /// A handler whose API receives `fs` (freeswitch-json) and `lines` (jsonl) with `cdrToken`.
    func receiving(commit: CDRCommitter.Commit? = nil) throws -> (APIHandler, CDRCommitter) {
        let settings = try Fixtures.settings()
        let ledger = try Ledger(path: dir.appendingPathComponent("store.db").path)
        let cache = self.cache
        let committer = CDRCommitter(
            ledger: ledger,
            rating: { ReceiverRating(generation: 1, accountField: .accountcode, decks: settings.decks, maxBillsec: 604_800) },
            logger: Logger(label: "test"), commit: commit,
            committed: { _ in try? cache.refresh() })
        var sources: [CDRReceiver.Source] = []
        for (name, format) in [("fs", CDRFormat.freeswitchJSON), ("lines", .jsonl)] {
            let parser = try CDRParser(ParserOptions(format: format))
            sources.append(CDRReceiver.Source(
                config: ReceiverConfig(name: name, format: format, tokenFile: "-", timezone: "UTC", timeZone: .gmt),
                token: Array(cdrToken.utf8), settings: SourceSettings(name: name, parser: parser, filter: nil)))
        }
        let registry = APIMetrics.bootstrap()
        let handler = try APIHandler(authorizer: authorizer, ledger: api, settings: { settings }, adminToken: nil,
                                     ready: ReadyFlag(), metrics: { registry.emitToBuffer() }, logger: Logger(label: "test"),
                                     receiver: CDRReceiver(sources: sources, committer: committer))
        return (handler, committer)
    }

    func used(_ username: String) throws -> Int64 { try #require(try writer.client(username: username)).meter.used }
}

extension APIHandler {
    func post(_ source: String, _ body: [UInt8], auth: String? = "Bearer \(cdrToken)", watched: Flag? = nil) async -> APIResponse {
        await call("POST", "/v1/cdr/\(source)?uuid=x", body: String(decoding: body, as: UTF8.self), authorization: auth,
                   watched: watched)
    }
}

@Suite("CDRs over HTTP: POST /v1/cdr/{source}")
struct CDRReceiverTests {
    /// 95 billable seconds to +44 at 0.031/min, 1/1: ceil(31000 × 95 / 60) µcr.
    let aLegCost: Int64 = (31_000 * 95 + 59) / 60

    /// A store with alice (10 credits, account 1001) and a handler that takes CDRs into it.
    func aliceReceiving() throws -> (Store, APIHandler) {
        let s = try Store()
        try s.client("alice", credits: "10", accounts: ["1001"])
        let (h, _) = try s.receiving()
        return (s, h)
    }

    @Test("the source's token as bearer or HTTP Basic password, checked before the body is read")
    func authentication() async throws {
        let (s, h) = try aliceReceiving()
        let body = try fixture("a-leg-1.10.json")
        for auth in [nil, "Bearer wrong-token-0123456789abcd", "Basic " + Data("freeswitch:nope".utf8).base64EncodedString(), "Digest x"] {
            let touched = Flag()
            let r = await h.post("fs", body, auth: auth, watched: touched)
            #expect(r.status == 401 && !touched.isSet, "\(auth ?? "none") → \(r.status)")
            #expect(r.headers.contains { $0.0 == "WWW-Authenticate" && $0.1.hasPrefix("Basic") })
            #expect(r.headers.contains { $0 == ("Connection", "close") })
        }
        #expect(try s.used("alice") == 0)
        let basic = await h.post("fs", body, auth: "Basic " + Data("freeswitch:\(cdrToken)".utf8).base64EncodedString())
        #expect(basic.status == 200, "\(basic.text)")
        #expect(try s.used("alice") == aLegCost)
        #expect(await h.post("nosuch", body).status == 404)
        #expect(await h.call("GET", "/v1/cdr/fs").status == 405)
    }

    @Test("charged once whatever is retried: the same document plain, as a form, as base64; a B-leg is counted only")
    func exactlyOnce() async throws {
        let (s, h) = try aliceReceiving()
        let json = try fixture("a-leg-1.10.json")
        let first = await h.post("fs", json)
        #expect(first.status == 200 && first.object["charged"] as? Int == 1, "\(first.text)")
        #expect(try s.used("alice") == aLegCost)
        var form = Array("cdr=".utf8)
        for b in json { form += (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) ? [b] : Array(String(format: "%%%02X", b).utf8) }
        for body in [json, form, Array("cdr=".utf8) + Array(Data(json).base64EncodedString().utf8)] {
            #expect(await h.post("fs", body).status == 200)
        }
        #expect(try s.used("alice") == aLegCost)
        let b = await h.post("fs", try fixture("b-leg-1.10.json"))
        #expect(b.status == 200 && b.object["b_legs"] as? Int == 1 && b.object["charged"] as? Int == 0)
        let unanswered = await h.post("fs", try fixture("unanswered.json"))
        #expect(unanswered.object["not_billable"] as? Int == 1)
        #expect(try s.used("alice") == aLegCost)
        #expect(try s.writer.quarantineCount() == 0)
    }

    @Test("what cannot be read or charged is quarantined with its bytes and answered 2xx, once however often it comes")
    func quarantine() async throws {
        let (s, h) = try aliceReceiving()
        let truncated = try fixture("truncated.json")
        for _ in 0 ..< 3 {
            let r = await h.post("fs", truncated)
            #expect(r.status == 200 && r.object["quarantined"] as? Int == 1)
        }
        // Account 2002 belongs to no client.
        for _ in 0 ..< 2 { #expect(await h.post("fs", try fixture("object-callflow-1.4.json")).status == 200) }
        let items = try s.writer.quarantine(limit: nil, reason: nil)
        #expect(items.count == 2)
        #expect(Set(items.map(\.entry.reason)) == ["bad_json", "unknown_account"])
        #expect(items.first { $0.entry.reason == "bad_json" }?.entry.raw == truncated)
        #expect(try s.used("alice") == 0)
    }

    @Test("jsonl: one CDR a line, several per request, a bad line quarantined and the rest charged")
    func jsonLines() async throws {
        let s = try Store()
        try s.client("bob", credits: "10", accounts: ["b1"])
        let (h, _) = try s.receiving()
        let body = """
            {"uuid":"j1","accountcode":"b1","dst":"15551230000","billsec":61,"start":"2026-01-01 10:00:00"}
            {"uuid":"j2","accountcode":"b1","dst":"+442071838750","billsec":"10","start":"2026-01-01 10:01:00"}
            {"uuid":"j3","accountcode":"b1","dst":

            """
        let r = await h.post("lines", Array(body.utf8))
        #expect(r.status == 200 && r.object["cdrs"] as? Int == 3 && r.object["charged"] as? Int == 2 && r.object["quarantined"] as? Int == 1,
                "\(r.text)")
        // 61 s at 0.006/min, 30/6 → 66 s → 6600 µcr; 10 s at 0.031/min, 1/1 → 5167 µcr.
        #expect(try s.used("bob") == 6_600 + (31_000 * 10 + 59) / 60)
        _ = await h.post("lines", Array(body.utf8))
        #expect(try s.used("bob") == 6_600 + (31_000 * 10 + 59) / 60)
        #expect(try s.writer.quarantineCount() == 1)
    }

    @Test("a posted CDR releases the authorize hold its call took")
    func releasesHold() async throws {
        let s = try Store()
        try s.client("alice", credits: "10", accounts: ["1001"])
        try s.refresh()
        let (h, _) = try s.receiving()
        let a = await h.call("GET", "/v1/authorize?account=1001&dst=442071838750&call=2b9c6e1f-3d4a-4e5b-8c7d-9e0f1a2b3c4d")
        #expect(a.object["allow"] as? Bool == true && s.book.liveCount == 1)
        #expect(await h.post("fs", try fixture("a-leg-1.10.json")).status == 200)
        // The hold went in the transaction that charged the CDR, which committed before the answer.
        #expect(s.book.liveCount == 0)
    }

    @Test("a store that cannot commit answers 503 with Retry-After, and nothing is charged")
    func storeDown() async throws {
        let s = try Store()
        try s.client("alice", credits: "10", accounts: ["1001"])
        let (h, _) = try s.receiving(commit: { (_) throws(LedgerError) -> BatchOutcome in
            throw .sqlite(code: 10, message: "disk I/O error", context: "charging a batch from http")
        })
        let r = await h.post("fs", try fixture("a-leg-1.10.json"))
        #expect(r.status == 503 && r.headers.contains { $0 == ("Retry-After", "5") }, "\(r.text)")
        #expect(try s.used("alice") == 0)
    }

    @Test("concurrent requests share transactions, and each is answered after its own CDR committed")
    func groupCommit() async throws {
        let s = try Store()
        try s.client("alice", credits: "1000", accounts: ["1001"])
        let n = 64
        // The first transaction is held until every other request waits behind it, so the rest
        // must go into one more transaction together, whatever the machine's speed.
        let gate = Gate()
        let ledger = try Ledger(path: s.dir.appendingPathComponent("store.db").path)
        let (h, committer) = try s.receiving(commit: { (b) throws(LedgerError) -> BatchOutcome in
            // One charge a request: the rest of the n are the ones still to come.
            gate.holdFirst(until: n - b.charges.count)
            return try ledger.commit(b, now: 1_700_000_000)
        })
        gate.committer.withLock { $0 = committer }
        let template = String(decoding: try fixture("sub-second.json"), as: UTF8.self)
        let answers = await withTaskGroup(of: Int.self) { group in
            for i in 0 ..< n {
                let body = Array(template.replacingOccurrences(of: "a0b1c2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d", with: "uuid-\(i)").utf8)
                group.addTask { await h.post("fs", body).status }
            }
            var out: [Int] = []
            for await status in group { out.append(status) }
            return out
        }
        #expect(answers.count == n && answers.allSatisfy { $0 == 200 })
        #expect(!gate.timedOut.withLock { $0 })
        // Each answered call: 1 billable second to 1… at 0.006/min, 30/6 → 30 s → 3000 µcr.
        #expect(try s.used("alice") == Int64(n) * 3_000)
        #expect(committer.transactions == 2)
    }
}

/// Holds the first commit until the committer has `count` requests waiting (or 20 s have passed).
final class Gate: Sendable {
    let committer = Mutex<CDRCommitter?>(nil)
    let first = Mutex(true)
    let timedOut = Mutex(false)

    func holdFirst(until count: Int) {
        guard first.withLock({ f in defer { f = false }; return f }) else { return }
        let deadline = ContinuousClock.now + .seconds(20)
        while (committer.withLock { $0 }?.waitingCount ?? 0) < count {
            if ContinuousClock.now > deadline { timedOut.withLock { $0 = true }; return }
            usleep(1_000)
        }
    }
}

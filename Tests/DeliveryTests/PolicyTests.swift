import Foundation
import Testing
@testable import Delivery
import MeterConfig
import Outbox

@Suite struct SigningTests {
    @Test func specTestVector() throws {
        let key = try #require(EndpointConfig.decodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let sig = Signer.sign(secret: key, id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330,
                              body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    /// docs/events.md shows this request; its signature must be the one creditmeter sends.
    @Test func documentedExampleRequest() throws {
        let key = try #require(EndpointConfig.decodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let body = #"{"type":"credit.low","timestamp":"2025-11-29T07:08:40Z","data":{"username":"alice","available":"23.75","used":"76.25","assigned":"100","percent":23.75,"level":"low","color":"orange","previous_level":"ok"}}"#
        #expect(body.utf8.count == 205)
        #expect(Signer.sign(secret: key, id: "evt_kvc3de5ztrvdz1ztxbfq7dx88m", timestamp: 1_764_400_121, body: Array(body.utf8))
                == "v1,YBi1QEMXKZE7SthtC5AGAWMuhYZMparakcIxybq/G4A=")
    }

    @Test func signatureCoversIdTimestampAndEveryByte() throws {
        let key = try #require(EndpointConfig.decodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let base = Signer.sign(secret: key, id: "a", timestamp: 1, body: Array("{}".utf8))
        #expect(Signer.sign(secret: key, id: "b", timestamp: 1, body: Array("{}".utf8)) != base)
        #expect(Signer.sign(secret: key, id: "a", timestamp: 2, body: Array("{}".utf8)) != base)
        #expect(Signer.sign(secret: key, id: "a", timestamp: 1, body: Array("{} ".utf8)) != base)
    }

    @Test func headersCarryIdTimestampSignatureAndToken() throws {
        let e = EndpointConfig(name: "m", url: "http://127.0.0.1:1/", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let r = try ResolvedEndpoint.resolve(e, index: 0)
        let h = r.headers(eventID: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330,
                          body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(h == ["webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp: 1614265330",
                      "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="])
    }

    @Test func secretAndTokenFilesAreReadTrimmedAndNeverEchoed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("secrets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let secret = dir.appendingPathComponent("s").path, token = dir.appendingPathComponent("t").path
        try "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n".write(toFile: secret, atomically: true, encoding: .utf8)
        try "  tok-123\n".write(toFile: token, atomically: true, encoding: .utf8)
        let r = try ResolvedEndpoint.resolve(EndpointConfig(name: "m", url: "http://x/", secretFile: secret, tokenFile: token), index: 2)
        #expect(r.headers(eventID: "e", timestamp: 1, body: []).last == "Authorization: Bearer tok-123")

        try "whsec_not!base64".write(toFile: secret, atomically: true, encoding: .utf8)
        do {
            _ = try ResolvedEndpoint.resolve(EndpointConfig(name: "m", url: "http://x/", secretFile: secret), index: 2)
            Issue.record("a bad secret file was accepted")
        } catch {
            #expect(error.description.hasPrefix("endpoint[2].secret_file: "))
            #expect(!error.description.contains("not!base64"))
        }
        do {
            _ = try ResolvedEndpoint.resolve(EndpointConfig(name: "m", url: "http://x/", secretFile: dir.appendingPathComponent("none").path), index: 0)
            Issue.record("a missing secret file was accepted")
        } catch {
            #expect(error.description.contains("no such file"))
        }
    }
}

@Suite struct BackoffTests {
    @Test func doublesFromOneSecondAndCapsAtFiveMinutes() {
        let expected: [Int64] = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000]
        for (i, ms) in expected.enumerated() {
            #expect(Backoff.delay(attempt: i + 1, jitter: 0) == ms, "attempt \(i + 1)")
        }
        #expect(Backoff.delay(attempt: 1_000_000, jitter: 0) == 300_000)
        #expect(Backoff.delay(attempt: 0, jitter: 0) == 1_000)
        #expect(Backoff.delay(attempt: -3, jitter: 0) == 1_000)
    }

    @Test func jitterStaysWithinAQuarterBelowAndNeverAboveTheCap() {
        for attempt in 1 ... 20 {
            let full = Backoff.doubling(attempt: attempt)
            for j in [0.0, 0.25, 0.5, 0.999_999, 1.0, -1, 7, .nan] {
                let d = Backoff.delay(attempt: attempt, jitter: j)
                #expect(d <= full && d >= full - full / 4, "attempt \(attempt) jitter \(j): \(d)")
                #expect(d <= 300_000)
            }
        }
        #expect(Backoff.delay(attempt: 3, jitter: 0.5) == 3_500)
        // Different draws give different delays: jitter does spread.
        #expect(Set((0 ..< 10).map { Backoff.delay(attempt: 5, jitter: Double($0) / 10) }).count == 10)
    }

    @Test func shortPolicyForTests() {
        let p = RetryPolicy(baseMilliseconds: 10, capMilliseconds: 40)
        #expect((1 ... 5).map { Backoff.delay(attempt: $0, jitter: 0, policy: p) } == [10, 20, 40, 40, 40])
    }

    @Test func retryAfterReplacesTheBackoffWithinBounds() {
        #expect(Backoff.delay(attempt: 9, retryAfter: 3, jitter: 0.9) == 3_000)
        #expect(Backoff.delay(attempt: 1, retryAfter: 120, jitter: 0) == 120_000)
        // Retry-After: 0 must not make a hot loop; a day is waited on for at most an hour.
        #expect(Backoff.delay(attempt: 1, retryAfter: 0, jitter: 0) == 1_000)
        #expect(Backoff.delay(attempt: 1, retryAfter: 86_400, jitter: 0) == 3_600_000)
        #expect(Backoff.delay(attempt: 1, retryAfter: .max, jitter: 0) == 3_600_000)
    }

    @Test func retryAfterSecondsAndHTTPDates() {
        let now: Int64 = 784_111_777  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryAfter.seconds("120", now: now) == 120)
        #expect(RetryAfter.seconds(" 7 ", now: now) == 7)
        #expect(RetryAfter.seconds("0", now: now) == 0)
        #expect(RetryAfter.seconds("99999999999999999999999", now: now) == .max)
        #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:51:37 GMT", now: now) == 120)
        #expect(RetryAfter.seconds("Sunday, 06-Nov-94 08:50:37 GMT", now: now) == 60)
        #expect(RetryAfter.seconds("Sun Nov  6 08:49:47 1994", now: now) == 10)
        // A date in the past means "now".
        #expect(RetryAfter.seconds("Sat, 05 Nov 1994 08:49:37 GMT", now: now) == 0)
        for bad in ["", "soon", "-5", "1.5", "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 32 Nov 1994 08:49:37 GMT",
                    "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT"] {
            #expect(RetryAfter.seconds(bad, now: now) == nil, "\(bad)")
        }
        #expect(HTTPDate.parse("Thu, 01 Jan 1970 00:00:00 GMT") == 0)
        #expect(HTTPDate.parse("Thu, 25 Feb 2021 15:02:10 GMT") == 1_614_265_330)
        #expect(HTTPDate.parse("Tue, 29 Feb 2000 00:00:00 GMT") == 951_782_400)
    }
}

@Suite struct ClassificationTests {
    @Test func statusTable() {
        let table: [(Int, Verdict)] = [
            (200, .delivered), (201, .delivered), (202, .delivered), (204, .delivered), (299, .delivered),
            (408, .retry), (429, .retry), (500, .retry), (502, .retry), (503, .retry), (504, .retry), (599, .retry),
            (410, .pause),
            (100, .dead), (301, .dead), (302, .dead), (303, .dead), (307, .dead), (308, .dead),
            (400, .dead), (401, .dead), (403, .dead), (404, .dead), (405, .dead), (409, .dead), (413, .dead), (422, .dead),
        ]
        for (status, verdict) in table {
            #expect(Verdict.classify(status: status, curlError: 0) == verdict, "HTTP \(status)")
        }
    }

    @Test func transportErrorsRetry() {
        // 7 couldn't connect, 28 timeout, 52 empty reply, 56 recv error, 60 bad certificate.
        for code: Int32 in [6, 7, 28, 35, 52, 56, 60] {
            #expect(Verdict.classify(status: nil, curlError: code) == .retry, "curl \(code)")
            #expect(Verdict.classify(status: 200, curlError: code) == .retry, "curl \(code) after a status")
        }
        #expect(Verdict.classify(status: nil, curlError: 0) == .retry)
    }

    @Test func errorTextNamesTheStatusAndNeverTheURL() {
        let o = HTTPOutcome(status: 302, curlCode: 0, curlMessage: "", retryAfter: nil,
                            bodyPrefix: "moved\nelsewhere", aborted: false)
        #expect(DeliveryService.describe(o) == "HTTP 302 (redirects are not followed): moved elsewhere")
        let t = HTTPOutcome(status: nil, curlCode: 7, curlMessage: "Failed to connect", retryAfter: nil, bodyPrefix: "", aborted: false)
        #expect(DeliveryService.describe(t) == "curl error 7: Failed to connect")
    }
}

@Suite struct PatternTests {
    @Test func exactFamilyAndStar() {
        #expect(EndpointConfig.pattern("*", matches: "balance.updated"))
        #expect(EndpointConfig.pattern("credit.*", matches: "credit.low"))
        #expect(EndpointConfig.pattern("credit.*", matches: "credit.recovered"))
        #expect(!EndpointConfig.pattern("credit.*", matches: "client.created"))
        #expect(!EndpointConfig.pattern("credit.*", matches: "creditx.low"))
        #expect(EndpointConfig.pattern("client.created", matches: "client.created"))
        #expect(!EndpointConfig.pattern("client.created", matches: "client.created2"))
    }

    @Test func endpointWantsAndItsOutboxView() throws {
        let e = EndpointConfig(name: "m", url: "http://x/", events: ["balance.updated", "credit.*"],
                               secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let wanted = EndpointConfig.eventTypes.filter(e.wants)
        #expect(wanted == ["balance.updated", "credit.low", "credit.critical", "credit.exhausted", "credit.recovered"])
        let view = try ResolvedEndpoint.resolve(e, index: 0).outbox
        #expect(EndpointConfig.eventTypes.filter(view.wants) == wanted)
    }
}

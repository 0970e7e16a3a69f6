import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The API under hostile load, against the running binary: holds another account cannot touch,
/// connections that must not stay open, and bodies that must not be read before authentication.
@Suite("HTTP API limits under hostile load", .serialized)
struct APILimitsTests {
    @Test func anotherAccountNamingTheSameCallCannotDropAHold() throws {
        let api = try APIDaemon()
        guard api.waitUntilUp() else { return }
        // 0.31 buys exactly max_call_seconds (600 s at 0.031/min, 1/1): one call holds all of it.
        try api.client("alice", credits: "0.31", accounts: ["6001"])
        try api.client("mallory", credits: "0", accounts: ["6666"])
        #expect(try api.get("/v1/authorize?account=6001&dst=4420&call=X-1&format=text").line == "ALLOW 600")
        // Mallory names Alice's call id: denied, and Alice's hold must stay.
        #expect(try api.get("/v1/authorize?account=6666&dst=4420&call=X-1&format=text").line == "DENY no_credit")
        let second = try api.get("/v1/authorize?account=6001&dst=4420&call=X-2&format=text")
        #expect(second.line == "DENY no_credit", "Alice's hold X-1 was dropped by another account: \(second.body)")
        #expect(try api.get("/v1/authorize?account=6001&dst=4420").json["reserved"] as? String == "0.31")
    }

    @Test func aCDRChargedToAnotherAccountDoesNotReleaseTheHold() throws {
        let api = try APIDaemon(tailing: true)
        guard api.waitUntilUp() else { return }
        try api.client("alice", credits: "0.31", accounts: ["6001"])
        try api.client("bob", credits: "1", accounts: ["6002"])
        let uniqueid = "1714557600.77"
        #expect(try api.get("/v1/authorize?account=6001&dst=4420&call=\(uniqueid)&format=text").line == "ALLOW 600")
        // Bob's PBX reports a CDR with the same uniqueid: charged to Bob, and Alice's hold must stay.
        try api.appendAnsweredCall(account: "6002", uniqueid: uniqueid)
        var bob: [String: Any] = [:]
        _ = try holds(within: 20) {
            bob = try api.get("/v1/authorize?account=6002&dst=4420").json
            return bob["available"] as? String == "0.9845"
        }
        #expect(bob["available"] as? String == "0.9845", "Bob's CDR was not charged: \(bob)\n\(api.daemon.log)")
        let alice = try api.get("/v1/authorize?account=6001&dst=4420").json
        #expect(alice["reserved"] as? String == "0.31" && alice["reason"] as? String == "no_credit",
                "Bob's CDR released Alice's hold: \(alice)")
    }

    @Test func anIdleConnectionIsClosedAfterReadTimeout() throws {
        let api = try APIDaemon(api: "read_timeout_seconds = 1")
        guard api.waitUntilUp() else { return }
        let idle = try RawConnection(port: api.port)
        let opened = Date()
        #expect(idle.waitForClose(timeout: 8), "an idle connection stayed open for 8 s with read_timeout_seconds = 1")
        #expect(Date().timeIntervalSince(opened) > 0.8, "closed before the timeout")
        // A kept-alive connection that was answered gets the same deadline for its next request.
        let kept = try RawConnection(port: api.port)
        kept.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(kept.read(timeout: 5) { String(decoding: $0, as: UTF8.self).hasSuffix("ok\n") }, "\(kept.text)")
        #expect(!kept.closedByPeer)
        #expect(kept.waitForClose(timeout: 8), "a kept-alive connection stayed open after its answer")
    }

    @Test func aHeaderSentOneByteEvery200msIsCutOffByTheTotalDeadline() throws {
        let api = try APIDaemon(api: "read_timeout_seconds = 1")
        guard api.waitUntilUp() else { return }
        let slow = try RawConnection(port: api.port)
        let header = Array("GET /healthz HTTP/1.1\r\nHost: t\r\nUser-Agent: slowloris\r\n\r\n".utf8)
        let started = Date()
        var sent = 0
        // 58 bytes at 5 a second would take 11.6 s; each byte is activity, so only a total deadline stops it.
        while sent < header.count - 1, !slow.closedByPeer, Date().timeIntervalSince(started) < 8 {
            if !slow.send([header[sent]]) { break }
            sent += 1
            slow.pump(milliseconds: 200)
        }
        #expect(slow.closedByPeer || slow.waitForClose(timeout: 1),
                "still open after \(sent) header bytes over \(Date().timeIntervalSince(started)) s")
        #expect(Date().timeIntervalSince(started) < 4)
        #expect(slow.text.isEmpty, "answered a request that never finished its header: \(slow.text)")
    }

    @Test func aBodyThatStopsIsCutOffByTheTotalDeadline() throws {
        let api = try APIDaemon(api: "read_timeout_seconds = 1")
        guard api.waitUntilUp() else { return }
        let stalled = try RawConnection(port: api.port)
        let started = Date()
        // Authenticated, so the body is being read; 10 of the 1,000 bytes announced ever arrive.
        stalled.send("POST /v1/clients HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(APIDaemon.token)\r\n"
                     + "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"username\"")
        #expect(stalled.waitForClose(timeout: 8), "a stalled body kept the connection open with read_timeout_seconds = 1")
        let took = Date().timeIntervalSince(started)
        #expect(took > 0.8 && took < 4, "closed after \(took) s")
        #expect(try api.admin("GET", "/v1/clients").array.isEmpty, "a client was created from a partial body")
    }

    @Test func connectionsPastMaxConnectionsAreClosedAtOnce() throws {
        let api = try APIDaemon(api: "max_connections = 8\nread_timeout_seconds = 60")
        guard api.waitUntilUp() else { return }
        var held: [RawConnection] = []
        for n in 0 ..< 8 {
            let c = try RawConnection(port: api.port)
            // An answer proves the server has counted this connection before the next one opens.
            c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(c.read(timeout: 5) { String(decoding: $0, as: UTF8.self).hasSuffix("ok\n") }, "connection \(n): \(c.text)")
            held.append(c)
        }
        let ninth = try RawConnection(port: api.port)
        ninth.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(ninth.waitForClose(timeout: 3), "a 9th connection stayed open with max_connections = 8")
        #expect(ninth.text.isEmpty, "the 9th connection was answered: \(ninth.text)")
        #expect(held.allSatisfy { !$0.closedByPeer })
        held.removeAll()
        var status = 0
        _ = holds(within: 5) {
            status = (try? api.get("/healthz").status) ?? 0
            return status == 200
        }
        #expect(status == 200, "no request worked after the 8 connections closed")
    }

    @Test func anUnauthenticatedBodyIsRefusedBeforeItIsRead() throws {
        let api = try APIDaemon(api: "read_timeout_seconds = 60")
        guard api.waitUntilUp() else { return }
        let chunk = String(repeating: "a", count: 64 * 1024)
        func post(_ path: String, auth: String?) throws -> RawConnection {
            let c = try RawConnection(port: api.port)
            var head = "POST \(path) HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n"
            if let auth { head += "Authorization: \(auth)\r\n" }
            c.send(head + "\r\n" + chunk)
            return c
        }
        func status(_ c: RawConnection) -> String {
            _ = c.read(timeout: 5) { String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") }
            return String(c.text.prefix(12))
        }
        let started = Date()
        let none = try post("/v1/clients", auth: nil)
        #expect(status(none) == "HTTP/1.1 401", "no 401 before the 10 MB body: \(none.text)")
        #expect(Date().timeIntervalSince(started) < 5)
        // The connection is closed after the answer instead of draining 10 MB.
        #expect(none.waitForClose(timeout: 5))
        let wrong = try post("/v1/clients/alice/recharge", auth: "Bearer wrong-token-0123456789")
        #expect(status(wrong) == "HTTP/1.1 401", "\(wrong.text)")
        // Authenticated, a body announced past 64 KiB is refused from its Content-Length alone.
        let big = try post("/v1/clients", auth: "Bearer \(APIDaemon.token)")
        #expect(status(big) == "HTTP/1.1 413", "\(big.text)")
        #expect(big.waitForClose(timeout: 5))
        #expect(try api.get("/healthz").status == 200)
    }
}

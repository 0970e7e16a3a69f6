@testable import CDRParser
import Foundation
import Testing

/// mod_json_cdr documents shaped as FreeSWITCH 1.10 and 1.4 write them (Tests/Fixtures/freeswitch-json).
enum FSFixture {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/freeswitch-json")

    static func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: dir.appendingPathComponent(name))) }

    /// What `encode=true` posts: `cdr=` and the document URL-encoded (switch_url_encode style: '%XX').
    static func form(_ json: [UInt8]) -> [UInt8] {
        var out = Array("cdr=".utf8)
        for b in json {
            let safe = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x2E || b == 0x5F
            if safe { out.append(b) } else { out += Array(String(format: "%%%02X", b).utf8) }
        }
        return out
    }
}

@Suite("freeswitch-json: mod_json_cdr documents")
struct FreeSwitchJSONTests {
    let parser: CDRParser

    init() throws {
        parser = try CDRParser(ParserOptions(format: .freeswitchJSON, timeZone: TimeZone(identifier: "Europe/Berlin") ?? .gmt))
    }

    func doc(_ bytes: [UInt8]) throws -> FreeSwitchDocument {
        switch parser.parseFreeSwitch(bytes) {
        case .success(let d): return d
        case .failure(let f): throw f
        }
    }

    @Test("1.10 A-leg: variables percent-decoded, the number dialled from the newest caller profile, billmsec rounds up")
    func aLeg() throws {
        let d = try doc(try FSFixture.bytes("a-leg-1.10.json"))
        #expect(!d.isBLeg)
        let c = d.cdr
        #expect(c.identity == "fs:2b9c6e1f-3d4a-4e5b-8c7d-9e0f1a2b3c4d")
        #expect(c.account() == "1001")
        #expect(c.dst == "+442071838750")
        #expect(c.value(.hangupCause) == "NORMAL_CLEARING")
        #expect(c.value(.callerIDName) == "Alice \"AJ\" Jones")
        #expect(c.value(.channel) == "sofia/internal/1001@pbx.example.net")
        // billsec says 94 (FreeSWITCH truncates); billmsec 94473 is 95 billable seconds.
        #expect(c.value(.billsec) == "94" && c.billableSeconds == 95)
        #expect(c.isAnswered && c.isBillable)
        // start_epoch wins over start_stamp, whose zone would otherwise apply.
        #expect(c.startEpoch == 1_772_442_845)
    }

    @Test("1.10 B-leg: told apart by its caller profile's originator (and originating_leg_uuid)")
    func bLeg() throws {
        let d = try doc(try FSFixture.bytes("b-leg-1.10.json"))
        #expect(d.isBLeg)
        #expect(d.cdr.identity == "fs:d41d8cd9-8f00-4b20-9e98-0ecf8427e001" && d.cdr.billableSeconds == 95)
        // Without the variable, the call flow alone still says B-leg.
        let text = String(decoding: try FSFixture.bytes("b-leg-1.10.json"), as: UTF8.self)
            .replacingOccurrences(of: "\"originating_leg_uuid\":\"2b9c6e1f-3d4a-4e5b-8c7d-9e0f1a2b3c4d\",", with: "")
        #expect(!text.contains("originating_leg_uuid"))
        #expect(try doc(Array(text.utf8)).isBLeg)
        // An A-leg that names its peer (originatee) is not one.
        #expect(try !doc(try FSFixture.bytes("unanswered.json")).isBLeg)
    }

    @Test("1.4: callflow is one object, billsec a JSON number, values not encoded, stamps read in the source's zone")
    func oldLayout() throws {
        let c = try doc(try FSFixture.bytes("object-callflow-1.4.json")).cdr
        #expect(c.dst == "33142685300" && c.account() == "2002" && c.billableSeconds == 42 && c.isBillable)
        #expect(c.value(.callerIDName) == "Front Desk")
        #expect(c.startEpoch == 1_368_547_331)
        // Without an epoch the stamp is read as local time in the source's zone: the document's host
        // wrote UTC, so read as Berlin time (UTC+2 in May) it lands two hours earlier.
        let noEpoch = String(decoding: try FSFixture.bytes("object-callflow-1.4.json"), as: UTF8.self)
            .replacingOccurrences(of: "\"start_epoch\":\"1368547331\",", with: "")
        #expect(!noEpoch.contains("start_epoch"))
        #expect(try doc(Array(noEpoch.utf8)).cdr.startEpoch == 1_368_547_331 - 7_200)
    }

    @Test("answered with billmsec 480 and billsec 0: one billable second; the newest of two profiles gives the number")
    func subSecond() throws {
        let c = try doc(try FSFixture.bytes("sub-second.json")).cdr
        #expect(c.value(.billsec) == "0" && c.billableSeconds == 1 && c.isBillable)
        #expect(c.dst == "15551230000") // profile 2 (after the transfer), not 500
    }

    @Test("unanswered: answer_epoch 0, not billable")
    func unanswered() throws {
        let c = try doc(try FSFixture.bytes("unanswered.json")).cdr
        #expect(!c.isAnswered && !c.isBillable)
    }

    @Test("bodies: plain, cdr= URL-encoded form, cdr= base64, and err-log-dir text without cdr=")
    func encodings() throws {
        let json = try FSFixture.bytes("a-leg-1.10.json")
        let plain = try doc(json).cdr
        let form = FSFixture.form(json)
        let base64 = Array(Data(json).base64EncodedString().utf8)
        for body in [form, Array("cdr=".utf8) + base64, Array(form.dropFirst(4)), base64, json + [0x0A]] {
            #expect(try doc(body).cdr == plain)
        }
    }

    @Test("what cannot be read fails with a reason, never a crash")
    func failures() throws {
        let cases: [([UInt8], String)] = [
            (try FSFixture.bytes("truncated.json"), "bad_json"),
            (Array("cdr=%7B%22variables%22%3A%7B%22uuid%22%3A%22a%22%22%7D%7D".utf8), "bad_json"),
            (Array("not json at all".utf8), "bad_json"),
            (Array(#"{"variables":{"uuid":"u","billsec":"3"}}"#.utf8), "missing_field"),
            (Array(#"{"variables":{"uuid":"u"},"callflow":[{"caller_profile":{"destination_number":"1"}}]}"#.utf8), "missing_field"),
            (Array(#"{"callflow":[]}"#.utf8), "missing_field"),
            (Array(#"{"variables":{"uuid":"u","billsec":"x"},"callflow":[{"caller_profile":{"destination_number":"1"}}]}"#.utf8), "bad_number"),
            ([], "bad_json"),
        ]
        for (body, reason) in cases {
            switch parser.parseFreeSwitch(body) {
            case .success: Issue.record("parsed: \(String(decoding: body, as: UTF8.self))")
            case .failure(let f): #expect(f.reason == reason, "\(String(decoding: body, as: UTF8.self)) → \(f)")
            }
        }
    }

    @Test("a value that is not UTF-8 is kept as bytes and does not fail the CDR")
    func bytesStayBytes() throws {
        var body = Array(#"{"variables":{"uuid":"u1","accountcode":"1001","billsec":"5","caller_id_name":"M"#.utf8)
        body += [0xFC] // Latin-1 ü
        body += Array(#"ller"},"callflow":[{"caller_profile":{"destination_number":"15551230000"}}]}"#.utf8)
        let c = try doc(body).cdr
        #expect(c.bytes(.callerIDName).map(Array.init) == Array("M".utf8) + [0xFC] + Array("ller".utf8))
        #expect(c.billableSeconds == 5)
    }
}

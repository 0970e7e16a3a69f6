import CDRParser
import Foundation
import Testing

/// Every real CDR file, parsed with the options its PBX config implies, checked against values
/// read by hand from the file (line numbers are the file's own, line 1 being the source comment).
@Suite struct SampleFileTests {
    static let asterisk = ParserOptions(format: .asteriskCSV, timeZone: .utc)
    static let freeswitch = ParserOptions(format: .freeswitchCSV, timeZone: .utc)

    // MARK: Asterisk cdr_csv

    @Test func bugaDMMaster18Columns() throws {
        let p = try Samples.parse("asterisk11_BugaDM_TelephonySwitching__Master.csv", Self.asterisk)
        #expect(p.results.count == 105)
        #expect(p.failures.isEmpty)
        #expect(p.ok.filter(\.isBillable).count == 87)
        #expect(p.ok.filter(\.isBillable).map(\.billableSeconds).reduce(0, +) == 2463)

        let first = try p.line(2)
        #expect(first.account() == "")
        #expect(first.value(.src) == "100")
        #expect(first.dst == "700")
        #expect(first.value(.clid) == "\"NOMBREUSUARIO\" <100>")
        #expect(first.value(.uniqueid) == "1427211880.0")
        #expect(first.value(.userfield) == "")
        #expect(first.value(.linkedid) == nil)
        #expect(first.billableSeconds == 3)
        #expect(first.isAnswered && first.isBillable)
        // The uniqueid is the channel's creation time: the same instant as start, read as UTC.
        #expect(first.startEpoch == 1_427_211_880)
        // No linkedid/sequence: the identity hashes the fields (value cross-checked with Python).
        #expect(first.identity == "h:c8ad07bac6acd2f565b51e13d7708b24")

        let failed = try p.line(14)
        #expect(failed.value(.disposition) == "FAILED")
        #expect(failed.value(.answer) == "")   // the empty bare field
        #expect(!failed.isAnswered && !failed.isBillable)

        // BUSY with billsec 27: counted, not billable.
        let busy = try p.line(75)
        #expect(busy.value(.disposition) == "BUSY")
        #expect(busy.billableSeconds == 27)
        #expect(!busy.isBillable)
        let noAnswer = try p.line(106)
        #expect(noAnswer.value(.disposition) == "NO ANSWER" && noAnswer.billableSeconds == 72 && !noAnswer.isBillable)
        #expect(noAnswer.value(.lastdata) == "103@vmphones,u")
    }

    @Test func bugaDMPerAccountCopyParsesAndDuplicatesMaster() throws {
        let copy = try Samples.parse("asterisk11_BugaDM_TelephonySwitching__100.csv", Self.asterisk)
        #expect(copy.results.count == 5)
        #expect(copy.failures.isEmpty)
        #expect(copy.ok.allSatisfy { $0.account() == "100" })
        #expect(try copy.line(4).billableSeconds == 10)
        #expect(try copy.line(2).isBillable == false)   // ANSWERED, billsec 0
        // Every line of the per-account copy is a line of Master.csv: same identity, so tailing
        // both would charge nothing twice (but SPEC says tail Master.csv only).
        let master = Set(try Samples.parse("asterisk11_BugaDM_TelephonySwitching__Master.csv", Self.asterisk).ok.map(\.identity))
        #expect(copy.ok.allSatisfy { master.contains($0.identity) })
    }

    @Test func simularent18ColumnsUTC() throws {
        let p = try Samples.parse("asterisk_simularent_asterisk-for-speech-to-text__Master.csv", Self.asterisk)
        #expect(p.results.count == 269)
        #expect(p.failures.isEmpty)
        #expect(p.ok.filter(\.isBillable).count == 217)
        #expect(p.ok.filter(\.isBillable).map(\.billableSeconds).reduce(0, +) == 6791)
        #expect(p.ok.filter { $0.value(.disposition) == "BUSY" }.count == 8)

        let first = try p.line(2)
        #expect(first.dst == "12489398620")
        #expect(first.value(.answer) == "")
        #expect(first.value(.dstchannel) == "Motif/12489398620@voice.google.com-753b")
        #expect(first.value(.lastdata) == "Motif/google/12489398620@voice.google.com,,r")
        #expect(!first.isAnswered)
        #expect(first.startEpoch == 1_473_179_935)   // usegmtime=yes, = its uniqueid

        let noAnswer9 = try p.line(33)
        #expect(noAnswer9.billableSeconds == 9 && !noAnswer9.isBillable)

        // A Local ;1 half, BUSY with billsec 7, and an empty src.
        let local = try p.line(67)
        #expect(local.value(.channel) == "Local/12489398620@LocalSets-00000001;1")
        #expect(local.value(.src) == "")
        #expect(local.value(.clid) == "\"\" <>")
        #expect(!local.isBillable)
    }

    @Test func mineevburyat21ColumnsWithLinkedidAndLatin1() throws {
        let p = try Samples.parse("asterisk_mineevburyat_dj-asterisk-cdr__Master.csv", Self.asterisk)
        #expect(p.results.count == 84)
        #expect(p.failures.isEmpty)
        #expect(p.ok.filter(\.isBillable).count == 30)
        #expect(p.ok.filter(\.isBillable).map(\.billableSeconds).reduce(0, +) == 884)
        // linkedid + sequence + start tell every CDR apart, forks and restarts included.
        #expect(Set(p.ok.map(\.identity)).count == 84)

        let first = try p.line(2)
        #expect(first.identity == "ast:1706368044.0:0:2024-01-27 15:07:24")
        #expect(first.value(.peeraccount) == "")
        #expect(first.value(.sequence) == "0")
        #expect(first.startEpoch == 1_706_368_044)
        #expect(first.billableSeconds == 27 && first.isBillable)

        // NO ANSWER with billsec 60 (a fork leg): not billable.
        let fork = try p.line(5)
        #expect(fork.value(.disposition) == "NO ANSWER")
        #expect(fork.billableSeconds == 60 && !fork.isBillable)

        // A Local channel half, its own uniqueid but the call's linkedid.
        let half = try p.line(8)
        #expect(half.value(.channel) == "Local/ch1@TimeDelay-00000000;2")
        #expect(half.value(.dcontext) == "TimeDelay")
        #expect(half.value(.uniqueid) == "1706372196.14")
        #expect(half.identity == "ast:1706372196.12:10:2024-01-27 16:16:36")

        // Raw 0xA5 bytes in the caller name: kept as bytes, shown as Latin-1, never a failure.
        let latin = try p.line(42)
        let clid = try #require(latin.bytes(.clid))
        #expect(Array(clid) == Array("\"8107924651".utf8) + [0xA5, 0xA5] + Array("b\" <81079246516548>".utf8))
        #expect(latin.value(.clid) == "\"8107924651\u{A5}\u{A5}b\" <81079246516548>")
        #expect(latin.value(.src) == "81079246516548")

        // After the server renamed itself, uniqueids carry its system name and sequences restart.
        let renamed = try p.line(44)
        #expect(renamed.identity == "ast:mainserverdss-1706420300.0:0:2024-01-28 05:38:20")
        #expect(renamed.billableSeconds == 16 && renamed.isBillable)
    }

    @Test func cdrCustomAsCSVWith19Columns() throws {
        let columns = ["clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata",
                       "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
                       "accountcode", "uniqueid", "userfield", "sequence"]
        let p = try Samples.parse("asterisk_cdr_custom_KelySaina_cdr__Master.csv",
                                  ParserOptions(format: .csv, columns: columns, timeZone: .utc))
        #expect(p.results.count == 14)
        #expect(p.failures.isEmpty)
        #expect(p.ok.filter(\.isBillable).count == 11)
        #expect(p.ok.filter(\.isBillable).map(\.billableSeconds).reduce(0, +) == 78)

        let first = try p.line(2)
        #expect(first.value(.clid) == "\"\" <client1>")
        #expect(first.value(.src) == "client1")
        #expect(first.dst == "6789")
        #expect(first.account() == "")             // index 15: empty in this file
        #expect(first.account(for: .src) == "client1")
        #expect(first.value(.uniqueid) == "1690325492.2")
        #expect(first.value(.sequence) == "2")      // bare, unquoted
        #expect(first.billableSeconds == 13 && first.isBillable)   // "13", quoted
        #expect(first.identity == "h:cbe88dafa79a2f9a0384c6737aa30ac9")

        let unanswered = try p.line(3)
        #expect(unanswered.value(.answer) == "")
        #expect(unanswered.value(.disposition) == "NO ANSWER" && !unanswered.isAnswered)

        // The same file read as asterisk-csv is not silently accepted: 19 columns mean
        // peeraccount there, so its billsec column holds "ANSWERED": every line fails with bad_number.
        let wrong = try Samples.parse("asterisk_cdr_custom_KelySaina_cdr__Master.csv", Self.asterisk)
        #expect(wrong.ok.isEmpty)
        #expect(wrong.failures.count == 14 && wrong.failures.allSatisfy { $0.reason == "bad_number" })
    }

    // MARK: FreeSWITCH mod_cdr_csv

    @Test func duyNguyenExampleTemplate() throws {
        let p = try Samples.parse("freeswitch_DuyNguyen2599_freeswitch__Master.csv", Self.freeswitch)
        #expect(p.results.count == 54)
        #expect(p.failures.isEmpty)
        #expect(p.ok.filter(\.isBillable).count == 37)
        #expect(p.ok.filter(\.isBillable).map(\.billableSeconds).reduce(0, +) == 1186)

        let first = try p.line(2)
        #expect(first.value(.callerIDName) == "20172519")
        #expect(first.value(.src) == "20172519")
        #expect(first.dst == "1000")
        #expect(first.value(.dcontext) == "default")
        #expect(first.value(.hangupCause) == "NORMAL_UNSPECIFIED")   // answered, ended NORMAL_UNSPECIFIED
        #expect(first.value(.blegUUID) == "019c53c0-74b7-4c22-b3cd-d0412fa2af64")
        #expect(first.value(.readCodec) == "PCMU" && first.value(.writeCodec) == "PCMU")
        #expect(first.account() == "20172519")
        #expect(first.billableSeconds == 32 && first.isBillable)
        #expect(first.identity == "fs:82fe6c54-c29a-46f3-b7e8-2e039353aa77")
        #expect(first.startEpoch == 1_621_080_727)
        #expect(first.value(.disposition) == nil)   // FreeSWITCH has no disposition column

        let cancel = try p.line(3)
        #expect(cancel.value(.callerIDName) == "Extension 20172519")
        #expect(cancel.value(.hangupCause) == "ORIGINATOR_CANCEL")
        #expect(cancel.value(.answer) == "" && !cancel.isAnswered && !cancel.isBillable)
        #expect(cancel.account() == "")
    }

    @Test func amitsrepoTransfersAndInvalidGateway() throws {
        let p = try Samples.parse("freeswitch_amitsrepo_FreeSwitch_Configuration__Master.csv", Self.freeswitch)
        #expect(p.results.count == 333)
        #expect(p.failures.isEmpty)
        #expect(p.ok.filter(\.isAnswered).count == 56)
        #expect(p.ok.filter(\.isBillable).count == 54)
        #expect(p.ok.filter(\.isBillable).map(\.billableSeconds).reduce(0, +) == 2648)
        #expect(Set(p.ok.map(\.identity)).count == 333)

        let gateway = try p.line(57)
        #expect(gateway.value(.hangupCause) == "INVALID_GATEWAY")
        #expect(gateway.dst == "918005551212")
        #expect(gateway.account() == "1100")
        #expect(!gateway.isBillable)

        // A-leg that was transferred, and the transferred B-leg as its own line.
        let aLeg = try p.line(30)
        let bLeg = try p.line(31)
        #expect(aLeg.value(.blegUUID) == "7b8fcd87-18a9-4f4e-85d1-864be552df56")
        #expect(bLeg.identity == "fs:7b8fcd87-18a9-4f4e-85d1-864be552df56")
        #expect(bLeg.value(.callerIDName) == "Outbound Call")
        #expect(aLeg.billableSeconds == 72 && bLeg.billableSeconds == 109)
        #expect(aLeg.isBillable && bLeg.isBillable)

        let per = try Samples.parse("freeswitch_amitsrepo_FreeSwitch_Configuration__1000.csv", Self.freeswitch)
        #expect(per.results.count == 27)
        #expect(per.failures.isEmpty)
        #expect(per.ok.filter(\.isBillable).map(\.billableSeconds).reduce(0, +) == 1076)
        let master = Set(p.ok.map(\.identity))
        #expect(per.ok.allSatisfy { master.contains($0.identity) })
    }

    @Test func spicyramenBusyAndNotRegistered() throws {
        let p = try Samples.parse("freeswitch_spicyramen_freeswitch_samples__Master.csv", Self.freeswitch)
        #expect(p.results.count == 82)
        #expect(p.failures.isEmpty)
        #expect(p.ok.filter(\.isBillable).count == 11)
        #expect(p.ok.filter(\.isBillable).map(\.billableSeconds).reduce(0, +) == 1077)
        #expect(p.ok.filter { $0.value(.hangupCause) == "USER_BUSY" }.count == 12)

        let busy = try p.line(4)
        #expect(busy.value(.callerIDName) == "Gonzalo Gasca Meza")
        #expect(busy.dst == "14082186575" && busy.value(.hangupCause) == "USER_BUSY" && !busy.isAnswered)
        let notRegistered = try p.line(18)
        #expect(notRegistered.value(.hangupCause) == "USER_NOT_REGISTERED" && !notRegistered.isBillable)
        #expect(try p.line(25).dst == "+41245085789")   // written with the plus; rating strips it
        // The caller is a SIP URI user here (the README calls it a destination; it is caller_id_number).
        let uri = try p.line(75)
        #expect(uri.value(.src) == "gonzalo@parzee.com")
        #expect(uri.billableSeconds == 204 && uri.isBillable)
        #expect(uri.value(.hangupCause) == "RECOVERY_ON_TIMER_EXPIRE")
    }

    @Test func powermediaByteIdenticalDuplicates() throws {
        let p = try Samples.parse("freeswitch_powermedia_FreeSwitch__Master.head150.csv", Self.freeswitch)
        #expect(p.results.count == 150)
        #expect(p.failures.isEmpty)
        #expect(p.ok.filter(\.isBillable).count == 14)
        #expect(p.ok.filter(\.isBillable).map(\.billableSeconds).reduce(0, +) == 149)
        let a = try p.line(2), b = try p.line(3)
        #expect(a == b)
        #expect(a.identity == b.identity)
        #expect(a.identity == "fs:14fc2948-83a8-11e1-a94b-9bfad3912484")
        #expect(a.value(.hangupCause) == "UNALLOCATED_NUMBER")
        #expect(Set(p.ok.map(\.identity)).count == 83)   // 150 lines, 83 distinct uuids
        let answered = try p.line(16)
        #expect(answered.dst == "999" && answered.billableSeconds == 16 && answered.isBillable)
    }

    @Test func raspberryLegsAB() throws {
        let basic = try Samples.parse("freeswitch_raspberry-pi-maker_VoIP-related-codes__cdr_basic_legs_ab.csv", Self.freeswitch)
        #expect(basic.results.count == 4)
        #expect(basic.failures.isEmpty)
        // The B-leg line comes first; the A-leg's bleg_uuid names it.
        #expect(try basic.line(3).value(.blegUUID) == basic.line(2).value(.uuid))
        #expect(try basic.line(5).value(.blegUUID) == basic.line(4).value(.uuid))
        #expect(try basic.line(3).dst == "*1003")
        #expect(try basic.line(2).billableSeconds == 7)
        #expect(Set(basic.ok.map(\.identity)).count == 4)

        let cc = try Samples.parse("freeswitch_raspberry-pi-maker_VoIP-related-codes__cdr_callcenter_legs_ab.csv", Self.freeswitch)
        #expect(cc.results.count == 2)
        #expect(cc.failures.isEmpty)
        #expect(try cc.line(3).value(.blegUUID) == "1c2888e3-b3ab-4d66-be6b-91b6430f0afd")
        #expect(try cc.line(2).identity == "fs:1c2888e3-b3ab-4d66-be6b-91b6430f0afd")
        #expect(try cc.line(3).value(.dcontext) == "blueivr")
        #expect(cc.ok.map(\.billableSeconds) == [4, 9])
    }

    /// Re-saved by a spreadsheet: quotes stripped, dates reformatted. Chosen behaviour: every line
    /// fails as freeswitch-csv (bad_line: FreeSWITCH always quotes), and even with the template
    /// spelled out as `columns` the dates fail (bad_time); nothing is charged from it.
    @Test func excelMangledIsRejected() throws {
        let name = "freeswitch_EXCEL_MANGLED_Kxingyunliushui_freeswitch_tools__Master.csv"
        let p = try Samples.parse(name, Self.freeswitch)
        #expect(p.results.count == 10)
        #expect(p.ok.isEmpty)
        #expect(p.failures.allSatisfy { $0.reason == "bad_line" })
        #expect(p.failures.first?.message.contains("quotes") == true)

        let template = CDRParser.freeswitchExample.map(\.rawValue)
        let custom = try Samples.parse(name, ParserOptions(format: .freeswitchCSV, columns: template, timeZone: .utc))
        #expect(custom.ok.isEmpty)
        #expect(custom.failures.count == 10)
        #expect(custom.failures.allSatisfy { $0.reason == "bad_time" })
        #expect(custom.failures.first?.message.contains("2020/2/10 22:41") == true)
    }

    /// OpenSIPS flatstore is not a supported format; its lines must fail loudly, not parse as a CDR.
    @Test func openSIPSFlatstoreIsNotACDRFormat() throws {
        let name = "opensips_flatstore_cgrates__flatstore_local_test.txt"
        let ast = try Samples.parse(name, Self.asterisk)
        #expect(ast.results.count == 11)
        #expect(ast.ok.isEmpty)
        #expect(ast.failures.allSatisfy { $0.reason == "column_count" })
        let fs = try Samples.parse(name, Self.freeswitch)
        #expect(fs.ok.isEmpty)
        #expect(fs.failures.allSatisfy { $0.reason == "bad_line" })
    }
}

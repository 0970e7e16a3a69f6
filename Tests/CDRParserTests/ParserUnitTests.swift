import CDRParser
import Foundation
import Testing

private func parse(_ line: String, _ options: ParserOptions) throws -> Result<CDR, ParseFailure> {
    try CDRParser(options).parse(Array(line.utf8))
}

private func cdr(_ line: String, _ options: ParserOptions) throws -> CDR {
    try parse(line, options).get()
}

private func failure(_ line: String, _ options: ParserOptions) throws -> ParseFailure? {
    if case .failure(let f) = try parse(line, options) { return f }
    return nil
}

/// An asterisk-csv line with the 16 fixed columns plus `extra` raw column texts.
private func astLine(billsec: Int = 42, disposition: String = "ANSWERED", extra: [String] = []) -> String {
    var s = "\"acct1\",\"1001\",\"+4930123456\",\"from-internal\",\"\"\"Smith, John\"\" <1001>\",\"PJSIP/1001-00000001\","
    s += "\"PJSIP/trunk-00000002\",\"Dial\",\"PJSIP/+4930123456@trunk,60\",\"2024-01-27 15:07:24\",\"2024-01-27 15:07:30\","
    s += "\"2024-01-27 15:08:12\",48,\(billsec),\"\(disposition)\",\"DOCUMENTATION\""
    for e in extra { s += "," + e }
    return s
}

@Suite struct AsteriskColumnTests {
    let ast = ParserOptions(format: .asteriskCSV)

    @Test func fixedColumnsAndQuotedCommas() throws {
        let c = try cdr(astLine(), ast)
        #expect(c.account() == "acct1")
        #expect(c.value(.clid) == "\"Smith, John\" <1001>")
        #expect(c.value(.lastdata) == "PJSIP/+4930123456@trunk,60")
        #expect(c.dst == "+4930123456")
        #expect(c.value(.duration) == "48")
        #expect(c.billableSeconds == 42 && c.isBillable)
        #expect(c.value(.uniqueid) == nil && c.value(.linkedid) == nil)
        #expect(c.identity.hasPrefix("h:") && c.identity.count == 34)
    }

    @Test func recognisedCountsWithoutExtra() throws {
        let c18 = try cdr(astLine(extra: ["\"u1\"", "\"uf\""]), ast)
        #expect(c18.value(.uniqueid) == "u1" && c18.value(.userfield) == "uf" && c18.value(.peeraccount) == nil)
        let c19 = try cdr(astLine(extra: ["\"u1\"", "\"uf\"", "\"peer\""]), ast)
        #expect(c19.value(.peeraccount) == "peer")
        let c21 = try cdr(astLine(extra: ["\"u1\"", "\"uf\"", "\"peer\"", "\"L1\"", "7"]), ast)
        #expect(c21.value(.linkedid) == "L1" && c21.value(.sequence) == "7")
        #expect(c21.identity == "ast:L1:7:2024-01-27 15:07:24")
    }

    @Test(arguments: [1, 4]) func ambiguousCountsAskForExtra(_ optional: Int) throws {
        let extra = Array(["\"a\"", "\"b\"", "\"c\"", "\"d\""].prefix(optional))
        let f = try #require(try failure(astLine(extra: extra), ast))
        #expect(f.reason == "column_count")
        #expect(f.message.contains("extra"))
        #expect(f.message.contains("\(16 + optional) columns"))
    }

    @Test func extraResolvesAmbiguousCounts() throws {
        let userfieldOnly = ParserOptions(format: .asteriskCSV, extra: ["userfield"])
        let c17 = try cdr(astLine(extra: ["\"note\""]), userfieldOnly)
        #expect(c17.value(.userfield) == "note" && c17.value(.uniqueid) == nil)

        // loguniqueid=no with newcdrcolumns: 20 columns; the list's order does not matter.
        let noUnique = ParserOptions(format: .asteriskCSV, extra: ["sequence", "userfield", "linkedid", "peeraccount"])
        let c20 = try cdr(astLine(extra: ["\"uf\"", "\"peer\"", "\"L9\"", "3"]), noUnique)
        #expect(c20.value(.userfield) == "uf" && c20.value(.linkedid) == "L9" && c20.value(.sequence) == "3")
        #expect(c20.identity == "ast:L9:3:2024-01-27 15:07:24")

        // With extra set, other counts are wrong, and 18 is no longer guessed.
        let f = try #require(try failure(astLine(extra: ["\"u\"", "\"uf\""]), userfieldOnly))
        #expect(f.reason == "column_count" && f.message.contains("17"))
    }

    @Test func otherCountsFail() throws {
        let f = try #require(try failure("\"a\",\"b\",1", ast))
        #expect(f.reason == "column_count")
        #expect(f.message.contains("got 3 columns"))
    }

    @Test func badExtraNamesAreConfigErrors() {
        #expect(throws: ParserConfigError.badExtra("linkid")) { try CDRParser(ParserOptions(format: .asteriskCSV, extra: ["linkid"])) }
        #expect(throws: ParserConfigError.duplicateExtra("uniqueid")) {
            try CDRParser(ParserOptions(format: .asteriskCSV, extra: ["uniqueid", "uniqueid"]))
        }
        #expect(throws: ParserConfigError.extraNotAllowed(.csv)) {
            try CDRParser(ParserOptions(format: .csv, extra: ["uniqueid"], columns: ["dst", "billsec"]))
        }
        #expect(ParserConfigError.badExtra("linkid").description.contains("\"linkid\""))
    }

    @Test func billsecMustBeANumber() throws {
        let f = try #require(try failure(astLine().replacingOccurrences(of: "48,42", with: "48,4x2"), ast))
        #expect(f.reason == "bad_number" && f.message.contains("4x2"))
        let neg = try #require(try failure(astLine().replacingOccurrences(of: "48,42", with: "48,-1"), ast))
        #expect(neg.reason == "bad_number")
    }

    @Test func badStartTime() throws {
        let f = try #require(try failure(astLine().replacingOccurrences(of: "\"2024-01-27 15:07:24\"", with: "\"27/01/2024 15:07\""), ast))
        #expect(f.reason == "bad_time" && f.message.contains("27/01/2024 15:07"))
        let feb30 = try #require(try failure(astLine().replacingOccurrences(of: "2024-01-27 15:07:24", with: "2023-02-29 10:00:00"), ast))
        #expect(feb30.reason == "bad_time")
    }

    @Test func unbalancedAndStrayQuotes() throws {
        let open = try #require(try failure("\"acct1\",\"1001", ast))
        #expect(open.reason == "bad_line" && open.message.contains("closing quote"))
        let stray = try #require(try failure("\"ac\"ct1\",\"1001\"", ast))
        #expect(stray.reason == "bad_line")
    }
}

@Suite struct LineShapeTests {
    let ast = ParserOptions(format: .asteriskCSV)

    @Test func crlfIsTolerated() throws {
        let plain = try cdr(astLine(), ast)
        let crlf = try cdr(astLine() + "\r", ast)
        #expect(crlf == plain)
        #expect(crlf.identity == plain.identity)
        #expect(crlf.value(.amaflags) == "DOCUMENTATION")
    }

    @Test(arguments: ["", "\r", "   ", "\t"]) func emptyLines(_ line: String) throws {
        for format in CDRFormat.allCases {
            let options = ParserOptions(format: format, columns: format == .csv || format == .freeswitchCSV ? ["dst", "billsec"] : nil)
            let f = try #require(try failure(line, options))
            #expect(f.reason == "bad_line" && f.message == "empty line")
        }
    }

    @Test(arguments: ["garbage", "\u{0}\u{1}\u{2}", "{\"dst\":1}", "\"", ",,,,,,,,", "\"a\"\"", "ÿþ\"x"])
    func garbageNeverParsesOrCrashes(_ line: String) throws {
        #expect(try failure(line, ast) != nil)
        #expect(try failure(line, ParserOptions(format: .freeswitchCSV)) != nil)
        #expect(try failure(line, ParserOptions(format: .jsonl)) != nil)
    }

    @Test func randomBytesNeverCrash() throws {
        var state: UInt64 = 0x1234_5678
        let parsers = try CDRFormat.allCases.map {
            try CDRParser(ParserOptions(format: $0, columns: $0 == .csv ? ["dst", "billsec", "start"] : nil))
        }
        let alphabet: [UInt8] = Array("\",{}[]:\\ 0123456789-abc\r\t".utf8) + [0xA5, 0xFF, 0x00]
        for _ in 0..<3000 {
            var line: [UInt8] = []
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let n = Int(state >> 58)
            for _ in 0..<n {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                line.append(alphabet[Int(state >> 33) % alphabet.count])
            }
            for p in parsers { _ = p.parse(line) }
        }
        // A line made of many columns stops at the column limit instead of overrunning a buffer.
        let wide = Array(repeating: UInt8(ascii: ","), count: 5000)
        if case .failure(let f) = parsers[0].parse(wide) {
            #expect(f.reason == "column_count")
        } else {
            Issue.record("5000 commas parsed as a CDR")
        }
    }

    @Test func latin1BytesAreKept() throws {
        var bytes = Array(astLine().utf8)
        let at = try #require(bytes.firstIndex(of: UInt8(ascii: "S")))   // "Smith" in the clid
        bytes.insert(0xE9, at: at)
        let c = try CDRParser(ast).parse(bytes).get()
        #expect(c.bytes(.clid).map(Array.init) == Array("\"".utf8) + [0xE9] + Array("Smith, John\" <1001>".utf8))
        #expect(c.value(.clid) == "\"\u{E9}Smith, John\" <1001>")
        #expect(c.isBillable)
    }

    @Test func unsafeBufferEntryPointMatchesArray() throws {
        let parser = try CDRParser(ast)
        let bytes = Array((astLine() + "\r").utf8)
        let viaBuffer = bytes.withUnsafeBufferPointer { parser.parse($0) }
        #expect(try viaBuffer.get() == parser.parse(bytes).get())
    }
}

@Suite struct FreeSWITCHTests {
    let fs = ParserOptions(format: .freeswitchCSV)

    private func example(name: String = "Alice", answer: String = "2024-03-01 10:00:05", billsec: String = "55",
                         uuid: String = "u-1", acct: String = "c0001") -> String {
        "\"\(name)\",\"1001\",\"+442071234567\",\"default\",\"2024-03-01 10:00:00\",\"\(answer)\",\"2024-03-01 10:01:00\","
            + "\"60\",\"\(billsec)\",\"NORMAL_CLEARING\",\"\(uuid)\",\"\",\"\(acct)\",\"PCMU\",\"PCMU\""
    }

    @Test func unescapedQuotesInValues() throws {
        let c = try cdr(example(name: "Bob \"the\" Builder"), fs)
        #expect(c.value(.callerIDName) == "Bob \"the\" Builder")
        #expect(c.value(.src) == "1001" && c.dst == "+442071234567")

        let edges = try cdr(example(name: "\"Boss\""), fs)
        #expect(edges.value(.callerIDName) == "\"Boss\"")
        let comma = try cdr(example(name: "Smith, John"), fs)
        #expect(comma.value(.callerIDName) == "Smith, John")
        #expect(comma.account() == "c0001")
        // A value ending in `",` cannot be told from a separator: the line is quarantined
        // instead of shifting every later field by one.
        let ambiguous = try #require(try failure(example(name: "say \"hi\","), fs))
        #expect(ambiguous.reason == "bad_line" && ambiguous.message.contains("ambiguous"))
        // A value holding `","` itself gives one column too many: also a failure, not a shift.
        #expect(try failure(example(name: "a\",\"b"), fs)?.reason == "column_count")
    }

    @Test func answeredMeansAnswerStampSet() throws {
        let no = try cdr(example(answer: "", billsec: "0"), fs)
        #expect(!no.isAnswered && !no.isBillable)
        #expect(no.value(.answer) == "")
        let yes = try cdr(example(), fs)
        #expect(yes.isAnswered && yes.billableSeconds == 55)
        #expect(yes.identity == "fs:u-1")
        #expect(yes.startEpoch == 1_709_287_200)
    }

    @Test func builtInDefaultTemplate() throws {
        // mod_cdr_csv's compiled-in default: 13 fields, a space before the last one.
        let line = "\"Alice\",\"1001\",\"1002\",\"default\",\"2024-03-01 10:00:00\",\"2024-03-01 10:00:05\",\"2024-03-01 10:01:00\","
            + "\"60\",\"55\",\"NORMAL_CLEARING\",\"u-13\",\"\", \"c0007\""
        let c = try cdr(line, fs)
        #expect(c.account() == "c0007")
        #expect(c.value(.blegUUID) == "")
        #expect(c.value(.readCodec) == nil)
        #expect(c.billableSeconds == 55 && c.identity == "fs:u-13")
    }

    @Test func unknownCountAsksForColumns() throws {
        let f = try #require(try failure("\"a\",\"b\",\"c\"", fs))
        #expect(f.reason == "column_count" && f.message.contains("columns"))
    }

    @Test func customTemplateWithBillmsec() throws {
        let options = ParserOptions(format: .freeswitchCSV,
                                    columns: ["uuid", "accountcode", "destination_number", "answer_stamp", "billsec", "billmsec", "-"])
        func line(_ billsec: String, _ ms: String) -> String {
            "\"u-9\",\"c0002\",\"15551234567\",\"2024-03-01 10:00:05\",\"\(billsec)\",\"\(ms)\",\"x\""
        }
        #expect(try cdr(line("1", "1001"), options).billableSeconds == 2)
        #expect(try cdr(line("1", "1000"), options).billableSeconds == 1)
        #expect(try cdr(line("0", "0"), options).billableSeconds == 0)
        #expect(try cdr(line("0", "0"), options).isBillable == false)
        #expect(try cdr(line("0", "999"), options).billableSeconds == 1)
        #expect(try cdr(line("59", "59999"), options).billableSeconds == 60)
        // Custom templates need not quote every field.
        let bare = try cdr("u-9,c0002,15551234567,2024-03-01 10:00:05,1,1500,x", options)
        #expect(bare.billableSeconds == 2 && bare.account() == "c0002")
        #expect(try failure(line("1", "1.5"), options)?.reason == "bad_number")
    }

    @Test func epochTimesFromCustomTemplates() throws {
        let options = ParserOptions(format: .freeswitchCSV, columns: ["uuid", "dst", "start_epoch", "answer_epoch", "billsec"])
        let answered = try cdr("\"u\",\"100\",\"1709287200\",\"1709287205\",\"5\"", options)
        #expect(answered.startEpoch == 1_709_287_200 && answered.isBillable)
        // FreeSWITCH writes answer_epoch 0 for a call never answered.
        let not = try cdr("\"u\",\"100\",\"1709287200\",\"0\",\"0\"", options)
        #expect(!not.isAnswered)
    }
}

@Suite struct CSVAndConfigTests {
    @Test func delimiterAndOptionalQuotes() throws {
        let options = ParserOptions(format: .csv, columns: ["accountcode", "", "dst", "billsec", "disposition", "start"],
                                    delimiter: UInt8(ascii: ";"))
        let c = try cdr("c0003;ignored;\"0049;30\";61;ANSWERED;2024-01-01 00:00:00", options)
        #expect(c.account() == "c0003" && c.dst == "0049;30" && c.billableSeconds == 61 && c.isBillable)
        #expect(c.startEpoch == 1_704_067_200)
        // An ignored column still counts toward the hash identity.
        let other = try cdr("c0003;other;\"0049;30\";61;ANSWERED;2024-01-01 00:00:00", options)
        #expect(c.identity != other.identity)
        #expect(try cdr("c0003;ignored;\"0049;30\";61;ANSWERED;2024-01-01 00:00:00", options).identity == c.identity)
    }

    @Test func withoutDispositionTheAnswerFieldDecides() throws {
        let options = ParserOptions(format: .csv, columns: ["dst", "answer", "billsec"])
        #expect(try cdr("100,,5", options).isAnswered == false)
        #expect(try cdr("100,2024-01-01 00:00:00,5", options).isBillable)
        let bare = ParserOptions(format: .csv, columns: ["dst", "billsec"])
        #expect(try cdr("100,5", bare).isBillable)
    }

    @Test func configErrorsNameTheBadValue() {
        #expect(throws: ParserConfigError.columnsRequired(.csv)) { try CDRParser(ParserOptions(format: .csv)) }
        #expect(throws: ParserConfigError.unknownColumn("destination")) {
            try CDRParser(ParserOptions(format: .csv, columns: ["destination", "billsec"]))
        }
        #expect(throws: ParserConfigError.duplicateColumn("destination_number")) {
            try CDRParser(ParserOptions(format: .csv, columns: ["dst", "destination_number", "billsec"]))
        }
        #expect(throws: ParserConfigError.missingColumn(.dst)) { try CDRParser(ParserOptions(format: .csv, columns: ["billsec"])) }
        #expect(throws: ParserConfigError.missingColumn(.billsec)) { try CDRParser(ParserOptions(format: .csv, columns: ["dst"])) }
        #expect(throws: ParserConfigError.badDelimiter(UInt8(ascii: "\""))) {
            try CDRParser(ParserOptions(format: .csv, columns: ["dst", "billsec"], delimiter: UInt8(ascii: "\"")))
        }
        #expect(throws: ParserConfigError.columnsNotAllowed(.asteriskCSV)) {
            try CDRParser(ParserOptions(format: .asteriskCSV, columns: ["dst", "billsec"]))
        }
        #expect(ParserConfigError.unknownColumn("destination").description.contains("\"destination\""))
    }

    @Test func fieldNamesAndAliases() {
        #expect(CDRField.named("destination_number") == .dst)
        #expect(CDRField.named("caller_id_number") == .src)
        #expect(CDRField.named("context") == .dcontext)
        #expect(CDRField.named("start_stamp") == .start)
        #expect(CDRField.named("answer_stamp") == .answer)
        #expect(CDRField.named("end_stamp") == .end)
        #expect(CDRField.named("hangup_cause") == .hangupCause)
        #expect(CDRField.named("caller_id_name") == .callerIDName)
        #expect(CDRField.named("bleg_uuid") == .blegUUID)
        #expect(CDRField.named("AccountCode") == .accountcode)
        #expect(CDRField.named("callerIDName") == .callerIDName)
        #expect(CDRField.named("bogus") == nil)
        #expect(CDRFormat(rawValue: "asterisk-csv") == .asteriskCSV)
        #expect(CDRFormat(rawValue: "freeswitch-csv") == .freeswitchCSV)
    }
}

@Suite struct JSONLinesTests {
    let jsonl = ParserOptions(format: .jsonl)

    @Test func goodObjects() throws {
        let c = try cdr(#"{"accountcode":"c0001","dst":"+4930123","billsec":"61","disposition":"ANSWERED","start":"2024-01-27 15:07:24","clid":"\"A\" <1>","x":{"nested":[1,2]}}"#, jsonl)
        #expect(c.account() == "c0001" && c.dst == "+4930123" && c.billableSeconds == 61 && c.isBillable)
        #expect(c.value(.clid) == "\"A\" <1>")
        #expect(c.startEpoch == 1_706_368_044)
        #expect(c.identity.hasPrefix("h:"))

        let aliases = try cdr(#"{"destination_number":"100","billmsec":1001,"answer_stamp":"2024-01-01 00:00:00","uuid":"abc","caller_id_name":"Z\u00fc \ud83d\ude00"}"#, jsonl)
        #expect(aliases.dst == "100" && aliases.billableSeconds == 2 && aliases.isAnswered)
        #expect(aliases.identity == "fs:abc")
        #expect(aliases.value(.callerIDName) == "Zü 😀")

        let numbers = try cdr(#" { "dst" : 12345 , "billsec" : 30.0 , "disposition" : "NO ANSWER" , "answer" : null } "#, jsonl)
        #expect(numbers.dst == "12345" && numbers.billableSeconds == 30 && !numbers.isBillable)
        #expect(numbers.value(.answer) == "")
    }

    @Test(arguments: [
        "{", "{\"dst\":\"1\",\"billsec\":5", "[1,2]", "{\"dst\":\"1\" \"billsec\":5}", "{\"dst\":\"1\",\"billsec\":5} trailing",
        "{\"dst\":\"1\",\"billsec\":tru}", "{\"dst\":\"\\q\",\"billsec\":5}", "{dst:1}", "{\"dst\":{\"a\":1},\"billsec\":5}",
        "{\"dst\":\"1\",\"billsec\":5,}",
    ])
    func badJSON(_ line: String) throws {
        let f = try #require(try failure(line, jsonl))
        #expect(f.reason == "bad_json")
    }

    @Test func missingFieldsAndBadNumbers() throws {
        #expect(try failure(#"{"billsec":5}"#, jsonl)?.reason == "missing_field")
        #expect(try failure(#"{"dst":"1"}"#, jsonl)?.reason == "missing_field")
        #expect(try failure(#"{"dst":"1","billsec":"five"}"#, jsonl)?.reason == "bad_number")
        #expect(try failure(#"{"dst":"1","billsec":5,"start":"yesterday"}"#, jsonl)?.reason == "bad_time")
    }

    @Test func identicalLinesShareIdentity() throws {
        let line = #"{"dst":"1","billsec":5,"accountcode":"a"}"#
        #expect(try cdr(line, jsonl).identity == cdr(line, jsonl).identity)
        #expect(try cdr(line, jsonl).identity != cdr(#"{"dst":"1","billsec":6,"accountcode":"a"}"#, jsonl).identity)
    }
}

@Suite struct TimeZoneTests {
    private func start(_ text: String, _ zone: String) throws -> Int64? {
        let options = ParserOptions(format: .csv, columns: ["dst", "billsec", "start"],
                                    timeZone: try #require(TimeZone(identifier: zone)))
        return try cdr("1,1,\(text)", options).startEpoch
    }

    @Test func berlinVersusUTC() throws {
        #expect(try start("2024-01-27 15:07:24", "UTC") == 1_706_368_044)
        #expect(try start("2024-01-27 15:07:24", "Europe/Berlin") == 1_706_368_044 - 3600)   // CET
        #expect(try start("2024-07-01 12:00:00", "Europe/Berlin") == 1_719_828_000)          // CEST: 10:00Z
        #expect(try start("2024-07-01 12:00:00", "America/New_York") == 1_719_849_600)       // EDT: 16:00Z
        // The hour after the spring-forward gap and the Moscow offset change of 2014 (+4 → +3).
        #expect(try start("2024-03-31 03:30:00", "Europe/Berlin") == 1_711_848_600)          // 01:30Z
        #expect(try start("2014-12-01 12:00:00", "Europe/Moscow") == 1_417_424_400)          // 09:00Z
        #expect(try start("2013-12-01 12:00:00", "Europe/Moscow") == 1_385_884_800)          // 08:00Z
    }

    @Test func explicitZonesAndFractions() throws {
        #expect(try start("2024-01-27 15:07:24.123456", "Europe/Berlin") == 1_706_368_044 - 3600)
        #expect(try start("2024-01-27T15:07:24Z", "Europe/Berlin") == 1_706_368_044)
        #expect(try start("2024-01-27 15:07:24 +0100", "UTC") == 1_706_368_044 - 3600)
        #expect(try start("2024-01-27 15:07:24-05:00", "UTC") == 1_706_368_044 + 5 * 3600)
        #expect(try start("1706368044", "Europe/Berlin") == 1_706_368_044)
        #expect(try start("", "UTC") == nil)
    }

    @Test func agreesWithFoundationAcrossAYear() throws {
        let zone = try #require(TimeZone(identifier: "Europe/Berlin"))
        let parser = try CDRParser(ParserOptions(format: .csv, columns: ["dst", "billsec", "start"], timeZone: zone))
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        // Every 7 hours through 2024, away from the ambiguous fall-back hour.
        var t: Int64 = 1_704_067_200
        while t < 1_735_689_600 {
            let d = cal.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(t)))
            let y = try #require(d.year), mo = try #require(d.month), da = try #require(d.day)
            let h = try #require(d.hour), mi = try #require(d.minute), s = try #require(d.second)
            func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
            let text = "\(y)-\(two(mo))-\(two(da)) \(two(h)):\(two(mi)):\(two(s))"
            let isAmbiguous = mo == 10 && da == 27 && h == 2
            if !isAmbiguous {
                #expect(try parser.parse(Array("1,1,\(text)".utf8)).get().startEpoch == t, "\(text)")
            }
            t += 7 * 3600
        }
    }
}

@Suite struct CDRValueTests {
    @Test func fieldsInitComputesLikeTheParser() throws {
        let c = try CDR(fields: [.accountcode: "c0001", .dst: "+15551234567", .billsec: "30",
                                 .disposition: "ANSWERED", .start: "2024-01-27 15:07:24"])
        #expect(c.isBillable && c.billableSeconds == 30 && c.startEpoch == 1_706_368_044)
        #expect(c.account() == "c0001" && c.dst == "+15551234567")
        #expect(c.fields[.billsec] == "30" && c.fields[.uuid] == nil)
        #expect(c.has(.dst) && !c.has(.uuid))
        #expect(throws: ParseFailure.self) { try CDR(fields: [.dst: "1", .billsec: "x"]) }
    }

    @Test func parserEpochOfOtherTimeFields() throws {
        let parser = try CDRParser(ParserOptions(format: .asteriskCSV, timeZone: try #require(TimeZone(identifier: "Europe/Berlin"))))
        let c = try parser.parse(Array(astLine().utf8)).get()
        let end: Int64? = parser.epoch(.end, of: c)
        #expect(end == 1_706_364_492)   // 15:08:12 CET
        #expect(parser.epoch(.uuid, of: c) == nil)
    }
}

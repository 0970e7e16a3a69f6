import Testing

/// Inputs the fuzzer found or that sit exactly on a limit, kept as regression tests: each must keep
/// every fuzz property, and where `expect` is set, give exactly that outcome. Add a crashing or
/// hanging input written to FUZZ_OUT here (bytes as an array, or text) with what it broke.
enum RegressionCases {
    /// One CDR line for one of `ParserFuzzTests.targets`.
    struct Line: Sendable, CustomTestStringConvertible {
        var target: String
        var bytes: [UInt8]
        var note: String
        var expect: FuzzOutcome?
        var testDescription: String { "\(target): \(note)" }

        init(_ target: String, _ text: String, _ note: String, expect: FuzzOutcome? = nil) {
            self.init(target, Array(text.utf8), note, expect: expect)
        }

        init(_ target: String, _ bytes: [UInt8], _ note: String, expect: FuzzOutcome? = nil) {
            self.target = target
            self.bytes = bytes
            self.note = note
            self.expect = expect
        }
    }

    /// A whole deck or config file.
    struct Blob: Sendable, CustomTestStringConvertible {
        var text: String
        var note: String
        var expect: FuzzOutcome?
        var testDescription: String { note }

        init(_ text: String, _ note: String, expect: FuzzOutcome? = nil) {
            self.text = text
            self.note = note
            self.expect = expect
        }
    }

    static let asteriskLine = #""c0001","100","12125550100","out","x","SIP/1","SIP/2","Dial","","2026-01-01 10:00:00","2026-01-01 10:00:05","2026-01-01 10:01:05",65,60,"ANSWERED","DOCUMENTATION","1767261600.1","","","1767261600.1",1"#
    static let fsLine = #""Alice","1000","+4420794","default","2024-01-01 10:00:00","2024-01-01 10:00:05","2024-01-01 10:01:05","65","60","NORMAL_CLEARING","a1b2","","1000","PCMU","PCMU""#

    static let cdrLines: [Line] = [
        Line("asterisk-csv", asteriskLine, "the unmutated line parses", expect: .accepted),
        Line("asterisk-csv", asteriskLine.replacingOccurrences(of: ",60,", with: ",9223372036854775807,"),
             "billsec Int64.max: parses, rating saturates instead of trapping", expect: .accepted),
        Line("asterisk-csv", asteriskLine.replacingOccurrences(of: ",60,", with: ",9223372036854775808,"),
             "billsec one past Int64.max", expect: .rejected),
        Line("asterisk-csv", asteriskLine.replacingOccurrences(of: "2026-01-01 10:00:00", with: "2026-02-30 10:00:00"),
             "a start on a day that does not exist", expect: .rejected),
        Line("asterisk-csv", asteriskLine.replacingOccurrences(of: "2026-01-01 10:00:00", with: "-999-01-01 00:00:00"),
             "a negative year", expect: .rejected),
        Line("asterisk-csv", asteriskLine.replacingOccurrences(of: "2026-01-01 10:00:00", with: "9999-12-31 23:59:60+14:00"),
             "the last second of year 9999, leap second, +14:00", expect: .accepted),
        Line("asterisk-csv", String(repeating: ",", count: 254), "255 empty columns: the limit", expect: .rejected),
        Line("asterisk-csv", String(repeating: ",", count: 255), "256 columns: one past the limit", expect: .rejected),
        Line("asterisk-csv", [0x22], "a lone quote", expect: .rejected),
        Line("asterisk-csv", [0x00, 0xFF, 0x0D], "NUL, 0xFF, CR", expect: .rejected),
        Line("asterisk-csv", [0xEF, 0xBB, 0xBF], "only a byte-order mark", expect: .rejected),
        Line("asterisk-csv", asteriskLine + "\r\n" + asteriskLine, "two lines glued by CRLF"),
        Line("asterisk-csv", String(repeating: "\"\"", count: 50_000), "100 000 quotes", expect: .rejected),
        Line("freeswitch-csv", fsLine, "the unmutated FreeSWITCH line parses", expect: .accepted),
        Line("freeswitch-csv", "\"\"", "two quotes: one empty column", expect: .rejected),
        Line("freeswitch-csv", "\"\",\"\"", "quote comma quote", expect: .rejected),
        Line("freeswitch-csv", "\"" + String(repeating: "\",\"", count: 300) + "\"", "300 quoted columns", expect: .rejected),
        Line("freeswitch-csv", fsLine.replacingOccurrences(of: "\"Alice\"", with: "\"Al\",\"\",\"ice\""),
             "ambiguous quotes around a comma", expect: .rejected),
        Line("freeswitch-csv-columns", fsLine.replacingOccurrences(of: "\"60\"", with: "\"9223372036854775807\""),
             "billmsec Int64.max rounds up without overflow", expect: .accepted),
        Line("csv-pipe", String(repeating: "|", count: 20), "21 empty columns: dst and billsec empty"),
        Line("jsonl", #"{"dst":"1","billsec":5}"#, "the smallest CDR object", expect: .accepted),
        Line("jsonl", "{\"dst\":\"1\",\"billsec\":5,\"x\":" + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}",
             "nesting 64 deep: the limit", expect: .accepted),
        Line("jsonl", "{\"dst\":\"1\",\"billsec\":5,\"x\":" + String(repeating: "[", count: 65) + String(repeating: "]", count: 65) + "}",
             "nesting 65 deep: refused", expect: .rejected),
        Line("jsonl", String(repeating: "{\"a\":", count: 100_000), "100 000 unclosed objects", expect: .rejected),
        Line("jsonl", #"{"dst":"\uD800","billsec":"1.000"}"#, "a lone surrogate becomes U+FFFD", expect: .accepted),
        Line("jsonl", #"{"dst":"\uDBFF\uDFFF","billmsec":1}"#, "the highest surrogate pair", expect: .accepted),
        Line("jsonl", #"{"dst":"1","billsec":1e999}"#, "an exponent is not a whole number of seconds", expect: .rejected),
        Line("jsonl", #"{"dst":"1","billsec":5,"x":"\"#, "an escape at the end of the line", expect: .rejected),
        Line("jsonl", #"{"dst":"1","billsec":5,"x":["\"]}"#, "an escape inside a skipped array's string", expect: .rejected),
    ]

    /// The five columns every deck case starts with.
    static let deckHeader = "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment"

    static let decks: [Blob] = [
        Blob(deckHeader + "\n1,0.01,0,0,1\n", "the smallest deck", expect: .accepted),
        Blob(deckHeader + "\n1,9223372036854.775807,9223372036854.775807,9223372036854775807,9223372036854775807\n",
             "every column at its maximum: rating saturates", expect: .accepted),
        Blob(deckHeader + "\n1,0.01,0,0,0\n", "subsequent_increment 0 is refused", expect: .rejected),
        Blob(deckHeader + "\n+,0.01,0,0,1\n", "a prefix that is only +", expect: .rejected),
        Blob(deckHeader + "\n++44,0.01,0,0,1\n44,0.02,0,0,1\n", "++44 keeps one +: a different prefix from 44", expect: .accepted),
        Blob("\u{FEFF}" + deckHeader + ",description\r\n\"\",0.01,0,0,1,\"\"\"\"\r\n",
             "BOM, CRLF, empty quoted catch-all, a description that is one quote", expect: .accepted),
        Blob(deckHeader + "\n\"1,0.01,0,0,1\n", "an unterminated quote", expect: .rejected),
        Blob("", "an empty file", expect: .rejected),
    ]

    static let configs: [Blob] = [
        Blob(Fuzz.ConfigFuzzTests.full, "the full example is valid", expect: .accepted),
        Blob("", "an empty config is valid", expect: .accepted),
        Blob("[thresholds]\nlow_percent = 5\ncritical_percent = 50\n", "critical above low", expect: .rejected),
        Blob("a = " + String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000),
             "arrays nested 5 000 deep", expect: .rejected),
        Blob("\"\" = 1\n", "an empty quoted key", expect: .rejected),
        // Found by the fuzzer (config, FUZZ_SEED=20261129, case 56: a line of 2 000 '[' in a mutated
        // config): toml++ 3.x in TOMLKit asserts, aborting the process, on a table header that does not
        // start with a key. `config check` and a SIGHUP reload of the daemon died on a one-character typo.
        Blob("[[[\n", "crash: [[[ (toml++ parse_key assertion)", expect: .rejected),
        Blob("[store]\npath = \"x\"\n[$]\n", "crash: [$]", expect: .rejected),
        Blob("[=]", "crash: [=]", expect: .rejected),
        Blob("[\n", "crash: [ alone on a line", expect: .rejected),
        Blob("[[ \r\n", "crash: [[ then CR LF", expect: .rejected),
        Blob("[\u{E9}]", "crash: a non-ASCII first key byte", expect: .rejected),
        Blob("  [\t.a]", "crash: indented, a tab, a dot", expect: .rejected),
        Blob("[store]\npath = \"\"\"\n[=]\"\"\"\n[api]\n", "[=] inside a multi-line string is not a header", expect: .accepted),
        Blob("x = [\n[ +1 ],\n[ {a = 1} ]\n]\n", "[ +1 ] inside a multi-line array is not a header"),
        Blob("[ [a]]\n", "[ [ is toml++'s own error, not an assertion", expect: .rejected),
        // Found by bench/fuzz.sh (config, FUZZ_SEED=795940103, case 6028): a quoted key with a NUL escape.
        // TOMLKit returns keys as C strings, cut at the NUL; looking the cut key up finds nothing and its
        // table iterator force-unwraps it (a trap), so config check and a reload died on it.
        Blob("\n\"\\u0000\"= 14400\n[store.path]", "crash: the fuzzer's input, verbatim", expect: .rejected),
        Blob("\"a\\u0000b\" = 1\n", "crash: a NUL escape inside a key", expect: .rejected),
        Blob("[store]\n\"\\U00000000\" = 1\n", "crash: the long NUL escape, in a table", expect: .rejected),
        Blob("x = { \"\\u0000\" = 1 }\n", "crash: a NUL key in an inline table", expect: .rejected),
        Blob("[\"\\u0000\"]\n", "crash: a NUL key in a header", expect: .rejected),
        // Found by bench/fuzz.sh (config, FUZZ_SEED=795940103, case 14464): the header check skipped the
        // first line when it began with a byte-order mark, which toml++ skips before asserting on `[[[`.
        // (Config.load strips a BOM; Config.parse given text that starts with U+FEFF did not.)
        Blob("\u{FEFF}[[[[store]", "crash: a BOM, then [[[", expect: .rejected),
        Blob("\u{FEFF}[store]\npath = \"x\"\n", "a BOM before a good header", expect: .accepted),
        // Found by bench/fuzz.sh (config, FUZZ_SEED=795940103, case 22288): `}` where an array element
        // should be: another toml++ assertion (parse_value: !is_value_terminator).
        Blob("[store]\n\"NaN\"= [[[[[[[[[[[[[[[[[[[[[[}[[[[", "crash: the fuzzer's input, shortened", expect: .rejected),
        Blob("a = [}", "crash: [}", expect: .rejected),
        Blob("a = [1,\n # c\n }", "crash: } after a comma, a line break and a comment", expect: .rejected),
        Blob("a = [1 }", "} right after an element is toml++'s own error", expect: .rejected),
        Blob("[store]\npath = \"}\"\n[[plan]]\nname = \"a\"\nrates = \"r.csv\"\n", "} inside a string is fine", expect: .accepted),
        // Found by fuzzing (config, FUZZ_SEED=777, FUZZ_SCALE=100, case 3533): a date, a space, one digit.
        Blob("[thresholds]\nlow_percent = 25\n\"9999-12-31 23:59:59\"=2024-13-31 0 90\n", "crash: the fuzzer's line", expect: .rejected),
        Blob("a = [2024-12-31 1,2]\n", "crash: in an array", expect: .rejected),
        Blob("a = {b = 2024-12-31 1}\n", "crash: in an inline table", expect: .rejected),
        Blob("a = 2024-12-31 1#\n", "crash: before a comment", expect: .rejected),
        Blob("a = 2024-12-31 12\n", "two digits: toml++'s own error", expect: .rejected),
        Blob("[store]\npath = \"2024-12-31 1\"\n", "the same text in a string is fine", expect: .accepted),
        // Found by fuzzing (config, FUZZ_SEED=777, FUZZ_SCALE=100, case 40367: a 200 KB quoted key and a
        // 100 000-deep array): the key-line scanner copied the key's path for every bracket, for minutes.
        Blob("\"" + String(repeating: "[", count: 100_000) + "\"=" + String(repeating: "[", count: 100_000)
             + String(repeating: "]", count: 100_000), "hang: a huge key, a deep array", expect: .rejected),
        Blob("\"" + String(repeating: "k", count: 200_000) + "\" = [" + String(repeating: "1,", count: 50_000) + "1]",
             "hang: a huge key, a long array (valid TOML, an unknown key)", expect: .rejected),
        Blob("[store]\npath = 'a\\u0000b'\n", "a literal string holds backslash-u text, not a NUL", expect: .accepted),
        Blob("[[source]]\n[source.filter]\nchannel = \"[(\"\n", "a bad regex and missing keys", expect: .rejected),
        Blob("[api]\nlisten = \"[::1]:99999\"\n", "a port out of range", expect: .rejected),
        Blob("[[source]]\nname = \"a\"\npath = \"x\"\nformat = \"csv\"\ndelimiter = \"\\\"\"\ncolumns = [\"dst\", \"billsec\"]\n",
             "a quote as delimiter", expect: .rejected),
        Blob("[[source]]\nname = \"a\"\npath = \"x\"\nformat = \"csv\"\ncolumns = [\"dst\", \"billmsec\", \"\", \"-\"]\ntimezone = \"Etc/GMT-14\"\n",
             "a minimal csv source", expect: .accepted),
    ]
}

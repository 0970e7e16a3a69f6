import CDRGen
import CDRParser
import Foundation
import Testing

/// Seed inputs: the real CDR files in ../shared/cdr-samples (read in place), cdrgen output for every
/// format, and the project's sample deck and config.
enum Corpus {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let samples = packageRoot.appendingPathComponent("../shared/cdr-samples").standardizedFileURL

    /// A sample file's lines after its `# source:` comment, as bytes (empty if the file is missing).
    static func sample(_ name: String) -> [[UInt8]] {
        guard let data = try? Data(contentsOf: samples.appendingPathComponent(name)) else { return [] }
        var lines = Array(data).split(separator: 0x0A, omittingEmptySubsequences: true).map(Array.init)
        if lines.first?.starts(with: Array("# source:".utf8)) == true { lines.removeFirst() }
        return lines
    }

    static let asteriskFiles = [
        "asterisk_mineevburyat_dj-asterisk-cdr__Master.csv",
        "asterisk_simularent_asterisk-for-speech-to-text__Master.csv",
        "asterisk11_BugaDM_TelephonySwitching__Master.csv",
    ]
    static let freeswitchFiles = [
        "freeswitch_amitsrepo_FreeSwitch_Configuration__Master.csv",
        "freeswitch_DuyNguyen2599_freeswitch__Master.csv",
        "freeswitch_spicyramen_freeswitch_samples__Master.csv",
        "freeswitch_powermedia_FreeSwitch__Master.head150.csv",
        "freeswitch_raspberry-pi-maker_VoIP-related-codes__cdr_basic_legs_ab.csv",
        "freeswitch_raspberry-pi-maker_VoIP-related-codes__cdr_callcenter_legs_ab.csv",
        "freeswitch_EXCEL_MANGLED_Kxingyunliushui_freeswitch_tools__Master.csv",
    ]
    static let customFile = "asterisk_cdr_custom_KelySaina_cdr__Master.csv"

    static func generated(_ format: CDRFormat, calls: Int = 150, seed: UInt64 = 7) -> [[UInt8]] {
        var g = CDRGenerator(format: format, clients: 12, seed: seed, start: 1_767_225_600)
        var out: [[UInt8]] = []
        for _ in 0..<calls { out += g.next().map { Array($0.utf8) } }
        return out
    }

    static let asterisk: [[UInt8]] = asteriskFiles.flatMap(sample) + generated(.asteriskCSV)
    static let freeswitch: [[UInt8]] = freeswitchFiles.flatMap(sample) + generated(.freeswitchCSV)
    static let custom: [[UInt8]] = sample(customFile)
    static let jsonl: [[UInt8]] = generated(.jsonl) + [
        Array(#"{"uuid":"a1","accountcode":"1001","dst":"+4420\u00e9","billmsec":61001,"answer":"2024-01-01 10:00:00","start":"2024-01-01 09:59:50"}"#.utf8),
        Array(#"{"destination_number":"100","billsec":"12","disposition":"ANSWERED","extra":{"deep":[1,2,{"x":"}"}]}}"#.utf8),
    ]

    /// cdrgen's asterisk lines re-written with another delimiter (fields containing it are quoted).
    static func redelimited(_ lines: [[UInt8]], _ d: UInt8) -> [[UInt8]] {
        lines.map { line in
            let fields = splitQuoted(line)
            return Array(fields.map { f -> [UInt8] in
                f.contains(d) || f.contains(UInt8(ascii: "\""))
                    ? [0x22] + f.flatMap { $0 == 0x22 ? [0x22, 0x22] : [$0] } + [0x22] : f
            }.joined(separator: [d]))
        }
    }

    /// A plain RFC 4180 split, independent of the parser's.
    static func splitQuoted(_ line: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var cur: [UInt8] = []
        var inQuotes = false
        var i = 0
        while i < line.count {
            let c = line[i]
            if inQuotes {
                if c == 0x22 {
                    if i + 1 < line.count, line[i + 1] == 0x22 { cur.append(0x22); i += 1 } else { inQuotes = false }
                } else { cur.append(c) }
            } else if c == 0x22 {
                inQuotes = true
            } else if c == UInt8(ascii: ",") {
                out.append(cur); cur = []
            } else { cur.append(c) }
            i += 1
        }
        out.append(cur)
        return out
    }

    static func text(_ relative: String) -> String {
        (try? String(contentsOf: packageRoot.appendingPathComponent(relative), encoding: .utf8)) ?? ""
    }
}

import CDRParser
import MeterCore

/// Generates realistic, deterministic CDR lines as a PBX would write them, for replay tests
/// and benchmarks (`creditmeter cdrgen`).
///
/// The mix, per call (asterisk-csv and jsonl; FreeSWITCH maps the same outcomes to hangup causes):
/// - ANSWERED about 70 % (about 2 % of those with billsec 0), NO ANSWER 15 %, BUSY 8 %, FAILED 7 %;
///   about one in eight NO ANSWER and one in ten BUSY lines carry billsec > 0 (not billable).
/// - billsec of answered calls: 8 % 1–9 s, 82 % 10–300 s skewed short, 10 % 300–3600 s.
/// - destinations: 55 % national (NANP, `1` + 10 digits), 33 % international written with `+`,
///   12 % internal 3-digit extensions `2xx`; see `destinationPrefixes`.
/// - about 6 % of answered calls go through a Local channel (3 lines: two Local halves with
///   billsec 0, then the bridged leg that carries the billsec) and about 4 % are transferred
///   (2 lines, both billable). FreeSWITCH writes one line per call, two for transfers.
/// Times are written in UTC: parse generated files with `timeZone` UTC.
public struct CDRGenerator: Sendable {
    public let format: CDRFormat
    public let clients: Int
    private var rng: Xoshiro256
    private var clock: Int64
    private var channelCounter = 0
    private var uniqueCounter = 0
    private var sequence = 0

    /// `format` is asterisk-csv or freeswitch-csv (csv gives asterisk-csv lines, see `csvColumns`;
    /// jsonl gives one object per CDR with canonical keys). `start` is the first call's time (UTC).
    /// Mean seconds between two calls' starts; nil is the default busy PBX (about 13 s).
    private let meanGap: Int64?

    /// `meanGap` spreads calls out: starts then advance by 0 … 2 × meanGap seconds, uniformly, so a
    /// count of calls covers about count × meanGap seconds (`cdrgen --span-days`).
    public init(format: CDRFormat, clients: Int, seed: UInt64, start: Int64, meanGap: Int64? = nil) {
        self.format = format
        self.clients = max(1, clients)
        self.rng = Xoshiro256(seed: seed)
        self.clock = start
        self.meanGap = meanGap.map { max($0, 0) }
    }

    /// The account code (and client username) of client `i`, 1-based: `c0001`, `c0042`, `c12345`.
    public static func accountCode(_ i: Int) -> String {
        let digits = String(max(i, 0))
        return "c" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// Every generated dst, with its leading `+` removed, starts with one of these: `1` national
    /// NANP numbers, `2` internal extensions, the rest international country codes. A rate deck
    /// with a row for each covers every generated CDR.
    public static let destinationPrefixes: [String] = ["1", "2", "33", "34", "39", "44", "49", "52", "55", "7", "81", "86", "91"]

    /// The column names to parse `format: .csv` output with (asterisk-csv's 21 columns).
    public static let csvColumns: [String] = (CDRParser.asteriskFixed + CDRParser.asteriskOptional).map(\.rawValue)

    private static let internationalCodes = ["33", "34", "39", "44", "49", "52", "55", "7", "81", "86", "91"]
    private static let callerNames = [
        "Alice Martin", "Smith, John", "Bob \"the\" Builder", "O'Brien, Kate", "Reception",
        "Müller, Jürgen", "\"Boss\"", "Front Desk 2", "Ana María López", "Support, 2nd line",
        "Zoë \"Z\" Kim", "Warehouse",
    ]

    private enum Outcome { case answered, noAnswer, busy, failed }

    /// One call's CDR lines (no newline): usually one, sometimes two or three.
    public mutating func next() -> [String] {
        if let gap = meanGap, gap > 40 {
            clock += Int64(rng.int(0...Int(clamping: 2 * gap)))
        } else {
            clock += Int64(rng.skewed(0...40))
        }
        let client = pickClient()
        let account = Self.accountCode(client)
        let ext = String(1000 + client)
        let name = Self.callerNames[(client - 1) % Self.callerNames.count]
        let dst = pickDestination()

        let roll = rng.below(1000)
        let outcome: Outcome = roll < 700 ? .answered : roll < 850 ? .noAnswer : roll < 930 ? .busy : .failed
        let ring = Int64(outcome == .failed ? 0 : rng.int(1...25))
        var billsec: Int64 = 0
        switch outcome {
        case .answered:
            if !rng.chance(20) { billsec = Int64(pickTalkTime()) }
        case .noAnswer:
            if rng.chance(125) { billsec = Int64(rng.int(1...60)) }
        case .busy:
            if rng.chance(100) { billsec = Int64(rng.int(1...10)) }
        case .failed:
            break
        }
        let call = Call(account: account, ext: ext, name: name, dst: dst, start: clock, ring: ring,
                        billsec: billsec, outcome: outcome)
        switch format {
        case .freeswitchCSV: return freeswitchLines(call)
        case .asteriskCSV, .csv, .jsonl: return asteriskLines(call)
        }
    }

    private struct Call {
        var account: String
        var ext: String
        var name: String
        var dst: String
        var start: Int64
        var ring: Int64
        var billsec: Int64
        var outcome: Outcome
    }

    /// A few busy clients make most calls, as on a real PBX.
    private mutating func pickClient() -> Int {
        let heavy = max(1, clients / 10)
        return rng.chance(500) ? 1 + rng.below(heavy) : 1 + rng.below(clients)
    }

    private mutating func pickDestination() -> String {
        let r = rng.below(100)
        if r < 55 {
            return "1" + String(rng.int(2...9)) + digits(2) + String(rng.int(2...9)) + digits(6)
        } else if r < 88 {
            let cc = rng.pick(Self.internationalCodes)
            return "+" + cc + String(rng.int(1...9)) + digits(rng.int(7...9))
        }
        return "2" + digits(2)
    }

    private mutating func digits(_ n: Int) -> String {
        var s = ""
        for _ in 0..<n { s.append(Character(Unicode.Scalar(UInt8(0x30 + rng.below(10))))) }
        return s
    }

    private mutating func pickTalkTime() -> Int {
        let r = rng.below(100)
        if r < 8 { return rng.int(1...9) }
        if r < 90 { return rng.skewed(10...300) }
        return rng.skewed(300...3600)
    }

    // MARK: - Asterisk

    private mutating func channelID() -> String {
        channelCounter += 1
        return hex8(channelCounter)
    }

    private mutating func uniqueID(_ t: Int64) -> String {
        uniqueCounter += 1
        return "\(t).\(uniqueCounter)"
    }

    /// One asterisk-csv row's 21 values in cdr_csv order; `nil` answer means the bare empty field.
    private struct AstRow {
        var accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata: String
        var start: Int64
        var answer: Int64?
        var end: Int64
        var billsec: Int64
        var disposition: String
        var uniqueid, linkedid: String
        var sequence: Int
    }

    private mutating func asteriskLines(_ c: Call) -> [String] {
        let isInternal = c.dst.hasPrefix("2")
        let trunk = isInternal ? "PJSIP/\(c.dst)" : "PJSIP/trunk"
        let lastdata = isInternal ? "PJSIP/\(c.dst),30" : "PJSIP/\(c.dst)@trunk,60,tT"
        let channel = "PJSIP/\(c.ext)-\(channelID())"
        let uid = uniqueID(c.start)
        let clid = "\"\(c.name)\" <\(c.ext)>"
        let answered = c.outcome == .answered
        let disposition: String
        switch c.outcome {
        case .answered: disposition = "ANSWERED"
        case .noAnswer: disposition = "NO ANSWER"
        case .busy: disposition = "BUSY"
        case .failed: disposition = "FAILED"
        }
        var base = AstRow(
            accountcode: c.account, src: c.ext, dst: c.dst, dcontext: "from-internal", clid: clid,
            channel: channel, dstchannel: c.outcome == .failed ? "" : "\(trunk)-\(channelID())",
            lastapp: "Dial", lastdata: lastdata, start: c.start,
            answer: (answered || c.billsec > 0) ? c.start + c.ring : nil,
            end: c.start + c.ring + c.billsec, billsec: c.billsec, disposition: disposition,
            uniqueid: uid, linkedid: uid, sequence: 0)

        var rows: [AstRow] = []
        if answered, c.billsec > 0, !isInternal, rng.chance(60) {
            // Outbound route through a Local channel: both halves end when the Local channel
            // optimises away (billsec 0); the bridged leg that follows carries the talk time.
            let answerAt = c.start + c.ring
            let local = "Local/\(c.dst)@outbound-\(channelID())"
            var half2 = base
            half2.channel = local + ";2"
            half2.dcontext = "outbound"
            half2.uniqueid = uniqueID(c.start)
            half2.end = answerAt
            half2.billsec = 0
            var half1 = base
            half1.dstchannel = local + ";1"
            half1.lastdata = "Local/\(c.dst)@outbound"
            half1.end = answerAt
            half1.billsec = 0
            var bridged = base
            bridged.start = answerAt
            bridged.lastdata = "Local/\(c.dst)@outbound"
            rows = [half2, half1, bridged]
        } else if answered, c.billsec > 0, rng.chance(40) {
            // Transfer: the first leg ends at the transfer, the transferred leg carries on to a new number.
            let first = max(1, c.billsec / 3)
            base.end = c.start + c.ring + first
            base.billsec = first
            var second = base
            second.channel = base.dstchannel
            second.dstchannel = "PJSIP/trunk-\(channelID())"
            second.dst = pickDestination()
            second.dcontext = "from-internal-xfer"
            second.lastdata = "PJSIP/\(second.dst)@trunk,60,tT"
            second.uniqueid = uniqueID(base.end)
            second.start = base.end
            second.answer = base.end + 2
            second.billsec = max(1, c.billsec - first)
            second.end = base.end + 2 + second.billsec
            rows = [base, second]
        } else {
            rows = [base]
        }
        return rows.map { row in
            var r = row
            r.sequence = sequence
            sequence += 1
            return format == .jsonl ? jsonLine(r) : csvLine(r)
        }
    }

    private func csvLine(_ r: AstRow) -> String {
        var s = ""
        s.reserveCapacity(320)
        for v in [r.accountcode, r.src, r.dst, r.dcontext, r.clid, r.channel, r.dstchannel, r.lastapp, r.lastdata] {
            s += quoted(v) + ","
        }
        s += quoted(utcText(r.start)) + ","
        s += (r.answer.map { quoted(utcText($0)) } ?? "") + ","
        s += quoted(utcText(r.end)) + ","
        s += "\(r.end - r.start),\(r.billsec),"
        s += quoted(r.disposition) + "," + quoted("DOCUMENTATION") + ","
        s += quoted(r.uniqueid) + "," + quoted("") + "," + quoted("") + ","
        s += quoted(r.linkedid) + ",\(r.sequence)"
        return s
    }

    private func jsonLine(_ r: AstRow) -> String {
        var pairs: [(String, String)] = [
            ("accountcode", json(r.accountcode)), ("src", json(r.src)), ("dst", json(r.dst)),
            ("dcontext", json(r.dcontext)), ("clid", json(r.clid)), ("channel", json(r.channel)),
            ("dstchannel", json(r.dstchannel)), ("lastapp", json(r.lastapp)), ("lastdata", json(r.lastdata)),
            ("start", json(utcText(r.start))),
        ]
        pairs.append(("answer", r.answer.map { json(utcText($0)) } ?? "null"))
        pairs += [
            ("end", json(utcText(r.end))), ("duration", String(r.end - r.start)), ("billsec", String(r.billsec)),
            ("disposition", json(r.disposition)), ("uniqueid", json(r.uniqueid)),
            ("linkedid", json(r.linkedid)), ("sequence", String(r.sequence)),
        ]
        return "{" + pairs.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    // MARK: - FreeSWITCH

    private mutating func uuid() -> String {
        let a = rng.next(), b = rng.next()
        // Version 4, variant 10, as FreeSWITCH's own uuids are.
        let hi = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        let lo = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        let h = hex16(hi), l = hex16(lo)
        func cut(_ s: String, _ from: Int, _ to: Int) -> Substring {
            s[s.index(s.startIndex, offsetBy: from)..<s.index(s.startIndex, offsetBy: to)]
        }
        return "\(cut(h, 0, 8))-\(cut(h, 8, 12))-\(cut(h, 12, 16))-\(cut(l, 0, 4))-\(cut(l, 4, 16))"
    }

    private mutating func freeswitchLines(_ c: Call) -> [String] {
        let answered = c.outcome == .answered
        let codec = rng.pick(["PCMU", "PCMU", "PCMA", "G722", "opus"])
        let cause: String
        switch c.outcome {
        case .answered:
            let r = rng.below(100)
            cause = r < 90 ? "NORMAL_CLEARING" : r < 97 ? "NORMAL_UNSPECIFIED" : "RECOVERY_ON_TIMER_EXPIRE"
        case .noAnswer: cause = rng.pick(["NO_ANSWER", "ORIGINATOR_CANCEL", "ORIGINATOR_CANCEL", "NO_USER_RESPONSE"])
        case .busy: cause = "USER_BUSY"
        case .failed: cause = rng.pick(["UNALLOCATED_NUMBER", "NORMAL_TEMPORARY_FAILURE", "INVALID_GATEWAY", "CALL_REJECTED"])
        }
        // FreeSWITCH derives billsec from answer time, so an unanswered leg always has billsec 0.
        let billsec = answered ? c.billsec : 0
        let a = uuid()
        let b = answered ? uuid() : ""
        let answerAt = c.start + c.ring
        let end = c.start + c.ring + billsec

        func line(_ name: String, _ src: String, _ dst: String, _ start: Int64, _ answer: Int64?, _ end: Int64,
                  _ billsec: Int64, _ cause: String, _ uuid: String, _ bleg: String, _ codec: String) -> String {
            // mod_cdr_csv quotes every value and escapes nothing, quotes in caller names included.
            let values = [name, src, dst, "default", utcText(start), answer.map(utcText) ?? "", utcText(end),
                          String(end - start), String(billsec), cause, uuid, bleg, c.account, codec, codec]
            return "\"" + values.joined(separator: "\",\"") + "\""
        }

        if answered, billsec > 1, rng.chance(40) {
            let first = max(1, billsec / 3)
            let xferAt = answerAt + first
            let target = pickDestination()
            let rest = max(1, billsec - first)
            return [
                line(c.name, c.ext, c.dst, c.start, answerAt, xferAt, first, "NORMAL_CLEARING", a, b, codec),
                line("Outbound Call", c.ext, target, xferAt, xferAt + 2, xferAt + 2 + rest, rest, cause, b, "", codec),
            ]
        }
        return [line(c.name, c.ext, c.dst, c.start, answered ? answerAt : nil, end, billsec, cause, a, b,
                     answered || rng.chance(300) ? codec : "")]
    }
}

// MARK: - Text helpers

private func quoted(_ s: String) -> String {
    "\"" + s.replacingAll("\"", with: "\"\"") + "\""
}

private func json(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default:
            if u.value < 0x20 { out += "\\u00" + hex2(Int(u.value)) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

private extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        guard contains(target) else { return self }
        var out = ""
        for ch in self { if ch == target { out += replacement } else { out.append(ch) } }
        return out
    }
}

private let hexDigits = Array("0123456789abcdef")

private func hex2(_ v: Int) -> String { String([hexDigits[(v >> 4) & 15], hexDigits[v & 15]]) }

private func hex8(_ v: Int) -> String {
    var s = ""
    for shift in stride(from: 28, through: 0, by: -4) { s.append(hexDigits[(v >> shift) & 15]) }
    return s
}

private func hex16(_ v: UInt64) -> String {
    var s = ""
    for shift in stride(from: 60, through: 0, by: -4) { s.append(hexDigits[Int((v >> UInt64(shift)) & 15)]) }
    return s
}

/// `YYYY-MM-DD HH:MM:SS` of a UTC epoch.
func utcText(_ t: Int64) -> String { CivilTime.cdrText(t) }

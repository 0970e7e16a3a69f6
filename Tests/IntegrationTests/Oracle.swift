import Foundation

/// An independent, deliberately naive re-implementation of SPEC sections 2–3 for checking the ledger:
/// decimal strings to µcr by string surgery, linear longest-prefix search, rounding written out longhand.
enum Oracle {
    struct Row {
        var prefix: String
        var rate: Int64
        var fee: Int64
        var initial: Int64
        var subsequent: Int64
    }

    static func micro(_ s: String) -> Int64 {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        let whole = Int64(parts[0].isEmpty ? "0" : String(parts[0])) ?? 0
        var frac = parts.count > 1 ? String(parts[1]) : ""
        while frac.count < 6 { frac += "0" }
        return whole * 1_000_000 + (Int64(frac) ?? 0)
    }

    static func format(_ v: Int64) -> String {
        let neg = v < 0
        let m = neg ? -v : v
        var s = "\(m / 1_000_000)"
        var f = String(m % 1_000_000)
        f = String(repeating: "0", count: 6 - f.count) + f
        while f.hasSuffix("0") { f.removeLast() }
        if !f.isEmpty { s += "." + f }
        return (neg ? "-" : "") + s
    }

    static func deck(_ csv: String) -> [Row] {
        csv.split(separator: "\n").dropFirst().compactMap { line in
            let c = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard c.count >= 5 else { return nil }
            return Row(prefix: c[0] == "*" ? "" : c[0], rate: micro(c[1]), fee: micro(c[2]),
                       initial: Int64(c[3]) ?? 0, subsequent: Int64(c[4]) ?? 1)
        }
    }

    static func match(_ rows: [Row], _ dst: String) -> Row? {
        let d = dst.hasPrefix("+") ? String(dst.dropFirst()) : dst
        var best: Row?
        for r in rows where d.hasPrefix(r.prefix) {
            if best == nil || r.prefix.count > best!.prefix.count { best = r }
        }
        return best
    }

    static func cost(_ r: Row, billsec b: Int64) -> Int64 {
        guard b > 0 else { return 0 }
        var c = r.initial
        if b > r.initial {
            var steps = (b - r.initial) / r.subsequent
            if (b - r.initial) % r.subsequent != 0 { steps += 1 }
            c = r.initial + steps * r.subsequent
        }
        let num = r.rate * c
        var perTime = num / 60
        if num % 60 != 0 { perTime += 1 }
        return r.fee + perTime
    }

    /// Splits an Asterisk cdr_csv line: quoted fields with "" escapes, bare numbers.
    static func splitAsterisk(_ line: String) -> [String] {
        var out: [String] = []
        var cur = ""
        var inQuotes = false
        var chars = Array(line)
        chars.append(",")
        var i = 0
        while i < chars.count {
            let ch = chars[i]
            if inQuotes {
                if ch == "\"" {
                    if i + 1 < chars.count - 1 && chars[i + 1] == "\"" { cur.append("\""); i += 1 } else { inQuotes = false }
                } else { cur.append(ch) }
            } else if ch == "\"" {
                inQuotes = true
            } else if ch == "," {
                out.append(cur); cur = ""
            } else { cur.append(ch) }
            i += 1
        }
        return out
    }

    struct Expected {
        var usedByAccount: [String: Int64] = [:]
        var charged = 0
        var notBillable = 0
    }

    /// What a 21-column Asterisk Master.csv should cost per account code, counting each identity once.
    static func expectAsterisk(_ text: String, deck: [Row]) -> Expected {
        var e = Expected()
        var seen = Set<String>()
        for line in text.split(separator: "\n") {
            let f = splitAsterisk(String(line))
            guard f.count == 21 else { continue }
            let billsec = Int64(f[13]) ?? 0
            guard f[14] == "ANSWERED", billsec > 0 else { e.notBillable += 1; continue }
            let identity = f[19] + ":" + f[20] + ":" + f[9]
            guard seen.insert(identity).inserted, let row = match(deck, f[2]) else { continue }
            e.usedByAccount[f[0], default: 0] += cost(row, billsec: billsec)
            e.charged += 1
        }
        return e
    }
}

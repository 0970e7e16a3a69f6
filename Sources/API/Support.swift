import Foundation
import Ledger
import MeterCore

/// Secret comparison whose running time does not depend on where the inputs differ.
public enum ConstantTime {
    /// True when `given` equals `expected`. The loop always runs over all of `expected` (whose length
    /// is not secret-dependent on the attacker's guess), folding every byte difference and the length
    /// difference into one accumulator, so neither an early mismatch nor a matching prefix returns sooner.
    @inline(never)
    public static func equals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var diff = UInt64(truncatingIfNeeded: given.count ^ expected.count)
        let n = given.count
        for i in 0 ..< expected.count {
            // Index `given` modulo its length so the loop does the same work whatever the guess's length.
            let g: UInt8 = n == 0 ? 0 : given[i % n]
            diff |= UInt64(g ^ expected[i])
        }
        return diff == 0
    }

    public static func equals(_ given: String, _ expected: String) -> Bool {
        equals(Array(given.utf8), Array(expected.utf8))
    }
}

/// URL query and path helpers; `+` stays a plus sign because `dst=+4420…` is an E.164 number, not a space.
package enum URLText {
    /// `a=1&b=%2B44` → ["a": "1", "b": "+44"]; the first occurrence of a key wins.
    package static func query(_ q: Substring?) -> [String: String] {
        guard let q, !q.isEmpty else { return [:] }
        var out: [String: String] = [:]
        for pair in q.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = percentDecode(kv[0])
            let value = kv.count > 1 ? percentDecode(kv[1]) : ""
            if out[key] == nil { out[key] = value }
        }
        return out
    }

    /// Decodes `%XX`; a malformed escape is kept as written rather than failing the request.
    package static func percentDecode(_ s: Substring) -> String {
        guard s.utf8.contains(UInt8(ascii: "%")) else { return String(s) }
        return String(decoding: PercentDecoding.bytes(s.utf8), as: UTF8.self)
    }
}

/// Unix seconds as RFC 3339 UTC (`2024-05-01T12:00:00Z`), the form the CLI's `--json` prints.
enum Timestamp {
    static func rfc3339(_ epoch: Int64) -> String { CivilTime.rfc3339(epoch) }
}

/// The client JSON shapes of `creditmeter clients list|show --json`, shared by the admin API and `/v1/me`.
public enum ClientJSON {
    /// `clients list --json` per client: username, status, the meter fields, plan, accounts.
    public static func summary(_ c: ClientRecord, _ t: Thresholds) -> JSONValue {
        .object(summaryPairs(c, t))
    }

    /// `clients show --json`: the summary plus the profile fields, created_at and disabled_at.
    public static func detail(_ c: ClientRecord, _ t: Thresholds) -> JSONValue {
        .object(summaryPairs(c, t) + detailPairs(c))
    }

    static func detailPairs(_ c: ClientRecord) -> [(String, JSONValue)] {
        ProfileField.allCases.map { ($0.rawValue, JSONValue.string(c[$0])) } + [
            ("created_at", .string(Timestamp.rfc3339(c.createdAt))),
            ("disabled_at", c.disabledAt.map { .string(Timestamp.rfc3339($0)) } ?? .null),
        ]
    }

    static func summaryPairs(_ c: ClientRecord, _ t: Thresholds) -> [(String, JSONValue)] {
        [("username", .string(c.username)), ("status", .string(c.status.rawValue))]
            + c.meter.jsonFields(t)
            + [("plan", .string(c.plan)), ("accounts", .array(c.accounts.map { .string($0) }))]
    }
}

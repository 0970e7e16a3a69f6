import Foundation

/// The quarantine: lines that could not be charged, kept until a retry charges them.
extension Ledger {
    /// Quarantined lines, oldest first; `limit` nil means all, `reason` filters by exact reason.
    public func quarantine(limit: Int?, reason: String?) throws(LedgerError) -> [QuarantineItem] {
        try locked { () throws(LedgerError) -> [QuarantineItem] in
            let s = try store.statement("""
                SELECT \(Ledger.quarantineColumns) FROM quarantine WHERE (?1 IS NULL OR reason = ?1) ORDER BY id LIMIT ?2
                """, "listing the quarantine")
            defer { s.reset() }
            try s.bind(1, reason)
            // SQLite reads a negative LIMIT as "no limit".
            try s.bind(2, Int64(limit ?? -1))
            var out: [QuarantineItem] = []
            while try s.step() { out.append(Ledger.readQuarantine(s)) }
            return out
        }
    }

    public func quarantineCount() throws(LedgerError) -> Int {
        try locked { () throws(LedgerError) -> Int in
            Int(try store.scalarInt("SELECT count(*) FROM quarantine", purpose: "counting the quarantine"))
        }
    }

    /// Re-rates every quarantined line with the wall clock as the charge time; see `retryQuarantine(now:_:)`.
    public func retryQuarantine(_ decide: (QuarantineItem) -> Charge?) throws(LedgerError) -> (charged: Int, duplicates: Int, remaining: Int) {
        try retryQuarantine(now: Int64(time(nil)), decide)
    }

    /// For each quarantined line, `decide` returns a charge (charged, or found already charged, and the
    /// line deleted, in the same transaction) or nil (the line stays). Works in pages, one transaction each.
    public func retryQuarantine(now: Int64, _ decide: (QuarantineItem) -> Charge?) throws(LedgerError) -> (charged: Int, duplicates: Int, remaining: Int) {
        try locked { () throws(LedgerError) -> (charged: Int, duplicates: Int, remaining: Int) in
            var after: Int64 = 0
            var charged = 0, duplicates = 0
            while true {
                let more = try store.transaction("retrying quarantined lines") { () throws(LedgerError) -> Bool in
                    let page = try quarantinePage(after: after, limit: 500)
                    guard let last = page.last else { return false }
                    after = last.id
                    var charges: [Charge] = []
                    var resolved: [Int64] = []
                    for item in page {
                        if let c = decide(item) {
                            charges.append(c)
                            resolved.append(item.id)
                        }
                    }
                    guard !charges.isEmpty else { return true }
                    let outcome = try apply(charges: charges, quarantined: [], position: nil, now: now)
                    charged += outcome.charged
                    duplicates += outcome.duplicates
                    // The line's key need not be the charge's identity (an unparsable line that now parses).
                    let del = try store.statement("DELETE FROM quarantine WHERE id = ?1", "removing a retried line")
                    for id in resolved {
                        defer { del.reset() }
                        try del.bind(1, id)
                        try del.run()
                    }
                    return true
                }
                if !more { break }
            }
            let remaining = Int(try store.scalarInt("SELECT count(*) FROM quarantine", purpose: "counting the quarantine"))
            return (charged, duplicates, remaining)
        }
    }

    private func quarantinePage(after: Int64, limit: Int64) throws(LedgerError) -> [QuarantineItem] {
        let s = try store.statement("""
            SELECT \(Ledger.quarantineColumns) FROM quarantine WHERE id > ?1 ORDER BY id LIMIT ?2
            """, "reading a page of the quarantine")
        defer { s.reset() }
        try s.bind(1, after)
        try s.bind(2, limit)
        var out: [QuarantineItem] = []
        while try s.step() { out.append(Ledger.readQuarantine(s)) }
        return out
    }

    static let quarantineColumns = "id, key, source, position, line, reason, message, raw, at, start_key, length, sha256"

    static func readQuarantine(_ s: Statement) -> QuarantineItem {
        QuarantineItem(id: s.int64(0),
                       entry: QuarantineEntry(key: s.text(1), source: s.text(2), position: s.int64(3), line: s.int64(4),
                                              reason: s.text(5), message: s.text(6), raw: s.blob(7),
                                              startKey: s.isNull(9) ? nil : s.int64(9),
                                              length: s.optionalInt64(10), sha256: s.isNull(11) ? nil : s.text(11)),
                       at: s.int64(8))
    }
}

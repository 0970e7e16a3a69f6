extension Ledger {
    /// Changes whenever another connection (the CLI, the delivery loop) commits to the store; the daemon
    /// compares it between batches to know when to reload its in-memory account directory.
    public func dataVersion() throws(LedgerError) -> Int64 {
        try locked { () throws(LedgerError) -> Int64 in
            try store.scalarInt("PRAGMA data_version", purpose: "read the data version")
        }
    }

    /// The start time of the newest CDR charged from `source` (newest by its start), for `creditmeter status`.
    /// Read backwards along the dedupe index, which leads with the start, until a row of the source comes:
    /// a few rows for a source that is charging, where `max(started_at)` scanned the whole store (2 s at ten
    /// million rows, once per source). A source with none among the newest `lastStartWalk` charges (idle for
    /// long, or only charged before schema version 3 gave rows a start key) falls back to that scan.
    public func lastChargedStart(source: String) throws(LedgerError) -> Int64? {
        let recent = try locked { () throws(LedgerError) -> Int64?? in
            let s = try store.statement("""
                SELECT source = ?1, started_at FROM usage WHERE start_key IS NOT NULL ORDER BY start_key DESC
                """, "find the newest CDR of a source")
            defer { s.reset() }
            try s.bind(1, source)
            var read = 0
            while read < lastStartWalk, try s.step() {
                read += 1
                if s.int64(0) != 0 { return .some(s.optionalInt64(1)) }
            }
            return .none
        }
        if let recent { return recent }
        return try firstRow("SELECT max(started_at) FROM usage WHERE source = ?", "find the newest CDR of a source", source) {
            $0.optionalInt64(0)
        } ?? nil
    }
}

extension Ledger {
    /// Changes whenever another connection (the CLI, the delivery loop) commits to the store; the daemon
    /// compares it between batches to know when to reload its in-memory account directory.
    public func dataVersion() throws(LedgerError) -> Int64 {
        try locked { () throws(LedgerError) -> Int64 in
            try store.scalarInt("PRAGMA data_version", purpose: "read the data version")
        }
    }

    /// The start time of the newest CDR charged from `source`, for `creditmeter status`.
    public func lastChargedStart(source: String) throws(LedgerError) -> Int64? {
        try firstRow("SELECT max(started_at) FROM usage WHERE source = ?", "find the newest CDR of a source", source) {
            $0.optionalInt64(0)
        } ?? nil
    }
}

/// Rotated-away source files the daemon gave up (no file with their identity was left), per source.
extension Ledger {
    /// Adds `files` given-up files holding `bytes` known-unread bytes to `source`'s tally.
    public func recordGivenUp(source: String, files: Int, bytes: Int64, now: Int64) throws(LedgerError) {
        try write("counting a given-up file of \(source)") { () throws(LedgerError) in
            let s = try store.statement("""
                INSERT INTO source_given_up (source, files, bytes, last_at) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT (source) DO UPDATE SET files = files + excluded.files, bytes = bytes + excluded.bytes,
                    last_at = excluded.last_at
                """, "counting a given-up file")
            defer { s.reset() }
            try s.bind(1, source)
            try s.bind(2, Int64(files))
            try s.bind(3, bytes)
            try s.bind(4, now)
            try s.run()
        }
    }

    /// `source`'s given-up files and their known-unread bytes since the store was made.
    public func givenUp(source: String) throws(LedgerError) -> (files: Int64, bytes: Int64) {
        try firstRow("SELECT files, bytes FROM source_given_up WHERE source = ?1", "reading the given-up files", source) {
            ($0.int64(0), $0.int64(1))
        } ?? (0, 0)
    }
}

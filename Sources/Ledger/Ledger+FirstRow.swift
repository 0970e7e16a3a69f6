/// A value a query binds to one of its parameters.
protocol StatementParameter {
    func bind(to s: Statement, at index: Int32) throws(LedgerError)
}

extension Int64: StatementParameter {
    func bind(to s: Statement, at index: Int32) throws(LedgerError) { try s.bind(index, self) }
}

extension String: StatementParameter {
    func bind(to s: Statement, at index: Int32) throws(LedgerError) { try s.bind(index, self) }
}

extension Ledger {
    /// Under the lock, `read` of the first row that `sql` gives with `value` as ?1; nil when it gives
    /// no row. For the lookups and totals that read one row by one key.
    func firstRow<T>(_ sql: String, _ purpose: String, _ value: some StatementParameter,
                     _ read: (Statement) -> T) throws(LedgerError) -> T? {
        try locked { () throws(LedgerError) -> T? in
            let s = try store.statement(sql, purpose)
            defer { s.reset() }
            try value.bind(to: s, at: 1)
            return try s.step() ? read(s) : nil
        }
    }
}

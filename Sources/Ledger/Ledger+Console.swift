import MeterCore

/// One charged call as the client portal lists it.
public struct CallRecord: Sendable, Equatable {
    /// The call's start (Unix seconds) when the CDR had one, else when it was charged.
    public var at: Int64
    public var destination: String
    public var billsec: Int64
    public var cost: Int64

    /// For the PostgreSQL store, which reads the same rows.
    package init(at: Int64, destination: String, billsec: Int64, cost: Int64) {
        self.at = at
        self.destination = destination
        self.billsec = billsec
        self.cost = cost
    }
}

/// One recharge as the client portal lists it.
public struct RechargeRecord: Sendable, Equatable {
    public var at: Int64
    public var amount: Int64

    package init(at: Int64, amount: Int64) {
        self.at = at
        self.amount = amount
    }
}

/// The reads behind the web console: one page of clients, and a client's recent calls and recharges.
extension Ledger {
    /// Clients whose username, first name, last name, "first last" or email contains `search`
    /// (case-insensitively for ASCII, as SQLite's LIKE does), by username, `limit` from `offset`, and
    /// how many match in all. The records' `accounts` are left empty: the Clients page does not show
    /// them, and reading them for a page would be a query per row.
    public func clientPage(search: String, limit: Int, offset: Int) throws(LedgerError) -> (total: Int, clients: [ClientRecord]) {
        try locked { () throws(LedgerError) -> (total: Int, clients: [ClientRecord]) in
            // LIKE's own wildcards in what the operator typed match themselves.
            var escaped = ""
            for ch in search {
                if ch == "%" || ch == "_" || ch == "\\" { escaped.append("\\") }
                escaped.append(ch)
            }
            let pattern = "%" + escaped + "%"
            // A substring of the first or the last name is one of "first last", so three LIKEs cover the
            // five ways to find a client; each is a scan, and on 10,000 rows the scans are the page's cost.
            let filter = """
                ?1 = '' OR username LIKE ?2 ESCAPE '\\' OR (first_name || ' ' || last_name) LIKE ?2 ESCAPE '\\'
                OR email LIKE ?2 ESCAPE '\\'
                """
            let count = try store.statement("SELECT count(*) FROM clients WHERE \(filter)", "counting clients")
            defer { count.reset() }
            try count.bind(1, search)
            try count.bind(2, pattern)
            let total = try count.step() ? Int(count.int64(0)) : 0
            let s = try store.statement("""
                SELECT \(Ledger.clientColumns) FROM clients WHERE \(filter) ORDER BY username LIMIT ?3 OFFSET ?4
                """, "reading a page of clients")
            defer { s.reset() }
            try s.bind(1, search)
            try s.bind(2, pattern)
            try s.bind(3, Int64(limit))
            try s.bind(4, Int64(offset))
            var out: [ClientRecord] = []
            while try s.step() { out.append(Ledger.readClient(s)) }
            return (total, out)
        }
    }

    /// The client's last `limit` charged calls, newest answered first, each at its current cost (the newest
    /// rerate adjustment's, else the charge's); empty for an unknown client. Read backwards along the
    /// index by client and moment, so it costs `limit` rows however many calls the client has made.
    public func recentCalls(username: String, limit: Int) throws(LedgerError) -> [CallRecord] {
        try locked { () throws(LedgerError) -> [CallRecord] in
            let s = try store.statement("""
                SELECT coalesce(u.started_at, u.charged_at), u.destination, u.billsec,
                    coalesce((SELECT a.new_cost FROM usage_adjustments a WHERE a.usage_id = u.id ORDER BY a.id DESC LIMIT 1), u.cost)
                FROM usage u WHERE u.client_id = (SELECT id FROM clients WHERE username = ?1)
                ORDER BY coalesce(u.answered_at, u.started_at) DESC, u.id DESC LIMIT ?2
                """, "reading a client's recent calls")
            defer { s.reset() }
            try s.bind(1, username)
            try s.bind(2, Int64(limit))
            var out: [CallRecord] = []
            while try s.step() { out.append(CallRecord(at: s.int64(0), destination: s.text(1), billsec: s.int64(2), cost: s.int64(3))) }
            return out
        }
    }

    /// The client's last `limit` recharges, newest first.
    public func recentRecharges(username: String, limit: Int) throws(LedgerError) -> [RechargeRecord] {
        try locked { () throws(LedgerError) -> [RechargeRecord] in
            let s = try store.statement("""
                SELECT r.at, r.amount FROM recharges r JOIN clients c ON c.id = r.client_id
                WHERE c.username = ?1 ORDER BY r.id DESC LIMIT ?2
                """, "reading a client's recharges")
            defer { s.reset() }
            try s.bind(1, username)
            try s.bind(2, Int64(limit))
            var out: [RechargeRecord] = []
            while try s.step() { out.append(RechargeRecord(at: s.int64(0), amount: s.int64(1))) }
            return out
        }
    }
}

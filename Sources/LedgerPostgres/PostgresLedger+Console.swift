import Ledger
import MeterCore

/// The reads behind the web console, with SQLite's answers: one page of clients, and a client's recent
/// calls and recharges (of every node: a client's balance is the store's, not a host's).
extension PostgresLedger {
    /// Clients whose username, first name, last name, "first last" or email contains `search`, by
    /// username (byte order), `limit` from `offset`, and how many match in all; `accounts` left empty, as
    /// SQLite's.
    ///
    /// Matched as SQLite's LIKE matches: `%`, `_` and `\` in `search` match themselves, and only ASCII
    /// letters fold (both sides go through `translate` A–Z → a–z and a case-sensitive LIKE), where ILIKE or
    /// lower() would fold by the database's locale, so that "É" and "é" are different on both stores. A
    /// negative `limit` means no limit and a negative `offset` none, as in SQLite (PostgreSQL refuses both).
    /// Two differences remain, for input the console's form does not make (a hand-made URL could): a NUL
    /// character in `search` is sent as U+FFFD (PostgreSQL's text cannot hold one), where SQLite's LIKE
    /// reads the pattern only up to the NUL; and a search of more than about 50,000 bytes, which SQLite refuses ("LIKE or GLOB
    /// pattern too complex", its SQLITE_MAX_LIKE_PATTERN_LENGTH), is matched here.
    public func clientPage(search: String, limit: Int, offset: Int) throws(LedgerError) -> (total: Int, clients: [ClientRecord]) {
        try reading { () throws(LedgerError) -> (total: Int, clients: [ClientRecord]) in
            var escaped = ""
            for ch in search {
                if ch == "%" || ch == "_" || ch == "\\" { escaped.append("\\") }
                escaped.append(ch)
            }
            var p = PGParams()
            p.text(search)
            p.text("%" + escaped + "%")
            p.int8(limit < 0 ? nil : Int64(limit))
            p.int8(Int64(max(0, offset)))
            let fold = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'"
            let like = "LIKE translate($2, \(fold)) ESCAPE '\\'"
            let filter = """
                $1 = '' OR translate(username, \(fold)) \(like)
                OR translate(first_name || ' ' || last_name, \(fold)) \(like) OR translate(email, \(fold)) \(like)
                """
            // One statement, so the total and the page come from one snapshot; the lateral join keeps a row
            // (with a NULL page) when the offset is past the end, for the total.
            let r = try db.query("""
                SELECT page.*, (SELECT count(*) FROM clients WHERE \(filter))
                FROM (SELECT 1) AS one LEFT JOIN LATERAL (
                    SELECT \(Ledger.clientColumns) FROM clients WHERE \(filter)
                    ORDER BY username COLLATE "C" LIMIT $3 OFFSET $4
                ) AS page ON true
                """, p, "reading a page of clients")
            let columns = 22
            let total = r.rows > 0 ? Int(r.int64(0, columns)) : 0
            let clients = (0..<r.rows).filter { !r.isNull($0, 0) }.map { Self.readClient(r, $0) }
            return (total, clients)
        }
    }

    /// The client's last `limit` charged calls, newest answered first, each at its current cost (the newest
    /// rerate adjustment's, else the charge's); empty for an unknown client.
    ///
    /// SQLite puts a call with neither an answer nor a start time last (its NULLs sort first, so last when
    /// descending); PostgreSQL's sort first when descending. Asking for NULLS LAST would sort all the
    /// client's calls, so the dated ones are read backwards along `usage_client_moment` and the undated ones
    /// by id, `limit` each at most, and only those are merged.
    public func recentCalls(username: String, limit: Int) throws(LedgerError) -> [CallRecord] {
        try reading { () throws(LedgerError) -> [CallRecord] in
            var p = PGParams()
            p.text(username)
            p.int8(limit < 0 ? nil : Int64(limit))
            let r = try db.query("""
                WITH c AS (SELECT id FROM clients WHERE username = $1),
                recent AS (
                    (SELECT u.id, coalesce(u.answered_at, u.started_at) AS moment FROM usage u
                     WHERE u.client_id = (SELECT id FROM c) AND coalesce(u.answered_at, u.started_at) IS NOT NULL
                     ORDER BY coalesce(u.answered_at, u.started_at) DESC, u.id DESC LIMIT $2)
                    UNION ALL
                    (SELECT u.id, NULL FROM usage u
                     WHERE u.client_id = (SELECT id FROM c) AND coalesce(u.answered_at, u.started_at) IS NULL
                     ORDER BY u.id DESC LIMIT $2)
                )
                SELECT coalesce(u.started_at, u.charged_at), u.destination, u.billsec,
                    coalesce((SELECT a.new_cost FROM usage_adjustments a WHERE a.usage_id = u.id ORDER BY a.id DESC LIMIT 1), u.cost)
                FROM recent JOIN usage u ON u.id = recent.id
                ORDER BY recent.moment DESC NULLS LAST, u.id DESC LIMIT $2
                """, p, "reading a client's recent calls")
            return (0..<r.rows).map { CallRecord(at: r.int64($0, 0), destination: r.text($0, 1), billsec: r.int64($0, 2), cost: r.int64($0, 3)) }
        }
    }

    /// The client's last `limit` recharges, newest first.
    public func recentRecharges(username: String, limit: Int) throws(LedgerError) -> [RechargeRecord] {
        try reading { () throws(LedgerError) -> [RechargeRecord] in
            var p = PGParams()
            p.text(username)
            p.int8(limit < 0 ? nil : Int64(limit))
            let r = try db.query("""
                SELECT r.at, r.amount FROM recharges r JOIN clients c ON c.id = r.client_id
                WHERE c.username = $1 ORDER BY r.id DESC LIMIT $2
                """, p, "reading a client's recharges")
            return (0..<r.rows).map { RechargeRecord(at: r.int64($0, 0), amount: r.int64($0, 1)) }
        }
    }
}

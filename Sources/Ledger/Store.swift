import CSQLite
import Foundation

/// Process-wide SQLite settings, applied once before the first connection opens (SQLite takes them only
/// then). Memory statistics go: nothing reads them, and they take a global mutex around every
/// allocation and free (pthread mutex calls were 3 % of a replay's committing thread: Debian builds SQLite
/// without lookaside, so every small allocation is a malloc). Failing leaves SQLite's defaults, which work.
private let sqliteConfigured: Bool = cm_sqlite_config_memstatus(0) == SQLITE_OK

/// The one owner of a SQLite connection: opens it, migrates it, caches prepared statements and nests transactions.
///
/// Not thread-safe by itself: `Ledger` serialises every call that reaches it, so the connection is
/// opened without SQLite's own mutex.
package final class Store {
    let path: String
    private let db: OpaquePointer
    private var statements: [String: Statement] = [:]
    /// How many transactions are open; 0 means autocommit. Level 1 is BEGIN IMMEDIATE, deeper ones SAVEPOINTs.
    private var depth = 0
    private var isClosed = false
    /// Counts rollbacks (whole transactions and savepoints), so a cache of rows this connection wrote can
    /// tell that some of them may no longer exist.
    package private(set) var rollbacks = 0

    /// - Parameter create: make the file (and its missing directories) when there is none; without it a
    ///   missing store is `LedgerError.noStore` and nothing is created.
    package init(path: String, create: Bool) throws(LedgerError) {
        self.path = path
        let onDisk = path != ":memory:" && !path.isEmpty
        if onDisk {
            if create {
                try Self.createOwnerOnly(path)
            } else if access(path, F_OK) != 0 {
                throw .noStore(path: path)
            }
            Self.tighten(path)
        }
        _ = sqliteConfigured
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            // A failed open still allocates a handle that must be released.
            sqlite3_close_v2(handle)
            throw .open(path: path, message: message)
        }
        db = handle
        sqlite3_extended_result_codes(db, 1)
        do {
            try configure()
            try migrate()
        } catch {
            closeAll()
            throw error
        }
    }

    deinit { closeAll() }

    /// SQLite makes a new database file 0644 (it fchmods past the umask) and gives the -wal, -shm and
    /// -journal files it creates later the database file's mode; so the file is made here, owner-only,
    /// before SQLite opens it: the store holds every client's email and password hash.
    private static func createOwnerOnly(_ path: String) throws(LedgerError) {
        try makeDirectories((path as NSString).deletingLastPathComponent, for: path)
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { return }
            throw .open(path: path, message: "cannot create the file: \(String(cString: strerror(errno)))")
        }
        // The umask can only take bits away; a umask such as 0277 would leave the owner unable to write.
        _ = fchmod(fd, 0o600)
        Glibc.close(fd)
    }

    /// Missing directories above the store, created 0700: a world-writable one would let anyone swap the store.
    private static func makeDirectories(_ dir: String, for path: String) throws(LedgerError) {
        guard !dir.isEmpty, access(dir, F_OK) != 0 else { return }
        let parent = (dir as NSString).deletingLastPathComponent
        if parent != dir { try makeDirectories(parent, for: path) }
        if mkdir(dir, 0o700) == 0 {
            _ = chmod(dir, 0o700)
        } else if errno != EEXIST {
            throw .open(path: path, message: "cannot create directory \(dir): \(String(cString: strerror(errno)))")
        }
    }

    /// A store made before its files were created owner-only loses group and other access when its owner
    /// (or root) opens it; no bit is ever added. Someone else's file keeps its mode (chmod fails, harmlessly).
    private static func tighten(_ path: String) {
        for file in [path, path + "-wal", path + "-shm", path + "-journal"] {
            var st = stat()
            guard stat(file, &st) == 0, st.st_mode & 0o170000 == 0o100000, st.st_mode & 0o077 != 0 else { continue }
            _ = chmod(file, st.st_mode & 0o700)
        }
    }

    private func closeAll() {
        // A throwing init and the deinit that follows it both land here.
        guard !isClosed else { return }
        isClosed = true
        for statement in statements.values { statement.finalize() }
        statements.removeAll()
        sqlite3_close_v2(db)
    }

    private func configure() throws(LedgerError) {
        // The CLI and the daemon are separate processes on one file: wait for each other rather than fail.
        sqlite3_busy_timeout(db, 5000)
        let mode = try scalarText("PRAGMA journal_mode=WAL", purpose: "switching to WAL journal mode")
        guard mode.lowercased() == "wal" else {
            throw .open(path: path, message: "could not switch to WAL journal mode (got '\(mode)')")
        }
        try execute("PRAGMA synchronous=FULL", purpose: "setting synchronous=FULL")
        try execute("PRAGMA foreign_keys=ON", purpose: "enabling foreign keys")
        // A multi-row write (charges go in up to 256 to a statement) keeps a statement journal so that a
        // failing row undoes only its statement; on disk that is a temporary file and a write per page.
        try execute("PRAGMA temp_store=MEMORY", purpose: "keeping temporary data in memory")
    }

    private func migrate() throws(LedgerError) {
        let current = Int32(truncatingIfNeeded: try scalarInt("PRAGMA user_version", purpose: "reading the schema version"))
        let known = Schema.latestVersion
        if current > known { throw .schemaTooNew(path: path, found: current, known: known) }
        guard current < known else { return }
        // An index built over a big store sorts every row: in temporary files, in runs of the page cache's
        // size, not all in memory (which took an upgrade of ten million charges half a gigabyte). 64 MB runs
        // keep the merge passes few.
        let cache = try scalarInt("PRAGMA cache_size", purpose: "reading the page cache size")
        try execute("PRAGMA temp_store=FILE; PRAGMA cache_size=-65536", purpose: "sorting in temporary files while migrating")
        // PRAGMA takes no bound parameters; the size is SQLite's own integer.
        defer { _ = try? execute("PRAGMA temp_store=MEMORY; PRAGMA cache_size=\(cache)", purpose: "restoring the memory settings") }
        for migration in Schema.migrations where migration.version > current {
            try transaction("migration \(migration.version) (\(migration.name))") { () throws(LedgerError) in
                try execute(migration.sql, purpose: "migration \(migration.version) (\(migration.name))")
                // PRAGMA takes no bound parameters; the version is our own integer constant.
                try execute("PRAGMA user_version=\(migration.version)", purpose: "recording schema version \(migration.version)")
            }
        }
    }

    // MARK: statements

    /// A cached prepared statement for `sql`; callers bind, step and must `reset()` it (use `defer`).
    package func statement(_ sql: String, _ purpose: String) throws(LedgerError) -> Statement {
        if let cached = statements[sql] { return cached }
        var handle: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard rc == SQLITE_OK, let handle else { throw error(rc, "preparing: \(purpose)") }
        let statement = Statement(handle: handle, db: db, purpose: purpose)
        statements[sql] = statement
        return statement
    }

    /// Runs SQL without results (DDL, PRAGMAs, transaction control); may hold several statements.
    package func execute(_ sql: String, purpose: String) throws(LedgerError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(message)
            throw .sqlite(code: sqlite3_extended_errcode(db), message: text, context: purpose)
        }
    }

    package func scalarInt(_ sql: String, purpose: String) throws(LedgerError) -> Int64 {
        let s = try statement(sql, purpose)
        defer { s.reset() }
        guard try s.step() else { return 0 }
        return s.int64(0)
    }

    private func scalarText(_ sql: String, purpose: String) throws(LedgerError) -> String {
        var handle: OpaquePointer?
        let rc = sqlite3_prepare_v2(db, sql, -1, &handle, nil)
        guard rc == SQLITE_OK, let handle else { throw error(rc, purpose) }
        defer { sqlite3_finalize(handle) }
        let s = Statement(handle: handle, db: db, purpose: purpose)
        guard try s.step() else { return "" }
        return s.text(0)
    }

    /// Rows changed by the last INSERT/UPDATE/DELETE: 0 after an upsert's DO NOTHING.
    package var changes: Int { Int(sqlite3_changes64(db)) }
    /// The most `?` parameters one statement may have on this connection.
    package var variableLimit: Int { Int(sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, -1)) }
    /// Whether a transaction is open (SQLite rolls one back by itself after some errors).
    package var inTransaction: Bool { sqlite3_get_autocommit(db) == 0 }

    /// Whether `error` is a constraint failure (UNIQUE, FOREIGN KEY, NOT NULL, CHECK, STRICT type):
    /// SQLite has then undone the failing statement and nothing else.
    static func isConstraint(_ error: LedgerError) -> Bool {
        if case .sqlite(let code, _, _) = error { return code & 0xFF == SQLITE_CONSTRAINT }
        return false
    }
    package var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }

    package func busyTimeout(milliseconds: Int32) { sqlite3_busy_timeout(db, milliseconds) }

    package func error(_ rc: Int32, _ context: String) -> LedgerError {
        .sqlite(code: rc, message: String(cString: sqlite3_errmsg(db)), context: context)
    }

    // MARK: transactions

    /// The one transaction entry point. The outermost level takes the write lock up front (BEGIN IMMEDIATE)
    /// so a busy peer process is waited for at the start, not failed at the first write; inner levels are
    /// SAVEPOINTs, so a failing inner body undoes only itself.
    package func transaction<T>(_ purpose: String, _ body: () throws(LedgerError) -> T) throws(LedgerError) -> T {
        try open(purpose)
        let value: T
        do {
            value = try body()
        } catch {
            rollback()
            throw error
        }
        try close(purpose)
        return value
    }

    /// One level of transaction (a savepoint inside another) whose inner levels are not savepoints of their
    /// own: everything `body` does commits together when it returns, or none of it when it throws. A bulk
    /// ingest groups its batches so; a savepoint per batch would keep, with temp_store=MEMORY, a copy in
    /// memory of every page the group had already touched, and a group fails whole anyway. Should an inner
    /// level fail and `body` still return, nothing is committed and the inner failure is reported.
    package func flatTransaction<T>(_ purpose: String, _ body: () throws -> T) throws -> T {
        try open(purpose)
        let saved = (flatFrom, flatFailure)
        flatFrom = depth
        flatFailure = nil
        defer { (flatFrom, flatFailure) = saved }
        let value: T
        do {
            value = try body()
            if let inner = flatFailure { throw inner }
        } catch {
            flatFrom = saved.0
            rollback()
            throw error
        }
        flatFrom = saved.0
        try close(purpose)
        return value
    }

    /// Set inside `flatTransaction`: levels opened at this depth or deeper are part of it.
    private var flatFrom: Int?
    /// The first failure of a level inside the flat transaction, which then can no longer commit.
    private var flatFailure: LedgerError?

    /// Runs `body` inside a transaction level that is always rolled back, whatever `body` does.
    package func rolledBack<T>(_ purpose: String, _ body: () throws -> T) throws -> T {
        try open(purpose)
        defer { rollback() }
        return try body()
    }

    private func open(_ purpose: String) throws(LedgerError) {
        if let flat = flatFrom, depth >= flat {
            depth += 1
            return
        }
        if depth == 0 {
            try execute("BEGIN IMMEDIATE", purpose: "starting a transaction for \(purpose)")
        } else {
            try execute("SAVEPOINT sp\(depth)", purpose: "opening a savepoint for \(purpose)")
        }
        depth += 1
    }

    private func close(_ purpose: String) throws(LedgerError) {
        depth -= 1
        if let flat = flatFrom, depth >= flat { return }
        do {
            if depth == 0 {
                try execute("COMMIT", purpose: "committing the transaction for \(purpose)")
            } else {
                try execute("RELEASE sp\(depth)", purpose: "releasing the savepoint of \(purpose)")
            }
        } catch {
            // A failed COMMIT (e.g. disk full) leaves the transaction open: undo it so the next call starts clean.
            depth += 1
            rollback()
            throw error
        }
    }

    private func rollback() {
        depth -= 1
        rollbacks &+= 1
        if let flat = flatFrom, depth >= flat {
            // Undone with the whole flat transaction, which its outermost level now refuses to commit.
            flatFailure = flatFailure ?? .sqlite(code: 0, message: "a part of the transaction failed", context: "a group of batches")
            return
        }
        // After some errors (disk full, I/O) SQLite has already rolled the whole transaction back itself.
        guard sqlite3_get_autocommit(db) == 0 else { return }
        if depth == 0 {
            _ = try? execute("ROLLBACK", purpose: "rolling back")
        } else {
            _ = try? execute("ROLLBACK TO sp\(depth); RELEASE sp\(depth)", purpose: "rolling back a savepoint")
        }
    }
}

/// One prepared statement with typed bind and column accessors (1-based binds, 0-based columns).
package final class Statement {
    private let handle: OpaquePointer
    private let db: OpaquePointer
    let purpose: String

    package init(handle: OpaquePointer, db: OpaquePointer, purpose: String) {
        self.handle = handle
        self.db = db
        self.purpose = purpose
    }

    package func finalize() { sqlite3_finalize(handle) }

    /// SQLITE_TRANSIENT is a macro that does not import: SQLite copies the bytes before the bind returns.
    private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }

    private func check(_ rc: Int32) throws(LedgerError) {
        if rc != SQLITE_OK {
            throw .sqlite(code: rc, message: String(cString: sqlite3_errmsg(db)), context: "binding: \(purpose)")
        }
    }

    package func bind(_ index: Int32, _ value: Int64) throws(LedgerError) {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    package func bind(_ index: Int32, _ value: Int64?) throws(LedgerError) {
        if let value { try bind(index, value) } else { try check(sqlite3_bind_null(handle, index)) }
    }

    package func bind(_ index: Int32, _ value: String) throws(LedgerError) {
        var value = value
        // withUTF8 is a no-op borrow for native strings, so no C string is built on the hot path.
        let rc = value.withUTF8 { buf -> Int32 in
            guard let base = buf.baseAddress, buf.count > 0 else {
                // An empty buffer may have no address, and a nil pointer would bind NULL instead of ''.
                return sqlite3_bind_text(handle, index, "", 0, Statement.transient)
            }
            return base.withMemoryRebound(to: CChar.self, capacity: buf.count) {
                sqlite3_bind_text64(handle, index, $0, UInt64(buf.count), Statement.transient, UInt8(SQLITE_UTF8))
            }
        }
        try check(rc)
    }

    /// Binds text without SQLite copying it (SQLITE_STATIC). The bytes must stay valid and unchanged until
    /// the statement has been reset and `clearBindings()` has run: bind, step, reset and clear inside one
    /// borrow of the buffer.
    package func bind(_ index: Int32, borrowedText text: UnsafeBufferPointer<UInt8>) throws(LedgerError) {
        // An empty buffer may have no address, and a nil pointer would bind NULL instead of ''.
        guard let base = text.baseAddress else { return try bind(index, "") }
        let chars = UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
        try check(sqlite3_bind_text64(handle, index, chars, UInt64(text.count), nil, UInt8(SQLITE_UTF8)))
    }

    /// Drops every binding (to NULL), so no borrowed pointer outlives its buffer.
    package func clearBindings() { sqlite3_clear_bindings(handle) }

    package func bind(_ index: Int32, _ value: String?) throws(LedgerError) {
        if let value { try bind(index, value) } else { try check(sqlite3_bind_null(handle, index)) }
    }

    package func bind(_ index: Int32, blob: [UInt8]) throws(LedgerError) {
        let rc = blob.withUnsafeBytes { buf -> Int32 in
            guard let base = buf.baseAddress, buf.count > 0 else { return sqlite3_bind_zeroblob(handle, index, 0) }
            return sqlite3_bind_blob64(handle, index, base, UInt64(buf.count), Statement.transient)
        }
        try check(rc)
    }

    /// Steps once: true when a row is available, false when done.
    package func step() throws(LedgerError) -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw .sqlite(code: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)), context: purpose)
    }

    /// Steps a statement that returns no rows.
    package func run() throws(LedgerError) {
        _ = try step()
    }

    package func reset() { sqlite3_reset(handle) }

    package func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    package func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    package func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }

    package func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(handle, column) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// Whether the column's text is exactly `s`'s UTF-8, without making a String of it.
    package func text(_ column: Int32, equals s: String) -> Bool {
        let p = sqlite3_column_text(handle, column)
        let n = Int(sqlite3_column_bytes(handle, column))
        var s = s
        return s.withUTF8 { u in
            guard u.count == n else { return false }
            guard n > 0, let p, let q = u.baseAddress else { return true }
            return memcmp(p, q, n) == 0
        }
    }

    package func blob(_ column: Int32) -> [UInt8] {
        guard let p = sqlite3_column_blob(handle, column) else { return [] }
        let n = Int(sqlite3_column_bytes(handle, column))
        return [UInt8](UnsafeRawBufferPointer(start: p, count: n))
    }
}

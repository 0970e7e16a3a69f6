// pg_commit: what committing a batch of charges costs in PostgreSQL, with libpq and with postgres-nio.
import Foundation
import Logging
import PostgresNIO

let usage = """
    usage: pg_commit [--url URL] [--password-file FILE] [--variants LIST] [--batches N] [--warmup N]
                     [--batch-size N] [--rounds N] [--big-batches N] [--seed N]
      --url            postgresql://USER@HOST:PORT/DB (default: $PG_COMMIT_URL); the bench makes and drops
                       its own databases next to DB
      --password-file  one line, the password (default: $PG_COMMIT_PASSWORD_FILE; none: no password)
      --variants       comma-separated, of: libpq-binary libpq-text libpq-copy nio-array nio-copy
                       (default: all)
      --batches        measured batches per variant (default 30), after --warmup (default 3)
      --batch-size     charges per batch (default 5000)
      --rounds         run every variant this many times, in a rotated order each round, and sum up
                       each variant over its rounds' measured batches (default 1)
      --big-batches    batches of the long run of the fastest variant (default 200; 0: none)
    """

struct Options {
    var url = ProcessInfo.processInfo.environment["PG_COMMIT_URL"]
    var passwordFile = ProcessInfo.processInfo.environment["PG_COMMIT_PASSWORD_FILE"]
    var variants = ["libpq-binary", "libpq-text", "libpq-copy", "nio-array", "nio-copy"]
    var batches = 30
    var warmup = 3
    var batchSize = 5000
    var bigBatches = 200
    var rounds = 1
    var seed: UInt64 = 20261201
}

func parseOptions() throws -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    func value(_ name: String) throws -> String {
        guard let v = args.popFirst() else { throw BenchError("\(name) needs a value\n\(usage)") }
        return v
    }
    func int(_ name: String) throws -> Int {
        guard let v = Int(try value(name)), v >= 0 else { throw BenchError("\(name) takes a whole number") }
        return v
    }
    while let a = args.popFirst() {
        switch a {
        case "--url": o.url = try value(a)
        case "--password-file": o.passwordFile = try value(a)
        case "--variants": o.variants = try value(a).split(separator: ",").map(String.init)
        case "--batches": o.batches = try int(a)
        case "--warmup": o.warmup = try int(a)
        case "--batch-size": o.batchSize = try int(a)
        case "--big-batches": o.bigBatches = try int(a)
        case "--rounds": o.rounds = max(1, try int(a))
        case "--seed": o.seed = UInt64(try int(a))
        case "-h", "--help": print(usage); exit(0)
        default: throw BenchError("unknown argument \(a)\n\(usage)")
        }
    }
    let known = Set(Options().variants)
    for v in o.variants where !known.contains(v) { throw BenchError("unknown variant \(v)") }
    guard o.batches >= 1, o.batchSize >= 1 else { throw BenchError("--batches and --batch-size must be at least 1") }
    return o
}

func target(_ o: Options) throws -> Target {
    guard let url = o.url else { throw BenchError("no URL: pass --url or set PG_COMMIT_URL\n\(usage)") }
    guard let c = URLComponents(string: url), c.scheme == "postgresql" || c.scheme == "postgres",
          let host = c.host, !host.isEmpty else {
        throw BenchError("not a postgresql://USER@HOST:PORT/DB URL: \(url)")
    }
    guard c.password == nil else {
        throw BenchError("put the password in --password-file, not in the URL")
    }
    var password: String?
    if let f = o.passwordFile {
        guard let s = try? String(contentsOfFile: f, encoding: .utf8) else {
            throw BenchError("cannot read the password file \(f)")
        }
        // One line; the trailing newline is not part of the password.
        var line = s.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        if line.hasSuffix("\r") { line = line.dropLast() }
        password = String(line)
    }
    let db = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
    return Target(host: host, port: c.port ?? 5432, user: c.user ?? "postgres",
                  database: db.isEmpty ? "postgres" : db, password: password)
}

/// A fresh database with the bench's schema; dropped by `drop`.
func makeDatabase(_ t: Target, name: String) throws {
    let admin = try PQConnection(t)
    try admin.exec("DROP DATABASE IF EXISTS \(name)")
    try admin.exec("CREATE DATABASE \(name)")
    let c = try PQConnection(t, database: name)
    for s in SQL.schema { try c.exec(s) }
}

func dropDatabase(_ t: Target, name: String) {
    do { try PQConnection(t).exec("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") } catch {
        FileHandle.standardError.write(Data("pg_commit: could not drop \(name): \(error)\n".utf8))
    }
}

/// The exactness check, by libpq whatever the variant: the clients were charged the costs of the rows
/// stored, and the rows stored are the charges less the repeats.
func verify(_ t: Target, database: String, workload w: Workload) throws -> String {
    let c = try PQConnection(t, database: database)
    let r = try c.exec("SELECT count(*), coalesce(sum(cost), 0), (SELECT sum(used) FROM clients) FROM usage")
    let rows = Int(r.text(0, 0))!, cost = Int64(r.text(0, 1))!, used = Int64(r.text(0, 2))!
    let want = w.charges - w.repeats
    guard rows == want, used == cost, cost == w.expectedCost else {
        throw BenchError("NOT EXACT: \(rows) rows (want \(want)), sum(used) \(used), sum(cost) \(cost), costs of new charges \(w.expectedCost)")
    }
    return "exact: \(rows) rows = \(w.charges) charges - \(w.repeats) repeats; sum(used) = sum(cost) = \(cost)"
}

/// A checkpoint before every run, so that no run pays for the previous one's dirty pages.
func checkpoint(_ t: Target) throws { try PQConnection(t).exec("CHECKPOINT") }

struct Run {
    var variant: String
    var figures: Figures
    var check: String
    var batches: Int
}

/// CPU seconds of this process (all its threads: NIO's event loop too).
func processCPU() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func fmt(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }

func describe(_ r: Run, batchSize: Int) -> String {
    let f = r.figures
    return "\(r.variant.padding(toLength: 13, withPad: " ", startingAt: 0)) batches \(r.batches)"
        + "  median \(fmt(f.medianRate, 0)) charges/s"
        + "  overall \(fmt(Double(r.batches * batchSize) / f.wall, 0)) charges/s"
        + "  p50 \(fmt(f.p50 * 1000)) ms  p99 \(fmt(f.p99 * 1000)) ms per \(batchSize)-charge batch"
        + "  client CPU \(fmt(f.cpu / Double(r.batches) * 1000)) ms/batch"
        + "\n              \(r.check)"
}

/// Runs one variant on a fresh database: warm-up batches, then measured ones, then the check.
func run(_ variant: String, _ t: Target, _ o: Options, warmup: Int, batches: Int) async throws -> Run {
    let db = "pg_commit_\(variant.replacingOccurrences(of: "-", with: "_"))_\(getpid())"
    try makeDatabase(t, name: db)
    defer { dropDatabase(t, name: db) }
    var w = Workload(seed: o.seed)
    // Every batch is made before the clock starts; the clock covers encoding, the round trips and commit.
    let all = (0..<(warmup + batches)).map { _ in w.next(size: o.batchSize) }
    var f = Figures()
    let clock = ContinuousClock()
    func measured(_ i: Int, _ d: Duration, _ n: Int, _ b: Batch) throws {
        guard n == b.count - b.repeats else {
            throw BenchError("\(variant): batch \(i) inserted \(n) rows, expected \(b.count - b.repeats)")
        }
        if i >= warmup {
            f.add(seconds: Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18, charges: b.count)
        }
    }
    if variant.hasPrefix("libpq-") {
        let committer = try LibPQCommitter(t, database: db, mode: .init(rawValue: String(variant.dropFirst(6)))!)
        for (i, b) in all.enumerated() {
            if i == warmup { f.cpu = -processCPU() }
            var n = 0
            let d = try clock.measure { n = try committer.commit(b) }
            try measured(i, d, n, b)
        }
    } else {
        let mode = NIOMode(rawValue: String(variant.dropFirst(4)))!
        let client = nioClient(t, database: db)
        let logger = Logger(label: "pg_commit")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            if mode == .copy {
                _ = try await client.withConnection { try await $0.query(PostgresQuery(unsafeSQL: SQL.createStaging), logger: logger) }
            }
            for (i, b) in all.enumerated() {
                if i == warmup { f.cpu = -processCPU() }
                let t0 = clock.now
                let n = try await nioCommit(client, b, mode: mode, logger: logger)
                try measured(i, clock.now - t0, n, b)
            }
            group.cancelAll()
        }
    }
    f.cpu += processCPU()
    return Run(variant: variant, figures: f, check: try verify(t, database: db, workload: w), batches: batches)
}

@main
struct PGCommit {
    static func main() async {
        do {
            let o = try parseOptions()
            let t = try target(o)
            print("pg_commit: \(t.user)@\(t.host):\(t.port), \(o.batchSize) charges a batch, 100 clients, ~2% repeats;"
                  + " \(o.warmup) warm-up + \(o.batches) measured batches a variant")
            var runs: [Run] = []
            var failed = Set<String>()
            for round in 0..<o.rounds {
                if o.rounds > 1 { print("round \(round + 1) of \(o.rounds)") }
                let order = Array(o.variants[(round % o.variants.count)...] + o.variants[..<(round % o.variants.count)])
                for v in order where !failed.contains(v) {
                    do {
                        try checkpoint(t)
                        let r = try await run(v, t, o, warmup: o.warmup, batches: o.batches)
                        print(describe(r, batchSize: o.batchSize))
                        if let i = runs.firstIndex(where: { $0.variant == v }) {
                            runs[i].figures.merge(r.figures)
                            runs[i].batches += r.batches
                            runs[i].check = "exact in each of round 1 to \(round + 1) (as above)"
                        } else {
                            runs.append(r)
                        }
                    } catch {
                        print("\(v): FAILED: \(error)")
                        failed.insert(v)
                    }
                }
            }
            if o.rounds > 1 {
                print("summary over \(o.rounds) rounds:")
                for r in runs { print(describe(r, batchSize: o.batchSize)) }
            }
            if o.bigBatches > 0, let best = runs.max(by: { $0.figures.medianRate < $1.figures.medianRate }) {
                print("long run of the fastest, \(best.variant): \(o.bigBatches) batches, \(o.bigBatches * o.batchSize) charges")
                try checkpoint(t)
                let r = try await run(best.variant, t, o, warmup: 0, batches: o.bigBatches)
                print(describe(r, batchSize: o.batchSize))
                print("              wall \(fmt(r.figures.wall, 2)) s for \(o.bigBatches * o.batchSize) charges")
            }
            if !failed.isEmpty { exit(1) }
        } catch {
            FileHandle.standardError.write(Data("pg_commit: \(error)\n".utf8))
            exit(1)
        }
    }
}

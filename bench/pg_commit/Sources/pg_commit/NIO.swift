// postgres-nio: a PostgresClient (pool of one connection), withTransaction, arrays bound as parameters.
import Logging
import NIOCore
import PostgresNIO

/// An int8[] with NULLs: postgres-nio encodes [Int64] but has no array of optionals.
struct NullableInt8Array: PostgresNonThrowingEncodable {
    var values: [Int64?]
    static var psqlType: PostgresDataType { .int8Array }
    static var psqlFormat: PostgresFormat { .binary }
    func encode<E: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<E>) {
        buffer.writeInteger(1, as: Int32.self)                               // dimensions
        buffer.writeInteger(values.contains(nil) ? 1 : 0, as: Int32.self)    // has NULLs
        buffer.writeInteger(PostgresDataType.int8.rawValue)                  // element type
        buffer.writeInteger(Int32(values.count))                             // length
        buffer.writeInteger(1, as: Int32.self)                               // lower bound
        for v in values {
            if let v { buffer.writeInteger(8, as: Int32.self); buffer.writeInteger(v) }
            else { buffer.writeInteger(-1, as: Int32.self) }
        }
    }
}

enum NIOMode: String, Sendable { case array, copy }

func nioClient(_ t: Target, database: String) -> PostgresClient {
    var config = PostgresClient.Configuration(host: t.host, port: t.port, username: t.user, password: t.password,
                                              database: database, tls: .disable)
    config.options.minimumConnections = 1
    config.options.maximumConnections = 1
    // Errors only: the pool warns when a lease comes before run() has got going, which is harmless here.
    var logger = Logger(label: "pg_commit")
    logger.logLevel = .error
    return PostgresClient(configuration: config, backgroundLogger: logger)
}

/// Commits one batch in one transaction; returns the number of rows that went in.
func nioCommit(_ client: PostgresClient, _ b: Batch, mode: NIOMode, logger: Logger) async throws -> Int {
    try await client.withTransaction(logger: logger) { conn in
        let rows: PostgresRowSequence
        switch mode {
        case .array:
            var binds = PostgresBindings(capacity: 17)
            binds.append(b.node); binds.append(b.identity); binds.append(b.startKey); binds.append(b.clientID)
            binds.append(b.account); binds.append(b.source); binds.append(b.position); binds.append(b.line)
            binds.append(b.destination); binds.append(b.prefix); binds.append(b.billsec)
            binds.append(b.chargedSeconds); binds.append(b.cost); binds.append(NullableInt8Array(values: b.startedAt))
            binds.append(b.chargedAt); binds.append(NullableInt8Array(values: b.answeredAt))
            binds.append(NullableInt8Array(values: b.pricing))
            rows = try await conn.query(PostgresQuery(unsafeSQL: SQL.insertUnnest, binds: binds), logger: logger)
        case .copy:
            try await conn.copyFrom(table: "staging", columns: Workload.columns, logger: logger) { writer in
                try await writer.write(ByteBuffer(bytes: copyText(b)))
            }
            rows = try await conn.query(PostgresQuery(unsafeSQL: SQL.insertFromStaging), logger: logger)
        }
        var pairs: [(Int64, Int64)] = []
        pairs.reserveCapacity(b.count)
        for try await (_, client, cost) in rows.decode((Int64, Int64, Int64).self) {
            pairs.append((client, cost))
        }
        let d = deltas(pairs)
        var binds = PostgresBindings(capacity: 2)
        binds.append(d.ids); binds.append(d.deltas)
        try await conn.query(PostgresQuery(unsafeSQL: SQL.charge, binds: binds), logger: logger)
        return pairs.count
    }
}

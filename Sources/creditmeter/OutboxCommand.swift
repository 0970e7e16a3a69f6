import ArgumentParser
import Delivery
import Foundation
import Ledger
import Outbox
import MeterConfig
import MeterCore

struct OutboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Webhook events waiting for delivery, and the dead letters.",
        discussion: """
        Every event is delivered at least once to each [[endpoint]] whose `events` patterns match it, with retries (1 s doubling to 5 min, each minus up to 25 % jitter, honouring Retry-After). An event becomes a dead letter on a permanent answer (a 3xx or a 4xx other than 408, 410 and 429) or when it is older than [delivery] max_age_hours; a 410 Gone pauses its endpoint. `outbox retry` re-queues the dead letters and re-enables paused endpoints; the running daemon picks them up within a second.

        Examples:
          creditmeter outbox list --dead
          creditmeter outbox retry --endpoint crm
        """,
        subcommands: [List.self, Retry.self]
    )

    /// The config's endpoints as the outbox sees them (names and patterns; no secret is read).
    static func endpoints(_ config: Config) -> [OutboxEndpoint] {
        config.endpoints.map { e in OutboxEndpoint(name: e.name, wants: { e.wants($0) }) }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each endpoint's queue and the deliveries still pending, oldest event first.",
            discussion: """
            Examples:
              creditmeter outbox list
              creditmeter outbox list --dead --limit 50 --json
            """)
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Only the dead letters.") var dead = false
        @Option(help: "At most this many deliveries.") var limit: Int?
        @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false

        func run() throws {
            try guarded {
                if let limit, limit < 0 { throw CLIError(.usage, "--limit: must not be negative (got \(limit))") }
                let (config, ledger) = try options.openOutbox()
                let status = try ledger.endpointStatus(endpoints: OutboxCommand.endpoints(config))
                let rows = try ledger.deliveries(status: dead ? .dead : nil, limit: limit)
                if json {
                    Console.json(JSONValue.object([
                        ("endpoints", .array(status.map(OutboxCommand.json))),
                        ("deliveries", .array(rows.map(OutboxCommand.json))),
                    ]))
                    return
                }
                if status.isEmpty { Console.note("no endpoint is configured ([[endpoint]] in \(config.file))") }
                for s in status { Console.out(OutboxCommand.line(s)) }
                if rows.isEmpty {
                    Console.note(dead ? "no dead letters" : "nothing queued")
                    return
                }
                for r in rows {
                    var text = "  \(r.eventID) \(r.type) \(r.username) -> \(r.endpoint): \(r.status.rawValue)"
                    text += ", \(r.attempts) attempt\(r.attempts == 1 ? "" : "s")"
                    if r.status == .pending, r.attempts > 0 { text += ", next \(rfc3339(r.nextAttemptMs / 1_000))" }
                    if !r.lastError.isEmpty { text += ": \(r.lastError)" }
                    Console.out(text)
                }
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-queue the dead letters and re-enable endpoints paused by a 410.",
            discussion: """
            Re-queued events are due at once and get a fresh max_age_hours; attempts count from zero again.

            Examples:
              creditmeter outbox retry
              creditmeter outbox retry --endpoint crm --json
            """)
        @OptionGroup var options: ConfigOptions
        @Option(help: "Only this endpoint.") var endpoint: String?
        @Flag(help: "Print JSON (pretty-printed, keys sorted).") var json = false

        func run() throws {
            try guarded {
                let (config, ledger) = try options.openOutbox()
                if let endpoint {
                    let known = try ledger.endpointStatus(endpoints: OutboxCommand.endpoints(config)).map(\.name)
                    guard known.contains(endpoint) else {
                        throw CLIError(.usage, "--endpoint: no endpoint named '\(endpoint)' (known: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
                    }
                }
                let r = try ledger.requeueDeadLetters(endpoint: endpoint, nowMs: DeliveryService.wallClockMilliseconds())
                if json {
                    Console.json(JSONValue.object([
                        ("requeued", .int(Int64(r.requeued))), ("resumed", .array(r.resumed.map { .string($0) })),
                    ]))
                    return
                }
                Console.out("re-queued \(r.requeued) dead letter\(r.requeued == 1 ? "" : "s")"
                            + (r.resumed.isEmpty ? "" : "; re-enabled \(r.resumed.joined(separator: ", "))"))
            }
        }
    }

    static func line(_ s: EndpointStatus) -> String {
        var text = "\(s.name)\(s.configured ? "" : " (not in the config)"): "
        if let at = s.pausedAt {
            text += "PAUSED since \(rfc3339(at)) (\(s.pauseReason)); run `creditmeter outbox retry` to re-enable; "
        }
        text += "\(s.pending) pending, \(s.dead) dead"
        if s.awaitingFanOut > 0 { text += ", \(s.awaitingFanOut) not yet queued" }
        text += ", \(s.delivered) delivered"
        if let last = s.lastDeliveredAt { text += " (last \(rfc3339(last)))" }
        return text
    }

    static func json(_ s: EndpointStatus) -> JSONValue {
        .object([
            ("name", .string(s.name)), ("configured", .bool(s.configured)), ("paused", .bool(s.pausedAt != nil)),
            ("paused_at", s.pausedAt.map { .string(rfc3339($0)) } ?? .null),
            ("pause_reason", s.pausedAt == nil ? .null : .string(s.pauseReason)),
            ("pending", .int(Int64(s.pending))), ("dead", .int(Int64(s.dead))),
            ("not_yet_queued", .int(Int64(s.awaitingFanOut))), ("delivered", .int(s.delivered)),
            ("last_delivered_at", s.lastDeliveredAt.map { .string(rfc3339($0)) } ?? .null),
        ])
    }

    static func json(_ r: DeliveryRecord) -> JSONValue {
        .object([
            ("id", .string(r.eventID)), ("type", .string(r.type)), ("username", .string(r.username)),
            ("endpoint", .string(r.endpoint)), ("status", .string(r.status.rawValue)), ("attempts", .int(Int64(r.attempts))),
            ("next_attempt_at", r.status == .pending ? .string(rfc3339(r.nextAttemptMs / 1_000)) : .null),
            ("last_error", .string(r.lastError)), ("created_at", .string(rfc3339(r.createdAt))),
        ])
    }
}

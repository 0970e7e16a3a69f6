import MeterCore

/// Event bodies use MeterCore's `JSONValue`, the project's one JSON writer (ordered keys, exact numbers);
/// the alias makes it visible in every file of the module, imported there or not.
typealias JSONValue = MeterCore.JSONValue

extension JSONValue {
    /// The compact serialization, exactly the bytes stored in the outbox and signed on delivery.
    var text: String { serialized() }
}

/// Builds outbox events: ids, timestamps and the SPEC 6 bodies.
package enum EventFactory {
    /// Crockford's base32 alphabet, lowercase: no i, l, o, u to misread.
    private static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    /// "evt_" + 26 random base32 characters (130 bits).
    package static func newEventID() -> String {
        var rng = SystemRandomNumberGenerator()
        var bytes = Array("evt_".utf8)
        for _ in 0..<26 { bytes.append(alphabet[Int(rng.next() % 32)]) }
        return String(decoding: bytes, as: UTF8.self)
    }

    package static func rfc3339(_ t: Int64) -> String { CivilTime.rfc3339(t) }

    package static func body(type: String, now: Int64, data: [(String, MeterCore.JSONValue)]) -> String {
        JSONValue.object([("type", .string(type)), ("timestamp", .string(rfc3339(now))), ("data", .object(data))]).text
    }

    /// The balance figures every credit and client event carries.
    package static func balance(_ meter: Meter, _ t: Thresholds) -> [(String, MeterCore.JSONValue)] {
        meter.jsonFields(t)
    }

    /// The alert type for a latch move: the new level's name when worse, `credit.recovered` when better.
    package static func alertType(from: Level, to: Level) -> String {
        to > from ? "credit.\(to.rawValue)" : "credit.recovered"
    }

    package static func alertData(username: String, meter: Meter, from: Level, _ t: Thresholds) -> [(String, MeterCore.JSONValue)] {
        [("username", .string(username))] + balance(meter, t) + [("previous_level", .string(from.rawValue))]
    }

    /// A client's non-secret fields (never the password hash) plus its balance.
    package static func clientData(_ c: ClientRecord, _ t: Thresholds) -> [(String, MeterCore.JSONValue)] {
        var data: [(String, JSONValue)] = [("username", .string(c.username))]
        for (name, value) in c.fields.named { data.append((name, .string(value ?? ""))) }
        data.append(("status", .string(c.status.rawValue)))
        data.append(("accounts", .array(c.accounts.map { .string($0) })))
        data.append(("plan", .string(c.plan)))
        data += balance(c.meter, t)
        data.append(("created_at", .string(rfc3339(c.createdAt))))
        data.append(("disabled_at", c.disabledAt.map { .string(rfc3339($0)) } ?? .null))
        return data
    }
}

import Foundation
import MeterCore

/// One mod_json_cdr document read into a CDR, plus what only the document tells.
public struct FreeSwitchDocument: Sendable {
    public var cdr: CDR
    /// The leg was originated by another channel (the B-leg of a bridge). mod_json_cdr itself
    /// tells legs apart this way: the channel's caller profile has an originator, which the
    /// document shows as `callflow[0].caller_profile.originator`; FreeSWITCH also sets
    /// `originating_leg_uuid` on the peer channel only.
    public var isBLeg: Bool
}

extension CDRParser {
    /// Reads one mod_json_cdr document, in any of the encodings FreeSWITCH posts or writes to its
    /// `err-log-dir`: plain JSON (`encode=false`), `cdr=` + URL-encoded JSON (`encode=true`),
    /// `cdr=` + base64 (`encode=base64`), or the encoded text alone (an `err-log-dir` file).
    ///
    /// Facts taken: every `variables` member that names a CDR field (uuid, accountcode, billsec,
    /// billmsec, hangup_cause, …), percent-decoded as `encode-values=true` (the default) writes them;
    /// the dialled number from the newest caller profile (`callflow` is an array, newest first,
    /// since 1.6, and one object in 1.4); start, answer and end from the `*_epoch` variables, else
    /// the `*_stamp` ones read in the source's time zone.
    public func parseFreeSwitch(_ body: [UInt8]) -> Result<FreeSwitchDocument, ParseFailure> {
        guard let text = FreeSwitchJSON.documentText(body) else {
            return .failure(.badJSON("the body is neither JSON nor cdr= form data holding URL-encoded or base64 JSON"))
        }
        do throws(ParseFailure) {
            return .success(try text.withUnsafeBufferPointer { (p) throws(ParseFailure) -> FreeSwitchDocument in
                try FreeSwitchJSON.read(p, zone: zone)
            })
        } catch {
            return .failure(error)
        }
    }
}

enum FreeSwitchJSON {
    /// The JSON text inside a body or file, or nil when it is none of the encodings.
    static func documentText(_ body: [UInt8]) -> [UInt8]? {
        var b = body[...]
        while let f = b.first, f == 0x20 || f == 0x09 || f == 0x0A || f == 0x0D { b = b.dropFirst() }
        while let l = b.last, l == 0x20 || l == 0x09 || l == 0x0A || l == 0x0D { b = b.dropLast() }
        if b.first == UInt8(ascii: "{") { return Array(b) }
        if b.starts(with: Array("cdr=".utf8)) {
            b = b.dropFirst(4)
            if let amp = b.firstIndex(of: UInt8(ascii: "&")) { b = b[..<amp] }
        }
        let decoded = percentDecoded(b)
        if decoded.first == UInt8(ascii: "{") { return decoded }
        // Base64 text carries no '%', so the decoding above left it as it was.
        guard let data = Data(base64Encoded: Data(decoded), options: .ignoreUnknownCharacters) else { return nil }
        let json = [UInt8](data)
        return json.first == UInt8(ascii: "{") ? json : nil
    }

    static func percentDecoded<C: Collection>(_ s: C) -> [UInt8] where C.Element == UInt8 { PercentDecoding.bytes(s) }

    /// A scanned object: its members' keys and value bytes (strings unescaped, nested values raw).
    struct Object {
        let storage: [UInt8]
        let members: [JSONLine.Member]

        init(_ p: UnsafeBufferPointer<UInt8>) throws(ParseFailure) {
            (storage, members) = try JSONLine.scan(p)
        }

        func member(_ key: String) -> JSONLine.Member? {
            let k = Array(key.utf8)
            return members.first { $0.key == k }
        }

        func value(_ m: JSONLine.Member) -> ArraySlice<UInt8> { storage[m.start..<m.end] }

        /// A nested member's object, scanned.
        func object(_ key: String) throws(ParseFailure) -> Object? {
            guard let m = member(key), m.nested else { return nil }
            return try Self.withBuffer(value(m)) { (p) throws(ParseFailure) in try Object(p) }
        }

        static func withBuffer<R>(_ s: ArraySlice<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) throws(ParseFailure) -> R) throws(ParseFailure) -> R {
            do {
                return try s.withUnsafeBufferPointer { p in try body(p) }
            } catch let e as ParseFailure {
                throw e
            } catch {
                throw .badJSON("\(error)")
            }
        }
    }

    /// Variables read under their own names: the time fields are chosen below, epoch first.
    static let timeVariables: [(CDRField, epoch: String, stamp: String)] = [
        (.start, "start_epoch", "start_stamp"), (.answer, "answer_epoch", "answer_stamp"), (.end, "end_epoch", "end_stamp"),
    ]

    static func read(_ p: UnsafeBufferPointer<UInt8>, zone: ZoneTable) throws(ParseFailure) -> FreeSwitchDocument {
        let top = try Object(p)
        guard let variables = try top.object("variables") else {
            throw .missingField("the document has no \"variables\" object")
        }
        var values: [CDRField: [UInt8]] = [:]
        let skipped = Set(timeVariables.flatMap { [$0.epoch, $0.stamp] } + ["destination_number"])
        for m in variables.members where !m.nested {
            let name = String(decoding: m.key, as: UTF8.self)
            guard !skipped.contains(name), let f = CDRField.named(name) else { continue }
            values[f] = percentDecoded(variables.value(m))
        }
        for (field, epoch, stamp) in timeVariables {
            if let m = variables.member(epoch), !m.nested {
                let v = percentDecoded(variables.value(m))
                // An epoch of 0 is FreeSWITCH's "never happened" (an unanswered call's answer_epoch).
                if !v.isEmpty { values[field] = v; continue }
            }
            if let m = variables.member(stamp), !m.nested { values[field] = percentDecoded(variables.value(m)) }
        }
        guard values[.billsec] != nil || values[.billmsec] != nil else {
            throw .missingField("the document's variables have no \"billsec\" or \"billmsec\"")
        }

        var isBLeg = variables.member("originating_leg_uuid").map { !variables.value($0).isEmpty } ?? false
        var dialled: [UInt8]?
        if let flow = top.member("callflow"), flow.nested {
            let raw = top.value(flow)
            let newest: Object? = try Object.withBuffer(raw) { (q) throws(ParseFailure) -> Object? in
                guard let r = try JSONLine.firstElement(q) else { return nil }
                return try Object(UnsafeBufferPointer(rebasing: q[r]))
            }
            if let profile = try newest?.object("caller_profile") {
                if let d = profile.member("destination_number"), !d.nested { dialled = Array(profile.value(d)) }
                if profile.member("originator") != nil { isBLeg = true }
            }
        }
        if dialled == nil, let d = variables.member("destination_number"), !d.nested {
            dialled = percentDecoded(variables.value(d))
        }
        guard let dialled else {
            throw .missingField("the document has no callflow caller_profile.destination_number")
        }
        values[.dst] = dialled

        var storage: [UInt8] = []
        var spans = [Int32](repeating: -1, count: CDRField.count * 2)
        for f in CDRField.allCases {
            guard let v = values[f] else { continue }
            spans[f.index * 2] = Int32(storage.count)
            storage.append(contentsOf: v)
            spans[f.index * 2 + 1] = Int32(storage.count)
            storage.append(Splitter.unitSeparator)
        }
        let cdr = try CDRBuilder.build(storage: storage, spans: spans, format: .freeswitchJSON, zone: zone)
        return FreeSwitchDocument(cdr: cdr, isBLeg: isBLeg)
    }
}

/// The CDR file layouts the parser understands (SPEC section 7).
public enum CDRFormat: String, Sendable, CaseIterable, Codable {
    case asteriskCSV = "asterisk-csv"
    case freeswitchCSV = "freeswitch-csv"
    case csv
    case jsonl
    /// mod_json_cdr's documents, one per HTTP request or `err-log-dir` file (not a line format).
    case freeswitchJSON = "freeswitch-json"
}

/// A CDR field by its canonical (Asterisk) name; FreeSWITCH variable names are accepted as aliases.
public enum CDRField: String, Sendable, CaseIterable, Codable {
    case accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata
    case start, answer, end, duration, billsec, billmsec, disposition, amaflags
    case uniqueid, userfield, peeraccount, linkedid, sequence
    case callerIDName = "caller_id_name"
    case hangupCause = "hangup_cause"
    case uuid
    case blegUUID = "bleg_uuid"
    case readCodec = "read_codec"
    case writeCodec = "write_codec"

    /// Dense position in `allCases`, used for the per-CDR span table.
    @usableFromInline var index: Int {
        switch self {
        case .accountcode: return 0
        case .src: return 1
        case .dst: return 2
        case .dcontext: return 3
        case .clid: return 4
        case .channel: return 5
        case .dstchannel: return 6
        case .lastapp: return 7
        case .lastdata: return 8
        case .start: return 9
        case .answer: return 10
        case .end: return 11
        case .duration: return 12
        case .billsec: return 13
        case .billmsec: return 14
        case .disposition: return 15
        case .amaflags: return 16
        case .uniqueid: return 17
        case .userfield: return 18
        case .peeraccount: return 19
        case .linkedid: return 20
        case .sequence: return 21
        case .callerIDName: return 22
        case .hangupCause: return 23
        case .uuid: return 24
        case .blegUUID: return 25
        case .readCodec: return 26
        case .writeCodec: return 27
        }
    }

    static let count = 28

    /// FreeSWITCH channel-variable names (and a few other spellings seen in the wild) for canonical fields.
    public static let aliases: [String: CDRField] = [
        "destination_number": .dst,
        "caller_id_number": .src,
        "context": .dcontext,
        "start_stamp": .start,
        "answer_stamp": .answer,
        "end_stamp": .end,
        // Epoch variants parse because an all-digit time is read as unix seconds.
        "start_epoch": .start,
        "answer_epoch": .answer,
        "end_epoch": .end,
        "account_code": .accountcode,
        "channel_name": .channel,
        "last_app": .lastapp,
        "last_arg": .lastdata,
        "bleg": .blegUUID,
        "callerid_name": .callerIDName,
        // cdr_csv's own option names for the optional columns.
        "loguniqueid": .uniqueid,
        "loguserfield": .userfield,
    ]

    /// The field called `name` (canonical or alias, case-insensitive); nil when unknown.
    public static func named(_ name: String) -> CDRField? {
        // Names are nearly always written in lower case already (FreeSWITCH's variables are): look
        // them up as they are first, since a document can hold hundreds of them.
        byName[name] ?? byName[name.lowercased()]
    }

    // Swift-style spellings (`callerIDName`) are accepted too, so config files may use either.
    private static let byName: [String: CDRField] = {
        var t: [String: CDRField] = [:]
        for f in allCases { t[String(describing: f).lowercased()] = f }
        for (k, f) in aliases { t[k] = f }
        for f in allCases { t[f.rawValue] = f }
        return t
    }()
}

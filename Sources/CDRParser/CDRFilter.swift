import Foundation

/// `[source.filter]`: which lines of a source are metered. A CDR passes when it passes every
/// key that is set; a field the format does not have reads as "".
public struct CDRFilter: Sendable {
    /// dcontext must be one of these, exactly.
    public let dcontext: [String]?
    /// lastapp must be one of these, ignoring ASCII case (Asterisk application names are).
    public let lastapp: [String]?
    public let channel: String?
    public let dstchannel: String?

    private let contextSet: Set<[UInt8]>?
    private let appSet: Set<[UInt8]>?
    private let channelRegex: Pattern?
    private let dstchannelRegex: Pattern?

    /// NSRegularExpression is immutable once built and documented as safe to share across threads.
    private struct Pattern: @unchecked Sendable {
        let regex: NSRegularExpression
        func matches(_ s: String) -> Bool {
            regex.firstMatch(in: s, range: NSRange(s.startIndex..<s.endIndex, in: s)) != nil
        }
    }

    /// Regular expressions are unanchored (use `^...$` to match a whole channel name).
    public init(dcontext: [String]? = nil, lastapp: [String]? = nil,
                channel: String? = nil, dstchannel: String? = nil) throws(ParserConfigError) {
        if let l = dcontext, l.isEmpty { throw .emptyFilterList(key: "dcontext") }
        if let l = lastapp, l.isEmpty { throw .emptyFilterList(key: "lastapp") }
        self.dcontext = dcontext
        self.lastapp = lastapp
        self.channel = channel
        self.dstchannel = dstchannel
        contextSet = dcontext.map { Set($0.map { Array($0.utf8) }) }
        appSet = lastapp.map { Set($0.map { Self.lowered(Array($0.utf8)[...]) }) }
        channelRegex = try channel.map { p throws(ParserConfigError) in try Self.compile(p, key: "channel") }
        dstchannelRegex = try dstchannel.map { p throws(ParserConfigError) in try Self.compile(p, key: "dstchannel") }
    }

    /// Whether the filter lets everything through.
    public var acceptsAll: Bool {
        contextSet == nil && appSet == nil && channelRegex == nil && dstchannelRegex == nil
    }

    public func accepts(_ cdr: CDR) -> Bool {
        cdr.withView { accepts($0) }
    }

    public func accepts(_ cdr: CDRView) -> Bool {
        if let set = contextSet {
            if !set.contains(cdr.bytes(.dcontext).map { Array($0) } ?? []) { return false }
        }
        if let set = appSet {
            if !set.contains(cdr.bytes(.lastapp).map { Self.lowered($0) } ?? []) { return false }
        }
        if let r = channelRegex, !r.matches(cdr.value(.channel) ?? "") { return false }
        if let r = dstchannelRegex, !r.matches(cdr.value(.dstchannel) ?? "") { return false }
        return true
    }

    private static func lowered<C: Collection>(_ b: C) -> [UInt8] where C.Element == UInt8 {
        b.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
    }

    private static func compile(_ pattern: String, key: String) throws(ParserConfigError) -> Pattern {
        do {
            return Pattern(regex: try NSRegularExpression(pattern: pattern))
        } catch {
            // Foundation's NSError text here is only "The value is invalid."; the pattern says more.
            throw .badRegex(key: key, pattern: pattern, message: "")
        }
    }
}

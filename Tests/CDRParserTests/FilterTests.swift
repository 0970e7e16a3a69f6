import CDRParser
import Testing

@Suite struct FilterTests {
    /// The mineevburyat file: outer SIP legs in stadion-pstn, Local ;2 halves in TimeDelay.
    static func sample() throws -> [CDR] {
        try Samples.parse("asterisk_mineevburyat_dj-asterisk-cdr__Master.csv", ParserOptions(format: .asteriskCSV)).ok
    }

    @Test func dcontextList() throws {
        let cdrs = try Self.sample()
        let filter = try CDRFilter(dcontext: ["stadion-pstn"])
        let kept = cdrs.filter(filter.accepts)
        #expect(kept.count == 73)
        #expect(kept.allSatisfy { $0.value(.dcontext) == "stadion-pstn" })
        #expect(cdrs.filter { !filter.accepts($0) }.allSatisfy { $0.value(.dcontext) == "TimeDelay" })
    }

    @Test func lastappListIgnoresCase() throws {
        let cdrs = try Self.sample()
        let dial = try CDRFilter(lastapp: ["dial"])
        #expect(cdrs.filter(dial.accepts).count == 77)
        #expect(cdrs.filter { !dial.accepts($0) }.allSatisfy { $0.value(.lastapp) == "Hangup" })
    }

    @Test func channelRegexDropsLocalHalves() throws {
        let cdrs = try Self.sample()
        let noLocal = try CDRFilter(channel: "^SIP/")
        let kept = cdrs.filter(noLocal.accepts)
        #expect(kept.count == 73)
        #expect(kept.allSatisfy { $0.value(.channel)?.hasPrefix("SIP/") == true })
        // Unanchored search: a pattern matches anywhere in the channel name.
        #expect(cdrs.filter(try CDRFilter(channel: ";2$").accepts).count == 11)
    }

    @Test func dstchannelRegexAndCombination() throws {
        let cdrs = try Self.sample()
        let toPhone = try CDRFilter(dstchannel: "^SIP/301-")
        #expect(cdrs.filter(toPhone.accepts).allSatisfy { $0.value(.dstchannel)?.hasPrefix("SIP/301-") == true })
        #expect(cdrs.filter(toPhone.accepts).count == 31)
        // Every key that is set must pass.
        let both = try CDRFilter(dcontext: ["TimeDelay"], dstchannel: "^SIP/301-")
        #expect(cdrs.filter(both.accepts).count == 5)
        #expect(try CDRFilter().acceptsAll && CDRFilter().accepts(cdrs[0]))
    }

    @Test func absentFieldReadsAsEmpty() throws {
        // FreeSWITCH's example template has no channel: a channel pattern sees "".
        let fs = try Samples.parse("freeswitch_DuyNguyen2599_freeswitch__Master.csv", ParserOptions(format: .freeswitchCSV)).ok
        #expect(fs.filter(try CDRFilter(channel: "^$").accepts).count == fs.count)
        #expect(fs.filter(try CDRFilter(channel: "SIP").accepts).isEmpty)
        #expect(fs.filter(try CDRFilter(dcontext: ["default"]).accepts).count == fs.count)   // context alias
    }

    @Test func badRegexAndEmptyListsAreConfigErrors() {
        do {
            _ = try CDRFilter(channel: "^(SIP")
            Issue.record("an unbalanced regex compiled")
        } catch {
            guard case .badRegex(let key, let pattern, _) = error else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(key == "channel" && pattern == "^(SIP")
            #expect(error.description.contains("filter channel") && error.description.contains("^(SIP"))
        }
        #expect(throws: ParserConfigError.self) { try CDRFilter(dstchannel: "[") }
        #expect(throws: ParserConfigError.emptyFilterList(key: "dcontext")) { try CDRFilter(dcontext: []) }
        #expect(throws: ParserConfigError.emptyFilterList(key: "lastapp")) { try CDRFilter(lastapp: []) }
    }
}

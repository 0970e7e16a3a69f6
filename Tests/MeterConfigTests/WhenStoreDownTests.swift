import Testing
@testable import MeterConfig

@Suite("[authorize] when_store_down")
struct WhenStoreDownTests {
    @Test("deny by default, cached when asked, anything else names the key")
    func values() throws {
        #expect(try ConfigTests.parse("").authorize.whenStoreDown == .deny)
        #expect(try ConfigTests.parse("[authorize]\nwhen_store_down = \"cached\"\n").authorize.whenStoreDown == .cached)
        #expect(try ConfigTests.parse("[authorize]\nwhen_store_down = \"deny\"\n").authorize.whenStoreDown == .deny)
        let bad = ConfigTests.issues("[authorize]\nwhen_store_down = \"allow\"\n")
        #expect(bad.count == 1 && bad.first?.key == "authorize.when_store_down", "\(bad)")
        #expect(bad.first.map { "\($0)".contains("\"deny\" or \"cached\"") } == true, "\(bad)")
    }
}

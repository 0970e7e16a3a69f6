import Foundation
@testable import MeterConfig
import Testing

/// `[[plan]] timezone` and `split`.
@Suite struct PlanTimingTests {
    @Test func timezoneAndSplit() throws {
        let c = try ConfigTests.parse("""
            [[plan]]
            name = "default"
            rates = "rates.csv"

            [[plan]]
            name = "uk"
            rates = "uk.csv"
            timezone = "Europe/London"
            split = true
            """)
        #expect(c.plans[0].timezone == "local" && c.plans[0].timeZone == TimeZone.current && !c.plans[0].split)
        #expect(c.plans[1].timezone == "Europe/London" && c.plans[1].timeZone.identifier == "Europe/London" && c.plans[1].split)
    }

    @Test func badValuesNameTheKeyAndLine() {
        let issues = ConfigTests.issues("""
            [[plan]]
            name = "default"
            rates = "rates.csv"
            timezone = "Mars/Olympus"
            split = "yes"
            """)
        #expect(issues.contains { $0.key == "plan[0].timezone" && $0.line == 4 && $0.message.contains("unknown time zone") })
        #expect(issues.contains { $0.key == "plan[0].split" && $0.line == 5 })
    }
}

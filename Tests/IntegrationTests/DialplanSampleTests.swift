import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// The FreeSWITCH sample dialplan: a `set` runs when the extension executes, after the whole dialplan
/// was hunted, unless it is `inline="true"`; a later condition of the same extension that tests the
/// variable would then never see the value. That is the bug that made `too_many_calls` unreachable.
@Suite struct DialplanSampleTests {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("samples/dialplan/creditmeter.xml")

    struct Finding: CustomStringConvertible {
        var extensionName: String
        var variable: String
        var description: String { "\(extensionName): set \(variable) is read by a later condition but is not inline=\"true\"" }
    }

    /// Every `set` whose variable a later condition of the same extension tests, and that is not inline.
    static func lateSets(in document: XMLDocument) throws -> (checked: Int, findings: [Finding]) {
        var checked = 0
        var findings: [Finding] = []
        for ext in try document.nodes(forXPath: "//extension").compactMap({ $0 as? XMLElement }) {
            let name = ext.attribute(forName: "name")?.stringValue ?? "?"
            let conditions = ext.elements(forName: "condition")
            for (i, condition) in conditions.enumerated() {
                for action in condition.elements(forName: "action")
                where action.attribute(forName: "application")?.stringValue == "set" {
                    let data = action.attribute(forName: "data")?.stringValue ?? ""
                    guard let eq = data.firstIndex(of: "=") else { continue }
                    let variable = String(data[..<eq])
                    let readLater = conditions.dropFirst(i + 1).contains {
                        ($0.attribute(forName: "field")?.stringValue ?? "").contains("${\(variable)}")
                    }
                    guard readLater else { continue }
                    checked += 1
                    if action.attribute(forName: "inline")?.stringValue != "true" {
                        findings.append(Finding(extensionName: name, variable: variable))
                    }
                }
            }
        }
        return (checked, findings)
    }

    @Test func everySetReadByALaterConditionIsInline() throws {
        let document = try XMLDocument(contentsOf: Self.file, options: [])
        let result = try Self.lateSets(in: document)
        // creditmeter_max (allow) and creditmeter_reason (deny) are both tested later in their extension.
        #expect(result.checked >= 2, "the sample's set-then-test pairs were not found in \(Self.file.path)")
        #expect(result.findings.isEmpty, "\(result.findings)")
    }

    @Test func theCheckSeesALateSet() throws {
        // The checker itself: a non-inline set tested by the next condition is reported.
        let xml = """
            <include><context name="c"><extension name="e">
              <condition field="a" expression="x"><action application="set" data="v=$1"/></condition>
              <condition field="${v}" expression="y"><action application="hangup"/></condition>
            </extension></context></include>
            """
        let result = try Self.lateSets(in: XMLDocument(xmlString: xml, options: []))
        #expect(result.checked == 1)
        #expect(result.findings.map(\.variable) == ["v"])
    }
}

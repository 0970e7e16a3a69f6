import Testing
@testable import MeterConfig

/// The line scanner must not be fooled by values that look like keys or headers.
@Suite struct KeyLinesTests {
    @Test func valuesThatLookLikeKeys() {
        let text = #"""
            title = """
            fake = 1
            [not.a.table]
            """
            lit = '''
            also = 2
            '''
            list = [
              "a = 1",   # comment = 3
              [1, 2],
              { inner = "x" },
            ]
            "quoted key" = 'v'
            esc = "a \" [b] = c"
            [[t]]
            x = 1
            [[t]]
            x = 2
            [t.sub]
            y = 3
            [[t.items]]
            z = 4
            [other]
            a.b.c = 5
            """#
        let k = KeyLines(scanning: text)
        #expect(k.line("title") == 1)
        #expect(k.line("fake") == nil)
        #expect(k.line("not.a.table") == nil)
        #expect(k.line("lit") == 5)
        #expect(k.line("also") == nil)
        #expect(k.line("list") == 8)
        #expect(k.line("list[2].inner") == 11)
        #expect(k.line("quoted key") == 13)
        #expect(k.line("esc") == 14)
        #expect(k.line("t[0].x") == 16)
        #expect(k.line("t[1].x") == 18)
        #expect(k.line("t[1].sub.y") == 20)
        #expect(k.line("t[1].items[0].z") == 22)
        #expect(k.line("other.a.b.c") == 24)
        #expect(k.line("other.a") == 24)
        // Unknown paths fall back to the nearest known ancestor.
        #expect(k.line("t[1].sub.nothing") == 19)
        #expect(k.line("list[1][0]") == 10)
        #expect(k.line("nowhere") == nil)
    }
}

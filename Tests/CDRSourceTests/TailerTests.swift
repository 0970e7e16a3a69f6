import Foundation
import Testing
import CDRSource
import MeterCore
#if canImport(Glibc)
import Glibc
#endif

@Suite("Tailer")
struct TailerTests {
    @Test("appends are delivered as they arrive, with offsets, line numbers and a checkpoint at the end")
    func appendWhileReading() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, lines(["one", "two", "three"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let (first, b1) = try readBatch(t)
        #expect(first == [Delivered(text: "one", offset: 0, number: 1),
                          Delivered(text: "two", offset: 4, number: 2),
                          Delivered(text: "three", offset: 8, number: 3)])
        #expect(b1.checkpoint?.offset == 14)
        #expect(b1.checkpoint?.line == 3)
        #expect(b1.checkpoint?.inode == inode(path))
        #expect(b1.path == path)
        #expect(b1.more == false)
        #expect(try readTexts(t).isEmpty)
        try append(path, lines(["four", "five"]))
        let (second, b2) = try readBatch(t)
        #expect(second == [Delivered(text: "four", offset: 14, number: 4),
                           Delivered(text: "five", offset: 19, number: 5)])
        #expect(b2.checkpoint?.offset == fileSize(path))
        #expect(b2.checkpoint?.line == 5)
        #expect(t.status.lagBytes == 0)
        #expect(t.status.offset == fileSize(path))
    }

    @Test("maxLines splits a batch and says more is available")
    func maxLinesAndMore() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, lines((1...10).map { "l\($0)" }))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let (a, ba) = try readBatch(t, max: 4)
        #expect(a.map(\.text) == ["l1", "l2", "l3", "l4"])
        #expect(ba.more)
        #expect(ba.checkpoint?.line == 4)
        #expect(ba.checkpoint?.offset == a.last.map { $0.offset + 3 })
        #expect(t.status.lagBytes == fileSize(path) - (ba.checkpoint?.offset ?? 0))
        let (b, bb) = try readBatch(t, max: 6)
        #expect(b.map(\.text) == ["l5", "l6", "l7", "l8", "l9", "l10"])
        #expect(bb.more == false)
    }

    @Test("a partial last line waits for its newline; the checkpoint stays at the last newline")
    func partialLine() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, "a\nbb")
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let (got, b1) = try readBatch(t)
        #expect(got.map(\.text) == ["a"])
        #expect(b1.checkpoint?.offset == 2)
        #expect(try readTexts(t).isEmpty)
        try append(path, "b")
        let (none, b2) = try readBatch(t)
        #expect(none.isEmpty)
        #expect(b2.checkpoint?.offset == 2)
        #expect(b2.checkpoint?.tailHash == b1.checkpoint?.tailHash)
        #expect(b2.checkpoint?.line == 1)
        try append(path, "\r\nc\n")
        let (rest, b3) = try readBatch(t)
        #expect(rest == [Delivered(text: "bbb\r", offset: 2, number: 2), Delivered(text: "c", offset: 7, number: 3)])
        #expect(b3.checkpoint?.offset == 9)
    }

    @Test("a checkpoint taken mid-line resumes at the last newline in a new tailer")
    func resumeAtCheckpoint() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, "a\nb\npart")
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let (_, b) = try readBatch(t)
        let cp = try #require(b.checkpoint)
        try append(path, "ial\nz\n")
        let t2 = Tailer(path: path, checkpoint: cp, startAt: .end)
        let (got, b2) = try readBatch(t2)
        #expect(got == [Delivered(text: "partial", offset: 4, number: 3), Delivered(text: "z", offset: 12, number: 4)])
        #expect(b2.events.contains(.opened(path: path, inode: cp.inode, offset: 4)))
    }

    @Test("a line longer than the buffer is delivered whole, and the buffer shrinks back")
    func longLine() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let long = String(repeating: "x", count: 100_000)
        try append(path, lines(["short", long, "after"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning, chunkSize: 4096)
        #expect(try readTexts(t) == ["short", long, "after"])
        try append(path, lines((1...2000).map { "n\($0)" }))
        #expect(try readTexts(t) == (1...2000).map { "n\($0)" })
    }

    @Test("a throwing body consumes nothing: the same lines come again")
    func throwingBody() throws {
        struct Boom: Error {}
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, lines(["a", "b", "c"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        var seen: [String] = []
        #expect(throws: Boom.self) {
            _ = try t.read(maxLines: 10) { line, _, _ in
                let s = String(decoding: line, as: UTF8.self)
                seen.append(s)
                if s == "b" { throw Boom() }
            }
        }
        #expect(seen == ["a", "b"])
        let (got, b) = try readBatch(t)
        #expect(got.map(\.text) == ["a", "b", "c"])
        #expect(got.first?.number == 1)
        #expect(b.checkpoint?.offset == 6)
    }

    @Test("rename-and-create: the old file is read to its end (even lines written after the new file appeared), then the new one")
    func renameAndCreate() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let old = dir.file("Master.csv.1")
        try append(path, lines(["o1", "o2"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        #expect(try readTexts(t) == ["o1", "o2"])
        let oldInode = try #require(inode(path))
        #expect(rename(path, old) == 0)
        try append(path, "")  // logrotate's `create`: an empty new file
        let newInode = try #require(inode(path))
        let (none, b0) = try readBatch(t)
        #expect(none.isEmpty)
        #expect(b0.events.contains(.rotated(from: old, to: path, oldInode: oldInode, newInode: newInode)))
        // FreeSWITCH keeps writing into the renamed file until it reopens.
        try append(old, lines(["o3"]))
        let (mid, bm) = try readBatch(t)
        #expect(mid.map(\.text) == ["o3"])
        #expect(bm.path == old)
        #expect(bm.checkpoint?.inode == oldInode)
        #expect(t.status.queued == 1)
        try append(old, lines(["o4", "o5"]))
        try append(path, lines(["n1", "n2"]))
        let (a, ba) = try readBatch(t)
        #expect(a.map(\.text) == ["o4", "o5"])
        #expect(a.map(\.number) == [4, 5])
        #expect(ba.more)
        #expect(ba.checkpoint?.inode == oldInode)
        #expect(ba.checkpoint?.offset == fileSize(old))
        let (b, bb) = try readBatch(t)
        #expect(b == [Delivered(text: "n1", offset: 0, number: 1), Delivered(text: "n2", offset: 3, number: 2)])
        #expect(bb.path == path)
        #expect(bb.checkpoint?.inode == newInode)
        #expect(bb.events.contains(.switched(from: old, to: path, inode: newInode)))
        #expect(try readTexts(t).isEmpty)
    }

    @Test("two rotations between reads: every file is read, in order")
    func doubleRotation() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, lines(["a1"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        #expect(try readTexts(t) == ["a1"])
        #expect(rename(path, dir.file("Master.csv.1")) == 0)
        try append(path, lines(["b1"]))
        #expect(t.status.queued == 0)
        _ = try t.read(maxLines: 0) { _, _, _ in }  // sees B at the path, reads nothing
        #expect(t.status.queued == 1)
        #expect(rename(path, dir.file("Master.csv.2")) == 0)
        try append(path, lines(["c1"]))
        #expect(try drain(t).texts == ["b1", "c1"])
    }

    @Test("copytruncate: the same inode shorter than the position is read again from 0")
    func copyTruncate() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, lines(["a", "b", "c"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        #expect(try readTexts(t) == ["a", "b", "c"])
        try FileManager.default.copyItem(atPath: path, toPath: dir.file("Master.csv.1"))
        #expect(truncate(path, 0) == 0)
        try append(path, lines(["d"]))
        let (got, b) = try readBatch(t)
        #expect(got == [Delivered(text: "d", offset: 0, number: 1)])
        #expect(b.events.contains { if case .truncated = $0 { true } else { false } })
        #expect(b.checkpoint?.offset == 2)
        // Truncated and regrown past the old position before the tailer looked: the changed first
        // bytes give it away.
        #expect(truncate(path, 0) == 0)
        try append(path, lines(["eeeeeeee", "ffffffff"]))
        let (again, b2) = try readBatch(t)
        #expect(again.map(\.text) == ["eeeeeeee", "ffffffff"])
        #expect(b2.events.contains { if case .truncated = $0 { true } else { false } })
    }

    @Test("delete and re-create: the new inode is read from 0")
    func deleteAndRecreate() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, lines(["a", "b"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        #expect(try readTexts(t) == ["a", "b"])
        #expect(unlink(path) == 0)
        let (none, gone) = try readBatch(t)
        #expect(none.isEmpty)
        #expect(gone.events.contains(.missing(path: path)))
        try append(path, lines(["c", "d"]))
        let (texts, events, last) = try drain(t)
        #expect(texts == ["c", "d"])
        #expect(events.contains { if case .rotated = $0 { true } else { false } })
        #expect(last?.checkpoint?.inode == inode(path))
        #expect(last?.checkpoint?.offset == 4)
    }

    @Test("a missing file is waited for and read from 0 when it appears, whatever start_at says")
    func missingThenCreated() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let t = Tailer(path: path, checkpoint: nil, startAt: .end)
        let (none, b) = try readBatch(t)
        #expect(none.isEmpty)
        #expect(b.checkpoint == nil)
        #expect(b.events == [.missing(path: path)])
        #expect(t.status.file == nil)
        #expect(try readBatch(t).batch.events.isEmpty)
        try append(path, lines(["x", "y"]))
        let (got, b2) = try readBatch(t)
        #expect(got.map(\.text) == ["x", "y"])
        #expect(b2.events.contains(.opened(path: path, inode: inode(path) ?? 0, offset: 0)))
    }

    @Test("a missing directory is waited for too")
    func missingDirectory() throws {
        let dir = try TempDir()
        let path = dir.file("sub/Master.csv")
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        #expect(try readTexts(t).isEmpty)
        try FileManager.default.createDirectory(atPath: dir.file("sub"), withIntermediateDirectories: false)
        try append(path, lines(["x"]))
        #expect(try readTexts(t) == ["x"])
    }

    @Test("start_at end skips what is there (up to the last newline); beginning reads it")
    func startAt() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, "a\nb\nc")
        let end = Tailer(path: path, checkpoint: nil, startAt: .end)
        let (none, b) = try readBatch(end)
        #expect(none.isEmpty)
        #expect(b.checkpoint?.offset == 4)
        #expect(b.checkpoint?.line == 2)
        try append(path, "\nd\n")
        #expect(try readBatch(end).lines == [Delivered(text: "c", offset: 4, number: 3),
                                              Delivered(text: "d", offset: 6, number: 4)])
        let begin = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        #expect(try readTexts(begin) == ["a", "b", "c", "d"])
        // A checkpoint wins over start_at.
        let resumed = Tailer(path: path, checkpoint: b.checkpoint, startAt: .end)
        #expect(try readTexts(resumed) == ["c", "d"])
    }

    @Test("start_at end on a file without any newline starts at 0")
    func startAtEndNoNewline() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, "partial")
        let t = Tailer(path: path, checkpoint: nil, startAt: .end)
        #expect(try readTexts(t).isEmpty)
        try append(path, "\n")
        #expect(try readTexts(t) == ["partial"])
    }

    @Test("rotation while down: the old file is found by inode and finished, then the new one is read")
    func rotationWhileDown() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let old = dir.file("Master.csv-20260101")
        try append(path, lines(["o1", "o2"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let (_, b) = try readBatch(t)
        let cp = try #require(b.checkpoint)
        _ = consume t
        try append(path, lines(["o3"]))
        #expect(rename(path, old) == 0)
        try append(old, lines(["o4"]))
        try append(path, lines(["n1", "n2"]))
        try append(dir.file("Master.csv.2.gz"), "not ours\n")
        try append(dir.file("other.csv"), "not ours\n")
        let t2 = Tailer(path: path, checkpoint: cp, startAt: .end)
        let (a, ba) = try readBatch(t2)
        #expect(a == [Delivered(text: "o3", offset: 6, number: 3), Delivered(text: "o4", offset: 9, number: 4)])
        #expect(ba.path == old)
        #expect(ba.events.contains(.resumedRotated(path: old, inode: cp.inode, offset: cp.offset)))
        #expect(ba.more)
        let (n, bn) = try readBatch(t2)
        #expect(n.map(\.text) == ["n1", "n2"])
        #expect(bn.path == path)
        #expect(bn.checkpoint?.inode == inode(path))
    }

    @Test("rotation while down with the old file gone: reported lost, the new file read from 0")
    func rotationWhileDownOldLost() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, lines(["o1", "o2"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let cp = try #require(try readBatch(t).batch.checkpoint)
        _ = consume t
        #expect(rename(path, dir.file("Master.csv.1")) == 0)
        try append(path, lines(["n1"]))
        #expect(unlink(dir.file("Master.csv.1")) == 0)
        let t2 = Tailer(path: path, checkpoint: cp, startAt: .end)
        let (got, b) = try readBatch(t2)
        #expect(got.map(\.text) == ["n1"])
        #expect(b.events.contains { if case .oldFileLost(let c, _, _) = $0 { c == cp } else { false } })
    }

    @Test("same inode, same first bytes, different bytes before the offset: a new file, read from 0")
    func tailHashMismatch() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        // Longer than the 1024 bytes the head hash covers, so only the tail hash can tell.
        let prefix = (1...60).map { "line-\(String(format: "%04d", $0))-abcdefghij" }
        try append(path, lines(prefix + ["AAAA"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let cp = try #require(try readBatch(t).batch.checkpoint)
        #expect(cp.headHash.hasPrefix("1024:"))
        _ = consume t
        let before = inode(path)
        // Rewritten in place (O_TRUNC keeps the inode), longer than the checkpoint.
        let fd = open(path, O_WRONLY | O_TRUNC)
        #expect(fd >= 0)
        close(fd)
        try append(path, lines(prefix + ["BBBB", "CCCC"]))
        #expect(inode(path) == before)
        let t2 = Tailer(path: path, checkpoint: cp, startAt: .end)
        let (got, b) = try readBatch(t2)
        #expect(got.map(\.text) == prefix + ["BBBB", "CCCC"])
        #expect(got.first?.number == 1)
        #expect(b.events.contains(.truncated(path: path, inode: cp.inode, previousOffset: cp.offset,
                                             reason: "has different bytes before the checkpoint offset")))
    }

    @Test("the same rewrite under a running tailer is noticed too")
    func liveRewrite() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let prefix = (1...60).map { "line-\($0)-abcdefghijklmno" }
        try append(path, lines(prefix + ["AAAA"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        _ = try readTexts(t)
        let fd = open(path, O_WRONLY | O_TRUNC)
        close(fd)
        try append(path, lines(prefix + ["BBBB", "CCCC"]))
        let (got, b) = try readBatch(t)
        #expect(got.map(\.text) == prefix + ["BBBB", "CCCC"])
        #expect(b.events.contains { if case .truncated = $0 { true } else { false } })
    }

    @Test("a checkpoint whose file starts with different bytes (inode reused) reads the file from 0")
    func headHashMismatch() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, lines(["first", "second"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        var cp = try #require(try readBatch(t).batch.checkpoint)
        _ = consume t
        cp.headHash = "3:" + String(repeating: "0", count: 64)
        let t2 = Tailer(path: path, checkpoint: cp, startAt: .end)
        let (got, b) = try readBatch(t2)
        #expect(got.map(\.text) == ["first", "second"])
        #expect(b.events.contains { if case .truncated(_, _, _, let r) = $0 { r == "starts with different bytes" } else { false } })
        #expect(b.events.contains { if case .oldFileLost(let c, _, _) = $0 { c == cp } else { false } },
                "the checkpoint's file is gone: given up")
    }

    @Test("a rotated file that ends without a newline is delivered whole once the new file has data")
    func unterminatedOldFile() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let old = dir.file("Master.csv.1")
        try append(path, "a\nhalf")
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        #expect(try readTexts(t) == ["a"])
        #expect(rename(path, old) == 0)
        try append(path, lines(["n"]))
        let (got, b) = try readBatch(t)
        #expect(got.map(\.text) == ["half"])
        #expect(b.checkpoint?.offset == 6)
        #expect(b.events.contains(.unterminatedLine(path: old, offset: 2)))
        #expect(try readTexts(t) == ["n"])
    }

    @Test("committed() lets go of finished files; status follows the file being read")
    func statusAndCommitted() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let old = dir.file("Master.csv.1")
        try append(path, lines(["a"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        _ = try readTexts(t)
        #expect(rename(path, old) == 0)
        try append(old, lines(["b"]))
        try append(path, lines(["c", "d"]))
        _ = try t.read(maxLines: 0) { _, _, _ in }
        let s = t.status
        #expect(s.file == old)
        #expect(s.queued == 1)
        #expect(s.lagBytes == 2 + 4)
        let (texts, _, last) = try drain(t)
        #expect(texts == ["b", "c", "d"])
        let s2 = t.status
        #expect(s2.file == path)
        #expect(s2.lagBytes == 0)
        #expect(s2.offset == 4)
        #expect(last?.checkpoint?.inode == inode(path))
        // The old file's descriptor is closed: nothing of this process holds it any more.
        let held = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)
        }
        #expect(!held.contains(old))
    }
}

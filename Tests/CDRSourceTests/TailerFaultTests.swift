import Foundation
import Testing
@testable import CDRSource
import MeterCore
#if canImport(Glibc)
import Glibc
#endif

/// Counts down failures to inject into the tailer's system calls.
final class Faults {
    var opendir = 0
    var open: [String: Int] = [:]
    var errno: Int32 = EMFILE

    var system: TailSystem {
        let live = TailSystem.live
        return TailSystem(
            open: { [self] path in
                if let n = open[path], n > 0 {
                    open[path] = n - 1
                    Glibc.errno = self.errno
                    return -1
                }
                return live.open(path)
            },
            opendir: { [self] dir in
                if opendir > 0 {
                    opendir -= 1
                    Glibc.errno = self.errno
                    return nil
                }
                return live.opendir(dir)
            })
    }
}

@Suite("Tailer under transient errors")
struct TailerFaultTests {
    /// The directory is held here so that it lives as long as the test uses the files in it.
    struct RotatedWhileDown {
        let dir: TempDir
        let rotated: String
        let path: String
        let cp: Checkpoint
    }

    /// In a new directory: o1 o2 read and committed, then (while "down") o3 appended, rotated to
    /// Master.csv.1, o4 appended there and n1 n2 written to a new file at the path.
    static func rotatedWhileDown() throws -> RotatedWhileDown {
        let dir = try TempDir()
        let rotated = dir.file("Master.csv.1")
        let path = dir.file("Master.csv")
        try append(path, lines(["o1", "o2"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let cp = try #require(try readBatch(t).batch.checkpoint)
        _ = consume t
        try append(path, lines(["o3"]))
        #expect(rename(path, rotated) == 0)
        try append(rotated, lines(["o4"]))
        try append(path, lines(["n1", "n2"]))
        return RotatedWhileDown(dir: dir, rotated: rotated, path: path, cp: cp)
    }

    static func isLost(_ e: TailEvent) -> Bool {
        if case .oldFileLost = e { true } else { false }
    }

    @Test("opendir failing with EMFILE, ENFILE, ENOMEM, EACCES or EIO is retried, never taken as gone",
          arguments: [EMFILE, ENFILE, ENOMEM, EACCES, EIO])
    func transientOpendirIsRetried(_ code: Int32) throws {
        let down = try Self.rotatedWhileDown()
        let faults = Faults()
        faults.errno = code
        // One failure is taken by init, two more by the first two reads.
        faults.opendir = 3
        let t = Tailer(path: down.path, checkpoint: down.cp, startAt: .beginning, system: faults.system)
        for attempt in 1...2 {
            let error = #expect(throws: TailError.self, "read \(attempt) throws") { _ = try readBatch(t) }
            #expect(error?.operation == "opendir")
            #expect(error?.errno == code)
        }
        let (got, b) = try readBatch(t)
        #expect(got.map(\.text) == ["o3", "o4"], "the rotated file is finished from the checkpoint")
        #expect(b.path == down.rotated)
        #expect(!b.events.contains(where: Self.isLost))
        let rest = try drain(t)
        #expect(rest.texts == ["n1", "n2"])
        #expect(!rest.events.contains(where: Self.isLost))
    }

    @Test("the rotated file found but not openable now (EMFILE) is retried, not given up")
    func transientOpenOfCandidateIsRetried() throws {
        let down = try Self.rotatedWhileDown()
        let faults = Faults()
        faults.open[down.rotated] = 2
        let t = Tailer(path: down.path, checkpoint: down.cp, startAt: .beginning, system: faults.system)
        #expect(throws: TailError.self) { _ = try readBatch(t) }
        let (got, b) = try readBatch(t)
        #expect(got.map(\.text) == ["o3", "o4"])
        #expect(!b.events.contains(where: Self.isLost))
    }

    @Test("no file with its identity left: given up once, with the bytes known unread counted")
    func reallyGoneIsGivenUpAndCounted() throws {
        let down = try Self.rotatedWhileDown()
        let lastSize = fileSize(down.rotated)
        #expect(unlink(down.rotated) == 0)
        // Likely to get the freed inode, but its first bytes differ: not the file given up.
        try append(down.dir.file("Master.csv.2"), lines(["x1", "x2", "other"]))
        let t = Tailer(path: down.path, checkpoint: down.cp, startAt: .beginning, lastSize: lastSize)
        let (got, b) = try readBatch(t)
        #expect(got.map(\.text) == ["n1", "n2"])
        let lost = b.events.compactMap { e -> (Checkpoint, Int64?)? in
            if case .oldFileLost(let c, _, let n) = e { (c, n) } else { nil }
        }
        #expect(lost.count == 1)
        #expect(lost.first?.0 == down.cp)
        #expect(lost.first?.1 == lastSize - down.cp.offset, "o3 and o4: \(lastSize - down.cp.offset) bytes")
        #expect(lastSize - down.cp.offset == 6)
        #expect(!(try drain(t).events.contains(where: Self.isLost)), "reported once")
    }

    @Test("a dangling or looping link next to the file does not stop the search")
    func brokenLinksAreNoCandidates() throws {
        let down = try Self.rotatedWhileDown()
        #expect(symlink(down.dir.file("nowhere"), down.dir.file("Master.csv.dangling")) == 0)
        #expect(symlink(down.dir.file("Master.csv.loop"), down.dir.file("Master.csv.loop")) == 0)
        let t = Tailer(path: down.path, checkpoint: down.cp, startAt: .beginning)
        #expect(try readTexts(t) == ["o3", "o4"])
    }

    @Test("the directory itself gone: the file is given up (nothing is left to retry)")
    func directoryGoneIsGivenUp() throws {
        let dir = try TempDir()
        let sub = dir.file("cdr")
        #expect(mkdir(sub, 0o755) == 0)
        let path = sub + "/Master.csv"
        try append(path, lines(["o1"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let cp = try #require(try readBatch(t).batch.checkpoint)
        _ = consume t
        try FileManager.default.removeItem(atPath: sub)
        let t2 = Tailer(path: path, checkpoint: cp, startAt: .beginning)
        let b = try readBatch(t2).batch
        #expect(b.events.contains(where: Self.isLost))
    }

    @Test("rewind after a failed commit keeps a rotated file open, even once it is deleted")
    func rewindKeepsRotatedFileOpen() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let rotated = dir.file("Master.csv.1")
        try append(path, lines(["o1", "o2"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let cp = try #require(try readBatch(t).batch.checkpoint)
        t.committed(cp)
        #expect(rename(path, rotated) == 0)
        try append(rotated, lines(["o3"]))
        try append(path, lines(["n1"]))
        #expect(try readTexts(t) == ["o3"])
        // The commit of o3 fails; meanwhile the rotated file is deleted.
        #expect(unlink(rotated) == 0)
        #expect(t.rewind(to: cp))
        let (again, b) = try readBatch(t)
        #expect(again.map(\.text) == ["o3"], "o3 is delivered again from the open file")
        #expect(b.checkpoint?.inode == cp.inode)
        #expect(try drain(t).texts == ["n1"])
    }

    @Test("rewind to a checkpoint in a finished file puts it back in front of the next one")
    func rewindIntoRetiredFile() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, lines(["o1"]))
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        let cp = try #require(try readBatch(t).batch.checkpoint)
        #expect(rename(path, dir.file("Master.csv.1")) == 0)
        try append(path, lines(["n1", "n2"]))
        // The old file is finished and the switch delivers n1 n2; that commit fails.
        var texts: [String] = []
        for _ in 0..<3 where texts.isEmpty { texts = try readTexts(t) }
        #expect(texts == ["n1", "n2"])
        #expect(t.rewind(to: cp))
        #expect(try drain(t).texts == ["n1", "n2"])
        #expect(!t.rewind(to: nil), "no checkpoint: the caller starts a new tailer")
    }
}

import Foundation
import Testing
@testable import CDRSource
import MeterCore
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 of `bytes` by coreutils, so the hash is checked against an independent implementation.
func coreutilsSHA256(_ bytes: [UInt8]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    let inp = Pipe(), out = Pipe()
    p.standardInput = inp
    p.standardOutput = out
    try p.run()
    // Written from another thread: sha256sum's output is tiny, but the input is larger than a pipe.
    let writer = Thread { inp.fileHandleForWriting.write(Data(bytes)); try? inp.fileHandleForWriting.close() }
    writer.start()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(String(decoding: o, as: UTF8.self).prefix(64))
}

/// A line of `count` bytes that is not one repeated byte, so a wrong slice shows in the hash.
func longLineBytes(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(ascii: "a") + UInt8($0 % 26) }
}

@Suite("Lines longer than max_line_bytes")
struct LongLineTests {
    @Test("LineReader: a long line is cut to 4 KiB with its length and SHA-256; the next line is read normally")
    func lineReaderCutsLongLine() throws {
        let dir = try TempDir()
        let path = dir.file("big.csv")
        let long = longLineBytes(300_000)
        try append(path, "short\n" + String(decoding: long, as: UTF8.self) + "\nafter\n")
        let reader = try LineReader(path: path, chunkSize: 4096)
        var normal: [(String, Int64, Int64)] = []
        var cut: [LongLine] = []
        var maxCapacity = 0
        _ = try reader.forEachLine(includePartialLastLine: true, maxLineBytes: 8192) { line, offset, number in
            normal.append((String(decoding: line, as: UTF8.self), offset, number))
            maxCapacity = max(maxCapacity, reader.bufferCapacity)
            return true
        } longLine: { l in
            cut.append(l)
            maxCapacity = max(maxCapacity, reader.bufferCapacity)
            return true
        }
        maxCapacity = max(maxCapacity, reader.bufferCapacity)
        #expect(normal.map(\.0) == ["short", "after"])
        let after = try #require(normal.last)
        #expect(after.1 == Int64(6 + 300_001), "offset of the line after it")
        #expect(after.2 == 3, "its number")
        #expect(cut.count == 1)
        let l = try #require(cut.first)
        #expect(l.head == Array(long.prefix(4096)))
        #expect(l.length == 300_000)
        #expect(l.sha256 == (try coreutilsSHA256(long)))
        #expect(l.offset == 6)
        #expect(l.number == 2)
        #expect(maxCapacity <= LineReader.capacityBound(chunkSize: 4096, maxLineBytes: 8192),
                "buffer stayed bounded: \(maxCapacity)")
        #expect(reader.offset == fileSize(path))
    }

    @Test("LineReader: an over-long last line without newline is cut too; one at the limit is a normal line")
    func lineReaderPartialAndLimit() throws {
        let dir = try TempDir()
        let path = dir.file("big.csv")
        let atLimit = longLineBytes(8192)
        let long = longLineBytes(20_000)
        try append(path, String(decoding: atLimit, as: UTF8.self) + "\n" + String(decoding: long, as: UTF8.self))
        let reader = try LineReader(path: path, chunkSize: 4096)
        var normal: [[UInt8]] = []
        var cut: [LongLine] = []
        _ = try reader.forEachLine(includePartialLastLine: true, maxLineBytes: 8192) { line, _, _ in
            normal.append(Array(line))
            return true
        } longLine: { cut.append($0); return true }
        #expect(normal == [atLimit])
        #expect(cut.map(\.length) == [20_000])
        #expect(cut.first?.sha256 == (try coreutilsSHA256(long)))
    }

    @Test("a long line that fits in the read buffer whole is cut all the same (LineReader and Tailer)")
    func longLineInsideOneChunk() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let long = longLineBytes(100_000)
        try append(path, "a\n" + String(decoding: long, as: UTF8.self) + "\nb\n")
        let reader = try LineReader(path: path, chunkSize: 1 << 20)
        var normal: [String] = []
        var cut: [LongLine] = []
        _ = try reader.forEachLine(includePartialLastLine: true, maxLineBytes: 65_536) { line, _, _ in
            normal.append(String(decoding: line, as: UTF8.self))
            return true
        } longLine: { cut.append($0); return true }
        #expect(normal == ["a", "b"])
        #expect(cut.map(\.length) == [100_000])
        #expect(cut.first?.number == 2)

        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning)
        var tNormal: [String] = []
        var tCut: [LongLine] = []
        let b = try t.read(maxLines: 100, maxLineBytes: 65_536) { line, _, _ in
            tNormal.append(String(decoding: line, as: UTF8.self))
        } longLine: { tCut.append($0) }
        #expect(tNormal == ["a", "b"])
        #expect(tCut == cut, "the tailer and the reader agree")
        #expect(b.checkpoint?.offset == fileSize(path))
    }

    @Test("Tailer: a long line still being written is never buffered whole; once its newline arrives it is handed out once")
    func tailerStreamsGrowingLongLine() throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, "a\n")
        let chunk = 4096, limit = 8192
        let bound = TailFile.capacityBound(chunkSize: chunk, maxLineBytes: limit)
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning, chunkSize: chunk)
        var normal: [String] = []
        var cut: [LongLine] = []
        func read() throws -> TailBatch {
            try t.read(maxLines: 100, maxLineBytes: limit) { line, _, _ in
                normal.append(String(decoding: line, as: UTF8.self))
            } longLine: { cut.append($0) }
        }
        let first = try read()
        #expect(normal == ["a"])
        let long = longLineBytes(400_000)
        var midCheckpoint: Checkpoint?
        for piece in stride(from: 0, to: long.count, by: 25_000) {
            try append(path, String(decoding: long[piece..<min(long.count, piece + 25_000)], as: UTF8.self))
            let b = try read()
            #expect(b.lines == 0)
            // The head hash grows with the file; the position and the bytes before it stay.
            #expect(b.checkpoint?.offset == 2, "the checkpoint stays before the unfinished line")
            #expect(b.checkpoint?.line == 1)
            #expect(b.checkpoint?.tailHash == first.checkpoint?.tailHash)
            #expect(t.bufferCapacity <= bound, "buffer \(t.bufferCapacity) after \(piece) bytes")
            midCheckpoint = b.checkpoint
        }
        #expect(cut.isEmpty)
        try append(path, "\nb\n")
        let done = try read()
        #expect(normal == ["a", "b"])
        #expect(cut.count == 1)
        #expect(cut.first?.length == 400_000)
        #expect(cut.first?.head == Array(long.prefix(4096)))
        #expect(cut.first?.sha256 == (try coreutilsSHA256(long)))
        #expect(cut.first?.offset == 2)
        #expect(cut.first?.number == 2)
        #expect(done.checkpoint?.offset == fileSize(path), "the checkpoint is after the line")
        #expect(done.checkpoint?.line == 3)
        #expect(t.bufferCapacity <= bound)
        _ = try read()
        #expect(cut.count == 1, "exactly once")

        // A restart from the checkpoint taken while the line was growing hands it out once more, the same.
        let again = Tailer(path: path, checkpoint: midCheckpoint, startAt: .beginning, chunkSize: chunk)
        var cut2: [LongLine] = []
        var normal2: [String] = []
        let b2 = try again.read(maxLines: 100, maxLineBytes: limit) { line, _, _ in
            normal2.append(String(decoding: line, as: UTF8.self))
        } longLine: { cut2.append($0) }
        #expect(cut2 == cut)
        #expect(normal2 == ["b"])
        #expect(b2.checkpoint == done.checkpoint)
    }

    @Test("Tailer: a failed batch delivers the long line again; a rotated file ending in one hands it out")
    func tailerRollbackAndRotation() throws {
        struct Boom: Error {}
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let long = longLineBytes(50_000)
        try append(path, String(decoding: long, as: UTF8.self) + "\nz\n")
        let t = Tailer(path: path, checkpoint: nil, startAt: .beginning, chunkSize: 4096)
        #expect(throws: Boom.self) {
            _ = try t.read(maxLines: 10, maxLineBytes: 8192) { _, _, _ in } longLine: { _ in throw Boom() }
        }
        var cut: [LongLine] = []
        var normal: [String] = []
        _ = try t.read(maxLines: 10, maxLineBytes: 8192) { line, _, _ in
            normal.append(String(decoding: line, as: UTF8.self))
        } longLine: { cut.append($0) }
        #expect(cut.map(\.length) == [50_000])
        #expect(normal == ["z"])

        // The writer leaves an unfinished long line in a file it rotates away from.
        try append(path, String(decoding: long, as: UTF8.self))
        _ = try t.read(maxLines: 10, maxLineBytes: 8192) { _, _, _ in } longLine: { cut.append($0) }
        #expect(rename(path, dir.file("Master.csv.1")) == 0)
        try append(path, "n\n")
        var events: [TailEvent] = []
        for _ in 0..<4 {
            let b = try t.read(maxLines: 10, maxLineBytes: 8192) { line, _, _ in
                normal.append(String(decoding: line, as: UTF8.self))
            } longLine: { cut.append($0) }
            events += b.events
        }
        #expect(cut.map(\.length) == [50_000, 50_000])
        #expect(cut.last?.sha256 == (try coreutilsSHA256(long)))
        #expect(normal == ["z", "n"])
        #expect(events.contains { if case .unterminatedLine = $0 { true } else { false } })
    }
}

import Foundation
import Testing
import CDRSource
import MeterCore
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under the system temp dir, removed when the value goes away.
final class TempDir: Sendable {
    let path: String

    init() throws {
        var base = NSTemporaryDirectory()
        while base.hasSuffix("/") { base.removeLast() }
        var template = Array((base + "/cdrsource-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template), let real = realpath(made, nil) else { throw POSIXError(.EIO) }
        defer { free(real) }
        path = String(cString: real)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

/// Appends like Asterisk's cdr_csv: open for append, write, close.
func append(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        done += n
    }
}

func lines(_ items: [String]) -> String { items.map { $0 + "\n" }.joined() }

func inode(_ path: String) -> UInt64? {
    var st = stat()
    return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
}

func fileSize(_ path: String) -> Int64 {
    var st = stat()
    return stat(path, &st) == 0 ? Int64(st.st_size) : -1
}

struct Delivered: Equatable {
    var text: String
    var offset: Int64
    var number: Int64
}

/// One `read`, with the lines copied out.
func readBatch(_ t: Tailer, max: Int = 10_000) throws -> (lines: [Delivered], batch: TailBatch) {
    var got: [Delivered] = []
    let batch = try t.read(maxLines: max) { line, offset, number in
        got.append(Delivered(text: String(decoding: line, as: UTF8.self), offset: offset, number: number))
    }
    #expect(batch.lines == got.count)
    return (got, batch)
}

/// Text of one `read`.
func readTexts(_ t: Tailer, max: Int = 10_000) throws -> [String] {
    try readBatch(t, max: max).lines.map(\.text)
}

/// Reads until nothing more is available right now, collecting texts and events.
func drain(_ t: Tailer) throws -> (texts: [String], events: [TailEvent], last: TailBatch?) {
    var texts: [String] = []
    var events: [TailEvent] = []
    var last: TailBatch?
    for _ in 0..<1000 {
        let (got, batch) = try readBatch(t)
        texts += got.map(\.text)
        events += batch.events
        last = batch
        if let cp = batch.checkpoint { t.committed(cp) }
        if !batch.more && got.isEmpty { break }
    }
    return (texts, events, last)
}


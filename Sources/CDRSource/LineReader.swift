#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file as newline-terminated lines of raw bytes, tracking each line's byte offset and number.
///
/// Lines are handed out as buffer slices into a reused chunk, so the hot path allocates nothing per line.
public final class LineReader {
    public struct OpenError: Error, CustomStringConvertible {
        public var path: String
        public var errno: Int32
        public var description: String { "\(path): \(String(cString: strerror(errno)))" }
    }

    private let fd: Int32
    private var buffer: [UInt8]
    private var start = 0      // first unconsumed byte in buffer
    private var end = 0        // one past the last valid byte in buffer
    private var eof = false
    /// A line longer than the limit, being read: hashed and dropped as it streams in.
    private var long: LongLineBuilder?
    /// File offset of `buffer[start]`.
    public private(set) var offset: Int64
    /// Number of the next line (1-based).
    public private(set) var lineNumber: Int64

    public init(path: String, offset: Int64 = 0, lineNumber: Int64 = 1, chunkSize: Int = 1 << 20) throws(OpenError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw OpenError(path: path, errno: errno) }
        if offset > 0, lseek(fd, off_t(offset), SEEK_SET) < 0 {
            let e = errno
            close(fd)
            throw OpenError(path: path, errno: e)
        }
        self.fd = fd
        self.buffer = [UInt8](repeating: 0, count: max(chunkSize, 4096))
        self.offset = offset
        self.lineNumber = lineNumber
    }

    deinit { close(fd) }

    /// Size of the open file, for progress.
    public var fileSize: Int64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int64(st.st_size) : 0
    }

    /// Calls `body` with each complete line (without its "\n"), its byte offset and line number.
    /// When `includePartialLastLine` is false a final line without a newline is left unread,
    /// and `offset` stays at the last newline — the tailer's rule. Returns false from `body` to stop early.
    public func forEachLine(
        includePartialLastLine: Bool,
        _ body: (UnsafeBufferPointer<UInt8>, Int64, Int64) throws -> Bool
    ) throws -> Bool {
        try forEachLine(includePartialLastLine: includePartialLastLine, maxLineBytes: .max, body, longLine: { _ in true })
    }

    /// The read buffer's size now.
    var bufferCapacity: Int { buffer.count }
    /// The most the buffer grows to with lines cut at `maxLineBytes`: it only grows while the partial
    /// line in it is at most that long.
    static func capacityBound(chunkSize: Int, maxLineBytes: Int) -> Int { max(max(chunkSize, 4096), 2 * maxLineBytes) }

    /// `forEachLine(includePartialLastLine:_:)`, with a line longer than `maxLineBytes` handed to
    /// `longLine` (its first 4 KiB, length and SHA-256) instead of `body`; its bytes are hashed as
    /// they are read, never buffered whole.
    public func forEachLine(
        includePartialLastLine: Bool, maxLineBytes: Int,
        _ body: (UnsafeBufferPointer<UInt8>, Int64, Int64) throws -> Bool,
        longLine: (LongLine) throws -> Bool
    ) throws -> Bool {
        while true {
            if var l = long {
                let (found, used): (Bool, Int) = buffer.withUnsafeBufferPointer { buf in
                    guard let base = buf.baseAddress, start < end else { return (false, 0) }
                    if let nl = memchr(base + start, 0x0A, end - start) {
                        let n = UnsafeRawPointer(nl).assumingMemoryBound(to: UInt8.self) - (base + start)
                        l.add(UnsafeRawBufferPointer(start: base + start, count: n))
                        return (true, n + 1)
                    }
                    l.add(UnsafeRawBufferPointer(start: base + start, count: end - start))
                    return (false, end - start)
                }
                start += used
                offset += Int64(used)
                if found || (eof && includePartialLastLine) {
                    long = nil
                    lineNumber += 1
                    if try !longLine(l.finish()) { return false }
                    continue
                }
                long = l
                // Nothing of it is kept in the buffer.
                start = 0
                end = 0
                if eof {
                    // The tailer's rule: an unfinished last line is not consumed.
                    offset = l.offset
                    long = nil
                    return true
                }
                try fill()
                continue
            }
            var consumedAny = false
            let stop: Bool = try buffer.withUnsafeBufferPointer { buf in
                guard let base = buf.baseAddress else { return false }
                while start < end {
                    let remaining = end - start
                    guard let nl = memchr(base + start, 0x0A, remaining) else { break }
                    let nlIndex = UnsafeRawPointer(nl).assumingMemoryBound(to: UInt8.self) - base
                    if nlIndex - start > maxLineBytes {
                        // Complete in the buffer, but over the limit all the same.
                        var l = LongLineBuilder(offset: offset, number: lineNumber)
                        l.add(UnsafeRawBufferPointer(start: base + start, count: nlIndex - start))
                        let advance = nlIndex - start + 1
                        start += advance
                        offset += Int64(advance)
                        lineNumber += 1
                        consumedAny = true
                        if try !longLine(l.finish()) { return true }
                        continue
                    }
                    let line = UnsafeBufferPointer(start: base + start, count: nlIndex - start)
                    let lineOffset = offset
                    let number = lineNumber
                    let advance = nlIndex - start + 1
                    start += advance
                    offset += Int64(advance)
                    lineNumber += 1
                    consumedAny = true
                    if try !body(line, lineOffset, number) { return true }
                }
                return false
            }
            if stop { return false }
            _ = consumedAny
            if end - start > maxLineBytes {
                // No newline in the buffered rest: longer than allowed whatever comes next.
                long = LongLineBuilder(offset: offset, number: lineNumber)
                continue
            }
            if eof {
                if includePartialLastLine && start < end {
                    let stopLast: Bool = try buffer.withUnsafeBufferPointer { buf in
                        guard let base = buf.baseAddress else { return false }
                        let line = UnsafeBufferPointer(start: base + start, count: end - start)
                        let lineOffset = offset
                        let number = lineNumber
                        offset += Int64(end - start)
                        lineNumber += 1
                        start = end
                        return try !body(line, lineOffset, number)
                    }
                    if stopLast { return false }
                }
                return true
            }
            try fill()
        }
    }

    private func fill() throws {
        // Keep the unconsumed tail (a partial line) and grow when one line outsizes the buffer.
        if start > 0 {
            let pending = end - start
            if pending > 0 {
                buffer.withUnsafeMutableBufferPointer { buf in
                    guard let base = buf.baseAddress else { return }
                    memmove(base, base + start, pending)
                }
            }
            end = pending
            start = 0
        }
        if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
        let n = buffer.withUnsafeMutableBufferPointer { buf -> Int in
            guard let base = buf.baseAddress else { return 0 }
            return read(fd, base + end, buf.count - end)
        }
        if n < 0 {
            if errno == EINTR { return }
            throw OpenError(path: "read", errno: errno)
        }
        if n == 0 { eof = true } else { end += n }
    }
}

import MeterCore
import Crypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes of a file's start that identify it (with device and inode).
let headLimit = 1024
/// Bytes before a position whose hash the checkpoint keeps.
let tailWindow = 64

func hexSHA256(_ bytes: UnsafeRawBufferPointer) -> String {
    var hasher = SHA256()
    hasher.update(bufferPointer: bytes)
    return hex(hasher.finalize())
}

/// `"<n>:<hex>"` split; nil when malformed.
func parseHash(_ s: String) -> (count: Int, hex: Substring)? {
    guard let colon = s.firstIndex(of: ":"), let n = Int(s[s.startIndex..<colon]), n >= 0 else { return nil }
    return (n, s[s.index(after: colon)...])
}

/// The system calls that find and open source files, replaceable so that tests can make them fail
/// the way a host out of descriptors does (EMFILE) without exhausting the test process.
struct TailSystem {
    /// Opens for reading; -1 with `errno` set on failure.
    var open: (String) -> Int32
    /// nil with `errno` set on failure.
    var opendir: (String) -> OpaquePointer?

    static var live: TailSystem {
        TailSystem(open: { Glibc.open($0, O_RDONLY | O_CLOEXEC) }, opendir: { Glibc.opendir($0) })
    }
}

/// How a checkpoint compares with a file that has its device and inode.
enum ResumeResult: Equatable {
    /// The same bytes: positioned at the checkpoint.
    case positioned
    /// Different first bytes (or an unreadable checkpoint): another file that reuses the inode.
    case otherFile(String)
    /// Same first bytes but shorter than the offset or different before it: the same file rewritten.
    case rewritten(String)

    var reason: String? {
        switch self {
        case .positioned: nil
        case .otherFile(let r), .rewritten(let r): r
        }
    }
}

/// One open file being tailed: its identity, read position and a reusable read buffer.
///
/// The buffer always holds a contiguous range of the file, `buf[i]` = byte `offset - start + i`,
/// and keeps at least min(64, offset) bytes before `start` so the checkpoint's tail hash and the
/// rewrite check never need an extra read.
final class TailFile {
    let fd: Int32
    let device: UInt64
    let inode: UInt64
    /// The name it was opened under (the fallback when /proc can't say where it is now).
    let openedAs: String

    /// First min(size, 1024) bytes seen so far: grows while the file is young.
    private(set) var head: [UInt8] = []
    private var headHashCache: String?
    /// Bytes delivered: just past the last newline handed out.
    private(set) var offset: Int64 = 0
    /// Lines delivered (before `offset`).
    private(set) var line: Int64 = 0

    private var buf: UnsafeMutablePointer<UInt8>
    private var cap: Int
    private let baseCap: Int
    private var start = 0
    private var end = 0
    /// The bytes before `offset` are not in the buffer yet (after a resume or rewind).
    private var needsHistory = false
    private let scratch: UnsafeMutablePointer<UInt8>
    /// A line longer than the reader's limit, being read: its bytes so far are hashed and dropped,
    /// not buffered; `offset` stays at its start until its newline arrives.
    private var long: (line: LongLineBuilder, tailHash: String)?

    /// Opens `path`; nil when it does not exist (or is not a regular file yet, e.g. a dangling link).
    /// Any other failure (EMFILE, EACCES, EIO…) throws: the file is there, it could not be opened now.
    static func openIfExists(_ path: String, chunkSize: Int, system: TailSystem) throws -> TailFile? {
        let fd = system.open(path)
        if fd < 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR { return nil }
            throw TailError(path: path, operation: "open", errno: e)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw TailError(path: path, operation: "fstat", errno: e)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw TailError(path: path, operation: "open (not a regular file)", errno: EINVAL)
        }
        return TailFile(fd: fd, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), openedAs: path, chunkSize: chunkSize)
    }

    private init(fd: Int32, device: UInt64, inode: UInt64, openedAs: String, chunkSize: Int) {
        self.fd = fd
        self.device = device
        self.inode = inode
        self.openedAs = openedAs
        self.baseCap = max(chunkSize, 4096)
        self.cap = baseCap
        self.buf = .allocate(capacity: baseCap)
        self.scratch = .allocate(capacity: headLimit)
    }

    deinit {
        close(fd)
        buf.deallocate()
        scratch.deallocate()
    }

    /// Bytes after the last newline delivered have been read (a partial last line).
    var hasPartialLine: Bool { long != nil || end > start }
    /// File offset of the next byte to read from disk.
    var readPos: Int64 { offset + (long?.line.length ?? 0) + Int64(end - start) }
    /// The read buffer's size now.
    var capacity: Int { cap }
    /// The most the read buffer grows to with lines cut at `maxLineBytes`: it only grows while the
    /// partial line in it is at most that long.
    static func capacityBound(chunkSize: Int, maxLineBytes: Int) -> Int {
        max(max(chunkSize, 4096), 3 * (maxLineBytes + tailWindow))
    }

    func size() throws -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TailError(path: openedAs, operation: "fstat", errno: errno) }
        return Int64(st.st_size)
    }

    /// Where the file is now: a rotated file's new name, with " (deleted)" once unlinked.
    var currentName: String {
        #if os(Linux)
        var out = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(fd)", &out, out.count - 1)
        if n > 0 { return String(decoding: out[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        #endif
        return openedAs
    }

    // MARK: - Positioning

    /// Reads from 0 again (a new file, or the same inode rewritten).
    func reset() throws {
        offset = 0
        line = 0
        start = 0
        end = 0
        long = nil
        needsHistory = false
        head = []
        headHashCache = nil
        try extendHead(verify: false)
    }

    /// Continues at a known position (a verified checkpoint, or a rewind after a failed batch).
    func position(offset: Int64, line: Int64) {
        self.offset = offset
        self.line = line
        start = 0
        end = 0
        long = nil
        needsHistory = offset > 0
    }

    /// Reads up to `count` bytes at `at` into scratch (count ≤ headLimit); returns how many arrived.
    private func preadScratch(_ count: Int, at: Int64) throws -> Int {
        try preadFully(scratch, count, at: at)
    }

    /// Grows `head` to min(size, 1024) bytes. With `verify`, first checks that the bytes already
    /// in `head` are still there; returns false (and changes nothing) when they are not.
    @discardableResult
    func extendHead(verify: Bool) throws -> Bool {
        let want = Int(min(try size(), Int64(headLimit)))
        if verify {
            let need = max(want, head.count)
            let got = try preadScratch(need, at: 0)
            if got < head.count || memcmp(scratch, head, head.count) != 0 { return false }
            if got > head.count {
                head = Array(UnsafeBufferPointer(start: scratch, count: got))
                headHashCache = nil
            }
            return true
        }
        guard want > head.count else { return true }
        let got = try preadScratch(want, at: 0)
        if got > head.count {
            head = Array(UnsafeBufferPointer(start: scratch, count: got))
            headHashCache = nil
        }
        return true
    }

    /// The bytes just before the read position are still the ones in the buffer.
    func windowMatches() throws -> Bool {
        try loadHistoryIfNeeded()
        let w = Int(min(readPos, Int64(tailWindow)))
        guard w > 0 else { return true }
        let got = try preadScratch(w, at: readPos - Int64(w))
        return got == w && memcmp(scratch, buf + (end - w), w) == 0
    }

    private func loadHistoryIfNeeded() throws {
        guard needsHistory else { return }
        let k = Int(min(offset, Int64(tailWindow)))
        var got = 0
        while got < k {
            let n = pread(fd, buf + got, k - got, off_t(offset - Int64(k) + Int64(got)))
            if n < 0 {
                if errno == EINTR { continue }
                throw TailError(path: openedAs, operation: "read", errno: errno)
            }
            if n == 0 { break }
            got += n
        }
        if got < k {
            // The file shrank under the position: the next integrity check resets it.
            memset(buf + got, 0, k - got)
        }
        start = k
        end = k
        needsHistory = false
    }

    // MARK: - Checkpoint and resume

    var headHash: String {
        if let h = headHashCache { return h }
        let h = head.withUnsafeBytes { "\(head.count):" + hexSHA256($0) }
        headHashCache = h
        return h
    }

    func checkpoint() throws -> Checkpoint {
        try loadHistoryIfNeeded()
        if head.count < headLimit { try extendHead(verify: true) }
        let tail = long?.tailHash ?? tailHashAtOffset()
        return Checkpoint(device: device, inode: inode, headHash: headHash, offset: offset, tailHash: tail, line: line)
    }

    /// Whether `cp` describes this file's bytes; on `.positioned` the file is positioned at the checkpoint.
    func resume(from cp: Checkpoint) throws -> ResumeResult {
        guard let (n, hex) = parseHash(cp.headHash), n <= headLimit,
              let (k, tailHex) = parseHash(cp.tailHash), Int64(k) <= cp.offset, k <= headLimit, cp.offset >= 0
        else { return .otherFile("has an unreadable checkpoint") }
        let size = try size()
        if size < Int64(n) { return .otherFile("is shorter than its recorded first bytes") }
        let gotHead = try preadScratch(n, at: 0)
        if gotHead < n || hexSHA256(UnsafeRawBufferPointer(start: scratch, count: n)) != hex {
            return .otherFile("starts with different bytes")
        }
        if size < cp.offset { return .rewritten("is shorter than the checkpoint offset") }
        let gotTail = try preadScratch(k, at: cp.offset - Int64(k))
        if gotTail < k || hexSHA256(UnsafeRawBufferPointer(start: scratch, count: k)) != tailHex {
            return .rewritten("has different bytes before the checkpoint offset")
        }
        head = []
        headHashCache = nil
        try extendHead(verify: false)
        position(offset: cp.offset, line: cp.line)
        return .positioned
    }

    /// Positions after the last newline present now (start_at = end), counting the lines before it.
    func positionAtLastNewline() throws {
        let size = try size()
        var lastNL: Int64 = -1
        var pos = size
        let chunk = 64 * 1024
        let tmp = UnsafeMutablePointer<UInt8>.allocate(capacity: chunk)
        defer { tmp.deallocate() }
        search: while pos > 0 {
            let from = max(0, pos - Int64(chunk))
            let n = try preadFully(tmp, Int(pos - from), at: from)
            var i = n - 1
            while i >= 0 {
                if tmp[i] == 0x0A { lastNL = from + Int64(i); break search }
                i -= 1
            }
            pos = from
        }
        let target = lastNL + 1
        var lines: Int64 = 0
        var at: Int64 = 0
        while at < target {
            let n = try preadFully(tmp, Int(min(Int64(chunk), target - at)), at: at)
            if n == 0 { break }
            var p = UnsafeMutableRawPointer(tmp)
            var left = n
            while left > 0, let hit = memchr(p, 0x0A, left) {
                lines += 1
                let used = p.distance(to: hit) + 1
                p = hit + 1
                left -= used
            }
            at += Int64(n)
        }
        try extendHead(verify: false)
        position(offset: target, line: lines)
    }

    private func preadFully(_ into: UnsafeMutablePointer<UInt8>, _ count: Int, at: Int64) throws -> Int {
        var got = 0
        while got < count {
            let n = pread(fd, into + got, count - got, off_t(at + Int64(got)))
            if n < 0 {
                if errno == EINTR { continue }
                throw TailError(path: openedAs, operation: "read", errno: errno)
            }
            if n == 0 { break }
            got += n
        }
        return got
    }

    /// `"<k>:<hex>"` of the k = min(64, offset) bytes before `offset`, which the buffer holds before `start`.
    private func tailHashAtOffset() -> String {
        let k = Int(min(offset, Int64(tailWindow)))
        return "\(k):" + hexSHA256(UnsafeRawBufferPointer(start: buf + (start - k), count: k))
    }

    // MARK: - Lines

    /// Hands out up to `limit` complete lines available now; stops at end of file. A line longer
    /// than `maxLineBytes` goes to `longLine` instead, cut to its start, and is never buffered whole.
    func deliver(limit: Int, maxLineBytes: Int = .max, _ body: (UnsafeBufferPointer<UInt8>, Int64, Int64) throws -> Void,
                 longLine: (LongLine) throws -> Void = { _ in }) throws -> Int {
        var n = 0
        while n < limit {
            if long != nil {
                if try continueLongLine(longLine) { n += 1 } else if try fill() == 0 { break }
                continue
            }
            if start < end, let hit = memchr(buf + start, 0x0A, end - start) {
                let nl = UnsafeRawPointer(buf).distance(to: UnsafeRawPointer(hit))
                if nl - start > maxLineBytes {
                    // Whole in the buffer but too long all the same: `continueLongLine` hands it out.
                    long = (LongLineBuilder(offset: offset, number: line + 1), tailHashAtOffset())
                    continue
                }
                let lineStart = offset
                let length = nl - start
                offset += Int64(length + 1)
                line += 1
                let text = UnsafeBufferPointer(start: buf + start, count: length)
                start = nl + 1
                n += 1
                try body(text, lineStart, line)
            } else if end - start > maxLineBytes {
                // Longer than allowed whatever comes next: stream the rest through the hash.
                long = (LongLineBuilder(offset: offset, number: line + 1), tailHashAtOffset())
            } else if try fill() == 0 {
                break
            }
        }
        return n
    }

    /// Feeds the buffered bytes of the long line being read to its hash; true once its newline was
    /// found and it was handed out. Otherwise the buffer is emptied but for the last bytes read,
    /// which the next read's integrity check compares with the file.
    private func continueLongLine(_ longLine: (LongLine) throws -> Void) throws -> Bool {
        guard var state = long else { return false }
        if start < end, let hit = memchr(buf + start, 0x0A, end - start) {
            let nl = UnsafeRawPointer(buf).distance(to: UnsafeRawPointer(hit))
            state.line.add(UnsafeRawBufferPointer(start: buf + start, count: nl - start))
            let done = state.line.finish()
            offset += done.length + 1
            line += 1
            start = nl + 1
            long = nil
            try longLine(done)
            return true
        }
        state.line.add(UnsafeRawBufferPointer(start: buf + start, count: end - start))
        long = state
        // Keep the last bytes read (at least 64: a long line is longer) so `windowMatches` can compare them.
        let keep = min(end, tailWindow)
        memmove(buf, buf + (end - keep), keep)
        start = keep
        end = keep
        return false
    }

    /// Hands out the bytes after the last newline as a line (a finished file that ends without one).
    func deliverRemainder(_ body: (UnsafeBufferPointer<UInt8>, Int64, Int64) throws -> Void,
                          longLine: (LongLine) throws -> Void = { _ in }) throws -> Int {
        if var state = long {
            state.line.add(UnsafeRawBufferPointer(start: buf + start, count: end - start))
            let done = state.line.finish()
            offset += done.length
            line += 1
            start = end
            long = nil
            try longLine(done)
            return 1
        }
        guard start < end else { return 0 }
        let lineStart = offset
        let length = end - start
        offset += Int64(length)
        line += 1
        let text = UnsafeBufferPointer(start: buf + start, count: length)
        start = end
        try body(text, lineStart, line)
        return 1
    }

    /// A complete line is buffered, or the file has bytes not read yet.
    func hasMore() throws -> Bool {
        if start < end, memchr(buf + start, 0x0A, end - start) != nil { return true }
        return try size() > readPos
    }

    /// Reads more of the file after what is buffered; 0 at end of file.
    private func fill() throws -> Int {
        try loadHistoryIfNeeded()
        let minRead = cap / 4
        if long == nil, cap - end < minRead {
            let history = Int(min(offset, Int64(tailWindow)))
            let keepFrom = start - history
            if keepFrom > 0 {
                memmove(buf, buf + keepFrom, end - keepFrom)
                start -= keepFrom
                end -= keepFrom
            }
            if cap - end < minRead {
                // One line outgrows the buffer.
                resize(to: cap * 2)
            } else if cap > baseCap && end < baseCap / 2 {
                // Give back the memory a long line took.
                resize(to: baseCap)
            }
        }
        while true {
            let n = pread(fd, buf + end, cap - end, off_t(readPos))
            if n < 0 {
                if errno == EINTR { continue }
                throw TailError(path: openedAs, operation: "read", errno: errno)
            }
            end += n
            return n
        }
    }

    private func resize(to newCap: Int) {
        let fresh = UnsafeMutablePointer<UInt8>.allocate(capacity: newCap)
        fresh.update(from: buf, count: end)
        buf.deallocate()
        buf = fresh
        cap = newCap
    }
}

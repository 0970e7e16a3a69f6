import Crypto
import MeterCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Something the tailer noticed that the daemon should log.
public enum TailEvent: Sendable, Equatable, CustomStringConvertible {
    /// Reading begins on a file (start, resume, or a file that appeared at the path), at `offset`.
    case opened(path: String, inode: UInt64, offset: Int64)
    /// No file at the path: the tailer waits for one (a file that appears is read from 0).
    case missing(path: String)
    /// The path names a new file (rename-and-create, or delete and re-create). The old file, now
    /// `from` (its current name, " (deleted)" when unlinked), is read to its end first.
    case rotated(from: String, to: String, oldInode: UInt64, newInode: UInt64)
    /// The old file was read to its end and let go; the next file is read from 0.
    case switched(from: String, to: String, inode: UInt64)
    /// The same file no longer holds the bytes read so far (shorter than the read position:
    /// copytruncate; or its first bytes / the bytes before the position changed): read again from 0.
    case truncated(path: String, inode: UInt64, previousOffset: Int64, reason: String)
    /// At start the checkpoint's file was found under another name (rotated while the daemon was
    /// down): it is finished from the checkpoint before the file at the path is read.
    case resumedRotated(path: String, inode: UInt64, offset: Int64)
    /// At start no file in the directory has the checkpoint file's identity (device, inode and first
    /// bytes): it is given up, and anything appended to it after the checkpoint is lost; the file at
    /// the path is read from 0. `unreadBytes` is how many bytes past the checkpoint it was known to
    /// hold (nil when nothing says: the file was last seen by an earlier run).
    case oldFileLost(Checkpoint, reason: String, unreadBytes: Int64?)
    /// A rotated-away file ended without a newline once a newer file had data; its last bytes were
    /// delivered as a line (the writer will not finish it).
    case unterminatedLine(path: String, offset: Int64)

    public var description: String {
        switch self {
        case .opened(let p, let i, let o): "reading \(p) (inode \(i)) from offset \(o)"
        case .missing(let p): "\(p) does not exist; waiting for it"
        case .rotated(let f, let t, let oi, let ni):
            "rotation: \(t) is a new file (inode \(ni)); finishing the old one first: \(f) (inode \(oi))"
        case .switched(let f, let t, let i): "finished \(f); now reading \(t) (inode \(i)) from 0"
        case .truncated(let p, let i, let o, let r):
            "\(p) (inode \(i)) \(r): reading it again from 0 (was at offset \(o))"
        case .resumedRotated(let p, let i, let o):
            "the file read before the restart was rotated to \(p) (inode \(i)); finishing it from offset \(o)"
        case .oldFileLost(let c, let r, let n):
            "the file read before the restart (\(c)) \(r); given up: lines appended to it after the checkpoint are lost ("
                + (n.map { "\($0) bytes known unread" } ?? "how many bytes is unknown") + ")"
        case .unterminatedLine(let p, let o): "\(p) ends without a newline at offset \(o); delivered as a line"
        }
    }
}

/// What one `Tailer.read` delivered: commit `checkpoint` with the charges of exactly these lines.
public struct TailBatch: Sendable {
    /// Covers exactly the lines delivered (and everything before them); nil only while no file exists.
    public var checkpoint: Checkpoint?
    public var lines: Int
    public var events: [TailEvent]
    /// The file the lines came from: the configured path, or a rotated file's current name.
    public var path: String
    /// More lines are available right now (the batch stopped at `maxLines`, or a newer file waits).
    public var more: Bool
    // Only the tailer makes one: the memberwise init Swift writes serves it.
}

/// A snapshot of a tailer's position, for `status` and systemd STATUS=.
public struct TailStatus: Sendable, Equatable {
    /// The configured path.
    public var path: String
    /// The file being read (a rotated file's current name while it is drained); nil while waiting for one.
    public var file: String?
    public var inode: UInt64?
    /// Bytes delivered in the current file.
    public var offset: Int64
    public var line: Int64
    /// Size of the current file.
    public var size: Int64
    /// Bytes not delivered yet: the rest of the current file plus newer files queued behind it.
    public var lagBytes: Int64
    /// Newer files waiting until the current one is finished.
    public var queued: Int

    public init(path: String, file: String?, inode: UInt64?, offset: Int64, line: Int64, size: Int64, lagBytes: Int64, queued: Int) {
        self.path = path
        self.file = file
        self.inode = inode
        self.offset = offset
        self.line = line
        self.size = size
        self.lagBytes = lagBytes
        self.queued = queued
    }
}

/// A system call on a source file failed for a reason other than the file not existing.
public struct TailError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var errno: Int32

    public init(path: String, operation: String, errno: Int32) {
        self.path = path
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(path): \(operation): \(String(cString: strerror(errno)))" }
}

/// A line longer than the reader's `maxLineBytes`: only its start is kept, with its length and hash,
/// so that memory stays bounded however long it gets.
public struct LongLine: Sendable, Equatable {
    /// How many of the line's first bytes are kept.
    public static let keptBytes = 4096

    /// The first `keptBytes` bytes.
    public var head: [UInt8]
    /// The line's length in bytes, without its newline.
    public var length: Int64
    /// SHA-256 (lowercase hex) of the line's bytes, without its newline.
    public var sha256: String
    /// File offset of its first byte.
    public var offset: Int64
    /// Its line number.
    public var number: Int64
}

/// Streams a long line's bytes through SHA-256, keeping only its start.
struct LongLineBuilder {
    private var hasher = SHA256()
    private(set) var head: [UInt8] = []
    private(set) var length: Int64 = 0
    let offset: Int64
    let number: Int64

    init(offset: Int64, number: Int64) {
        self.offset = offset
        self.number = number
        head.reserveCapacity(LongLine.keptBytes)
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        if head.count < LongLine.keptBytes {
            head.append(contentsOf: bytes.prefix(LongLine.keptBytes - head.count))
        }
        hasher.update(bufferPointer: bytes)
        length += Int64(bytes.count)
    }

    func finish() -> LongLine {
        LongLine(head: head, length: length, sha256: hex(hasher.finalize()), offset: offset, number: number)
    }
}

func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(64)
    for b in digest {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

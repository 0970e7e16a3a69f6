import MeterCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Follows one source file across appends, rotations, truncation and restarts, handing out each
/// complete line once with a checkpoint that proves where it stands.
///
/// How files are followed:
/// - Each `read` stats the path (the authority; inotify only wakes the caller). A different inode
///   there is a new file: it is opened at once and queued behind the file being read, so a second
///   rotation cannot hide it.
/// - A rotated-away file (renamed, or deleted while open) is read to its end and kept open until a
///   newer file has data. The check for "newer file has data" is made *before* the old file's
///   final read, so a writer that wrote its last old line before its first new one (FreeSWITCH
///   before it reopens, Asterisk's append-per-CDR) is never cut short. There is no time-based
///   grace: while the new file is empty, nothing is lost by keeping the old one, however long.
/// - The same inode shorter than the read position (copytruncate), or whose first bytes or the 64
///   bytes before the read position changed, is read again from 0. Lines written into a file
///   between the last read and its truncation or deletion are lost: nothing can read them.
/// - On start with a checkpoint whose inode is not the file at the path, every regular file in the
///   same directory is checked for that device and inode (so `Master.csv.1`, `Master.csv-2026…`
///   and `Master-2026….csv` all count) and proven by its head and tail hashes; it is finished
///   from the checkpoint, then the file at the path is read from 0. A file rotated more than once
///   while the daemon was down, or moved to another directory, cannot be found: `.oldFileLost`.
///   Only proof that it is gone gives it up: no entry of the directory has its device, inode and
///   first bytes (or the directory itself no longer exists). A failure to list the directory or to
///   open or read a candidate (EMFILE, ENFILE, ENOMEM, EACCES, EIO…) throws, and the next `read`
///   looks again. Same device, inode and first bytes but different bytes before the offset is the
///   same file rewritten: it is read again from 0.
/// - A file that appears after start (or is missing at start) is read from 0; `startAt` only
///   applies to the file present at start when there is no checkpoint.
///
/// Used from one thread at a time. If committing a batch fails, make a new `Tailer` from the last
/// committed checkpoint. If `body` throws, `read` rethrows and the lines of that call are not
/// consumed: the next `read` delivers them again.
public final class Tailer {
    public let path: String
    private let startAt: StartAt
    private let resumeFrom: Checkpoint?
    private let chunkSize: Int
    private var started = false
    /// `files[0]` is read; the rest are newer files at the path, queued in the order they appeared.
    private var files: [TailFile] = []
    /// Finished files, closed once a checkpoint past them is committed.
    private var retired: [TailFile] = []
    private var pendingEvents: [TailEvent] = []
    private var pathMissing = false
    /// Device and inode of the file at the path when last stat'ed.
    private var atPath: (UInt64, UInt64)?
    private let lastSize: Int64?
    let system: TailSystem

    /// Does no throwing I/O: a missing file is waited for, and other errors surface from `read`.
    /// `chunkSize` is the read size (and initial buffer); a longer line grows the buffer.
    /// `lastSize` is the size of the checkpoint's file when the caller last saw it, if it knows: the
    /// bytes given up if that file cannot be found are counted from it.
    public convenience init(path: String, checkpoint: Checkpoint?, startAt: StartAt, chunkSize: Int = 256 * 1024,
                            lastSize: Int64? = nil) {
        self.init(path: path, checkpoint: checkpoint, startAt: startAt, chunkSize: chunkSize, lastSize: lastSize,
                  system: .live)
    }

    init(path: String, checkpoint: Checkpoint?, startAt: StartAt, chunkSize: Int = 256 * 1024,
         lastSize: Int64? = nil, system: TailSystem) {
        self.path = path
        self.resumeFrom = checkpoint
        self.startAt = startAt
        self.chunkSize = chunkSize
        self.lastSize = lastSize
        self.system = system
        var events: [TailEvent] = []
        if (try? start(&events)) != nil { pendingEvents = events }
    }

    // MARK: - Start

    private func start(_ events: inout [TailEvent]) throws {
        var found: [TailFile] = []
        var evs: [TailEvent] = []
        let current = try TailFile.openIfExists(path, chunkSize: chunkSize, system: system)
        if let cp = resumeFrom {
            if let f = current, f.device == cp.device, f.inode == cp.inode {
                let resumed = try f.resume(from: cp)
                if case .otherFile(let why) = resumed {
                    // The inode now holds other bytes (reused, or copytruncate while stopped): the
                    // checkpoint's file is nowhere, and what was appended to it after the checkpoint is lost.
                    evs.append(.oldFileLost(cp, reason: "was replaced at \(path) by a file that \(why)",
                                            unreadBytes: lastSize.map { max(0, $0 - cp.offset) }))
                }
                if let why = resumed.reason {
                    try f.reset()
                    evs.append(.truncated(path: path, inode: f.inode, previousOffset: cp.offset, reason: why))
                } else {
                    evs.append(.opened(path: path, inode: f.inode, offset: cp.offset))
                }
                found = [f]
            } else {
                let (old, why) = try findRotated(cp)
                if let old {
                    if let rewritten = why {
                        evs.append(.truncated(path: old.currentName, inode: old.inode, previousOffset: cp.offset,
                                              reason: rewritten))
                    } else {
                        evs.append(.resumedRotated(path: old.currentName, inode: old.inode, offset: cp.offset))
                    }
                    found = [old]
                    if let f = current {
                        try f.reset()
                        found.append(f)
                        evs.append(.rotated(from: old.currentName, to: path, oldInode: old.inode, newInode: f.inode))
                    }
                } else {
                    let unread = lastSize.map { max(0, $0 - cp.offset) }
                    evs.append(.oldFileLost(cp, reason: why ?? "was not found", unreadBytes: unread))
                    if let f = current {
                        try f.reset()
                        found = [f]
                        evs.append(.opened(path: path, inode: f.inode, offset: 0))
                    }
                }
            }
        } else if let f = current {
            switch startAt {
            case .beginning: try f.reset()
            case .end: try f.positionAtLastNewline()
            }
            found = [f]
            evs.append(.opened(path: path, inode: f.inode, offset: f.offset))
        }
        if current == nil {
            evs.append(.missing(path: path))
            pathMissing = true
        }
        atPath = current.map { ($0.device, $0.inode) }
        files = found
        started = true
        events += evs
    }

    /// The checkpoint's file under another name in the same directory: positioned at the checkpoint
    /// (nil reason), or read again from 0 when it was rewritten (the reason). When no entry has the
    /// file's identity, nil and why. Throws when the directory or a candidate cannot be read now.
    private func findRotated(_ cp: Checkpoint) throws -> (TailFile?, String?) {
        let (dir, base) = splitPath(path)
        guard let d = system.opendir(dir) else {
            let e = errno
            if e == ENOENT || e == ENOTDIR { return (nil, "cannot be found: \(dir) no longer exists") }
            throw TailError(path: dir, operation: "opendir", errno: e)
        }
        defer { closedir(d) }
        var candidates: [String] = []
        while true {
            // readdir returns nil both at the end and on error; only errno tells them apart.
            errno = 0
            guard let entry = readdir(d) else {
                let e = errno
                if e != 0 { throw TailError(path: dir, operation: "readdir", errno: e) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." || name == base { continue }
            let full = dir == "/" ? "/" + name : dir + "/" + name
            var st = stat()
            if stat(full, &st) != 0 {
                let e = errno
                // A failure that may pass could hide the file; one that will not (removed since it was
                // listed, a dangling or looping link) is no candidate.
                if [ENOMEM, EIO, EACCES, EMFILE, ENFILE, EINTR, EAGAIN].contains(e) {
                    throw TailError(path: full, operation: "stat", errno: e)
                }
                continue
            }
            guard (st.st_mode & S_IFMT) == S_IFREG,
                  UInt64(st.st_dev) == cp.device, UInt64(st.st_ino) == cp.inode else { continue }
            candidates.append(full)
        }
        for name in candidates {
            guard let f = try TailFile.openIfExists(name, chunkSize: chunkSize, system: system),
                  f.device == cp.device, f.inode == cp.inode else { continue }
            switch try f.resume(from: cp) {
            case .positioned: return (f, nil)
            case .otherFile: continue
            case .rewritten(let why):
                try f.reset()
                return (f, "was found as \(name) but \(why)")
            }
        }
        return (nil, "was not found in \(dir)")
    }

    // MARK: - Reading

    /// Reads up to `maxLines` complete lines available now, in order, all from one file, and calls
    /// `body(line without "\n", offset of its first byte, line number)` for each. Across a rotation
    /// the old file is drained to its end first, then the next file from 0 (in a later call when
    /// this one already delivered old lines). A partial last line is not delivered; the checkpoint
    /// stays at the last newline. `body` must not call back into the tailer; the buffer is only
    /// valid during the call.
    public func read(
        maxLines: Int, _ body: (UnsafeBufferPointer<UInt8>, Int64, Int64) throws -> Void
    ) throws -> TailBatch {
        try read(maxLines: maxLines, maxLineBytes: .max, body, longLine: { _ in })
    }

    /// `read(maxLines:_:)`, with a line longer than `maxLineBytes` handed to `longLine` (its first
    /// 4 KiB, length and SHA-256) in its place: it counts as one of the `maxLines`, and its bytes are
    /// hashed as they arrive rather than buffered, also while it is still being written.
    public func read(
        maxLines: Int, maxLineBytes: Int, _ body: (UnsafeBufferPointer<UInt8>, Int64, Int64) throws -> Void,
        longLine: (LongLine) throws -> Void
    ) throws -> TailBatch {
        var events = pendingEvents
        pendingEvents = []
        var rollback: (file: TailFile, offset: Int64, line: Int64)?
        do {
            if !started { try start(&events) }
            try refresh(&events)
            guard var f = files.first else {
                return TailBatch(checkpoint: nil, lines: 0, events: events, path: path, more: false)
            }
            rollback = (f, f.offset, f.line)
            var delivered = 0
            var more = false
            while delivered < maxLines {
                // Looked at before the final read of `f`: a writer that moved on to a newer file
                // wrote its last bytes into `f` before this.
                var successorReady = false
                for next in files.dropFirst() where try next.size() > 0 {
                    successorReady = true
                    break
                }
                delivered += try f.deliver(limit: maxLines - delivered, maxLineBytes: maxLineBytes, body, longLine: longLine)
                if delivered >= maxLines {
                    more = try f.hasMore() || successorReady
                    break
                }
                guard successorReady else { break }
                if f.hasPartialLine {
                    events.append(.unterminatedLine(path: f.currentName, offset: f.offset))
                    delivered += try f.deliverRemainder(body, longLine: longLine)
                }
                if delivered > 0 {
                    // One batch, one file: the switch waits for the next call.
                    more = true
                    break
                }
                let old = files.removeFirst()
                f = files[0]
                try f.reset()
                events.append(.switched(from: old.currentName, to: name(of: f), inode: f.inode))
                retire(old)
                rollback = (f, 0, 0)
            }
            let cp = try f.checkpoint()
            return TailBatch(checkpoint: cp, lines: delivered, events: events, path: name(of: f), more: more)
        } catch {
            if let r = rollback { r.file.position(offset: r.offset, line: r.line) }
            pendingEvents = events + pendingEvents
            throw error
        }
    }

    /// The position now, covering every line delivered so far; nil while no file exists. Right after
    /// `init` it is where reading will start (with `startAt: .end`, commit it at once: otherwise a
    /// crash before the first batch would move "the end" past lines written meanwhile).
    public var checkpoint: Checkpoint? {
        get throws {
            if !started {
                var events: [TailEvent] = []
                try start(&events)
                pendingEvents += events
            }
            return try files.first?.checkpoint()
        }
    }

    /// Goes back to `checkpoint`, the last one committed, after a batch whose charges did not commit,
    /// keeping every file open: a rotated-away file is read again from there even if it was deleted
    /// or could not be found by name meanwhile. False when no open file is the checkpoint's: make a
    /// new `Tailer` from it instead.
    public func rewind(to checkpoint: Checkpoint?) -> Bool {
        guard let cp = checkpoint, started else { return false }
        func isIt(_ f: TailFile) -> Bool { f.device == cp.device && f.inode == cp.inode }
        if let i = files.firstIndex(where: isIt) {
            files.removeFirst(i)
        } else if let i = retired.lastIndex(where: isIt) {
            let f = retired.remove(at: i)
            files.insert(f, at: 0)
        } else {
            return false
        }
        files[0].position(offset: cp.offset, line: cp.line)
        return true
    }

    /// The caller committed `checkpoint`: finished files it no longer points into are closed.
    public func committed(_ checkpoint: Checkpoint) {
        retired.removeAll { $0.device != checkpoint.device || $0.inode != checkpoint.inode }
    }

    /// Where the tailer stands now (a few system calls; call it from the reading thread).
    public var status: TailStatus {
        guard let f = files.first else {
            return TailStatus(path: path, file: nil, inode: nil, offset: 0, line: 0, size: 0, lagBytes: 0, queued: 0)
        }
        let size = (try? f.size()) ?? f.offset
        var lag = max(0, size - f.offset)
        for next in files.dropFirst() { lag += (try? next.size()) ?? 0 }
        return TailStatus(path: path, file: name(of: f), inode: f.inode, offset: f.offset, line: f.line,
                          size: size, lagBytes: lag, queued: files.count - 1)
    }

    /// The read buffer's size now, for tests of the memory bound.
    var bufferCapacity: Int { files.first?.capacity ?? 0 }

    private func name(of f: TailFile) -> String {
        if let (d, i) = atPath, d == f.device, i == f.inode { return path }
        return f.currentName
    }

    private func retire(_ f: TailFile) {
        retired.append(f)
        // A caller that never reports commits must not leak descriptors.
        if retired.count > 4 { retired.removeFirst() }
    }

    /// Looks at the path (new file, missing file) and checks the file being read is still the same bytes.
    private func refresh(_ events: inout [TailEvent]) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            pathMissing = false
            let id = (UInt64(st.st_dev), UInt64(st.st_ino))
            if !files.contains(where: { $0.device == id.0 && $0.inode == id.1 }) {
                if let f = try TailFile.openIfExists(path, chunkSize: chunkSize, system: system),
                   !files.contains(where: { $0.device == f.device && $0.inode == f.inode }) {
                    if let last = files.last {
                        events.append(.rotated(from: last.currentName, to: path, oldInode: last.inode, newInode: f.inode))
                        files.append(f)
                    } else {
                        try f.reset()
                        files = [f]
                        events.append(.opened(path: path, inode: f.inode, offset: 0))
                    }
                    atPath = (f.device, f.inode)
                }
            } else {
                atPath = id
            }
        } else {
            let e = errno
            guard e == ENOENT || e == ENOTDIR else { throw TailError(path: path, operation: "stat", errno: e) }
            atPath = nil
            if !pathMissing {
                pathMissing = true
                events.append(.missing(path: path))
            }
        }
        guard let f = files.first else { return }
        let size = try f.size()
        let was = f.offset
        if size < f.readPos {
            try f.reset()
            events.append(.truncated(path: name(of: f), inode: f.inode, previousOffset: was,
                                     reason: "is shorter than the read position"))
        } else if size > f.readPos {
            if try !f.extendHead(verify: true) {
                try f.reset()
                events.append(.truncated(path: name(of: f), inode: f.inode, previousOffset: was,
                                         reason: "starts with different bytes"))
            } else if try !f.windowMatches() {
                try f.reset()
                events.append(.truncated(path: name(of: f), inode: f.inode, previousOffset: was,
                                         reason: "has different bytes before the read position"))
            }
        }
    }
}

/// Directory and last component of a path ("." when it has no slash).
func splitPath(_ path: String) -> (dir: String, base: String) {
    guard let slash = path.lastIndex(of: "/") else { return (".", path) }
    let dir = String(path[..<slash])
    return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
}

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wakes a waiting loop soon after a source's directory changes (inotify), or after the timeout
/// anyway: the tailer's stat is the authority, inotify only cuts the latency.
///
/// Each path's directory is watched; only entries whose name starts with the path's stem (the file
/// name up to its first dot: "Master" for Master.csv, so Master.csv.1 and Master-20260101.csv count
/// too) wake waiters, so a busy directory such as /var/log costs nothing. A directory that does not
/// exist yet is retried at every `wait` (until then only the timeout wakes). A change that happens
/// while nobody waits is remembered, so the next `wait` returns true at once. inotify is read on a
/// dedicated thread, never on a Swift concurrency thread.
public final class ChangeWatcher: Sendable {
    /// inotify could not be set up (for example the per-user instance or watch limit is reached).
    public struct SetupError: Error, Sendable, CustomStringConvertible {
        public var path: String
        public var errno: Int32
        public var description: String { "watching \(path): \(String(cString: strerror(errno)))" }
    }

    private let core: WatcherCore

    public init(paths: [String]) throws {
        core = try WatcherCore(paths: paths)
        let c = core
        let thread = Thread { c.run() }
        thread.name = "creditmeter-inotify"
        thread.start()
    }

    deinit { core.shutdown() }

    /// True when woken by a change (possibly one already seen by the caller), false after `timeout`,
    /// on cancellation (promptly), or once closed.
    public func wait(timeout: Duration) async -> Bool { await core.wait(timeout) }

    /// Stops watching; pending and later waits return false (later ones after their timeout).
    public func close() { core.shutdown() }

    /// File names of the directory events read so far and whether each woke the watcher, in the
    /// order inotify gave them: a test proves an event was read and ignored by a later one that woke it.
    var eventNames: [(name: String, woke: Bool)] { core.recordedNames() }
}

/// The watcher's state, shared with its thread; every mutable field is guarded by `lock`.
final class WatcherCore: @unchecked Sendable {
    private struct Watch {
        var dir: String
        var wd: Int32
        var stems: [[UInt8]]
    }

    private enum Slot {
        case arming
        case cancelled
        case waiting(CheckedContinuation<Bool, Never>, ContinuousClock.Instant)
    }

    private let lock = NSLock()
    private let inotifyFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private var watches: [Watch]
    private var slots: [UInt64: Slot] = [:]
    private var nextID: UInt64 = 0
    private var pendingChange = false
    /// For tests (see `ChangeWatcher.eventNames`); kept to the first 1,000 events.
    private var eventNames: [(name: String, woke: Bool)] = []
    func recordedNames() -> [(name: String, woke: Bool)] { lock.withLock { eventNames } }
    private var closed = false
    private var fdsClosed = false
    private static let mask: UInt32 = UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE
        | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

    init(paths: [String]) throws {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw ChangeWatcher.SetupError(path: paths.first ?? "", errno: errno) }
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ChangeWatcher.SetupError(path: "wake-up pipe", errno: e)
        }
        for p in pipeFDs {
            _ = fcntl(p, F_SETFL, fcntl(p, F_GETFL) | O_NONBLOCK)
            _ = fcntl(p, F_SETFD, FD_CLOEXEC)
        }
        inotifyFD = fd
        wakeRead = pipeFDs[0]
        wakeWrite = pipeFDs[1]
        var byDir: [String: [[UInt8]]] = [:]
        var order: [String] = []
        for p in paths {
            let (dir, base) = splitPath(p)
            let stem = base.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? base
            if byDir[dir] == nil { order.append(dir) }
            byDir[dir, default: []].append(Array((stem.isEmpty ? base : stem).utf8))
        }
        watches = order.map { Watch(dir: $0, wd: -1, stems: byDir[$0] ?? []) }
        for i in watches.indices {
            let wd = inotify_add_watch(fd, watches[i].dir, Self.mask)
            if wd >= 0 {
                watches[i].wd = wd
            } else if errno != ENOENT && errno != ENOTDIR {
                let e = errno
                Glibc.close(fd)
                Glibc.close(wakeRead)
                Glibc.close(wakeWrite)
                throw ChangeWatcher.SetupError(path: watches[i].dir, errno: e)
            }
        }
    }

    // MARK: - Waiting (any task)

    func wait(_ timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        let id: UInt64? = lock.withLock {
            if closed { return nil }
            addMissingWatches()
            nextID += 1
            slots[nextID] = .arming
            return nextID
        }
        guard let id else {
            try? await Task.sleep(until: deadline, clock: .continuous)
            return false
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let now: Bool? = lock.withLock {
                    guard case .arming = slots[id] else {
                        slots[id] = nil
                        return false  // cancelled before it could wait
                    }
                    if closed {
                        slots[id] = nil
                        return false
                    }
                    if pendingChange {
                        pendingChange = false
                        slots[id] = nil
                        return true
                    }
                    slots[id] = .waiting(c, deadline)
                    poke()  // the thread recomputes its poll timeout
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let c: CheckedContinuation<Bool, Never>? = lock.withLock {
                switch slots[id] {
                case .arming:
                    slots[id] = .cancelled
                    return nil
                case .waiting(let c, _):
                    slots[id] = nil
                    return c
                case .cancelled, nil:
                    return nil
                }
            }
            c?.resume(returning: false)
        }
    }

    /// Called with the lock held.
    private func addMissingWatches() {
        for i in watches.indices where watches[i].wd < 0 {
            let wd = inotify_add_watch(inotifyFD, watches[i].dir, Self.mask)
            if wd >= 0 {
                watches[i].wd = wd
                // The file may have been written before the watch existed.
                pendingChange = true
            }
        }
    }

    /// Called with the lock held, so the pipe cannot be closed underneath.
    private func poke() {
        guard !fdsClosed else { return }
        var b: UInt8 = 1
        _ = Glibc.write(wakeWrite, &b, 1)
    }

    func shutdown() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            poke()
        }
    }

    // MARK: - The watcher thread

    func run() {
        let bufSize = 64 * 1024
        let buf = UnsafeMutableRawPointer.allocate(byteCount: bufSize, alignment: 8)
        defer { buf.deallocate() }
        var fds = [pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        while true {
            let timeoutMS: Int32 = lock.withLock {
                if closed { return -2 }
                var earliest: ContinuousClock.Instant?
                for case .waiting(_, let d) in slots.values where earliest.map({ d < $0 }) ?? true { earliest = d }
                guard let earliest else { return -1 }
                let left = ContinuousClock.now.duration(to: earliest)
                if left <= .zero { return 0 }
                let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1
                return Int32(clamping: ms)
            }
            if timeoutMS == -2 { break }
            fds[0].revents = 0
            fds[1].revents = 0
            let r = poll(&fds, 2, timeoutMS)
            if r < 0 && errno != EINTR { break }
            if fds[1].revents != 0 {
                while Glibc.read(wakeRead, buf, bufSize) > 0 {}
            }
            var changed = false
            if fds[0].revents != 0 { changed = drainInotify(buf, bufSize) }
            let now = ContinuousClock.now
            var toResume: [(CheckedContinuation<Bool, Never>, Bool)] = []
            lock.withLock {
                var anyWaiting = false
                for (id, slot) in slots {
                    guard case .waiting(let c, let d) = slot else { continue }
                    anyWaiting = true
                    if changed {
                        toResume.append((c, true))
                        slots[id] = nil
                    } else if d <= now {
                        toResume.append((c, false))
                        slots[id] = nil
                    }
                }
                if changed && !anyWaiting { pendingChange = true }
            }
            for (c, v) in toResume { c.resume(returning: v) }
        }
        let left: [CheckedContinuation<Bool, Never>] = lock.withLock {
            let cs = slots.values.compactMap { slot -> CheckedContinuation<Bool, Never>? in
                if case .waiting(let c, _) = slot { return c }
                return nil
            }
            slots = slots.filter { if case .waiting = $0.value { return false } else { return true } }
            fdsClosed = true
            Glibc.close(inotifyFD)
            Glibc.close(wakeRead)
            Glibc.close(wakeWrite)
            return cs
        }
        for c in left { c.resume(returning: false) }
    }

    /// Reads every queued inotify event; true when one concerns a watched file (or a watch was lost).
    private func drainInotify(_ buf: UnsafeMutableRawPointer, _ size: Int) -> Bool {
        var changed = false
        let header = MemoryLayout<inotify_event>.size
        while true {
            let n = Glibc.read(inotifyFD, buf, size)
            if n <= 0 { break }
            var at = 0
            while at + header <= n {
                let wd = buf.load(fromByteOffset: at, as: Int32.self)
                let mask = buf.load(fromByteOffset: at + 4, as: UInt32.self)
                let len = Int(buf.load(fromByteOffset: at + 12, as: UInt32.self))
                let nameStart = buf + at + header
                let nameLen = len > 0 ? strnlen(nameStart.assumingMemoryBound(to: CChar.self), len) : 0
                at += header + len
                if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    changed = true
                    continue
                }
                lock.withLock {
                    guard let i = watches.firstIndex(where: { $0.wd == wd }) else { return }
                    if mask & UInt32(IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF) != 0 {
                        // The directory went away: retry adding it at the next wait.
                        if mask & UInt32(IN_IGNORED) != 0 { watches[i].wd = -1 }
                        changed = true
                        return
                    }
                    let name = UnsafeRawBufferPointer(start: nameStart, count: nameLen)
                    let woke = watches[i].stems.contains { name.starts(with: $0) }
                    if eventNames.count < 1_000 { eventNames.append((String(decoding: name, as: UTF8.self), woke)) }
                    if woke { changed = true }
                }
            }
        }
        return changed
    }
}

import Foundation
import Testing
import TestSupport
import CDRSource
import MeterCore
#if canImport(Glibc)
import Glibc
#endif

/// A writer, logrotate and a crashing daemon driven by a seeded PRNG, checked against the lines written.
///
/// What the model allows is what real writers and rotations do; the tailer's limits are kept out:
/// - After a rename the writer may keep appending to the renamed file (FreeSWITCH until it
///   reopens) but, once it writes to the new file, never to the old one again.
/// - A line is always finished in the file it was started in.
/// - copytruncate and delete only happen once every written line is committed: lines written into a
///   file between the tailer's last read and its truncation or deletion are lost by design (nothing
///   can read them; logrotate's own copytruncate race is out of scope).
/// - A rename rotation only happens once a checkpoint on the file at the path is committed, so
///   at most one rotated file lies between the committed checkpoint and the path (a file rotated
///   twice while the daemon is down cannot be found).
/// A "crash" drops the batch just read without committing it and starts a new tailer from the last
/// committed checkpoint, as the daemon does after a restart.
final class TailModel {
    let dir: TempDir
    let path: String
    var rng: SplitMix64
    var tailer: Tailer
    let chunkSize = 4096
    var written: [String] = []
    var committed: [String] = []
    var lastCP: Checkpoint?
    /// Bumped whenever the path gets new content from 0 (new file, or truncated).
    var pathGeneration = 0
    /// The generation of the path's file that the committed checkpoint is on, if it is on it.
    var checkpointGeneration: Int?
    var target: String
    var partial: (line: String, rest: String)?
    var seq = 0
    var rotations = 0
    var log: [String] = []
    var failure: String?
    var counts: [String: Int] = [:]

    init(seed: UInt64) throws {
        dir = try TempDir()
        path = dir.file("Master.csv")
        target = path
        rng = SplitMix64(seed: seed)
        tailer = Tailer(path: path, checkpoint: nil, startAt: .beginning, chunkSize: chunkSize)
    }

    var exists: Bool { inode(path) != nil }
    var allCommitted: Bool { committed.count == written.count }

    func note(_ op: String) {
        log.append(op)
        counts[String(op.prefix(while: { $0 != " " })), default: 0] += 1
    }

    func newLine() -> String {
        seq += 1
        let length = rng.chance(3) ? 4000 + rng.below(6000) : rng.below(70)
        var bytes = Array("L\(seq)-".utf8)
        for _ in 0..<length { bytes.append(UInt8(97 + rng.below(26))) }
        if rng.chance(5) { bytes.append(0x0D) }  // a CRLF line keeps its "\r"
        return String(decoding: bytes, as: UTF8.self)
    }

    func write(_ text: String) throws {
        if target == path && !exists { pathGeneration += 1 }
        // Sometimes in two writes, so the tailer may see any prefix.
        let bytes = Array(text.utf8)
        if bytes.count > 1 && rng.chance(30) {
            let cut = 1 + rng.below(bytes.count - 1)
            try append(target, String(decoding: bytes[..<cut], as: UTF8.self))
            if rng.chance(50) { try read(commit: true) }
            try append(target, String(decoding: bytes[cut...], as: UTF8.self))
        } else {
            try append(target, text)
        }
    }

    func finishPartial() throws {
        guard let p = partial else { return }
        partial = nil
        written.append(p.line)
        try write(p.rest + "\n")
    }

    func read(commit: Bool) throws {
        let max = 1 + rng.below(30)
        let (got, batch) = try readBatch(tailer, max: max)
        for (a, b) in zip(got, got.dropFirst()) where b.number != a.number + 1 || b.offset != a.offset + Int64(a.text.utf8.count) + 1 {
            failure = failure ?? "lines \(a.number)@\(a.offset) and \(b.number)@\(b.offset) are not consecutive"
        }
        guard commit else {
            note("crash (dropped \(got.count))")
            tailer = Tailer(path: path, checkpoint: lastCP, startAt: .beginning, chunkSize: chunkSize)
            return
        }
        committed += got.map(\.text)
        if let cp = batch.checkpoint {
            lastCP = cp
            tailer.committed(cp)
            checkpointGeneration = cp.inode == inode(path) ? pathGeneration : nil
        }
        note("read \(got.count)/\(max)\(batch.events.isEmpty ? "" : " " + batch.events.map(\.description).joined(separator: "; "))")
        if committed.count > written.count || Array(written.prefix(committed.count)) != committed {
            let at = (0..<min(committed.count, written.count)).first { committed[$0] != written[$0] } ?? min(committed.count, written.count)
            failure = failure ?? "after \(log.count) ops, delivered line #\(at) is \(committed.count > at ? String(committed[at].prefix(12)) : "-") but written is \(written.count > at ? String(written[at].prefix(12)) : "-")"
        }
    }

    func step() throws {
        switch rng.below(100) {
        case 0..<28:
            try finishPartial()
            var text = ""
            for _ in 0..<(1 + rng.below(4)) {
                let l = newLine()
                written.append(l)
                text += l + "\n"
            }
            note("append \(text.utf8.count) bytes to \(target.split(separator: "/").last ?? "")")
            try write(text)
        case 28..<36:
            guard partial == nil else { return }
            let l = newLine()
            let bytes = Array(l.utf8)
            let cut = 1 + rng.below(bytes.count)
            partial = (l, String(decoding: bytes[cut...], as: UTF8.self))
            note("partial \(cut) bytes")
            try write(String(decoding: bytes[..<cut], as: UTF8.self))
        case 36..<64:
            try read(commit: true)
        case 64..<68:
            try read(commit: false)
        case 68..<72:
            note("restart")
            tailer = Tailer(path: path, checkpoint: lastCP, startAt: .beginning, chunkSize: chunkSize)
        case 72..<79:
            guard target == path, exists, checkpointGeneration == pathGeneration else { return }
            rotations += 1
            let old = path + ".\(rotations)"
            #expect(rename(path, old) == 0)
            checkpointGeneration = nil
            target = old
            let create = rng.chance(50)
            if create {
                try append(path, "")
                pathGeneration += 1
            }
            note("rotate to \(old.split(separator: "/").last ?? "")\(create ? " + create" : "")")
        case 79..<86:
            guard target != path, partial == nil else { return }
            note("reopen")
            target = path
        case 86..<90:
            guard partial == nil, target == path, exists, try catchUp() else { return }
            rotations += 1
            try FileManager.default.copyItem(atPath: path, toPath: path + ".c\(rotations)")
            #expect(truncate(path, 0) == 0)
            pathGeneration += 1
            note("copytruncate")
        case 90..<95:
            guard partial == nil, target == path, exists, try catchUp() else { return }
            #expect(unlink(path) == 0)
            checkpointGeneration = nil
            let create = rng.chance(50)
            if create {
                try append(path, "")
                pathGeneration += 1
            }
            note("delete\(create ? " + create" : "")")
        default:
            guard target == path, checkpointGeneration == pathGeneration else { return }
            let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != "Master.csv" }
            for n in names { try FileManager.default.removeItem(atPath: dir.file(n)) }
            note("purge \(names.count)")
        }
    }

    /// Reads and commits until every written line is committed (logrotate runs on a caught-up tailer).
    func catchUp() throws -> Bool {
        for _ in 0..<50 where !allCommitted && failure == nil { try read(commit: true) }
        return allCommitted && failure == nil
    }

    func finish() throws {
        try finishPartial()
        var idle = 0
        while idle < 3 && failure == nil {
            let before = committed.count
            try read(commit: true)
            idle = committed.count == before ? idle + 1 : 0
        }
    }
}

@Suite("Tailer model")
struct TailerModelTests {
    @Test("random appends, partial lines, rotations, truncations, re-creations, reads, crashes and restarts: every line once, in order",
          arguments: Array(1...12) as [UInt64])
    func model(seed: UInt64) throws {
        let m = try TailModel(seed: seed)
        for _ in 0..<500 where m.failure == nil { try m.step() }
        try m.finish()
        #expect(m.failure == nil, "\(m.failure ?? "")\n\(m.log.suffix(25).joined(separator: "\n"))")
        #expect(m.committed.count == m.written.count)
        #expect(m.committed == m.written)
        // The run must have exercised what it claims to.
        for op in ["append", "partial", "read", "crash", "restart", "rotate", "reopen", "copytruncate", "delete"] {
            #expect(m.counts[op, default: 0] > 0, "seed \(seed) never did \(op): \(m.counts)")
        }
    }
}

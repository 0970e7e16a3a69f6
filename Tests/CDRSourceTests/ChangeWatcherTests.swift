import Foundation
import Testing
@testable import CDRSource

@Suite("ChangeWatcher")
struct ChangeWatcherTests {
    @Test("an append in the watched directory wakes a waiter well before its timeout")
    func wakesOnAppend() async throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, "a\n")
        let watcher = try ChangeWatcher(paths: [path])
        defer { watcher.close() }
        let writer = Task {
            try await Task.sleep(for: .milliseconds(150))
            try append(path, "b\n")
        }
        let start = ContinuousClock.now
        let woke = await watcher.wait(timeout: .seconds(10))
        let took = ContinuousClock.now - start
        try await writer.value
        #expect(woke)
        #expect(took < .seconds(9), "woken by the change, not the 10 s timeout")
        #expect(took >= .milliseconds(100))
    }

    @Test("with no change, wait returns false after its timeout")
    func timesOut() async throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, "a\n")
        let watcher = try ChangeWatcher(paths: [path])
        defer { watcher.close() }
        let start = ContinuousClock.now
        let woke = await watcher.wait(timeout: .milliseconds(300))
        let took = ContinuousClock.now - start
        #expect(!woke)
        #expect(took >= .milliseconds(290))
        #expect(took < .seconds(10), "returns at its timeout, not never")
    }

    @Test("writes to unrelated files in the same directory do not wake it; a rotated name does")
    func filtersByName() async throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        try append(path, "a\n")
        let watcher = try ChangeWatcher(paths: [path])
        defer { watcher.close() }
        // The unrelated write's events are queued before the rotated name's, so once the rotated name
        // has woken the watcher they have been read: each says whether it woke it.
        try append(dir.file("1001.csv"), "per-account copy\n")
        try append(dir.file("Master.csv.1"), "late line\n")
        #expect(await watcher.wait(timeout: .seconds(10)))
        let names = watcher.eventNames
        #expect(names.contains { $0.name == "1001.csv" }, "the unrelated write was read: \(names)")
        #expect(names.filter { $0.name == "1001.csv" }.allSatisfy { !$0.woke }, "and did not wake it: \(names)")
        #expect(names.contains { $0.name == "Master.csv.1" && $0.woke }, "the rotated name did: \(names)")
    }

    @Test("a change while nobody waits makes the next wait return at once")
    func remembersChange() async throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let watcher = try ChangeWatcher(paths: [path])
        defer { watcher.close() }
        try append(path, "a\n")
        try await Task.sleep(for: .milliseconds(200))
        let start = ContinuousClock.now
        #expect(await watcher.wait(timeout: .seconds(10)))
        #expect(ContinuousClock.now - start < .milliseconds(500))
        // One append is several inotify events; let any straggler be consumed too.
        try await Task.sleep(for: .milliseconds(100))
        _ = await watcher.wait(timeout: .milliseconds(1))
        // Consumed: the next wait times out.
        #expect(await watcher.wait(timeout: .milliseconds(200)) == false)
    }

    @Test("cancelling the waiting task returns promptly with false")
    func cancellation() async throws {
        let dir = try TempDir()
        let watcher = try ChangeWatcher(paths: [dir.file("Master.csv")])
        defer { watcher.close() }
        let waiter = Task { await watcher.wait(timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(100))
        let start = ContinuousClock.now
        waiter.cancel()
        let woke = await waiter.value
        #expect(!woke)
        #expect(ContinuousClock.now - start < .seconds(9))
        // An already-cancelled task does not wait either.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await watcher.wait(timeout: .seconds(60))
        }
        #expect(await early.value == false)
    }

    @Test("a directory that does not exist yet is watched once it appears")
    func missingDirectory() async throws {
        let dir = try TempDir()
        let sub = dir.file("cdr-csv")
        let path = sub + "/Master.csv"
        let watcher = try ChangeWatcher(paths: [path])
        defer { watcher.close() }
        #expect(await watcher.wait(timeout: .milliseconds(150)) == false)
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: false)
        // The first wait adds the watch and reports a possible change at once (a file may predate it).
        #expect(await watcher.wait(timeout: .seconds(5)))
        let writer = Task {
            try await Task.sleep(for: .milliseconds(100))
            try append(path, "a\n")
        }
        let start = ContinuousClock.now
        #expect(await watcher.wait(timeout: .seconds(10)))
        #expect(ContinuousClock.now - start < .seconds(9))
        try await writer.value
    }

    @Test("close wakes a waiter with false")
    func closeWakes() async throws {
        let dir = try TempDir()
        let watcher = try ChangeWatcher(paths: [dir.file("Master.csv")])
        let waiter = Task { await watcher.wait(timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(100))
        let start = ContinuousClock.now
        watcher.close()
        #expect(await waiter.value == false)
        #expect(ContinuousClock.now - start < .seconds(9))
    }

    @Test("many waits and wake-ups in a row never lose one")
    func manyWakeUps() async throws {
        let dir = try TempDir()
        let path = dir.file("Master.csv")
        let watcher = try ChangeWatcher(paths: [path])
        defer { watcher.close() }
        for i in 0..<30 {
            let writer = Task {
                try await Task.sleep(for: .milliseconds(5))
                try append(path, "\(i)\n")
            }
            #expect(await watcher.wait(timeout: .seconds(10)))
            try await writer.value
        }
    }
}

import Foundation

/// A condition a test waited for did not come true in time.
public struct WaitTimeout: Error, CustomStringConvertible {
    public var what: String
    public var seconds: TimeInterval
    /// What the condition last saw, when it says.
    public var last: String?
    public var description: String {
        "timed out after \(seconds) s waiting for \(what)" + (last.map { " (last seen: \($0))" } ?? "")
    }
}

/// Polls `condition` until it holds, or throws `WaitTimeout` naming `what` once `timeout` has passed:
/// a test waits for what it needs, never for a fixed time.
public func eventually(_ what: String, timeout: TimeInterval = 20, every: TimeInterval = 0.05,
                       _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return }
        if Date() >= deadline { throw WaitTimeout(what: what, seconds: timeout) }
        Thread.sleep(forTimeInterval: every)
    }
}

/// `eventually` for async tests: the waiting suspends rather than blocking a thread.
public func eventuallyAsync(_ what: String, timeout: TimeInterval = 20, every: TimeInterval = 0.05,
                            _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try await condition() { return }
        if Date() >= deadline { throw WaitTimeout(what: what, seconds: timeout) }
        try await Task.sleep(for: .milliseconds(Int(every * 1000)))
    }
}

/// `eventually` for helpers that report rather than throw: true as soon as `condition` holds, false
/// once `timeout` has passed without it.
public func holds(within timeout: TimeInterval, every: TimeInterval = 0.02, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        Thread.sleep(forTimeInterval: every)
    }
}

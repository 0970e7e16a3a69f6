import Foundation

/// samples/webhook-receiver.py on 127.0.0.1, on a port it picks; stopped (by its pid) in `stop()`.
public final class PythonReceiver: @unchecked Sendable {
    public let process = Process()
    let stdin = Pipe()
    public let logPath: String
    public let url: String

    public static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("samples/webhook-receiver.py").path
    }

    public init(dir: URL, name: String, secret: String, extra: [String] = []) throws {
        logPath = dir.appendingPathComponent("\(name).jsonl").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", PythonReceiver.script, "--secret", secret, "--host", "127.0.0.1", "--port", "0",
                             "--log", logPath, "--quiet", "--exit-on-stdin-eof"] + extra
        let out = Pipe()
        process.standardOutput = out
        // Held open by this process: should the test process die without stop(), the receiver sees EOF and exits.
        process.standardInput = stdin
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // The first line names the port it bound.
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("listening on ") else {
            process.terminate()
            throw TestFailure("the receiver did not start: '\(text)'")
        }
        url = String(text.dropFirst("listening on ".count))
    }

    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Every line logged so far: accepted events and repeats.
    public func received() -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    /// Waits until `count` distinct ids have arrived, or throws after `seconds`.
    public func waitFor(count: Int, seconds: Double = 30) async throws -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let got = received()
            if Set(got.compactMap { $0["id"] as? String }).count >= count { return got }
            if Date() > deadline { throw TestFailure("only \(got.count) of \(count) events arrived in \(seconds) s") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}


/// A failure a test helper reports with a sentence.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

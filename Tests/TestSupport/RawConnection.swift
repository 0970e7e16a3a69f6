import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection to 127.0.0.1, for tests that must send what no HTTP client would: nothing
/// at all, a header one byte at a time, a body that never ends. Every wait has a deadline.
public final class RawConnection {
    public let fd: Int32
    /// Bytes read so far, across calls.
    public private(set) var received: [UInt8] = []
    /// True once the server closed (EOF) or reset the connection.
    public private(set) var closedByPeer = false

    public init(port: Int) throws {
        // Connected before `self` exists: a failed connect then leaves no object whose deinit would
        // close the descriptor a second time (by then, maybe another thread's new socket).
        fd = try Self.connected(port: port)
    }

    private static func connected(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: e) ?? .ECONNREFUSED)
        }
        return fd
    }

    deinit { close(fd) }

    /// Sends everything; false when the server has closed or reset the connection.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                closedByPeer = true
                return false
            }
            off += n
        }
        return true
    }

    @discardableResult
    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Reads until `done(received)` holds, the peer closes, or `timeout` passes; true if `done` held.
    @discardableResult
    public func read(timeout: TimeInterval, until done: ([UInt8]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !done(received) {
            if closedByPeer { return false }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return false }
            pump(milliseconds: Int32(min(left * 1000, 1000)) + 1)
        }
        return true
    }

    /// Waits for the server to close the connection; true if it did within `timeout`.
    public func waitForClose(timeout: TimeInterval) -> Bool {
        read(timeout: timeout) { _ in false }
        return closedByPeer
    }

    /// Reads whatever is ready within `milliseconds`, noting EOF or a reset.
    public func pump(milliseconds: Int32) {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&p, 1, milliseconds)
        guard r > 0 else { return }
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { received += buf[0 ..< n] } else if n == 0 || (errno != EINTR && errno != EAGAIN) { closedByPeer = true }
    }

    /// What was received, as text.
    public var text: String { String(decoding: received, as: UTF8.self) }
}

import CCurl
import Foundation

/// The answer to one POST, or why there was none.
public struct HTTPOutcome: Sendable, Equatable {
    /// The HTTP status; nil when the transfer failed before one arrived.
    public var status: Int?
    /// The CURLcode (0 when the transfer completed).
    public var curlCode: Int32
    /// libcurl's description of a failure; empty on success.
    public var curlMessage: String
    /// The `Retry-After` header of the answer, as sent.
    public var retryAfter: String?
    /// The start of the answer's body, for the dead letter's error text.
    public var bodyPrefix: String
    /// The transfer was cut short because the service is stopping: nothing is known about delivery.
    public var aborted: Bool
}

/// A set-once flag the delivery threads check, also from libcurl's progress callback.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
}

/// A blocking HTTP client over one libcurl easy handle, kept alive between requests so the connection is
/// reused. Not thread-safe: each endpoint's sender thread owns one. Never used on the Swift cooperative pool,
/// as `curl_easy_perform` blocks for up to the timeout.
final class CurlClient {
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let sink = ResponseSink()
    private let userAgent: String
    private let stop: StopFlag

    /// The most of an answer's body that is kept.
    static let bodyLimit = 512

    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    init(userAgent: String, stop: StopFlag) throws(DeliveryError) {
        guard CurlClient.globalInit == CURLE_OK else { throw .curl("curl_global_init failed") }
        guard let h = curl_easy_init() else { throw .curl("curl_easy_init failed") }
        handle = h
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        self.userAgent = userAgent
        self.stop = stop
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// POSTs `body` to `url` with `headers` (`Name: value` lines) and waits for the answer or `timeoutMs`.
    func post(url: String, headers: [String], body: [UInt8], timeoutMs: Int) -> HTTPOutcome {
        sink.reset()
        errorBuffer[0] = 0
        var list: UnsafeMutablePointer<curl_slist>?
        // Standard Webhooks bodies are small: curl's Expect: 100-continue would only add a round trip.
        defer { curl_slist_free_all(list) }
        for line in headers + ["Content-Type: application/json", "Expect:"] {
            guard let appended = curl_slist_append(list, line) else {
                // Sending without, say, the signature would only earn a dead letter: fail and retry instead.
                return HTTPOutcome(status: nil, curlCode: Int32(bitPattern: CURLE_OUT_OF_MEMORY.rawValue),
                                   curlMessage: "out of memory building the request headers", retryAfter: nil,
                                   bodyPrefix: "", aborted: false)
            }
            list = appended
        }

        let h = handle
        var setupFailed: CURLcode = CURLE_OK
        func check(_ rc: CURLcode) { if rc != CURLE_OK && setupFailed == CURLE_OK { setupFailed = rc } }
        check(cm_easy_setopt_string(h, CURLOPT_URL, url))
        check(cm_easy_setopt_string(h, CURLOPT_PROTOCOLS_STR, "http,https"))
        check(cm_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1))
        // Redirects are a permanent failure (SPEC 6), never followed.
        check(cm_easy_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0))
        check(cm_easy_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1))
        check(cm_easy_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2))
        check(cm_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, timeoutMs))
        check(cm_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, min(timeoutMs, 10_000)))
        check(cm_easy_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1))
        check(cm_easy_setopt_string(h, CURLOPT_USERAGENT, userAgent))
        check(cm_easy_setopt_pointer(h, CURLOPT_ERRORBUFFER, errorBuffer))
        check(cm_easy_setopt_slist(h, CURLOPT_HTTPHEADER, list))
        check(cm_easy_setopt_long(h, CURLOPT_POST, 1))
        check(cm_easy_setopt_off_t(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
        // COPYPOSTFIELDS: libcurl keeps its own copy, so the Swift array need not outlive this call.
        body.withUnsafeBytes { raw in
            // An empty body still needs a valid pointer, or libcurl would read the body from stdin.
            check(cm_easy_setopt_pointer(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(("" as StaticString).utf8Start))))
        }
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        check(cm_easy_setopt_write_callback(h, curlWrite))
        check(cm_easy_setopt_pointer(h, CURLOPT_WRITEDATA, sinkPointer))
        check(cm_easy_setopt_header_callback(h, curlHeader))
        check(cm_easy_setopt_pointer(h, CURLOPT_HEADERDATA, sinkPointer))
        // The progress callback is how a stopping service cuts a slow transfer short.
        check(cm_easy_setopt_long(h, CURLOPT_NOPROGRESS, 0))
        check(cm_easy_setopt_xferinfo_callback(h, curlProgress))
        check(cm_easy_setopt_pointer(h, CURLOPT_XFERINFODATA, Unmanaged.passUnretained(stop).toOpaque()))
        if setupFailed != CURLE_OK {
            return HTTPOutcome(status: nil, curlCode: Int32(bitPattern: setupFailed.rawValue),
                               curlMessage: "setting up the request: " + String(cString: curl_easy_strerror(setupFailed)),
                               retryAfter: nil, bodyPrefix: "", aborted: false)
        }

        let rc = curl_easy_perform(h)
        var code: Int = 0
        _ = cm_easy_getinfo_long(h, CURLINFO_RESPONSE_CODE, &code)
        let message: String
        if rc == CURLE_OK {
            message = ""
        } else if errorBuffer[0] != 0 {
            message = String(cString: errorBuffer)
        } else {
            message = String(cString: curl_easy_strerror(rc))
        }
        return HTTPOutcome(status: rc == CURLE_OK && code > 0 ? code : nil,
                           curlCode: Int32(bitPattern: rc.rawValue), curlMessage: message,
                           retryAfter: sink.retryAfter,
                           bodyPrefix: String(decoding: sink.body, as: UTF8.self),
                           aborted: rc == CURLE_ABORTED_BY_CALLBACK && stop.isSet)
    }
}

/// Collects what libcurl hands the callbacks for one request.
private final class ResponseSink {
    var body: [UInt8] = []
    var retryAfter: String?

    func reset() {
        body.removeAll(keepingCapacity: true)
        retryAfter = nil
    }

    func header(_ line: String) {
        // A new status line starts a new response (after a 100 Continue, say): forget the earlier headers.
        if line.hasPrefix("HTTP/") { retryAfter = nil; return }
        guard let colon = line.firstIndex(of: ":") else { return }
        if line[..<colon].lowercased() == "retry-after" {
            retryAfter = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}

private let curlWrite: cm_curl_data_callback = { data, size, count, user in
    let n = size * count
    guard let user, let data else { return n }
    let sink = Unmanaged<ResponseSink>.fromOpaque(user).takeUnretainedValue()
    let room = CurlClient.bodyLimit - sink.body.count
    if room > 0 {
        data.withMemoryRebound(to: UInt8.self, capacity: n) { p in
            sink.body.append(contentsOf: UnsafeBufferPointer(start: p, count: min(room, n)))
        }
    }
    // Anything short of n makes libcurl fail the transfer: the rest is read and dropped.
    return n
}

private let curlHeader: cm_curl_data_callback = { data, size, count, user in
    let n = size * count
    guard let user, let data else { return n }
    let sink = Unmanaged<ResponseSink>.fromOpaque(user).takeUnretainedValue()
    let line = data.withMemoryRebound(to: UInt8.self, capacity: n) { p in
        String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    sink.header(line)
    return n
}

private let curlProgress: cm_curl_xferinfo_callback = { user, _, _, _, _ in
    guard let user else { return 0 }
    return Unmanaged<StopFlag>.fromOpaque(user).takeUnretainedValue().isSet ? 1 : 0
}

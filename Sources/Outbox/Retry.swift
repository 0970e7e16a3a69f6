import MeterCore

/// How long to wait between delivery attempts (SPEC 6): 1 s doubling, capped at 5 min, with jitter.
///
/// Times are milliseconds so tests can run the same policy on a short clock.
public struct RetryPolicy: Sendable, Equatable {
    /// The delay after the first failure, before jitter.
    public var baseMilliseconds: Int64
    /// No backoff delay exceeds this.
    public var capMilliseconds: Int64
    /// The longest `Retry-After` honoured: a receiver asking for a day is waited on for this long.
    public var retryAfterCapMilliseconds: Int64

    public init(baseMilliseconds: Int64 = 1_000, capMilliseconds: Int64 = 300_000,
                retryAfterCapMilliseconds: Int64 = 3_600_000) {
        self.baseMilliseconds = max(1, baseMilliseconds)
        self.capMilliseconds = max(self.baseMilliseconds, capMilliseconds)
        self.retryAfterCapMilliseconds = max(self.baseMilliseconds, retryAfterCapMilliseconds)
    }

    /// SPEC 6 as written.
    public static let standard = RetryPolicy()
}

/// The retry delay as a pure function of the attempt count, the receiver's `Retry-After` and a jitter draw.
public enum Backoff {
    /// The share of the delay that jitter may take away: delays land in [75 %, 100 %] of the doubling value,
    /// so they never exceed the cap and still spread endpoints that failed together.
    public static let jitterShare: Int64 = 4

    /// Milliseconds to wait after the `attempt`-th failed attempt (1 = the first).
    ///
    /// - `retryAfter`: seconds the receiver asked for (see `RetryAfter.seconds`). When given it replaces
    ///   the backoff, floored at the policy's base (a `Retry-After: 0` must not make a hot loop) and capped
    ///   at `retryAfterCapMilliseconds`.
    /// - `jitter`: a draw in [0, 1); values outside are clamped.
    public static func delay(attempt: Int, retryAfter: Int64? = nil, jitter: Double,
                             policy: RetryPolicy = .standard) -> Int64 {
        if let retryAfter {
            let (ms, overflow) = max(0, retryAfter).multipliedReportingOverflow(by: 1_000)
            let asked = overflow ? Int64.max : ms
            return min(max(asked, policy.baseMilliseconds), policy.retryAfterCapMilliseconds)
        }
        let full = doubling(attempt: attempt, policy: policy)
        let draw = jitter.isNaN ? 0 : min(max(jitter, 0), 1)
        // The jitter is a time, not an amount: Double is fine here, and the result is whole milliseconds.
        let cut = Int64((Double(full / jitterShare) * draw).rounded(.down))
        return max(1, full - cut)
    }

    /// `base · 2^(attempt-1)` capped, without jitter.
    public static func doubling(attempt: Int, policy: RetryPolicy = .standard) -> Int64 {
        let n = max(1, attempt) - 1
        // 2^62 overflows any base; past the cap the exact power no longer matters.
        if n >= 62 { return policy.capMilliseconds }
        let (v, overflow) = policy.baseMilliseconds.multipliedReportingOverflow(by: Int64(1) << Int64(n))
        return overflow ? policy.capMilliseconds : min(v, policy.capMilliseconds)
    }
}

/// What one delivery attempt's answer means for the event (SPEC 6).
public enum Verdict: String, Sendable, Equatable, CaseIterable {
    /// A 2xx: done.
    case delivered
    /// A timeout, a connection error, 408, 429 or 5xx: try again later.
    case retry
    /// 410 Gone: the receiver is gone for now; stop sending to it until an operator re-enables it.
    case pause
    /// Any other answer (3xx included, as redirects are not followed): a dead letter.
    case dead

    /// `curlError` is the transfer's CURLcode (0 when it completed); `status` the HTTP status when one
    /// was received. Every transport error retries: the event ages out to a dead letter after
    /// `max_age_hours` anyway, and a receiver or certificate fixed within that time gets everything.
    public static func classify(status: Int?, curlError: Int32) -> Verdict {
        guard curlError == 0, let status, status > 0 else { return .retry }
        switch status {
        case 200 ... 299: return .delivered
        case 408, 429, 500 ... 599: return .retry
        case 410: return .pause
        default: return .dead
        }
    }
}

/// `Retry-After` (RFC 9110 10.2.3): delay-seconds or an HTTP-date.
public enum RetryAfter {
    /// Seconds to wait from `now` (unix seconds), or nil when the header is malformed. A date in the past is 0.
    public static func seconds(_ header: String, now: Int64) -> Int64? {
        let value = header.trimmingBlanks
        guard !value.isEmpty else { return nil }
        if value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            // A huge number is still a valid "very long": saturate rather than reject.
            return Int64(value) ?? Int64.max
        }
        guard let at = HTTPDate.parse(value) else { return nil }
        return max(0, at - now)
    }
}

/// HTTP-date parsing (RFC 9110 5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms recipients must accept.
public enum HTTPDate {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// Unix seconds, or nil when `text` is none of the three forms.
    public static func parse(_ text: String) -> Int64? {
        // Tokens split on blanks, commas and dashes cover all three forms:
        // "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994".
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" || $0 == "\t" }).map(String.init)
        // In every form the first number is the day and the second the year.
        var numbers: [(value: Int64, digits: Int)] = []
        var month: Int64?, clock: (Int64, Int64, Int64)?
        var sawGMT = false
        for (i, t) in tokens.enumerated() {
            if let m = monthIndex(t) {
                guard month == nil else { return nil }
                month = m
            } else if t == "GMT" {
                sawGMT = true
            } else if t.contains(":") {
                let parts = t.split(separator: ":", omittingEmptySubsequences: false)
                guard clock == nil, parts.count == 3, let h = Int64(parts[0]), let mi = Int64(parts[1]),
                      let s = Int64(parts[2]), (0 ... 23).contains(h), (0 ... 59).contains(mi), (0 ... 60).contains(s)
                else { return nil }
                clock = (h, mi, s)
            } else if let n = Int64(t), n >= 0 {
                numbers.append((n, t.count))
            } else if i != 0 {
                // Only the leading weekday may be some other word.
                return nil
            }
        }
        // asctime has no zone and is UTC by definition (its year comes last); the other two say GMT.
        let asctime = tokens.last.flatMap { Int64($0) } != nil
        guard numbers.count == 2, let month, let clock, sawGMT != asctime else { return nil }
        let day = numbers[0].value
        // RFC 9110: a two-digit year more than 50 years in the future is in the past century; the
        // agent's clock is after 2000, so 00–69 is 20xx and 70–99 is 19xx.
        let year = numbers[1].digits == 2 ? (numbers[1].value < 70 ? 2000 : 1900) + numbers[1].value : numbers[1].value
        guard (1 ... 31).contains(day), numbers[1].digits == 2 || numbers[1].digits == 4 else { return nil }
        return CivilTime.daysFromCivil(year, month, day) * 86_400 + clock.0 * 3_600 + clock.1 * 60 + clock.2
    }

    private static func monthIndex(_ token: String) -> Int64? {
        guard token.count == 3, let i = months.firstIndex(of: token.lowercased()) else { return nil }
        return Int64(i + 1)
    }
}

extension String {
    var trimmingBlanks: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}

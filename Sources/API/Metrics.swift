import Metrics
import Synchronization

/// Every metric the agent exports, by name, type and labels, in one place so that no two call
/// sites can register one name with two types (swift-prometheus traps on that).
public enum MetricNames {
    /// Counter {source}: CDR lines read from a source (billable or not, parsed or not).
    public static let cdrsRead = "creditmeter_cdrs_read_total"
    /// Counter {source}: CDRs newly charged.
    public static let cdrsCharged = "creditmeter_cdrs_charged_total"
    /// Counter {source}: lines or CDRs sent to the quarantine.
    public static let cdrsQuarantined = "creditmeter_cdrs_quarantined_total"
    /// Counter {source}: credits charged, in micro-credits (1 credit = 1,000,000).
    public static let creditsCharged = "creditmeter_credits_charged_microcredits_total"
    /// Gauge {source}: bytes written to the source file that are not yet read.
    public static let sourceLag = "creditmeter_source_lag_bytes"
    /// Counter {source}: bytes known unread in rotated-away files given up (no file with their identity left).
    public static let givenUpBytes = "creditmeter_source_given_up_bytes_total"
    /// Counter {source}: rotated-away files given up.
    public static let givenUpFiles = "creditmeter_source_given_up_files_total"
    /// Gauge {endpoint}: deliveries waiting (pending or retrying) for a webhook endpoint.
    public static let outboxDepth = "creditmeter_outbox_pending"
    /// Counter {endpoint, result}: delivery attempts by outcome (`delivered`, `retry`, `dead`, `paused`).
    public static let deliveries = "creditmeter_deliveries_total"
    /// Counter {reason}: `/v1/authorize` answers by reason (`ok` is an allow; `bad_request` a malformed query).
    public static let authorizeAnswers = "creditmeter_authorize_total"
    /// Gauge: live call reservations held by allowed authorizations.
    public static let reservationsLive = "creditmeter_reservations_live"
    /// Gauge: 1 once the daemon's sources are open (what `/readyz` answers), else 0.
    public static let ready = "creditmeter_ready"

    /// Every authorize reason, so the counters exist (at 0) from the first scrape.
    public static let authorizeReasons = AuthorizeReason.allCases.map(\.rawValue) + ["bad_request"]
}

/// What the daemon reports to `/metrics`: small functions over the names in `MetricNames`.
/// Each call goes through swift-metrics' global factory (a no-op until `APIMetrics.bootstrap()`).
public enum MeterMetrics {
    /// After each committed batch of a source.
    public static func batch(source: String, read: Int, charged: Int, quarantined: Int, microcredits: Int64) {
        let dims = [("source", source)]
        if read > 0 { Counter(label: MetricNames.cdrsRead, dimensions: dims).increment(by: read) }
        if charged > 0 { Counter(label: MetricNames.cdrsCharged, dimensions: dims).increment(by: charged) }
        if quarantined > 0 { Counter(label: MetricNames.cdrsQuarantined, dimensions: dims).increment(by: quarantined) }
        if microcredits > 0 { Counter(label: MetricNames.creditsCharged, dimensions: dims).increment(by: microcredits) }
    }

    /// Registers a source's series at 0, so a quiet source still shows on the first scrape.
    public static func declare(source: String) {
        let dims = [("source", source)]
        for name in [MetricNames.cdrsRead, MetricNames.cdrsCharged, MetricNames.cdrsQuarantined, MetricNames.creditsCharged,
                     MetricNames.givenUpBytes, MetricNames.givenUpFiles] {
            Counter(label: name, dimensions: dims).increment(by: 0)
        }
        Gauge(label: MetricNames.sourceLag, dimensions: dims).record(0)
    }

    public static func cdrsRead(source: String, _ n: Int) {
        Counter(label: MetricNames.cdrsRead, dimensions: [("source", source)]).increment(by: n)
    }

    public static func cdrsCharged(source: String, _ n: Int) {
        Counter(label: MetricNames.cdrsCharged, dimensions: [("source", source)]).increment(by: n)
    }

    public static func cdrsQuarantined(source: String, _ n: Int) {
        Counter(label: MetricNames.cdrsQuarantined, dimensions: [("source", source)]).increment(by: n)
    }

    /// Micro-credits charged (µcr, an integer: no floating point touches money, metrics included).
    public static func creditsCharged(source: String, microcredits: Int64) {
        Counter(label: MetricNames.creditsCharged, dimensions: [("source", source)]).increment(by: microcredits)
    }

    public static func sourceLag(source: String, bytes: Int64) {
        Gauge(label: MetricNames.sourceLag, dimensions: [("source", source)]).record(bytes)
    }

    /// Rotated-away files given up, and the bytes known unread in them.
    public static func givenUp(source: String, files: Int, bytes: Int64) {
        let dims = [("source", source)]
        Counter(label: MetricNames.givenUpFiles, dimensions: dims).increment(by: files)
        Counter(label: MetricNames.givenUpBytes, dimensions: dims).increment(by: bytes)
    }

    public static func outboxDepth(endpoint: String, pending: Int) {
        Gauge(label: MetricNames.outboxDepth, dimensions: [("endpoint", endpoint)]).record(pending)
    }

    /// One delivery attempt's outcome: `delivered`, `retry`, `dead` or `paused` (any short word works).
    public static func delivery(endpoint: String, result: String) {
        Counter(label: MetricNames.deliveries, dimensions: [("endpoint", endpoint), ("result", result)]).increment()
    }
}

/// The authorize counters, made once so the hot path does not look a counter up per request.
final class AuthorizeCounters: Sendable {
    private let counters: [String: Counter]
    private let reservations: Gauge
    private let ready: Gauge

    init() {
        var c: [String: Counter] = [:]
        for r in MetricNames.authorizeReasons {
            let counter = Counter(label: MetricNames.authorizeAnswers, dimensions: [("reason", r)])
            counter.increment(by: 0)
            c[r] = counter
        }
        counters = c
        reservations = Gauge(label: MetricNames.reservationsLive)
        ready = Gauge(label: MetricNames.ready)
    }

    func count(_ reason: String) { counters[reason]?.increment() }

    /// Gauges that are cheaper to read at scrape time than to keep current.
    func beforeScrape(liveReservations: Int, ready isReady: Bool) {
        reservations.record(liveReservations)
        ready.record(isReady ? 1 : 0)
    }
}

/// Set by the daemon once its sources are open; `/readyz` answers 200 from then on.
public final class ReadyFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public func set(_ ready: Bool = true) { value.store(ready, ordering: .releasing) }
    public var isReady: Bool { value.load(ordering: .acquiring) }
}

import Prometheus
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
    /// Counter {source}: batches whose commit to the store failed (each is retried from the last commit).
    public static let storeFailures = "creditmeter_store_failures_total"
    /// Gauge {source}: seconds since this process last charged a CDR from the source.
    public static let lastChargedAge = "creditmeter_last_charged_cdr_age_seconds"
    /// Gauge: lines waiting in the quarantine.
    public static let quarantineLines = "creditmeter_quarantine_lines"
    /// Gauge {endpoint}: deliveries waiting (pending or retrying) for a webhook endpoint.
    public static let outboxDepth = "creditmeter_outbox_pending"
    /// Counter {endpoint, result}: delivery attempts by outcome (`delivered`, `retry`, `dead`, `paused`).
    public static let deliveries = "creditmeter_deliveries_total"
    /// Counter {reason}: `/v1/authorize` answers by reason (`ok` is an allow; `bad_request` a malformed query).
    public static let authorizeAnswers = "creditmeter_authorize_total"
    /// Histogram: time to answer `/v1/authorize`, from the parsed request to the answer.
    public static let authorizeDuration = "creditmeter_authorize_duration_seconds"
    /// Gauge: live call reservations held by allowed authorizations.
    public static let reservationsLive = "creditmeter_reservations_live"
    /// Gauge: 1 while `/readyz` answers 200, else 0.
    public static let ready = "creditmeter_ready"
    /// Gauge {version}: always 1; the label carries the running binary's version.
    public static let buildInfo = "creditmeter_build_info"

    /// Every authorize reason, so the counters exist (at 0) from the first scrape.
    public static let authorizeReasons = AuthorizeReason.allCases.map(\.rawValue) + ["bad_request"]

    /// Every delivery result, so an endpoint's counters exist (at 0) from the first scrape.
    public static let deliveryResults = ["delivered", "retry", "dead", "paused"]

    /// The `# HELP` text of each metric. swift-prometheus traps when one name is registered with two
    /// help texts, so every registration takes its text from here.
    static let help: [String: String] = [
        cdrsRead: "CDR lines read from the source, billable or not, parsed or not.",
        cdrsCharged: "CDRs newly charged from the source.",
        cdrsQuarantined: "Lines or CDRs of the source sent to the quarantine.",
        creditsCharged: "Credits charged from the source, in micro-credits (1 credit = 1000000).",
        sourceLag: "Bytes written to the source file that are not read yet.",
        givenUpBytes: "Bytes known unread in rotated-away source files given up (no file with their identity was left).",
        givenUpFiles: "Rotated-away source files given up (no file with their identity was left).",
        storeFailures: "Batches of the source whose commit to the store failed; each is retried from the last commit.",
        lastChargedAge: "Seconds since this process last charged a CDR from the source.",
        quarantineLines: "Lines waiting in the quarantine.",
        outboxDepth: "Webhook deliveries waiting (pending or retrying) for the endpoint.",
        deliveries: "Webhook delivery attempts by result.",
        authorizeAnswers: "Answers of /v1/authorize by reason.",
        authorizeDuration: "Time to answer /v1/authorize, from the parsed request to the answer.",
        reservationsLive: "Live call reservations held by allowed authorizations.",
        ready: "1 while /readyz answers 200, else 0.",
        buildInfo: "Always 1; the version label is the running binary's version.",
    ]

    static func descriptor(_ name: String) -> MetricNameDescriptor {
        // An empty unit is left out of the name, which is already complete.
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help[name] ?? "")
    }

    /// Sub-millisecond answers are the norm, so the buckets are finer than swift-prometheus' defaults.
    static let authorizeBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
    ]
}

/// What the daemon reports to `/metrics`: small functions over the names in `MetricNames`, registered
/// straight in the process's registry (`APIMetrics.bootstrap()`) so that each carries its `# HELP`.
public enum MeterMetrics {
    static var registry: PrometheusCollectorRegistry { APIMetrics.bootstrap() }

    static func counter(_ name: String, _ labels: [(String, String)]) -> Prometheus.Counter {
        registry.makeCounter(descriptor: MetricNames.descriptor(name), labels: labels)
    }

    static func gauge(_ name: String, _ labels: [(String, String)] = []) -> Prometheus.Gauge {
        labels.isEmpty ? registry.makeGauge(descriptor: MetricNames.descriptor(name))
            : registry.makeGauge(descriptor: MetricNames.descriptor(name), labels: labels)
    }

    /// When each source last charged a CDR, for the age gauge computed at scrape time.
    private static let lastCharged = Mutex<[String: ContinuousClock.Instant]>([:])

    /// After each committed batch of a source.
    public static func batch(source: String, read: Int, charged: Int, quarantined: Int, microcredits: Int64) {
        let dims = [("source", source)]
        if read > 0 { counter(MetricNames.cdrsRead, dims).increment(by: Int64(read)) }
        if charged > 0 {
            counter(MetricNames.cdrsCharged, dims).increment(by: Int64(charged))
            lastCharged.withLock { $0[source] = .now }
        }
        if quarantined > 0 { counter(MetricNames.cdrsQuarantined, dims).increment(by: Int64(quarantined)) }
        if microcredits > 0 { counter(MetricNames.creditsCharged, dims).increment(by: microcredits) }
    }

    /// Registers a source's series at 0, so a quiet source still shows on the first scrape.
    public static func declare(source: String) {
        let dims = [("source", source)]
        for name in [MetricNames.cdrsRead, MetricNames.cdrsCharged, MetricNames.cdrsQuarantined, MetricNames.creditsCharged,
                     MetricNames.givenUpBytes, MetricNames.givenUpFiles, MetricNames.storeFailures] {
            counter(name, dims).increment(by: Int64(0))
        }
        gauge(MetricNames.sourceLag, dims).record(Int64(0))
    }

    public static func cdrsRead(source: String, _ n: Int) {
        counter(MetricNames.cdrsRead, [("source", source)]).increment(by: Int64(n))
    }

    public static func cdrsCharged(source: String, _ n: Int) {
        counter(MetricNames.cdrsCharged, [("source", source)]).increment(by: Int64(n))
        if n > 0 { lastCharged.withLock { $0[source] = .now } }
    }

    public static func cdrsQuarantined(source: String, _ n: Int) {
        counter(MetricNames.cdrsQuarantined, [("source", source)]).increment(by: Int64(n))
    }

    /// Micro-credits charged (µcr, an integer: no floating point touches money, metrics included).
    public static func creditsCharged(source: String, microcredits: Int64) {
        counter(MetricNames.creditsCharged, [("source", source)]).increment(by: microcredits)
    }

    public static func sourceLag(source: String, bytes: Int64) {
        gauge(MetricNames.sourceLag, [("source", source)]).record(bytes)
    }

    /// A batch of the source could not be committed.
    public static func storeFailure(source: String) {
        counter(MetricNames.storeFailures, [("source", source)]).increment()
    }

    /// Rotated-away files given up, and the bytes known unread in them.
    public static func givenUp(source: String, files: Int, bytes: Int64) {
        let dims = [("source", source)]
        counter(MetricNames.givenUpFiles, dims).increment(by: Int64(files))
        counter(MetricNames.givenUpBytes, dims).increment(by: bytes)
    }

    public static func outboxDepth(endpoint: String, pending: Int) {
        gauge(MetricNames.outboxDepth, [("endpoint", endpoint)]).record(Int64(pending))
    }

    /// Registers an endpoint's series at 0, so a quiet endpoint still shows on the first scrape.
    public static func declare(endpoint: String) {
        for result in MetricNames.deliveryResults {
            counter(MetricNames.deliveries, [("endpoint", endpoint), ("result", result)]).increment(by: Int64(0))
        }
        gauge(MetricNames.outboxDepth, [("endpoint", endpoint)]).record(Int64(0))
    }

    /// One delivery attempt's outcome: `delivered`, `retry`, `dead` or `paused`.
    public static func delivery(endpoint: String, result: String) {
        counter(MetricNames.deliveries, [("endpoint", endpoint), ("result", result)]).increment()
    }

    /// `creditmeter_build_info{version=…} 1`.
    public static func buildInfo(version: String) {
        gauge(MetricNames.buildInfo, [("version", version)]).record(Int64(1))
    }

    /// Gauges that are cheaper to compute when scraped than to keep current.
    static func beforeScrape(quarantined: Int?) {
        let now = ContinuousClock.now
        for (source, at) in lastCharged.withLock({ $0 }) {
            let age = now - at
            let seconds = Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18
            gauge(MetricNames.lastChargedAge, [("source", source)]).set(to: seconds)
        }
        if let quarantined { gauge(MetricNames.quarantineLines).record(Int64(quarantined)) }
    }
}

/// The authorize counters, made once so the hot path does not look a counter up per request.
final class AuthorizeCounters: Sendable {
    private let counters: [String: Prometheus.Counter]
    private let duration: DurationHistogram
    private let reservations: Prometheus.Gauge
    private let ready: Prometheus.Gauge

    init() {
        var c: [String: Prometheus.Counter] = [:]
        for r in MetricNames.authorizeReasons {
            let counter = MeterMetrics.counter(MetricNames.authorizeAnswers, [("reason", r)])
            counter.increment(by: Int64(0))
            c[r] = counter
        }
        counters = c
        duration = MeterMetrics.registry.makeDurationHistogram(
            descriptor: MetricNames.descriptor(MetricNames.authorizeDuration), buckets: MetricNames.authorizeBuckets)
        reservations = MeterMetrics.gauge(MetricNames.reservationsLive)
        ready = MeterMetrics.gauge(MetricNames.ready)
    }

    func count(_ reason: String) { counters[reason]?.increment() }

    func took(_ d: Duration) { duration.record(d) }

    /// Gauges that are cheaper to read at scrape time than to keep current.
    /// `liveReservations` nil (the store did not answer) leaves the gauge at its last reading.
    func beforeScrape(liveReservations: Int?, ready isReady: Bool) {
        if let liveReservations { reservations.record(Int64(liveReservations)) }
        ready.record(Int64(isReady ? 1 : 0))
    }
}

/// Set by the daemon once its sources are open; `/readyz` answers 200 from then on, as long as
/// `problems` (asked at each request) has nothing to say.
public final class ReadyFlag: Sendable {
    private let value = Atomic<Bool>(false)
    private let problems: @Sendable () -> [String]

    /// - Parameter problems: why the agent cannot do its job right now (say, a source that cannot commit
    ///   to the store), one line each; empty when all is well.
    public init(problems: @escaping @Sendable () -> [String] = { [] }) {
        self.problems = problems
    }

    public func set(_ ready: Bool = true) { value.store(ready, ordering: .releasing) }
    public var isReady: Bool { value.load(ordering: .acquiring) }

    /// Why `/readyz` answers 503; empty when it answers 200.
    public var notReadyReasons: [String] {
        isReady ? problems() : ["sources are not open yet"]
    }
}

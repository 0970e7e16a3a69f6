import Metrics
import Prometheus

/// The process's one Prometheus registry, wired into swift-metrics.
public enum APIMetrics {
    private static let registry: PrometheusCollectorRegistry = {
        let r = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: r))
        return r
    }()

    /// Bootstraps `MetricsSystem` with a Prometheus factory the first time, and returns the registry
    /// `/metrics` renders. Call it once in `main` before building services; later calls return the
    /// same registry and do not bootstrap again (swift-metrics traps on a second bootstrap).
    public static func bootstrap() -> PrometheusCollectorRegistry { registry }
}

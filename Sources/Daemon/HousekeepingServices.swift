import Foundation
import Ledger
import Logging
import MeterConfig
import ServiceLifecycle
import UnixSignals

/// Deletes clients disabled for longer than `[retention] disabled_days`: at start, then daily.
public struct PurgeService: Service {
    let runtime: Runtime
    let ledger: any AgentStore
    let interval: Duration

    public init(runtime: Runtime, ledger: any AgentStore, interval: Duration = .seconds(86_400)) {
        self.runtime = runtime
        self.ledger = ledger
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully {
            purgeOnce()
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }

    func purgeOnce() {
        let now = Int64(Date().timeIntervalSince1970)
        let days = runtime.generation.config.retention.disabledDays
        do {
            for c in try ledger.purgeCandidates(disabledBefore: now - Int64(days) * 86_400) {
                do {
                    try ledger.purge(username: c.username, now: now)
                } catch .unknownClient, .notDisabled {
                    // Another agent sharing the store purged it first, or it was enabled meanwhile.
                    continue
                }
                runtime.logger.notice("purged client disabled for more than \(days) days", metadata: ["client": "\(c.username)"])
            }
        } catch {
            runtime.logger.error("purge failed: \(error)")
        }
    }
}

/// Re-reads the config and rate decks on SIGHUP; a bad new config is refused and the running one kept.
public struct ReloadService: Service {
    let runtime: Runtime
    let ledger: any AgentStore
    let configPath: String

    public init(runtime: Runtime, ledger: any AgentStore, configPath: String) {
        self.runtime = runtime
        self.ledger = ledger
        self.configPath = configPath
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        runtime.logger.info("reload: SIGHUP re-reads the config and rate decks")
        for await _ in signals.cancelOnGracefulShutdown() {
            runtime.notifier.reloading()
            let before = runtime.generation.config
            do {
                let g = try runtime.reload(path: configPath)
                ledger.thresholds = g.config.thresholds
                let rates = g.decks.values.reduce(0) { $0 + $1.count }
                runtime.logger.notice("config reloaded", metadata: [
                    "generation": "\(g.number)", "plans": "\(g.decks.count)", "rates": "\(rates)",
                ])
                // Taken into the generation but never applied by the running services: say so per key.
                for key in g.config.keysNeedingRestart(comparedTo: before) {
                    runtime.logger.warning("reload: \(key) changed; restart creditmeter to apply it", metadata: ["key": "\(key)"])
                }
            } catch {
                runtime.logger.error("reload refused, still running the previous config: \(error)")
            }
            runtime.notifier.reloaded(status: "config generation \(runtime.generation.number)")
        }
    }
}

/// Pings systemd's watchdog only while every source loop is making progress, and keeps STATUS= current.
public struct WatchdogService: Service {
    let runtime: Runtime
    /// A source loop wakes at least every few seconds; older heartbeats mean it is stuck.
    let stale: Duration

    public init(runtime: Runtime, stale: Duration = .seconds(60)) {
        self.runtime = runtime
        self.stale = stale
    }

    public func run() async throws {
        let notifier = runtime.notifier
        // Outside systemd there is nobody to ping; returning would end the group, so wait for shutdown.
        guard notifier.isActive else {
            try? await gracefulShutdown()
            return
        }
        let tick = min(notifier.watchdogInterval ?? .seconds(5), .seconds(5))
        while !Task.isShuttingDownGracefully {
            let counters = runtime.allCounters
            let now = ContinuousClock.now
            let healthy = counters.values.allSatisfy { now - $0.heartbeat < stale }
            if healthy, notifier.watchdogInterval != nil { notifier.watchdog() }
            let lines = counters.values.reduce(0) { $0 + $1.read }
            let charged = counters.values.reduce(0) { $0 + $1.charged }
            let lag = counters.values.reduce(Int64(0)) { $0 + $1.lagBytes }
            let failing = counters.filter { $0.value.failing }.map(\.key).sorted()
            notifier.status("lines read \(lines), charged \(charged), lag \(lag) bytes"
                + (failing.isEmpty ? "" : ", NOT CHARGING: \(failing.joined(separator: ", "))"))
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: tick) }
            } catch {
                return
            }
        }
    }
}

/// What a SIGHUP reload can and cannot change in a running daemon.
///
/// The daemon builds its source loops, store connection, HTTP listener and webhook senders once at
/// start; a reload swaps in new rate decks, plans, thresholds, `[authorize]`, `[rating]`,
/// `[accounts]`, `[retention]` and each existing source's parser settings, and nothing else. Keys
/// outside that set would otherwise be taken silently and never applied, so the reload names them.
extension Config {
    /// The keys whose value differs between `running` and this (newly loaded) config and that take
    /// effect only after a restart, as `section.key` or `source[NAME].key` / `endpoint[NAME].key`;
    /// a `[[source]]` or `[[endpoint]]` that appears or disappears is named without a key.
    public func keysNeedingRestart(comparedTo running: Config) -> [String] {
        var keys: [String] = []
        if store.path != running.store.path { keys.append("store.path") }

        let oldSources = Dictionary(running.sources.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newNames = Set(sources.map(\.name))
        for s in sources {
            guard let old = oldSources[s.name] else {
                keys.append("source[\(s.name)] (added)")
                continue
            }
            if s.path != old.path { keys.append("source[\(s.name)].path") }
            if s.startAt != old.startAt { keys.append("source[\(s.name)].start_at") }
        }
        for s in running.sources where !newNames.contains(s.name) { keys.append("source[\(s.name)] (removed)") }
        // The receivers' routes and tokens are set up once, with the listener.
        let oldReceivers = Dictionary(running.receivers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for r in receivers where oldReceivers[r.name] != r {
            keys.append(oldReceivers[r.name] == nil ? "source[\(r.name)] (added)" : "source[\(r.name)]")
        }
        for r in running.receivers where !receivers.contains(where: { $0.name == r.name }) {
            keys.append("source[\(r.name)] (removed)")
        }

        if api.listen != running.api.listen { keys.append("api.listen") }
        if api.adminTokenFile != running.api.adminTokenFile { keys.append("api.admin_token_file") }

        if delivery.balanceIntervalSeconds != running.delivery.balanceIntervalSeconds {
            keys.append("delivery.balance_interval_seconds")
        }
        if delivery.maxAgeHours != running.delivery.maxAgeHours { keys.append("delivery.max_age_hours") }

        let oldEndpoints = Dictionary(running.endpoints.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newEndpoints = Set(endpoints.map(\.name))
        for e in endpoints {
            guard let old = oldEndpoints[e.name] else {
                keys.append("endpoint[\(e.name)] (added)")
                continue
            }
            let fields: [(String, Bool)] = [
                ("url", e.url != old.url), ("events", e.events != old.events), ("secret", e.secret != old.secret),
                ("secret_file", e.secretFile != old.secretFile), ("token_file", e.tokenFile != old.tokenFile),
                ("timeout_seconds", e.timeoutSeconds != old.timeoutSeconds),
            ]
            for (key, changed) in fields where changed { keys.append("endpoint[\(e.name)].\(key)") }
        }
        for e in running.endpoints where !newEndpoints.contains(e.name) { keys.append("endpoint[\(e.name)] (removed)") }
        return keys
    }
}

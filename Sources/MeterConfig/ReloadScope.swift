/// What a SIGHUP reload can and cannot change in a running daemon.
///
/// The daemon builds its source loops, store connection, HTTP listener and webhook senders once at
/// start; a reload swaps in new rate decks, plans, thresholds, `[authorize]`, `[rating]`,
/// `[accounts]`, `[retention]` and each existing source's parser settings, and nothing else (not `[console]`). Keys
/// outside that set would otherwise be taken silently and never applied, so the reload names them.
extension Config {
    /// The keys whose value differs between `running` and this (newly loaded) config and that take
    /// effect only after a restart, as `section.key` or `source[NAME].key` / `endpoint[NAME].key`;
    /// a `[[source]]` or `[[endpoint]]` that appears or disappears is named without a key.
    public func keysNeedingRestart(comparedTo running: Config) -> [String] {
        var keys: [String] = []
        if store.path != running.store.path { keys.append("store.path") }
        if store.url != running.store.url { keys.append("store.url") }
        if store.passwordFile != running.store.passwordFile { keys.append("store.password_file") }
        if node.name != running.node.name { keys.append("node.name") }

        keys += Self.sectionChanges("source", sources, running.sources, name: \.name) { s, old in
            [("path", s.path != old.path), ("start_at", s.startAt != old.startAt)]
        }
        // The receivers' routes and tokens are set up once, with the listener: any change is named as a whole.
        keys += Self.sectionChanges("source", receivers, running.receivers, name: \.name) { r, old in [("", r != old)] }

        if api.listen != running.api.listen { keys.append("api.listen") }
        if api.adminTokenFile != running.api.adminTokenFile { keys.append("api.admin_token_file") }

        if delivery.balanceIntervalSeconds != running.delivery.balanceIntervalSeconds {
            keys.append("delivery.balance_interval_seconds")
        }
        if delivery.maxAgeHours != running.delivery.maxAgeHours { keys.append("delivery.max_age_hours") }

        // The console's pages, stylesheet and logo are built once, when the listener starts.
        let c = console, old = running.console
        for (key, differs) in [("enabled", c.enabled != old.enabled), ("title", c.title != old.title),
                               ("primary_color", c.primaryColor != old.primaryColor), ("logo_file", c.logoFile != old.logoFile),
                               ("cookie_secure", c.cookieSecure != old.cookieSecure)] where differs {
            keys.append("console.\(key)")
        }

        keys += Self.sectionChanges("endpoint", endpoints, running.endpoints, name: \.name) { e, old in
            [("url", e.url != old.url), ("events", e.events != old.events), ("secret", e.secret != old.secret),
             ("secret_file", e.secretFile != old.secretFile), ("token_file", e.tokenFile != old.tokenFile),
             ("timeout_seconds", e.timeoutSeconds != old.timeoutSeconds)]
        }
        return keys
    }

    /// `kind[NAME].key` for each changed key of a section kept by name (`kind[NAME]` for the key ""), and `kind[NAME] (added)` /
    /// `(removed)` for one that appears or disappears.
    private static func sectionChanges<T>(_ kind: String, _ new: [T], _ old: [T], name: KeyPath<T, String>,
                                          _ changed: (T, T) -> [(String, Bool)]) -> [String] {
        var keys: [String] = []
        let before = Dictionary(old.map { ($0[keyPath: name], $0) }, uniquingKeysWith: { a, _ in a })
        let names = Set(new.map { $0[keyPath: name] })
        for n in new {
            let id = n[keyPath: name]
            guard let o = before[id] else {
                keys.append("\(kind)[\(id)] (added)")
                continue
            }
            for (key, differs) in changed(n, o) where differs { keys.append("\(kind)[\(id)]" + (key.isEmpty ? "" : ".\(key)")) }
        }
        for o in old where !names.contains(o[keyPath: name]) { keys.append("\(kind)[\(o[keyPath: name])] (removed)") }
        return keys
    }
}

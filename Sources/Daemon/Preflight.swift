import API
import Console
import CDRParser
import Delivery
import Foundation
import Ingest
import MeterConfig
import Rater

/// Every refusal `run` makes before it opens the store or a socket, in one place: `config check`, the
/// daemon's start and a SIGHUP reload all go through `check`, so none of them accepts a config another
/// refuses. Reads the files the config names; opens no socket and no store.
public struct Preflight: Sendable {
    /// Every plan's rate deck, by plan name.
    public var decks: [String: RateDeck]
    /// Secrets that group or others can read: worth saying, not worth refusing to start over.
    public var warnings: [SecretWarning]

    /// All problems at once, each naming its key and line: rate decks, each source's
    /// parser and filter, each endpoint's secret and token, `[api]` (listen address, admin token), and a
    /// store path that cannot be a file.
    public static func check(_ config: Config) throws(ConfigError) -> Preflight {
        var issues: [ConfigIssue] = []
        func add(_ key: String, _ message: String) {
            issues.append(ConfigIssue(key: key, line: config.line(of: key), message: message))
        }
        var decks: [String: RateDeck] = [:]
        do { decks = try config.loadRateDecks() } catch { issues += error.issues }
        for (i, source) in config.sources.enumerated() {
            do { _ = try Assembly.settings(for: source, index: i) } catch { add(error.key, error.message) }
        }
        for (i, endpoint) in config.endpoints.enumerated() {
            do { _ = try ResolvedEndpoint.resolve(endpoint, index: i) } catch {
                switch error {
                case .endpoint(let key, let message): add(key, message)
                case .curl(let message): add("endpoint[\(i)]", message)
                }
            }
        }
        do { _ = try APIService.checkStartup(config.api) } catch { add(error.key, error.message) }
        do { try APIService.checkReceivers(config.receivers) } catch { add(error.key, error.message) }
        if config.console.enabled, let logo = config.console.logoFile {
            do { _ = try Console.readLogo(logo) } catch { add(error.key, error.message) }
        }
        if config.store.url == nil, let problem = storeProblem(config.store.path) {
            add("store.path", problem)
        }
        if let f = config.store.passwordFile {
            do { _ = try StoreConfig.readPassword(f) } catch { issues += error.issues }
        }
        if !issues.isEmpty { throw ConfigError(file: config.file, issues: issues) }
        return Preflight(decks: decks, warnings: secretWarnings(config))
    }

    /// A path the store cannot be created or opened at: a directory, or under something that is not one.
    static func storeProblem(_ path: String) -> String? {
        var st = stat()
        if stat(path, &st) == 0 {
            return st.st_mode & 0o170000 == 0o040000 ? "\(path) is a directory, not a database file" : nil
        }
        var dir = (path as NSString).deletingLastPathComponent
        while !dir.isEmpty {
            if stat(dir, &st) == 0 {
                return st.st_mode & 0o170000 == 0o040000 ? nil : "\(dir) is not a directory"
            }
            let parent = (dir as NSString).deletingLastPathComponent
            if parent == dir { break }
            dir = parent
        }
        return nil
    }

    /// Each secret file group or others can read, and each inline secret in a config file they can read.
    static func secretWarnings(_ config: Config) -> [SecretWarning] {
        var files: [(key: String, file: String)] = []
        if let f = config.api.adminTokenFile { files.append(("api.admin_token_file", f)) }
        for r in config.receivers { files.append(("source[\(r.name)].token_file", r.tokenFile)) }
        for (i, e) in config.endpoints.enumerated() {
            if let f = e.secretFile { files.append(("endpoint[\(i)].secret_file", f)) }
            if let f = e.tokenFile { files.append(("endpoint[\(i)].token_file", f)) }
            if e.secret != nil { files.append(("endpoint[\(i)].secret", config.file)) }
        }
        return files.compactMap { key, file in
            var st = stat()
            // Group and other read bits; a missing file was already refused above.
            guard stat(file, &st) == 0, st.st_mode & 0o044 != 0 else { return nil }
            return SecretWarning(key: key, line: config.line(of: key), file: file,
                                 mode: "0" + String(st.st_mode & 0o777, radix: 8), inline: key.hasSuffix(".secret"))
        }
    }
}

/// A secret that users other than the file's owner can read: the key, its line, the file and its mode.
public struct SecretWarning: Sendable, CustomStringConvertible {
    public var key: String
    public var line: Int?
    public var file: String
    /// Octal, as `ls -l` would let you work it out: `0644`.
    public var mode: String
    /// The secret sits in the config file itself.
    public var inline: Bool

    public var description: String {
        if inline {
            return "\(key): the config file \(file) holds this secret and has mode \(mode): group or others can read it "
                + "(chmod 600 the config, or move the secret into a secret_file with mode 0600)"
        }
        return "\(key): \(file) has mode \(mode): group or others can read this secret "
            + "(chmod 600 it, owned by the user creditmeter runs as)"
    }
}

import Foundation
import Ledger
import Outbox
import MeterConfig

/// Why delivery could not start; each description is one line naming the config key, never a secret.
public enum DeliveryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A secret or token file that cannot be used.
    case endpoint(key: String, message: String)
    case curl(String)

    public var description: String {
        switch self {
        case .endpoint(let key, let message): return "\(key): \(message)"
        case .curl(let message): return "libcurl: \(message)"
        }
    }
}

/// An endpoint ready to send to: its config, the signing key and the bearer token, read once at start.
public struct ResolvedEndpoint: Sendable {
    public let config: EndpointConfig
    let key: [UInt8]
    let token: String?

    public var name: String { config.name }

    /// Reads `secret_file` and `token_file`; `index` names the endpoint in errors (`endpoint[1].secret_file`).
    public static func resolve(_ e: EndpointConfig, index: Int) throws(DeliveryError) -> ResolvedEndpoint {
        let at = "endpoint[\(index)]"
        let key: [UInt8]
        if let secret = e.secret {
            guard let k = EndpointConfig.decodeSecret(secret) else {
                throw .endpoint(key: "\(at).secret", message: "must be \"whsec_\" followed by the base64 of a 24 to 64 byte key")
            }
            key = k
        } else if let file = e.secretFile {
            let text = try readTrimmed(file, key: "\(at).secret_file")
            guard let k = EndpointConfig.decodeSecret(text) else {
                throw .endpoint(key: "\(at).secret_file",
                                message: "\(file) does not hold \"whsec_\" followed by the base64 of a 24 to 64 byte key")
            }
            key = k
        } else {
            throw .endpoint(key: at, message: "needs a signing secret: secret = \"whsec_…\" or secret_file = \"PATH\"")
        }
        var token: String?
        if let file = e.tokenFile {
            let t = try readTrimmed(file, key: "\(at).token_file")
            guard !t.isEmpty else { throw .endpoint(key: "\(at).token_file", message: "\(file) is empty") }
            // A token spanning lines would inject headers.
            guard !t.contains(where: { $0 == "\n" || $0 == "\r" }) else {
                throw .endpoint(key: "\(at).token_file", message: "\(file) must hold the token on one line")
            }
            token = t
        }
        return ResolvedEndpoint(config: e, key: key, token: token)
    }

    private static func readTrimmed(_ path: String, key: String) throws(DeliveryError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            let why = FileManager.default.fileExists(atPath: path) ? "cannot be read (permission denied?)" : "no such file"
            throw .endpoint(key: key, message: "\(path): \(why)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw .endpoint(key: key, message: "\(path) is not UTF-8 text")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The request headers for one attempt, the signature over exactly `body`.
    func headers(eventID: String, timestamp: Int64, body: [UInt8]) -> [String] {
        var h = [
            "webhook-id: \(eventID)",
            "webhook-timestamp: \(timestamp)",
            "webhook-signature: " + Signer.sign(secret: key, id: eventID, timestamp: timestamp, body: body),
        ]
        if let token { h.append("Authorization: Bearer \(token)") }
        return h
    }

    /// The endpoint's patterns as the outbox needs them.
    public var outbox: OutboxEndpoint {
        let c = config
        return OutboxEndpoint(name: c.name, wants: { c.wants($0) })
    }
}

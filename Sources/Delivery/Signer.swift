import Crypto
import Foundation

/// Standard Webhooks signing (SPEC 6): `v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`.
public enum Signer {
    /// `secret` is the decoded key (the bytes after `whsec_`, see `EndpointConfig.decodeSecret`); `body` the
    /// exact bytes sent.
    public static func sign(secret: [UInt8], id: String, timestamp: Int64, body: [UInt8]) -> String {
        var message = Array(id.utf8)
        message.append(UInt8(ascii: "."))
        message += Array(String(timestamp).utf8)
        message.append(UInt8(ascii: "."))
        message += body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
        return "v1," + Data(mac).base64EncodedString()
    }
}

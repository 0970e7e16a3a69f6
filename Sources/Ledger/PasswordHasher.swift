import CCrypt
import Foundation

/// Salted, memory-hard password hashing with libxcrypt's yescrypt (SPEC 4).
public enum PasswordHasher {
    /// A fresh `$y$…` hash with a random salt from the OS.
    public static func hash(_ password: String) throws(LedgerError) -> String {
        // count 0 = libxcrypt's default cost; nil rbytes = it draws the salt from the OS's random source.
        guard let setting = crypt_gensalt_ra("$y$", 0, nil, 0) else {
            throw .passwordHash("crypt_gensalt_ra could not make a yescrypt salt")
        }
        defer { free(setting) }
        guard let result = crypt(password, setting: setting) else {
            throw .passwordHash("crypt_ra failed")
        }
        // libxcrypt signals failure with a string starting with "*" instead of NULL.
        guard result.hasPrefix("$y$") else { throw .passwordHash("crypt_ra returned an invalid hash") }
        return result
    }

    /// True when `password` hashes to `hash`; compares the crypt outputs in constant time.
    public static func verify(_ password: String, against hash: String) -> Bool {
        guard hash.hasPrefix("$"), let computed = hash.withCString({ crypt(password, setting: $0) }) else { return false }
        let a = Array(computed.utf8), b = Array(hash.utf8)
        // Length is not secret: it is fixed by the hash's format.
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// crypt_ra with its scratch buffer freed; nil (or a "*" string, rejected by callers) on failure.
    private static func crypt(_ password: String, setting: UnsafePointer<CChar>) -> String? {
        var data: UnsafeMutableRawPointer?
        var size: Int32 = 0
        defer { free(data) }
        guard let out = crypt_ra(password, setting, &data, &size) else { return nil }
        let s = String(cString: out)
        return s.hasPrefix("*") ? nil : s
    }
}

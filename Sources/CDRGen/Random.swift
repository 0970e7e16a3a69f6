/// xoshiro256** seeded through SplitMix64: small, fast, and the same stream on every platform
/// and Swift version, so a seed always reproduces the same CDR file.
struct Xoshiro256: Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in 0..<n (n > 0), by multiply-high; the bias is below 2^-40 for the sizes used here.
    mutating func below(_ n: Int) -> Int {
        guard n > 1 else { return 0 }
        return Int(next().multipliedFullWidth(by: UInt64(n)).high)
    }

    /// Uniform in range.
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + below(r.count) }

    /// Uniform in [0, 1) with 53 bits.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// True with probability perMille / 1000.
    mutating func chance(_ perMille: Int) -> Bool { below(1000) < perMille }

    /// A whole number in range skewed towards its low end (u² scaling): many short values and a
    /// thinning tail of long ones. Plain IEEE multiplication keeps it identical on every platform.
    mutating func skewed(_ r: ClosedRange<Int>) -> Int {
        let u = unit()
        let v = Double(r.lowerBound) + Double(r.upperBound - r.lowerBound) * u * u
        return min(max(Int(v), r.lowerBound), r.upperBound)
    }

    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
}

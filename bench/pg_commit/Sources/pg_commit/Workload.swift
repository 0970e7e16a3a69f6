// The charges a batch commits, generated before the clock starts, and the figures of a run.

/// A small, seedable generator so that every variant commits the same charges.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One batch of charges, column by column, in the order of the usage table's columns (less id).
struct Batch: Sendable {
    var node: [String] = []
    var identity: [String] = []
    var startKey: [Int64] = []
    var clientID: [Int64] = []
    var account: [String] = []
    var source: [String] = []
    var position: [Int64] = []
    var line: [Int64] = []
    var destination: [String] = []
    var prefix: [String] = []
    var billsec: [Int64] = []
    var chargedSeconds: [Int64] = []
    var cost: [Int64] = []
    var startedAt: [Int64?] = []
    var chargedAt: [Int64] = []
    var answeredAt: [Int64?] = []
    var pricing: [Int64?] = []
    /// Charges of this batch that repeat a row stored by an earlier batch (to be skipped).
    var repeats = 0
    /// The sum of the costs of the charges that must go in.
    var newCost: Int64 = 0
    var count: Int { identity.count }
}

/// Makes batches of charges: random `h:` + 32 hex identities, `clients` clients, and about `repeatRate`
/// of each batch copied from keys stored by earlier batches, with another cost, so that a repeat
/// charged by mistake shows up in the sums.
struct Workload {
    static let columns = ["node", "identity", "start_key", "client_id", "account", "source", "position", "line",
                          "destination", "prefix", "billsec", "charged_seconds", "cost", "started_at",
                          "charged_at", "answered_at", "pricing"]
    var rng: SplitMix64
    let clients: Int
    let repeatRate: Double
    private(set) var stored: [(node: String, identity: String, startKey: Int64, clientID: Int64)] = []
    private(set) var charges = 0
    private(set) var repeats = 0
    private(set) var expectedCost: Int64 = 0

    init(seed: UInt64, clients: Int = 100, repeatRate: Double = 0.02) {
        rng = SplitMix64(seed: seed)
        self.clients = clients
        self.repeatRate = repeatRate
    }

    private static let hex = Array("0123456789abcdef".utf8)
    private static let nodes = ["pbx-a", "pbx-b", "pbx-c"]
    private static let prefixes = ["44", "4420", "49", "33", "1", "447", "3906"]

    mutating func next(size: Int) -> Batch {
        var b = Batch()
        b.identity.reserveCapacity(size)
        let storedBefore = stored.count
        var repeated = Set<Int>()
        var fresh: [(String, String, Int64, Int64)] = []
        fresh.reserveCapacity(size)
        for _ in 0..<size {
            var node: String, identity: String, startKey: Int64, client: Int64
            var isRepeat = false
            if storedBefore > 0, Double(rng.next() >> 11) / Double(1 << 53) < repeatRate,
               case let i = Int(rng.next() % UInt64(storedBefore)), repeated.insert(i).inserted {
                (node, identity, startKey, client) = stored[i]
                b.repeats += 1
                isRepeat = true
            } else {
                node = Self.nodes[Int(rng.next() % 3)]
                var bytes: [UInt8] = [UInt8(ascii: "h"), UInt8(ascii: ":")]
                var r1 = rng.next(), r2 = rng.next()
                for k in 0..<32 {
                    let nibble: UInt64
                    if k < 16 { nibble = r1 & 15; r1 >>= 4 } else { nibble = r2 & 15; r2 >>= 4 }
                    bytes.append(Self.hex[Int(nibble)])
                }
                identity = String(decoding: bytes, as: UTF8.self)
                startKey = 1_780_000_000 + Int64(rng.next() % 10_000_000)
                client = 1 + Int64(rng.next() % UInt64(clients))
                fresh.append((node, identity, startKey, client))
            }
            let billsec = Int64(rng.next() % 3600)
            let charged = (billsec + 59) / 60 * 60
            let prefix = Self.prefixes[Int(rng.next() % UInt64(Self.prefixes.count))]
            // A repeat carries another cost than the stored row: adding it to a balance breaks the check.
            let cost = charged * Int64(1 + rng.next() % 40) + (isRepeat ? 7 : 0)
            let answered = rng.next() % 10 != 0
            b.node.append(node)
            b.identity.append(identity)
            b.startKey.append(startKey)
            b.clientID.append(client)
            b.account.append("acct-\(client)")
            b.source.append("10\(rng.next() % 100)")
            b.position.append(Int64(rng.next() % 1_000_000))
            b.line.append(Int64(rng.next() % 100_000))
            b.destination.append(prefix + String(1_000_000 + rng.next() % 8_999_999))
            b.prefix.append(prefix)
            b.billsec.append(billsec)
            b.chargedSeconds.append(charged)
            b.cost.append(cost)
            b.startedAt.append(rng.next() % 50 == 0 ? nil : startKey)
            b.chargedAt.append(startKey + billsec + 1)
            b.answeredAt.append(answered ? startKey + 3 : nil)
            b.pricing.append(rng.next() % 20 == 0 ? nil : Int64(1 + rng.next() % 12))
            if !isRepeat { b.newCost += cost }
        }
        stored.append(contentsOf: fresh.map { (node: $0.0, identity: $0.1, startKey: $0.2, clientID: $0.3) })
        charges += b.count
        repeats += b.repeats
        expectedCost += b.newCost
        return b
    }
}

/// Latencies of the measured batches and what they make.
struct Figures {
    var latencies: [Double] = []   // seconds, one per measured batch
    var rates: [Double] = []       // charges per second, one per measured batch
    var wall: Double = 0           // seconds over all measured batches
    var cpu: Double = 0            // this process's CPU seconds over the measured batches

    mutating func merge(_ o: Figures) {
        latencies += o.latencies; rates += o.rates; wall += o.wall; cpu += o.cpu
    }

    mutating func add(seconds: Double, charges: Int) {
        latencies.append(seconds)
        rates.append(Double(charges) / seconds)
        wall += seconds
    }

    static func quantile(_ xs: [Double], _ q: Double) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return .nan }
        // Nearest rank.
        let rank = Int((q * Double(s.count)).rounded(.up))
        return s[max(0, min(s.count - 1, rank - 1))]
    }

    var medianRate: Double { Self.quantile(rates, 0.5) }
    var p50: Double { Self.quantile(latencies, 0.5) }
    var p99: Double { Self.quantile(latencies, 0.99) }
}

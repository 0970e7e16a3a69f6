import CDRParser
import Foundation
import Ledger
import MeterCore

/// `creditmeter replay --format freeswitch-json`: mod_json_cdr's `err-log-dir` files, one document
/// each (plain, URL-encoded or base64, as `encode` had it), or directories of them.
///
/// A document is the unit here, not a line, so these files do not go through `Replayer`'s line
/// loop. Charges dedupe on the FreeSWITCH uuid as posted ones do: a document that reached the
/// agent over HTTP before it was written to `err-log-dir` charges nothing when replayed.
public struct DocumentReplayer {
    public var batchSize: Int
    /// Like a receiving source's `charge_b_legs`: B-legs are counted under `filtered` unless set.
    public var chargeBLegs: Bool

    public init(batchSize: Int = 2_000, chargeBLegs: Bool = false) {
        self.batchSize = batchSize
        self.chargeBLegs = chargeBLegs
    }

    /// The files to read: each FILE, and each regular file directly in each DIR, by name.
    public static func expand(_ paths: [String]) throws -> [String] {
        var out: [String] = []
        for p in paths {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: p, isDirectory: &isDirectory), isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: p).filter { !$0.hasPrefix(".") }.sorted()
                for n in names {
                    let full = (p as NSString).appendingPathComponent(n)
                    var sub: ObjCBool = false
                    if FileManager.default.fileExists(atPath: full, isDirectory: &sub), !sub.boolValue { out.append(full) }
                }
            } else {
                out.append(p)
            }
        }
        return out
    }

    public func replay(files: [String], source: SourceSettings, metering: Metering, ledger: any MeteringStore,
                       dryRun: Bool, now: Int64) throws -> ReplaySummary {
        var summary = ReplaySummary()
        summary.dryRun = dryRun
        summary.files = files
        var charges: [Charge] = []
        var quarantined: [QuarantineEntry] = []
        var byClient: [Int64: (cdrs: Int, cost: Int64)] = [:]
        func flush() throws {
            guard !charges.isEmpty || !quarantined.isEmpty else { return }
            let batch = ChargeBatch(source: source.name, position: nil, charges: charges, quarantined: quarantined)
            let outcome = try ledger.commit(batch, now: now)
            summary.counts.charged += outcome.charged
            summary.counts.duplicates += outcome.duplicates
            for (id, cost) in outcome.costByClient {
                var t = byClient[id] ?? (0, 0)
                t.cdrs += outcome.countByClient[id] ?? 0
                t.cost += cost
                byClient[id] = t
            }
            charges.removeAll(keepingCapacity: true)
            quarantined.removeAll(keepingCapacity: true)
        }
        func readAll() throws {
            for (n, file) in files.enumerated() {
                let bytes: [UInt8]
                do { bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file))) } catch {
                    throw ReadFailure(path: file, message: "\(error.localizedDescription)")
                }
                summary.counts.read += 1
                func quarantine(_ q: QuarantineEntry) {
                    quarantined.append(q)
                    summary.counts.quarantined += 1
                    summary.counts.quarantinedByReason[q.reason, default: 0] += 1
                }
                switch source.parser.parseFreeSwitch(bytes) {
                case .failure(let f):
                    let key = bytes.withUnsafeBufferPointer { Metering.rawKey($0, source: source.name, offset: 0) }
                    quarantine(QuarantineEntry(key: key, source: source.name, position: 0, line: Int64(n + 1),
                                               reason: f.reason, message: "\(file): \(f.message)", raw: bytes))
                case .success(let doc) where doc.isBLeg && !chargeBLegs:
                    summary.counts.filtered += 1
                case .success(let doc):
                    let outcome = bytes.withUnsafeBufferPointer {
                        metering.classify(doc.cdr, raw: $0, offset: 0, lineNumber: Int64(n + 1), source: source)
                    }
                    switch outcome {
                    case .charge(let c): charges.append(c)
                    case .notBillable: summary.counts.notBillable += 1
                    case .filtered: summary.counts.filtered += 1
                    case .quarantine(let q): quarantine(q)
                    }
                }
                if charges.count + quarantined.count >= batchSize { try flush() }
            }
            try flush()
        }
        // A dry run rolls everything back at the end, so its later batches still see the earlier ones.
        if dryRun { try ledger.dryRun { try readAll() } } else { try readAll() }
        summary.total(byClient, directory: metering.directory)
        return summary
    }

    /// A file that could not be read, named.
    public struct ReadFailure: Error, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path): \(message)" }
    }
}

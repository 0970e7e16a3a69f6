import CDRParser
import Foundation
import Ledger
import MeterConfig
import Rater

/// Turns config sections into the parser, filter and metering objects the pipeline runs on.
public enum Assembly {
    public struct Failure: Error, CustomStringConvertible {
        public var key: String
        public var message: String
        public var description: String { "\(key): \(message)" }
        public init(key: String, message: String) {
            self.key = key
            self.message = message
        }
    }

    public static func settings(for source: SourceConfig, index: Int) throws(Failure) -> SourceSettings {
        let key = "source[\(index)]"
        let parser: CDRParser
        do { parser = try CDRParser(source.parserOptions) } catch { throw Failure(key: key, message: "\(error)") }
        let filter: CDRFilter?
        do { filter = try source.makeFilter() } catch { throw Failure(key: "\(key).filter", message: "\(error)") }
        return SourceSettings(name: source.name, parser: parser, filter: filter, maxLineBytes: source.maxLineBytes)
    }

    /// An ad-hoc source for `replay --format` on a file that no `[[source]]` describes.
    /// Its name records the format, so `quarantine retry` can parse its lines again.
    public static func adHoc(format: CDRFormat, timeZone: TimeZone) throws(Failure) -> SourceSettings {
        do {
            let parser = try CDRParser(ParserOptions(format: format, extra: nil, columns: nil, delimiter: UInt8(ascii: ","), timeZone: timeZone))
            return SourceSettings(name: adHocPrefix + format.rawValue, parser: parser, filter: nil)
        } catch {
            throw Failure(key: "--format", message: "\(error)")
        }
    }

    public static let adHocPrefix = "replay/"

    /// The settings that produced a quarantined line, found again by the source name it was stored under.
    public static func settings(named name: String, config: Config) throws(Failure) -> SourceSettings? {
        if let i = config.sources.firstIndex(where: { $0.name == name }) {
            return try settings(for: config.sources[i], index: i)
        }
        if let r = config.receivers.first(where: { $0.name == name }) {
            do { return SourceSettings(name: r.name, parser: try CDRParser(r.parserOptions), filter: nil) } catch {
                throw Failure(key: "source[\(r.name)].format", message: "\(error)")
            }
        }
        if name.hasPrefix(adHocPrefix), let f = CDRFormat(rawValue: String(name.dropFirst(adHocPrefix.count))) {
            return try adHoc(format: f, timeZone: TimeZone(identifier: "UTC") ?? .current)
        }
        return nil
    }

    public static func metering(config: Config, ledger: any MeteringStore, decks: [String: RateDeck]) throws -> Metering {
        Metering(accountField: config.accounts.cdrField, directory: try ledger.accountDirectory(), decks: decks,
                        maxBillsec: config.rating.maxBillsec)
    }
}

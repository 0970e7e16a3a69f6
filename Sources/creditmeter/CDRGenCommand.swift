import ArgumentParser
import CDRGen
import CDRParser
import Foundation

struct CDRGenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cdrgen",
        abstract: "Write a realistic, deterministic CDR file for tests and benchmarks.",
        discussion: """
        Answered and unanswered calls, forks and transfers (one call, several lines), quoted caller names with commas, national, international (+) and internal destinations, durations with a long tail. Account codes are c0001 … cNNNN (--clients); the same --seed gives the same file.

        Examples:
          creditmeter cdrgen --format asterisk-csv --count 100000 \\
              --clients 1000 --seed 7 > Master.csv
          creditmeter cdrgen --format freeswitch-csv --count 500 -o fs.csv
          creditmeter cdrgen --format asterisk-csv --count 20000 \\
              --start 2026-03-01 --span-days 28 -o Master.csv
          creditmeter cdrgen --format asterisk-csv --count 0 \\
              --deck rates.csv --windows --price-change 2026-03-15

        --span-days spreads the calls evenly over that many days (by default a busy PBX: about 13 s apart). --deck writes a rate deck that covers every destination cdrgen writes (a catch-all and one row set per prefix): with --windows, peak (mon-fri 08:00-18:00), evening, night and weekend rows; with --price-change DATE, an old price list until DATE and a dearer one from it. --count 0 with --deck writes only the deck.
        """
    )

    @Option(help: "asterisk-csv or freeswitch-csv.") var format: String
    @Option(help: "Number of CDR lines to write.") var count: Int
    @Option(help: "Number of distinct client account codes.") var clients = 10
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: ArgumentHelp("Time of the first call (YYYY-MM-DD or RFC 3339, UTC).", valueName: "date"))
    var start = "2026-01-01"
    @Option(name: .shortAndLong, help: ArgumentHelp("Write here instead of stdout.", valueName: "file"))
    var output: String?
    @Option(name: .customLong("span-days"), help: ArgumentHelp("Spread the calls evenly over this many days.", valueName: "days"))
    var spanDays: Int?
    @Option(help: ArgumentHelp("Also write a rate deck covering every destination to this file.", valueName: "file"))
    var deck: String?
    @Flag(help: "The deck has peak, evening, night and weekend windows.") var windows = false
    @Option(name: .customLong("price-change"), help: ArgumentHelp(
        "The deck has an old price list until this date and a dearer one from it (YYYY-MM-DD or YYYY-MM-DDTHH:MM).",
        valueName: "date"))
    var priceChange: String?

    func validate() throws {
        if count < 0 { throw ValidationError("--count must be 0 or more") }
        if clients < 1 { throw ValidationError("--clients must be at least 1") }
        if let spanDays, spanDays < 1 { throw ValidationError("--span-days must be at least 1") }
        if deck == nil, windows || priceChange != nil { throw ValidationError("--windows and --price-change describe the --deck file: give --deck too") }
    }

    func run() throws {
        try guarded {
            guard let f = CDRFormat(rawValue: format), f == .asteriskCSV || f == .freeswitchCSV else {
                throw CLIError(.usage, "--format: '\(format)' — cdrgen writes asterisk-csv or freeswitch-csv")
            }
            let startEpoch = try parseDate(start, option: "--start")
            if let deck {
                let text = DeckGenerator.deck(windows: windows, priceChange: priceChange, seed: seed)
                guard FileManager.default.createFile(atPath: deck, contents: Data(text.utf8)) else {
                    throw CLIError(.ioError, "\(deck): cannot create the file")
                }
                if count == 0 { return }
            }
            let handle: FileHandle
            if let output {
                guard FileManager.default.createFile(atPath: output, contents: nil) ,
                      let h = FileHandle(forWritingAtPath: output) else {
                    throw CLIError(.ioError, "\(output): cannot create the file")
                }
                handle = h
            } else {
                handle = FileHandle.standardOutput
            }
            let gap = spanDays.map { count > 0 ? Int64($0) * 86_400 / Int64(count) : 0 }
            var gen = CDRGenerator(format: f, clients: clients, seed: seed, start: startEpoch, meanGap: gap)
            var written = 0
            var buffer = ""
            buffer.reserveCapacity(1 << 20)
            while written < count {
                for line in gen.next() where written < count {
                    buffer += line
                    buffer += "\n"
                    written += 1
                }
                if buffer.utf8.count >= 1 << 20 {
                    handle.write(Data(buffer.utf8))
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            handle.write(Data(buffer.utf8))
            if output != nil { try handle.close() }
        }
    }
}

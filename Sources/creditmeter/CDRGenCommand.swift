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
          creditmeter cdrgen --format freeswitch-json --count 1000 -o fs.jsonl
        """
    )

    @Option(help: "asterisk-csv, freeswitch-csv or freeswitch-json (one mod_json_cdr document a line, B-legs included).")
    var format: String
    @Option(help: "Number of CDR lines to write.") var count: Int
    @Option(help: "Number of distinct client account codes.") var clients = 10
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: ArgumentHelp("Time of the first call (YYYY-MM-DD or RFC 3339, UTC).", valueName: "date"))
    var start = "2026-01-01"
    @Option(name: .shortAndLong, help: ArgumentHelp("Write here instead of stdout.", valueName: "file"))
    var output: String?

    func validate() throws {
        if count < 0 { throw ValidationError("--count must be 0 or more") }
        if clients < 1 { throw ValidationError("--clients must be at least 1") }
    }

    func run() throws {
        try guarded {
            guard let f = CDRFormat(rawValue: format), f == .asteriskCSV || f == .freeswitchCSV || f == .freeswitchJSON else {
                throw CLIError(.usage, "--format: '\(format)' — cdrgen writes asterisk-csv, freeswitch-csv or freeswitch-json")
            }
            let startEpoch = try parseDate(start, option: "--start")
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
            var gen = CDRGenerator(format: f, clients: clients, seed: seed, start: startEpoch)
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

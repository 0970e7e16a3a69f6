/// Where a source's reader stands in one file: enough to find the file again and prove it is the same
/// bytes. The tailer produces it, the ledger stores it (under the source's name) in the transaction
/// that charges the lines it covers, and a restart resumes from it.
public struct Checkpoint: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    /// `"<n>:<sha256 hex>"` of the file's first n bytes (n ≤ 1024; smaller while the file was smaller).
    public var headHash: String
    /// Byte offset just past the last delivered line's newline.
    public var offset: Int64
    /// `"<k>:<sha256 hex>"` of the k bytes just before `offset` (k = min(64, offset)): a file replaced
    /// under the same name and inode is noticed.
    public var tailHash: String
    /// Lines before `offset`: the next line delivered is number `line + 1`.
    public var line: Int64

    public init(device: UInt64, inode: UInt64, headHash: String, offset: Int64, tailHash: String, line: Int64) {
        self.device = device
        self.inode = inode
        self.headHash = headHash
        self.offset = offset
        self.tailHash = tailHash
        self.line = line
    }

    public var description: String { "dev \(device) inode \(inode) offset \(offset) line \(line)" }
}

/// `[[source]] start_at`: where to begin on a file no checkpoint knows (only the file present when
/// the tailer starts; a file that appears later is always read from 0).
public enum StartAt: String, Sendable, Equatable, CaseIterable {
    case beginning
    /// After the last newline present at start: the lines already there are skipped.
    case end
}

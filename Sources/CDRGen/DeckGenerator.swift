import MeterCore

/// Rate decks for tests and benchmarks that cover every destination `CDRGenerator` writes.
public enum DeckGenerator {
    /// A deck with a catch-all and one row set per `CDRGenerator.destinationPrefixes` entry. With
    /// `windows`, each prefix has peak (mon-fri 08:00–18:00), evening (18:00–24:00), night (00:00–08:00)
    /// and weekend rows at falling rates; with `priceChange` (`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM`), every
    /// row is there twice: the old price list until that date and a dearer one from it. Rates are whole
    /// µcr and come from `seed`, so the same arguments write the same deck.
    public static func deck(windows: Bool, priceChange: String?, seed: UInt64) -> String {
        var rng = Xoshiro256(seed: seed)
        var out = "prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment"
        if windows { out += ",weekdays,time_from,time_to" }
        if priceChange != nil { out += ",effective_from,effective_until" }
        out += ",description\n"
        let increments = [(1, 1), (30, 6), (60, 60), (0, 6)]
        for prefix in ["*"] + CDRGenerator.destinationPrefixes {
            let base = Int64(rng.int(5_000...120_000))
            let (i, s) = increments[rng.below(increments.count)]
            let fee = rng.chance(250) ? Int64(rng.int(1...2_000)) : 0
            // (weekdays, from, to, share of the base rate in percent, name)
            let slots: [(String, String, String, Int64, String)] = windows
                ? [("mon-fri", "08:00", "18:00", 100, "peak"), ("mon-fri", "18:00", "24:00", 50, "evening"),
                   ("mon-fri", "00:00", "08:00", 40, "night"), ("\"sat,sun\"", "", "", 30, "weekend")]
                : [("", "", "", 100, "all day")]
            let lists: [(String, String, Int64, String)] = priceChange.map { [("", $0, 100, "old"), ($0, "", 115, "new")] }
                ?? [("", "", 100, "")]
            for (days, from, to, share, name) in slots {
                for (since, until, raise, list) in lists {
                    let rate = base * share / 100 * raise / 100
                    out += "\(prefix),\(Money.format(rate)),\(Money.format(fee)),\(i),\(s)"
                    if windows { out += ",\(days),\(from),\(to)" }
                    if priceChange != nil { out += ",\(since),\(until)" }
                    out += ",\(prefix == "*" ? "other" : "prefix \(prefix)") \(name)\(list.isEmpty ? "" : " " + list)\n"
                }
            }
        }
        return out
    }
}

/// The integration harness's deck, shared with the deck fuzzer, whose seed deck writes the same
/// destinations in the parser's rarer spellings.
public enum SampleDeck {
    /// The header and the rows both decks write alike (catch-all, NANP, New York, UK, UK mobile,
    /// Germany), each line ending in a newline.
    public static let harnessHead = """
        prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,description
        *,0.05,0,60,60,catch-all
        1,0.0123,0,6,6,NANP
        1212,0.0099,0.001,30,6,New York
        44,0.031,0,1,1,UK
        447,0.107,0.0005,30,1,UK mobile
        49,0.0205,0,60,60,Germany

        """

    /// A deck covering every destination the integration tests use; rates chosen so costs are
    /// rarely whole µcr.
    public static let harness = harnessHead + """
        33,0.02,0,30,6,France
        7,0.009,0,1,1,Russia
        8,0.0333,0.002,45,30,national 8
        9,0.017,0,60,1,national 9

        """
}

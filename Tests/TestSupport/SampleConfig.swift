/// Sections of SPEC's example config. The loader's own tests, the config fuzzer's corpus and the
/// daemon tests each assemble a config around them, so the example they all stand for is one text.
/// Each section ends on its last key (no newline), so a caller may add keys to its last table.
public enum SampleConfig {
    /// `[store]` and the Asterisk `[[source]]`.
    public static let storeAndAsteriskSource = """
        [store]
        path = "/var/lib/creditmeter/creditmeter.db"   # default: $STATE_DIRECTORY/creditmeter.db

        [[source]]
        name = "asterisk"
        path = "/var/log/asterisk/cdr-csv/Master.csv"
        format = "asterisk-csv"
        timezone = "local"
        start_at = "end"            # for a file never seen before
        """

    /// `[accounts]` and the `default` plan.
    public static let accountsAndDefaultPlan = """
        [accounts]
        field = "accountcode"       # the CDR field that names the client's account

        [[plan]]
        name = "default"
        rates = "/etc/creditmeter/rates.csv"   # relative paths are relative to this file
        """

    /// `[thresholds]`, `[delivery]` and the management console's `[[endpoint]]`.
    public static let thresholdsDeliveryAndEndpoint = """
        [thresholds]
        low_percent = 25
        critical_percent = 10

        [delivery]
        balance_interval_seconds = 10
        max_age_hours = 72

        [[endpoint]]
        name = "management"
        url = "https://console.example.com/api/pbx/events"
        events = ["balance.updated", "credit.*", "client.*"]
        secret_file = "/etc/creditmeter/management.secret"
        token_file = "/etc/creditmeter/management.token"
        timeout_seconds = 10
        """

    /// A FreeSWITCH source that takes its CDRs over HTTP (token file relative to the config).
    public static let httpSource = """
        [[source]]
        name = "fs-http"
        receive = "http"
        format = "freeswitch-json"
        token_file = "cdr.token"
        timezone = "UTC"
        """
}

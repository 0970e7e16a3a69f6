// swift-tools-version:6.0
import PackageDescription

// The data flow reads top to bottom in Sources/:
// CDRSource (tail files) → CDRParser (bytes → CDR) → Rater (CDR → cost)
// → Ledger (SQLite: balances, usage, quarantine, positions; each batch's events
//   written in its transaction) → Outbox (events fanned out to endpoints as
//   deliveries, due times, results, retry policy) → Delivery (libcurl webhooks).
// MeterCore holds the pure money/level arithmetic and the shared value types;
// Ingest owns the one line-to-batch loop that `replay` and `run` both use;
// Daemon runs the stages as services for `run`.
let package = Package(
    name: "creditmeter",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "creditmeter", targets: ["creditmeter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt",
                       providers: [.apt(["libcrypt-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"])]),

        .target(name: "MeterCore", path: "Sources/MeterCore"),
        .target(name: "CDRSource", dependencies: [
            "MeterCore",
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Sources/CDRSource"),
        .target(name: "CDRParser", dependencies: [
            "MeterCore",
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Sources/CDRParser"),
        .target(name: "CDRGen", dependencies: ["CDRParser", "MeterCore"], path: "Sources/CDRGen"),
        .target(name: "Rater", dependencies: ["MeterCore"], path: "Sources/Rater"),
        .target(name: "MeterConfig", dependencies: [
            "MeterCore", "CDRParser", "Rater",
            .product(name: "TOMLKit", package: "TOMLKit"),
        ], path: "Sources/MeterConfig"),
        .target(name: "Ledger", dependencies: ["MeterCore", "CSQLite", "CCrypt"], path: "Sources/Ledger"),
        // The same MeteringStore on PostgreSQL (SPEC 12), for several PBX hosts sharing one balance per client.
        .target(name: "LedgerPostgres", dependencies: ["MeterCore", "Ledger", "Outbox", "CLibPQ"], path: "Sources/LedgerPostgres"),
        .target(name: "Ingest", dependencies: [
            "MeterCore", "CDRSource", "CDRParser", "Rater", "MeterConfig", "Ledger",
            .product(name: "Crypto", package: "swift-crypto"),
        ],
                path: "Sources/Ingest"),
        .target(name: "Outbox", dependencies: ["MeterCore", "Ledger"], path: "Sources/Outbox"),
        .target(name: "Delivery", dependencies: [
            "MeterCore", "MeterConfig", "Ledger", "Outbox", "CCurl",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], path: "Sources/Delivery"),
        .target(name: "API", dependencies: [
            "MeterCore", "MeterConfig", "Ledger", "Rater", "CDRParser",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], path: "Sources/API"),
        // The operator console (/console/) and the client portal (/portal/): HTML pages over the API's
        // handler, registered on the API's router; templates, stylesheet and script compiled in.
        .target(name: "Console", dependencies: [
            "MeterCore", "MeterConfig", "Ledger", "API",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Mustache", package: "swift-mustache"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Sources/Console"),
        .target(name: "Daemon", dependencies: [
            "MeterCore", "CDRSource", "CDRParser", "Rater", "MeterConfig", "Ledger", "LedgerPostgres", "Ingest", "Outbox", "Delivery", "API",
            "Console",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ], path: "Sources/Daemon"),
        .executableTarget(name: "creditmeter", dependencies: [
            "MeterCore", "CDRSource", "CDRParser", "CDRGen", "Rater", "MeterConfig", "Ledger", "LedgerPostgres", "Ingest",
            "Outbox", "Delivery", "API", "Daemon",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/creditmeter"),

        .testTarget(name: "MeterCoreTests", dependencies: ["MeterCore"]),
        .testTarget(name: "CDRParserTests", dependencies: ["CDRParser", "CDRGen", "MeterCore"]),
        .testTarget(name: "RaterTests", dependencies: ["Rater", "MeterCore", "TestSupport"]),
        .testTarget(name: "MeterConfigTests", dependencies: ["MeterConfig", "TestSupport"]),
        .testTarget(name: "LedgerTests", dependencies: ["Ledger", "MeterCore", "TestSupport", "CSQLite"]),
        // Against a server given by CREDITMETER_TEST_PG_DIR (scripts/pg-server start DIR); the contract cases
        // run on SQLite and PostgreSQL alike.
        .testTarget(name: "LedgerPostgresTests", dependencies: ["LedgerPostgres", "Ledger", "MeterCore", "TestSupport"]),
        // The pipeline between parser and ledger: attribution, limits, batching, replay totals.
        .testTarget(name: "IngestTests", dependencies: ["Ingest", "Ledger", "CDRParser", "Rater", "MeterCore", "TestSupport"]),
        .testTarget(name: "CDRSourceTests", dependencies: ["CDRSource", "MeterCore", "TestSupport"]),
        // Helpers shared by test targets (the sample webhook receiver as a child process).
        .target(name: "TestSupport", dependencies: ["Ledger", "LedgerPostgres", "MeterCore"], path: "Tests/TestSupport"),
        .testTarget(name: "DeliveryTests", dependencies: ["Delivery", "Outbox", "Ledger", "LedgerPostgres", "MeterCore", "MeterConfig", "TestSupport"]),
        .testTarget(name: "APITests", dependencies: [
            "API", "Ledger", "MeterCore", "MeterConfig", "Rater", "TestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
        .testTarget(name: "ConsoleTests", dependencies: [
            "Console", "API", "Ledger", "MeterCore", "MeterConfig", "TestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
        .testTarget(name: "IntegrationTests", dependencies: ["MeterCore", "CDRGen", "CDRParser", "TestSupport"]),
        // Seeded structured fuzzing of every input parser and the config loader (bench/fuzz.sh runs it bigger).
        .testTarget(name: "FuzzTests", dependencies: ["CDRParser", "CDRGen", "MeterConfig", "Rater", "MeterCore", "TestSupport"]),
    ]
)

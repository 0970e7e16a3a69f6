// swift-tools-version:6.0
import PackageDescription

// The data flow reads top to bottom in Sources/:
// CDRSource (tail files) → CDRParser (bytes → CDR) → Rater (CDR → cost)
// → Ledger (SQLite: balances, usage, quarantine, positions, outbox)
// → Delivery (webhooks). MeterCore holds the pure money/level arithmetic
// that every stage shares; Ingest glues the stages for replay and the daemon.
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
    ],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt",
                       providers: [.apt(["libcrypt-dev"])]),

        .target(name: "MeterCore", path: "Sources/MeterCore"),
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
        .target(name: "Ingest", dependencies: [
            "MeterCore", "CDRParser", "Rater", "MeterConfig", "Ledger",
            .product(name: "Crypto", package: "swift-crypto"),
        ],
                path: "Sources/Ingest"),
        .executableTarget(name: "creditmeter", dependencies: [
            "MeterCore", "CDRParser", "CDRGen", "Rater", "MeterConfig", "Ledger", "Ingest",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/creditmeter"),

        .testTarget(name: "MeterCoreTests", dependencies: ["MeterCore"]),
        .testTarget(name: "CDRParserTests", dependencies: ["CDRParser", "CDRGen", "MeterCore"]),
        .testTarget(name: "RaterTests", dependencies: ["Rater", "MeterCore"]),
        .testTarget(name: "MeterConfigTests", dependencies: ["MeterConfig"]),
        .testTarget(name: "LedgerTests", dependencies: ["Ledger", "MeterCore"]),
        .testTarget(name: "IntegrationTests", dependencies: ["MeterCore", "CDRGen", "CDRParser"]),
    ]
)

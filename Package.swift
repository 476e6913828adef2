// swift-tools-version:6.0
import PackageDescription

// No unsafeFlags, so that other packages can depend on this one by version. What SwiftPM does not
// allow here is passed by the Makefile where it builds libloramixer.so (`make release`): -O3 for
// the C kernels (-Xcc -O3) and, for the library only, the version script
// Sources/LoRAMixerC/exports.map (only lmx_* symbols leave it, in version node LORAMIXER_0) and
// the SONAME libloramixer.so.0. A plain `swift build` works too: the kernels at SwiftPM's own
// optimisation level, the library with every symbol exported and no SONAME.

let package = Package(
    name: "loramixer",
    products: [
        .library(name: "loramixer", type: .dynamic, targets: ["LoRAMixerC"]),
        .library(name: "LoRAMixer", targets: ["LoRAMixer"]),
        .executable(name: "lmx", targets: ["lmx"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // The public C types of include/loramixer.h, seen from Swift through a module map.
        .systemLibrary(name: "CLoRAMixer", path: "Sources/CLoRAMixer"),
        // SIMD kernels and the thread pool, in C: AVX2/FMA/F16C chosen at run time, portable C otherwise.
        .target(
            name: "CKernels",
            path: "Sources/CKernels"
        ),
        .target(
            name: "LoRAMixer",
            dependencies: ["CLoRAMixer", "CKernels", .product(name: "Crypto", package: "swift-crypto")],
            path: "Sources/LoRAMixer"
        ),
        .target(
            name: "LoRAMixerC",
            dependencies: ["LoRAMixer", "CLoRAMixer"],
            path: "Sources/LoRAMixerC",
            exclude: ["exports.map"]
        ),
        .executableTarget(
            name: "lmx",
            dependencies: ["LoRAMixer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/lmx"
        ),
        .testTarget(
            name: "LoRAMixerTests",
            dependencies: ["LoRAMixer"],
            path: "Tests/LoRAMixerTests"
        ),
    ],
    swiftLanguageModes: [.v5],
    cLanguageStandard: .c11
)

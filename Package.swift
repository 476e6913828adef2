// swift-tools-version:6.0
import PackageDescription

// Only lmx_* symbols leave libloramixer.so: the version script hides the Swift core's symbols.
let exportsMap = "\(Context.packageDirectory)/Sources/LoRAMixerC/exports.map"

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
            path: "Sources/CKernels",
            cSettings: [.unsafeFlags(["-O3", "-std=c11"])]
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
            exclude: ["exports.map"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(exportsMap)"])]
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
    swiftLanguageModes: [.v5]
)

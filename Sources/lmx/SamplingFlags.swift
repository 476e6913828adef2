import ArgumentParser
import LoRAMixer

/// The sampling flags shared by `lmx run` and `lmx chat`.
struct SamplingFlags: ParsableArguments {
    @Option(name: .customLong("sample-temperature"),
            help: ArgumentHelp("Sampling temperature; 0 = greedy.", valueName: "t"))
    var sampleTemperature: Float = 0

    @Option(name: .customLong("sample-top-k"),
            help: ArgumentHelp("Sample among the K most likely tokens; 0 = no limit (needs --sample-temperature).", valueName: "k"))
    var sampleTopK: Int?

    @Option(name: .customLong("sample-top-p"),
            help: ArgumentHelp("Nucleus sampling: smallest set of tokens with probability >= P, in (0, 1] (needs --sample-temperature).", valueName: "p"))
    var sampleTopP: Float?

    @Option(help: ArgumentHelp("Random seed for sampling (same seed, same tokens; needs --sample-temperature).", valueName: "n"))
    var seed: UInt64?

    func validate() throws {
        guard sampleTemperature.isFinite, sampleTemperature >= 0 else {
            throw ValidationError("--sample-temperature \(sampleTemperature) must be finite and >= 0 (0 = greedy)")
        }
        if let sampleTopK, sampleTopK < 0 {
            throw ValidationError("--sample-top-k \(sampleTopK) must be >= 0 (0 = no limit)")
        }
        if let sampleTopP, !(sampleTopP.isFinite && sampleTopP > 0 && sampleTopP <= 1) {
            throw ValidationError("--sample-top-p \(sampleTopP) must be in (0, 1]")
        }
        // Greedy decoding would silently ignore the sampling flags: refuse them instead.
        let sampling = [sampleTopK != nil ? "--sample-top-k" : nil, sampleTopP != nil ? "--sample-top-p" : nil,
                        seed != nil ? "--seed" : nil].compactMap { $0 }
        if let flag = sampling.first, sampleTemperature == 0 {
            throw ValidationError("\(flag) applies to sampling only: add --sample-temperature T (T > 0); greedy decoding would ignore it")
        }
    }

    var options: SamplingOptions {
        SamplingOptions(temperature: sampleTemperature, topK: sampleTopK ?? 0, topP: sampleTopP ?? 1, seed: seed ?? 0)
    }
}

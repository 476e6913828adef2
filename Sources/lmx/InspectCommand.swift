import ArgumentParser
import LoRAMixer

/// `lmx inspect PATH`: what a model folder, PEFT adapter folder, router file or safetensors file holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model folder, PEFT adapter folder, router file, any .safetensors file or a .gguf file.",
        discussion: """
            PATH is recognised as: a folder with config.json (a Hugging Face model: config summary, \
            tensors, totals); a folder with adapter_config.json (a PEFT LoRA adapter: rank, alpha, \
            patterns, targets, per-module ranks and scales, tensors); a safetensors file whose \
            __metadata__ has format=loramixer.router (a router: experts in row order, top_k, \
            temperature, scope, input, per-layer tensors); a GGUF file (a .gguf name or the GGUF magic: \
            version, metadata in file order with long arrays abbreviated, tensors with ggml type, \
            dimensions and bytes); any other safetensors file (metadata and tensors). Only headers and configs are read; no model is needed.
            """
    )

    @Argument(help: ArgumentHelp("Model folder, adapter folder, router file, .safetensors or .gguf file.", valueName: "path"))
    var path: String

    @Flag(help: "Print the report as one JSON object instead of text.")
    var json = false

    @Flag(name: .customLong("no-tensors"), help: "Leave out the per-tensor table (totals are still shown).")
    var noTensors = false

    func run() throws {
        let report = try Self.report(for: path, tensorTable: !noTensors)
        print(json ? report.renderJSON().serialized() : report.renderText())
    }

    static func report(for path: String, tensorTable: Bool) throws -> InspectReport {
        guard let kind = fileKind(path) else {
            throw CLIError("\(path) does not exist (no such file or folder)")
        }
        if kind == .folder {
            if fileKind(join(path, "config.json")) != nil {
                return try modelReport(path, tensorTable: tensorTable)
            }
            if fileKind(join(path, "adapter_config.json")) != nil {
                return try adapterReport(path, tensorTable: tensorTable)
            }
            throw CLIError("\(path): folder has neither config.json (a model) nor adapter_config.json (a PEFT adapter)")
        }
        if path.hasSuffix(".json") {
            throw CLIError("\(path): a JSON file; inspect takes a model folder, an adapter folder, a router file or a .safetensors file")
        }
        if kind == .file, isGGUF(path) {
            return try ggufReport(path, tensorTable: tensorTable)
        }
        let file = try SafeTensorsFile(path: path)
        if file.metadata["format"] == "loramixer.router" {
            return routerReport(file, tensorTable: tensorTable)
        }
        return plainReport(file, tensorTable: tensorTable)
    }

    /// `directory/name`, as `NSString.appendingPathComponent` gave it for these plain names.
    static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}

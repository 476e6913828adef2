import Foundation
import XCTest
@testable import LoRAMixer

/// Plugins built with `cc` from small C sources at test time, loaded from Swift.
final class PluginTests: TemporaryFolderTestCase {
    private static let includeDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("include").path

    /// Compiles `body` (C, after `#include <loramixer_plugin.h>`) into `<name>.so`.
    private func plugin(_ name: String, _ body: String) throws -> String {
        let source = (directory as NSString).appendingPathComponent("\(name).c")
        let library = (directory as NSString).appendingPathComponent("\(name).so")
        try ("#include <loramixer_plugin.h>\n#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\n" + body)
            .write(toFile: source, atomically: true, encoding: .utf8)
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-std=c11", "-Wall", "-Werror", "-fPIC", "-shared", "-I", Self.includeDirectory, source, "-o", library]
        try cc.run()
        cc.waitUntilExit()
        XCTAssertEqual(cc.terminationStatus, 0, "cc failed for \(name)")
        return library
    }

    /// A descriptor and entry point around `init` (and optional `shutdown`).
    private func entry(id: String, abi: String = "LMX_PLUGIN_ABI_VERSION", size: String = "sizeof(lmx_plugin_descriptor)",
                       shutdown: String = "NULL") -> String {
        """
        static const lmx_plugin_descriptor descriptor = {\(abi), \(size), "\(id)", "1.0", "test plugin", "MIT", init_plugin, \(shutdown)};
        LMX_PLUGIN_EXPORT const lmx_plugin_descriptor *lmx_plugin_entry(void) { return &descriptor; }
        """
    }

    private func mixer() throws -> Mixer { Mixer(model: try LanguageModel(directory: Fixtures.path("llama_f32"))) }

    /// A custom expert adding s * B (A x) on q_proj must give exactly the logits of the same A/B
    /// as a LoRA expert; and the plugin's PEFT registration equals PeftModel's logits.
    func testCustomExpertMatchesTheSameLoRAAndPeftRegistration() throws {
        let path = try plugin("custom", """
            enum { R = 2, IN = 64, OUT = 96 };
            static float A[R * IN], B[OUT * R];
            static lmx_status forward(void *user, uint32_t layer, uint32_t module, const float *x, float *y,
                                      size_t n, size_t in, size_t out) {
                (void)user; (void)layer; (void)module;
                for (size_t t = 0; t < n; t++) {
                    float z[R] = {0};
                    for (int r = 0; r < R; r++) for (size_t i = 0; i < in; i++) z[r] += A[r * IN + i] * x[t * in + i];
                    for (size_t o = 0; o < out; o++) for (int r = 0; r < R; r++) y[t * out + o] += 0.5f * B[o * R + r] * z[r];
                }
                return LMX_OK;
            }
            static lmx_status init_plugin(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
                (void)config;
                for (int i = 0; i < R * IN; i++) A[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
                for (int i = 0; i < OUT * R; i++) B[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
                uint32_t modules[] = {LMX_MODULE_Q_PROJ}, ins[] = {IN}, outs[] = {OUT};
                lmx_custom_expert_desc desc = {.struct_size = sizeof desc, .modules = modules, .in_features = ins,
                    .out_features = outs, .n_modules = 1, .forward = forward};
                lmx_status s = host->register_custom(reg, "custom", &desc);
                if (s != LMX_OK) return s;
                lmx_lora_tensor tensors[2];
                for (uint32_t l = 0; l < 2; l++) tensors[l] = (lmx_lora_tensor){l, LMX_MODULE_Q_PROJ, IN, OUT, A, B};
                lmx_lora_desc lora = {.struct_size = sizeof lora, .dtype = LMX_DTYPE_F32, .rank = R, .alpha = 1.0f,
                    .tensors = tensors, .n_tensors = 2};
                if ((s = host->register_lora(reg, "same-as-lora", &lora)) != LMX_OK) return s;
                return host->register_peft(reg, "e0", config);
            }
            \(entry(id: "test.custom"))
            """)
        let mixer = try mixer()
        let info = try mixer.loadPlugin(path: path, config: Fixtures.path("llama_f32", "adapters", "e0"))
        XCTAssertEqual(info.expertNames, ["custom", "same-as-lora", "e0"])
        let tokens = try Fixtures.tokens("llama_f32")
        func logits(_ weights: [Float]) throws -> [Float] {
            let session = try mixer.makeSession()
            try session.setRouting(.fixed(weights))
            return try session.evaluate(tokens, logits: .all)
        }
        let custom = try logits([1, 0, 0])
        // alpha 1, rank 2: LoRA scale 0.5, as the custom expert hard-codes.
        assertClose(custom, try logits([0, 1, 0]), tolerance: 1e-5, "custom vs LoRA")
        let base = try Fixtures.expected("llama_f32").tensor("base_logits").floats()
        XCTAssertGreaterThan(zip(custom, base).map { abs($0 - $1) }.max()!, 1e-3, "the custom expert changes the logits")
        assertClose(try logits([0, 0, 1]), try Fixtures.expected("llama_f32").tensor("peft_e0_logits").floats(),
                    tolerance: 1e-4, "PEFT via plugin")
    }

    func testFailuresLeaveTheMixerUnchanged() throws {
        let mixer = try mixer()
        try mixer.addPEFT(name: "e0", directory: Fixtures.path("llama_f32", "adapters", "e0"))
        let failing = try plugin("failing", """
            static lmx_status init_plugin(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
                (void)config;
                host->register_peft(reg, "e1", "\(Fixtures.path("llama_f32", "adapters", "e1"))");
                host->set_error(reg, "the weather is wrong");
                return LMX_ERR_INVALID_ARGUMENT;
            }
            \(entry(id: "test.failing"))
            """)
        assertThrows(.plugin, containing: ["test.failing", "the weather is wrong"]) { try mixer.loadPlugin(path: failing) }

        let badShape = try plugin("bad_shape", """
            static float a[4 * 10], b[96 * 4];
            static lmx_status init_plugin(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
                (void)config;
                host->register_peft(reg, "e1", "\(Fixtures.path("llama_f32", "adapters", "e1"))");
                lmx_lora_tensor t = {0, LMX_MODULE_Q_PROJ, 10, 96, a, b};
                lmx_lora_desc d = {.struct_size = sizeof d, .dtype = LMX_DTYPE_F32, .rank = 4, .alpha = 4, .tensors = &t, .n_tensors = 1};
                host->register_lora(reg, "bad", &d);
                return LMX_OK;  /* ignores the failed registration: the host must not */
            }
            \(entry(id: "test.bad-shape"))
            """)
        assertThrows(.shape, containing: ["test.bad-shape", "'bad'", "q_proj", "10 -> 96", "64 -> 96"]) { try mixer.loadPlugin(path: badShape) }

        let clash = try plugin("clash", """
            static lmx_status init_plugin(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
                (void)config;
                return host->register_peft(reg, "e0", "\(Fixtures.path("llama_f32", "adapters", "e0"))");
            }
            \(entry(id: "test.clash"))
            """)
        assertThrows(.invalidArgument, containing: ["'e0'", "already"]) { try mixer.loadPlugin(path: clash) }

        let wrongABI = try plugin("wrong_abi", """
            static lmx_status init_plugin(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
                (void)host; (void)reg; (void)config; return LMX_OK;
            }
            \(entry(id: "test.abi", abi: "(2u << 16)"))
            """)
        assertThrows(.abi, containing: ["2.0", "1.x"]) { try mixer.loadPlugin(path: wrongABI) }

        let small = try plugin("small", """
            static lmx_status init_plugin(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
                (void)host; (void)reg; (void)config; return LMX_OK;
            }
            \(entry(id: "test.small", size: "8"))
            """)
        assertThrows(.abi, containing: ["struct_size 8"]) { try mixer.loadPlugin(path: small) }

        assertThrows(.io, containing: ["nope.so"]) { try mixer.loadPlugin(path: (directory as NSString).appendingPathComponent("nope.so")) }
        XCTAssertEqual(mixer.experts.map(\.name), ["e0"])
        XCTAssertTrue(mixer.loadedPlugins.isEmpty)
    }

    func testPolicyPinsAndWritableFiles() throws {
        let path = try plugin("policy", """
            static lmx_status init_plugin(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
                (void)config;
                return host->register_peft(reg, "e0", "\(Fixtures.path("llama_f32", "adapters", "e0"))");
            }
            \(entry(id: "test.policy"))
            """)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let digest = Self.sha256Hex(of: path)
        assertThrows(.plugin, containing: ["SHA-256"]) {
            try mixer().loadPlugin(path: path, policy: PluginPolicy(allowedSHA256: [String(repeating: "0", count: 64)]))
        }
        XCTAssertNoThrow(try mixer().loadPlugin(path: path, policy: PluginPolicy(allowedSHA256: [digest.uppercased()])))
        XCTAssertFalse(data.isEmpty)
        try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: path)
        assertThrows(.plugin, containing: ["writable by group or others"]) { try mixer().loadPlugin(path: path) }
        XCTAssertNoThrow(try mixer().loadPlugin(path: path, policy: PluginPolicy(allowWritable: true)))
    }

    /// Experts outlive an unload while a session uses them; shutdown runs after the last user.
    func testUnloadKeepsTheLibraryUntilTheLastSessionEnds() throws {
        let marker = (directory as NSString).appendingPathComponent("shutdown.txt")
        let path = try plugin("lifetime", """
            static char marker[4096];
            static lmx_status forward(void *u, uint32_t l, uint32_t m, const float *x, float *y, size_t n, size_t in, size_t out) {
                (void)u; (void)l; (void)m;
                for (size_t t = 0; t < n; t++) for (size_t o = 0; o < out; o++) y[t * out + o] += 0.01f * x[t * in + o % in];
                return LMX_OK;
            }
            static void shutdown_plugin(void) { FILE *f = fopen(marker, "w"); if (f) { fputs("down", f); fclose(f); } }
            static lmx_status init_plugin(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
                snprintf(marker, sizeof marker, "%s", config);
                uint32_t modules[] = {LMX_MODULE_DOWN_PROJ}, ins[] = {96}, outs[] = {64};
                lmx_custom_expert_desc d = {.struct_size = sizeof d, .modules = modules, .in_features = ins,
                    .out_features = outs, .n_modules = 1, .forward = forward};
                return host->register_custom(reg, "scaler", &d);
            }
            \(entry(id: "test.lifetime", shutdown: "shutdown_plugin"))
            """)
        let tokens = try Fixtures.tokens("llama_f32")
        var session: Session?
        do {
            let mixer = try mixer()
            try mixer.loadPlugin(path: path, config: marker)
            session = try mixer.makeSession()
            try session?.setRouting(.uniform)
            try mixer.unloadPlugin(id: "test.lifetime")
            XCTAssertTrue(mixer.experts.isEmpty)
            assertThrows(.notFound, containing: ["test.lifetime"]) { try mixer.unloadPlugin(id: "test.lifetime") }
        }
        let logits = try XCTUnwrap(session).evaluate(tokens, logits: .all)
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "shutdown must wait for the session")
        session = nil
        XCTAssertEqual(try String(contentsOfFile: marker, encoding: .utf8), "down")
    }

    private static func sha256Hex(of path: String) -> String {
        let process = Process()
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sha256sum", path]
        process.standardOutput = pipe
        try? process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return String(output.prefix(64))
    }
}

import Glibc
import LoRAMixer

/// The live progress line of `lmx train` on stderr: redrawn in place on a terminal, one line every
/// few percent otherwise (logs, CI).
final class ProgressLine {
    let enabled: Bool
    let total: Int
    private let terminal = isatty(STDERR_FILENO) != 0
    private var drawn = false

    init(enabled: Bool, total: Int) {
        self.enabled = enabled
        self.total = total
    }

    func note(_ text: String) {
        guard enabled else { return }
        writeStandardError("\(text)\n")
    }

    func update(_ p: TrainingProgress) {
        guard enabled else { return }
        let width = 24
        let filled = min(width, p.step * width / max(p.totalSteps, 1))
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        var line = "[\(bar)] step \(p.step)/\(p.totalSteps)  loss \(format(p.loss, 4))  ce \(format(p.crossEntropy, 4))"
        if p.balance != 0 || p.entropyTerm != 0 { line += "  rsl \(format(p.balance + p.entropyTerm, 4))" }
        line += "  \(Int(p.tokensPerSecond)) tok/s  ETA \(duration(p.etaSeconds))"
        if terminal {
            writeStandardError("\r\(line)\u{1B}[K")
            drawn = true
        } else if p.step == p.totalSteps || p.step % max(1, total / 20) == 0 || p.step == 1 {
            writeStandardError("\(line)\n")
        }
    }

    func finish() {
        if drawn { writeStandardError("\n") }
        drawn = false
    }

    private func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(cFormat("%02ld", s % 3600 / 60))m" : s >= 60 ? "\(s / 60)m\(cFormat("%02ld", s % 60))s" : "\(s)s"
    }
}

func format(_ value: Double, _ digits: Int) -> String { cFormat("%.\(digits)f", value) }

/// The final report of `lmx train`, as plain-text tables.
enum ReportTable {
    static func render(_ report: TrainingReport) -> String {
        var lines: [String] = []
        if let last = report.steps.last {
            let first = report.steps.first!
            let start = (report.resumedFromStep ?? 0) + 1
            if start <= last.step {
                lines.append("steps \(start)-\(last.step) of \(last.totalSteps) in \(format(last.elapsedSeconds, 1)) s, \(Int(last.tokensPerSecond)) tokens/s")
            } else {
                lines.append("no steps left: the run was complete at step \(last.step) of \(last.totalSteps)")
            }
            lines.append("")
            lines.append(row(["", "loss", "ce", "balance", "entropy", "preserve", "lr", "grad norm"]))
            for (label, p) in [("first", first), ("last", last)] {
                lines.append(row([label, format(p.loss, 4), format(p.crossEntropy, 4), format(p.balance, 4), format(p.entropyTerm, 4),
                                  format(p.preserve, 4), cFormat("%.2e", p.learningRate), format(p.gradientNorm, 3)]))
            }
            if !last.expertLoad.isEmpty {
                lines.append("")
                lines.append(row(["expert", "load (last step)"]))
                for (name, load) in zip(report.experts, last.expertLoad) { lines.append(row([name, format(Double(load), 3)])) }
                lines.append("")
                lines.append(row(["layer", "mean entropy (nats)"]))
                for (layer, entropy) in last.layerEntropy.enumerated() { lines.append(row([String(layer), format(Double(entropy), 3)])) }
            }
        }
        if !report.evaluation.isEmpty {
            lines.append("")
            lines.append(row(["task", "examples", "ce", "exact match"]))
            for task in report.evaluation {
                lines.append(row([task.task, String(task.examples), format(task.crossEntropy, 4), format(task.exactMatch, 3)]))
            }
        }
        if !report.files.isEmpty {
            lines.append("")
            lines.append("wrote: " + report.files.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    private static func row(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in
            index == 0 ? cell.padded(toLength: 12) : String(repeating: " ", count: max(0, 12 - cell.count)) + cell
        }.joined()
    }
}

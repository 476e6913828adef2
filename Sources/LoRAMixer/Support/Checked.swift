/// Size arithmetic that throws instead of trapping: file contents decide these numbers, and a
/// trap would kill the host process.
@inlinable
func checkedProduct(_ factors: [Int], _ what: @autoclosure () -> String) throws -> Int {
    var result = 1
    for factor in factors {
        guard factor >= 0 else { throw LoRAMixerError.format("\(what()): negative dimension \(factor)") }
        let (product, overflow) = result.multipliedReportingOverflow(by: factor)
        guard !overflow else { throw LoRAMixerError.outOfMemory("\(what()): size \(factors) overflows") }
        result = product
    }
    return result
}

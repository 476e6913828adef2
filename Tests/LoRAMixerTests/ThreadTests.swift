import Foundation
import XCTest
@testable import LoRAMixer

final class ThreadTests: XCTestCase {
    /// One model and mixer shared by two threads, each with its own session, gives exactly the
    /// logits of sequential runs.
    func testSessionsOnSharedModelRunInParallel() throws {
        let mixer = try Fixtures.mixer("llama_f32")
        let tokens = try Fixtures.tokens("llama_f32")
        let sequential = try mixer.makeSession().evaluate(tokens, logits: .all)
        let results = ResultBox(count: 2)
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            do {
                var outputs: [[Float]] = []
                for _ in 0..<10 {
                    let session = try mixer.makeSession()
                    outputs.append(try session.evaluate(tokens, logits: .all))
                }
                results.set(index, outputs)
            } catch {
                results.set(index, [])
            }
        }
        for index in 0..<2 {
            let outputs = results.get(index)
            XCTAssertEqual(outputs.count, 10)
            for output in outputs { XCTAssertEqual(output, sequential) }
        }
    }
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [[[Float]]]
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ index: Int, _ value: [[Float]]) { lock.withLock { values[index] = value } }
    func get(_ index: Int) -> [[Float]] { lock.withLock { values[index] } }
}

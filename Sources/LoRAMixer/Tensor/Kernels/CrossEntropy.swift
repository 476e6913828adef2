import Glibc

/// Next-token cross-entropy and its gradient for the rows of `logits` that have a target:
///   loss = sum_r -log softmax(logits[r])[targets[r]] * weight;  dLogits[r] = (softmax - onehot) * weight
///   logits: [R, V] (overwritten by dLogits), targets: [R]. Returns the summed loss (times weight).
func crossEntropyForwardBackward(_ logits: UnsafeMutablePointer<Float>, targets: [Int32], vocab: Int, weight: Float) -> Double {
    var loss: Double = 0
    for (r, target) in targets.enumerated() {
        let row = logits + r * vocab
        var maximum = row[0]
        for i in 1..<vocab where row[i] > maximum { maximum = row[i] }
        var sum: Double = 0
        for i in 0..<vocab { sum += Double(exp(row[i] - maximum)) }
        loss += (log(sum) + Double(maximum) - Double(row[Int(target)])) * Double(weight)
        softmaxInPlace(row, vocab)
        row[Int(target)] -= 1
        for i in 0..<vocab { row[i] *= weight }
    }
    return loss
}

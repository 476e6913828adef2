/// An expression of the template language, with the source offset it starts at so render-time
/// errors can name a position.
final class TemplateExpression {
    enum Kind {
        case literal(TemplateValue)
        case variable(String)
        case list([TemplateExpression])
        case tuple([TemplateExpression])
        case dict([(TemplateExpression, TemplateExpression)])
        case attribute(TemplateExpression, String)
        case index(TemplateExpression, TemplateExpression)
        case slice(TemplateExpression, TemplateExpression?, TemplateExpression?, TemplateExpression?)
        case call(TemplateExpression, TemplateCallArguments)
        case filter(TemplateExpression, String, TemplateCallArguments)
        case test(TemplateExpression, String, TemplateCallArguments, negated: Bool)
        case not(TemplateExpression)
        case negate(TemplateExpression)
        case plus(TemplateExpression)
        case binary(String, TemplateExpression, TemplateExpression)
        case and(TemplateExpression, TemplateExpression)
        case or(TemplateExpression, TemplateExpression)
        case conditional(TemplateExpression, then: TemplateExpression, otherwise: TemplateExpression?)
    }

    let kind: Kind
    let offset: Int
    /// The length of the longest path to a leaf, which bounds the recursion of rendering it.
    let height: Int

    init(_ kind: Kind, at offset: Int) {
        self.kind = kind
        self.offset = offset
        self.height = 1 + Self.children(of: kind).reduce(0) { max($0, $1.height) }
    }

    private static func children(of kind: Kind) -> [TemplateExpression] {
        switch kind {
        case .literal, .variable: return []
        case .list(let items), .tuple(let items): return items
        case .dict(let pairs): return pairs.flatMap { [$0.0, $0.1] }
        case .attribute(let target, _): return [target]
        case .index(let target, let key): return [target, key]
        case .slice(let target, let start, let stop, let step): return [target] + [start, stop, step].compactMap { $0 }
        case .call(let target, let arguments), .filter(let target, _, let arguments), .test(let target, _, let arguments, _):
            return [target] + arguments.positional + arguments.keyword.map(\.1)
        case .not(let operand), .negate(let operand), .plus(let operand): return [operand]
        case .binary(_, let left, let right), .and(let left, let right), .or(let left, let right): return [left, right]
        case .conditional(let condition, let then, let otherwise): return [condition, then] + [otherwise].compactMap { $0 }
        }
    }
}

/// The arguments written in a call, a filter or a test.
struct TemplateCallArguments {
    var positional: [TemplateExpression] = []
    var keyword: [(String, TemplateExpression)] = []
}

/// What `{% set %}` assigns to: one name, several names unpacked from a sequence, or an
/// attribute of a namespace.
enum TemplateSetTarget {
    case names([String])
    case attribute(String, String)
}

/// A statement or piece of output of the template body.
indirect enum TemplateNode {
    case text(String, offset: Int)
    case output(TemplateExpression)
    case conditional([(TemplateExpression, [TemplateNode])], otherwise: [TemplateNode])
    case loop(TemplateLoop)
    case set(TemplateSetTarget, TemplateExpression, offset: Int)
    case setBlock(String, [TemplateNode])
    case breakLoop(offset: Int)
    case continueLoop(offset: Int)
    /// transformers' `{% generation %}` block: renders its body unchanged.
    case generation([TemplateNode])
}

/// `{% for targets in iterable if filter %} body {% else %} otherwise {% endfor %}`.
struct TemplateLoop {
    let targets: [String]
    let iterable: TemplateExpression
    let filter: TemplateExpression?
    let body: [TemplateNode]
    let otherwise: [TemplateNode]
    let offset: Int
}

/// Walks a compiled template's syntax tree and writes its output. Work is bounded: loop
/// iterations in total, the output size and every string or list built along the way are capped,
/// so a template such as `{% for i in range(10**9) %}` ends with an error instead of hanging.
struct TemplateRenderer {
    static let maximumIterations = 1_000_000
    static let maximumOutputScalars = 16 << 20

    let source: TemplateSource
    var output = ""
    var outputScalars = 0
    var iterations = 0
    var scopes: [[String: TemplateValue]]
    let budget = TemplateBudget()

    init(source: TemplateSource, globals: [String: TemplateValue]) {
        self.source = source
        self.scopes = [globals]
    }

    enum Flow { case normal, breakLoop, continueLoop }

    func lookup(_ name: String) -> TemplateValue? {
        for scope in scopes.reversed() {
            if let value = scope[name] { return value }
        }
        return nil
    }

    mutating func assign(_ name: String, _ value: TemplateValue) {
        scopes[scopes.count - 1][name] = value
    }

    mutating func write(_ text: String, at offset: Int) throws {
        outputScalars += text.unicodeScalars.count
        guard outputScalars <= Self.maximumOutputScalars else {
            throw source.error("output exceeds the limit of \(Self.maximumOutputScalars) characters", at: offset)
        }
        output += text
    }

    /// Checks the size of a string or list about to be built.
    func checkSize(_ count: Int, at offset: Int) throws {
        guard count <= Self.maximumOutputScalars else {
            throw TemplateRenderError("a value of \(count) items exceeds the limit of \(Self.maximumOutputScalars)")
        }
    }

    /// Refuses a value nested deeper than `TemplateBudget.maximumValueDepth` (printing, comparing
    /// and releasing it recurse), charging the walk to the work budget.
    func checkNesting(_ value: TemplateValue, depth: Int = 0) throws {
        try budget.charge(1)
        guard depth <= TemplateBudget.maximumValueDepth else {
            throw TemplateRenderError("a value nested deeper than \(TemplateBudget.maximumValueDepth) levels")
        }
        switch value {
        case .list(let items), .tuple(let items): for item in items { try checkNesting(item, depth: depth + 1) }
        case .dict(let dict): for item in dict.values { try checkNesting(item, depth: depth + 1) }
        default: break
        }
    }

    /// Runs `body`, attaching `offset` to a `TemplateRenderError` it throws.
    func located<T>(_ offset: Int, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as TemplateRenderError {
            throw source.error(error.reason, at: offset)
        }
    }

    mutating func render(_ nodes: [TemplateNode]) throws -> Flow {
        for node in nodes {
            let flow = try render(node)
            if flow != .normal { return flow }
        }
        return .normal
    }

    mutating func render(_ node: TemplateNode) throws -> Flow {
        switch node {
        case .text(let text, let offset):
            try write(text, at: offset)
        case .output(let expression):
            try write(try evaluate(expression).pythonString, at: expression.offset)
        case .conditional(let branches, let otherwise):
            for (condition, body) in branches where try evaluate(condition).isTruthy {
                return try render(body)
            }
            return try render(otherwise)
        case .loop(let loop):
            return try renderLoop(loop)
        case .set(let target, let expression, let offset):
            let value = try evaluate(expression)
            try assign(target, value, at: offset)
        case .setBlock(let name, let body):
            let saved = output
            let savedCount = outputScalars
            output = ""
            let flow = try render(body)
            let captured = output
            output = saved
            outputScalars = savedCount
            assign(name, .string(captured))
            return flow
        case .breakLoop(let offset), .continueLoop(let offset):
            guard scopes.count > 1 else {
                throw source.error("'break' or 'continue' outside a for loop", at: offset)
            }
            if case .breakLoop = node { return .breakLoop }
            return .continueLoop
        case .generation(let body):
            return try render(body)
        }
        return .normal
    }

    private mutating func assign(_ target: TemplateSetTarget, _ value: TemplateValue, at offset: Int) throws {
        switch target {
        case .names(let names) where names.count == 1:
            assign(names[0], value)
        case .names(let names):
            let items = try located(offset) { try iterate(value, at: offset) }
            guard items.count == names.count else {
                throw source.error("cannot unpack \(items.count) values into \(names.count) names", at: offset)
            }
            for (name, item) in zip(names, items) { assign(name, item) }
        case .attribute(let name, let attribute):
            guard case .namespace(let namespace)? = lookup(name) else {
                throw source.error("cannot assign attribute '\(attribute)' on '\(name)': only a namespace() can be assigned to", at: offset)
            }
            guard !attribute.hasPrefix("_") else {
                throw source.error("a namespace attribute cannot start with '_' ('\(attribute)')", at: offset)
            }
            namespace.attributes[attribute] = value
        }
    }

    /// The items a for loop or filter walks: a list's elements, a dict's keys, a string's characters.
    func iterate(_ value: TemplateValue, at offset: Int) throws -> [TemplateValue] {
        switch value {
        case .undefined: return []
        case .list(let items), .tuple(let items): return items
        case .dict(let dict): return dict.keys.map { .string($0) }
        case .string(let text): return text.unicodeScalars.map { .string(String($0)) }
        default: throw TemplateRenderError("'\(value.typeName)' object is not iterable")
        }
    }

    private mutating func renderLoop(_ loop: TemplateLoop) throws -> Flow {
        let iterable = try evaluate(loop.iterable)
        var items = try located(loop.iterable.offset) { try iterate(iterable, at: loop.iterable.offset) }
        scopes.append([:])
        defer { scopes.removeLast() }
        if let filter = loop.filter {
            var kept: [TemplateValue] = []
            for item in items {
                try countIteration(at: loop.offset)
                try bind(loop.targets, to: item, at: loop.offset)
                if try evaluate(filter).isTruthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            _ = try render(loop.otherwise)
            return .normal
        }
        for (position, item) in items.enumerated() {
            try countIteration(at: loop.offset)
            var info = TemplateDict()
            info["index"] = .int(position + 1)
            info["index0"] = .int(position)
            info["revindex"] = .int(items.count - position)
            info["revindex0"] = .int(items.count - position - 1)
            info["first"] = .bool(position == 0)
            info["last"] = .bool(position == items.count - 1)
            info["length"] = .int(items.count)
            info["depth"] = .int(1)
            info["depth0"] = .int(0)
            info["previtem"] = position > 0 ? items[position - 1] : .undefined("there is no previous item")
            info["nextitem"] = position + 1 < items.count ? items[position + 1] : .undefined("there is no next item")
            assign("loop", .dict(info))
            try bind(loop.targets, to: item, at: loop.offset)
            if try render(loop.body) == .breakLoop { break }
        }
        return .normal
    }

    private mutating func countIteration(at offset: Int) throws {
        iterations += 1
        try located(offset) { try budget.charge(1) }
        guard iterations <= Self.maximumIterations else {
            throw source.error("loops ran more than \(Self.maximumIterations) iterations in total", at: offset)
        }
    }

    private mutating func bind(_ targets: [String], to item: TemplateValue, at offset: Int) throws {
        if targets.count == 1 {
            assign(targets[0], item)
            return
        }
        let parts = try located(offset) { try iterate(item, at: offset) }
        guard parts.count == targets.count else {
            throw source.error("cannot unpack \(parts.count) values into \(targets.count) loop variables", at: offset)
        }
        for (name, part) in zip(targets, parts) { assign(name, part) }
    }
}

/// Work counters shared by the renderer's non-mutating helpers: total steps and namespaces
/// created, each capped so that no template can run or allocate without bound.
final class TemplateBudget {
    static let maximumWork = 50_000_000
    static let maximumNamespaces = 1_000
    static let maximumValueDepth = 128

    private(set) var work = 0
    private(set) var namespaces = 0

    func charge(_ steps: Int) throws {
        work += steps
        guard work <= Self.maximumWork else {
            throw TemplateRenderError("rendering took more than \(Self.maximumWork) steps")
        }
    }

    func countNamespace() throws {
        namespaces += 1
        guard namespaces <= Self.maximumNamespaces else {
            throw TemplateRenderError("more than \(Self.maximumNamespaces) namespace() objects")
        }
    }
}

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
            throw source.error("a value of \(count) items exceeds the limit of \(Self.maximumOutputScalars)", at: offset)
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
        case .text(let text):
            try write(text, at: 0)
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
            let items = try iterate(value, at: offset)
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
        case .list(let items): return items
        case .dict(let dict): return dict.keys.map { .string($0) }
        case .string(let text): return text.map { .string(String($0)) }
        default: throw source.error("'\(value.typeName)' object is not iterable", at: offset)
        }
    }

    private mutating func renderLoop(_ loop: TemplateLoop) throws -> Flow {
        var items = try iterate(try evaluate(loop.iterable), at: loop.iterable.offset)
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
        guard iterations <= Self.maximumIterations else {
            throw source.error("loops ran more than \(Self.maximumIterations) iterations in total", at: offset)
        }
    }

    private mutating func bind(_ targets: [String], to item: TemplateValue, at offset: Int) throws {
        if targets.count == 1 {
            assign(targets[0], item)
            return
        }
        let parts = try iterate(item, at: offset)
        guard parts.count == targets.count else {
            throw source.error("cannot unpack \(parts.count) values into \(targets.count) loop variables", at: offset)
        }
        for (name, part) in zip(targets, parts) { assign(name, part) }
    }
}

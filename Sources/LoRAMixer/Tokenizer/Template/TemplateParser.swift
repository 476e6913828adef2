/// Builds the syntax tree of a chat template from its tokens, with jinja2's grammar and operator
/// precedence. Tags and constructs outside the supported subset are refused here, naming the
/// construct and its position; nesting deeper than `maximumDepth` is refused so that neither
/// parsing nor rendering can exhaust the stack.
struct TemplateParser {
    static let maximumDepth = 64

    let source: TemplateSource
    private let tokens: [TemplateToken]
    private var index = 0
    private var depth = 0

    init(tokens: [TemplateToken], source: TemplateSource) {
        self.tokens = tokens
        self.source = source
    }

    static func parse(_ source: TemplateSource) throws -> [TemplateNode] {
        var parser = TemplateParser(tokens: try TemplateLexer.tokenize(source), source: source)
        let (nodes, stop) = try parser.parseBody(until: [])
        if let stop {
            throw source.error("unexpected '{% \(stop.name) %}' with no open block it could end", at: stop.offset)
        }
        return nodes
    }

    // MARK: - Token helpers

    private var current: TemplateToken { tokens[min(index, tokens.count - 1)] }

    private mutating func advance() -> TemplateToken {
        let token = current
        if index < tokens.count - 1 { index += 1 }
        return token
    }

    private func isSymbol(_ symbol: String) -> Bool { current.kind == .symbol(symbol) }
    private func isName(_ name: String) -> Bool { current.kind == .name(name) }

    private mutating func expectSymbol(_ symbol: String) throws {
        guard isSymbol(symbol) else {
            throw source.error("expected '\(symbol)', found \(current.display)", at: current.offset)
        }
        index += 1
    }

    private mutating func expectName() throws -> String {
        guard case .name(let name) = current.kind else {
            throw source.error("expected a name, found \(current.display)", at: current.offset)
        }
        index += 1
        return name
    }

    private mutating func expectStatementEnd() throws {
        guard current.kind == .statementEnd else {
            throw source.error("expected '%}', found \(current.display)", at: current.offset)
        }
        index += 1
    }

    private mutating func enter(_ offset: Int) throws {
        depth += 1
        guard depth <= Self.maximumDepth else {
            throw source.error("nesting deeper than \(Self.maximumDepth) levels", at: offset)
        }
    }

    /// A new expression node; refuses one nested deeper than `maximumDepth`.
    private func make(_ kind: TemplateExpression.Kind, at offset: Int) throws -> TemplateExpression {
        let node = TemplateExpression(kind, at: offset)
        guard node.height <= Self.maximumDepth else {
            throw source.error("expression nested deeper than \(Self.maximumDepth) levels", at: offset)
        }
        return node
    }

    // MARK: - Statements

    /// Parses nodes until a `{% name %}` tag whose name is in `stops` (consumed up to the name),
    /// or the end of the template (then `stop` is nil).
    private mutating func parseBody(until stops: Set<String>) throws -> ([TemplateNode], (name: String, offset: Int)?) {
        var nodes: [TemplateNode] = []
        while true {
            let token = advance()
            switch token.kind {
            case .end:
                return (nodes, nil)
            case .text(let text):
                nodes.append(.text(text, offset: token.offset))
            case .expressionBegin:
                let expression = try parseExpression()
                guard current.kind == .expressionEnd else {
                    throw source.error("expected '}}', found \(current.display)", at: current.offset)
                }
                index += 1
                nodes.append(.output(expression))
            case .statementBegin:
                guard case .name(let name) = current.kind else {
                    throw source.error("expected a tag name after '{%', found \(current.display)", at: current.offset)
                }
                let offset = current.offset
                if stops.contains(name) {
                    index += 1
                    return (nodes, (name, offset))
                }
                index += 1
                nodes.append(try parseStatement(name, at: offset))
            default:
                throw source.error("unexpected \(token.display)", at: token.offset)
            }
        }
    }

    private mutating func parseStatement(_ name: String, at offset: Int) throws -> TemplateNode {
        try enter(offset)
        defer { depth -= 1 }
        switch name {
        case "if": return try parseIf(at: offset)
        case "for": return try parseFor(at: offset)
        case "set": return try parseSet(at: offset)
        case "break", "continue":
            try expectStatementEnd()
            return name == "break" ? .breakLoop(offset: offset) : .continueLoop(offset: offset)
        case "generation":
            try expectStatementEnd()
            let body = try parseBlockBody(opener: "generation", at: offset, stops: ["endgeneration"])
            try expectStatementEnd()
            return .generation(body.nodes)
        case "endif", "endfor", "else", "elif", "endset", "endgeneration":
            throw source.error("unexpected '{% \(name) %}' with no open block it could end", at: offset)
        default:
            throw source.error("unsupported tag '\(name)'", at: offset)
        }
    }

    private mutating func parseBlockBody(opener: String, at offset: Int, stops: Set<String>)
        throws -> (nodes: [TemplateNode], stop: String) {
        let (nodes, stop) = try parseBody(until: stops)
        guard let stop else {
            let names = stops.sorted().map { "'{% \($0) %}'" }.joined(separator: " or ")
            throw source.error("'{% \(opener) %}' opened here is never closed with \(names)", at: offset)
        }
        return (nodes, stop.name)
    }

    private mutating func parseIf(at offset: Int) throws -> TemplateNode {
        var branches: [(TemplateExpression, [TemplateNode])] = []
        var condition = try parseExpression()
        while true {
            try expectStatementEnd()
            let (nodes, stop) = try parseBlockBody(opener: "if", at: offset, stops: ["elif", "else", "endif"])
            branches.append((condition, nodes))
            switch stop {
            case "elif":
                condition = try parseExpression()
            case "else":
                try expectStatementEnd()
                let (otherwise, _) = try parseBlockBody(opener: "if", at: offset, stops: ["endif"])
                try expectStatementEnd()
                return .conditional(branches, otherwise: otherwise)
            default:
                try expectStatementEnd()
                return .conditional(branches, otherwise: [])
            }
        }
    }

    private mutating func parseFor(at offset: Int) throws -> TemplateNode {
        var targets = [try expectName()]
        while isSymbol(",") {
            index += 1
            targets.append(try expectName())
        }
        guard isName("in") else {
            throw source.error("expected 'in' in the for loop, found \(current.display)", at: current.offset)
        }
        index += 1
        let iterable = try parseTuple(allowConditional: false)
        var filter: TemplateExpression?
        if isName("if") {
            index += 1
            filter = try parseExpression()
        }
        if isName("recursive") {
            throw source.error("unsupported construct 'recursive' loop", at: current.offset)
        }
        try expectStatementEnd()
        let (body, stop) = try parseBlockBody(opener: "for", at: offset, stops: ["else", "endfor"])
        var otherwise: [TemplateNode] = []
        if stop == "else" {
            try expectStatementEnd()
            otherwise = try parseBlockBody(opener: "for", at: offset, stops: ["endfor"]).nodes
        }
        try expectStatementEnd()
        return .loop(TemplateLoop(targets: targets, iterable: iterable, filter: filter, body: body,
                                  otherwise: otherwise, offset: offset))
    }

    private mutating func parseSet(at offset: Int) throws -> TemplateNode {
        let first = try expectName()
        var target = TemplateSetTarget.names([first])
        if isSymbol(".") {
            index += 1
            target = .attribute(first, try expectName())
        } else if isSymbol(",") {
            var names = [first]
            while isSymbol(",") {
                index += 1
                names.append(try expectName())
            }
            target = .names(names)
        }
        if current.kind == .statementEnd, case .names(let names) = target, names.count == 1 {
            index += 1
            let body = try parseBlockBody(opener: "set", at: offset, stops: ["endset"])
            try expectStatementEnd()
            return .setBlock(first, body.nodes)
        }
        try expectSymbol("=")
        let value = try parseTuple(allowConditional: true)
        try expectStatementEnd()
        return .set(target, value, offset: offset)
    }

    // MARK: - Expressions (lowest precedence first)

    /// An expression, or several separated by commas (a tuple, kept as a list).
    private mutating func parseTuple(allowConditional: Bool) throws -> TemplateExpression {
        let offset = current.offset
        let first = allowConditional ? try parseExpression() : try parseOr()
        guard isSymbol(",") else { return first }
        var items = [first]
        while isSymbol(",") {
            index += 1
            if current.kind == .statementEnd || current.kind == .expressionEnd || isSymbol(")") { break }
            items.append(allowConditional ? try parseExpression() : try parseOr())
        }
        return try make(.tuple(items), at: offset)
    }

    mutating func parseExpression() throws -> TemplateExpression {
        try enter(current.offset)
        defer { depth -= 1 }
        let offset = current.offset
        let value = try parseOr()
        guard isName("if") else { return value }
        index += 1
        let condition = try parseOr()
        var otherwise: TemplateExpression?
        if isName("else") {
            index += 1
            otherwise = try parseExpression()
        }
        return try make(.conditional(condition, then: value, otherwise: otherwise), at: offset)
    }

    private mutating func parseOr() throws -> TemplateExpression {
        var left = try parseAnd()
        while isName("or") {
            let offset = advance().offset
            left = try make(.or(left, try parseAnd()), at: offset)
        }
        return left
    }

    private mutating func parseAnd() throws -> TemplateExpression {
        var left = try parseNot()
        while isName("and") {
            let offset = advance().offset
            left = try make(.and(left, try parseNot()), at: offset)
        }
        return left
    }

    private mutating func parseNot() throws -> TemplateExpression {
        if isName("not") {
            let offset = advance().offset
            try enter(offset)
            defer { depth -= 1 }
            return try make(.not(try parseNot()), at: offset)
        }
        return try parseComparison()
    }

    private mutating func parseComparison() throws -> TemplateExpression {
        var left = try parseAdditive()
        while true {
            let offset = current.offset
            let op: String
            if case .symbol(let symbol) = current.kind, ["==", "!=", "<", "<=", ">", ">="].contains(symbol) {
                op = symbol
                index += 1
            } else if isName("in") {
                op = "in"
                index += 1
            } else if isName("not"), index + 1 < tokens.count, tokens[index + 1].kind == .name("in") {
                op = "not in"
                index += 2
            } else {
                return left
            }
            left = try make(.binary(op, left, try parseAdditive()), at: offset)
        }
    }

    private mutating func parseAdditive() throws -> TemplateExpression {
        var left = try parseConcatenation()
        while case .symbol(let symbol) = current.kind, symbol == "+" || symbol == "-" {
            let offset = advance().offset
            left = try make(.binary(symbol, left, try parseConcatenation()), at: offset)
        }
        return left
    }

    private mutating func parseConcatenation() throws -> TemplateExpression {
        var left = try parseMultiplicative()
        while isSymbol("~") {
            let offset = advance().offset
            left = try make(.binary("~", left, try parseMultiplicative()), at: offset)
        }
        return left
    }

    private mutating func parseMultiplicative() throws -> TemplateExpression {
        var left = try parsePower()
        while case .symbol(let symbol) = current.kind, ["*", "/", "//", "%"].contains(symbol) {
            let offset = advance().offset
            left = try make(.binary(symbol, left, try parsePower()), at: offset)
        }
        return left
    }

    private mutating func parsePower() throws -> TemplateExpression {
        var left = try parseUnary(withFilter: true)
        while isSymbol("**") {
            let offset = advance().offset
            left = try make(.binary("**", left, try parseUnary(withFilter: true)), at: offset)
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool) throws -> TemplateExpression {
        let offset = current.offset
        var node: TemplateExpression
        if isSymbol("-") || isSymbol("+") {
            let negative = isSymbol("-")
            index += 1
            try enter(offset)
            defer { depth -= 1 }
            let operand = try parseUnary(withFilter: false)
            node = TemplateExpression(negative ? .negate(operand) : .plus(operand), at: offset)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFiltersAndTests(node) }
        return node
    }

    private mutating func parsePrimary() throws -> TemplateExpression {
        let token = current
        switch token.kind {
        case .name(let name):
            index += 1
            switch name {
            case "true", "True": return try make(.literal(.bool(true)), at: token.offset)
            case "false", "False": return try make(.literal(.bool(false)), at: token.offset)
            case "none", "None": return try make(.literal(.none), at: token.offset)
            default: return try make(.variable(name), at: token.offset)
            }
        case .string(var text):
            index += 1
            while case .string(let more) = current.kind {
                text += more
                index += 1
            }
            return try make(.literal(.string(text)), at: token.offset)
        case .integer(let value):
            index += 1
            return try make(.literal(.int(value)), at: token.offset)
        case .float(let value):
            index += 1
            return try make(.literal(.double(value)), at: token.offset)
        case .symbol("("):
            index += 1
            try enter(token.offset)
            defer { depth -= 1 }
            if isSymbol(")") {
                index += 1
                return try make(.tuple([]), at: token.offset)
            }
            let inner = try parseTuple(allowConditional: true)
            try expectSymbol(")")
            return inner
        case .symbol("["):
            index += 1
            try enter(token.offset)
            defer { depth -= 1 }
            var items: [TemplateExpression] = []
            while !isSymbol("]") {
                if !items.isEmpty { try expectSymbol(",") }
                if isSymbol("]") { break }
                items.append(try parseExpression())
            }
            index += 1
            return try make(.list(items), at: token.offset)
        case .symbol("{"):
            index += 1
            try enter(token.offset)
            defer { depth -= 1 }
            var pairs: [(TemplateExpression, TemplateExpression)] = []
            while !isSymbol("}") {
                if !pairs.isEmpty { try expectSymbol(",") }
                if isSymbol("}") { break }
                let key = try parseExpression()
                try expectSymbol(":")
                pairs.append((key, try parseExpression()))
            }
            index += 1
            return try make(.dict(pairs), at: token.offset)
        default:
            throw source.error("expected an expression, found \(token.display)", at: token.offset)
        }
    }

    private mutating func parsePostfix(_ start: TemplateExpression) throws -> TemplateExpression {
        var node = start
        while true {
            let offset = current.offset
            if isSymbol(".") {
                index += 1
                switch current.kind {
                case .name(let name):
                    index += 1
                    node = try make(.attribute(node, name), at: offset)
                case .integer(let value):
                    index += 1
                    node = try make(.index(node, try make(.literal(.int(value)), at: offset)), at: offset)
                default:
                    throw source.error("expected an attribute name after '.', found \(current.display)", at: current.offset)
                }
            } else if isSymbol("[") {
                index += 1
                node = try parseSubscript(node, at: offset)
            } else if isSymbol("(") {
                index += 1
                node = try make(.call(node, try parseCallArguments()), at: offset)
            } else {
                return node
            }
            try enter(offset)
            depth -= 1
        }
    }

    private mutating func parseSubscript(_ target: TemplateExpression, at offset: Int) throws -> TemplateExpression {
        var parts: [TemplateExpression?] = [nil]
        var isSlice = false
        while !isSymbol("]") {
            if isSymbol(":") {
                isSlice = true
                index += 1
                parts.append(nil)
                guard parts.count <= 3 else { throw source.error("a slice takes at most three parts", at: current.offset) }
                continue
            }
            guard parts[parts.count - 1] == nil else {
                throw source.error("expected ']' or ':', found \(current.display)", at: current.offset)
            }
            parts[parts.count - 1] = try parseExpression()
        }
        index += 1
        if !isSlice {
            guard let key = parts[0] else { throw source.error("expected a subscript inside '[]'", at: offset) }
            return try make(.index(target, key), at: offset)
        }
        while parts.count < 3 { parts.append(nil) }
        return try make(.slice(target, parts[0], parts[1], parts[2]), at: offset)
    }

    private mutating func parseCallArguments() throws -> TemplateCallArguments {
        var arguments = TemplateCallArguments()
        var first = true
        while !isSymbol(")") {
            if !first { try expectSymbol(",") }
            first = false
            if isSymbol(")") { break }
            if case .name(let name) = current.kind, index + 1 < tokens.count, tokens[index + 1].kind == .symbol("=") {
                index += 2
                arguments.keyword.append((name, try parseExpression()))
            } else {
                if !arguments.keyword.isEmpty {
                    throw source.error("positional argument follows keyword argument", at: current.offset)
                }
                arguments.positional.append(try parseExpression())
            }
        }
        index += 1
        return arguments
    }

    private mutating func parseDottedName() throws -> String {
        var name = try expectName()
        while isSymbol(".") {
            index += 1
            name += "." + (try expectName())
        }
        return name
    }

    private mutating func parseFiltersAndTests(_ start: TemplateExpression) throws -> TemplateExpression {
        var node = start
        while true {
            let offset = current.offset
            if isSymbol("|") {
                index += 1
                let nameOffset = current.offset
                let name = try parseDottedName()
                guard TemplateRenderer.filterNames.contains(name) else {
                    throw source.error("unknown filter '\(name)'", at: nameOffset)
                }
                var arguments = TemplateCallArguments()
                if isSymbol("(") {
                    index += 1
                    arguments = try parseCallArguments()
                }
                node = try make(.filter(node, name, arguments), at: nameOffset)
            } else if isName("is") {
                index += 1
                var negated = false
                if isName("not") {
                    index += 1
                    negated = true
                }
                let nameOffset = current.offset
                let name = try parseDottedName()
                guard TemplateRenderer.testNames.contains(name) else {
                    throw source.error("unknown test '\(name)'", at: nameOffset)
                }
                var arguments = TemplateCallArguments()
                if isSymbol("(") {
                    index += 1
                    arguments = try parseCallArguments()
                } else if startsTestArgument() {
                    arguments.positional.append(try parsePostfix(try parsePrimary()))
                }
                node = try make(.test(node, name, arguments, negated: negated), at: nameOffset)
            } else if isSymbol("(") {
                index += 1
                node = try make(.call(node, try parseCallArguments()), at: offset)
            } else {
                return node
            }
            try enter(offset)
            depth -= 1
        }
    }

    /// jinja2 reads one argument after a test name without parentheses (`x is divisibleby 3`)
    /// when a literal, name or bracket follows that is not `else`, `or`, `and` or `is`.
    private func startsTestArgument() -> Bool {
        switch current.kind {
        case .name(let name): return !["else", "or", "and", "is", "if", "in", "not"].contains(name)
        case .string, .integer, .float: return true
        case .symbol(let symbol): return symbol == "[" || symbol == "{"
        default: return false
        }
    }
}

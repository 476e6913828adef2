#!/usr/bin/env python3
"""Describe every function a C header declares, from clang's JSON AST (no regexes over C text).

    python3 tools/abi/header_functions.py include/loramixer.h            # description on stdout
    python3 tools/abi/header_functions.py include/loramixer.h -o f.txt   # ... into a file
    python3 tools/abi/header_functions.py --names include/loramixer.h    # just the names
    python3 tools/abi/header_functions.py --expect-none include/loramixer_plugin.h
                                     # exit 1, listing them, if the header or a header it includes
                                     # from its own folder declares any function

Only functions declared in the named header itself are described: loramixer.h includes
loramixer_common.h (types shared with the plugin header), and a function declared there would not
be swept. `--expect-none` on loramixer_common.h and loramixer_plugin.h (make header-check) catches
that, since both headers are meant to declare types only.

The description is read at run time by Tests/C/abi_sweep.c, so a function added to the header is
swept without editing the test. Format (one record per line, fields separated by one TAB, no empty
fields: "-" stands for none):

    fn   <name> <n_params>
    ret  -1      -      <class> <detail> <C type as written>
    arg  <index> <name> <class> <detail> <C type as written>

<class> is one of: void i8 u8 i16 u16 i32 u32 i64 u64 size_t f32 f64 pointer fnptr struct.
<detail> is "-", or
    status               for an i32 spelled through the lmx_status typedef,
    handle=<record>      for a pointer to an opaque (incomplete) struct, i.e. a library handle,
    <class>,<class>,...  for a struct passed or returned by value: its fields' classes in order.

Stdlib only. The module is also imported by check_swift_header.py (same folder), which uses the
AST helpers below to compare the header with the C view of the Swift exports.
"""

import argparse
import json
import os
import subprocess
import sys

# Builtin C type spellings (as clang prints them, qualifiers removed) -> class, for LP64 targets.
BUILTINS = {
    "void": "void",
    "_Bool": "u8", "bool": "u8",
    "char": "i8", "signed char": "i8", "unsigned char": "u8",
    "short": "i16", "short int": "i16", "signed short": "i16", "signed short int": "i16",
    "unsigned short": "u16", "unsigned short int": "u16",
    "int": "i32", "signed": "i32", "signed int": "i32",
    "unsigned": "u32", "unsigned int": "u32",
    "long": "i64", "long int": "i64", "signed long": "i64", "signed long int": "i64",
    "unsigned long": "u64", "unsigned long int": "u64",
    "long long": "i64", "long long int": "i64", "signed long long": "i64",
    "unsigned long long": "u64", "unsigned long long int": "u64",
    "float": "f32", "double": "f64",
}

# Words that never change a type's identity for our purposes (qualifiers, nullability).
DROPPED_WORDS = {
    "const", "volatile", "restrict", "__restrict", "__restrict__",
    "_Nullable", "_Nonnull", "_Null_unspecified", "_Nullable_result",
    "__unsafe_unretained", "__strong", "__weak", "__autoreleasing",
}


class ABIError(Exception):
    """The header uses a construct this tool does not describe (extend the tool, don't ignore it)."""


# ------------------------------------------------------------------------------------------------
# Running clang and walking its JSON AST
# ------------------------------------------------------------------------------------------------

def clang_json_ast(clang, source, extra_args=(), language=None):
    """`clang -Xclang -ast-dump=json -fsyntax-only source` parsed; raises on a compile error."""
    cmd = [clang]
    if language:
        cmd += ["-x", language]
    cmd += list(extra_args) + ["-Xclang", "-ast-dump=json", "-fsyntax-only", source]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ABIError("clang failed (%s):\n%s" % (" ".join(cmd), proc.stderr.strip()))
    return json.loads(proc.stdout)


def top_level_decls(ast):
    """Yields (decl, file) for every top-level declaration, in order.

    clang's JSON dumper writes a location's "file" only when it differs from the previous location
    it wrote (in document order), so the file of a declaration is found by replaying every location
    in the order it was serialised. For a location inside a macro expansion the expansion location
    (written last) decides, which is where the declaration appears in the file.
    """
    state = {"file": None}

    def replay(obj):
        if isinstance(obj, dict):
            if isinstance(obj.get("file"), str):
                state["file"] = obj["file"]
            for key, value in obj.items():
                if key != "includedFrom":  # names the includer; the dumper does not track it
                    replay(value)
        elif isinstance(obj, list):
            for value in obj:
                replay(value)

    for decl in ast.get("inner", []):
        replay(decl.get("loc", {}))
        yield decl, state["file"]
        for key, value in decl.items():
            if key != "loc":
                replay(value)


def same_file(a, b):
    if a is None or b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


class TypeSystem:
    """Typedefs and records of one translation unit, to resolve clang's type spellings."""

    def __init__(self, ast):
        self.typedefs = {}   # name -> underlying qualType (one level of sugar removed)
        self.records = {}    # "struct X" -> list of (field name, field qualType) when complete
        self.incomplete = set()  # "struct X" declared but never defined in this TU
        for decl, _ in top_level_decls(ast):
            self._collect(decl)
        self.incomplete -= set(self.records)

    def _collect(self, decl):
        kind = decl.get("kind")
        if kind == "TypedefDecl" and "name" in decl:
            self.typedefs[decl["name"]] = decl["type"]["qualType"]
        elif kind == "RecordDecl" and decl.get("name"):
            key = "%s %s" % (decl.get("tagUsed", "struct"), decl["name"])
            if decl.get("completeDefinition"):
                self.records[key] = [(f.get("name", ""), f["type"]["qualType"])
                                     for f in decl.get("inner", []) if f.get("kind") == "FieldDecl"]
            else:
                self.incomplete.add(key)
        elif kind == "LinkageSpecDecl":  # extern "C" { ... } when parsed as C++
            for inner in decl.get("inner", []):
                self._collect(inner)

    # A canonical type is a tuple:
    #   ("int", cls)  cls in i8..u64 or "size_t"      ("float", "f32"|"f64")     ("void",)
    #   ("ptr", T)    ("fnptr", R, (P, ...))           ("record", "struct X")
    #   ("array", T, n)
    # Each also remembers, separately, whether the spelling went through lmx_status (see classify).

    def canonical(self, spelling, _depth=0, _trail=None):
        """Canonical form of a clang type spelling: qualifiers and nullability dropped, typedefs
        resolved (size_t kept as its own kind). `_trail` collects typedef names passed through."""
        if _depth > 64:
            raise ABIError("typedef cycle at %r" % spelling)
        text = strip_attributes(spelling).strip()
        # Function pointer: "R (*)(P1, P2)" (clang prints no name in a qualType).
        if "(*" in text:
            return self._function_pointer(text, _depth, _trail)
        if text.endswith(")"):
            raise ABIError("function type (not a pointer) %r is not supported" % spelling)
        # Array: "T[64]".
        if text.endswith("]"):
            open_at = text.rindex("[")
            count = text[open_at + 1:-1].strip()
            inner = self.canonical(text[:open_at], _depth + 1, _trail)
            return ("array", inner, int(count) if count.isdigit() else None)
        words = [w for w in text.replace("*", " * ").split() if w not in DROPPED_WORDS]
        stars = 0
        while words and words[-1] == "*":
            stars += 1
            words.pop()
        if "*" in words:
            raise ABIError("cannot parse type %r" % spelling)
        base = " ".join(words)
        result = self._base(base, spelling, _depth, _trail)
        for _ in range(stars):
            result = ("ptr", result)
        return result

    def _base(self, base, spelling, depth, trail):
        if base == "size_t":
            if trail is not None:
                trail.append(base)
            return ("int", "size_t")
        if base in BUILTINS:
            cls = BUILTINS[base]
            if cls == "void":
                return ("void",)
            if cls in ("f32", "f64"):
                return ("float", cls)
            return ("int", cls)
        if base.startswith(("struct ", "union ")):
            return ("record", base)
        if base.startswith("enum "):
            return ("int", "i32")  # C enums with only small values have type int (LP64 ABIs)
        if base in self.typedefs:
            if trail is not None:
                trail.append(base)
            return self.canonical(self.typedefs[base], depth + 1, trail)
        raise ABIError("unknown type name %r in %r" % (base, spelling))

    def _function_pointer(self, text, depth, trail):
        star = text.index("(*")
        close = matching_paren(text, star)
        if text[star + 2:close].strip():
            raise ABIError("cannot parse function pointer type %r" % text)
        rest = text[close + 1:].strip()
        if not (rest.startswith("(") and rest.endswith(")")):
            raise ABIError("cannot parse function pointer type %r" % text)
        params = split_params(rest[1:-1])
        ret = self.canonical(text[:star], depth + 1)
        args = tuple(self.canonical(p, depth + 1) for p in params if p.strip() not in ("", "void"))
        return ("fnptr", ret, args)

    def is_opaque(self, record):
        return record in self.incomplete


def strip_attributes(text):
    """Removes __attribute__((...)) groups from a spelling."""
    while "__attribute__" in text:
        start = text.index("__attribute__")
        open_at = text.index("(", start)
        close = matching_paren(text, open_at)
        text = text[:start] + text[close + 1:]
    return text


def matching_paren(text, open_at):
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ABIError("unbalanced parentheses in %r" % text)


def split_params(text):
    """Splits a parameter list at top-level commas."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts]


def split_function_type(qual_type):
    """'R (P1, P2)' -> ('R', ['P1', 'P2']); the parameter list is the last top-level group."""
    text = strip_attributes(qual_type).strip()
    # Drop trailing qualifiers such as 'noexcept' that clang may print after the parameter list.
    while not text.endswith(")"):
        text = text.rsplit(None, 1)[0]
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            depth -= 1
            if depth == 0:
                ret = text[:i].strip()
                if ret.endswith(")"):
                    raise ABIError("functions returning function pointers are not supported: %r" % qual_type)
                params = split_params(text[i + 1:-1])
                if params == ["void"]:
                    params = []
                return ret, params
    raise ABIError("cannot parse function type %r" % qual_type)


def functions_in(ast, path, prefix=None, where=None):
    """FunctionDecls located in `path` (not in the headers it includes), in declaration order:
    a list of dicts {name, return (spelling), params [(name, spelling)], variadic}. With `where`
    (a predicate on the declaring file) instead of `path`, those whose file satisfies it; each
    dict then also has "file"."""
    found = []
    accept = where if where is not None else (lambda file: same_file(file, path))

    def visit(decl, file):
        if decl.get("kind") == "LinkageSpecDecl":
            for inner in decl.get("inner", []):
                visit(inner, file)
            return
        if decl.get("kind") != "FunctionDecl" or not accept(file):
            return
        name = decl["name"]
        if prefix and not name.startswith(prefix):
            return
        ret, _ = split_function_type(decl["type"]["qualType"])
        params = [(p.get("name") or "arg%d" % i, p["type"]["qualType"])
                  for i, p in enumerate(x for x in decl.get("inner", []) if x.get("kind") == "ParmVarDecl")]
        found.append({"name": name, "return": ret, "params": params,
                      "variadic": bool(decl.get("variadic")), "file": file})

    for decl, file in top_level_decls(ast):
        visit(decl, file)
    return found


# ------------------------------------------------------------------------------------------------
# The description for abi_sweep
# ------------------------------------------------------------------------------------------------

def classify(types, spelling, where):
    """(class, detail) of a parameter or return type; see the module docstring."""
    trail = []
    canon = types.canonical(spelling, _trail=trail)
    kind = canon[0]
    if kind == "void":
        return "void", "-"
    if kind == "int":
        return canon[1], ("status" if "lmx_status" in trail else "-")
    if kind == "float":
        return canon[1], "-"
    if kind == "fnptr":
        return "fnptr", "-"
    if kind == "ptr":
        target = canon[1]
        if target[0] == "fnptr":
            return "fnptr", "-"
        if target[0] == "record" and types.is_opaque(target[1]):
            return "pointer", "handle=" + target[1].split(" ", 1)[1]
        return "pointer", "-"
    if kind == "record":
        fields = types.records.get(canon[1])
        if fields is None:
            raise ABIError("%s: %r is an incomplete type passed by value" % (where, spelling))
        classes = []
        for field_name, field_type in fields:
            cls, _ = classify(types, field_type, "%s field %s" % (where, field_name))
            if cls in ("struct", "void"):
                raise ABIError("%s: field %s of %r has class %s, which the sweep does not support"
                               % (where, field_name, spelling, cls))
            classes.append(cls)
        return "struct", ",".join(classes) if classes else "-"
    raise ABIError("%s: type %r (%s) is not supported by the sweep" % (where, spelling, kind))


def describe(header, clang="clang", extra_args=()):
    ast = clang_json_ast(clang, header, extra_args)
    types = TypeSystem(ast)
    lines = ["# ABI description of %s, generated by tools/abi/header_functions.py" % header,
             "# fn <name> <n_params> / ret -1 - <class> <detail> <ctype> / arg <i> <name> <class> <detail> <ctype>"]
    functions = functions_in(ast, header)
    if not functions:
        raise ABIError("%s declares no functions" % header)
    for fn in functions:
        where = fn["name"]
        if fn["variadic"]:
            raise ABIError("%s is variadic; the sweep cannot call it" % where)
        lines.append("fn\t%s\t%d" % (fn["name"], len(fn["params"])))
        cls, detail = classify(types, fn["return"], where + " return")
        lines.append("ret\t-1\t-\t%s\t%s\t%s" % (cls, detail, " ".join(fn["return"].split())))
        for i, (name, spelling) in enumerate(fn["params"]):
            cls, detail = classify(types, spelling, "%s parameter %d (%s)" % (where, i, name))
            if cls == "void":
                raise ABIError("%s parameter %d has type void" % (where, i))
            lines.append("arg\t%d\t%s\t%s\t%s\t%s" % (i, name, cls, detail, " ".join(spelling.split())))
    return "\n".join(lines) + "\n", [fn["name"] for fn in functions]


def functions_in_folder(header, clang="clang", extra_args=()):
    """(name, file) of every function declared by `header` or by a header it includes from the same
    folder (system headers are not looked at)."""
    folder = os.path.dirname(os.path.realpath(header))
    ast = clang_json_ast(clang, header, extra_args)
    in_folder = lambda file: file is not None and os.path.dirname(os.path.realpath(file)) == folder
    return [(fn["name"], fn["file"]) for fn in functions_in(ast, header, where=in_folder)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("header")
    parser.add_argument("-o", "--output", help="write here instead of stdout")
    parser.add_argument("--names", action="store_true", help="print only the function names")
    parser.add_argument("--expect-none", action="store_true",
                        help="succeed only if the header and the headers it includes from its own folder "
                             "declare no function (for headers of types only)")
    parser.add_argument("--clang", default=os.environ.get("CLANG", "clang"))
    args = parser.parse_args(argv)
    if args.expect_none:
        try:
            found = functions_in_folder(args.header, args.clang)
        except ABIError as error:
            print("header_functions.py: %s" % error, file=sys.stderr)
            return 1
        for name, file in found:
            via = "" if same_file(file, args.header) else ", included by %s" % os.path.basename(args.header)
            print("FAIL %s declares function %s (a header of types only%s)" % (os.path.basename(file), name, via))
        print("%s: %d functions declared (expected none)" % (os.path.basename(args.header), len(found)))
        return 1 if found else 0
    try:
        text, names = describe(args.header, args.clang)
    except ABIError as error:
        print("header_functions.py: %s" % error, file=sys.stderr)
        return 1
    out = "\n".join(names) + "\n" if args.names else text
    if args.output:
        with open(args.output, "w") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

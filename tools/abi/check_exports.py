#!/usr/bin/env python3
"""Check the dynamic exports of libloramixer.so against the functions declared in the header.

    python3 tools/abi/check_exports.py LIB.so include/loramixer.h

Passes when `nm -D --defined-only LIB.so` exports only function symbols named lmx_*, and the set of
exported lmx_* names equals the set of functions declared in the header (the header's names come
from clang's JSON AST via header_functions.py, not from a hand-kept list).

Ignored: linker-defined symbols (_init, _fini, __bss_start, _edata, _end, ...), absolute symbols that
name version nodes, and symbols with local binding (nm prints their type letter in lower case).
Local entries can sit in .dynsym (the version script's `local: *` demotes them) but the dynamic
linker never resolves against them, so they are not exports; their count is reported as a note.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import header_functions as hf  # noqa: E402

LINKER_SYMBOLS = {"_init", "_fini", "__bss_start", "_edata", "_end", "__end__", "__data_start",
                  "_DYNAMIC", "_GLOBAL_OFFSET_TABLE_", "__dso_handle", "_IO_stdin_used"}
GLOBAL_FUNCTION_TYPES = {"T", "W", "i"}  # text, weak (defined), GNU indirect function


def exported_symbols(lib, nm):
    proc = subprocess.run([nm, "-D", "--defined-only", lib], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise hf.ABIError("%s -D --defined-only %s failed: %s" % (nm, lib, proc.stderr.strip()))
    symbols = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        symbols.append((kind, name.split("@", 1)[0]))
    return symbols


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library")
    parser.add_argument("header")
    parser.add_argument("--nm", default=os.environ.get("NM", "nm"))
    parser.add_argument("--clang", default=os.environ.get("CLANG", "clang"))
    args = parser.parse_args(argv)
    try:
        _, names = hf.describe(args.header, args.clang)
        symbols = exported_symbols(args.library, args.nm)
    except hf.ABIError as error:
        print("exports_check: error: %s" % error)
        return 2

    declared = set(names)
    problems, exported, local = [], set(), 0
    for kind, name in symbols:
        if name in LINKER_SYMBOLS:
            continue
        if kind == "A" and not name.startswith("lmx_"):
            continue  # version node names
        if kind.islower() and kind not in ("i", "u", "v", "w"):
            local += 1
            continue
        if not name.startswith("lmx_"):
            problems.append("exported symbol %s (nm type %s) is not an lmx_* function" % (name, kind))
            continue
        if kind not in GLOBAL_FUNCTION_TYPES:
            problems.append("exported symbol %s has nm type %s, expected a function (T)" % (name, kind))
        exported.add(name)
    for name in sorted(declared - exported):
        problems.append("missing: %s is declared in %s but not exported by %s" % (name, args.header, args.library))
    for name in sorted(exported - declared):
        problems.append("extra: %s is exported by %s but not declared in %s" % (name, args.library, args.header))

    if local:
        print("note: %d local-binding entries in .dynsym ignored (not exported)" % local)
    for problem in problems:
        print("FAIL " + problem)
    passed = len(declared & exported)
    print("exports_check: %d passed, %d failed (%d declared, %d exported)"
          % (passed, len(problems), len(declared), len(exported)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

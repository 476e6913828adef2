#!/usr/bin/env python3
"""Check that every copy of the version number equals the top-level VERSION file.

    python3 tools/abi/check_version.py [--root ROOT] [--library LIB.so] [--self-test]

VERSION (MAJOR.MINOR.PATCH) is the one place the version is set. Checked against it:
  include/loramixer.h               LMX_VERSION_MAJOR / _MINOR / _PATCH
  Sources/LoRAMixerC/Library+C.swift  the string lmx_version() returns
  python/pyproject.toml             [project] version
  python/loramixer/__init__.py      __version__
  python/loramixer/capi.py          HEADER_VERSION_MAJOR / _MINOR / _PATCH
With --library, also the built library: its SONAME is libloramixer.so.MAJOR and every exported
lmx_* function carries the symbol version node LORAMIXER_MAJOR (readelf --dyn-syms -W).
--self-test proves the check fails on a copy of the tree with one number changed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def one(pattern, text, what):
    found = re.findall(pattern, text, re.M)
    if len(found) != 1:
        raise ValueError("%s: expected one match of %r, found %d" % (what, pattern, len(found)))
    return found[0]


def copies(root):
    """(place, version string) for every copy of the version in the tree."""
    out = []
    header = read(root, "include/loramixer.h")
    parts = [one(r"^#define LMX_VERSION_%s (\d+)\s*$" % p, header, "include/loramixer.h")
             for p in ("MAJOR", "MINOR", "PATCH")]
    out.append(("include/loramixer.h LMX_VERSION_MAJOR/MINOR/PATCH", ".".join(parts)))
    swift = read(root, "Sources/LoRAMixerC/Library+C.swift")
    out.append(("Sources/LoRAMixerC/Library+C.swift versionString",
                one(r'^private let versionString: StaticString = "([^"]*)"', swift, "Library+C.swift")))
    pyproject = read(root, "python/pyproject.toml")
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    out.append(("python/pyproject.toml [project] version", one(r'^version = "([^"]*)"', project, "pyproject.toml")))
    init = read(root, "python/loramixer/__init__.py")
    out.append(("python/loramixer/__init__.py __version__", one(r'^__version__ = "([^"]*)"', init, "__init__.py")))
    capi = read(root, "python/loramixer/capi.py")
    parts = [one(r"^HEADER_VERSION_%s = (\d+)\s*$" % p, capi, "capi.py") for p in ("MAJOR", "MINOR", "PATCH")]
    out.append(("python/loramixer/capi.py HEADER_VERSION_MAJOR/MINOR/PATCH", ".".join(parts)))
    return out


def check_tree(root):
    version = read(root, "VERSION").strip()
    problems = []
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        problems.append("VERSION %r is not MAJOR.MINOR.PATCH" % version)
    try:
        for place, value in copies(root):
            if value != version:
                problems.append("%s is %s, VERSION is %s" % (place, value, version))
    except ValueError as error:
        problems.append(str(error))
    return version, problems


def check_library(lib, version):
    major = version.split(".")[0]
    problems = []
    dynamic = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True).stdout
    soname = re.findall(r"\(SONAME\)\s+Library soname: \[([^\]]*)\]", dynamic)
    if soname != ["libloramixer.so.%s" % major]:
        problems.append("%s: SONAME %s, expected libloramixer.so.%s" % (lib, soname or "none", major))
    syms = subprocess.run(["readelf", "--dyn-syms", "-W", lib], capture_output=True, text=True).stdout
    node = "LORAMIXER_%s" % major
    exported = [line.split()[-1] for line in syms.splitlines()
                if " GLOBAL " in line and " UND " not in line and "lmx_" in line]
    bad = [name for name in exported if not name.endswith("@@" + node)]
    if not exported:
        problems.append("%s: no exported lmx_* symbols" % lib)
    if bad:
        problems.append("%s: %d lmx_* symbols without version node %s, e.g. %s" % (lib, len(bad), node, bad[0]))
    return problems, len(exported)


def self_test(root):
    with tempfile.TemporaryDirectory() as tmp:
        for rel in ("VERSION", "include/loramixer.h", "Sources/LoRAMixerC/Library+C.swift",
                    "python/pyproject.toml", "python/loramixer/__init__.py", "python/loramixer/capi.py"):
            os.makedirs(os.path.dirname(os.path.join(tmp, rel)) or tmp, exist_ok=True)
            shutil.copy(os.path.join(root, rel), os.path.join(tmp, rel))
        _, problems = check_tree(tmp)
        if problems:
            print("version_check self-test: the unchanged copy fails: %s" % problems)
            return 1
        for rel, old, new in (("python/pyproject.toml", 'version = "', 'version = "9'),
                              ("include/loramixer.h", "#define LMX_VERSION_MINOR ", "#define LMX_VERSION_MINOR 9"),
                              ("VERSION", "", "9")):
            path = os.path.join(tmp, rel)
            text = read(tmp, rel)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new, 1))
            _, problems = check_tree(tmp)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            if not problems:
                print("version_check self-test: a changed %s was not caught" % rel)
                return 1
    print("version_check self-test: a changed pyproject.toml, header macro and VERSION are each caught")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    parser.add_argument("--library")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    if args.self_test:
        return self_test(root)
    version, problems = check_tree(root)
    note = ""
    if args.library and not problems:
        lib_problems, count = check_library(args.library, version)
        problems += lib_problems
        note = "; %s: SONAME libloramixer.so.%s, %d lmx_* symbols in LORAMIXER_%s" % (
            args.library, version.split(".")[0], count, version.split(".")[0])
    for problem in problems:
        print("version_check: FAIL %s" % problem)
    if problems:
        return 1
    print("version_check: header, Swift, pyproject, __version__ and capi all equal VERSION %s%s" % (version, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())

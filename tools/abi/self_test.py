#!/usr/bin/env python3
"""Prove that the exports check and the ABI sweep can fail (each against a deliberately wrong input).

    python3 tools/abi/self_test.py exports HEADER
    python3 tools/abi/self_test.py sweep HEADER LIBRARY SWEEP_BINARY

exports: builds a stub shared library from the header's description that omits one header
    function and adds `lmx_not_in_header` and `helper_not_lmx`; check_exports.py must fail and name
    exactly those three.
sweep:   (1) builds a stub library whose functions all return 0 / NULL / a zeroed struct: the sweep
    must fail every non-void function and pass the void ones; (2) sweeps LIBRARY with a copy of the
    header that declares one more function: the sweep must report it missing, and only it;
    (3) declares a function in a copy of loramixer_common.h: the description of loramixer.h must
    not list it (it describes loramixer.h's own declarations only), and
    `header_functions.py --expect-none` on loramixer_common.h and loramixer_plugin.h must report it.
Altered headers are written into a copy of the whole include folder, so the headers that
loramixer.h includes (loramixer_common.h) are found next to them. Needs a C compiler (CC, default
cc). Stdlib only.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import header_functions as hf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
C_TYPES = {"void": "void", "i8": "int8_t", "u8": "uint8_t", "i16": "int16_t", "u16": "uint16_t",
           "i32": "int32_t", "u32": "uint32_t", "i64": "int64_t", "u64": "uint64_t", "size_t": "size_t",
           "f32": "float", "f64": "double", "pointer": "void *", "fnptr": "void (*)(void)"}


def parse_description(text):
    functions = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        f = line.split("\t")
        if f[0] == "fn":
            functions.append({"name": f[1], "ret": None, "args": []})
        elif f[0] == "ret":
            functions[-1]["ret"] = (f[3], f[4])
        elif f[0] == "arg":
            functions[-1]["args"].append((f[3], f[4]))
    return functions


def c_type(cls, detail, struct_name):
    if cls == "struct":
        return struct_name
    if cls == "fnptr":
        return "stub_fnptr"
    return C_TYPES[cls]


def stub_source(functions, omit=(), extra=""):
    out = ["#include <stddef.h>", "#include <stdint.h>", "typedef void (*stub_fnptr)(void);"]
    for fn in functions:
        if fn["name"] in omit:
            continue
        cls, detail = fn["ret"]
        struct_name = "struct_" + fn["name"]
        if cls == "struct":
            fields = [] if detail == "-" else detail.split(",")
            body = " ".join("%s f%d;" % (c_type(fc, "-", None), i) for i, fc in enumerate(fields))
            out.append("typedef struct { %s } %s;" % (body or "char unused;", struct_name))
        params = ", ".join("%s a%d" % (c_type(c, d, None), i) for i, (c, d) in enumerate(fn["args"])) or "void"
        ret_type = c_type(cls, detail, struct_name)
        unused = " ".join("(void)a%d;" % i for i in range(len(fn["args"])))
        if cls == "void":
            body = unused
        elif cls == "struct":
            body = "%s %s r; { unsigned char *p = (unsigned char *)&r; for (size_t i = 0; i < sizeof r; i++) p[i] = 0; } return r;" % (unused, struct_name)
        else:
            body = "%s return (%s)0;" % (unused, ret_type)
        out.append("__attribute__((visibility(\"default\"))) %s %s(%s) { %s }" % (ret_type, fn["name"], params, body))
    out.append(extra)
    return "\n".join(out) + "\n"


def build_stub(workdir, source, name):
    src = os.path.join(workdir, name + ".c")
    lib = os.path.join(workdir, name + ".so")
    with open(src, "w") as f:
        f.write(source)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-shared", "-fPIC", "-fvisibility=hidden", "-o", lib, src], check=True)
    return lib


def copy_include_dir(header, workdir):
    """Copies the folder of `header` (every header next to it) to workdir/include; returns the copy's
    path of `header`. Altered copies go there, so their #include "loramixer_common.h" resolves."""
    target = os.path.join(workdir, "include")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(os.path.dirname(os.path.abspath(header)), target)
    return os.path.join(target, os.path.basename(header))


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout


def self_test_exports(header, workdir, clang):
    text, names = hf.describe(header, clang)
    functions = parse_description(text)
    omitted = names[0]
    extra = ('__attribute__((visibility("default"))) int lmx_not_in_header(void) { return 0; }\n'
             '__attribute__((visibility("default"))) int helper_not_lmx(void) { return 0; }\n')
    lib = build_stub(workdir, stub_source(functions, omit={omitted}, extra=extra), "exports_stub")
    rc, out = run([sys.executable, os.path.join(HERE, "check_exports.py"), "--clang", clang, lib, header])
    expected = ["missing: %s " % omitted, "extra: lmx_not_in_header ", "helper_not_lmx (nm type T) is not an lmx_* function"]
    failures = 0
    if rc == 0:
        print("self-test FAIL [exports]: check_exports.py passed a library that lacks %s" % omitted)
        failures += 1
    for snippet in expected:
        if snippet in out:
            print("self-test ok   [exports]: reported '%s'" % snippet.strip())
        else:
            print("self-test FAIL [exports]: no '%s' in:\n%s" % (snippet.strip(), out))
            failures += 1
    problems = [line for line in out.splitlines() if line.startswith("FAIL ")]
    if len(problems) != len(expected):
        print("self-test FAIL [exports]: expected exactly %d problems, got %d:\n%s"
              % (len(expected), len(problems), "\n".join(problems)))
        failures += 1
    total = len(expected) + 1
    print("exports self-test: all %d checks behaved as expected" % total if not failures
          else "exports self-test: %d of %d checks WRONG" % (failures, total))
    return failures


def self_test_sweep(header, library, sweep, workdir, clang):
    failures = 0
    checks = 0
    # (1) A library that answers everything with 0 / NULL.
    text, _ = hf.describe(header, clang)
    functions = parse_description(text)
    description = os.path.join(workdir, "description.txt")
    with open(description, "w") as f:
        f.write(text)
    lib = build_stub(workdir, stub_source(functions), "sweep_stub")
    rc, out = run([sweep, description, lib])
    for fn in functions:
        checks += 1
        lines = [l for l in out.splitlines() if re.match(r"^(ok  |FAIL) %s\s" % re.escape(fn["name"]), l)]
        failed = any(l.startswith("FAIL") for l in lines)
        should_fail = fn["ret"][0] != "void"
        if failed == should_fail:
            continue
        failures += 1
        print("self-test FAIL [sweep stub]: %s should %s against the stub; got:\n  %s"
              % (fn["name"], "fail" if should_fail else "pass", "\n  ".join(lines) or "(no line)"))
    n_void = sum(1 for fn in functions if fn["ret"][0] == "void")
    summary = "abi_sweep: %d passed, %d failed" % (n_void, len(functions) - n_void)
    checks += 1
    if rc == 0 or summary not in out:
        failures += 1
        print("self-test FAIL [sweep stub]: expected exit 1 and '%s'; got exit %d, last line '%s'"
              % (summary, rc, out.strip().splitlines()[-1] if out.strip() else ""))
    else:
        print("self-test ok   [sweep stub]: the sweep refused each of the %d non-void functions of a stub library that "
              "returns 0/NULL, as it should (and accepted the %d void ones)" % (len(functions) - n_void, n_void))

    # (2) A header that declares a function the library lacks.
    with open(header) as f:
        original = f.read()
    marker = "#ifdef __cplusplus\n}"
    checks += 1
    if marker not in original:
        print("self-test FAIL [sweep added function]: the header has no closing extern \"C\" block")
        return failures + 1, checks
    added = copy_include_dir(header, workdir)
    with open(added, "w") as f:
        f.write(original.replace(marker, "LMX_API lmx_status lmx_added_later(lmx_session *session, const char *name,"
                                         " size_t n, float x);\n" + marker, 1))
    text, _ = hf.describe(added, clang)
    with open(description, "w") as f:
        f.write(text)
    rc, out = run([sweep, description, library])
    missing = [l for l in out.splitlines() if l.startswith("FAIL lmx_added_later") and "missing from the library" in l]
    other = [l for l in out.splitlines() if l.startswith("FAIL") and "lmx_added_later" not in l]
    if rc != 0 and missing and not other:
        print("self-test ok   [sweep added function]: the sweep reports lmx_added_later as missing from the library")
    else:
        failures += 1
        print("self-test FAIL [sweep added function]: exit %d, missing-line %s, other failures %s"
              % (rc, bool(missing), other))

    # (3) A function declared in loramixer_common.h (included by loramixer.h and the plugin header).
    checks += 1
    copied = copy_include_dir(header, workdir)
    include = os.path.dirname(copied)
    common = os.path.join(include, "loramixer_common.h")
    plugin = os.path.join(include, "loramixer_plugin.h")
    if not os.path.exists(common) or not os.path.exists(plugin):
        failures += 1
        print("self-test FAIL [common header function]: %s lacks loramixer_common.h or loramixer_plugin.h" % include)
    else:
        with open(common) as f:
            text = f.read()
        if marker not in text:
            failures += 1
            print("self-test FAIL [common header function]: loramixer_common.h has no closing extern \"C\" block")
        else:
            with open(common, "w") as f:
                f.write(text.replace(marker, "lmx_status lmx_common_added(int x);\n" + marker, 1))
            _, names = hf.describe(copied, clang)
            problems = []
            if "lmx_common_added" in names:
                problems.append("the description of loramixer.h lists lmx_common_added (declared in loramixer_common.h)")
            for other_header in (common, plugin):
                rc, out = run([sys.executable, os.path.join(HERE, "header_functions.py"), "--clang", clang,
                               "--expect-none", other_header])
                if rc == 0 or "lmx_common_added" not in out:
                    problems.append("--expect-none %s: exit %d, output %r"
                                    % (os.path.basename(other_header), rc, out.strip()))
            if problems:
                failures += 1
                print("self-test FAIL [common header function]: " + "; ".join(problems))
            else:
                print("self-test ok   [common header function]: not in loramixer.h's description; "
                      "--expect-none reports it for loramixer_common.h and loramixer_plugin.h")
    print("sweep self-test: all %d checks behaved as expected" % checks if not failures
          else "sweep self-test: %d of %d checks WRONG" % (failures, checks))
    return failures, checks


def main(argv):
    if len(argv) < 2 or argv[0] not in ("exports", "sweep") or (argv[0] == "sweep" and len(argv) != 4):
        print(__doc__)
        return 2
    clang = os.environ.get("CLANG", "clang")
    workdir = tempfile.mkdtemp(prefix="abi_self_test.")
    try:
        if argv[0] == "exports":
            return 1 if self_test_exports(argv[1], workdir, clang) else 0
        failures, _ = self_test_sweep(argv[1], argv[2], argv[3], workdir, clang)
        return 1 if failures else 0
    except (hf.ABIError, subprocess.CalledProcessError) as error:
        print("self-test error: %s" % error)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

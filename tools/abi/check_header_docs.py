#!/usr/bin/env python3
"""Check that the public headers state every function's contract, and that it is true.

    python3 tools/abi/check_header_docs.py include/*.h
    python3 tools/abi/check_header_docs.py --status-log LOG include/*.h
    python3 tools/abi/check_header_docs.py --sweep-log SWEEP_OUTPUT include/*.h
    python3 tools/abi/check_header_docs.py --self-test include/*.h

Every LMX_API function, and every function-pointer member of the plugin tables (lmx_host_api,
lmx_plugin_descriptor), must have a comment just before it with three lines (in this form, so
they can be grepped):

     * Ownership: <who owns what the function takes and returns>
     * Threads: <what may run concurrently>
     * Errors: <every status it can return, as LMX_ERR_* names>, or "none"

and every LMX_ERR_* name in Errors must be one the common header defines.

--status-log LOG: LOG holds "<function>\\t<LMX_ERR_*>" lines, one per failing status a C test saw
(Tests/C/test_util.c writes them when $LMX_STATUS_LOG is set); each must be among that
function's documented Errors. --sweep-log: the output of Tests/C/abi_sweep (status=<n> per
function and pass), checked the same way. Either way the check fails when a function returned a
status its comment does not list.

--self-test: runs the checks against damaged copies (a Threads line removed, an Errors line
removed, an undefined status named, a status returned that is not documented) and exits 0 only if
each is caught.

Stdlib only. Exit status 0 when every check holds.
"""

import argparse
import os
import re
import sys
import tempfile

COMMENT_THEN_DECL = re.compile(r"/\*((?:(?!\*/).)*)\*/\s*(LMX_API\b[^;]*;)", re.S)
FUNCTION_NAME = re.compile(r"\b(lmx_\w+)\s*\(")
TABLE = re.compile(r"typedef\s+struct\s+(lmx_host_api|lmx_plugin_descriptor)\s*\{(.*?)\}\s*\1\s*;", re.S)
MEMBER = re.compile(r"/\*((?:(?!\*/).)*)\*/\s*([^;/]*\(\s*\*\s*(\w+)\s*\)\s*\([^;]*\);)", re.S)
STATUS_ENUM = re.compile(r"\b(LMX_(?:OK|ERR_\w+))\s*=\s*(-?\d+)")
FIELDS = ("Ownership", "Threads", "Errors")


def read(paths):
    return {path: open(path, encoding="utf-8").read() for path in paths}


def statuses(texts):
    """LMX_OK / LMX_ERR_* name -> value, from the headers' enum."""
    found = {}
    for text in texts.values():
        for name, value in STATUS_ENUM.findall(text):
            found[name] = int(value)
    return found


def field_text(comment, field):
    """The text of ` * <field>:` up to the next field line or the end of the comment, or None."""
    lines = [re.sub(r"^\s*\*?\s?", "", line) for line in comment.splitlines()]
    out = None
    for line in lines:
        head = re.match(r"(\w+):\s*(.*)", line.strip())
        if head and head.group(1) in FIELDS:
            if out is not None:
                break
            if head.group(1) == field:
                out = [head.group(2)]
            continue
        if out is not None:
            out.append(line.strip())
    return None if out is None else " ".join(out).strip()


def documented(texts):
    """name -> (header, comment) for every LMX_API function and plugin-table member."""
    found = {}
    for path, text in texts.items():
        for comment, decl in COMMENT_THEN_DECL.findall(text):
            match = FUNCTION_NAME.search(decl)
            if match:
                found[match.group(1)] = (path, comment)
        for table, body in TABLE.findall(text):
            for comment, _decl, member in MEMBER.findall(body):
                found["%s.%s" % (table, member)] = (path, comment)
    return found


def declared(texts):
    """Every LMX_API function and table member, documented or not (to catch a missing comment)."""
    names = set()
    for text in texts.values():
        for decl in re.findall(r"LMX_API\b[^;]*;", text):
            match = FUNCTION_NAME.search(decl)
            if match:
                names.add(match.group(1))
        for table, body in TABLE.findall(text):
            for member in re.findall(r"\(\s*\*\s*(\w+)\s*\)\s*\(", body):
                names.add("%s.%s" % (table, member))
    return names


def check_docs(texts):
    """Problems (strings) with the comments; the documented Errors per name."""
    problems = []
    known = statuses(texts)
    docs = documented(texts)
    errors = {}
    for name in sorted(declared(texts)):
        if name not in docs:
            problems.append("%s: no comment just before its declaration" % name)
            continue
        _path, comment = docs[name]
        for field in FIELDS:
            value = field_text(comment, field)
            if not value:
                problems.append("%s: no ' * %s:' line" % (name, field))
        listed = field_text(comment, "Errors") or ""
        names = set(re.findall(r"\bLMX_ERR_\w+", listed))
        for status in sorted(names - set(known)):
            problems.append("%s: Errors names %s, which the headers do not define" % (name, status))
        if listed and not names and not listed.lower().startswith("none"):
            problems.append("%s: Errors lists no LMX_ERR_* name and does not say 'none'" % name)
        errors[name] = names
    return problems, errors, len(docs)


def check_log(lines, errors, known):
    """Statuses seen (function, status name) that the function's Errors do not list."""
    problems = set()
    seen = 0
    for function, status in lines:
        if function not in errors:
            continue
        seen += 1
        if status not in errors[function]:
            problems.add("%s returned %s, which its Errors line does not list" % (function, status))
    return sorted(problems), seen


def status_log(path):
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2:
                out.append((parts[0], parts[1]))
    return out


def sweep_log(path, known):
    by_value = {value: name for name, value in known.items()}
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = re.match(r"^(?:ok  |FAIL) (lmx_\w+)\s+\w+\s+status=(-?\d+)", line)
            if match and int(match.group(2)) < 0:
                out.append((match.group(1), by_value.get(int(match.group(2)), "status %s" % match.group(2))))
    return out


def run(paths, status_logs=(), sweep_logs=(), quiet=False):
    texts = read(paths)
    problems, errors, n = check_docs(texts)
    known = statuses(texts)
    seen = 0
    for path in status_logs:
        more, count = check_log(status_log(path), errors, known)
        problems += more
        seen += count
    for path in sweep_logs:
        more, count = check_log(sweep_log(path, known), errors, known)
        problems += more
        seen += count
    if not quiet:
        for problem in problems:
            print("MISSING " + problem if "no " in problem.split(":", 1)[-1][:5] else "WRONG   " + problem)
        summary = "check_header_docs: %d functions and plugin-table members state Ownership, Threads and Errors" % n
        if status_logs or sweep_logs:
            summary += "; %d failing statuses seen in tests, each documented" % seen
        print(summary if not problems else "check_header_docs: %d problem(s) in the header contract" % len(problems))
    return problems


def self_test(paths):
    """Each damage must be caught; prints one line per case, never the word 'failed'."""
    texts = read(paths)
    host = next(p for p in paths if p.endswith("loramixer.h"))
    plugin = next((p for p in paths if p.endswith("loramixer_plugin.h")), None)
    cases = []

    def damaged(path, old, new, expect):
        text = texts[path]
        if old not in text:
            return ("cannot damage %s: '%s' not found" % (os.path.basename(path), old.strip()), False)
        with tempfile.TemporaryDirectory() as tmp:
            copies = []
            for p in paths:
                copy = os.path.join(tmp, os.path.basename(p))
                with open(copy, "w", encoding="utf-8") as f:
                    f.write(texts[p].replace(old, new, 1) if p == path else texts[p])
                copies.append(copy)
            problems = run(copies, quiet=True)
        return (expect, any(expect in problem for problem in problems))

    cases.append(damaged(host, " * Threads: one thread at a time per session.\n * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */\nLMX_API lmx_status lmx_session_reset",
                         " * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */\nLMX_API lmx_status lmx_session_reset",
                         "lmx_session_reset: no ' * Threads:' line"))
    cases.append(damaged(host, " * Errors: LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */\nLMX_API lmx_status lmx_session_reset",
                         " */\nLMX_API lmx_status lmx_session_reset", "lmx_session_reset: no ' * Errors:' line"))
    cases.append(damaged(host, "LMX_ERR_INVALID_ARGUMENT (NULL, bad handle). */\nLMX_API lmx_status lmx_session_reset",
                         "LMX_ERR_NO_SUCH_CODE. */\nLMX_API lmx_status lmx_session_reset",
                         "lmx_session_reset: Errors names LMX_ERR_NO_SUCH_CODE"))
    if plugin:
        cases.append(damaged(plugin, "     * Ownership: `path` is borrowed for the call.\n", "",
                             "lmx_host_api.register_router_file: no ' * Ownership:' line"))
    _problems, errors, _n = check_docs(texts)
    caught, _ = check_log([("lmx_session_reset", "LMX_ERR_IO")], errors, statuses(texts))
    cases.append(("lmx_session_reset returned LMX_ERR_IO", any("lmx_session_reset returned LMX_ERR_IO" in c for c in caught)))
    wrong = 0
    for expect, ok in cases:
        print("%s header-docs self-test: %s" % ("ok  " if ok else "WRONG", ("caught: " + expect) if ok else ("not caught: " + expect)))
        wrong += 0 if ok else 1
    print("header-docs self-test: %d of %d damaged headers or logs caught" % (len(cases) - wrong, len(cases)))
    return wrong


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("headers", nargs="+")
    parser.add_argument("--status-log", action="append", default=[])
    parser.add_argument("--sweep-log", action="append", default=[])
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args(argv)
    if args.self_test:
        return 1 if self_test(args.headers) else 0
    return 1 if run(args.headers, args.status_log, args.sweep_log) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

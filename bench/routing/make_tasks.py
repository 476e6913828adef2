"""Generate the routing bench's multi-task suite (issue 6): byte-level text, JSON Lines.

    python bench/routing/make_tasks.py [OUT_DIR]        # default bench/work/routing/data

Deterministic: every draw comes from `random.Random(SEED)` (seed 6), so a rerun writes the same bytes.
Pure standard library.

The model is byte-level (token id = byte value, vocab 256, no BOS/EOS). One example per line:

    {"prompt": "...", "completion": "...", "task": "math" | "strings" | "lookup"}

The model reads `prompt` and must produce `completion`; every completion ends with "\\n" (byte 10,
the stop token) and is 2..8 bytes long including it. Whole examples are at most 32 bytes. All
bytes are printable ASCII apart from the final "\\n".

Tasks (each prompt shows its task in its bytes, so a router reading the text can tell them apart:
math is digits with '+' and '='; strings is lowercase letters between '<' and '>'; lookup is
uppercase keys, ':' and '?'):

    math     two-operand addition, operands 0..99       "12+30="             -> "42\\n"
    strings  reverse a lowercase word of 3..7 letters   "<mixer>"            -> "rexim\\n"
    lookup   in-context key/value lookup: 2..4 pairs    "K:4 Q:7 Z:1 ?Q"     -> "7\\n"
             KEY:DIGIT (distinct uppercase keys,
             digits may repeat), then ?KEY of one of them

Files written to OUT_DIR:

    eval.jsonl              200 per task (600), grouped by task
    math.train.jsonl        2000 expert-training examples each (correct completions)
    strings.train.jsonl
    lookup.train.jsonl
    router.train.jsonl      1998 mixed (666 per task, shuffled), correct completions
    base.jsonl              30000 mixed (10000 per sibling task, shuffled): the BASE model's
                            training data, see below

eval, the three expert-training files and router.train are mutually disjoint by prompt.

base.jsonl holds three SIBLING tasks, one per suite task, that exercise the same circuits (digit
alignment and carries/borrows, positional copying of letters, key/value matching in context) under
different prompt bytes and with a different rule, so the base learns byte-level text, the answer
alphabets and lengths, when to stop (byte 10) and the primitives, but not the suite's rules:

    sub      subtraction, 0 <= b <= a <= 99              "42-30="             -> "12\n"
    copy     copy a lowercase word of 3..7 letters       "[mixer]"            -> "mixer\n"
    flookup  key/value lookup written with lowercase     "k=4 q=7 z=1 ?q"     -> "7\n"
             keys and '=' (3..6 pairs)

Its "task" field holds these names (sub, copy, flookup). The base never sees '+', '<', '>',
uppercase keys or ':', so on the suite it is near zero; each task's skill must come from its
expert, which only has to re-aim circuits the base already has. (A first version used reverse
lookup, value -> key, as the lookup sibling: no rank-8 expert learned forward lookup on top of it,
0.30 exact match at best, so the base now carries the lookup circuit itself.)
"""

from __future__ import annotations

import json
import os
import random
import string
import sys

SEED = 6
TASKS = ["math", "strings", "lookup"]
N_EVAL = 200
N_TRAIN = 2000
N_ROUTER = 666  # per task (1998 in all)
N_BASE = 10000  # per sibling task
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "bench", "work", "routing", "data")
MAX_BYTES = 40
PAIRS = (2, 4)  # key/value pairs in a lookup prompt (both lookup and its sibling)


# ---- tasks: each draw returns (prompt, completion, context)

def draw_math(rng):
    a, b = rng.randrange(100), rng.randrange(100)
    return f"{a}+{b}=", f"{a + b}\n", (a, b)


def draw_strings(rng):
    n = rng.randint(3, 7)
    w = "".join(rng.choice(string.ascii_lowercase) for _ in range(n))
    return f"<{w}>", w[::-1] + "\n", w


def lookup_prompt(rng, keys_from, separator):
    """PAIRS key/value pairs (distinct keys from `keys_from`, digit values), then ?KEY of one."""
    n = rng.randint(*PAIRS)
    keys = rng.sample(keys_from, n)
    vals = [rng.randrange(10) for _ in range(n)]
    q = rng.randrange(n)
    ctx = " ".join(f"{k}{separator}{v}" for k, v in zip(keys, vals))
    return f"{ctx} ?{keys[q]}", f"{vals[q]}\n", vals


def draw_lookup(rng):
    return lookup_prompt(rng, string.ascii_uppercase, ":")


DRAW = {"math": draw_math, "strings": draw_strings, "lookup": draw_lookup}


def draw_sub(rng):
    a = rng.randrange(100)
    b = rng.randrange(a + 1)
    return f"{a}-{b}=", f"{a - b}\n"


def draw_copy(rng):
    n = rng.randint(3, 7)
    w = "".join(rng.choice(string.ascii_lowercase) for _ in range(n))
    return f"[{w}]", w + "\n"


def draw_flookup(rng):
    return lookup_prompt(rng, string.ascii_lowercase, "=")[:2]


BASE_DRAW = {"sub": draw_sub, "copy": draw_copy, "flookup": draw_flookup}


def check(ex):
    p, c = ex["prompt"], ex["completion"]
    assert c.endswith("\n") and 2 <= len(c) <= 8 and "\n" not in p, ex
    assert len((p + c).encode()) <= MAX_BYTES, ex
    assert all(32 <= ord(ch) < 127 for ch in p + c[:-1]), ex


def distinct(task, rng, n, used):
    out = []
    while len(out) < n:
        p, c, _ = DRAW[task](rng)
        if p in used:
            continue
        used.add(p)
        out.append({"prompt": p, "completion": c, "task": task})
    return out


def write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            check(r)
            f.write(json.dumps(r) + "\n")
    print(f"{path}: {len(rows)} examples")


def main(argv):
    out = argv[1] if len(argv) > 1 else DEFAULT_OUT
    os.makedirs(out, exist_ok=True)
    rng = random.Random(SEED)
    used = {t: set() for t in TASKS}
    evals = {t: distinct(t, rng, N_EVAL, used[t]) for t in TASKS}
    train = {t: distinct(t, rng, N_TRAIN, used[t]) for t in TASKS}
    router = [ex for t in TASKS for ex in distinct(t, rng, N_ROUTER, used[t])]
    rng.shuffle(router)
    base = []
    for t, draw in BASE_DRAW.items():
        for _ in range(N_BASE):
            p, c = draw(rng)
            base.append({"prompt": p, "completion": c, "task": t})
    rng.shuffle(base)

    write(os.path.join(out, "eval.jsonl"), [ex for t in TASKS for ex in evals[t]])
    for t in TASKS:
        write(os.path.join(out, f"{t}.train.jsonl"), train[t])
    write(os.path.join(out, "router.train.jsonl"), router)
    write(os.path.join(out, "base.jsonl"), base)


if __name__ == "__main__":
    main(sys.argv)

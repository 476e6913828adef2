#!/usr/bin/env python3
"""Convert the benchmark's models (bench/make_models.py) to GGUF for llama.cpp, with llama.cpp's
own converters from its source tree (vendored in the llama-cpp-python sdist):

    bench/work/gguf/smollm-f32.gguf    convert_hf_to_gguf.py --outtype f32   (bench/work/smollm-f32)
    bench/work/gguf/smollm-f16.gguf    convert_hf_to_gguf.py --outtype f16   (from the f32 weights)
    bench/work/gguf/lora-e0-f32.gguf   convert_lora_to_gguf.py --outtype f32 (bench/work/experts/e0)

    python bench/make_gguf.py --llama-cpp ~/benchsrc/llama_cpp_python-0.3.36/vendor/llama.cpp

Needs, in the same venv: torch, transformers, numpy, sentencepiece, PyYAML, tqdm (the converters'
imports); `gguf` is taken from the source tree's gguf-py (matching the converters).

One workaround: our tokenizer is synthetic (make_models.py), so convert_hf_to_gguf.py does not
recognise its pre-tokenizer hash and raises NotImplementedError. The converters run in a child
process (this file with --shim) that wraps `TextModel.get_vocab_base_pre` to answer "gpt-2" in that
case; nothing else changes. The pre-tokenizer only matters for turning text into tokens, which the
benchmark never does (it feeds token ids).
"""

import argparse
import os
import runpy
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
OUT = os.path.join(WORK, "gguf")


def shim(src, script, args):
    sys.path.insert(0, src)
    sys.path.insert(1, os.path.join(src, "gguf-py"))
    import conversion.base as base  # noqa: E402  (from the llama.cpp source tree)

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            print("make_gguf shim: pre-tokenizer not recognised (synthetic tokenizer); writing 'gpt-2'",
                  file=sys.stderr)
            return "gpt-2"

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = [script] + args
    runpy.run_path(os.path.join(src, script), run_name="__main__")


def run(src, script, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--shim", src, script] + args
    print("+", " ".join(cmd[3:]), flush=True)
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = [l for l in (p.stdout + p.stderr).splitlines() if "INFO:hf-to-gguf:blk." not in l]
    if p.returncode != 0:
        print("\n".join(lines[-40:]), file=sys.stderr)
        raise SystemExit(f"{script} failed (exit {p.returncode})")
    print("\n".join("    " + l for l in lines if "shim" in l or "Model successfully" in l or "written" in l.lower()))
    print(f"    {time.time() - t0:.0f} s", flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--shim":
        return shim(sys.argv[2], sys.argv[3], sys.argv[4:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source folder (has convert_hf_to_gguf.py)")
    a = ap.parse_args()
    src = os.path.abspath(a.llama_cpp)
    for f in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "gguf-py"):
        if not os.path.exists(os.path.join(src, f)):
            raise SystemExit(f"{src}: no {f}; pass the vendor/llama.cpp folder of the llama-cpp-python sdist")
    f32 = os.path.join(WORK, "smollm-f32")
    if not os.path.exists(os.path.join(f32, "model.safetensors")):
        raise SystemExit("run bench/make_models.py first")
    os.makedirs(OUT, exist_ok=True)
    run(src, "convert_hf_to_gguf.py", [f32, "--outtype", "f32", "--outfile", os.path.join(OUT, "smollm-f32.gguf")])
    run(src, "convert_hf_to_gguf.py", [f32, "--outtype", "f16", "--outfile", os.path.join(OUT, "smollm-f16.gguf")])
    run(src, "convert_lora_to_gguf.py", [os.path.join(WORK, "experts", "e0"), "--base", f32, "--outtype", "f32",
                                         "--outfile", os.path.join(OUT, "lora-e0-f32.gguf")])
    for f in sorted(os.listdir(OUT)):
        print(f"{os.path.join(OUT, f)}: {os.path.getsize(os.path.join(OUT, f)) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

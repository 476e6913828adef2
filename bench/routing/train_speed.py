"""Training speed: one LoRA expert trained by loramixer (`lmx train`) and by PyTorch + PEFT, in
the same run, same machine, same threads.

    ~/torchvenv/bin/python bench/routing/train_speed.py [--work bench/work/routing] [--steps 150] [--runs 3]

The job is the routing bench's expert recipe (run.py): the bench's base, the math task's 2,000
examples, r 8 / alpha 16 on all seven projections, AdamW, batch 32, loss on the completion bytes.
PyTorch + PEFT runs the same steps the usual way (a padded batch, `model(input_ids).logits`,
cross-entropy, `loss.backward()`, clip, `opt.step()`), with `torch.set_num_threads` equal to
loramixer's `--threads`. Tokens/s counts the examples' own tokens (padding excluded) over the
timed steps; the first step of each engine is a warm-up and not timed. Engines alternate
(A B A B ...); the table gives medians over `--runs` and the median of the per-run ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LMX = os.path.join(REPO, ".build", "release", "lmx")
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def loramixer_speed(work: str, data: str, steps: int, threads: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([LMX, "train", "--model", os.path.join(work, "base"), "--new-expert", "math", "--data", data,
                        "--regime", "joint", "--routing", "label", "--out", out, "--threads", str(threads),
                        "--lora-rank", "8", "--lora-alpha", "16", "--target-modules", ",".join(MODULES),
                        "--steps", str(steps + 1), "--batch-size", "32", "--lr", "5e-3", "--weight-decay", "0",
                        "--quiet"], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "report.json")) as f:
            records = json.load(f)["steps"]
    # Tokens of steps 2.. over their time (step 1 is the warm-up).
    first, last = records[0], records[-1]
    tokens = last["tokens_per_s"] * last["elapsed_s"] - first["tokens_per_s"] * first["elapsed_s"]
    return tokens / (last["elapsed_s"] - first["elapsed_s"])


def torch_speed(work: str, examples: list, steps: int, threads: int) -> float:
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(os.path.join(work, "base"), dtype=torch.float32, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=MODULES,
                                             task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-3, weight_decay=0.0)
    rng = random.Random(0)
    tokens, started = 0, 0.0
    for step in range(steps + 1):
        batch = rng.sample(examples, 32)
        ids = [list((e["prompt"] + e["completion"]).encode()) for e in batch]
        width = max(map(len, ids)) - 1
        x = torch.zeros(len(ids), width, dtype=torch.long)
        y = torch.full((len(ids), width), -100, dtype=torch.long)
        for i, (e, row) in enumerate(zip(batch, ids)):
            x[i, :len(row) - 1] = torch.tensor(row[:-1])
            prompt = len(e["prompt"].encode())
            y[i, prompt - 1:len(row) - 1] = torch.tensor(row[prompt:])
        if step == 1:
            started = time.perf_counter()
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step >= 1:
            tokens += sum(map(len, ids))
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=os.path.join(REPO, "bench", "work", "routing"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    data = os.path.join(args.work, "data", "math.train.jsonl")
    with open(data) as f:
        examples = [json.loads(line) for line in f if line.strip()]
    ours, theirs = [], []
    for run in range(args.runs):
        ours.append(loramixer_speed(args.work, data, args.steps, args.threads))
        theirs.append(torch_speed(args.work, examples, args.steps, args.threads))
        print(f"run {run + 1}: loramixer {ours[-1]:.0f} tok/s, PyTorch+PEFT {theirs[-1]:.0f} tok/s", flush=True)
    ratio = statistics.median(a / b for a, b in zip(ours, theirs))
    print(f"\n| engine ({args.threads} threads, {args.steps} steps of 32) | training tokens/s (median, min-max) |")
    print("|---|---|")
    print(f"| loramixer `lmx train` | {statistics.median(ours):.0f} ({min(ours):.0f}-{max(ours):.0f}), {ratio:.2f}x PyTorch |")
    print(f"| PyTorch + PEFT | {statistics.median(theirs):.0f} ({min(theirs):.0f}-{max(theirs):.0f}) |")


if __name__ == "__main__":
    main()

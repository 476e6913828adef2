"""Train the routing bench's base model: a tiny byte-level LlamaForCausalLM (issue 6).

    python tools/train_base.py [--data bench/work/routing/data/base.jsonl]
                               [--out bench/work/routing/base] [--steps 4000] [--threads 1]

Needs torch, transformers (>= 5), safetensors; CPU only, seeded (seed 6): a rerun with the same
package versions and thread count writes the same weights.

The data is `base.jsonl` from `bench/routing/make_tasks.py`: three SIBLING tasks of the suite's
(subtraction "42-30=", copy "[mixer]", reverse lookup "K:4 Q:7 ?7"; see that file's docstring). The
model learns byte-level text, the answer alphabets and lengths, when to stop (byte 10) and the
circuits, and is near zero on the suite itself (it never sees '+', '<', '>' or '?' before a
letter); the suite's skills are left for the LoRA experts. With the defaults it reaches exact match
0.99 (sub), 1.00 (copy), 0.84 (rlookup) on fresh sibling draws, and 0.00 on the suite's eval.
Takes ~750 s on one CPU thread (4000 steps, ~0.19 s/step on a shared 2-core machine); 2000 steps is
not enough (sub 0.43, rlookup 0.35): the lookup circuit forms late.

Model: vocab 256 (token id = byte value; no BOS/EOS/PAD ids), hidden 128, 4 layers, 4 heads / 2 KV
heads (head_dim 32), intermediate 320, max_position_embeddings 256, RoPE theta 10000, tied
embeddings, float32 (~2.9 MB of safetensors).

Training: one example per sequence, starting at position 0 with the prompt's first byte (no BOS),
bytes = prompt + completion; next-token cross-entropy, weighted mean over the example's positions
with weight 1 on completion bytes and --prompt-weight (0.1) on prompt bytes (padding ignored).
AdamW (betas 0.9/0.95, weight decay 0.01 on matrices, none on norms), lr 3e-3 with 100 warmup steps
then cosine to 10%, batch 64, 4000 steps, grad-norm clip 1.0, initializer_range 0.02.

Writes OUT/config.json, generation_config.json, model.safetensors (save_pretrained, safetensors) and
OUT/train_log.json (loss curve, timings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time

import torch
import torch.nn.functional as F
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 6
PAD = -100


def model_config(hidden=128, intermediate=320, layers=4):
    return LlamaConfig(
        vocab_size=256, hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        head_dim=hidden // 4, max_position_embeddings=256, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True, initializer_range=0.02, hidden_act="silu",
        attention_bias=False, mlp_bias=False, bos_token_id=None, eos_token_id=None,
        pad_token_id=None, use_cache=True, dtype="float32")


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def encode(ex):
    """(input ids, prompt length) of one example, bytes = ids."""
    p = list(ex["prompt"].encode())
    c = list(ex["completion"].encode())
    return p + c, len(p)


def make_batch(examples, completion_only=False, prompt_weight=None):
    """input_ids (B, T) padded with 0; labels (B, T) = next token or -100 (the shift is done here).
    With prompt_weight, also returns per-position loss weights: prompt_weight on the prompt's
    next-byte targets, 1 on the completion's, 0 on padding."""
    enc = [encode(ex) for ex in examples]
    T = max(len(ids) for ids, _ in enc) - 1
    x = torch.zeros(len(enc), T, dtype=torch.long)
    y = torch.full((len(enc), T), PAD, dtype=torch.long)
    w = torch.zeros(len(enc), T)
    for i, (ids, plen) in enumerate(enc):
        n = len(ids) - 1
        x[i, :n] = torch.tensor(ids[:-1])
        y[i, :n] = torch.tensor(ids[1:])
        w[i, :n] = 1.0
        if prompt_weight is not None:
            w[i, :plen - 1] = prompt_weight
        if completion_only:
            y[i, :plen - 1] = PAD  # only predict completion bytes
    return (x, y, w) if prompt_weight is not None else (x, y)


def lm_loss(model, x, y, w=None):
    logits = model(input_ids=x).logits
    if w is None:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=PAD)
    per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=PAD,
                          reduction="none")
    w = w.reshape(-1)
    return (per * w).sum() / w.sum()


def lr_at(step, steps, lr, warmup=100, floor=0.1):
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(REPO, "bench/work/routing/data/base.jsonl"))
    ap.add_argument("--out", default=os.path.join(REPO, "bench/work/routing/base"))
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--intermediate", type=int, default=320)
    ap.add_argument("--prompt-weight", type=float, default=0.1)
    ap.add_argument("--save-every", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    data = load_jsonl(args.data)
    cfg = model_config(args.hidden, args.intermediate)
    model = LlamaForCausalLM(cfg)
    model.config._attn_implementation = "sdpa"
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params} ({n_params * 4 / 1e6:.2f} MB f32), {len(data)} examples", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    order, pos = [], 0
    log = []
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        if pos + args.batch > len(order):
            order = list(range(len(data)))
            rng.shuffle(order)
            pos = 0
        batch = [data[i] for i in order[pos:pos + args.batch]]
        pos += args.batch
        x, y, w = make_batch(batch, prompt_weight=args.prompt_weight)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr)
        loss = lm_loss(model, x, y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            log.append({"step": step, "loss": round(loss.item(), 4), "s": round(time.time() - t0, 1)})
            print(log[-1], flush=True)
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.steps:
            model.save_pretrained(os.path.join(args.out, f"step{step + 1}"), safe_serialization=True)
    train_s = time.time() - t0

    model.eval()
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    GenerationConfig(do_sample=False, max_new_tokens=8, eos_token_id=10).save_pretrained(args.out)
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump({"args": vars(args) | {"data": os.path.relpath(args.data, REPO),
                                         "out": os.path.relpath(args.out, REPO)},
                   "seed": SEED, "params": n_params, "train_s": round(train_s, 1),
                   "log": log}, f, indent=1)
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    print(f"saved {args.out} (model.safetensors {size / 1e6:.2f} MB) in {train_s:.0f}s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write the benchmark's models under bench/work/ (git-ignored).

A SmolLM-135M-shaped llama with random weights (hidden 576, 30 layers, 9 heads, 3 KV heads,
intermediate 1536, vocab 49152, tied embeddings, 2048 positions), stored twice:

    bench/work/smollm-f32/     config.json, model.safetensors (f32), tokenizer files
    bench/work/smollm-bf16/    the same weights rounded to bf16
    bench/work/experts/e0..e7  8 PEFT LoRA adapters: r 16, alpha 16, q/k/v/o_proj,
                               init_lora_weights=False, lora_B scaled by LORA_B_SCALE
    bench/work/router.safetensors
                               loramixer router (docs/ARCHITECTURE.md#router-file) over e0..e7: top_k 2,
                               temperature 1.0, scope layer, input token
    bench/work/models.json     what was written (seeds, sizes, logit checks)

The tokenizer is synthetic (no download is possible here): a byte-level BPE whose merges are the
first pairs of byte symbols, so that llama.cpp's converter has a vocabulary of exactly 49152
entries to write. The benchmark feeds token ids, never text.

Needs torch, transformers (>= 5), peft, safetensors, tokenizers, numpy (e.g. ~/torchvenv).
Deterministic: the same seeds give the same weights. Run from anywhere:

    ~/torchvenv/bin/python bench/make_models.py
"""

import json
import os
import shutil
import sys
import time
import warnings

import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from lmx_reference import sort_safetensors_metadata as sort_metadata  # noqa: E402  (shared with the fixture tools)
from make_byte_tokenizer import byte_level_characters  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
F32_DIR = os.path.join(WORK, "smollm-f32")
BF16_DIR = os.path.join(WORK, "smollm-bf16")
EXPERT_DIR = os.path.join(WORK, "experts")
ROUTER = os.path.join(WORK, "router.safetensors")

N_EXPERTS = 8
EXPERTS = [f"e{i}" for i in range(N_EXPERTS)]
SEED_MODEL = 1350
SEED_EXPERTS = 1400  # e{i}: SEED_EXPERTS + i
SEED_ROUTER = 1500
SEED_CHECK = 1600  # tokens of the logit sanity check
INIT_RANGE = 0.05  # std of every projection and of the (tied) embedding
LORA_R = 16
LORA_ALPHA = 16
LORA_B_SCALE = 0.15  # lora_B *= this after PEFT's init_lora_weights=False (nn.Linear) init
ROUTER_SCALE = 3.0  # router weights ~ N(0, (ROUTER_SCALE / sqrt(576))^2), biases ~ N(0, 0.5^2)

CONFIG = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
              num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=2048,
              tie_word_embeddings=True, initializer_range=INIT_RANGE, rms_norm_eps=1e-5,
              hidden_act="silu", attention_bias=False, mlp_bias=False,
              bos_token_id=0, eos_token_id=0, pad_token_id=None,
              rope_parameters=dict(rope_type="default", rope_theta=10000.0))


def say(*a):
    print(*a, flush=True)


def write_tokenizer(dirs):
    """A byte-level BPE tokenizer with exactly vocab_size entries: id 0 '<|endoftext|>', ids
    1..256 the bytes, then two-symbol merges (a, b) in byte order until the vocabulary is full."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    n_vocab = CONFIG["vocab_size"]
    mapping = byte_level_characters()
    syms = [mapping[b] for b in range(256)]
    vocab = {"<|endoftext|>": 0}
    for s in syms:
        vocab[s] = len(vocab)
    merges = []
    for a in syms:
        for b in syms:
            if len(vocab) >= n_vocab:
                break
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    assert len(vocab) == n_vocab
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   unk_token=None)
    for d in dirs:
        fast.save_pretrained(d)


def file_size(path):
    return os.path.getsize(path)


def load(path, dtype=torch.float32):
    return LlamaForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager").eval()


@torch.inference_mode()
def last_logits(model, tokens):
    return model(input_ids=tokens.view(1, -1)).logits[0, -1].float()


def write_expert(load_base, out, seed, target_modules, base_name):
    """One PEFT LoRA expert in folder ``out``: PEFT's own init (init_lora_weights=False, the
    nn.Linear init, drawn after torch.manual_seed(seed)), lora_B scaled by LORA_B_SCALE, r LORA_R,
    alpha LORA_ALPHA on ``target_modules``; no model card; adapter_config.json with sorted keys and
    target modules and ``base_name`` as base_model_name_or_path (reruns give identical bytes).
    ``load_base()`` returns a fresh f32 base model. Also used by bench/mamba.py."""
    torch.manual_seed(seed)
    pm = get_peft_model(load_base(), LoraConfig(
        r=LORA_R, lora_alpha=LORA_ALPHA, init_lora_weights=False, lora_dropout=0.0, bias="none",
        target_modules=target_modules, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for pname, p in pm.named_parameters():
            if ".lora_B." in pname:
                p.mul_(LORA_B_SCALE)
    pm.save_pretrained(out)
    card = os.path.join(out, "README.md")
    if os.path.exists(card):
        os.remove(card)
    cfg_path = os.path.join(out, "adapter_config.json")
    c = json.load(open(cfg_path))
    c["target_modules"] = sorted(c["target_modules"])
    c["base_model_name_or_path"] = base_name
    with open(cfg_path, "w") as f:
        f.write(json.dumps(c, indent=2, sort_keys=True))


def check_expert(load_base, out, tokens, base_logits, name):
    """Last-position logits of base + the expert in ``out`` (PeftModel, unmerged) against the base's:
    finite and visibly different, but not wildly so. Returns the figures for models.json."""
    lg = last_logits(PeftModel.from_pretrained(load_base(), out).eval(), tokens)
    diff = float((lg - base_logits).abs().max())
    say(f"expert {name}: max |peft - base| {diff:.3f}, logit std {float(lg.std()):.3f}")
    assert torch.isfinite(lg).all() and 0.01 < diff < 10 * float(base_logits.std()) + 1
    return {"max_abs_vs_base": diff, "logit_std": float(lg.std()),
            "bytes": file_size(os.path.join(out, "adapter_model.safetensors"))}


def write_router(path, d, n_layers, seed, experts=EXPERTS, top_k=2):
    """A loramixer router file (docs/ARCHITECTURE.md#router-file) over ``experts``: per layer a weight
    [E, d] ~ N(0, (ROUTER_SCALE / sqrt(d))^2) and a bias [E] ~ N(0, 0.5^2), drawn from a generator
    seeded with ``seed``; metadata top_k, scope layer, temperature 1.0, input token."""
    g = torch.Generator().manual_seed(seed)
    n = len(experts)
    tensors = {}
    for i in range(n_layers):
        tensors[f"router.layers.{i}.weight"] = (torch.randn(n, d, generator=g) * ROUTER_SCALE / d ** 0.5).contiguous()
        tensors[f"router.layers.{i}.bias"] = (torch.randn(n, generator=g) * 0.5).contiguous()
    save_file(tensors, path, metadata={
        "format": "loramixer.router", "version": "1", "experts": json.dumps(list(experts), separators=(",", ":")),
        "top_k": str(top_k), "scope": "layer", "temperature": "1.0", "input": "token"})
    sort_metadata(path)


def main():
    t0 = time.time()
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.set_num_threads(2)
    for d in (F32_DIR, BF16_DIR, EXPERT_DIR):
        if os.path.isdir(d):
            shutil.rmtree(d)
    os.makedirs(WORK, exist_ok=True)

    torch.manual_seed(SEED_MODEL)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG)).eval()
    model.save_pretrained(F32_DIR)
    model.to(torch.bfloat16).save_pretrained(BF16_DIR)
    write_tokenizer([F32_DIR, BF16_DIR])
    del model
    say(f"base model: {file_size(os.path.join(F32_DIR, 'model.safetensors')) / 1e6:.1f} MB f32, "
        f"{file_size(os.path.join(BF16_DIR, 'model.safetensors')) / 1e6:.1f} MB bf16")

    g = torch.Generator().manual_seed(SEED_CHECK)
    tokens = torch.randint(1, CONFIG["vocab_size"], (32,), generator=g)
    base = load(F32_DIR)
    base_logits = last_logits(base, tokens)
    bf16_logits = last_logits(load(BF16_DIR), tokens)
    report = {"base_logit_std": float(base_logits.std()),
              "bf16_vs_f32_max_abs": float((bf16_logits - base_logits).abs().max())}
    say(f"base logits: std {report['base_logit_std']:.3f}; bf16 vs f32 max |diff| "
        f"{report['bf16_vs_f32_max_abs']:.3f}")

    report["experts"] = {}
    for i, name in enumerate(EXPERTS):
        out = os.path.join(EXPERT_DIR, name)
        write_expert(lambda: load(F32_DIR), out, seed=SEED_EXPERTS + i,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], base_name="bench/work/smollm-f32")
        report["experts"][name] = check_expert(lambda: load(F32_DIR), out, tokens, base_logits, name)

    d, n_layers = CONFIG["hidden_size"], CONFIG["num_hidden_layers"]
    write_router(ROUTER, d, n_layers, seed=SEED_ROUTER)
    say(f"router: {ROUTER} ({N_EXPERTS} experts, {n_layers} layers, top_k 2)")

    report.update(seeds=dict(model=SEED_MODEL, experts=SEED_EXPERTS, router=SEED_ROUTER, check=SEED_CHECK),
                  init_range=INIT_RANGE, lora=dict(r=LORA_R, alpha=LORA_ALPHA, b_scale=LORA_B_SCALE),
                  router_scale=ROUTER_SCALE, config=CONFIG,
                  versions=dict(torch=torch.__version__, transformers=transformers.__version__,
                                peft=__import__("peft").__version__))
    with open(os.path.join(WORK, "models.json"), "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    say(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    sys.exit(main())

"""Write the demo's bundled default model under `models/`: random-weight PLACEHOLDERS (a later
issue replaces them with trained ones).

Run from anywhere (paths are resolved relative to the repository root):

    python tools/make_default_model.py

Needs a Python venv with torch, transformers (>= 5), peft, safetensors and numpy; CPU only
(`tools/requirements.txt` pins the versions the committed files were made with).
All random draws are seeded, so a rerun with the same package versions writes the same bytes.

What it writes:

    models/tiny-llama/            config.json, generation_config.json, model.safetensors (float32):
                                  LlamaForCausalLM, byte-level vocab 256, hidden 96, 4 layers,
                                  4 heads / 2 KV heads, intermediate 256, max_position_embeddings 256,
                                  tied embeddings
    models/experts/{math,strings,lookup}/
                                  PEFT LoRA adapters (adapter_config.json, adapter_model.safetensors):
                                  r 8, lora_alpha 16, q/k/v/o, init_lora_weights=False
    models/router.safetensors     router (DESIGN.md section 6): experts ["math","strings","lookup"],
                                  top_k 2, temperature 1.0, input token, scope layer
    models/README.md              what these are and how to regenerate them

The whole folder must stay under 5 MB; the script prints its size and the routing selections
over a sample text.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings

import torch
from safetensors import safe_open

import peft
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lmx_reference import LoraExpert, Mixture, Router, probability_gaps, write_router  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = "models"
MODEL_DIR = os.path.join(OUT, "tiny-llama")
EXPERTS = ["math", "strings", "lookup"]
SEED_MODEL = 500
SEED_EXPERTS = 510  # math, strings, lookup: 510, 511, 512
SEED_ROUTER = 600  # first seed tried
INIT_RANGE = 0.15
LORA_B_SCALE = 0.5  # lora_B is multiplied by this after PEFT's init_lora_weights=False init
ROUTER_SCALE = 3.0
SIZE_LIMIT = 5e6
SAMPLE = 'What is 12+30? 42. Reverse "mixer": rexim. Capital of France: Paris.'


def say(*a):
    print(*a, flush=True)


def load_base():
    return AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32,
                                                attn_implementation="eager").eval()


@torch.no_grad()
def logits_of(model, tokens):
    return model(input_ids=tokens.view(1, -1).long()).logits[0].float()


def dir_size(path):
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs)


def main():
    os.chdir(REPO)
    warnings.filterwarnings("ignore", category=FutureWarning)  # peft/transformers deprecation chatter
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    for sub in ("tiny-llama", "experts"):
        if os.path.isdir(os.path.join(OUT, sub)):
            shutil.rmtree(os.path.join(OUT, sub))
    os.makedirs(OUT, exist_ok=True)

    # Base model. Byte-level: token id = byte value; no BOS/EOS ids (bytes 1 and 2 are not special).
    torch.manual_seed(SEED_MODEL)
    cfg = LlamaConfig(vocab_size=256, hidden_size=96, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=256, max_position_embeddings=256,
                      tie_word_embeddings=True, initializer_range=INIT_RANGE, rms_norm_eps=1e-5,
                      bos_token_id=None, eos_token_id=None, pad_token_id=None,
                      rope_parameters=dict(rope_type="default", rope_theta=10000.0))
    LlamaForCausalLM(cfg).save_pretrained(MODEL_DIR)

    tokens = torch.tensor(list(SAMPLE.encode("utf-8")), dtype=torch.int32)
    base = load_base()
    base_logits = logits_of(base, tokens)
    say(f"tiny-llama: base logit std {float(base_logits.std()):.3f} over the sample text ({len(tokens)} bytes)")

    # Experts.
    dirs = {}
    for k, name in enumerate(EXPERTS):
        torch.manual_seed(SEED_EXPERTS + k)
        pm = get_peft_model(load_base(), LoraConfig(r=8, lora_alpha=16, init_lora_weights=False, lora_dropout=0.0,
                                                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                    bias="none", task_type="CAUSAL_LM"))
        with torch.no_grad():
            for pname, p in pm.named_parameters():
                if ".lora_B." in pname:
                    p.mul_(LORA_B_SCALE)
        out = os.path.join(OUT, "experts", name)
        pm.save_pretrained(out)
        card = os.path.join(out, "README.md")
        if os.path.exists(card):
            os.remove(card)
        path = os.path.join(out, "adapter_config.json")  # target_modules come from a set: sort them
        c = json.load(open(path))
        c["target_modules"] = sorted(c["target_modules"])
        with open(path, "w") as f:
            f.write(json.dumps(c, indent=2, sort_keys=True))
        dirs[name] = out
        lg = logits_of(PeftModel.from_pretrained(load_base(), out).eval(), tokens)
        say(f"expert {name}: max |peft - base| = {float((lg - base_logits).abs().max()):.3f}, "
            f"logit std {float(lg.std()):.3f}")
        assert float((lg - base_logits).abs().max()) > 0.05
        dirs[name + ":logits"] = lg

    experts = [LoraExpert.load(dirs[n], n) for n in EXPERTS]
    mix = Mixture(load_base(), experts)
    for k, name in enumerate(EXPERTS):
        lg, _ = mix.run(tokens, "fixed", fixed=[1.0 if j == k else 0.0 for j in range(len(EXPERTS))])
        assert float((lg - dirs[name + ":logits"]).abs().max()) < 1e-5, name

    # Router: reseed until routing varies between tokens in every layer (no near-tie rule here:
    # this is a demo model, not a fixture).
    d = cfg.hidden_size
    n_layers = cfg.num_hidden_layers
    for seed in range(SEED_ROUTER, SEED_ROUTER + 2000):
        g = torch.Generator().manual_seed(seed)
        W = [torch.randn(len(EXPERTS), d, generator=g) * ROUTER_SCALE / d ** 0.5 for _ in range(n_layers)]
        b = [torch.randn(len(EXPERTS), generator=g) * 0.5 for _ in range(n_layers)]
        r = Router(experts=list(EXPERTS), weights=W, biases=b, context_weights=None, top_k=2,
                   temperature=1.0, input_kind="token")
        _, tr = mix.run(tokens, "learned", router=r)
        ok = True
        for t in tr:
            counts = torch.bincount(t.ids[:, 0], minlength=len(EXPERTS))
            ok = ok and bool((counts >= len(tokens) // 10).all())  # every expert leads >= 10% of tokens
        if ok:
            break
    else:
        raise RuntimeError("no router seed found")
    path = os.path.join(OUT, "router.safetensors")
    write_router(path, EXPERTS, W, b, top_k=2, temperature="1.0", input_kind="token")
    r = Router.load(path)
    lg, tr = mix.run(tokens, "learned", router=r)
    say(f"router seed {seed}; min probability gap {probability_gaps(tr):.4f}; "
        f"max |learned - base| = {float((lg - base_logits).abs().max()):.3f}")
    say("top-1 expert per byte of the sample (m=math, s=strings, l=lookup):")
    say(f"  text    : {SAMPLE}")
    letters = "msl"
    for i, t in enumerate(tr):
        say(f"  layer {i} : " + "".join(letters[int(x)] for x in t.ids[:, 0]))
    for i, t in enumerate(tr):
        counts = torch.bincount(t.ids[:, 0], minlength=3).tolist()
        pairs = {}
        for row in t.ids.tolist():
            key = "+".join(EXPERTS[x] for x in sorted(row))
            pairs[key] = pairs.get(key, 0) + 1
        say(f"  layer {i}: top-1 counts {dict(zip(EXPERTS, counts))}; top-2 sets {pairs}")
    with safe_open(path, framework="pt") as f:
        say(f"router metadata: {dict(sorted(f.metadata().items()))}")

    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(f"""# Bundled default model (random-weight placeholders)

Everything in this folder was made by `tools/make_default_model.py` from seeded random numbers;
none of it is trained. It exists so the demo's first command has a model, experts and a router to
load. A later issue replaces these files with trained ones.

- `tiny-llama/` — LlamaForCausalLM (config.json, generation_config.json, model.safetensors, float32):
  byte-level vocabulary of 256 (token id = byte value; no BOS/EOS/PAD ids), hidden 96, 4 layers,
  4 heads / 2 KV heads (head_dim 24), intermediate 256, max_position_embeddings 256, tied embeddings,
  RoPE theta 10000, initializer_range {INIT_RANGE}. Seed {SEED_MODEL}.
- `experts/{{math,strings,lookup}}/` — PEFT LoRA adapters (adapter_config.json, adapter_model.safetensors):
  r 8, lora_alpha 16, target q/k/v/o_proj, made with `init_lora_weights=False` and lora_B scaled by
  {LORA_B_SCALE:g}. Seeds {SEED_EXPERTS}, {SEED_EXPERTS + 1}, {SEED_EXPERTS + 2}. Despite their names they know nothing about math,
  strings or lookups yet.
- `router.safetensors` — router file (DESIGN.md section 6): experts ["math","strings","lookup"], top_k 2,
  temperature 1.0, input token, scope layer; weights N(0, ({ROUTER_SCALE:g}/sqrt(96))^2), biases N(0, 0.5^2),
  seed {seed} (the first seed from {SEED_ROUTER} whose routing varies between the bytes of a sample text in
  every layer).

Regenerate (from the repository root, with a venv holding torch, transformers >= 5, peft, safetensors):

    python tools/make_default_model.py

Made with torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}.
""")

    total = dir_size(OUT)
    say(f"models/ total: {total / 1e6:.2f} MB")
    assert total < SIZE_LIMIT, total


if __name__ == "__main__":
    main()

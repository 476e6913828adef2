"""The routing bench (issue 6): does routing a mixture of task experts beat merging them?

    ~/torchvenv/bin/python bench/routing/run.py [--work bench/work/routing] [--install-default]

Needs `swift build -c release` first (it runs `.build/release/lmx` and the Python package over
`.build/release/libloramixer.so`), and a venv with torch/transformers/peft for the base model and
the PEFT load check. Every stage is skipped when its output exists (`--force STAGE` reruns one):

  data     bench/routing/make_tasks.py: three byte-level tasks (math, strings, lookup), JSON Lines
  base     tools/train_base.py: a tiny llama trained with torch on sibling tasks (see make_tasks.py)
  experts  `lmx train --regime joint --routing label`: one new LoRA expert per task, trained on its
           task's 2,000 examples (one run per task, as one would train a PEFT adapter)
  routers  `lmx train --regime router`: a router over the frozen experts from <= 2,000 mixed
           examples, with the RSL terms and without, for a context router and a token router
  peft     each written expert loaded by PEFT (PeftModel.from_pretrained): logits vs loramixer's
  eval     exact match of greedy generation (until "\\n") per task for: the base, each single
           expert, the uniform merge (every expert at 1/3), the per-task oracle (the task's own
           expert), and each router with learned top-1 and top-2 routing

Results go to WORK/results.json and WORK/results.md; bench/routing/README.md quotes them.
`--install-default` then copies the base, the experts and a router (`--default-router`) to models/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LMX = os.path.join(REPO, ".build", "release", "lmx")
TASKS = ["math", "strings", "lookup"]
THREADS = 2

# Expert training: label routing, a new expert (PEFT's init, B = 0), 16 epochs of batch 32 = 1,000 steps.
EXPERT_ARGS = ["--lora-rank", "8", "--lora-alpha", "16",
               "--target-modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
               "--epochs", "16", "--batch-size", "32", "--lr", "5e-3", "--warmup", "20", "--weight-decay", "0",
               "--seed", "1"]
# Router training: top-2 routing as at inference (renormalised top-K; its gradients flow through the
# two chosen probabilities), after a soft first third (every expert, g = p) so that every expert
# gets a gradient before the choice hardens. Top-1 training would give the router no task gradient
# (g = p / p = 1).
ROUTER_ARGS = ["--routing", "topk", "--top-k", "2", "--soft-steps", "125", "--epochs", "3", "--batch-size", "16",
               "--lr", "1e-2", "--warmup", "10", "--weight-decay", "0", "--seed", "2"]
ROUTERS = {  # name: (router input, alpha, lambda); lambda < 0 rewards confident (low-entropy) routing
    "context-rsl": ("context", "0.01", "-0.01"),
    "context-plain": ("context", "0", "0"),
    "token-rsl": ("token", "0.01", "-0.01"),
}


def run(command: list[str], log: str) -> None:
    print("$", " ".join(command), flush=True)
    with open(log, "w") as out:
        started = time.time()
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        print(f"  {time.time() - started:.1f} s -> {os.path.relpath(log, REPO)}", flush=True)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}); see {log}")


def stage_data(work: str) -> None:
    run([sys.executable, "bench/routing/make_tasks.py", os.path.join(work, "data")], os.path.join(work, "data.log"))


def stage_base(work: str) -> None:
    run([sys.executable, "tools/train_base.py", "--data", os.path.join(work, "data", "base.jsonl"),
         "--out", os.path.join(work, "base")], os.path.join(work, "base.log"))


def stage_experts(work: str) -> None:
    data = os.path.join(work, "data")
    for task in TASKS:
        evaluation = os.path.join(data, f"{task}.eval.jsonl")  # label routing: tasks must name the run's experts
        with open(os.path.join(data, "eval.jsonl")) as source, open(evaluation, "w") as out:
            out.writelines(line for line in source if json.loads(line)["task"] == task)
        command = [LMX, "train", "--model", os.path.join(work, "base"), "--new-expert", task,
                   "--data", os.path.join(data, f"{task}.train.jsonl"), "--eval", evaluation,
                   "--regime", "joint", "--routing", "label", "--out", os.path.join(work, f"expert-{task}"),
                   "--threads", str(THREADS), "--checkpoint-every", "200"]
        run(command + EXPERT_ARGS, os.path.join(work, f"expert-{task}.log"))


def expert_dir(work: str, task: str) -> str:
    return os.path.join(work, f"expert-{task}", "experts", task)


def expert_flags(work: str) -> list[str]:
    return [f"--expert={task}={expert_dir(work, task)}" for task in TASKS]


def stage_routers(work: str) -> None:
    data = os.path.join(work, "data")
    for name, (kind, alpha, lam) in ROUTERS.items():
        command = [LMX, "train", "--model", os.path.join(work, "base"), *expert_flags(work),
                   "--data", os.path.join(data, "router.train.jsonl"), "--regime", "router",
                   "--router-input", kind, f"--alpha={alpha}", f"--lambda={lam}",
                   "--out", os.path.join(work, f"router-{name}"), "--threads", str(THREADS)]
        run(command + ROUTER_ARGS, os.path.join(work, f"router-{name}.log"))


def stage_peft(work: str) -> dict:
    """Each expert through PEFT against loramixer's logits on a prompt of its task."""
    import numpy as np
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, os.path.join(REPO, "python"))
    import loramixer

    base_dir = os.path.join(work, "base")
    model = loramixer.Model(base_dir)
    checks = {}
    prompts = {"math": "12+30=", "strings": "<mixer>", "lookup": "K:4 Q:7 Z:1 ?Q"}
    for task in TASKS:
        folder = expert_dir(work, task)
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        peft_model = PeftModel.from_pretrained(base, folder).eval()
        tokens = list(prompts[task].encode())
        with torch.no_grad():
            reference = peft_model(torch.tensor([tokens])).logits[0].numpy()
        mixer = loramixer.Mixer(model)
        mixer.add_peft(task, folder)
        session = loramixer.Session(mixer)
        session.set_fixed_weights([1.0])
        session.set_routing("fixed")
        ours = session.eval(tokens, logits="all")
        checks[task] = float(np.abs(ours - reference).max())
        print(f"  PEFT {task}: max |logit diff| {checks[task]:.2e}")
    return checks


def exact_match(session, examples, stop=10) -> float:
    hits = 0
    for example in examples:
        session.reset()
        expected = list(example["completion"].encode())
        out = session.generate(list(example["prompt"].encode()), max_tokens=len(expected) + 2, stop=[stop])
        hits += out + [stop] == expected
    return hits / len(examples)


def stage_eval(work: str) -> dict:
    sys.path.insert(0, os.path.join(REPO, "python"))
    import loramixer

    with open(os.path.join(work, "data", "eval.jsonl")) as f:
        examples = [json.loads(line) for line in f if line.strip()]
    by_task = {task: [e for e in examples if e["task"] == task] for task in TASKS}
    model = loramixer.Model(os.path.join(work, "base"))

    def mixer_with(router: str | None = None):
        mixer = loramixer.Mixer(model)
        for task in TASKS:
            mixer.add_peft(task, expert_dir(work, task))
        if router:
            mixer.load_router(os.path.join(work, f"router-{router}", "router.safetensors"))
        return mixer

    rows = {}
    plain = mixer_with()

    def measure(label, configure):
        scores = {}
        for task in TASKS:
            session = loramixer.Session(plain if not isinstance(configure, tuple) else configure[0], trace=False,
                                        n_threads=THREADS)
            (configure[1] if isinstance(configure, tuple) else configure)(session, task)
            scores[task] = exact_match(session, by_task[task])
        scores["mean"] = sum(scores[t] for t in TASKS) / len(TASKS)
        rows[label] = scores
        print(f"  {label:24s} " + "  ".join(f"{t} {scores[t]:.3f}" for t in TASKS + ["mean"]), flush=True)

    def fixed(weights):
        def configure(session, task):
            session.set_fixed_weights(weights)
            session.set_routing("fixed")
        return configure

    measure("base", lambda s, t: s.set_routing("none"))
    for i, expert in enumerate(TASKS):
        measure(f"expert {expert}", fixed([1.0 if j == i else 0.0 for j in range(len(TASKS))]))
    measure("uniform merge", lambda s, t: s.set_routing("uniform"))

    def oracle(session, task):
        session.set_fixed_weights([1.0 if t == task else 0.0 for t in TASKS])
        session.set_routing("fixed")
    measure("oracle (own expert)", oracle)
    for name in ROUTERS:
        mixer = mixer_with(name)
        for k in (1, 2):
            def learned(session, task, k=k):
                session.set_routing("learned")
                session.set_top_k(k)
            measure(f"routed {name} top-{k}", (mixer, learned))
    return rows


def report(work: str, rows: dict, peft: dict) -> None:
    lines = ["| configuration | " + " | ".join(TASKS) + " | mean |", "|---|" + "---|" * (len(TASKS) + 1)]
    for label, scores in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{scores[t]:.3f}" for t in TASKS + ["mean"]) + " |")
    lines.append("")
    lines.append("PEFT load check (max |logit diff|, PeftModel vs loramixer): "
                 + ", ".join(f"{t} {v:.1e}" for t, v in peft.items()))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(work, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"exact_match": rows, "peft_max_logit_diff": peft, "expert_args": EXPERT_ARGS,
                   "router_args": ROUTER_ARGS, "routers": ROUTERS}, f, indent=1)
    print(text)


def install_default(work: str, rows: dict, router: str) -> None:
    """The trained base, experts and router become the bundled default under models/."""
    models = os.path.join(REPO, "models")
    shutil.rmtree(os.path.join(models, "tiny-llama"), ignore_errors=True)
    shutil.copytree(os.path.join(work, "base"), os.path.join(models, "tiny-llama"),
                    ignore=shutil.ignore_patterns("train_log.json"))
    for task in TASKS:
        target = os.path.join(models, "experts", task)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(expert_dir(work, task), target)
        # lmx train records the base folder it was given (a path on this machine); the bundled copy
        # names its base by the folder beside it instead. No loader reads the field.
        config_path = os.path.join(target, "adapter_config.json")
        with open(config_path) as f:
            adapter_config = json.load(f)
        adapter_config["base_model_name_or_path"] = "tiny-llama"
        with open(config_path, "w") as f:
            f.write(json.dumps(adapter_config, separators=(",", ":"), sort_keys=True))
    shutil.copyfile(os.path.join(work, f"router-{router}", "router.safetensors"), os.path.join(models, "router.safetensors"))
    with open(os.path.join(work, "base", "config.json")) as f:
        config = json.load(f)
    kind, alpha, lam = ROUTERS[router]
    with open(os.path.join(models, "router.safetensors"), "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    top_k = int(header["__metadata__"]["top_k"])
    table = [f"| {label} | " + " | ".join(f"{rows[label][t]:.3f}" for t in TASKS + ["mean"]) + " |"
             for label in ("base", *[f"expert {t}" for t in TASKS], "uniform merge", f"routed {router} top-{top_k}")]
    text = f"""# Bundled default model: a tiny byte-level llama, three trained task experts, a router

Made by `bench/routing/run.py --install-default` (see bench/routing/README.md); nothing here is
written by hand. Token id = byte value (vocab 256, no BOS/EOS); answers end with a newline (10).

- `tiny-llama/` — LlamaForCausalLM, float32: hidden {config["hidden_size"]}, {config["num_hidden_layers"]} layers,
  {config["num_attention_heads"]} heads / {config["num_key_value_heads"]} KV heads, intermediate {config["intermediate_size"]},
  tied embeddings. Trained with torch by `tools/train_base.py` on three *sibling* tasks (subtraction
  `42-30=`, copying `[mixer]`, lookup written `k=4 q=7 ?q`), never on the tasks below, so it
  knows the circuits but not the rules.
- `experts/{{math,strings,lookup}}/` — PEFT LoRA folders written by `lmx train --regime joint
  --routing label --new-expert NAME` (r 8, alpha 16, all seven projections), each trained on 2,000
  examples of its task: math `12+30=` -> `42`, strings `<mixer>` -> `rexim` (reverse), lookup
  `K:4 Q:7 Z:1 ?Q` -> `7`. PEFT loads them (`PeftModel.from_pretrained`).
- `router.safetensors` — a {kind} router (docs/ARCHITECTURE.md#routing) trained by `lmx train --regime router`
  on 1,998 mixed examples with the experts frozen, RSL alpha {alpha}, lambda {lam}; top_k {top_k}.

Exact match of greedy answers on 200 held-out examples per task (bench/routing/README.md has every row):

| configuration | {" | ".join(TASKS)} | mean |
|---|{"---|" * (len(TASKS) + 1)}
{chr(10).join(table)}

Regenerate: `~/torchvenv/bin/python bench/routing/run.py --install-default` (about 25 minutes on
2 cores, most of it the torch base).
"""
    with open(os.path.join(models, "README.md"), "w") as f:
        f.write(text)
    print("installed into models/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=os.path.join(REPO, "bench", "work", "routing"))
    parser.add_argument("--force", action="append", default=[], choices=["data", "base", "experts", "routers"])
    parser.add_argument("--install-default", action="store_true")
    parser.add_argument("--default-router", default="context-rsl", choices=list(ROUTERS),
                        help="the router --install-default copies (default: the best mean in the last run)")
    args = parser.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    if not os.path.exists(LMX):
        sys.exit("build first: swift build -c release")
    stages = [("data", os.path.join(work, "data", "eval.jsonl"), stage_data),
              ("base", os.path.join(work, "base", "model.safetensors"), stage_base),
              ("experts", os.path.join(work, f"expert-{TASKS[-1]}", "report.json"), stage_experts),
              ("routers", os.path.join(work, f"router-{list(ROUTERS)[-1]}", "report.json"), stage_routers)]
    for name, marker, stage in stages:
        if name in args.force or not os.path.exists(marker):
            stage(work)
    peft = stage_peft(work)
    rows = stage_eval(work)
    report(work, rows, peft)
    if args.install_default:
        install_default(work, rows, args.default_router)


if __name__ == "__main__":
    main()

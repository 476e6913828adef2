"""The CLI's error conventions, one test each (README "CLI"):

- a path that does not exist is reported as such (exit 1), naming the flag, never as a missing
  config.json or adapter_config.json;
- every usage error exits 64 (EX_USAGE) in every subcommand and names the flag as typed, including
  out-of-range values found only once the model is loaded (a token id beyond the vocabulary);
- positions are counted from 0, with the word "(0-based)", in the CLI as in the C API's messages
  (which the Python package passes on: python/tests/test_errors.py);
- flags that would be silently overridden (--uniform or --fixed with --router, sampling flags
  without --sample-temperature) are usage errors.
"""

import json

import pytest

from test_cli import FIXTURES, USAGE_ERROR, expert_args, lmx  # noqa: F401 (lmx: the fixture)

F = FIXTURES / "llama_f32"
TINY = FIXTURES.parents[1] / "models" / "tiny-llama"  # the bundled model: it has a tokenizer
ROUTER = F / "router.safetensors"
OUT = ["--out", "/tmp/lmx-consistency-unused.npy"]


def one_error_line(result, code):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.startswith("lmx: error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def train_data(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"tokens": [1, 2, 3, 4], "task": "e0"}) + "\n" for _ in range(4)))
    return path


# --- a missing folder or file says it does not exist ---------------------------------------------

MISSING = "/nonexistent/lmx-missing"


def missing_cases(tmp_path):
    data = train_data(tmp_path)
    out = tmp_path / "out"
    train = ["train", "--regime", "router", "--out", out]
    return {
        "logits --model": (["logits", "--model", MISSING, "--tokens", "1", *OUT], f"--model {MISSING}: folder"),
        "run --model": (["run", "--model", MISSING, "--prompt-tokens", "1"], f"--model {MISSING}: folder"),
        "logits --expert": (["logits", "--model", F, "--expert", f"e0={MISSING}", "--tokens", "1", *OUT],
                            f"--expert e0={MISSING}: folder"),
        "logits --router": (["logits", "--model", F, *expert_args("llama_f32"), "--router", MISSING, "--tokens", "1", *OUT],
                            f"--router {MISSING}: file"),
        "train --model": ([*train, "--model", MISSING, *expert_args("llama_f32"), "--data", data], f"--model {MISSING}: folder"),
        "train --expert": ([*train, "--model", F, "--expert", f"e0={MISSING}", "--data", data], f"--expert e0={MISSING}: folder"),
        "train --router": ([*train, "--model", F, *expert_args("llama_f32"), "--router", MISSING, "--data", data],
                           f"--router {MISSING}: file"),
        "train --data": ([*train, "--model", F, *expert_args("llama_f32"), "--data", MISSING], f"--data {MISSING}: file"),
        "train --eval": ([*train, "--model", F, *expert_args("llama_f32"), "--data", data, "--eval", MISSING],
                         f"--eval {MISSING}: file"),
        "inspect": (["inspect", MISSING], MISSING),
        "tokenize --model": (["tokenize", "--model", MISSING, "--text", "a"], f"--model {MISSING}: folder"),
        "detokenize --model": (["detokenize", "--model", MISSING, "--ids", "1"], f"--model {MISSING}: folder"),
        "chat --model": (["chat", "--model", MISSING], f"--model {MISSING}: folder"),
        "run --prompt --model": (["run", "--model", MISSING, "--prompt", "a"], f"--model {MISSING}: folder"),
    }


@pytest.mark.parametrize("case", ["logits --model", "run --model", "logits --expert", "logits --router", "train --model",
                                  "train --expert", "train --router", "train --data", "train --eval", "inspect",
                                  "tokenize --model", "detokenize --model", "chat --model", "run --prompt --model"])
def test_missing_path_says_it_does_not_exist(lmx, tmp_path, case):
    args, named = missing_cases(tmp_path)[case]
    message = one_error_line(lmx(*args, check=False), 1)
    assert named in message and "does not exist" in message, message
    assert "config.json" not in message, message
    assert not (tmp_path / "out").exists()


def test_folder_given_where_a_file_is_expected_and_back(lmx):
    message = one_error_line(lmx("logits", "--model", F / "config.json", "--tokens", "1", *OUT, check=False), 1)
    assert "--model" in message and "is a file, not a folder" in message, message
    message = one_error_line(lmx("logits", "--model", F, *expert_args("llama_f32"), "--router", F, "--tokens", "1", *OUT,
                                 check=False), 1)
    assert "--router" in message and "is a folder, not a file" in message, message


# --- usage errors: exit 64, the flag as typed ---------------------------------------------------

ROUTED = ["--model", F, *expert_args("llama_f32"), "--router", ROUTER]
USAGE = {
    # name: (arguments, what the message says)
    "logits --top-k above the experts": (["logits", *ROUTED, "--top-k", "5", "--tokens", "1", *OUT],
                                         "--top-k 5 must be in 1...3"),
    "run --top-k 0": (["run", *ROUTED, "--top-k", "0", "--prompt-tokens", "1"], "--top-k 0 must be in 1...3"),
    "logits --temperature 0": (["logits", *ROUTED, "--temperature", "0", "--tokens", "1", *OUT], "--temperature 0.0"),
    "logits token id beyond the vocabulary": (["logits", "--model", F, "--tokens", "1,2,3,128", *OUT],
                                              "--tokens: token id 128 at position 3 (0-based) is out of range (vocab size 128)"),
    "run prompt token beyond the vocabulary": (["run", "--model", F, "--prompt-tokens", "999,1"],
                                               "--prompt-tokens: token id 999 at position 0 (0-based)"),
    "run stop token beyond the vocabulary": (["run", "--model", F, "--prompt-tokens", "1", "--stop", "5,300"],
                                             "--stop: token id 300 at position 1 (0-based)"),
    "logits prompt longer than the context": (["logits", "--model", F, "--tokens", ",".join(["1"] * 65), *OUT],
                                              "--tokens: 65 tokens do not fit"),
    "malformed token list": (["logits", "--model", F, "--tokens", "1,,3", *OUT], "at position 1 (0-based) is empty"),
    "malformed token entry": (["run", "--model", F, "--prompt-tokens", "4,x"], "'x' at position 1 (0-based)"),
    "--uniform with --router": (["logits", *ROUTED, "--uniform", "--tokens", "1", *OUT], "--uniform does not use a router"),
    "--fixed with --router": (["run", *ROUTED, "--fixed", "e0=1", "--prompt-tokens", "1"], "--fixed does not use a router"),
    "--seed without sampling": (["run", "--model", F, "--prompt-tokens", "1", "--seed", "3"], "--seed applies to sampling"),
    "--sample-top-k without sampling": (["run", "--model", F, "--prompt-tokens", "1", "--sample-top-k", "5"],
                                        "--sample-top-k applies to sampling"),
    "--sample-top-p without sampling": (["run", "--model", F, "--prompt-tokens", "1", "--sample-top-p", "0.5"],
                                        "--sample-top-p applies to sampling"),
    "run --prompt on a model without tokenizer": (["run", "--model", F, "--prompt", "hi"], "--prompt: the model"),
    "chat on a model without tokenizer": (["chat", "--model", F], "--model: the model"),
    "chat --seed without sampling": (["chat", "--model", TINY, "--seed", "3"], "--seed applies to sampling"),
    "detokenize id beyond the vocabulary": (["detokenize", "--model", TINY, "--ids", "1,2,256"],
                                            "--ids: token id 256 at position 2 (0-based)"),
    "detokenize malformed id list": (["detokenize", "--model", TINY, "--ids", "1 x"], "'x' at position 1 (0-based)"),
    "run --prompt longer than the context": (["run", "--model", TINY, "--prompt", "x" * 257],
                                             "--prompt: 257 tokens do not fit"),
}


@pytest.mark.parametrize("case", list(USAGE))
def test_usage_errors_exit_64_and_name_the_flag(lmx, case):
    args, fact = USAGE[case]
    message = one_error_line(lmx(*args, check=False), USAGE_ERROR)
    assert fact in message, message


TRAIN_USAGE = {
    "--top-k above the experts": (["--top-k", "5"], "--top-k 5 must be in 1...3"),
    "--temperature 0": (["--temperature", "0"], "--temperature 0.0"),
    "--batch-size 0": (["--batch-size", "0"], "--batch-size 0 must be in 1...65536"),
    "--epochs 0": (["--epochs", "0"], "--epochs 0"),
    "--min-lr above --lr": (["--min-lr", "1"], "--min-lr 1.0 must be in"),
    "--threads 0": (["--threads", "0"], "--threads 0"),
    "--alpha negative": (["--alpha=-1"], "--alpha -1.0"),
    "--sensitive unknown": (["--regime", "joint", "--sensitive", "zz"], "--sensitive names unknown expert 'zz'"),
    "--lora-rank 0": (["--regime", "joint", "--new-expert", "n", "--lora-rank", "0"], "--lora-rank 0"),
    "duplicate expert": (["--regime", "joint", "--new-expert", "e0"], "expert 'e0' is given twice"),
    "--router-input with --router": (["--router", F / "router.safetensors", "--router-input", "context"],
                                     "--router-input applies to a new router; --router FILE"),
    "--top-k with joint label routing": (["--regime", "joint", "--routing", "label", "--top-k", "2"],
                                         "--top-k applies to a router, and --routing label --regime joint trains none"),
    "--router-input with label routing": (["--regime", "joint", "--routing", "label", "--router-input", "context"],
                                          "--router-input applies to a new router, and --routing label"),
}


@pytest.mark.parametrize("case", list(TRAIN_USAGE))
def test_train_usage_errors_exit_64_and_name_the_flag(lmx, tmp_path, case):
    extra, fact = TRAIN_USAGE[case]
    regime = [] if "--regime" in extra else ["--regime", "router"]
    result = lmx("train", "--model", F, *expert_args("llama_f32"), "--data", train_data(tmp_path), *regime, *extra,
                 "--out", tmp_path / "out", check=False)
    message = one_error_line(result, USAGE_ERROR)
    assert fact in message, message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [
    ["inspect"],                                           # missing PATH
    ["logits", "--model", F, "--tokens", "1"],             # missing --out
    ["run", "--model", F],                                 # missing --prompt-tokens
    ["tokenize", "--model", TINY],                         # missing --text/--file
    ["detokenize", "--model", TINY],                       # missing --ids
    ["chat", "--model", TINY, "--max-tokens", "0"],        # out of range
    ["train", "--model", F, "--data", "x", "--out", "y"],  # missing --regime
])
def test_every_subcommand_exits_64_on_a_usage_error(lmx, command):
    one_error_line(lmx(*command, check=False), USAGE_ERROR)


def test_sampling_flags_are_accepted_with_a_temperature(lmx):
    result = lmx("run", "--model", F, "--prompt-tokens", "1,2", "--max-tokens", "3", "--sample-temperature", "0.8",
                 "--sample-top-k", "5", "--sample-top-p", "0.9", "--seed", "3")
    assert len(result.stdout.strip().split(",")) == 3

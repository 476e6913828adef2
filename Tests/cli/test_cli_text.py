"""Text in and out of lmx: `lmx tokenize`, `lmx detokenize`, `lmx run --prompt/--chat`, token
pieces in the routing trace, and text training data (`lmx train --dry-run`).

The tokenizer cases come from Tests/Fixtures/tokenizers/*/cases.json (ids computed by Hugging Face
`tokenizers`); the bundled models/tiny-llama has a byte-level tokenizer whose ids are the bytes.
"""

import json
import subprocess

import pytest

from test_cli import FIXTURES, ROOT, USAGE_ERROR, lmx, lmx_path  # noqa: F401 (lmx: the fixture)

TOKENIZERS = FIXTURES / "tokenizers"
TINY = ROOT / "models" / "tiny-llama"
ROUTED = ["--expert", f"math={ROOT / 'models/experts/math'}", "--expert", f"strings={ROOT / 'models/experts/strings'}",
          "--expert", f"lookup={ROOT / 'models/experts/lookup'}", "--router", ROOT / "models" / "router.safetensors"]


def cases(name):
    return json.loads((TOKENIZERS / name / "cases.json").read_text())["cases"]


def ids_of(stdout):
    line = stdout.rstrip("\n")
    assert "\n" not in line, stdout
    return [int(t) for t in line.split(" ")] if line else []


def one_error(result, code):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.startswith("lmx: error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# --- tokenize / detokenize ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["llama3", "qwen2", "gpt2"])
def test_tokenize_matches_tokenizers(lmx, name, tmp_path):
    folder = TOKENIZERS / name
    checked = 0
    for case in cases(name)[:40]:
        text = case["text"]
        if "\0" in text:
            continue
        got = ids_of(lmx("tokenize", "--model", folder, "--parse-special", "--text", text).stdout)
        assert got == case["ids"], (text, got, case["ids"])
        got = ids_of(lmx("tokenize", "--model", folder, "--parse-special", "--add-special", "--text", text).stdout)
        assert got == case["ids_special"], (text, got)
        checked += 1
    assert checked >= 20
    # --file reads the text from a file, byte for byte.
    text = next(c for c in cases(name) if len(c["text"]) > 5 and "<|" not in c["text"])
    (tmp_path / "in.txt").write_text(text["text"])
    assert ids_of(lmx("tokenize", "--model", folder, "--file", tmp_path / "in.txt").stdout) == text["ids"]


def test_tokenize_special_text_is_plain_text_by_default(lmx):
    folder = TOKENIZERS / "llama3"
    case = next(c for c in cases("llama3") if c["text"] == "Hello <|eot_id|> world")
    plain = ids_of(lmx("tokenize", "--model", folder, "--text", case["text"]).stdout)
    parsed = ids_of(lmx("tokenize", "--model", folder, "--parse-special", "--text", case["text"]).stdout)
    assert parsed == case["ids"] and 1 in parsed
    assert 1 not in plain and len(plain) > len(parsed)
    # Without --parse-special the text decodes back to itself.
    text = lmx("detokenize", "--model", folder, "--ids", ",".join(map(str, plain))).stdout
    assert text == case["text"] + "\n"


def detokenize(*args):
    """stdout as bytes: text mode would turn the CR LF pairs of the tokenizer cases into LF."""
    result = subprocess.run([str(lmx_path()), "detokenize", *map(str, args)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name", ["llama3", "qwen2"])
def test_detokenize_matches_tokenizers(lmx, name):
    for case in cases(name)[:30]:
        ids = case["ids_special"]
        if not ids:
            continue
        shown = detokenize("--model", TOKENIZERS / name, "--ids", ",".join(map(str, ids)), "--show-special")
        assert shown == (case["decoded"] + "\n").encode(), case
        skipped = detokenize("--model", TOKENIZERS / name, "--ids", " ".join(map(str, ids)))
        assert skipped == (case["decoded_skip"] + "\n").encode(), case


def test_tokenize_json_pieces_are_lossless(lmx):
    folder = TOKENIZERS / "llama3"
    text = "Hello 東京 👨‍👩‍👧"
    plain = ids_of(lmx("tokenize", "--model", folder, "--text", text).stdout)
    pieces = json.loads(lmx("tokenize", "--model", folder, "--text", text, "--json").stdout)
    assert [p["id"] for p in pieces] == plain
    assert set(pieces[0]) == {"id", "token", "piece", "bytes", "special"}
    assert bytes(b for p in pieces for b in p["bytes"]).decode() == text
    assert any("\ufffd" in p["piece"] for p in pieces)  # some token holds part of a character
    for p in pieces:
        assert p["piece"] == bytes(p["bytes"]).decode("utf-8", errors="replace")
        assert p["special"] is False
    special = json.loads(lmx("tokenize", "--model", folder, "--text", "<|eot_id|>", "--parse-special", "--json").stdout)
    assert special == [{"id": 1, "token": "<|eot_id|>", "piece": "<|eot_id|>", "bytes": list(b"<|eot_id|>"), "special": True}]


def test_detokenize_writes_partial_characters_as_bytes(lmx):
    folder = TOKENIZERS / "llama3"
    pieces = json.loads(lmx("tokenize", "--model", folder, "--text", "東京", "--json").stdout)
    first = pieces[0]
    assert "\ufffd" in first["piece"]
    result = subprocess.run([str(lmx_path()), "detokenize", "--model", str(folder), "--ids", str(first["id"])],
                            capture_output=True)
    assert result.returncode == 0 and result.stdout == bytes(first["bytes"]) + b"\n"


def test_tokenizer_paths(lmx, tmp_path):
    # A model folder (the bundled byte-level model: ids are the bytes), a .gguf file.
    assert ids_of(lmx("tokenize", "--model", TINY, "--text", "12+30=").stdout) == list(b"12+30=")
    assert lmx("detokenize", "--model", TINY, "--ids", "52,50").stdout == "42\n"
    for name in ["gpt2_llama3.gguf", "llama_spm.gguf"]:
        gguf = FIXTURES / "text" / name
        ids = ids_of(lmx("tokenize", "--model", gguf, "--text", "Hello world").stdout)
        assert ids and lmx("detokenize", "--model", gguf, "--ids", ",".join(map(str, ids))).stdout == "Hello world\n"
    # No tokenizer / nothing there: exit 1, naming the flag.
    message = one_error(lmx("tokenize", "--model", FIXTURES / "llama_f32", "--text", "a", check=False), 1)
    assert "--model" in message and "no tokenizer" in message
    message = one_error(lmx("tokenize", "--model", tmp_path / "missing", "--text", "a", check=False), 1)
    assert "does not exist" in message


@pytest.mark.parametrize("args,fact", [
    (["--text", "a", "--file", "x"], "not both"),
    ([], "--text"),
])
def test_tokenize_usage_errors(lmx, args, fact):
    message = one_error(lmx("tokenize", "--model", TINY, *args, check=False), USAGE_ERROR)
    assert fact in message


def test_detokenize_usage_errors(lmx):
    message = one_error(lmx("detokenize", "--model", TINY, "--ids", "1,300", check=False), USAGE_ERROR)
    assert "token id 300 at position 1 (0-based)" in message
    message = one_error(lmx("detokenize", "--model", TINY, "--ids", "1,,2", check=False), USAGE_ERROR)
    assert "position 1 (0-based)" in message


# --- run --prompt ---------------------------------------------------------------------------------

def test_run_prompt_text(lmx):
    out = lmx("run", "--model", TINY, *ROUTED, "--prompt", "12+30=").stdout
    assert out == "42\n"
    # The same ids as --prompt-tokens with the end-of-turn id (10) as stop token.
    ids = lmx("run", "--model", TINY, *ROUTED, "--prompt-tokens", ",".join(map(str, b"12+30=")), "--stop", "10").stdout
    assert ids.strip() == "52,50"
    # --chat: this model's template writes the user's text as it is.
    assert lmx("run", "--model", TINY, *ROUTED, "--prompt", "12+30=", "--chat").stdout == "42\n"
    # --ignore-eos: generation goes on past the newline, up to --max-tokens.
    longer = lmx("run", "--model", TINY, *ROUTED, "--prompt", "12+30=", "--ignore-eos", "--max-tokens", 6).stdout
    assert longer.startswith("42\n") and len(longer.encode()) == 7


def test_run_prompt_trace_has_pieces(lmx, tmp_path):
    trace = tmp_path / "trace.json"
    lmx("run", "--model", TINY, *ROUTED, "--prompt", "12+30=", "--trace", trace)
    data = json.loads(trace.read_text())
    # The prompt and the answer; "\n" ended it (sampled from the "2", never evaluated).
    assert [t["piece"] for t in data["tokens"]] == list("12+30=42")
    assert all("bytes" not in t for t in data["tokens"])
    assert list(data["tokens"][0]) == ["position", "token", "piece", "layers"]
    # --prompt-tokens: the trace has pieces too when the model has a tokenizer, and a byte that is
    # not whole UTF-8 keeps its value in "bytes".
    lmx("run", "--model", TINY, *ROUTED, "--prompt-tokens", "49,226", "--max-tokens", 0, "--trace", trace)
    tokens = json.loads(trace.read_text())["tokens"]
    assert tokens[0]["piece"] == "1" and tokens[1]["bytes"] == [226] and tokens[1]["piece"] == "\ufffd"
    # A model without a tokenizer: ids only, as before.
    fixture = FIXTURES / "llama_f32"
    lmx("run", "--model", fixture, "--prompt-tokens", "1,2", "--max-tokens", 1, "--trace", trace)
    assert all("piece" not in t for t in json.loads(trace.read_text())["tokens"])


def test_run_prompt_errors(lmx):
    message = one_error(lmx("run", "--model", FIXTURES / "llama_f32", "--prompt", "hi", check=False), USAGE_ERROR)
    assert "--prompt" in message and "no tokenizer" in message and "--prompt-tokens" in message
    for args, fact in [
        (["--prompt", "a", "--prompt-tokens", "1"], "not both"),
        ([], "--prompt"),
        (["--prompt-tokens", "1", "--chat"], "--chat"),
        (["--prompt-tokens", "1", "--ignore-eos"], "--ignore-eos"),
        (["--prompt-tokens", "1", "--parse-special"], "--parse-special"),
        (["--prompt", "a", "--chat", "--parse-special"], "--parse-special"),
    ]:
        message = one_error(lmx("run", "--model", TINY, *args, check=False), USAGE_ERROR)
        assert fact in message, message
    message = one_error(lmx("run", "--model", TINY, "--prompt", "x" * 300, check=False), USAGE_ERROR)
    assert "--prompt: 300 tokens do not fit" in message


# --- training data ---------------------------------------------------------------------------------

def dry_run(lmx, data, tmp_path, model=TINY):
    out = lmx("train", "--model", model, "--new-expert", "a", "--regime", "joint", "--routing", "label",
              "--data", data, "--out", tmp_path / "out", "--dry-run").stdout
    assert not (tmp_path / "out").exists()
    return [json.loads(line) for line in out.splitlines()]


def test_train_text_data_ids_are_the_bytes_on_the_bundled_model(lmx, tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [{"text": "abc", "task": "a"}, {"prompt": "12+30=", "completion": "42\n"},
            {"messages": [{"role": "user", "content": "12+30="}, {"role": "assistant", "content": "42"},
                          {"role": "user", "content": "7+35="}, {"role": "assistant", "content": "42"}]},
            {"tokens": [1, 2, 3]}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples = dry_run(lmx, data, tmp_path)
    assert [e["source"] for e in examples] == [f"{data}:{i}" for i in range(1, 5)]
    assert examples[0] == {"source": f"{data}:1", "task": "a", "tokens": list(b"abc"), "targets": [0, 1, 1]}
    assert examples[1]["tokens"] == list(b"12+30=42\n") and examples[1]["targets"] == [0] * 6 + [1] * 3
    # messages: the template writes the user's text and the reply + "\n"; the loss is on every reply.
    chat = examples[2]
    assert chat["tokens"] == list(b"12+30=42\n7+35=42\n")
    assert chat["targets"] == [0] * 6 + [1] * 3 + [0] * 5 + [1] * 3
    assert examples[3]["tokens"] == [1, 2, 3] and examples[3]["task"] is None


def test_train_messages_need_a_tokenizer(lmx, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}) + "\n")
    result = lmx("train", "--model", FIXTURES / "llama_f32", "--new-expert", "a", "--regime", "joint", "--routing", "label",
                 "--data", data, "--out", tmp_path / "out", "--dry-run", check=False)
    message = one_error(result, 1)
    assert f"{data}:1" in message and "tokenizer" in message
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}]}) + "\n")
    result = lmx("train", "--model", TINY, "--new-expert", "a", "--regime", "joint", "--routing", "label",
                 "--data", data, "--out", tmp_path / "out", "--dry-run", check=False)
    assert "no assistant message" in one_error(result, 1)


def test_train_on_messages_runs(lmx, tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"{i}+{i}="}, {"role": "assistant", "content": str(2 * i)}],
             "task": "a"} for i in range(1, 7)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    lmx("train", "--model", TINY, "--new-expert", "a", "--regime", "joint", "--routing", "label", "--data", data,
        "--eval", data, "--steps", 2, "--batch-size", 3, "--out", out, "--quiet")
    assert (out / "experts" / "a" / "adapter_config.json").is_file()


def special_token_model(tmp_path):
    """models/tiny-llama with a special token <|end|> (id 255) and a template that writes role
    headers and <|end|> after every message."""
    folder = tmp_path / "special"
    folder.mkdir()
    for name in ("model.safetensors", "config.json", "generation_config.json"):
        (folder / name).symlink_to(TINY / name)
    tokenizer = json.loads((TINY / "tokenizer.json").read_text())
    tokenizer["added_tokens"] = [{"id": 255, "content": "<|end|>", "single_word": False, "lstrip": False, "rstrip": False,
                                  "normalized": False, "special": True}]
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    config = json.loads((TINY / "tokenizer_config.json").read_text())
    config["chat_template"] = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_train_messages_loss_on_every_assistant_message_with_its_end_token(lmx, tmp_path):
    model = special_token_model(tmp_path)
    data = tmp_path / "train.jsonl"
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "x"}, {"role": "assistant", "content": "yz"}]
    data.write_text(json.dumps({"messages": messages}) + "\n" + json.dumps({"text": "a<|end|>"}) + "\n")
    chat, text = dry_run(lmx, data, tmp_path, model=model)
    expected, targets = [], []
    for m in messages:
        header = list(f"<|{m['role']}|>".encode())
        if m["role"] == "assistant":
            # "<|assistant|>" is the generation prompt: not in the loss; the reply and <|end|> are.
            expected += header
            targets += [0] * len(header)
            expected += list(m["content"].encode()) + [255]
            targets += [1] * (len(m["content"]) + 1)
        else:
            expected += header + list(m["content"].encode()) + [255]
            targets += [0] * (len(header) + len(m["content"]) + 1)
    assert chat["tokens"] == expected and chat["targets"] == targets
    # Special-token text in "text" is the special token.
    assert text["tokens"] == [97, 255]


def test_run_chat_with_special_tokens_trace(lmx, tmp_path):
    model = special_token_model(tmp_path)
    trace = tmp_path / "trace.json"
    lmx("run", "--model", model, "--prompt", "hi", "--chat", "--max-tokens", 2, "--trace", trace)
    pieces = [t["piece"] for t in json.loads(trace.read_text())["tokens"]]
    assert "".join(pieces[:24]) == "<|user|>hi<|end|><|assistant|>" and pieces[10] == "<|end|>"
    assert ids_of(lmx("tokenize", "--model", model, "--text", "<|end|>", "--parse-special").stdout) == [255]
    assert len(ids_of(lmx("tokenize", "--model", model, "--text", "<|end|>").stdout)) == 7

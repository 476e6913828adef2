"""Writes Tests/Fixtures/text/: the oracles for Tests/LoRAMixerTests/TokenizerTextTests.swift —
model-folder configuration files read by transformers, `encode_special_tokens` ids, GGUF
vocabulary files the way llama.cpp's converter writes them, and malformed GGUF files. Run from the
repository root, after tools/make_tokenizer_fixtures.py (it reads its fixtures):

    python3 -m venv ~/tokvenv && ~/tokvenv/bin/pip install tokenizers transformers gguf jinja2 numpy
    ~/tokvenv/bin/python tools/make_text_fixtures.py

Every input is fixed (no random draws), so a rerun with the same package versions rewrites the
same files. It also rewrites its section (between the text-fixtures markers) of
Tests/Fixtures/README.md.
"""
import importlib.metadata
import json
import os
import re
import shutil
import struct
import sys
from collections import Counter
from pathlib import Path

import gguf
import jinja2
import numpy as np
import tokenizers
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
from transformers import AutoTokenizer, GenerationConfig
from transformers.tokenization_utils_base import generate_merges

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
OUT = ROOT / "Tests" / "Fixtures" / "text"
TOKENIZERS = ROOT / "Tests" / "Fixtures" / "tokenizers"
README = ROOT / "Tests" / "Fixtures" / "README.md"
BEGIN, END = "<!-- text-fixtures:begin -->", "<!-- text-fixtures:end -->"

sys.path.insert(0, str(TOOLS))
import make_chat_template_fixtures as chat  # noqa: E402  (importable: its work is under __main__)


def tokenizer_fixture_names():
    """CORPUS, TESTS, added_tokens() ... of tools/make_tokenizer_fixtures.py, without running it
    (the script trains and writes its fixtures at import time): its source up to the first
    build() call."""
    source = (TOOLS / "make_tokenizer_fixtures.py").read_text(encoding="utf-8")
    namespace = {"__name__": "make_tokenizer_fixtures"}
    exec(compile(source[:source.index('\nbuild("gpt2"')], "make_tokenizer_fixtures.py", "exec"), namespace)
    return namespace


TF = tokenizer_fixture_names()
TESTS, CORPUS = TF["TESTS"], TF["CORPUS"]


def dump(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, ensure_ascii=False, separators=(",", ":"))
        handle.write("\n")


def dump_pretty(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, ensure_ascii=False, indent=1)
        handle.write("\n")


# ---------------------------------------------------------------------------------------------
# a. configured model folders


def added(content):
    return {"__type": "AddedToken", "content": content, "lstrip": False, "rstrip": False,
            "normalized": False, "single_word": False, "special": True}


TOOL_TEMPLATE = "{{ bos_token }}TOOLS{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"


def configured_folders():
    source = TOKENIZERS / "llama3" / "tokenizer.json"
    folders = {
        # bos/eos as AddedToken objects, pad as a string, the Llama 3 template; special_tokens_map.json
        # agrees on bos/eos and adds unk; generation_config.json has a list of eos ids
        "configured": {
            "tokenizer_config.json": {
                "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": added("<|begin_of_text|>"),
                "eos_token": added("<|eot_id|>"), "pad_token": "<mask>", "chat_template": chat.LLAMA3,
                "clean_up_tokenization_spaces": False, "model_max_length": 1024},
            "special_tokens_map.json": {"bos_token": added("<|begin_of_text|>"), "eos_token": "<|eot_id|>",
                                        "unk_token": {"content": "<mask>", "special": True}},
            "generation_config.json": {"bos_token_id": 0, "eos_token_id": [1, 700, 5]},
        },
        # chat_template as a list of named templates ("default" is used); special_tokens_map.json
        # names a different eos than tokenizer_config.json (transformers takes the map's);
        # generation_config.json's eos_token_id a single number
        "configured_list": {
            "tokenizer_config.json": {
                "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
                "eos_token": added("<|eot_id|>"), "pad_token": None, "unk_token": None,
                "chat_template": [{"name": "tool_use", "template": TOOL_TEMPLATE},
                                  {"name": "default", "template": chat.LLAMA3}]},
            "special_tokens_map.json": {"eos_token": {"content": "<mask>", "lstrip": True}},
            "generation_config.json": {"eos_token_id": 1},
        },
        # tokenizer.json only
        "bare": {},
    }
    summary = {}
    for name, files in folders.items():
        folder = OUT / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        shutil.copy(source, folder / "tokenizer.json")
        for file, value in files.items():
            dump_pretty(folder / file, value)
        tok = AutoTokenizer.from_pretrained(str(folder))
        expected = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                    "pad_token_id": tok.pad_token_id, "unk_token_id": tok.unk_token_id,
                    "bos_token": tok.bos_token, "eos_token": tok.eos_token,
                    "has_chat_template": tok.chat_template is not None}
        try:
            expected["generation_eos_token_ids"] = GenerationConfig.from_pretrained(str(folder)).eos_token_id
        except OSError:
            expected["generation_eos_token_ids"] = None
        if isinstance(expected["generation_eos_token_ids"], int):
            expected["generation_eos_token_ids"] = [expected["generation_eos_token_ids"]]
        cases = []
        if tok.chat_template is not None:
            for conversation, messages in chat.CONVERSATIONS.items():
                for add in (False, True):
                    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add)
                    ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=add)
                    if not isinstance(ids, list):
                        ids = ids["input_ids"]
                    assert ids == tok(text, add_special_tokens=False)["input_ids"]
                    cases.append({"name": conversation, "messages": messages, "add_generation_prompt": add,
                                  "text": text, "ids": ids})
        expected["cases"] = cases
        dump_pretty(folder / "expected.json", expected)
        summary[name] = expected
    return summary


# ---------------------------------------------------------------------------------------------
# b. parse-special oracle

PARSE_SPECIAL_TEXTS = [text for text in TESTS[:200] if any(t in text for t in ("<|", "<mask>", "mix"))][:40] + [
    "<|begin_of_text|>user<|eot_id|><|eot_id|>", "<mask>mix<mask>", "a<|eot_id|>b loramixer c", "<|eot_id",
    " <|begin_of_text|> ", "mix <mask> loramixer <|eot_id|>", "<s>[INST] hi [/INST] ok</s>", "a </s> b <unk> c",
]


def parse_special():
    result = {}
    for name in sorted(path.name for path in TOKENIZERS.iterdir() if (path / "tokenizer.json").exists()):
        tok = Tokenizer.from_file(str(TOKENIZERS / name / "tokenizer.json"))
        tok.encode_special_tokens = True
        cases = []
        for text in PARSE_SPECIAL_TEXTS:
            cases.append({"text": text, "ids": tok.encode(text, add_special_tokens=False).ids,
                          "ids_special": tok.encode(text, add_special_tokens=True).ids})
        result[name] = cases
    dump(OUT / "parse_special.json", result)
    return sum(len(cases) for cases in result.values())


# ---------------------------------------------------------------------------------------------
# c. GGUF vocabulary files

T = gguf.TokenType


def write_gguf(path, body, arch="llama"):
    w = gguf.GGUFWriter(str(path), arch=arch)
    body(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def transformers_from_gguf(path):
    """The tokenizer transformers builds from a GGUF file (what `AutoTokenizer.from_pretrained(...,
    gguf_file=...)` does, without its torch-importing reader: the metadata is read with gguf's)."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer
    reader = gguf.GGUFReader(str(path))
    metadata = {field.name: field.contents() for field in reader.fields.values()}
    tokenizer_dict = {name: metadata[f"tokenizer.{key}"] for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
                      if f"tokenizer.{key}" in metadata}
    return convert_gguf_tokenizer(metadata["general.architecture"], tokenizer_dict)[0]


def byte_level_gguf(name, pre):
    """The fixture tokenizer as llama.cpp's converter writes a byte-level BPE vocabulary."""
    source = TOKENIZERS / name / "tokenizer.json"
    document = json.loads(source.read_text(encoding="utf-8"))
    vocab = dict(document["model"]["vocab"])
    added_tokens = {entry["id"]: entry for entry in document["added_tokens"]}
    for entry in document["added_tokens"]:
        vocab[entry["content"]] = entry["id"]
    size = max(vocab.values()) + 1
    tokens = [None] * size
    for token, index in vocab.items():
        tokens[index] = token
    assert None not in tokens
    types = [(T.CONTROL if added_tokens[i]["special"] else T.USER_DEFINED) if i in added_tokens else T.NORMAL
             for i in range(size)]
    merges = [" ".join(m) if isinstance(m, list) else m for m in document["model"]["merges"]]
    bos = vocab["<|begin_of_text|>"]
    eos = vocab["<|eot_id|>"]
    path = OUT / f"gpt2_{name}.gguf"

    def body(w):
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(bos)
        w.add_eos_token_id(eos)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_chat_template(chat.LLAMA3)
    write_gguf(path, body)

    # The oracle: the fixture tokenizer with its added tokens as a GGUF states them (control tokens
    # special, user-defined ones plain; no lstrip/rstrip/single_word, which GGUF cannot say), BOS
    # added (add_bos_token), no EOS.
    tok = Tokenizer.from_file(str(source))
    plain = Tokenizer(models.BPE(vocab=document["model"]["vocab"], merges=[tuple(m.split(" ")) for m in merges]))
    plain.pre_tokenizer = tok.pre_tokenizer
    plain.decoder = tok.decoder
    for i in sorted(added_tokens):
        entry = added_tokens[i]
        token = AddedToken(entry["content"], special=entry["special"], normalized=not entry["special"])
        (plain.add_special_tokens if entry["special"] else plain.add_tokens)([token])
    assert all(plain.token_to_id(t) == vocab[t] for t in vocab)
    plain.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
                                                         special_tokens=[("<|begin_of_text|>", bos)])
    # cross-check: transformers reading the GGUF itself gives the same ids
    from_gguf = transformers_from_gguf(path)
    cases, differ_from_source = [], 0
    for text in TESTS:
        ids = plain.encode(text, add_special_tokens=False).ids
        assert from_gguf.encode(text, add_special_tokens=False).ids == ids, (name, text)
        special = plain.encode(text, add_special_tokens=True).ids
        assert special == [bos] + ids
        differ_from_source += ids != tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": ids, "ids_special": special,
                      "decoded": plain.decode(special, skip_special_tokens=False),
                      "decoded_skip": plain.decode(special, skip_special_tokens=True)})
    dump(OUT / f"gpt2_{name}.json", {"bos": bos, "eos": eos, "vocab_size": size, "chat_template": chat.LLAMA3,
                                     "special_ids": sorted(i for i in added_tokens if added_tokens[i]["special"]),
                                     "cases": cases})
    return differ_from_source


SPM_CORPUS = [line for line in CORPUS[:13]] + [
    "Hello world, hello there. The world is wide and the sea is deep.",
    "Once upon a time there was a little model that learned to merge pieces.",
] * 3


def train_merges(texts, alphabet_size, merge_count):
    """A plain BPE trainer over SentencePiece-style words ("▁" before the text and for every space;
    pieces never cross a "▁"): the `alphabet_size` commonest characters (ties by code point), then
    repeatedly the commonest adjacent pair (ties by the pair's text) whose concatenation is new.
    (`tokenizers`' BpeTrainer breaks count ties in hash order, so its merges change from run to run.)"""
    words = Counter()
    for text in texts:
        for word in re.findall(r"▁[^▁]*|[^▁]+", "▁" + text.replace(" ", "▁")):
            words[word] += 1
    characters = Counter()
    for word, count in words.items():
        for character in word:
            characters[character] += count
    alphabet = sorted(sorted(characters, key=lambda c: (-characters[c], c))[:alphabet_size])
    known = set(alphabet)
    # a character outside the alphabet cuts the word (it becomes bytes at encode time)
    pieces = Counter()
    for word, count in words.items():
        for run in re.split("[^" + re.escape("".join(sorted(known))) + "]+", word):
            if run:
                pieces[tuple(run)] += count
    merges, made, banned = [], set(known), set()
    while len(merges) < merge_count:
        pairs = Counter()
        for piece, count in pieces.items():
            for pair in zip(piece, piece[1:]):
                if pair not in banned:
                    pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        if best[0] + best[1] in made:
            banned.add(best)
            continue
        merges.append(best)
        made.add(best[0] + best[1])
        merged = Counter()
        for piece, count in pieces.items():
            out, i = [], 0
            while i < len(piece):
                if i + 1 < len(piece) and (piece[i], piece[i + 1]) == best:
                    out.append(piece[i] + piece[i + 1])
                    i += 2
                else:
                    out.append(piece[i])
                    i += 1
            merged[tuple(out)] += count
        pieces = merged
    return alphabet, merges


def train_spm():
    """A SentencePiece-style BPE (Llama 2 layout): <unk> <s> </s>, the 256 byte tokens
    <0x00>..<0xFF>, then the alphabet (its 60 commonest characters, so CJK and emoji fall back to
    bytes) and the merged pieces, as a `tokenizers` BPE with byte fallback."""
    specials = ["<unk>", "<s>", "</s>"]
    alphabet, merges = train_merges(SPM_CORPUS, 60, 300)
    tokens = specials + [f"<0x{b:02X}>" for b in range(256)] + alphabet + [a + b for a, b in merges]
    assert len(set(tokens)) == len(tokens)
    vocab = {token: index for index, token in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    return tok, tokens, merges


def llama_spm():
    tok, tokens, merges = train_spm()
    tok.save(str(OUT / "llama_spm_tokenizer.json"), pretty=False)
    tok = Tokenizer.from_file(str(OUT / "llama_spm_tokenizer.json"))
    # Scores: a merged piece gets -(rank of the merge that makes it); the others 0 (as llama.cpp's
    # converter gives control and byte tokens).
    rank = {a + b: r for r, (a, b) in enumerate(merges)}
    scores = [-float(rank[t] + 1) if t in rank else 0.0 for t in tokens]
    types = [T.UNKNOWN if t == "<unk>" else T.CONTROL if t in ("<s>", "</s>") else
             T.BYTE if t.startswith("<0x") and len(t) == 6 else T.NORMAL for t in tokens]
    # what transformers' SentencePieceExtractor / GGUF loader recover from (vocab, scores)
    recovered = generate_merges({t: i for i, t in enumerate(tokens)}, dict(zip(tokens, scores)))
    made = {a + b for a, b in merges}
    extra = [m for m in recovered if m not in set(merges)]
    assert [m for m in recovered if m in set(merges)] == merges, "merge order is not preserved by the scores"
    # Pieces with several splits in the vocabulary give extra (never winning) merges; they come
    # right after the piece's real merge or before it, with the same score. The recovered ids are
    # checked to be the same below.
    assert all(a + b in made for a, b in extra)
    recovered_tok = Tokenizer(models.BPE(vocab=tok.get_vocab(with_added_tokens=False), merges=recovered,
                                         unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    recovered_tok.normalizer = tok.normalizer
    path = OUT / "llama_spm.gguf"

    def body(w):
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_add_space_prefix(True)
        w.add_chat_template(chat.LLAMA3)
    write_gguf(path, body)

    cases, fallback = [], 0
    for text in TESTS:
        encoding = tok.encode(text, add_special_tokens=False)
        ids = encoding.ids
        assert recovered_tok.encode(text, add_special_tokens=False).ids == ids, text
        special = tok.encode(text, add_special_tokens=True).ids
        fallback += any(3 <= i < 259 for i in ids)
        cases.append({"text": text, "ids": ids, "ids_special": special,
                      "decoded": tok.decode(special, skip_special_tokens=False),
                      "decoded_skip": tok.decode(special, skip_special_tokens=True)})
    assert fallback > 10
    dump(OUT / "llama_spm.json", {"bos": 1, "eos": 2, "unk": 0, "vocab_size": len(tokens), "merges": len(merges),
                                  "extra_recovered_merges": len(extra),
                                  "recovered_merges": [" ".join(m) for m in recovered], "cases": cases})
    return len(tokens), len(merges), len(extra), fallback


# ---------------------------------------------------------------------------------------------
# d. malformed GGUF files

BAD_TOKENS = ["a", "b", "c", "ab", "abc", "<s>", "</s>"]


def bad_ggufs():
    bad = OUT / "bad"
    if bad.exists():
        shutil.rmtree(bad)
    bad.mkdir()

    def gpt2(w, tokens=BAD_TOKENS, types=None, merges=("a b", "ab c"), model="gpt2", pre="gpt-2", bos=5):
        w.add_tokenizer_model(model)
        w.add_tokenizer_pre(pre)
        w.add_token_list(list(tokens))
        w.add_token_types(types if types is not None else [T.NORMAL] * 5 + [T.CONTROL] * 2)
        w.add_token_merges(list(merges))
        w.add_bos_token_id(bos)
        w.add_eos_token_id(6)

    files = {
        "good_gpt2": lambda w: gpt2(w),
        "token_type_count": lambda w: gpt2(w, types=[T.NORMAL] * 6),
        "model_bert": lambda w: gpt2(w, model="bert"),
        "pre_falcon": lambda w: gpt2(w, pre="falcon"),
        "bos_out_of_range": lambda w: gpt2(w, bos=7),
        "merge_unknown_token": lambda w: gpt2(w, merges=("a b", "ab zz")),
    }

    def scores_mismatch(w):
        w.add_tokenizer_model("llama")
        w.add_token_list(["<unk>", "<s>", "</s>", "▁", "a", "▁a"])
        w.add_token_scores([0.0] * 5)
        w.add_token_types([T.UNKNOWN, T.CONTROL, T.CONTROL, T.NORMAL, T.NORMAL, T.NORMAL])
    files["scores_count"] = scores_mismatch
    for name, body in files.items():
        write_gguf(bad / f"{name}.gguf", body)
    # the token array cut short: tokenizer.ggml.tokens is the last key, and the file ends in its
    # fourth string
    write_gguf(bad / "truncated_tokens.gguf", lambda w: (w.add_tokenizer_model("gpt2"), w.add_token_list(BAD_TOKENS)))
    data = (bad / "truncated_tokens.gguf").read_bytes()
    key = b"tokenizer.ggml.tokens"
    at = data.index(key) + len(key) + 4 + 4 + 8  # value type, element type, count
    for _ in range(3):
        length = struct.unpack_from("<Q", data, at)[0]
        at += 8 + length
    (bad / "truncated_tokens.gguf").write_bytes(data[:at + 8 + 1])
    return sorted(p.name for p in bad.iterdir())


# ---------------------------------------------------------------------------------------------


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    configured = configured_folders()
    parse_cases = parse_special()
    differ = {name: byte_level_gguf(name, pre) for name, pre in (("llama3", "llama-bpe"), ("qwen2", "qwen2"))}
    spm_size, spm_merges, spm_extra, spm_fallback = llama_spm()
    bad = bad_ggufs()
    sizes = {p.relative_to(OUT).as_posix(): p.stat().st_size for p in sorted(OUT.rglob("*")) if p.is_file()}
    total = sum(sizes.values())
    assert total < 1_000_000, total

    section = f"""{BEGIN}
## text/ (tokenizer configuration, parse-special, GGUF tokenizers)

Written by `~/tokvenv/bin/python tools/make_text_fixtures.py` (tokenizers {tokenizers.__version__},
transformers {transformers.__version__}, gguf {importlib.metadata.version("gguf")},
jinja2 {jinja2.__version__}, numpy {np.__version__}; no torch) after `tools/make_tokenizer_fixtures.py`, whose
llama3/qwen2 fixtures and test strings it reuses; chat templates come from
`tools/make_chat_template_fixtures.py`. {total // 1024} kB in all.

- `configured/`, `configured_list/`, `bare/` — model folders holding the llama3 fixture's
  `tokenizer.json`, and `expected.json` from `transformers.AutoTokenizer.from_pretrained(folder)`:
  bos/eos/pad/unk ids and texts, `GenerationConfig.from_pretrained(folder).eos_token_id` as a list,
  and for each conversation of the chat-template fixtures with `add_generation_prompt` false/true
  `apply_chat_template(tokenize=False)` (`text`) and `(tokenize=True)` (`ids`).
  - `configured`: tokenizer_config.json with bos/eos as AddedToken objects, pad as a string, the
    Llama 3 template; special_tokens_map.json (agrees, adds unk); generation_config.json
    `eos_token_id` a list. ids: bos {configured["configured"]["bos_token_id"]}, eos {configured["configured"]["eos_token_id"]}, pad {configured["configured"]["pad_token_id"]}, unk {configured["configured"]["unk_token_id"]}.
  - `configured_list`: `chat_template` a list of named templates ("default" is used);
    special_tokens_map.json names another eos (`<mask>`) than tokenizer_config.json: transformers
    takes special_tokens_map.json's (eos {configured["configured_list"]["eos_token_id"]}); `eos_token_id` one number.
  - `bare`: tokenizer.json only (no special tokens, no template, no generation config).
- `parse_special.json` — per fixture tokenizer of tokenizers/, {parse_cases // 4} texts with special and
  non-special added tokens encoded with `encode_special_tokens = True` (`ids`, `ids_special`).
- `gpt2_llama3.gguf`, `gpt2_qwen2.gguf` — vocabulary-only GGUF files (no tensors) of the llama3 and
  qwen2 fixtures as llama.cpp's converter writes them: `tokenizer.ggml.model` gpt2, `pre`
  llama-bpe / qwen2, tokens in id order with the added tokens, `token_type` control (special added),
  user_defined (other added) or normal, merges, bos/eos ids, add_bos_token true, the Llama 3 chat
  template. `gpt2_*.json`: ids of every test string of tokenizers/ as the fixture tokenizer gives
  them with its added tokens as the GGUF states them (no lstrip/rstrip/single_word: ids differ from
  the fixture's own for {differ["llama3"]} / {differ["qwen2"]} strings), checked equal to the tokenizer transformers
  builds from the GGUF file (`convert_gguf_tokenizer`, what `AutoTokenizer.from_pretrained(...,
  gguf_file=...)` uses; its metadata read with gguf's reader, as transformers' own imports torch);
  `ids_special` has BOS first; decodes.
- `llama_spm.gguf`, `llama_spm_tokenizer.json`, `llama_spm.json` — a SentencePiece-style BPE with
  byte fallback (Llama 2 layout: `<unk>` `<s>` `</s>`, `<0x00>`..`<0xFF>`, then pieces; {spm_size} tokens,
  {spm_merges} merges; trained by the script's own deterministic BPE trainer, as `tokenizers`' breaks
  count ties in hash order) as a `tokenizers` model (normalizer Prepend("▁") + Replace(" ", "▁"),
  decoder Replace/ByteFallback/Fuse/Strip, TemplateProcessing with `<s>`), and the same as a GGUF
  `llama` vocabulary: scores -(rank + 1) of the merge making a piece, 0 otherwise; types unknown,
  control, byte, normal; unk 0, bos 1, eos 2, add_bos_token and add_space_prefix true. Checked in
  the script: the merges transformers' `generate_merges` recovers from the scores hold the trained
  ones in order (plus {spm_extra} never-winning alternative splits), and give the same ids for every
  string; `recovered_merges` lists them. `llama_spm.json`: the trained tokenizer's ids, ids with `<s>`, and decodes of each test
  string ({spm_fallback} use byte fallback).
- `bad/` — malformed GGUF tokenizers: `truncated_tokens` (the file ends inside the token array),
  `token_type_count` (6 types, 7 tokens), `scores_count` (llama, 5 scores, 6 tokens), `model_bert`,
  `pre_falcon`, `bos_out_of_range` (bos 7 of 7 tokens), `merge_unknown_token` ("ab zz");
  `good_gpt2` is the valid file they are variants of.
{END}
"""
    text = README.read_text(encoding="utf-8")
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    README.write_text(text, encoding="utf-8")
    for name, size in sizes.items():
        print(f"{size:8d} {name}")
    print(f"{total} bytes; bad: {bad}")


if __name__ == "__main__":
    main()

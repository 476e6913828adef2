"""Writes Tests/Fixtures/tokenizers/: small BPE tokenizers (byte-level, and SentencePiece-style with
byte fallback) trained with Hugging Face `tokenizers` on the corpus below, and for each the ids and
decoded strings `tokenizers` gives for the test strings below (the oracle for
Tests/LoRAMixerTests/TokenizerTests.swift).

    python tools/make_tokenizer_fixtures.py   # from the repository root, `tokenizers` installed
"""
import json
import os

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's the dog's day; they're sure we've won.",
    "I'M HERE, YOU'RE THERE, WE'LL SEE. She'd say it's fine, but it'S not, isn'T it?",
    "Café, naïve, résumé, façade, coöperate, Ångström, jalapeño, Zoë and Noël.",
    "Grüße aus München! Die Straße ist schön, und die Bäume blühen im Frühling.",
    "東京は日本の首都です。我们今天去北京。한국어도 조금 있습니다。",
    "Emoji: 😀 😃 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷 and more 🎉🎉🎉",
    "def main():\n\tfor i in range(10):\n\t\tprint(i, 'hello')\n\n    return 0\n",
    "if (x == 42 && y != 7) { z = x * 1234567 + y / 89; }  // comment\r\n",
    "Numbers 0 1 12 123 1234 12345 3.14159 2,718 1e10 2026-12-04 ٣٤٥",
    "Punctuation!!! ... ??? --- ((())) [[]] {{}} <<>> @@ ## $$ %% ^^ && ** ~~",
    "    indented text\n        more indented\n\n\n   trailing spaces   \n",
    "the the the and and and of of of to to to in in in is is is",
    "mixing loramixer experts, a mixer of low-rank adapters, routing tokens.",
] * 3

TESTS = [
    "", " ", "  ", "   leading spaces", "trailing spaces   ", "Hello world", "hello  world   again",
    "Hello\nworld", "line one\n\nline two\n\n\n", "\ttab\tseparated\t\tvalues\t", "\r\n windows \r\n\r\n",
    "  \n  \n", "mixed \t \n whitespace\n \t", "12345", "1 22 333 4444 55555 666666", "3.14159265358979",
    "Phone: +1 (555) 123-4567", "!!!???...", "a,b;c:d", "(parentheses) [brackets] {braces}",
    "It's they're we've I'm you'll he'd", "IT'S THEY'RE WE'VE I'M YOU'LL HE'D", "It'S tHey'Re We'Ve",
    "don't can't won't", "'s 't 're 've 'm 'll 'd", "Café naïve résumé", "Ångström jalapeño Zoë",
    "Grüße aus München", "Straße", "東京は日本の首都です。", "我们今天去北京", "한국어", "😀", "👍🏽",
    "👨‍👩‍👧‍👦 family", "🏳️‍🌈", "❤️ love", "🇫🇷🇩🇪", "🎉🎉🎉", "def f(x):\n\treturn x * 2\n",
    "    return 0", "x==42&&y!=7", "<|begin_of_text|>", "<|begin_of_text|>Hello<|eot_id|>",
    "Hello <|eot_id|> world", "<|begin_of_text|><|begin_of_text|>", "<|begin_of_text", "begin_of_text|>",
    "<|eot_id|>\n", "loramixer", "the loramixer library", "loramixerloramixer", "a  <mask>  b",
    "x<mask>y", "<mask><mask>", "mix", "a mix b", "mixer", "remix", "mix.", "(mix)", "ſ's 'S",
    "\u00a0non-breaking\u2003em space", "zero\u200bwidth", "٣٤٥ Arabic digits", "Ⅻ roman", "x² y³",
    "A" * 40, " " * 17 + "x", "\n" * 5, "tab\t\t\t\tend",
    # regex edge cases: whitespace before newlines, punctuation runs before newlines, odd spaces
    "a\n\n  b", " \r\n  x", "x  \t\ny", "?\r\n\r\n", "  !!\n\nz", "hello'world", "it\u2019s", "'S'", "''s",
    "abc123def4567", "\u3000\u3000x", "a\u2028b", "a\u0085b", " \u00a0 x", "\t x", "1\n2", ".\n", " .\n",
    # added tokens beside whitespace, words and each other
    "  <|eot_id|>  ", " <mask> ", "\n<mask>\n", "<mask>  <mask>", "mix<|eot_id|>", "<|eot_id|>mix", "mixmix",
    "Émix", "mix2", "2mix", "_mix", " mix ", "\ufe0fmix\u2028x", "\u200dmix x", "x mix\u0301 y", "‿mix\tq",
    "²mix\tq", "Ⅻmix\tq", "Ⓐmix\tq", "-mix\tq", "%mix-\tq", "1 \u200dx", "<|eot_id|> \u0301,", "loramixer<|eot_id|>loramixer", "xloramixerx",
    "<|begin_of_text|> <|eot_id|>\n\n<|begin_of_text|>",
    # the whole training corpus as one text
    "".join(CORPUS[:13]),
]

# For the NFC and SentencePiece fixtures: decomposed and composed accents, Hangul jamo and syllables,
# marks that compose only in order, singletons NFC replaces (Ohm, Angstrom signs).
NORMALIZER_TESTS = [
    "e\u0301", "cafe\u0301 café", "cafe\u0301", "Cafe\u0301s", "\u1100\u1161\u11a8 \uac01", "\u1112\u1161\u11ab\u1100\u1173\u11af",
    "a\u0323\u0302 \u1ead a\u0302\u0323", "\u2126 \u212b \u00c5", "o\u0308\u0304", "\u0301start", "<|eot_id|>\u0301",
    "x\u0301<mask>\u0301", "\u0915\u093c \u0958", "\ufb01 \u2460 \uff21",
]

# Seeded random strings over the characters the split patterns treat differently, so every
# branch of the matchers (and of the added-token matcher) meets its neighbours.
POOL = (list(" \t\n\r\u00a0\u3000\u2028\u0085") + list("aZsStTdDmMlLrRvVe'\u2019\u017f") + list("0123456789\u0663\u00b2\u216b")
        + list(".,;!?-_()[]{}<>|/\\\"#$%&*+=@^~`") + list("éüßÅ東京日本한국") + ["😀", "👍🏽", "👨‍👩‍👧‍👦", "\u200d", "\ufe0f"]
        + ["<|eot_id|>", "<mask>", "mix", "loramixer", "<|", "|>", "  ", "\n\n", "'s", "'LL", "123456"])
_rng = __import__("random").Random(1234)
TESTS += ["".join(_rng.choice(POOL) for _ in range(_rng.randint(1, 40))) for _ in range(60)]


def added_tokens():
    return [
        AddedToken("<|begin_of_text|>", special=True, normalized=False),
        AddedToken("<|eot_id|>", special=True, normalized=False),
        AddedToken("loramixer", special=False, normalized=True),
        AddedToken("<mask>", special=True, lstrip=True, rstrip=True, normalized=False),
        AddedToken("mix", special=False, single_word=True, normalized=False),
    ]


def build(name, pre_tokenizer, eos, ignore_merges=False, normalizer=None):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|eot_id|>"])
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_tokens(added_tokens()[2:3] + added_tokens()[4:])
    tok.add_special_tokens(added_tokens()[3:4])
    if normalizer is not None:
        # normalized, so matched in the composed text whichever form it is written in
        tok.add_tokens([AddedToken("cafe\u0301", special=False, normalized=True)])
    bos = tok.token_to_id("<|begin_of_text|>")
    single = "<|begin_of_text|> $A" + (" <|eot_id|>" if eos else "")
    specials = [("<|begin_of_text|>", bos)] + ([("<|eot_id|>", tok.token_to_id("<|eot_id|>"))] if eos else [])
    template = processors.TemplateProcessing(single=single, pair=single + " $B", special_tokens=specials)
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    write(name, tok, TESTS if normalizer is None else TESTS + NORMALIZER_TESTS)


def write(name, tok, tests, decodes=None):
    """Saves the tokenizer and what `tokenizers` gives for `tests`; `decodes` are id lists whose
    decodes are recorded too."""
    folder = os.path.join("Tests", "Fixtures", "tokenizers", name)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"), pretty=False)
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    cases = []
    for text in tests:
        plain = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        cases.append({
            "text": text, "ids": plain, "ids_special": special,
            "decoded": tok.decode(special, skip_special_tokens=False),
            "decoded_skip": tok.decode(special, skip_special_tokens=True),
        })
    # decoding a prefix of a multi-byte character's tokens gives U+FFFD, as from_utf8_lossy does
    partial = []
    for text in ["😀", "東京", "👨‍👩‍👧‍👦"]:
        ids = tok.encode(text, add_special_tokens=False).ids
        for cut in range(1, len(ids)):
            partial.append({"ids": ids[:cut], "decoded": tok.decode(ids[:cut], skip_special_tokens=False)})
    document = {"vocab_size": tok.get_vocab_size(with_added_tokens=True), "cases": cases, "partial": partial}
    if decodes is not None:
        document["decodes"] = [{"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                                "decoded_skip": tok.decode(ids, skip_special_tokens=True)} for ids in decodes]
    with open(os.path.join(folder, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, separators=(",", ":"))


build("gpt2", pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), eos=False)
build("llama3", pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]), eos=False)
build("qwen2", pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]), eos=True)
build("prefix_digits", pre_tokenizers.Sequence([
    pre_tokenizers.Digits(individual_digits=True),
    pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)]), eos=False, ignore_merges=True)
build("qwen2_nfc", pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]), eos=True,
    normalizer=normalizers.NFC())


# SentencePiece-style BPE (Llama 2, Mistral, TinyLlama): "▁" for spaces, `<0xXX>` byte tokens for
# characters outside the vocabulary. The vocabulary is trained with a small alphabet, so CJK and
# emoji fall back to bytes, then laid out as in those files: <unk> <s> </s>, the byte tokens, the rest.
SPM_TESTS = TESTS + NORMALIZER_TESTS + [
    "<s>", "</s>", "<s>Hello</s>", "Hello <s> world", "<s> <s>", "<unk>", "x<unk>y", "[INST] Hi [/INST]",
    "[INST]Hi[/INST] Sure.</s>[INST] more [/INST]", " [INST]", "<s>[INST] What? [/INST]", "▁", "▁▁x", "a▁b",
    "<0x41>", "<0xE6><0x97>", "\u2581Hello", "Hello\u2581", "a b", "xa b", " a b ", "loramixer a b",
    "東", "😀😀", "a😀b", "😀 😀", "\U0001F9EC\U0001FAE0", "\x00\x01\x7f", "\ud7ff\ue000\uffff",
]

# Id lists decoded on their own: byte tokens that do and do not form UTF-8, "▁" runs, specials
# first, last and between.


def spm_decodes(tok):
    rng = __import__("random").Random(99)
    vocab = tok.get_vocab()
    pool = ([vocab["<s>"], vocab["</s>"], vocab["<unk>"]] + [vocab[t] for t in ["▁", "▁▁", "▁the", "the", "a"] if t in vocab]
            + [vocab[f"<0x{b:02X}>"] for b in [0x20, 0x41, 0x0A, 0xE6, 0x97, 0xA5, 0xF0, 0x9F, 0x98, 0x80, 0xC3, 0xA9, 0xFF] if f"<0x{b:02X}>" in vocab]
            + [tok.token_to_id(t) for t in ["[INST]", "<mask>", "mix", "loramixer"] if tok.token_to_id(t) is not None])
    return [[rng.choice(pool) for _ in range(rng.randint(1, 12))] for _ in range(60)]


# The trainer's own `limit_alphabet` breaks ties between equally frequent characters by hash
# order, so the kept alphabet (the 90 most frequent characters, ties by code point) is chosen here.
_counts = __import__("collections").Counter(c for line in CORPUS for c in line)
_alphabet = {c for c, _ in sorted(_counts.items(), key=lambda item: (-item[1], item[0]))[:90]} | {" "}
SPM_CORPUS = ["".join(c for c in line if c in _alphabet) for line in CORPUS]


def build_spm(name, normalizer, pre_tokenizer, decoder, bytes_kept, fuse_unk, extra_special):
    trainer = trainers.BpeTrainer(vocab_size=420, show_progress=False, special_tokens=["<unk>", "<s>", "</s>"])
    trainee = Tokenizer(models.BPE(unk_token="<unk>"))
    trainee.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainee.train_from_iterator(SPM_CORPUS, trainer)
    trained = json.loads(trainee.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for byte in bytes_kept:
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for token, _ in sorted(trained["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(pair) for pair in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=fuse_unk, byte_fallback=True))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoder
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ["<unk>", "<s>", "</s>"] + extra_special])
    tok.add_tokens([AddedToken("loramixer", special=False, normalized=True),
                    AddedToken("a b", special=False, normalized=True),
                    AddedToken("mix", special=False, single_word=True, normalized=False)])
    tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, rstrip=True, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    write(name, tok, SPM_TESTS, spm_decodes(tok))


LEGACY_DECODER = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
build_spm("llama2_spm", normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]),
          None, LEGACY_DECODER, range(256), True, [])
# Emoji's lead bytes 0xF0-0xF4 have no byte token here, so emoji become (fused) <unk>.
build_spm("mistral_metaspace", None, pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False),
          decoders.Sequence([decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=False),
                             decoders.ByteFallback(), decoders.Fuse()]),
          [b for b in range(256) if not 0xF0 <= b <= 0xF4], True, ["[INST]", "[/INST]"])
# Every non-ASCII character outside the vocabulary becomes its own <unk> (no byte tokens above 0x7F, no fusing).
build_spm("spm_split", None, pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
          decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True), range(128), False, [])


# The README section (between markers, so a rerun replaces it; tools/make_fixtures.py rewrites the
# README without it, so run this script after the others).
BEGIN, END = "<!-- tokenizer-fixtures:begin -->", "<!-- tokenizer-fixtures:end -->"

SECTION = f"""{BEGIN}
## tokenizers/ (gpt2, llama3, qwen2, prefix_digits, qwen2_nfc, llama2_spm, mistral_metaspace, spm_split)

Written by `python tools/make_tokenizer_fixtures.py` (tokenizers {tokenizers.__version__}; only that
package is needed: `python3 -m venv ~/tokvenv && ~/tokvenv/bin/pip install tokenizers`). Run it
after the other fixture scripts: it replaces the text between the `tokenizer-fixtures` markers.
Each folder holds a `tokenizer.json` trained on the script's small multilingual corpus, and
`cases.json`: for each test string the ids of `encode(add_special_tokens=False)` (`ids`) and `True`
(`ids_special`), and `decode(ids_special, skip_special_tokens=False/True)` (`decoded`,
`decoded_skip`); `partial` holds decodes of token prefixes of multi-byte characters (U+FFFD).

The byte-level ones (vocab 700, {len(TESTS)} test strings; `qwen2_nfc` {len(TESTS) + len(NORMALIZER_TESTS)}, with
decomposed accents, Hangul jamo and other NFC cases) have the added tokens `<|begin_of_text|>`,
`<|eot_id|>` (special), `loramixer` (not special, normalized), `<mask>` (special, lstrip + rstrip),
`mix` (not special, single_word); `qwen2_nfc` also `cafe` + U+0301 (normalized, so matched as `café` too).

| folder | normalizer | pre-tokenizer | post-processor | model |
|---|---|---|---|---|
| `gpt2` | none | ByteLevel(add_prefix_space=False, use_regex=True) | ByteLevel + TemplateProcessing (BOS) | BPE |
| `llama3` | none | Sequence[Split(Llama 3 regex, Isolated), ByteLevel(use_regex=False)] | ByteLevel + TemplateProcessing (BOS) | BPE |
| `qwen2` | none | Sequence[Split(Qwen2 regex, Isolated), ByteLevel(use_regex=False)] | ByteLevel + TemplateProcessing (BOS, EOS `<\\|eot_id\\|>`) | BPE |
| `prefix_digits` | none | Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=True, use_regex=True)] | ByteLevel + TemplateProcessing (BOS) | BPE, ignore_merges |
| `qwen2_nfc` | NFC | as `qwen2` | as `qwen2` | BPE |

The SentencePiece-style ones ({len(SPM_TESTS)} test strings: the byte-level ones plus `<s>`, `[INST]`, `▁`,
`<0x41>` written as text, byte-fallback and unknown characters) are BPE with `byte_fallback`: a
vocabulary trained with a small alphabet (so CJK and emoji fall back to `<0xXX>` tokens), laid
out as Llama 2's (`<unk>` `<s>` `</s>`, the byte tokens, the rest), a TemplateProcessing with BOS
`<s>`, and the added tokens `<unk>`, `<s>`, `</s>` (special), `loramixer` and `a b` (normalized),
`mix` (single_word), `<mask>` (special, lstrip + rstrip). `decodes` holds 60 seeded random id lists
(byte tokens, `▁` runs, specials) with both decodes.

| folder | normalizer | pre-tokenizer | decoder | model |
|---|---|---|---|---|
| `llama2_spm` | Sequence[Prepend("▁"), Replace(" ", "▁")] | none | Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)] | all 256 byte tokens, fuse_unk |
| `mistral_metaspace` | none | Metaspace(prepend_scheme="first", split=False) | Sequence[Metaspace(first), ByteFallback, Fuse] | no byte tokens 0xF0-0xF4 (emoji become `<unk>`), fuse_unk; also `[INST]`, `[/INST]` (special) |
| `spm_split` | none | Metaspace(prepend_scheme="always", split=True) | Metaspace(always) | byte tokens 0x00-0x7F only, no fuse_unk |
{END}
"""

readme = os.path.join("Tests", "Fixtures", "README.md")
with open(readme, encoding="utf-8") as f:
    text = f.read()
if BEGIN in text and END in text:
    text = text[:text.index(BEGIN)] + SECTION.rstrip("\n") + text[text.index(END) + len(END):]
else:
    text = text.rstrip("\n") + "\n\n" + SECTION
with open(readme, "w", encoding="utf-8") as f:
    f.write(text)

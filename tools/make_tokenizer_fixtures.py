"""Writes Tests/Fixtures/tokenizers/: small byte-level BPE tokenizers trained with Hugging Face
`tokenizers` on the corpus below, and for each the ids and decoded strings `tokenizers` gives for
the test strings below (the oracle for Tests/LoRAMixerTests/TokenizerTests.swift).

    python tools/make_tokenizer_fixtures.py   # from the repository root, `tokenizers` installed
"""
import json
import os

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

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


def build(name, pre_tokenizer, eos, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|eot_id|>"])
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_tokens(added_tokens()[2:3] + added_tokens()[4:])
    tok.add_special_tokens(added_tokens()[3:4])
    bos = tok.token_to_id("<|begin_of_text|>")
    single = "<|begin_of_text|> $A" + (" <|eot_id|>" if eos else "")
    specials = [("<|begin_of_text|>", bos)] + ([("<|eot_id|>", tok.token_to_id("<|eot_id|>"))] if eos else [])
    template = processors.TemplateProcessing(single=single, pair=single + " $B", special_tokens=specials)
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    folder = os.path.join("Tests", "Fixtures", "tokenizers", name)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"), pretty=False)
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    cases = []
    for text in TESTS:
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
    with open(os.path.join(folder, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"vocab_size": tok.get_vocab_size(with_added_tokens=True), "cases": cases,
                   "partial": partial}, f, ensure_ascii=False, separators=(",", ":"))


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


# The README section (between markers, so a rerun replaces it; tools/make_fixtures.py rewrites the
# README without it, so run this script after the others).
BEGIN, END = "<!-- tokenizer-fixtures:begin -->", "<!-- tokenizer-fixtures:end -->"

SECTION = f"""{BEGIN}
## tokenizers/ (gpt2, llama3, qwen2, prefix_digits)

Written by `python tools/make_tokenizer_fixtures.py` (tokenizers {tokenizers.__version__}; only that
package is needed: `python3 -m venv ~/tokvenv && ~/tokvenv/bin/pip install tokenizers`). Run it
after the other fixture scripts: it replaces the text between the `tokenizer-fixtures` markers.
Each folder holds a byte-level BPE `tokenizer.json` trained (vocab 700) on the script's small
multilingual corpus, and `cases.json`: for each of {len(TESTS)} test strings the ids of
`encode(add_special_tokens=False)` (`ids`) and `True` (`ids_special`), and `decode(ids_special,
skip_special_tokens=False/True)` (`decoded`, `decoded_skip`); `partial` holds decodes of token
prefixes of multi-byte characters (U+FFFD). Added tokens in all four: `<|begin_of_text|>`,
`<|eot_id|>` (special), `loramixer` (not special, normalized), `<mask>` (special, lstrip + rstrip),
`mix` (not special, single_word).

| folder | pre-tokenizer | post-processor | model |
|---|---|---|---|
| `gpt2` | ByteLevel(add_prefix_space=False, use_regex=True) | ByteLevel + TemplateProcessing (BOS) | BPE |
| `llama3` | Sequence[Split(Llama 3 regex, Isolated), ByteLevel(use_regex=False)] | ByteLevel + TemplateProcessing (BOS) | BPE |
| `qwen2` | Sequence[Split(Qwen2 regex, Isolated), ByteLevel(use_regex=False)] | ByteLevel + TemplateProcessing (BOS, EOS `<\\|eot_id\\|>`) | BPE |
| `prefix_digits` | Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=True, use_regex=True)] | ByteLevel + TemplateProcessing (BOS) | BPE, ignore_merges |
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

"""Deterministic mixed-language text for bench/tokenizer.py: English prose, code, German and
French with accents, Chinese, Japanese, Korean, Arabic, emoji (with ZWJ sequences and flags),
numbers and runs of whitespace. Words come from per-language lexicons of syllable-built
pseudo-words drawn with a Zipf law (so frequent words repeat, as in real text, and rare ones
keep appearing), mixed with a few real function words. Only the standard library; the same
seed gives the same text on every machine and Python version (random.Random is stable)."""

import math
import random

EN_WORDS = ("the of and to in is that it for was on are as with his they be at one have this from or had by "
            "not word but what some we can out other were all there when up use your how said an each she which "
            "do their time if will way about many then them write would like so these her long make thing see "
            "him two has look more day could go come did number sound no most people my over know water than "
            "call first who may down side been now find any new work part take get place made live where after "
            "back little only round man year came show every good me give our under name very through just form "
            "sentence great think say help low line differ turn cause much mean before move right boy old too "
            "same tell does set three want air well also play small end put home read hand port large spell add "
            "even land here must big high such follow act why ask men change went light kind off need house "
            "picture try us again animal point mother world near build self earth father head stand own page "
            "should country found answer school grow study still learn plant cover food sun four between state "
            "keep eye never last let thought city tree cross farm hard start might story saw far sea draw left "
            "late run don't while press close night real life few north it's we're they've I'm you'll she'd").split()
DE_WORDS = ("der die das und ist nicht ein eine für mit über schön groß Straße Mädchen Müller Größe Bär Übung "
            "ändern fördern Gemütlichkeit Fußgänger weiß heißen Äpfel Öl Zürich München Köln prüfen").split()
FR_WORDS = ("le la les et est une des pour avec été très où déjà français garçon œuvre cœur naïve fenêtre "
            "hôpital élève Noël château forêt ça voilà à être hier théâtre façade l'école qu'il c'est").split()
EN_SYL = "ba be bi bo bu ca ce ci co cu da de di do ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu " \
         "pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo wa we wi ya yo za ze st tr " \
         "th sh ch ng nd rt ck ll ss er an in on en ar or al ion ing ed es ly ment ness able ous ive".split()
DE_SYL = "schw str ung keit heit lich ig ä ö ü ß ei au eu ie sch ch ge be ver zer en er el an ab auf aus".split()
FR_SYL = "é è ê à ç ô û î ë eau ou oi ai ain ien tion ment eux euse que qu gn ll re de le la pr tr".split()
ARABIC = "ا ب ت ث ج ح خ د ذ ر ز س ش ص ض ط ظ ع غ ف ق ك ل م ن ه و ي ة ى ء".split()
KANA = [chr(c) for c in range(0x3042, 0x3094)] + [chr(c) for c in range(0x30A2, 0x30F4)]
EMOJI = ["😀", "😂", "🥲", "👍", "🎉", "🚀", "❤️", "🔥", "✨", "🙏", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇩🇪", "🇯🇵",
         "👩🏽‍💻", "🧑‍🚀", "☕", "⚡", "✅"]
CODE = [
    "def {f}({a}, {b}=None):\n    if {b} is None:\n        {b} = []\n    return [{a} * 2 for _ in range({n})]\n",
    "for (int {a} = 0; {a} < {n}; ++{a}) {{\n\t{f}[{a}] += {b} * 0.5f;\n}}\n",
    "const {f} = async ({a}) => {{ await fetch(`/api/{a}/${{{b}}}`); return {n}; }};\n",
    "class {F}:\n    \"\"\"{f} of {a}.\"\"\"\n    def __init__(self):\n        self.{a} = {{'{b}': {n}}}\n\n",
    "SELECT {a}, COUNT(*) FROM {f} WHERE {b} >= {n} GROUP BY {a};\n",
    "    let {a}: [Int32] = {f}.map {{ $0 &+ {n} }}  // {b}\n",
    "<div class=\"{f}\" id=\"{a}-{n}\">{b} &amp; {a}</div>\n",
]


class Corpus:
    """`text(n_bytes, seed)`: about n_bytes of UTF-8 (whole paragraphs, so a little more)."""

    def __init__(self, lexicon_seed=20261204, lexicon_size=60000):
        r = random.Random(lexicon_seed)
        self.lex = {
            "en": self._lexicon(r, EN_SYL, lexicon_size, 1, 4),
            "de": self._lexicon(r, EN_SYL + DE_SYL, lexicon_size // 3, 2, 4),
            "fr": self._lexicon(r, EN_SYL + FR_SYL, lexicon_size // 3, 2, 4),
            "ar": self._lexicon(r, ARABIC, lexicon_size // 4, 2, 7),
            "ko": ["".join(chr(0xAC00 + (int(math.exp(r.random() * math.log(11172))) * 37) % 11172) for _ in range(r.randint(1, 4)))
                   for _ in range(lexicon_size // 4)],
        }
        # Chinese: a few thousand characters, frequent ones first; words of 1 to 3 of them
        self.hanzi = [chr(0x4E00 + (i * 7919) % 20902) for i in range(5000)]
        self.zh = ["".join(self._zipf(r, self.hanzi) for _ in range(r.choice((1, 2, 2, 2, 3))))
                   for _ in range(lexicon_size // 3)]

    @staticmethod
    def _lexicon(r, syllables, n, lo, hi):
        words = []
        for _ in range(n):
            words.append("".join(r.choice(syllables) for _ in range(r.randint(lo, hi))))
        return words

    @staticmethod
    def _zipf(r, items):
        # Zipf's law with s = 1 (log-uniform rank): the first item ~6% of draws for 60k items
        return items[min(len(items), int(math.exp(r.random() * math.log(len(items) + 1)))) - 1]

    def _words(self, r, lang, n, real=()):
        out = []
        for _ in range(n):
            if real and r.random() < 0.45:
                w = self._zipf(r, real)
            else:
                w = self._zipf(r, self.lex[lang])
            if r.random() < 0.06:
                w = w.capitalize()
            out.append(w)
        return out

    def _sentence(self, r, lang):
        n = r.randint(4, 22)
        if lang == "en":
            ws = self._words(r, "en", n, EN_WORDS)
        elif lang == "de":
            ws = self._words(r, "de", n, DE_WORDS)
        elif lang == "fr":
            ws = self._words(r, "fr", n, FR_WORDS)
        elif lang == "ar":
            ws = self._words(r, "ar", n)
        elif lang == "ko":
            ws = self._words(r, "ko", n)
        if r.random() < 0.2:
            ws.insert(r.randrange(len(ws) + 1), self._number(r))
        if r.random() < 0.1:
            ws.insert(r.randrange(len(ws) + 1), r.choice(EMOJI))
        s = " ".join(ws)
        return s[:1].upper() + s[1:] + r.choice(".....!?;:") if lang in ("en", "de", "fr") else s + r.choice(("。", ".", "؟", "!"))

    def _number(self, r):
        k = r.random()
        if k < 0.3:
            return str(r.randint(0, 100))
        if k < 0.5:
            return f"{r.uniform(0, 10000):.{r.randint(1, 4)}f}"
        if k < 0.65:
            return f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        if k < 0.8:
            return f"{r.randint(1, 999)},{r.randint(0, 999):03d},{r.randint(0, 999):03d}"
        return f"{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(0, 255)}"

    def _cjk(self, r):
        parts = []
        for _ in range(r.randint(8, 40)):
            k = r.random()
            if k < 0.75:
                parts.append(self._zipf(r, self.zh))
            elif k < 0.92:
                parts.append("".join(r.choice(KANA) for _ in range(r.randint(1, 4))))
            elif k < 0.96:
                parts.append(r.choice(("，", "、", "「", "」", "（", "）")))
            else:
                parts.append(self._number(r))
        return "".join(parts) + "。"

    def _code(self, r):
        names = self._words(r, "en", 4, EN_WORDS)
        names = [n.replace("'", "_") for n in names]
        return r.choice(CODE).format(f=names[0] + "_" + names[1], F=names[0].capitalize() + names[2].capitalize(),
                                     a=names[2], b=names[3], n=r.randint(0, 4096))

    def paragraph(self, r):
        k = r.random()
        if k < 0.32:
            body = " ".join(self._sentence(r, "en") for _ in range(r.randint(2, 7)))
        elif k < 0.42:
            body = " ".join(self._sentence(r, "de") for _ in range(r.randint(2, 5)))
        elif k < 0.52:
            body = " ".join(self._sentence(r, "fr") for _ in range(r.randint(2, 5)))
        elif k < 0.66:
            body = "".join(self._cjk(r) for _ in range(r.randint(1, 4)))
        elif k < 0.74:
            body = " ".join(self._sentence(r, "ko") for _ in range(r.randint(2, 5)))
        elif k < 0.80:
            body = " ".join(self._sentence(r, "ar") for _ in range(r.randint(2, 5)))
        elif k < 0.93:
            body = "".join(self._code(r) for _ in range(r.randint(1, 5)))
        elif k < 0.97:
            body = " | ".join(self._number(r) for _ in range(r.randint(3, 12)))
        else:
            body = "".join(r.choice(EMOJI) + r.choice(("", " ", "  ")) for _ in range(r.randint(3, 12)))
        sep = r.choice(("\n\n", "\n\n", "\n", "\n\n\n", "  \n", "\t\n", "\n    \n", "      "))
        return body + sep

    def text(self, n_bytes, seed):
        r = random.Random(seed)
        parts, size = [], 0
        while size < n_bytes:
            p = self.paragraph(r)
            parts.append(p)
            size += len(p.encode())
        return "".join(parts)

    def chunks(self, n_bytes, seed, chunk=1 << 16):
        """The same kind of text in pieces of about `chunk` bytes (for the trainer's iterator)."""
        r = random.Random(seed)
        size = 0
        while size < n_bytes:
            parts, n = [], 0
            while n < chunk:
                p = self.paragraph(r)
                parts.append(p)
                n += len(p.encode())
            size += n
            yield "".join(parts)

"""Writes the tokenizer of a byte-level model (token id = byte value, 256 ids, no merges) into a
model folder, with Hugging Face `tokenizers`: tokenizer.json (byte-level BPE whose vocabulary maps
each byte's ByteLevel character to the byte's value), and tokenizer_config.json with a chat
template that writes each user message as is and ends each assistant message with a newline, the
bundled model's end of answer (generation_config.json's eos_token_id, 10).

    python tools/make_byte_tokenizer.py models/tiny-llama   # `tokenizers` installed
"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from tokenizers.pre_tokenizers import ByteLevel

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['content'] }}{% if message['role'] == 'assistant' %}{{ '\\n' }}{% endif %}"
    "{% endfor %}"
)


def byte_level_characters():
    """GPT-2's byte-to-character table, which ByteLevel uses: printable bytes map to themselves,
    the others to U+0100 onwards, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping, extra = {}, 0
    for value in range(256):
        if value in printable:
            mapping[value] = chr(value)
        else:
            mapping[value] = chr(256 + extra)
            extra += 1
    return mapping


def byte_tokenizer():
    mapping = byte_level_characters()
    assert sorted(mapping.values()) == sorted(ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={mapping[b]: b for b in range(256)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "models/tiny-llama"
    tokenizer = byte_tokenizer()
    sample = "12+30= <mixer> K:4 Q:7 ?Q\n\t\x00\x7f é 東京 🙂"
    assert tokenizer.encode(sample).ids == list(sample.encode())
    assert tokenizer.decode(list(sample.encode())) == sample
    tokenizer.save(os.path.join(folder, "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHAT_TEMPLATE,
              "clean_up_tokenization_spaces": False, "model_max_length": 256}
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as file:
        json.dump(config, file, indent=2)
        file.write("\n")


if __name__ == "__main__":
    main()

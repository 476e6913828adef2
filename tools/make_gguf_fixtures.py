"""Writes the GGUF container fixtures in Tests/Fixtures/gguf/ with the `gguf` package's GGUFWriter,
and beside each FILE.gguf a FILE.json with what `gguf.GGUFReader` reads back from it (the oracle
for Tests/LoRAMixerTests/GGUFTests.swift):

    {"version", "alignment", "data_offset",
     "metadata": [{"key", "type", "value"} ...] in file order (an array's value is
                  {"element_type", "elements": [...]}; nested arrays nest the same way),
     "tensors": [{"name", "type" (ggml name), "type_id", "dimensions" (file order, ne[0] first),
                  "data_offset" (absolute), "n_bytes"} ...] in file order}

Only the container is exercised: byte contents of quantized tensors are arbitrary. It also
rewrites its own section (between the gguf-fixtures markers, at the end) of Tests/Fixtures/README.md;
`tools/make_fixtures.py` regenerates that README without it, so rerun this script after that one.
Run from the repository root:

    python3 -m venv ~/ggufvenv && ~/ggufvenv/bin/pip install gguf numpy
    ~/ggufvenv/bin/python tools/make_gguf_fixtures.py
"""

import json
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V

OUT = Path(__file__).resolve().parents[1] / "Tests" / "Fixtures" / "gguf"
README = OUT.parent / "README.md"
BEGIN, END = "<!-- gguf-fixtures:begin -->", "<!-- gguf-fixtures:end -->"


def vocab_only(path):
    """A vocabulary file: no tensors; tokenizer arrays of strings, floats and ints; every scalar type."""
    w = gguf.GGUFWriter(path, arch="llama")
    tokens = ["<unk>", "<s>", "</s>", "▁the", "▁a", "é", "日本", "🙂", "\n", "\t", " ", "<0x0A>"]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0, -1.5, -2.25, 3.125, -1e-7, 1e30, -0.0, 0.1, 2.0, 3.0, 4.0, 5.0])
    w.add_token_types([2, 3, 3, 1, 1, 1, 1, 1, 6, 1, 1, 6])
    w.add_token_merges(["▁ t", "h e", "▁t he"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    w.add_uint8("test.u8", 255)
    w.add_int8("test.i8", -128)
    w.add_uint16("test.u16", 65535)
    w.add_int16("test.i16", -32768)
    w.add_uint32("test.u32", 4294967295)
    w.add_int32("test.i32", -2147483648)
    w.add_uint64("test.u64", 18446744073709551615)
    w.add_int64("test.i64", -9223372036854775808)
    w.add_float32("test.f32", 0.1)
    w.add_float64("test.f64", 0.1)
    w.add_bool("test.true", True)
    w.add_bool("test.false", False)
    w.add_key_value("test.u64_array", [0, 1, 18446744073709551615], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("test.i16_array", [-1, 2, -3], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.f64_array", [0.5, -0.25], V.ARRAY, sub_type=V.FLOAT64)
    w.add_key_value("test.bool_array", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("test.nested", [[1, 2], [3], [4, 5, 6]], V.ARRAY, sub_type=V.ARRAY)
    w.add_key_value("test.nested_strings", [["a", "b"], ["ç"]], V.ARRAY, sub_type=V.ARRAY)
    finish(w)


def tensors(path, alignment=None):
    """Tensors of several types; a custom alignment when given."""
    w = gguf.GGUFWriter(path, arch="llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint32("llama.block_count", 1)
    w.add_uint32("llama.embedding_length", 64)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    rng = np.random.default_rng(13)
    w.add_tensor("token_embd.weight", rng.standard_normal((3, 64)).astype(np.float32))
    w.add_tensor("output_norm.weight", rng.standard_normal(5).astype(np.float16))
    # Quantized tensors as raw bytes: shape (rows, bytes per row); the writer derives the element shape.
    w.add_tensor("blk.0.attn_q.weight", rng.integers(0, 256, (2, 2 * 34), dtype=np.uint8), raw_dtype=Q.Q8_0)
    w.add_tensor("blk.0.attn_k.weight", rng.integers(0, 256, (4, 18), dtype=np.uint8), raw_dtype=Q.Q4_0)
    w.add_tensor("blk.0.ffn_down.weight", rng.integers(0, 256, (1, 144), dtype=np.uint8), raw_dtype=Q.Q4_K)
    w.add_tensor("blk.0.scalar", np.array([7], dtype=np.int32))
    finish(w)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def value_json(vtype, value):
    if vtype == V.ARRAY:
        return value
    if vtype == V.BOOL:
        return bool(value)
    if vtype in (V.FLOAT32, V.FLOAT64):
        return float(value)
    if vtype == V.STRING:
        return value
    return int(value)


def field_value(field):
    """The field's value as nested {"element_type", "elements"} for arrays, from the reader's parts."""
    parts = field.parts
    types = list(field.types)

    def read(index, vtypes):
        # index: the position in parts of this value's first part; returns (json, next index)
        vtype = vtypes[0]
        if vtype == V.STRING:
            return bytes(parts[index + 1]).decode("utf-8"), index + 2
        if vtype == V.ARRAY:
            element_type = V(int(parts[index][0]))
            count = int(parts[index + 1][0])
            index += 2
            elements = []
            for _ in range(count):
                element, index = read(index, [element_type] + vtypes[1:] if element_type != V.ARRAY else [V.ARRAY])
                elements.append(element)
            return {"element_type": element_type.name.lower(), "elements": elements}, index
        return value_json(vtype, parts[index][0].item()), index + 1

    # parts: key length, key, value type, then the value's parts
    value, end = read(3, types)
    assert end == len(parts), (field.name, end, len(parts))
    return value


def oracle(path):
    reader = gguf.GGUFReader(path)
    metadata = []
    for field in reader.fields.values():
        if field.name.startswith("GGUF."):
            continue  # the reader's pseudo-fields for the header
        metadata.append({"key": field.name, "type": V(field.types[0]).name.lower(), "value": field_value(field)})
    version = int(reader.fields["GGUF.version"].parts[0][0])
    return {
        "version": version,
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata": metadata,
        "tensors": [
            {"name": t.name, "type": t.tensor_type.name, "type_id": int(t.tensor_type),
             "dimensions": [int(d) for d in t.shape], "data_offset": int(t.data_offset), "n_bytes": int(t.n_bytes)}
            for t in reader.tensors
        ],
    }


def readme_section(sizes):
    lines = [
        BEGIN,
        "## gguf",
        "",
        f"Written by `python tools/make_gguf_fixtures.py` with gguf {gguf_version()} and numpy {np.__version__}"
        " (`python3 -m venv ~/ggufvenv && ~/ggufvenv/bin/pip install gguf numpy`). Each `NAME.gguf` is written"
        " by `gguf.GGUFWriter`; `NAME.json` beside it is what `gguf.GGUFReader` reads back (version, alignment,"
        " data offset, every metadata key with its type and value in file order, every tensor's name, ggml type,"
        " dimensions in ggml order, absolute data offset and byte size): the oracle for"
        " `Tests/LoRAMixerTests/GGUFTests.swift` and `lmx inspect`. Quantized tensors hold arbitrary bytes.",
        "",
        "| file | bytes | contents |",
        "|---|---|---|",
        f"| `vocab_only.gguf` | {sizes['vocab_only']} | no tensors: a llama tokenizer (`tokenizer.ggml.tokens` strings incl."
        " multi-byte UTF-8, `scores` float32, `token_type` int32, `merges`, bos/eos ids, add_bos/add_eos bools,"
        " `chat_template`), one key of each scalar type at its extreme, arrays of uint64/int16/float64/bool and"
        " nested arrays (`array[array[int32]]`, `array[array[string]]`) |",
        f"| `tensors.gguf` | {sizes['tensors']} | F32 [64, 3], F16 [5], Q8_0 [64, 2], Q4_0 [32, 4], Q4_K [256, 1],"
        " I32 [1] (dims in ggml order); default alignment 32 |",
        f"| `tensors_align64.gguf` | {sizes['tensors_align64']} | the same with `general.alignment` = 64 |",
        END,
    ]
    return "\n".join(lines) + "\n"


def gguf_version():
    from importlib.metadata import version
    return version("gguf")


def update_readme(section):
    text = README.read_text()
    if BEGIN in text:
        i, j = text.index(BEGIN), text.index(END) + len(END)
        text = text[:i].rstrip("\n") + "\n\n" + text[j:].lstrip("\n")
    README.write_text(text.rstrip("\n") + "\n\n" + section)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = {"vocab_only": vocab_only, "tensors": tensors, "tensors_align64": lambda p: tensors(p, alignment=64)}
    sizes = {}
    for name, make in cases.items():
        path = OUT / f"{name}.gguf"
        make(path)
        (OUT / f"{name}.json").write_text(json.dumps(oracle(path), indent=1, ensure_ascii=False) + "\n")
        sizes[name] = path.stat().st_size
        print(f"{path.relative_to(OUT.parents[2])}: {sizes[name]} bytes")
    update_readme(readme_section(sizes))


if __name__ == "__main__":
    main()

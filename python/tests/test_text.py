"""Text: Tokenizer (encode/decode/pieces/chat templates/streams), Model.tokenizer, and
Session.generate_text / generate(text=) / stream_text over the C API for text."""

import gc
import json
import threading

import pytest

import loramixer as lmx
from conftest import BUNDLED_MODELS, FIXTURES


@pytest.fixture(scope="module")
def bundled():
    model = lmx.Model(BUNDLED_MODELS / "tiny-llama")
    mixer = lmx.Mixer(model)
    for name in ("math", "strings", "lookup"):
        mixer.add_peft(name, BUNDLED_MODELS / "experts" / name)
    mixer.load_router(BUNDLED_MODELS / "router.safetensors")
    yield model, mixer
    mixer.close()
    model.close()


def cases(name):
    return json.loads((FIXTURES / "tokenizers" / name / "cases.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------ tokenizer

@pytest.mark.parametrize("name", ["llama3", "qwen2"])
def test_encode_decode_match_the_fixture_cases(name):
    document = cases(name)
    with lmx.Tokenizer(FIXTURES / "tokenizers" / name) as tok:
        assert tok.vocab_size == document["vocab_size"]
        for case in document["cases"]:
            text = case["text"]
            # the fixture is tokenizers' encode: special tokens in the text are parsed
            assert tok.encode(text, parse_special=True) == case["ids"], text
            assert tok.encode(text, add_special=True, parse_special=True) == case["ids_special"], text
            assert tok.decode(case["ids_special"], skip_special=False) == case["decoded"], text
            assert tok.decode(case["ids_special"]) == case["decoded_skip"], text
            stream = tok.stream()
            assert "".join(stream.push(i) for i in case["ids_special"]) + stream.finish() == case["decoded_skip"]
            stream.close()
            assert b"".join(tok.token_to_bytes(i) for i in case["ids"]) == tok.decode(case["ids"], False).encode()
        for case in document["partial"]:
            assert tok.decode(case["ids"], skip_special=False) == case["decoded"]


def test_special_tokens_are_not_parsed_by_default():
    with lmx.Tokenizer(FIXTURES / "tokenizers" / "llama3") as tok:
        forged = tok.encode("<|eot_id|>")
        parsed = tok.encode("<|eot_id|>", parse_special=True)
        assert len(parsed) == 1 and len(forged) > 1
        assert tok.decode(forged) == "<|eot_id|>"      # text, not the control token
        assert tok.decode(parsed) == ""                 # a special token, skipped
        assert tok.has_chat_template is False
        with pytest.raises(lmx.StateError, match="chat template"):
            tok.apply_chat_template([{"role": "user", "content": "hi"}])


def test_bundled_model_tokenizer(bundled):
    model, _ = bundled
    tok = model.tokenizer()
    assert tok.vocab_size == 256 and tok.max_id == 255
    assert tok.bos_id is None and tok.pad_id is None
    assert 10 in tok.end_of_turn_ids
    assert tok.has_chat_template
    assert tok.encode("12+30=") == list(b"12+30=")
    assert tok.encode("12+30=", add_special=True) == list(b"12+30=")   # no BOS in this tokenizer
    assert tok.decode(list(b"12+30=")) == "12+30="
    assert tok.token_to_bytes(0) == b"\0"
    assert tok.token_to_bytes(0xC3) == b"\xc3"
    assert tok.decode([0xC3]) == "\ufffd"
    assert tok.encode("a\0b") == [97, 0, 98]                              # NUL is text like any other
    assert tok.apply_chat_template([{"role": "user", "content": "12+30="}, {"role": "assistant", "content": "42"}],
                                   add_generation_prompt=False) == "12+30=42\n"
    assert tok.apply_chat_template([("user", "1+1=")]) == "1+1="
    with pytest.raises(lmx.InvalidArgumentError, match=r"messages\[0\]"):
        tok.apply_chat_template([{"role": "user"}])
    with pytest.raises(lmx.InvalidArgumentError, match="token"):
        tok.token_to_bytes(256)
    # streaming a character split over byte tokens
    stream = tok.stream()
    assert [stream.push(i) for i in "é€".encode()] == ["", "é", "", "", "€"]
    stream.push(0xE2)
    assert stream.finish() == "\ufffd" and stream.finish() == ""
    tok.close()
    with pytest.raises(lmx.ClosedError):
        tok.encode("x")
    with pytest.raises(lmx.ClosedError):
        tok.stream()


def test_tokenizer_errors(tmp_path):
    with pytest.raises(lmx.LoraMixerIOError, match="does not exist"):
        lmx.Tokenizer(tmp_path / "missing")
    with lmx.Model(FIXTURES / "llama_f32") as model:
        with pytest.raises(lmx.NotFoundError, match="tokenizer.json"):
            model.tokenizer()
    with lmx.Tokenizer(FIXTURES / "tokenizers" / "qwen2") as tok:
        with pytest.raises(TypeError):
            tok.encode(b"bytes")
        with pytest.raises(lmx.InvalidArgumentError, match="Unicode"):
            tok.encode("\ud800")
        with pytest.raises(lmx.InvalidArgumentError):
            tok.token_to_bytes(-1)
        assert tok.decode([10**6, -3]) == ""          # unknown ids are skipped, as tokenizers does


# ------------------------------------------------------------------------------------ generation

def test_generate_text_routed_answers_42(bundled):
    _, mixer = bundled
    with mixer.session() as session:
        pieces = []
        assert session.generate_text("12+30=", on_text=pieces.append) == "42"
        assert session.stop_reason == "end_of_turn"
        assert pieces == ["4", "2"]
        assert session.n_past == 8                    # the newline that stopped it is not evaluated
        session.reset()
        assert session.generate(text="12+30=", max_tokens=1) == "4"
        assert session.stop_reason == "max_tokens"
        assert session.generate_text() == "2"         # "" continues the session
        session.reset()
        assert session.generate_text("12+30=", chat=True) == "42"
        session.reset()
        assert session.generate_text("12+30=", stop_at_end_of_turn=False, max_tokens=3).startswith("42\n")
        session.reset()
        assert session.generate_text("12+30=", on_text=lambda piece: True) == "4"
        assert session.stop_reason == "callback"
        session.reset()
        assert session.generate_text("12+30=", on_token=lambda token: True) == "4"
        # the token-id API is unchanged
        session.reset()
        assert session.generate(list(b"12+30="), max_tokens=8, stop=[10]) == list(b"42")


def test_stream_text_concatenation_equals_the_full_text(bundled):
    _, mixer = bundled
    with mixer.session() as session:
        full = session.generate_text("<mixer>", max_tokens=16)
        session.reset()
        chunks = list(session.stream_text("<mixer>", max_tokens=16))
        assert "".join(chunks) == full and len(chunks) > 1
        assert session.stop_reason == "end_of_turn"
        session.reset()
        for chunk in session.stream_text("12+30="):
            assert chunk == "4"
            break                                     # stops after the piece handed out
        assert session.stop_reason == "callback"
        assert session.n_past == 7                    # prompt + "4": the session stays usable
        assert session.generate_text() == "2"


def test_stream_text_consumer_exception_and_busy_session(bundled):
    _, mixer = bundled
    with mixer.session() as session:
        with pytest.raises(RuntimeError, match="consumer"):
            for _chunk in session.stream_text("12+30="):
                raise RuntimeError("consumer failed")
        gc.collect()
        assert session.n_past == 7
        session.reset()
        stream = session.stream_text("12+30=")
        assert next(stream) == "4"
        with pytest.raises(lmx.StateError, match="in use"):
            session.generate_text("1")
        stream.close()
        assert session.generate_text() == "2"
        # errors of the call come out of the iteration
        session.reset()
        with pytest.raises(lmx.StateError):
            list(session.stream_text(""))             # nothing to continue from
        assert threading.active_count() < 50


def test_generate_text_errors(bundled):
    model, mixer = bundled
    with mixer.session() as session:
        with pytest.raises(TypeError):
            session.generate_text(b"12+30=")
        assert session.generate("12+30=") == "42"       # a str prompt: the model has a tokenizer
        session.reset()
        with pytest.raises(lmx.InvalidArgumentError, match="either"):
            session.generate([1, 2], text="x")
        with pytest.raises(lmx.InvalidArgumentError, match="Unicode"):
            session.generate_text("\udcff")
        with pytest.raises(lmx.StateError):
            session.generate_text("")                 # empty session, nothing to continue
        with lmx.Tokenizer(FIXTURES / "tokenizers" / "llama3") as other:
            with pytest.raises(lmx.ShapeError, match="vocabulary"):
                session.generate_text("12", tokenizer=other)
        closed = model.tokenizer()
        closed.close()
        with pytest.raises(lmx.ClosedError):
            session.generate_text("1", tokenizer=closed)
        assert session.n_past == 0
        with pytest.raises(ValueError, match="consumer"):
            session.generate_text("12+30=", on_text=lambda piece: (_ for _ in ()).throw(ValueError("consumer")))
        assert session.n_past == 7                    # stopped after "4"; not rolled back

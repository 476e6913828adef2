"""`lmx chat` on the bundled model: in a real terminal (tmux) and with a pipe.

The terminal test drives `lmx chat` with tmux send-keys and reads the screen with capture-pane:
an answer, /experts, /reset, Ctrl-C during a long reply (the prompt comes back and the session still
answers), Ctrl-C at the prompt and /quit. It is skipped when tmux is not installed (.ci/run
installs it).
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from test_cli import ROOT, USAGE_ERROR, lmx, lmx_path  # noqa: F401 (lmx: the fixture)

TINY = ROOT / "models" / "tiny-llama"
ROUTED = ["--expert", f"math={ROOT / 'models/experts/math'}", "--expert", f"strings={ROOT / 'models/experts/strings'}",
          "--expert", f"lookup={ROOT / 'models/experts/lookup'}", "--router", str(ROOT / "models" / "router.safetensors")]


def chat(stdin, *args, model=TINY):
    return subprocess.run([str(lmx_path()), "chat", "--model", str(model), *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def long_context_model(tmp_path):
    """models/tiny-llama with a context of 16384 positions (RoPE has no limit of its own), so that a
    reply can be long enough to be interrupted: the same weights, tokenizer and template."""
    folder = tmp_path / "long-llama"
    folder.mkdir()
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        (folder / name).symlink_to(TINY / name)
    config = json.loads((TINY / "config.json").read_text())
    config["max_position_embeddings"] = 16384
    (folder / "config.json").write_text(json.dumps(config))
    return folder


# --- pipe -------------------------------------------------------------------------------------------

def test_chat_pipe_answers_and_keeps_history(lmx):
    result = chat("12+30=\n", *ROUTED)
    assert result.returncode == 0 and result.stdout == "42\n" and result.stderr == "", result
    result = chat("12+30=\n/experts\n/reset\n12+30=\n/help\n/nope\n/quit\n7+35=\n", *ROUTED)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "42"
    assert lines[1] == "last reply: 3 positions (5...7, 0-based), routing learned"
    assert [line.split(":")[0] for line in lines[2:7]] == ["layer 0", "layer 1", "layer 2", "layer 3", "all layers"]
    assert lines[2].startswith("layer 0: math 3/3 (mean gate ")
    assert lines[7] == "(new conversation)" and lines[8] == "42"
    assert "/reset" in result.stdout and "unknown command /nope" in result.stdout
    assert lines[-1] == "unknown command /nope (/help lists the commands)"  # /quit left before 7+35=


def test_chat_pipe_second_turn_reuses_the_cache(lmx, tmp_path):
    # The second turn continues the first: its answer is what `run` gives for the whole rendered
    # conversation ("12+30=42\n" + "7+35=", this template's rendering), cache reused or not.
    result = chat("12+30=\n7+35=\n/reset\n12+30=\n", *ROUTED, "--verbose")
    expected = lmx("run", "--model", TINY, *ROUTED, "--prompt", "12+30=42\n7+35=").stdout
    assert result.stdout.splitlines() == ["42", expected.rstrip("\n"), "(new conversation)", "42"], result
    # The first turn evaluates the prompt; the second only "\n7+35=" after the 8 tokens held
    # ("12+30=42": the "\n" that ended the reply was sampled, not evaluated); after /reset, all again.
    assert result.stderr.splitlines() == ["lmx: 0 tokens reused, 6 evaluated", "lmx: 8 tokens reused, 6 evaluated",
                                          "lmx: 0 tokens reused, 6 evaluated"], result.stderr
    # A template whose rendering changes the history (here: a system message that depends on the
    # turn count) cannot reuse the cache: the session is reset each turn.
    folder = tmp_path / "counting"
    folder.mkdir()
    for name in ("model.safetensors", "tokenizer.json", "generation_config.json", "config.json"):
        (folder / name).symlink_to(TINY / name)
    config = json.loads((TINY / "tokenizer_config.json").read_text())
    config["chat_template"] = "[{{ messages|length }}]" + config["chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    result = chat("12+30=\n7+35=\n", *ROUTED, "--verbose", model=folder)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 2, result
    assert result.stderr.splitlines() == [
        "lmx: 0 tokens reused, 9 evaluated",
        "lmx: session reset (the conversation does not start with its 11 tokens), 17 tokens evaluated"], result.stderr


def test_chat_without_template_continues_text_with_a_note(lmx, tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    for name in ("model.safetensors", "tokenizer.json", "generation_config.json", "config.json"):
        (folder / name).symlink_to(TINY / name)
    result = chat("12+30=\n", *ROUTED, model=folder)
    assert result.returncode == 0 and result.stdout == "42\n"
    assert result.stderr.startswith("lmx: note: the model has no chat template"), result.stderr


def test_chat_refuses_a_model_without_tokenizer(lmx):
    result = chat("1\n", model=ROOT / "Tests" / "Fixtures" / "llama_f32")
    assert result.returncode == USAGE_ERROR and "no tokenizer" in result.stderr and result.stderr.count("\n") == 1


def test_chat_experts_without_experts_and_before_a_reply(lmx):
    result = chat("/experts\n12+30=\n/experts\n")
    lines = result.stdout.splitlines()
    assert lines[0] == "no experts: the base model alone" and lines[-1] == "no experts: the base model alone"
    result = chat("/experts\n", *ROUTED)
    assert result.stdout == "no reply yet\n"


def test_chat_context_overflow_leaves_out_old_turns(lmx):
    # 256 positions: ten 30-byte messages do not all fit; the oldest turns are left out.
    lines = "".join(f"{i:02d}" + "x" * 28 + "\n" for i in range(10))
    result = chat(lines + "12+30=\n", *ROUTED, "--max-tokens", 4)
    assert result.returncode == 0, result.stderr
    assert "oldest" in result.stderr and "left out" in result.stderr
    assert len(result.stdout.splitlines()) == 11


# --- terminal (tmux) -------------------------------------------------------------------------------

class Terminal:
    def __init__(self, tmp_path, command):
        self.socket = str(tmp_path / "tmux.sock")
        script = tmp_path / "run.sh"
        script.write_text(f"cd {ROOT}\n{command}\necho \"[lmx exited $?]\"\nsleep 600\n")
        self.tmux("new-session", "-d", "-s", "chat", "-x", "160", "-y", "50", f"bash {script}")

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout

    def screen(self):
        return self.tmux("capture-pane", "-p", "-J", "-t", "chat", "-S", "-2000")

    def lines(self):
        return [line.rstrip() for line in self.screen().rstrip("\n").splitlines()]

    def send(self, *keys):
        self.tmux("send-keys", "-t", "chat", *keys)

    def wait(self, condition, what, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if condition(screen):
                return screen
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}; screen:\n{self.screen()}")

    def at_prompt(self, screen=None):
        lines = [line.rstrip() for line in (screen or self.screen()).rstrip("\n").splitlines()]
        return bool(lines) and lines[-1] == ">"

    def close(self):
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def terminal(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux): the terminal test of lmx chat needs it")
    opened = []

    def start(*args):
        command = " ".join([str(lmx_path()), "chat", *(f"'{a}'" for a in map(str, args))])
        opened.append(Terminal(tmp_path, command))
        return opened[-1]

    yield start
    for t in opened:
        t.close()


def test_chat_in_a_terminal(terminal, tmp_path):
    model = long_context_model(tmp_path)
    t = terminal("--model", model, *ROUTED, "--max-tokens", 15000, "--ignore-eos")
    t.wait(t.at_prompt, "the first prompt")

    # --ignore-eos: the answer goes on past "42\n"; a short reply is checked with /reset below.
    t.send("/help", "Enter")
    t.wait(lambda s: "/experts" in s and t.at_prompt(s), "the help")

    # Ctrl-C during a long reply: the reply stops, the prompt comes back, the session still answers.
    t.send("12+30=", "Enter")
    # Only once some of the reply is on the screen: lmx has read the line (a Ctrl-C before that
    # would discard the typed line, and leave at the prompt).
    t.wait(lambda s: "> 12+30=\n" in s and len(s.split("> 12+30=\n")[-1].strip()) >= 20 and not t.at_prompt(s),
           "a long reply to start")
    t.send("C-c")
    screen = t.wait(lambda s: "reply stopped (Ctrl-C)" in s and t.at_prompt(s), "the prompt after Ctrl-C", timeout=30)
    assert "[lmx exited" not in screen
    t.send("/experts", "Enter")
    t.wait(lambda s: "all layers: math" in s and t.at_prompt(s), "/experts for the stopped reply")

    t.send("/reset", "Enter")
    t.wait(lambda s: "(new conversation)" in s and t.at_prompt(s), "/reset")
    t.send("/quit", "Enter")
    t.wait(lambda s: "[lmx exited 0]" in s, "/quit")


def test_chat_in_a_terminal_answers_and_ctrl_c_at_the_prompt_leaves(terminal, tmp_path):
    t = terminal("--model", TINY, *ROUTED)
    t.wait(t.at_prompt, "the first prompt")
    t.send("12+30=", "Enter")
    screen = t.wait(lambda s: "> 12+30=\n42\n" in s and t.at_prompt(s), "the answer 42")
    t.send("/experts", "Enter")
    screen = t.wait(lambda s: "all layers:" in s and t.at_prompt(s), "/experts")
    assert "last reply: 3 positions (5...7, 0-based), routing learned" in screen
    assert "layer 3: math 3/3" in screen
    t.send("/reset", "Enter")
    t.wait(lambda s: "(new conversation)" in s and t.at_prompt(s), "/reset")
    t.send("12+30=", "Enter")
    t.wait(lambda s: s.count("> 12+30=\n42\n") == 2 and t.at_prompt(s), "the answer after /reset")
    t.send("C-c")
    t.wait(lambda s: "[lmx exited 0]" in s, "Ctrl-C at the prompt to leave")

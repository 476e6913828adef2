"""Every example of the README runs as typed, on the bundled models/ (not the test fixtures):

- the C host (the ```c block with main) is compiled against include/ and the built library and
  prints the answer to 12+30=; the plugin example (the block with lmx_plugin_entry) builds with the
  command the README gives;
- every ```python block runs with the package in python/ and the built library;
- every ```sh block that runs `lmx` runs with bash, the built `lmx` first on PATH (the README
  assumes an installed one).

Each runs in a temporary folder holding a link to models/, so what the examples write stays there.
The library and lmx come from the folder of $LMX_BIN (as in test_cli.py).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli import ROOT, lmx_path

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", README, re.M | re.S)
NOT_RUN = ("make ", "swift build", "pip install", "python3 -m venv", "cc ")  # build and setup commands


def blocks(language, keep=lambda code: True):
    return [code for lang, code in BLOCKS if lang == language and keep(code)]


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "models").symlink_to(ROOT / "models")
    return tmp_path


def environment():
    binary = lmx_path()
    if not binary.is_file():
        pytest.fail(f"lmx binary not found at {binary}: build it or set LMX_BIN")
    env = dict(os.environ)
    env["PATH"] = f"{binary.parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT / 'python'}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["LORAMIXER_LIBRARY"] = str(binary.parent / "libloramixer.so")
    return binary.parent, env


def run(args, cwd, env, timeout=600):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def test_the_readme_has_the_examples():
    assert len(blocks("c", lambda c: "int main" in c)) == 1
    assert len(blocks("python")) >= 2
    assert len(blocks("sh", lambda c: re.search(r"^lmx ", c, re.M))) >= 2
    for lang, code in BLOCKS:
        assert "Tests/Fixtures" not in code, f"a README example uses the test fixtures:\n{code}"


def test_c_host_prints_the_answer(workdir):
    libdir, env = environment()
    (source,) = blocks("c", lambda c: "int main" in c)
    (workdir / "host.c").write_text(source)
    includes = [f"-I{folder}" for folder in (ROOT / "include", ROOT / "include" / "loramixer") if folder.is_dir()]
    run(["cc", "-std=c11", "-Wall", "-Werror", *includes, "host.c", "-o", "host", f"-L{libdir}",
         "-lloramixer", f"-Wl,-rpath,{libdir}"], workdir, env)
    out = run(["./host"], workdir, env).stdout
    assert out.splitlines()[0] == "12+30=42", out
    assert re.search(r"^trace: 8 tokens x 4 layers", out, re.M), out


def test_plugin_example_builds_as_the_readme_says(workdir):
    _, env = environment()
    (source,) = blocks("c", lambda c: "lmx_plugin_entry" in c and "LMX_PLUGIN_EXPORT" in c)
    (workdir / "echo.c").write_text(source)
    command = re.search(r"Build it with `(cc [^`]*echo\.c[^`]*)`", README).group(1)
    run(["bash", "-c", command.replace("-Iinclude", f"-I{ROOT / 'include'}")], workdir, env)
    assert (workdir / "echo.so").is_file()


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_examples_run(workdir, index):
    _, env = environment()
    code = blocks("python")[index]
    out = run([sys.executable, "-c", code], workdir, env).stdout
    if ('b"12+30="' in code and "print(bytes(answer)" in code) or 'print(session.generate(text="12+30="))' in code:
        assert out.splitlines()[0] == "42", out


PYTHON_README = (ROOT / "python" / "README.md").read_text()
# python/README.md's self-contained examples (the training one needs data files of your own).
PYTHON_README_BLOCKS = [code for code in re.findall(r"^```python\n(.*?)^```$", PYTHON_README, re.M | re.S)
                        if code.startswith("import loramixer") and ".jsonl" not in code]


@pytest.mark.parametrize("index", range(len(PYTHON_README_BLOCKS)))
def test_python_readme_examples_run(workdir, index):
    _, env = environment()
    out = run([sys.executable, "-c", PYTHON_README_BLOCKS[index]], workdir, env).stdout
    assert out.splitlines()[0] == "42", out


def test_python_readme_has_a_runnable_example():
    assert PYTHON_README_BLOCKS and "Tests/Fixtures" not in PYTHON_README


SHELL = blocks("sh", lambda c: re.search(r"^lmx ", c, re.M) and not any(word in c for word in NOT_RUN))


@pytest.mark.parametrize("index", range(len(SHELL)))
def test_cli_examples_run(workdir, index):
    _, env = environment()
    out = run(["bash", "-euo", "pipefail", "-c", SHELL[index]], workdir, env).stdout
    if "--prompt-tokens" in SHELL[index]:
        assert "52,50" in out.splitlines(), out  # the bytes of "42"
    if "lmx chat" in SHELL[index]:  # tokenize, --json, detokenize, run --prompt, chat with /experts
        lines = out.splitlines()
        assert lines[0] == "49 50 43 51 48 61" and lines[2:5] == ["42", "42", "42"], out
        assert lines[5].startswith("last reply: 3 positions") and lines[-1].startswith("all layers: math"), out
    if "lmx train" in SHELL[index]:
        assert (workdir / "out" / "router-run" / "router.safetensors").is_file()

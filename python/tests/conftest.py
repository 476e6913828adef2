"""Shared fixtures. The tests import the package from this checkout (python/loramixer), which
finds ../.build/release/libloramixer.so unless $LORAMIXER_LIBRARY says otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest

PYTHON_DIR = Path(__file__).resolve().parents[1]
REPO = PYTHON_DIR.parent
FIXTURES = REPO / "Tests" / "Fixtures"
INCLUDE = REPO / "include"
EXAMPLE_PLUGINS = REPO / "examples-c" / "build" / "plugins"
BUNDLED_MODELS = REPO / "models"

sys.path.insert(0, str(PYTHON_DIR))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import loramixer as lmx  # noqa: E402
from lmx_oracle import Expert, Oracle, Router, load_peft, read_safetensors  # noqa: E402

EXPERTS = ("e0", "e1", "e2")
F32_MODELS = ("llama_f32", "qwen2_f32", "mistral_f32")


def fixture_dir(name: str) -> Path:
    return FIXTURES / name


def expected(name: str) -> Dict[str, np.ndarray]:
    return read_safetensors(fixture_dir(name) / "expected.safetensors")[0]


def build_mixer(model: "lmx.Model", name: str, router: str = "router.safetensors") -> "lmx.Mixer":
    folder = fixture_dir(name)
    mixer = lmx.Mixer(model)
    for expert in EXPERTS:
        mixer.add_peft(expert, folder / "adapters" / expert)
    if router:
        mixer.load_router(folder / router)
    return mixer


class FixtureCase:
    """One fixture model as the parity tests drive it: its expected tensors and tokens, the model,
    a mixer with e0..e2 + router.safetensors and one with router_context.safetensors."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.folder = fixture_dir(name)
        self.expected = expected(name)
        self.tokens = [int(t) for t in self.expected["tokens"]]
        self.model = lmx.Model(self.folder)
        self.mixer = build_mixer(self.model, name)
        self.context_mixer = build_mixer(self.model, name, "router_context.safetensors")

    def run(self, settings: dict, mixer: "lmx.Mixer" = None):
        """(logits [T, V], trace) of the fixture's tokens in a fresh session of `mixer` (default the
        router mixer). settings: fixed (weights, or "file" for the fixture's fixed_weights),
        routing, top_k, temperature."""
        with (mixer or self.mixer).session() as session:
            fixed = settings.get("fixed")
            if fixed is not None:
                session.fixed_weights = self.expected["fixed_weights"] if fixed == "file" else fixed
            if "routing" in settings:
                session.set_routing(settings["routing"])
            if "top_k" in settings:
                session.top_k = settings["top_k"]
            if "temperature" in settings:
                session.temperature = settings["temperature"]
            return session.eval(self.tokens, logits="all"), session.trace()

    def close(self) -> None:
        self.mixer.close()
        self.context_mixer.close()
        self.model.close()


def case_cache(make: Callable[[str], FixtureCase]):
    """(case, teardown_module) for a test module: case(name) builds make(name) once, and
    teardown_module (assign it at module level) closes every case built."""
    cache: Dict[str, FixtureCase] = {}

    def case(name: str) -> FixtureCase:
        if name not in cache:
            cache[name] = make(name)
        return cache[name]

    def teardown_module(module) -> None:
        for c in cache.values():
            c.close()
        cache.clear()

    return case, teardown_module


@pytest.fixture(scope="session")
def llama_dir() -> Path:
    return fixture_dir("llama_f32")


@pytest.fixture(scope="session")
def llama_expected() -> Dict[str, np.ndarray]:
    return expected("llama_f32")


@pytest.fixture(scope="session")
def tokens(llama_expected) -> List[int]:
    return [int(t) for t in llama_expected["tokens"]]


@pytest.fixture(scope="session")
def llama_model() -> "lmx.Model":
    model = lmx.Model(fixture_dir("llama_f32"))
    yield model
    model.close()


@pytest.fixture(scope="session")
def llama_mixer(llama_model) -> "lmx.Mixer":
    mixer = build_mixer(llama_model, "llama_f32")
    yield mixer
    mixer.close()


@pytest.fixture(scope="session")
def llama_oracle() -> Oracle:
    return Oracle(fixture_dir("llama_f32"))


@pytest.fixture(scope="session")
def llama_experts() -> List[Expert]:
    return [load_peft(fixture_dir("llama_f32") / "adapters" / e, e) for e in EXPERTS]


@pytest.fixture(scope="session")
def llama_router() -> Router:
    return Router.load(fixture_dir("llama_f32") / "router.safetensors", EXPERTS)


@pytest.fixture(scope="session")
def cc() -> str:
    """A C compiler for tiny test plugins and layout probes (skips when there is none)."""
    candidates = [os.environ.get("CC"), "cc", "gcc", "clang"]
    compiler = next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)
    if not compiler:
        pytest.skip("no C compiler (cc) to build the test plugins")
    return compiler


def compile_shared(cc: str, source: str, out: Path, extra: List[str] = ()) -> Path:
    """Compile C `source` into shared library `out` (mode 0755) against include/."""
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([cc, "-std=c11", "-O1", "-fPIC", "-shared", "-fvisibility=hidden", f"-I{INCLUDE}",
                    str(src), "-o", str(out), *extra], check=True, capture_output=True, text=True)
    os.chmod(out, 0o755)
    return out


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))

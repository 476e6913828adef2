"""The repository stands on its own: no tracked text file points at a document or path outside it,
every link to a section of docs/ARCHITECTURE.md names a real one, and the bundled experts carry no
developer machine paths. Needs no build."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

# Built from pieces so that this file does not match itself.
OUTSIDE = [
    ("a design document outside the repository", re.compile("DESIGN" + r"\.md")),
    ("a sibling folder of the repository", re.compile(r"\.\./" + "shared")),
    ("a developer machine path", re.compile(r"(?<![\w.~-])/(?:" + "work|root" + r")/")),
]
SKIPPED_SUFFIXES = {".safetensors", ".npy", ".gguf", ".so", ".png", ".jpg"}


def tracked_files():
    """Tracked files (git ls-files), or every file but build outputs when this is not a git checkout."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [ROOT / name for name in names.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for folder, dirs, names in os.walk(ROOT):
            dirs[:] = [d for d in dirs if not (d.startswith(".build") or d in {".git", "work", "__pycache__", "build"})]
            files += [Path(folder) / name for name in names]
    return [f for f in files if f.is_file() and f.suffix not in SKIPPED_SUFFIXES]


def text_of(path):
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


def test_no_tracked_file_points_outside_the_repository():
    found = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in OUTSIDE:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()[:120]}")
    assert not found, "\n".join(found)


def test_the_checker_finds_what_it_looks_for():
    """Self-test: each pattern matches a line it must refuse and spares repository-relative paths."""
    bad = ["see " + "DESIGN" + ".md section 2", "../" + "shared/notes.md", '"out": "/' + 'work/main/bench/x.md"',
           "/" + "root/.cache/x"]
    good = ["bench/work/routing/data", "docs/ARCHITECTURE.md#method", "~/torchvenv/bin/python", "/tmp/x.npy"]
    assert all(any(p.search(line) for _, p in OUTSIDE) for line in bad)
    assert not any(p.search(line) for _, p in OUTSIDE for line in good)


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_architecture_links_name_real_sections():
    assert ARCHITECTURE.is_file(), "docs/ARCHITECTURE.md is missing"
    anchors = {slug(line.lstrip("#")) for line in ARCHITECTURE.read_text().splitlines() if line.startswith("#")}
    broken = []
    for path in tracked_files():
        text = text_of(path)
        for anchor in re.findall(r"ARCHITECTURE\.md#([\w-]+)", text or ""):
            if anchor not in anchors:
                broken.append(f"{path.relative_to(ROOT)}: #{anchor}")
    assert not broken, f"links to sections docs/ARCHITECTURE.md does not have: {broken} (it has {sorted(anchors)})"


def test_readme_links_the_architecture_document():
    assert "](docs/ARCHITECTURE.md)" in (ROOT / "README.md").read_text()


MACHINE_PATH = re.compile(r"^(/|~)|(^|/)\.\.(/|$)|/(root|tmp|work|home|Users)/")


@pytest.mark.parametrize("config", sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("models/**/adapter_config.json")))
def test_bundled_expert_configs_carry_no_machine_paths(config):
    base = json.loads((ROOT / config).read_text()).get("base_model_name_or_path")
    assert isinstance(base, str) and base, config
    assert not MACHINE_PATH.search(base), f"{config}: base_model_name_or_path {base!r} is a path of some machine"


def test_bundled_experts_exist():
    assert sorted(p.parent.name for p in ROOT.glob("models/experts/*/adapter_config.json")) == ["lookup", "math", "strings"]

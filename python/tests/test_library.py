"""Finding and checking the library; the bindings cover the whole header with the C layouts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import loramixer as lmx
from loramixer import capi
from conftest import INCLUDE, PYTHON_DIR, REPO, compile_shared, fixture_dir

PACKAGE = PYTHON_DIR / "loramixer"


def header_functions():
    text = (INCLUDE / "loramixer.h").read_text()
    return re.findall(r"^LMX_API\b[^;(]*?\b(lmx_\w+)\s*\(", text, flags=re.M)


def test_version():
    assert lmx.version() == "0.1.0"
    assert lmx.version_number() == 100
    assert lmx.version_number() // 10000 == capi.HEADER_VERSION_MAJOR
    assert lmx.HEADER_VERSION_NUMBER == 100
    assert Path(lmx.library_path()).name == "libloramixer.so"


def test_every_header_function_is_bound_and_used():
    names = header_functions()
    assert len(names) == 61, names  # every LMX_API line of the header
    assert set(names) == set(capi.FUNCTIONS), set(names) ^ set(capi.FUNCTIONS)
    library = capi.lib()
    for name in names:
        assert getattr(library, name).argtypes is not None
    # ... and each one is reached by the Pythonic layer (not only by capi).
    pythonic = "".join((PACKAGE / f).read_text() for f in ("__init__.py", "_log.py", "model.py", "mixer.py", "session.py",
                                                                 "tokenizer.py"))
    unused = [n for n in names if n not in pythonic]
    assert not unused, unused


LAYOUT_PROBE = r"""
#include <stdio.h>
#include <stddef.h>
#include "loramixer.h"
#define S(T) printf(#T " sizeof %zu\n", sizeof(T));
#define F(T, f) printf(#T " " #f " %zu\n", offsetof(T, f));
int main(void) {
%s
    return 0;
}
"""


def test_struct_layouts_match_the_header(cc, tmp_path):
    structs = [capi.lmx_model_params, capi.lmx_model_info, capi.lmx_lora_tensor, capi.lmx_lora_desc,
               capi.lmx_custom_expert_desc, capi.lmx_plugin_params, capi.lmx_session_params,
               capi.lmx_generate_params, capi.lmx_train_params, capi.lmx_train_progress,
               capi.lmx_tokenizer_info, capi.lmx_chat_message, capi.lmx_text_params]
    lines = []
    for struct in structs:
        lines.append(f"S({struct.__name__})")
        lines += [f"F({struct.__name__}, {name})" for name, *_ in struct._fields_]
    source = tmp_path / "probe.c"
    source.write_text(LAYOUT_PROBE.replace("%s", "\n".join(lines)))
    subprocess.run([cc, f"-I{INCLUDE}", str(source), "-o", str(tmp_path / "probe")], check=True)
    output = subprocess.run([str(tmp_path / "probe")], check=True, capture_output=True, text=True).stdout
    for line in output.splitlines():
        struct_name, field, value = line.split()
        struct = getattr(capi, struct_name)
        actual = __import__("ctypes").sizeof(struct) if field == "sizeof" else getattr(struct, field).offset
        assert actual == int(value), f"{struct_name}.{field}: ctypes {actual}, C {value}"


def test_candidate_paths(tmp_path):
    pkg = tmp_path / "python" / "loramixer"
    places = capi.candidate_paths(env="", package_dir=pkg, installed_libdir=None)
    assert [p for _, p in places] == [
        str(pkg / "libloramixer.so"),
        str(tmp_path / ".build" / "release" / "libloramixer.so"),
        str(tmp_path / ".build" / "debug" / "libloramixer.so"),
        "/usr/local/lib/libloramixer.so.0",
        "libloramixer.so.0",
        "libloramixer.so",
    ]
    # An installed copy that pkg-config knows comes after the build folders, by its SONAME.
    places = capi.candidate_paths(env="", package_dir=pkg, installed_libdir="/opt/lmx/lib")
    assert [p for _, p in places][3:5] == ["/opt/lmx/lib/libloramixer.so.0", "/usr/local/lib/libloramixer.so.0"]
    # A folder given in $LORAMIXER_LIBRARY that holds only the SONAME file (an install's lib/).
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libloramixer.so.0").write_bytes(b"")
    assert capi.candidate_paths(env=str(tmp_path / "lib")) == [
        ("$LORAMIXER_LIBRARY", str(tmp_path / "lib" / "libloramixer.so.0"))]
    assert capi.candidate_paths(env=str(tmp_path)) == [("$LORAMIXER_LIBRARY", str(tmp_path / "libloramixer.so"))]
    assert capi.candidate_paths(env="/x/lib.so") == [("$LORAMIXER_LIBRARY", "/x/lib.so")]
    # From this checkout, the repository's release build is among the places.
    real = [p for _, p in capi.candidate_paths(env="")]
    assert str(REPO / ".build" / "release" / "libloramixer.so") in real


def run_python(code: str, env_extra: dict, cwd: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("LORAMIXER_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60)


@pytest.fixture()
def package_copy(tmp_path):
    """The package copied to a folder outside the repository (as if installed)."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "loramixer", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return site


def test_not_found_lists_every_place(package_copy):
    code = ("import loramixer as l\n"
            "try:\n    l.version()\n"
            "except l.LibraryNotFoundError as e:\n    print(e)\n    print('IMPORTERROR', isinstance(e, ImportError))\n")
    result = run_python(code, {}, package_copy)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for place in (package_copy / "loramixer" / "libloramixer.so",
                  package_copy.parent / ".build" / "release" / "libloramixer.so",
                  package_copy.parent / ".build" / "debug" / "libloramixer.so"):
        assert str(place) in out, out
    assert "libloramixer.so  (system loader" in out and "IMPORTERROR True" in out
    result = run_python(code, {"LORAMIXER_LIBRARY": "/nonexistent/libloramixer.so"}, package_copy)
    assert "/nonexistent/libloramixer.so  ($LORAMIXER_LIBRARY): no such file" in result.stdout
    assert "unset LORAMIXER_LIBRARY" in result.stdout
    assert ".build" not in result.stdout  # a set variable is the only place tried


def test_env_variable_and_next_to_package(package_copy):
    real = capi.library_path()
    code = "import loramixer as l; print(l.version(), l.library_path())"
    result = run_python(code, {"LORAMIXER_LIBRARY": real}, package_copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0.1.0", real]
    result = run_python(code, {"LORAMIXER_LIBRARY": str(Path(real).parent)}, package_copy)  # a folder
    assert result.stdout.split() == ["0.1.0", real]
    (package_copy / "loramixer" / "libloramixer.so").symlink_to(real)
    result = run_python(code, {}, package_copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0.1.0", str(package_copy / "loramixer" / "libloramixer.so")]


def test_major_version_mismatch_is_refused(cc, tmp_path, package_copy):
    fake = compile_shared(cc, '__attribute__((visibility("default"))) unsigned lmx_version_number(void) '
                              '{ return 10203; }\n', tmp_path / "libloramixer.so")
    code = ("import loramixer as l\n"
            "try:\n    l.Model('x')\n"
            "except l.ABIError as e:\n    print(e.status, e)\n")
    result = run_python(code, {"LORAMIXER_LIBRARY": str(fake)}, package_copy)
    assert result.returncode == 0, result.stderr
    assert "-6" in result.stdout and "1.2.3" in result.stdout and "0.1.0" in result.stdout
    assert "major versions must match" in result.stdout


def test_same_major_with_missing_functions_is_refused(cc, tmp_path, package_copy):
    fake = compile_shared(cc, '__attribute__((visibility("default"))) unsigned lmx_version_number(void) '
                              '{ return 199; }\n', tmp_path / "libloramixer.so")
    code = ("import loramixer as l\n"
            "try:\n    l.version()\n"
            "except l.ABIError as e:\n    print(e)\n")
    result = run_python(code, {"LORAMIXER_LIBRARY": str(fake)}, package_copy)
    assert "lacks functions" in result.stdout and "lmx_session_eval" in result.stdout


def test_not_a_library(tmp_path, package_copy):
    bogus = tmp_path / "libloramixer.so"
    bogus.write_text("not an ELF file")
    code = ("import loramixer as l\n"
            "try:\n    l.version()\n"
            "except l.LibraryNotFoundError as e:\n    print(e)\n")
    result = run_python(code, {"LORAMIXER_LIBRARY": str(bogus)}, package_copy)
    assert str(bogus) in result.stdout and "cannot load" in result.stdout


def test_model_info_and_module_shapes(llama_model):
    info = llama_model.info
    assert info == lmx.ModelInfo(n_vocab=128, n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, head_dim=24,
                                 d_ff=96, max_positions=64, architecture="LlamaForCausalLM")
    assert llama_model.module_shape("q_proj") == (64, 96)
    assert llama_model.module_shape(lmx.Module.K_PROJ) == lmx.ModuleShape(64, 48)
    assert llama_model.module_shape(3) == (96, 64)
    assert llama_model.module_shape("DOWN_PROJ").in_features == 96
    shapes = llama_model.module_shapes()
    assert len(shapes) == 7 and shapes[lmx.Module.UP_PROJ] == (64, 96)
    with lmx.Model(fixture_dir("qwen2_f32")) as qwen:
        assert qwen.info.architecture == "Qwen2ForCausalLM" and qwen.info.head_dim == 16
    assert "LlamaForCausalLM" in repr(llama_model)


def test_enums_accept_names_ints_and_members():
    assert lmx.Routing.of("Learned") is lmx.Routing.LEARNED and lmx.Routing.of(3) is lmx.Routing.FIXED
    assert lmx.Module.of("o_proj") is lmx.Module.O_PROJ and str(lmx.Module.O_PROJ) == "o_proj"
    with pytest.raises(TypeError):
        lmx.Routing.of(1.5)
    with pytest.raises(TypeError):
        lmx.Logits.of(True)
    with pytest.raises(lmx.InvalidArgumentError):
        lmx.Logits.of(7)

"""Raw ctypes bindings of ``include/loramixer.h`` (the low level under the Pythonic API).

:func:`lib` finds, loads and checks ``libloramixer.so`` once and returns the ``ctypes.CDLL`` with
a prototype (``argtypes``/``restype``) on every function of the header. Functions that return an
``lmx_status`` get an ``errcheck`` that raises the matching :class:`~loramixer.errors.LoraMixerError`
subclass with ``lmx_last_error()``, read on the calling thread right after the failing call.

Where the library is looked for, in order (:func:`candidate_paths`):

1. ``$LORAMIXER_LIBRARY`` (a file, or a folder holding ``libloramixer.so``). When it is set, it is
   the only place tried: a wrong value is an error, never silently replaced by another library.
2. next to the package: ``loramixer/libloramixer.so``;
3. the repository's build folders, found from the package's location (a checkout's ``python/``
   folder sits in the repository): ``../.build/release`` and ``../.build/debug`` relative to
   ``python/``;
4. an installed copy (``make install``): ``libloramixer.so.0`` in the folder
   ``pkg-config --variable=libdir loramixer`` names (when pkg-config knows loramixer), then in
   ``/usr/local/lib`` (``make install``'s default prefix);
5. the system loader's search (``LD_LIBRARY_PATH``, ``ldconfig``) for ``libloramixer.so.0``, then
   for ``libloramixer.so``.

ctypes releases the GIL during every foreign call, so sessions on different threads run in
parallel.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int32,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from .errors import ABIError, InvalidArgumentError, LibraryNotFoundError, LoraMixerIOError, error_for_status

__all__ = [
    "HEADER_VERSION_MAJOR",
    "HEADER_VERSION_MINOR",
    "HEADER_VERSION_PATCH",
    "HEADER_VERSION_NUMBER",
    "LIBRARY_FILENAME",
    "ENV_VAR",
    "lib",
    "load_library",
    "library_path",
    "candidate_paths",
    "FUNCTIONS",
    "lmx_model_params",
    "lmx_model_info",
    "lmx_lora_tensor",
    "lmx_lora_desc",
    "lmx_custom_expert_desc",
    "lmx_plugin_params",
    "lmx_session_params",
    "lmx_generate_params",
    "lmx_expert_forward_fn",
    "lmx_destroy_fn",
    "lmx_release_fn",
    "lmx_token_callback",
    "lmx_train_params",
    "lmx_train_progress",
    "lmx_train_progress_fn",
    "lmx_tokenizer_info",
    "lmx_chat_message",
    "lmx_text_params",
    "lmx_text_callback",
]

#: The header version this package was written for (include/loramixer.h). The library's major
#: version must equal HEADER_VERSION_MAJOR.
HEADER_VERSION_MAJOR = 0
HEADER_VERSION_MINOR = 1
HEADER_VERSION_PATCH = 0
HEADER_VERSION_NUMBER = HEADER_VERSION_MAJOR * 10000 + HEADER_VERSION_MINOR * 100 + HEADER_VERSION_PATCH

LIBRARY_FILENAME = "libloramixer.so"
#: The installed library's SONAME (libloramixer.so.MAJOR), the name an installed copy is found by.
LIBRARY_SONAME = f"{LIBRARY_FILENAME}.{HEADER_VERSION_MAJOR}"
#: make install's default prefix's library folder.
DEFAULT_INSTALL_LIBDIR = "/usr/local/lib"
ENV_VAR = "LORAMIXER_LIBRARY"

# Enumerations of the header (values fixed forever).
LMX_LOAD_MMAP = 0
LMX_LOAD_COPY = 1
LMX_ROUTING_NONE, LMX_ROUTING_LEARNED, LMX_ROUTING_SOFT, LMX_ROUTING_FIXED, LMX_ROUTING_UNIFORM = range(5)
LMX_LOGITS_NONE, LMX_LOGITS_LAST, LMX_LOGITS_ALL = range(3)
LMX_DTYPE_F32, LMX_DTYPE_F16, LMX_DTYPE_BF16 = range(3)
(LMX_PLUGIN_ID, LMX_PLUGIN_VERSION, LMX_PLUGIN_DESCRIPTION, LMX_PLUGIN_LICENSE, LMX_PLUGIN_PATH,
 LMX_PLUGIN_EXPERTS) = range(6)
LMX_TRAIN_ROUTER, LMX_TRAIN_JOINT = range(2)
LMX_TRAIN_ROUTING_TOPK, LMX_TRAIN_ROUTING_SOFT, LMX_TRAIN_ROUTING_LABEL = range(3)
LMX_TEXT_CHAT, LMX_TEXT_PARSE_SPECIAL, LMX_TEXT_NO_BOS, LMX_TEXT_SHOW_SPECIAL, LMX_TEXT_IGNORE_END_OF_TURN = (
    1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4)
LMX_STOP_END_OF_TURN, LMX_STOP_MAX_TOKENS, LMX_STOP_CALLBACK, LMX_STOP_CONTEXT_FULL = range(4)


# ------------------------------------------------------------------------------------------------
# Structs and callback types (layouts of include/loramixer.h and loramixer_common.h)
# ------------------------------------------------------------------------------------------------

class lmx_model_params(Structure):
    _fields_ = [("struct_size", c_uint32), ("load_mode", c_uint32)]


class lmx_model_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("n_vocab", c_uint32),
        ("n_layers", c_uint32),
        ("d_model", c_uint32),
        ("n_heads", c_uint32),
        ("n_kv_heads", c_uint32),
        ("head_dim", c_uint32),
        ("d_ff", c_uint32),
        ("max_positions", c_uint32),
        ("architecture", c_char * 64),
        ("d_state", c_uint32),
        ("d_conv", c_uint32),
        ("dt_rank", c_uint32),
    ]


class lmx_lora_tensor(Structure):
    _fields_ = [
        ("layer", c_uint32),
        ("module", c_uint32),
        ("in_features", c_uint32),
        ("out_features", c_uint32),
        ("a", c_void_p),
        ("b", c_void_p),
    ]


#: void (*release)(void *user_data)
lmx_release_fn = CFUNCTYPE(None, c_void_p)
#: void (*destroy)(void *user_data)
lmx_destroy_fn = CFUNCTYPE(None, c_void_p)
#: lmx_status (*)(void *user, uint32_t layer, uint32_t module, const float *input, float *output,
#:                size_t n_rows, size_t in_features, size_t out_features)
#: (pointers arrive as ints: c_void_p, so that numpy views can be made from the addresses)
lmx_expert_forward_fn = CFUNCTYPE(c_int32, c_void_p, c_uint32, c_uint32, c_void_p, c_void_p,
                                  c_size_t, c_size_t, c_size_t)
#: uint32_t (*)(int32_t token, void *user_data)
lmx_token_callback = CFUNCTYPE(c_uint32, c_int32, c_void_p)
#: uint32_t (*)(void *user_data): nonzero aborts the evaluation
lmx_abort_callback = CFUNCTYPE(c_uint32, c_void_p)
#: void (*)(uint32_t level, const char *source, const char *message, void *user_data)
lmx_log_callback = CFUNCTYPE(None, c_uint32, c_char_p, c_char_p, c_void_p)


class lmx_lora_desc(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("dtype", c_uint32),
        ("rank", c_uint32),
        ("alpha", c_float),
        ("use_rslora", c_uint32),
        ("tensors", POINTER(lmx_lora_tensor)),
        ("n_tensors", c_size_t),
        ("release", lmx_release_fn),
        ("user_data", c_void_p),
    ]


class lmx_custom_expert_desc(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("modules", POINTER(c_uint32)),
        ("in_features", POINTER(c_uint32)),
        ("out_features", POINTER(c_uint32)),
        ("n_modules", c_size_t),
        ("layers", POINTER(c_uint32)),
        ("n_layers", c_size_t),
        ("forward", lmx_expert_forward_fn),
        ("destroy", lmx_destroy_fn),
        ("user_data", c_void_p),
    ]


class lmx_plugin_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("config", c_char_p),
        ("allowed_sha256", POINTER(c_char_p)),
        ("n_allowed_sha256", c_size_t),
        ("allow_writable", c_uint32),
    ]


class lmx_session_params(Structure):
    _fields_ = [("struct_size", c_uint32), ("n_ctx", c_uint32), ("trace", c_uint32), ("n_threads", c_uint32)]


class lmx_generate_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("max_tokens", c_uint32),
        ("temperature", c_float),
        ("top_k", c_uint32),
        ("top_p", c_float),
        ("seed", c_uint64),
        ("stop_tokens", POINTER(c_int32)),
        ("n_stop_tokens", c_size_t),
        ("on_token", lmx_token_callback),
        ("user_data", c_void_p),
    ]


class lmx_train_params(Structure):
    # "lambda" keeps the C name (a Python keyword: read it with getattr(params, "lambda")).
    _fields_ = [
        ("struct_size", c_uint32),
        ("regime", c_uint32),
        ("routing", c_uint32),
        ("router_context", c_uint32),
        ("soft_steps", c_uint32),
        ("top_k", c_uint32),
        ("temperature", c_float),
        ("alpha", c_float),
        ("lambda", c_float),
        ("beta", c_float),
        ("sensitive", c_char_p),
        ("learning_rate", c_float),
        ("min_learning_rate", c_float),
        ("warmup_steps", c_uint32),
        ("weight_decay", c_float),
        ("adam_beta1", c_float),
        ("adam_beta2", c_float),
        ("adam_epsilon", c_float),
        ("clip_norm", c_float),
        ("batch_size", c_uint32),
        ("epochs", c_uint32),
        ("steps", c_uint32),
        ("seed", c_uint64),
        ("checkpoint_every", c_uint32),
        ("resume", c_uint32),
        ("n_threads", c_uint32),
        ("eval_max_tokens", c_uint32),
    ]


class lmx_train_progress(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("step", c_uint32),
        ("total_steps", c_uint32),
        ("epoch", c_uint32),
        ("loss", c_double),
        ("cross_entropy", c_double),
        ("balance", c_double),
        ("entropy_term", c_double),
        ("preserve", c_double),
        ("learning_rate", c_float),
        ("grad_norm", c_double),
        ("tokens_per_s", c_double),
        ("elapsed_s", c_double),
        ("eta_s", c_double),
        ("n_experts", c_size_t),
        ("expert_load", POINTER(c_float)),
        ("n_layers", c_size_t),
        ("layer_entropy", POINTER(c_float)),
    ]


#: uint32_t (*)(const lmx_train_progress *progress, void *user_data); ``lmx_train_progress_fn()``
#: (no argument) is the NULL callback for a raw ``lmx_mixer_train`` call
lmx_train_progress_fn = CFUNCTYPE(c_uint32, POINTER(lmx_train_progress), c_void_p)


class lmx_tokenizer_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("n_vocab", c_uint32),
        ("bos_id", c_int32),
        ("eos_id", c_int32),
        ("pad_id", c_int32),
        ("unk_id", c_int32),
        ("has_chat_template", c_uint32),
        ("n_end_of_turn", c_uint32),
        ("max_id", c_int32),
    ]


class lmx_chat_message(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


#: uint32_t (*)(const char *text, size_t len, void *user_data); the text is a c_void_p (read
#: ``len`` bytes with ``ctypes.string_at``: a piece may contain a NUL byte)
lmx_text_callback = CFUNCTYPE(c_uint32, c_void_p, c_size_t, c_void_p)


class lmx_text_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("on_text", lmx_text_callback),
        ("user_data", c_void_p),
    ]


# ------------------------------------------------------------------------------------------------
# Function prototypes: name -> (restype, argtypes). "status" marks an lmx_status return.
# Handles (lmx_model*, lmx_mixer*, lmx_session*) and caller buffers are c_void_p, so handles are
# plain ints and numpy buffers are passed by address (array.ctypes.data) without a copy.
# ------------------------------------------------------------------------------------------------

_STATUS = "status"
_P = POINTER

FUNCTIONS: dict = {
    # library
    "lmx_version": (c_char_p, []),
    "lmx_version_number": (c_uint32, []),
    "lmx_status_string": (c_char_p, [c_int32]),
    "lmx_last_error": (c_char_p, []),
    "lmx_set_log_callback": (None, [lmx_log_callback, c_void_p]),
    # models
    "lmx_model_params_default": (lmx_model_params, []),
    "lmx_model_load": (_STATUS, [c_char_p, _P(lmx_model_params), _P(c_void_p)]),
    "lmx_model_free": (None, [c_void_p]),
    "lmx_model_get_info": (_STATUS, [c_void_p, _P(lmx_model_info)]),
    "lmx_model_module_shape": (_STATUS, [c_void_p, c_uint32, _P(c_uint32), _P(c_uint32)]),
    # mixers
    "lmx_mixer_create": (_STATUS, [c_void_p, _P(c_void_p)]),
    "lmx_mixer_free": (None, [c_void_p]),
    "lmx_mixer_add_peft": (_STATUS, [c_void_p, c_char_p, c_char_p, _P(c_size_t)]),
    "lmx_mixer_add_lora": (_STATUS, [c_void_p, c_char_p, _P(lmx_lora_desc), _P(c_size_t)]),
    "lmx_mixer_add_custom": (_STATUS, [c_void_p, c_char_p, _P(lmx_custom_expert_desc), _P(c_size_t)]),
    "lmx_mixer_expert_count": (_STATUS, [c_void_p, _P(c_size_t)]),
    "lmx_mixer_expert_name": (_STATUS, [c_void_p, c_size_t, c_void_p, c_size_t, _P(c_size_t)]),
    "lmx_mixer_load_router": (_STATUS, [c_void_p, c_char_p]),
    # plugins
    "lmx_plugin_params_default": (lmx_plugin_params, []),
    "lmx_mixer_load_plugin": (_STATUS, [c_void_p, c_char_p, _P(lmx_plugin_params), _P(c_size_t)]),
    "lmx_mixer_plugin_count": (_STATUS, [c_void_p, _P(c_size_t)]),
    "lmx_mixer_plugin_string": (_STATUS, [c_void_p, c_size_t, c_uint32, c_void_p, c_size_t, _P(c_size_t)]),
    "lmx_mixer_unload_plugin": (_STATUS, [c_void_p, c_char_p]),
    # sessions
    "lmx_session_params_default": (lmx_session_params, []),
    "lmx_session_create": (_STATUS, [c_void_p, _P(lmx_session_params), _P(c_void_p)]),
    "lmx_session_free": (None, [c_void_p]),
    "lmx_session_reset": (_STATUS, [c_void_p]),
    "lmx_session_n_past": (_STATUS, [c_void_p, _P(c_size_t)]),
    "lmx_session_set_routing": (_STATUS, [c_void_p, c_uint32]),
    "lmx_session_set_fixed_weights": (_STATUS, [c_void_p, c_void_p, c_size_t]),
    "lmx_session_set_top_k": (_STATUS, [c_void_p, c_uint32]),
    "lmx_session_set_temperature": (_STATUS, [c_void_p, c_float]),
    "lmx_session_get_params": (_STATUS, [c_void_p, _P(lmx_session_params)]),
    "lmx_session_get_routing": (_STATUS, [c_void_p, _P(c_uint32)]),
    "lmx_session_get_fixed_weights": (_STATUS, [c_void_p, c_void_p, c_size_t, _P(c_size_t)]),
    "lmx_session_get_top_k": (_STATUS, [c_void_p, _P(c_uint32)]),
    "lmx_session_get_temperature": (_STATUS, [c_void_p, _P(c_float)]),
    "lmx_session_set_abort_callback": (_STATUS, [c_void_p, lmx_abort_callback, c_void_p]),
    "lmx_session_eval": (_STATUS, [c_void_p, c_void_p, c_size_t, c_uint32, c_void_p, c_size_t]),
    "lmx_generate_params_default": (lmx_generate_params, []),
    "lmx_session_generate": (_STATUS, [c_void_p, c_void_p, c_size_t, _P(lmx_generate_params), c_void_p,
                                       c_size_t, _P(c_size_t)]),
    "lmx_session_trace_size": (_STATUS, [c_void_p, _P(c_size_t), _P(c_size_t), _P(c_size_t)]),
    "lmx_session_trace_copy": (_STATUS, [c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t]),
    # tokenizers and text
    "lmx_tokenizer_load": (_STATUS, [c_char_p, _P(c_void_p)]),
    "lmx_model_tokenizer": (_STATUS, [c_void_p, _P(c_void_p)]),
    "lmx_tokenizer_free": (None, [c_void_p]),
    "lmx_tokenizer_get_info": (_STATUS, [c_void_p, _P(lmx_tokenizer_info)]),
    "lmx_tokenizer_end_of_turn": (_STATUS, [c_void_p, c_void_p, c_size_t, _P(c_size_t)]),
    "lmx_tokenize": (_STATUS, [c_void_p, c_void_p, c_size_t, c_uint32, c_uint32, c_void_p, c_size_t, _P(c_size_t)]),
    "lmx_token_to_piece": (_STATUS, [c_void_p, c_int32, c_void_p, c_size_t, _P(c_size_t)]),
    "lmx_detokenize": (_STATUS, [c_void_p, c_void_p, c_size_t, c_uint32, c_void_p, c_size_t, _P(c_size_t)]),
    "lmx_text_stream_create": (_STATUS, [c_void_p, c_uint32, _P(c_void_p)]),
    "lmx_text_stream_free": (None, [c_void_p]),
    "lmx_text_stream_push": (_STATUS, [c_void_p, c_int32, c_void_p, c_size_t, _P(c_size_t)]),
    "lmx_text_stream_finish": (_STATUS, [c_void_p, c_void_p, c_size_t, _P(c_size_t)]),
    "lmx_chat_apply_template": (_STATUS, [c_void_p, _P(lmx_chat_message), c_size_t, c_uint32, c_void_p, c_size_t,
                                          _P(c_size_t)]),
    "lmx_text_params_default": (lmx_text_params, []),
    "lmx_session_generate_text": (_STATUS, [c_void_p, c_void_p, c_void_p, c_size_t, _P(lmx_generate_params),
                                            _P(lmx_text_params), c_void_p, c_size_t, _P(c_size_t), _P(c_uint32)]),
    # training
    "lmx_mixer_add_untrained_lora": (_STATUS, [c_void_p, c_char_p, c_uint32, c_float, c_uint32, c_uint64,
                                               _P(c_size_t)]),
    "lmx_train_params_default": (lmx_train_params, []),
    "lmx_mixer_train": (_STATUS, [c_void_p, c_char_p, c_char_p, c_char_p, _P(lmx_train_params),
                                  lmx_train_progress_fn, c_void_p]),
}


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def pkg_config_libdir() -> Optional[str]:
    """``pkg-config --variable=libdir loramixer``, or None (no pkg-config, or it does not know loramixer)."""
    try:
        proc = subprocess.run(["pkg-config", "--variable=libdir", "loramixer"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = proc.stdout.strip()
    return libdir if proc.returncode == 0 and libdir else None


def candidate_paths(env: Optional[str] = None, package_dir: Optional[Path] = None,
                    installed_libdir: Optional[str] = "") -> List[Tuple[str, str]]:
    """Where the library is looked for, in order, as ``(description, path)`` pairs.

    ``env`` defaults to ``$LORAMIXER_LIBRARY`` (pass ``""`` to ignore the variable); when it is set
    it is the only candidate (a folder means its ``libloramixer.so``). ``package_dir`` defaults to
    this package's folder. ``installed_libdir`` defaults to what pkg-config says (``""``: ask it;
    None: skip that place). The last two entries are bare file names, resolved by the system
    loader (``LD_LIBRARY_PATH``, ``ldconfig``).
    """
    if env is None:
        env = os.environ.get(ENV_VAR)
    if env:
        return [(f"${ENV_VAR}", _library_file(env))]
    pkg = Path(package_dir) if package_dir is not None else _package_dir()
    python_dir = pkg.parent              # .../python (a checkout) or site-packages (installed)
    repo = python_dir.parent
    places = [
        ("next to the package", str(pkg / LIBRARY_FILENAME)),
        ("repository release build", str(repo / ".build" / "release" / LIBRARY_FILENAME)),
        ("repository debug build", str(repo / ".build" / "debug" / LIBRARY_FILENAME)),
    ]
    if installed_libdir == "":
        installed_libdir = pkg_config_libdir()
    if installed_libdir and os.path.normpath(installed_libdir) != DEFAULT_INSTALL_LIBDIR:
        places.append(("installed (pkg-config --variable=libdir loramixer)",
                       str(Path(installed_libdir) / LIBRARY_SONAME)))
    places += [
        ("installed (make install's default prefix)", str(Path(DEFAULT_INSTALL_LIBDIR) / LIBRARY_SONAME)),
        ("system loader (LD_LIBRARY_PATH, ldconfig)", LIBRARY_SONAME),
        ("system loader (LD_LIBRARY_PATH, ldconfig)", LIBRARY_FILENAME),
    ]
    return places


def _library_file(path: str) -> str:
    """A file as given; a folder means its libloramixer.so, or its libloramixer.so.0 when it has only that."""
    if not Path(path).is_dir():
        return str(path)
    plain, versioned = Path(path) / LIBRARY_FILENAME, Path(path) / LIBRARY_SONAME
    return str(versioned if not plain.exists() and versioned.exists() else plain)


def _open(explicit: Optional[str] = None) -> Tuple[ctypes.CDLL, str]:
    tried: List[str] = []
    if explicit is not None:
        candidates = [("load_library(path)", _library_file(explicit))]
        hint = f"pass the path of a built {LIBRARY_FILENAME}"
    else:
        candidates = candidate_paths()
        hint = (f"unset {ENV_VAR} to search the default places, or point it at a built {LIBRARY_FILENAME}"
                if os.environ.get(ENV_VAR)
                else f"build it with `make release` in the repository, install it with `make install`, "
                     f"or set {ENV_VAR} to its path")
    for description, path in candidates:
        is_bare = os.sep not in path
        if not is_bare and not os.path.isfile(path):
            tried.append(f"  {path}  ({description}): no such file")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as error:
            tried.append(f"  {path}  ({description}): {error}")
    raise LibraryNotFoundError(f"cannot load {LIBRARY_FILENAME}; looked in:\n" + "\n".join(tried) + f"\n({hint})")


def _make_errcheck(last_error: Any) -> Any:
    def errcheck(result: int, func: Any, args: Any) -> int:
        if result != 0:
            # Read on this thread, right after the failing call (the message is thread-local and
            # valid until the next lmx_* call on this thread).
            raw = last_error()
            message = raw.decode("utf-8", "replace") if raw else ""
            raise error_for_status(int(result), message or f"{func.__name__} failed with status {result}")
        return result
    return errcheck


def _bind(cdll: ctypes.CDLL) -> None:
    missing = []
    last_error = getattr(cdll, "lmx_last_error", None)
    if last_error is not None:
        last_error.restype, last_error.argtypes = c_char_p, []
    errcheck = _make_errcheck(last_error)
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            function = getattr(cdll, name)
        except AttributeError:
            missing.append(name)
            continue
        function.argtypes = argtypes
        if restype == _STATUS:
            function.restype = c_int32
            function.errcheck = errcheck
        else:
            function.restype = restype
    if missing:
        raise ABIError(f"{getattr(cdll, '_name', LIBRARY_FILENAME)} lacks functions this package needs: "
                       + ", ".join(missing))


_LIB: Optional[ctypes.CDLL] = None
_LIB_PATH: Optional[str] = None
_LOCK = threading.Lock()


def load_library(path: Optional[str] = None) -> ctypes.CDLL:
    """Load (once) and return the library; ``path`` overrides the search (see the module doc).

    Raises :class:`LibraryNotFoundError` listing every place tried, or :class:`ABIError` when the
    library's major version differs from :data:`HEADER_VERSION_MAJOR` or a function is missing.
    Calling it again after a success returns the loaded library (``path`` must then be ``None`` or
    the same file).
    """
    global _LIB, _LIB_PATH
    with _LOCK:
        if _LIB is not None:
            if path is not None and os.path.realpath(_library_file(path)) != os.path.realpath(_LIB_PATH or ""):
                raise ABIError(f"{_LIB_PATH} is already loaded; cannot switch to {path} in this process")
            return _LIB
        cdll, found = _open(path)
        number_fn = getattr(cdll, "lmx_version_number", None)
        if number_fn is None:
            raise ABIError(f"{found} has no lmx_version_number: not a libloramixer")
        number_fn.restype = c_uint32
        number_fn.argtypes = []
        number = int(number_fn())
        if number // 10000 != HEADER_VERSION_MAJOR:
            major, minor, patch = number // 10000, number // 100 % 100, number % 100
            raise ABIError(
                f"{found} is libloramixer {major}.{minor}.{patch}, but this package was written for "
                f"{HEADER_VERSION_MAJOR}.{HEADER_VERSION_MINOR}.{HEADER_VERSION_PATCH} "
                f"(major versions must match)")
        _bind(cdll)
        _LIB, _LIB_PATH = cdll, found
        return cdll


def lib() -> ctypes.CDLL:
    """The loaded library (loading it on first use)."""
    return _LIB if _LIB is not None else load_library()


def library_path() -> str:
    """Path of the loaded library (loading it on first use)."""
    lib()
    assert _LIB_PATH is not None
    return _LIB_PATH


def encode_path(path: "os.PathLike[str] | str | bytes", what: str = "path") -> bytes:
    """A path as the bytes the library expects (refusing embedded NULs, which C would cut)."""
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise InvalidArgumentError(f"{what} {path!r} contains a NUL character")
    return raw


def existing_path(path: "os.PathLike[str] | str | bytes", what: str, folder: bool) -> bytes:
    """``encode_path`` for a folder or file that must exist: a missing one is a LoraMixerIOError
    that says it does not exist (rather than what the library found missing inside it), as ``lmx``
    reports it."""
    raw = encode_path(path, what)
    kind = "folder" if folder else "file"
    shown = os.fsdecode(raw)
    if not raw:
        return raw  # the library refuses an empty path as an invalid argument
    if not os.path.exists(raw):
        raise LoraMixerIOError(f"{what}: {kind} {shown} does not exist")
    if folder and not os.path.isdir(raw):
        raise LoraMixerIOError(f"{what}: {shown} is a file, not a folder")
    if not folder and os.path.isdir(raw):
        raise LoraMixerIOError(f"{what}: {shown} is a folder, not a file")
    return raw


def encode_text(text: str, what: str) -> bytes:
    """A str as UTF-8 bytes for the library (refusing embedded NULs)."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    if "\0" in text:
        raise InvalidArgumentError(f"{what} {text!r} contains a NUL character")
    return text.encode("utf-8")


def read_string(fill: Any) -> str:
    """Runs the library's output-string convention: ``fill(buf, capacity, needed_ptr)`` is called
    once to learn the length, then with a buffer large enough."""
    needed = c_size_t(0)
    fill(None, 0, ctypes.byref(needed))
    for _ in range(4):  # the string cannot normally change between the calls; bounded anyway
        size = needed.value + 1
        buffer = ctypes.create_string_buffer(size)
        fill(buffer, size, ctypes.byref(needed))
        if needed.value + 1 <= size:
            return buffer.value.decode("utf-8", "replace")
    return buffer.value.decode("utf-8", "replace")


def c_array(ctype: Any, values: Sequence[Any]) -> Any:
    """A ctypes array of ``ctype`` holding ``values``."""
    return (ctype * len(values))(*values)


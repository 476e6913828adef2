"""Mixer: a model plus named experts (PEFT folders, tensors, Python callables, plugins) and a router."""

from __future__ import annotations

import contextlib
import ctypes
import numbers
import os
import threading
from ctypes import byref, c_char_p, c_int32, c_size_t, c_uint32, c_void_p
from typing import (TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np

from . import _callbacks, capi
from ._handle import OwnedHandle
from .errors import InvalidArgumentError, LoraMixerError, ShapeError, StateError
from .model import Model
from .types import DType, Module, ModuleShape, PluginInfo, TrainRegime, TrainRouting, to_bfloat16

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Mixer"]

PathLike = Union[str, "os.PathLike[str]"]
ModuleLike = Union[Module, str, int]
DTypeLike = Union[DType, str, int, None]

_DTYPE_NAMES = {
    "float32": DType.F32, "f32": DType.F32, "fp32": DType.F32,
    "float16": DType.F16, "f16": DType.F16, "fp16": DType.F16, "half": DType.F16,
    "bfloat16": DType.BF16, "bf16": DType.BF16,
}


def _dtype_arg(dtype: DTypeLike) -> Optional[DType]:
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype.lower() in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype.lower()]
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        name = np.dtype(dtype).name
        if name in _DTYPE_NAMES:
            return _DTYPE_NAMES[name]
        raise TypeError(f"dtype {name} is not supported: use float32, float16 or bfloat16")
    return DType.of(dtype)  # type: ignore[return-value]


def _natural_dtype(array: np.ndarray) -> DType:
    """The LMX dtype an array is, without conversion (float64 counts as float32)."""
    if array.dtype.name == "bfloat16":  # ml_dtypes, if the caller uses it
        return DType.BF16
    if array.dtype == np.uint16:
        return DType.BF16
    if array.dtype == np.float16:
        return DType.F16
    if array.dtype in (np.float32, np.float64):
        return DType.F32
    raise TypeError(f"LoRA tensors must be float32, float16, or bfloat16 (as uint16 bit patterns); "
                    f"got {array.dtype}")


def _convert(array: np.ndarray, dtype: DType) -> np.ndarray:
    """``array`` as a C-contiguous buffer of ``dtype`` (uint16 bits for bfloat16)."""
    if dtype == DType.BF16:
        if array.dtype.name == "bfloat16":
            return np.ascontiguousarray(array).view(np.uint16)
        if array.dtype == np.uint16:
            return np.ascontiguousarray(array)
        if array.dtype.kind == "f":
            return to_bfloat16(array)
    elif array.dtype.kind == "f" and array.dtype.name != "bfloat16":
        return np.ascontiguousarray(array, dtype=np.float32 if dtype == DType.F32 else np.float16)
    elif array.dtype.name == "bfloat16":
        return np.ascontiguousarray(array.astype(np.float32), dtype=np.float32 if dtype == DType.F32 else np.float16)
    if array.dtype == np.uint16:
        raise TypeError("uint16 arrays are taken as bfloat16 bit patterns: pass dtype='bfloat16'")
    raise TypeError(f"cannot use a {array.dtype} array as {dtype.name}")


_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
_UINT64 = (0, 2**64 - 1)
#: Mixer.add_untrained_lora's default modules: the attention projections (PEFT's usual choice),
#: and for Mamba models the four projections around the selective scan.
_ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
_MAMBA_MODULES = ("in_proj", "x_proj", "dt_proj", "out_proj")


def _c_int(value: Any, what: str, bounds: Tuple[int, int]) -> int:
    """An int that fits the C field (the library checks the meaning, e.g. ``steps >= 0``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{what} must be an int, got {value!r}")
    if not bounds[0] <= value <= bounds[1]:
        raise InvalidArgumentError(f"{what} {value} does not fit its C type ({bounds[0]} .. {bounds[1]})")
    return int(value)


def _c_float(value: Any, what: str) -> float:
    """A real number for a float field (the library refuses non-finite and out-of-range values)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(f"{what} must be a number, got {value!r}")
    return float(value)


def _module_mask(modules: Union[ModuleLike, Iterable[ModuleLike]]) -> int:
    """The ``LMX_MODULE_*`` bit mask of one module or an iterable of them (names, members, ints)."""
    if isinstance(modules, (str, int, np.integer)):
        modules = [modules]  # type: ignore[list-item]
    mask = 0
    for module in modules:  # type: ignore[union-attr]
        mask |= 1 << int(Module.of(module))
    if mask == 0:
        raise InvalidArgumentError("modules must name at least one projection")
    return mask


def _sensitive(sensitive: Union[str, Iterable[str], None]) -> Optional[bytes]:
    """``lmx_train_params.sensitive``: a comma-separated string, or names joined with commas."""
    if sensitive is None:
        return None
    if isinstance(sensitive, str):
        return capi.encode_text(sensitive, "sensitive")
    names = list(sensitive)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"sensitive expert names must be str, not {type(name).__name__}")
        if "," in name:
            raise InvalidArgumentError(f"sensitive expert name {name!r} contains a comma (the list separator)")
    return capi.encode_text(",".join(names), "sensitive") if names else None


class Mixer(OwnedHandle):
    """A set of named experts over one model, and an optional router (``lmx_mixer``).

    The mixer keeps its model alive (the library does; this object also holds the Python
    :class:`Model`). Sessions made from it see the experts and router it has when they are created.
    Modifying a mixer (adding experts, routers, plugins) is serialised by a lock in this object;
    sessions on other threads are not affected (they use a snapshot).

    >>> mixer = Mixer(model)
    >>> mixer.add_peft("e0", "Tests/Fixtures/llama_f32/adapters/e0")
    0
    """

    _kind = "Mixer"

    def __init__(self, model: Model) -> None:
        super().__init__()
        if not isinstance(model, Model):
            raise TypeError(f"Mixer needs a loramixer.Model, not {type(model).__name__}")
        lib = capi.lib()
        out = c_void_p()
        lib.lmx_mixer_create(model._require(), byref(out))
        self._own(out.value, lib.lmx_mixer_free)
        self._model = model
        self._shapes: Dict[Module, ModuleShape] = model.module_shapes()
        self._info = model._info
        self._lock = threading.RLock()
        self._training = False  # a train() call is running (guarded by _lock)

    @property
    def model(self) -> Model:
        """The Python :class:`Model` this mixer was made from (it may be closed; the library
        keeps the model itself alive for the mixer). ClosedError once the mixer is closed."""
        self._require()
        return self._model  # type: ignore[return-value]

    def _drop_parents(self) -> None:
        self._model = None

    @contextlib.contextmanager
    def _modifying(self) -> Iterator[None]:
        """Holds the lock for a call that changes the mixer; refuses it while :meth:`train` runs
        (the run adopts its result at the end, by expert name)."""
        with self._lock:
            if self._training:
                raise StateError("this Mixer is training: add or remove experts, routers and plugins before "
                                 "train() starts or after it returns")
            yield

    def close(self) -> None:
        """Release the mixer (sessions made from it keep what they use). A no-op when already
        closed. Raises StateError while :meth:`train` is running on it."""
        with self._lock:
            if self._training:
                raise StateError("cannot close this Mixer while train() is running on it")
            super().close()

    # -------------------------------------------------------------------------------- experts
    def add_peft(self, name: str, path: PathLike) -> int:
        """Add the PEFT LoRA folder ``path`` (``adapter_config.json`` +
        ``adapter_model.safetensors``) as expert ``name``; returns its index.

        Raises LoraMixerIOError, FormatError, ShapeError, InvalidArgumentError (e.g. a duplicate
        name)."""
        index = c_size_t(0)
        with self._modifying():
            capi.lib().lmx_mixer_add_peft(self._require(), capi.encode_text(name, "name"),
                                          capi.existing_path(path, "add_peft", folder=True), byref(index))
        return index.value

    def add_lora(self, name: str, tensors: Mapping[Tuple[int, ModuleLike], Tuple[Any, Any]], *,
                 alpha: Optional[float] = None, rslora: bool = False, dtype: DTypeLike = None) -> int:
        """Add a LoRA expert from arrays; returns its index. The library copies the tensors.

        Args:
            name: the expert's name, unique in the mixer.
            tensors: ``{(layer, module): (A, B)}`` with A ``[rank, in_features]`` and B
                ``[out_features, rank]`` (PEFT's layout); ``module`` is a :class:`Module`, its int
                or its name (``"q_proj"``). Every A has the same rank.
            alpha: ``lora_alpha``; the scale is ``alpha / rank`` (``alpha / sqrt(rank)`` with
                ``rslora``). ``None`` means ``alpha = rank`` (scale 1 without rslora).
            rslora: rank-stabilised scaling.
            dtype: element type handed to the library: ``"float32"``, ``"float16"`` or
                ``"bfloat16"``. ``None`` infers it from the arrays: float32 (float64 is converted),
                float16, and uint16 arrays, which are taken as bfloat16 bit patterns (see
                :func:`loramixer.to_bfloat16`; ml_dtypes' bfloat16 arrays work too). Float arrays
                are converted to the given dtype (bfloat16 rounds to nearest even).

        Raises:
            ShapeError: arrays that are not 2-D, ranks that differ, or (from the library) features
                that do not match the model's module. InvalidArgumentError: no tensors, a duplicate
                (layer, module), a layer or name the library refuses. TypeError: unsupported dtypes.
        """
        if not isinstance(tensors, Mapping) or len(tensors) == 0:
            raise InvalidArgumentError("add_lora needs a non-empty mapping {(layer, module): (A, B)}")
        target = _dtype_arg(dtype)
        pairs: List[Tuple[int, Module, np.ndarray, np.ndarray]] = []
        for key, value in tensors.items():
            try:
                layer, module_like = key
                a_like, b_like = value
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"add_lora: each item must be (layer, module): (A, B); got {key!r}") from None
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < 2**32:
                raise InvalidArgumentError(f"add_lora: layer {layer!r} is not a non-negative int")
            module = Module.of(module_like)
            a, b = np.asarray(a_like), np.asarray(b_like)
            if a.ndim != 2 or b.ndim != 2:
                raise ShapeError(f"add_lora: layer {layer} {module}: A and B must be 2-D, got shapes "
                                 f"{a.shape} and {b.shape}")
            pairs.append((int(layer), module, a, b))  # type: ignore[arg-type]
        if target is None:
            found = {_natural_dtype(x) for _, _, a, b in pairs for x in (a, b)}
            if len(found) != 1:
                raise TypeError(f"add_lora: tensors of different dtypes ({', '.join(sorted(d.name for d in found))}); "
                                "pass dtype= to convert them to one")
            target = found.pop()
        rank = pairs[0][2].shape[0]
        if rank == 0:
            raise ShapeError("add_lora: rank 0 (A has no rows)")
        c_tensors = (capi.lmx_lora_tensor * len(pairs))()
        keep: List[np.ndarray] = []
        for i, (layer, module, a, b) in enumerate(pairs):
            if a.shape[0] != rank or b.shape[1] != rank:
                raise ShapeError(f"add_lora: layer {layer} {module}: A is {list(a.shape)} and B is "
                                 f"{list(b.shape)}, expected A [{rank}, in] and B [out, {rank}] "
                                 f"(one rank for the whole expert)")
            a_buf, b_buf = _convert(a, target), _convert(b, target)
            keep += [a_buf, b_buf]
            c_tensors[i].layer = layer
            c_tensors[i].module = int(module)
            c_tensors[i].in_features = a.shape[1]
            c_tensors[i].out_features = b.shape[0]
            c_tensors[i].a = a_buf.ctypes.data
            c_tensors[i].b = b_buf.ctypes.data
        desc = capi.lmx_lora_desc()
        desc.struct_size = ctypes.sizeof(capi.lmx_lora_desc)
        desc.dtype = int(target)
        desc.rank = rank
        desc.alpha = float(rank if alpha is None else alpha)
        desc.use_rslora = 1 if rslora else 0
        desc.tensors = c_tensors
        desc.n_tensors = len(pairs)
        index = c_size_t(0)
        with self._modifying():
            capi.lib().lmx_mixer_add_lora(self._require(), capi.encode_text(name, "name"), byref(desc), byref(index))
        del keep  # copied by the library (release is NULL)
        return index.value

    def add_custom(self, name: str, fn: _callbacks.ExpertFn, modules: Iterable[ModuleLike],
                   layers: Optional[Iterable[int]] = None, *,
                   features: Optional[Mapping[ModuleLike, Tuple[int, int]]] = None) -> int:
        """Add a custom expert computed by the Python callable ``fn``; returns its index.

        ``fn(layer, module, x, out)`` is called for the rows that chose the expert at one layer and
        module: ``x`` is a read-only float32 view ``[n_rows, in_features]`` of the library's input
        rows, ``out`` a writable float32 view ``[n_rows, out_features]``, passed zeroed: ADD the
        expert's ungated delta into it (``out += ...``; the library then scales each row by its
        gate). Both views are only valid during the call: do not keep them. ``module`` is a
        :class:`Module`. The return value is ignored; an exception makes the evaluation fail, and
        ``Session.eval``/``generate`` re-raise it (chained from a :class:`PluginError`).

        ``fn`` runs on the thread that evaluates the session, holding the GIL while in Python;
        sessions on several threads may call it, interleaved by the GIL, so keep it thread-safe. The package keeps ``fn`` alive until the library says nothing uses
        the expert any more (this mixer and every session that uses it are gone).

        Args:
            modules: the projections it adapts (``"q_proj"``, :class:`Module`, ints).
            layers: the layers it adapts (``None``: every layer).
            features: override the declared ``(in_features, out_features)`` per module (default:
                the model's, from :meth:`Model.module_shape`); the library refuses a mismatch with
                ShapeError.
        """
        if not callable(fn):
            raise TypeError("add_custom: fn must be callable as fn(layer, module, x, out)")
        module_list = [Module.of(m) for m in modules]
        if not module_list:
            raise InvalidArgumentError("add_custom: modules must name at least one projection")
        declared = {Module.of(k): tuple(v) for k, v in (features or {}).items()}
        c_modules = capi.c_array(c_uint32, [int(m) for m in module_list])
        # A module the model lacks is declared 0 -> 0; the library refuses it by name.
        shapes = [declared.get(m, self._shapes.get(m, ModuleShape(0, 0))) for m in module_list]
        c_in = capi.c_array(c_uint32, [int(shape[0]) for shape in shapes])
        c_out = capi.c_array(c_uint32, [int(shape[1]) for shape in shapes])
        desc = capi.lmx_custom_expert_desc()
        desc.struct_size = ctypes.sizeof(capi.lmx_custom_expert_desc)
        desc.modules = c_modules
        desc.in_features = c_in
        desc.out_features = c_out
        desc.n_modules = len(module_list)
        c_layers = None
        if layers is not None:
            layer_list = list(layers)
            for layer in layer_list:
                if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < 2**32:
                    raise InvalidArgumentError(f"add_custom: layer {layer!r} is not a non-negative int")
            if not layer_list:
                raise InvalidArgumentError("add_custom: layers is empty (use None for every layer)")
            c_layers = capi.c_array(c_uint32, [int(layer) for layer in layer_list])
            desc.layers = c_layers
            desc.n_layers = len(layer_list)
        desc.forward = _callbacks.FORWARD
        desc.destroy = _callbacks.DESTROY
        encoded = capi.encode_text(name, "name")
        key = _callbacks.register(name, fn)
        desc.user_data = key
        index = c_size_t(0)
        try:
            with self._modifying():
                capi.lib().lmx_mixer_add_custom(self._require(), encoded, byref(desc), byref(index))
        except BaseException:
            _callbacks.unregister(key)  # the library does not call destroy when the add fails
            raise
        return index.value

    def add_untrained_lora(self, name: str, rank: int = 8, lora_alpha: float = 16.0,
                           modules: Optional[Union[ModuleLike, Iterable[ModuleLike]]] = None,
                           seed: int = 0) -> int:
        """Add a new, untrained LoRA expert ``name`` for :meth:`train` (joint regime); returns its
        index.

        The expert has rank ``rank`` and scale ``lora_alpha / rank`` on ``modules`` (names such as
        ``"q_proj"``, :class:`Module` members or ints; one or several; default q/k/v/o_proj, or
        in/x/dt/out_proj for a Mamba model) in every layer. A is drawn
        from ``seed`` as PEFT initialises it and B is zero, so it changes nothing until trained.
        Add every expert before loading a router (or before training one).

        Raises InvalidArgumentError (name taken, rank outside 1 .. 4096, ``lora_alpha`` not > 0,
        an unknown or empty module list), StateError (the mixer already has a router, or is
        training).
        """
        if modules is None:
            modules = _MAMBA_MODULES if Module.IN_PROJ in self._shapes else _ATTENTION_MODULES
        mask = _module_mask(modules)
        c_rank = _c_int(rank, "rank", _UINT32)
        c_alpha = _c_float(lora_alpha, "lora_alpha")
        c_seed = _c_int(seed, "seed", _UINT64)
        encoded = capi.encode_text(name, "name")
        index = c_size_t(0)
        with self._modifying():
            capi.lib().lmx_mixer_add_untrained_lora(self._require(), encoded, c_rank, c_alpha, mask, c_seed,
                                                    byref(index))
        return index.value

    @property
    def expert_count(self) -> int:
        """Number of experts in the mixer (``lmx_mixer_expert_count``)."""
        count = c_size_t()
        capi.lib().lmx_mixer_expert_count(self._require(), byref(count))
        return count.value

    def expert_name(self, index: int) -> str:
        """Name of expert ``index`` (NotFoundError when out of range)."""
        handle = self._require()
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise InvalidArgumentError(f"expert index {index!r} must be a non-negative int")
        lib = capi.lib()
        return capi.read_string(lambda buf, cap, needed: lib.lmx_mixer_expert_name(handle, int(index), buf, cap, needed))

    @property
    def experts(self) -> List[str]:
        """Names of the experts, in index order."""
        with self._lock:
            return [self.expert_name(i) for i in range(self.expert_count)]

    def __len__(self) -> int:
        return self.expert_count

    # -------------------------------------------------------------------------------- router
    def load_router(self, path: PathLike) -> None:
        """Load a router file (safetensors, format ``loramixer.router``), replacing any earlier
        router. Add every expert it names first. Sessions created afterwards default to learned
        routing. Raises LoraMixerIOError, FormatError, ShapeError, NotFoundError."""
        with self._modifying():
            capi.lib().lmx_mixer_load_router(self._require(), capi.existing_path(path, "load_router", folder=False))

    # -------------------------------------------------------------------------------- training
    def train(self, data: PathLike, *, eval: Optional[PathLike] = None, out: Optional[PathLike] = None,
              regime: Union[TrainRegime, str, int] = "router", routing: Union[TrainRouting, str, int] = "topk",
              router_context: bool = False, soft_steps: int = 0, top_k: Optional[int] = 0,
              temperature: Optional[float] = 0.0, alpha: float = 0.01, lambda_: float = 0.0, beta: float = 0.0,
              sensitive: Union[str, Iterable[str], None] = None, learning_rate: float = 1e-3,
              min_learning_rate: float = 0.0, warmup_steps: int = 0, weight_decay: float = 0.01,
              adam_beta1: float = 0.9, adam_beta2: float = 0.999, adam_epsilon: float = 1e-8,
              clip_norm: float = 1.0, batch_size: int = 16, epochs: int = 1, steps: Optional[int] = 0,
              seed: int = 0, checkpoint_every: int = 0, resume: bool = False, n_threads: int = 0,
              eval_max_tokens: int = 32,
              progress: Optional[_callbacks.ProgressFn] = None) -> None:
        """Train the router (``regime="router"``) or the router and every expert's LoRA A/B
        (``"joint"``) on the JSON Lines file ``data`` (``lmx_mixer_train``; main README,
        "Training"). Blocks until done; the base model is never updated.

        On success the mixer holds the trained router (and, joint, the trained experts under the
        same names): sessions created afterwards use them, sessions created before keep what they
        had. On failure or cancellation the mixer is unchanged. Other threads may create sessions
        meanwhile (they see the old router and experts); changing the mixer (adding experts,
        routers, plugins, closing it, a second ``train``) raises StateError until it returns.

        Args:
            data: JSON Lines: ``{"text": ...}`` (byte-level models only), ``{"tokens": [...]}``,
                or ``{"prompt_tokens": [...], "completion_tokens": [...]}`` (loss on the
                completion), each with an optional ``"task"`` (an expert name, for label routing).
            eval: examples evaluated per task at the end (cross-entropy and exact match), or None.
            out: folder for ``router.safetensors``, the experts as PEFT folders
                (``experts/<name>``, joint regime), ``report.json`` and
                ``checkpoint/state.safetensors``, each written atomically; None writes nothing.
            regime: ``"router"`` (experts frozen) or ``"joint"``; or a :class:`TrainRegime`.
            routing: ``"topk"``, ``"soft"`` or ``"label"`` (one-hot by the example's task; needs
                no router); or a :class:`TrainRouting`.
            router_context: a new router reads the running context mean too (else the token).
            soft_steps: with ``"topk"``, route softly for the first N steps.
            top_k, temperature: K of top-K (and of the load report) and the router temperature;
                0 or None = the router's (2 and 1 for a new one).
            alpha: load-balance weight of L_RSL. lambda_: its entropy weight (signed; C
                ``lambda``). beta: L_preserve weight (joint) over the ``sensitive`` experts (a
                comma-separated string or a list of names).
            learning_rate, min_learning_rate, warmup_steps: peak, end of the cosine, linear warmup.
            weight_decay, adam_beta1, adam_beta2, adam_epsilon: AdamW (decay on matrices only).
            clip_norm: global gradient-norm clip (0 = none).
            batch_size, epochs, steps: examples per step; passes over the data; total steps
                (0 or None = epochs x batches).
            seed: data order and new parameters; equal seeds give bit-identical runs.
            checkpoint_every: checkpoint every N steps into ``out`` (0 = at the end and on cancel).
            resume: continue from ``out``'s checkpoint if there is one (a checkpoint of another
                run is refused with StateError); the result equals an uninterrupted run.
            n_threads: 0 = the cores available.
            eval_max_tokens: most tokens generated per evaluation example.
            progress: called after every step with a :class:`TrainProgress`, on this thread;
                return None or a truthy value to go on, False to cancel (from the last step on,
                the run is complete and returning False changes nothing).

        Defaults are ``lmx_train_params_default()``'s.

        Cancelling, by ``progress`` returning False, raises :class:`CancelledError` (the
        checkpoint is saved in ``out``; ``resume=True`` continues). An exception raised in
        ``progress`` cancels the same way and is re-raised here, chained from the CancelledError
        (on the last step the run completes first, then it is re-raised). Ctrl-C during the call
        (main thread, default SIGINT handler) also cancels at the end of the step and raises
        KeyboardInterrupt, chained from the CancelledError.

        Raises InvalidArgumentError (a parameter, a token id outside the vocabulary, an example's
        task naming no expert), LoraMixerIOError (a missing file), FormatError (a malformed line:
        the message names file:line), NotFoundError (an unknown sensitive expert), StateError (no
        experts, custom experts, a checkpoint of another run, a non-finite loss; or, from Python,
        a mixer already training).
        """
        lib = capi.lib()
        params = lib.lmx_train_params_default()
        params.regime = int(TrainRegime.of(regime))
        params.routing = int(TrainRouting.of(routing))
        params.router_context = 1 if router_context else 0
        params.soft_steps = _c_int(soft_steps, "soft_steps", _INT32)
        params.top_k = 0 if top_k is None else _c_int(top_k, "top_k", _INT32)
        params.temperature = 0.0 if temperature is None else _c_float(temperature, "temperature")
        params.alpha = _c_float(alpha, "alpha")
        setattr(params, "lambda", _c_float(lambda_, "lambda_"))
        params.beta = _c_float(beta, "beta")
        params.sensitive = _sensitive(sensitive)
        params.learning_rate = _c_float(learning_rate, "learning_rate")
        params.min_learning_rate = _c_float(min_learning_rate, "min_learning_rate")
        params.warmup_steps = _c_int(warmup_steps, "warmup_steps", _INT32)
        params.weight_decay = _c_float(weight_decay, "weight_decay")
        params.adam_beta1 = _c_float(adam_beta1, "adam_beta1")
        params.adam_beta2 = _c_float(adam_beta2, "adam_beta2")
        params.adam_epsilon = _c_float(adam_epsilon, "adam_epsilon")
        params.clip_norm = _c_float(clip_norm, "clip_norm")
        params.batch_size = _c_int(batch_size, "batch_size", _INT32)
        params.epochs = _c_int(epochs, "epochs", _INT32)
        params.steps = 0 if steps is None else _c_int(steps, "steps", _INT32)
        params.seed = _c_int(seed, "seed", _UINT64)
        params.checkpoint_every = _c_int(checkpoint_every, "checkpoint_every", _INT32)
        params.resume = 1 if resume else 0
        params.n_threads = _c_int(n_threads, "n_threads", _INT32)
        params.eval_max_tokens = _c_int(eval_max_tokens, "eval_max_tokens", _INT32)
        data_path = capi.existing_path(data, "train data", folder=False)
        eval_path = None if eval is None else capi.existing_path(eval, "train eval", folder=False)
        out_dir = None if out is None else capi.encode_path(out, "out")
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable as progress(TrainProgress) -> False to cancel")
        # Passed even without `progress`: it is where Ctrl-C gets to cancel the run.
        callback = _callbacks.TrainCallback(progress)
        with self._lock:
            handle = self._require()
            if self._training:
                raise StateError("this Mixer is already training (one train() at a time)")
            self._training = True
        failure: Optional[LoraMixerError] = None
        try:
            with callback.sigint_cancels():
                try:
                    lib.lmx_mixer_train(handle, data_path, eval_path, out_dir, byref(params), callback.c_function, None)
                except LoraMixerError as error:
                    failure = error
        finally:
            with self._lock:
                self._training = False
        if callback.error is not None:
            if failure is None:  # raised on the last step: the run completed all the same
                raise callback.error
            raise callback.error.with_traceback(callback.error.__traceback__) from failure
        if callback.interrupted:
            raise (KeyboardInterrupt(failure.message) if failure is not None else KeyboardInterrupt()) from failure
        if failure is not None:
            raise failure

    # -------------------------------------------------------------------------------- plugins
    def load_plugin(self, path: PathLike, config: Optional[str] = None, *,
                    allowed_sha256: Optional[Sequence[str]] = None, allow_writable: bool = False) -> PluginInfo:
        """Load the plugin library at ``path`` and commit what its init registers; returns its
        :class:`PluginInfo`.

        Args:
            config: the plugin's own configuration string (``None``: "").
            allowed_sha256: if given, the file's SHA-256 (hex) must be one of these.
            allow_writable: accept a plugin file or folder writable by group or others (refused
                by default, since another user could swap it).

        Raises LoraMixerIOError (missing file), PluginError (not a shared library, no entry point,
        init failed, policy refusal), ABIError (another major ABI version), and the errors of the
        registrations (ShapeError, InvalidArgumentError, ...). On failure the mixer is unchanged.
        """
        lib = capi.lib()
        params = lib.lmx_plugin_params_default()
        keep: List[Any] = []
        if config is not None:
            params.config = capi.encode_text(config, "config")
        if allowed_sha256 is not None:
            if isinstance(allowed_sha256, (str, bytes)):
                allowed_sha256 = [allowed_sha256]  # type: ignore[list-item]
            hashes = [capi.encode_text(h, "allowed_sha256 entry") for h in allowed_sha256]
            array = (c_char_p * max(len(hashes), 1))(*hashes)
            keep.append(array)
            params.allowed_sha256 = ctypes.cast(array, ctypes.POINTER(c_char_p))
            params.n_allowed_sha256 = len(hashes)
        params.allow_writable = 1 if allow_writable else 0
        index = c_size_t()
        with self._modifying():
            lib.lmx_mixer_load_plugin(self._require(), capi.encode_path(path), byref(params), byref(index))
            return self._plugin_info(index.value)

    def _plugin_info(self, index: int) -> PluginInfo:
        handle = self._require()
        lib = capi.lib()

        def field(which: int) -> str:
            return capi.read_string(lambda buf, cap, needed: lib.lmx_mixer_plugin_string(handle, index, which, buf, cap, needed))

        experts = field(capi.LMX_PLUGIN_EXPERTS)
        return PluginInfo(index=index, id=field(capi.LMX_PLUGIN_ID), version=field(capi.LMX_PLUGIN_VERSION),
                          description=field(capi.LMX_PLUGIN_DESCRIPTION), license=field(capi.LMX_PLUGIN_LICENSE),
                          path=field(capi.LMX_PLUGIN_PATH),
                          experts=tuple(experts.split("\n")) if experts else ())

    @property
    def plugin_count(self) -> int:
        """Number of plugins loaded into this mixer."""
        count = c_size_t()
        capi.lib().lmx_mixer_plugin_count(self._require(), byref(count))
        return count.value

    @property
    def plugins(self) -> List[PluginInfo]:
        """The loaded plugins, in load order."""
        with self._lock:
            return [self._plugin_info(i) for i in range(self.plugin_count)]

    def plugin_string(self, index: int, field: int) -> str:
        """One raw ``lmx_mixer_plugin_string`` field (``capi.LMX_PLUGIN_*``) of plugin ``index``."""
        handle = self._require()
        lib = capi.lib()
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise InvalidArgumentError(f"plugin index {index!r} must be a non-negative int")
        if isinstance(field, bool) or not isinstance(field, (int, np.integer)) or not 0 <= field < 2**32:
            raise InvalidArgumentError(f"plugin field {field!r} must be a non-negative int")
        return capi.read_string(lambda buf, cap, needed: lib.lmx_mixer_plugin_string(handle, int(index), int(field), buf, cap, needed))

    def unload_plugin(self, plugin_id: Union[str, PluginInfo]) -> None:
        """Unload a plugin by id (or :class:`PluginInfo`): its experts (and a router routing to
        them) leave the mixer; sessions created earlier keep using them. NotFoundError if no
        plugin has that id."""
        if isinstance(plugin_id, PluginInfo):
            plugin_id = plugin_id.id
        with self._modifying():
            capi.lib().lmx_mixer_unload_plugin(self._require(), capi.encode_text(plugin_id, "plugin id"))

    # -------------------------------------------------------------------------------- sessions
    def session(self, n_ctx: int = 0, trace: bool = True, n_threads: int = 0) -> "Session":
        """A new :class:`Session` over this mixer (see :class:`Session`); ``n_threads`` 0 = all cores."""
        from .session import Session
        return Session(self, n_ctx=n_ctx, trace=trace, n_threads=n_threads)

    def __repr__(self) -> str:
        if self.closed:
            return super().__repr__()
        return f"<loramixer.Mixer experts={self.experts!r}>"

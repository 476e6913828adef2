"""Enumerations, result records and dtype helpers of the loramixer package."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple, Tuple, Union

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError

__all__ = [
    "Module",
    "Routing",
    "Logits",
    "LoadMode",
    "DType",
    "TrainRegime",
    "TrainRouting",
    "ModelInfo",
    "ModuleShape",
    "PluginInfo",
    "Trace",
    "TrainProgress",
    "to_bfloat16",
    "from_bfloat16",
]


class _Named(enum.IntEnum):
    """An IntEnum that also accepts its lower-case name (``"q_proj"``, ``"learned"``)."""

    @classmethod
    def of(cls, value: Union["_Named", int, str]) -> "_Named":
        """The member for an enum member, its int value, or its (case-insensitive) name."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            key = value.strip().upper()
            if key in cls.__members__:
                return cls.__members__[key]
            names = ", ".join(repr(name.lower()) for name in cls.__members__)
            raise InvalidArgumentError(f"{value!r} is not a {cls.__name__} (one of {names})")
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            try:
                return cls(int(value))
            except ValueError:
                pass
            raise InvalidArgumentError(f"{value!r} is not a {cls.__name__} value "
                                       f"({min(cls).value}..{max(cls).value})")
        raise TypeError(f"{cls.__name__} expected (a member, int or name), got {type(value).__name__}")

    def __str__(self) -> str:
        return self.name.lower()


class Module(_Named):
    """Projection modules experts can adapt (``LMX_MODULE_*``)."""

    Q_PROJ = 0
    K_PROJ = 1
    V_PROJ = 2
    O_PROJ = 3
    GATE_PROJ = 4
    UP_PROJ = 5
    DOWN_PROJ = 6
    IN_PROJ = 7
    X_PROJ = 8
    DT_PROJ = 9
    OUT_PROJ = 10


class Routing(_Named):
    """Routing modes (``LMX_ROUTING_*``); see the main README, "Routing, as computed"."""

    NONE = 0
    LEARNED = 1
    SOFT = 2
    FIXED = 3
    UNIFORM = 4


class Logits(_Named):
    """Which logits :meth:`Session.eval` returns (``LMX_LOGITS_*``)."""

    NONE = 0
    LAST = 1
    ALL = 2


class LoadMode(_Named):
    """How model weights get into memory (``LMX_LOAD_*``)."""

    MMAP = 0
    COPY = 1


class DType(_Named):
    """Element types of LoRA tensors handed over from memory (``LMX_DTYPE_*``)."""

    F32 = 0
    F16 = 1
    BF16 = 2


class TrainRegime(_Named):
    """What :meth:`Mixer.train` trains (``LMX_TRAIN_*``); the base model never is."""

    ROUTER = 0  #: the router; the experts are frozen
    JOINT = 1   #: the router and every expert's LoRA A/B


class TrainRouting(_Named):
    """How gates are formed while training (``LMX_TRAIN_ROUTING_*``)."""

    TOPK = 0   #: renormalised top-K of the router's probabilities (gradients through the chosen ones)
    SOFT = 1   #: every expert, gate = router probability
    LABEL = 2  #: one-hot by the example's "task" (an expert name); needs no router


@dataclass(frozen=True)
class ModelInfo:
    """A model's dimensions (``lmx_model_info``)."""

    n_vocab: int
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    max_positions: int
    architecture: str
    #: Mamba only (0 for attention models): SSM state size, convolution width, time-step rank.
    d_state: int = 0
    d_conv: int = 0
    dt_rank: int = 0


class ModuleShape(NamedTuple):
    """Input and output features of one projection: LoRA A is [rank, in], B is [out, rank]."""

    in_features: int
    out_features: int


@dataclass(frozen=True)
class PluginInfo:
    """A plugin loaded into a mixer (``lmx_mixer_plugin_string``)."""

    index: int
    id: str
    version: str
    description: str
    license: str
    path: str
    experts: Tuple[str, ...]


class Trace(NamedTuple):
    """A session's routing trace: per processed token and layer, the experts applied, largest
    gate first, padded with id -1 and gate 0.0. ``ids``/``gates`` are [T, L, W] (W = the session's
    expert count), ``tokens`` is [T]."""

    ids: np.ndarray
    gates: np.ndarray
    tokens: np.ndarray


@dataclass(frozen=True, eq=False)
class TrainProgress:
    """What :meth:`Mixer.train`'s ``progress`` callable sees after every step
    (``lmx_train_progress``). The arrays are read-only copies, so the object may be kept.

    Attributes:
        step: steps done, counting from 1 (a resumed run continues the count).
        total_steps: steps of the whole run.
        epoch: the pass over the data this step belongs to, counting from 0.
        loss: the step's total loss (cross_entropy + balance + entropy_term + preserve).
        cross_entropy: mean cross-entropy over the batch's target tokens.
        balance: the load-balance term of L_RSL (``alpha``-weighted).
        entropy_term: the entropy term of L_RSL (``-lambda`` x mean router entropy).
        preserve: L_preserve (``beta``-weighted; joint regime).
        learning_rate: the learning rate this step used (float32 in the library).
        grad_norm: global gradient norm before clipping.
        tokens_per_s, elapsed_s, eta_s: throughput, time since the call began, time left.
        expert_load: float32 ``[n_experts]``: each expert's share of the step's top-K
            assignments (mean over layers; sums to 1), in the mixer's expert order. Empty when
            the run has no router (label routing without one).
        layer_entropy: float32 ``[n_layers]``: per layer, the router's mean token entropy (nats);
            empty when the run has no router.
    """

    step: int
    total_steps: int
    epoch: int
    loss: float
    cross_entropy: float
    balance: float
    entropy_term: float
    preserve: float
    learning_rate: float
    grad_norm: float
    tokens_per_s: float
    elapsed_s: float
    eta_s: float
    expert_load: np.ndarray
    layer_entropy: np.ndarray


def to_bfloat16(values: "npt.ArrayLike") -> np.ndarray:
    """float32 values -> bfloat16 bit patterns (uint16), rounded to nearest even; NaN stays NaN.

    Use these uint16 arrays with ``Mixer.add_lora(..., dtype="bfloat16")`` (no ml_dtypes needed).
    """
    f32 = np.ascontiguousarray(values, dtype=np.float32)
    bits = f32.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(f32)
    if nan.any():
        out[nan] = ((bits[nan] >> 16) | 0x0040).astype(np.uint16)  # keep sign, force a quiet NaN
    return out


def from_bfloat16(bits: "npt.ArrayLike") -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32 (exact)."""
    u16 = np.ascontiguousarray(bits, dtype=np.uint16)
    return (u16.astype(np.uint32) << 16).view(np.float32)

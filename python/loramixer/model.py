"""Model: a Hugging Face llama-family model loaded by the library."""

from __future__ import annotations

import ctypes
import os
from ctypes import byref, c_uint32, c_void_p
from typing import TYPE_CHECKING, Dict, Union

from . import capi
from ._handle import OwnedHandle
from .types import LoadMode, ModelInfo, Module, ModuleShape

if TYPE_CHECKING:
    from .mixer import Mixer
    from .tokenizer import Tokenizer

__all__ = ["Model"]

PathLike = Union[str, "os.PathLike[str]"]


class Model(OwnedHandle):
    """A loaded base model (``lmx_model``): immutable, shareable by any number of threads.

    >>> with Model("Tests/Fixtures/llama_f32") as model:
    ...     model.info.n_vocab
    128

    Args:
        path: a Hugging Face model folder (``config.json`` + ``model.safetensors`` or shards).
        load_mode: ``"mmap"`` (default: weights mapped in place, lowest memory) or ``"copy"``
            (read into ordinary memory; immune to page-out of mapped files); a :class:`LoadMode`
            works too.

    Raises:
        LoraMixerIOError: a file is missing. FormatError: a corrupt file or unknown architecture.
        ShapeError: a tensor of the wrong shape. InvalidArgumentError: a bad argument.
    """

    _kind = "Model"

    def __init__(self, path: PathLike, load_mode: Union[LoadMode, str, int] = LoadMode.MMAP) -> None:
        super().__init__()
        lib = capi.lib()
        mode = LoadMode.of(load_mode)
        params = lib.lmx_model_params_default()
        params.load_mode = int(mode)
        out = c_void_p()
        self.path: str = os.fspath(path)
        self.load_mode: LoadMode = mode  # type: ignore[assignment]
        lib.lmx_model_load(capi.existing_path(path, "Model", folder=True), byref(params), byref(out))
        self._own(out.value, lib.lmx_model_free)
        info = capi.lmx_model_info()
        info.struct_size = ctypes.sizeof(capi.lmx_model_info)
        lib.lmx_model_get_info(out.value, byref(info))
        self._info = ModelInfo(
            n_vocab=info.n_vocab, n_layers=info.n_layers, d_model=info.d_model, n_heads=info.n_heads,
            n_kv_heads=info.n_kv_heads, head_dim=info.head_dim, d_ff=info.d_ff,
            max_positions=info.max_positions, architecture=info.architecture.decode("utf-8", "replace"),
            d_state=info.d_state, d_conv=info.d_conv, dt_rank=info.dt_rank)
        mamba = info.d_state > 0
        self._shapes: Dict[Module, ModuleShape] = {
            module: self._query_shape(module) for module in Module if (module >= Module.IN_PROJ) == mamba}

    def _query_shape(self, module: Module) -> ModuleShape:
        fin, fout = c_uint32(), c_uint32()
        capi.lib().lmx_model_module_shape(self._require(), int(module), byref(fin), byref(fout))
        return ModuleShape(fin.value, fout.value)

    @property
    def info(self) -> ModelInfo:
        """The model's dimensions (``lmx_model_get_info``)."""
        self._require()
        return self._info

    def module_shape(self, module: Union[Module, str, int]) -> ModuleShape:
        """``(in_features, out_features)`` of projection ``module`` (``"q_proj"``, ``Module.Q_PROJ``
        or its int) in this model (``lmx_model_module_shape``): a LoRA A for it is
        [rank, in_features] and B is [out_features, rank]."""
        return self._query_shape(Module.of(module))  # type: ignore[arg-type]

    def module_shapes(self) -> Dict[Module, ModuleShape]:
        """The shape of every projection this model has (q_proj .. down_proj for the llama family,
        in_proj, x_proj, dt_proj, out_proj for Mamba); cached at load, still available after
        ``close()`` to the mixers made from this model."""
        return dict(self._shapes)

    def tokenizer(self) -> "Tokenizer":
        """The model folder's own :class:`Tokenizer` (``lmx_model_tokenizer``): a new handle each
        call to one tokenizer read once and shared. Raises NotFoundError when the folder has no
        ``tokenizer.json`` (load one from elsewhere with ``Tokenizer(path)``), ShapeError when its
        ids do not fit the model's vocabulary."""
        from .tokenizer import Tokenizer
        return Tokenizer.from_model(self)

    def mixer(self) -> "Mixer":
        """A new, empty :class:`Mixer` over this model."""
        from .mixer import Mixer
        return Mixer(self)

    def __repr__(self) -> str:
        if self.closed:
            return super().__repr__()
        return f"<loramixer.Model {self._info.architecture} {self.path!r}>"


"""Converter registry: model type → function that emits Graph IR.

A converter is ``convert(model, x, ctx) -> dict`` mapping output kinds
(``"label"``, ``"probabilities"``, ``"decision"``, ``"output"``,
``"transform"``, ...) to value names it added through ``ctx.builder``. Keys
are ``"<top-level package>.<class name>"`` (``"sklearn.Ridge"``), so lookup
needs no framework import and subclasses find their parent's converter
through the MRO. Converter modules import their framework lazily, inside the
converter, and register themselves at their bottom.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..format.errors import UnsupportedModelError
from ..format.graph import GraphBuilder

__all__ = [
    "ExportContext",
    "Converter",
    "register_converter",
    "find_converter",
    "supported_models",
    "model_key",
    "register_file_loader",
    "load_model_file",
]

Converter = Callable[[Any, str, "ExportContext"], dict]
_CONVERTERS: dict[str, Converter] = {}
_FILE_LOADERS: dict[str, Callable[[str], Any]] = {}
_loaded = False


@dataclass
class ExportContext:
    """State shared by the converters of one export.

    ``classes`` is set by the converter of the final classifier; ``options``
    holds export options (e.g. ``training_data``).
    """

    builder: GraphBuilder
    options: dict = field(default_factory=dict)
    classes: np.ndarray | None = None

    def convert(self, model: Any, x: str) -> dict:
        """Convert a nested model (a pipeline step, a base estimator) applied to value ``x``."""
        return find_converter(model)(model, x, self)

    def convert_member(self, model: Any, x: str) -> dict:
        """:meth:`convert` for an ensemble member: its ``classes`` do not replace the ensemble's."""
        saved = self.classes
        try:
            return self.convert(model, x)
        finally:
            self.classes = saved


def model_key(model_or_type: Any) -> str:
    cls = model_or_type if isinstance(model_or_type, type) else type(model_or_type)
    return f"{cls.__module__.split('.')[0]}.{cls.__qualname__}"


def register_converter(key: str, converter: Converter, *, replace: bool = False) -> Converter:
    """Register ``converter`` for models whose :func:`model_key` is ``key``."""
    if converter is None or not callable(converter):
        raise TypeError(f"converter for {key!r} must be callable, got {converter!r}")
    if key in _CONVERTERS and not replace:
        raise ValueError(f"a converter for {key!r} is already registered; pass replace=True to override it")
    _CONVERTERS[key] = converter
    return converter


def supported_models() -> list[str]:
    """Keys of every registered converter, sorted."""
    _load()
    return sorted(_CONVERTERS)


def find_converter(model: Any) -> Converter:
    """The converter for ``model`` (or one of its base classes)."""
    _load()
    for cls in type(model).__mro__:
        conv = _CONVERTERS.get(model_key(cls))
        if conv is not None:
            return conv
    raise UnsupportedModelError(
        f"{model_key(model)} is not supported ({len(_CONVERTERS)} converters registered). "
        f"Supported: {', '.join(sorted(_CONVERTERS))}"
    )


def register_file_loader(suffix: str, loader: Callable[[str], Any]) -> None:
    """Register ``loader(path) -> model`` for saved model files ending in ``suffix`` (``".ubj"``).

    Loaders read the framework's own non-pickle file format.
    """
    suffix = suffix.lower()
    if suffix in _FILE_LOADERS:
        raise ValueError(f"a file loader for {suffix!r} is already registered")
    _FILE_LOADERS[suffix] = loader


def load_model_file(path: str) -> Any:
    """Load a saved native model file (not a pickle) with the loader registered for its suffix."""
    _load()
    lower = path.lower()
    for suffix in sorted(_FILE_LOADERS, key=len, reverse=True):
        if lower.endswith(suffix):
            if not os.path.isfile(path):  # before the framework's loader, whose errors are C++ stack traces
                raise FileNotFoundError(f"cannot export {path!r}: no such file; check the path of the saved model")
            return _FILE_LOADERS[suffix](path)
    raise UnsupportedModelError(
        f"cannot export {path!r}: unknown model file type; supported suffixes: {sorted(_FILE_LOADERS) or 'none'}"
        " (pickled models are read only by the mle-export command, on request)"
    )


def _load() -> None:
    """Import every converter module of this package; each registers itself on import."""
    global _loaded
    if not _loaded:
        _loaded = True
        for info in pkgutil.iter_modules([os.path.dirname(__file__)]):
            if not info.name.startswith("_") and info.name != "registry":
                importlib.import_module(f"{__package__}.{info.name}")

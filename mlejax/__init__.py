"""mlejax: export trained models to ``.mle`` files and run them as jitted JAX/XLA programs.

Example:
    >>> import mlejax as mle
    >>> report = mle.export_model(model, "model.mle", sample_input=X[:256])  # doctest: +SKIP
    >>> m = mle.load_model("model.mle")                                     # doctest: +SKIP
    >>> m.predict(X)                                                        # doctest: +SKIP
"""

__version__ = "0.1.0"

import os as _os

# A source checkout keeps the layers beside this package (pyproject maps format/, lowering/ and
# exporters/ to mlejax.format, mlejax.lowering and mlejax.exporters on install): importing mlejax
# from the checkout's root, as a subprocess started there does, finds them there too.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "format")) and _os.path.isfile(_os.path.join(_checkout, "format", "SPEC.md")):
    __path__.append(_checkout)

from .bench import BenchmarkReport, benchmark
from .format.errors import InputError, MLEError, MLEFormatError, MLESecurityError, UnsupportedModelError

#: public name -> submodule that defines it, imported on first use: ``import mlejax`` imports
#: neither JAX nor an exporter (``python -X importtime -c "import mlejax"``); ``load_model`` brings JAX in.
_LAZY = {
    "export_model": "export",
    "ExportReport": "export",
    "register_converter": "exporters",
    "supported_models": "exporters",
    "inspect_model": "inspect",
    "Model": "model",
    "load_model": "model",
    "ModelCache": "model_cache",
    "SecurityUtils": "security",
    "CompressionUtils": "compression",
    "compile": "aot",  # StableHLO / IREE artifacts (mle-compile); not in __all__: a star import must not shadow compile()
}

__all__ = [
    "__version__",
    "export_model",
    "ExportReport",
    "benchmark",
    "BenchmarkReport",
    "load_model",
    "Model",
    "ModelCache",
    "inspect_model",
    "supported_models",
    "register_converter",
    "SecurityUtils",
    "CompressionUtils",
    "MLEError",
    "MLEFormatError",
    "MLESecurityError",
    "UnsupportedModelError",
    "InputError",
    "score",
]


def __getattr__(name: str):
    if name in _LAZY:
        module = _submodule(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    # Batch scoring needs pyarrow and tqdm: imported on first use of ``mlejax.score``, not with mlejax.
    if name == "score":
        try:
            from .batch import score
        except ImportError as exc:
            raise ImportError(f"mlejax.score needs pyarrow and tqdm ({exc}); pip install 'mlejax[batch]'") from exc
        return score
    if name in ("registry", "model_cache", "export", "exporters", "inspect", "model", "security", "compression"):
        return _submodule(name)  # SQLite and the registry are imported on first use of ``mlejax.registry``
    raise AttributeError(f"module 'mlejax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _submodule(name: str):
    """The submodule ``mlejax.<name>``, imported now (by the import statement, not ``importlib``)."""
    __import__(f"{__name__}.{name}")
    return globals()[name]

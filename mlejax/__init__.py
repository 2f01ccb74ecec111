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
from .compression import CompressionUtils
from .export import ExportReport, export_model
from .exporters import register_converter, supported_models
from .format.errors import InputError, MLEError, MLEFormatError, MLESecurityError, UnsupportedModelError
from .inspect import inspect_model
from .model import Model, load_model
from .model_cache import ModelCache
from .security import SecurityUtils

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
    # Batch scoring needs pyarrow and tqdm: imported on first use of ``mlejax.score``, not with mlejax.
    if name == "score":
        try:
            from .batch import score
        except ImportError as exc:
            raise ImportError(f"mlejax.score needs pyarrow and tqdm ({exc}); pip install 'mlejax[batch]'") from exc
        return score
    if name == "registry":  # SQLite and the registry are imported on first use of ``mlejax.registry``
        import importlib

        return importlib.import_module(".registry", __name__)
    raise AttributeError(f"module 'mlejax' has no attribute {name!r}")

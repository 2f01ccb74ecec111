"""mlejax: export trained models to ``.mle`` files and run them as jitted JAX/XLA programs.

Example:
    >>> import mlejax as mle
    >>> report = mle.export_model(model, "model.mle", sample_input=X[:256])  # doctest: +SKIP
    >>> m = mle.load_model("model.mle")                                     # doctest: +SKIP
    >>> m.predict(X)                                                        # doctest: +SKIP
"""

__version__ = "0.1.0"

from .compression import CompressionUtils
from .export import ExportReport, export_model
from .exporters import register_converter, supported_models
from .format.errors import InputError, MLEError, MLEFormatError, MLESecurityError, UnsupportedModelError
from .inspect import inspect_model
from .model import Model, load_model
from .security import SecurityUtils

__all__ = [
    "__version__",
    "export_model",
    "ExportReport",
    "load_model",
    "Model",
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
]

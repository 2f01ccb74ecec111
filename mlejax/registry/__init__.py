"""The model registry: named, numbered, aliased ``.mle`` versions with lineage and schema checks.

Example:
    >>> from mlejax.registry import ModelRegistry                      # doctest: +SKIP
    >>> reg = ModelRegistry()                                           # doctest: +SKIP
    >>> mv = reg.register("churn", "model.mle", tags={"team": "risk"})  # doctest: +SKIP
    >>> reg.set_alias("churn", "prod", mv.version)                      # doctest: +SKIP
    >>> m = mlejax.load_model("registry://churn@prod")                  # doctest: +SKIP
"""

from .errors import IncompatibleSchemaError, RegistryError
from .registry import ModelRegistry, ModelVersion, default_registry_uri, load_uri, parse_uri

__all__ = ["ModelRegistry", "ModelVersion", "RegistryError", "IncompatibleSchemaError", "default_registry_uri", "load_uri", "parse_uri"]

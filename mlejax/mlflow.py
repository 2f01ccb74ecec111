"""MLflow flavor for ``.mle`` models: ``save_model``, ``log_model``, ``load_model`` and the pyfunc loader.

Example:
    >>> import mlflow, mlejax.mlflow                                            # doctest: +SKIP
    >>> with mlflow.start_run():                                                # doctest: +SKIP
    ...     mlejax.mlflow.log_model("model.mle", name="model", registered_model_name="churn")
    >>> mlflow.pyfunc.load_model("models:/churn@champion").predict(df)          # doctest: +SKIP

The logged directory holds the ``.mle`` file (``model.mle``) and an
environment that needs mlejax only: no training framework, no pickle. So
``mlflow.pyfunc.load_model``, ``mlflow.models.predict``, ``spark_udf`` and
``mlflow models serve`` run the model as jitted JAX programs. MLflow is
imported only when these functions are called (``pip install 'mlejax[mlflow]'``).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from . import __version__
from .format.errors import MLESecurityError

__all__ = ["FLAVOR_NAME", "save_model", "log_model", "load_model", "get_default_pip_requirements"]

FLAVOR_NAME = "mlejax"
_DATA = "model.mle"


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise ImportError(f"mlejax.mlflow needs MLflow ({exc}); pip install 'mlejax[mlflow]'") from exc
    return mlflow


def get_default_pip_requirements() -> list[str]:
    """What a logged model needs to run: mlejax alone (it brings jax, numpy, msgpack, zstandard, cryptography)."""
    return [f"mlejax=={__version__}"]


def _write_mle(model: Any, target: str, sample_input: Any) -> None:
    """Put ``model`` (a ``.mle`` path, a registry ``ModelVersion``, or a trained model) at ``target``."""
    source = getattr(model, "path", model) if hasattr(model, "sha256") else model
    if isinstance(source, (str, os.PathLike)):
        shutil.copyfile(source, target)
        return
    if type(model).__name__ == "Model" and type(model).__module__ == "mlejax.model":
        raise TypeError("save_model takes the .mle path (or a trained model, or a registry ModelVersion), not a loaded mlejax.Model")
    from .export import export_model

    export_model(model, target, sample_input=sample_input)


def save_model(
    model: Any,
    path: str | os.PathLike,
    *,
    mlflow_model: Any = None,
    signature: Any = None,
    input_example: Any = None,
    sample_input: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict | None = None,
) -> None:
    """Save ``model`` as an MLflow model directory at ``path`` (which must not exist).

    ``model``: a ``.mle`` path, a registry ``ModelVersion``, or a trained
    model (exported here, checked on ``sample_input``). ``signature`` is
    inferred from ``input_example`` when not given, with a ``method``
    parameter: ``pyfunc_model.predict(X, params={"method": "predict_proba"})``.
    """
    mlflow = _mlflow()
    from mlflow.models import Model, infer_signature
    from mlflow.models.utils import _save_example
    from mlflow.utils.environment import (
        _CONDA_ENV_FILE_NAME, _CONSTRAINTS_FILE_NAME, _PYTHON_ENV_FILE_NAME, _REQUIREMENTS_FILE_NAME, _PythonEnv,
        _process_pip_requirements,
    )
    from mlflow.utils.model_utils import _validate_and_prepare_target_save_path

    from .model import load_model as load_mle
    from .registry.schema import describe
    from .registry.store import sha256_file

    path = os.path.abspath(os.fspath(path))
    _validate_and_prepare_target_save_path(path)
    data = os.path.join(path, _DATA)
    _write_mle(model, data, sample_input)
    loaded = load_mle(data)
    mlflow_model = mlflow_model or Model()
    example = _save_example(mlflow_model, input_example, path) if input_example is not None else None
    if signature is None and example is not None:
        method = "predict" if "predict" in loaded.methods else sorted(loaded.methods)[0]
        signature = infer_signature(input_example, getattr(loaded, method)(input_example), params={"method": method})
    if signature:
        mlflow_model.signature = signature
    if metadata is not None:
        mlflow_model.metadata = metadata
    mlflow.pyfunc.add_to_model(mlflow_model, loader_module=__name__, data=_DATA, conda_env=_CONDA_ENV_FILE_NAME,
                               python_env=_PYTHON_ENV_FILE_NAME)
    info = describe(loaded._file)
    mlflow_model.add_flavor(FLAVOR_NAME, data=_DATA, mlejax_version=__version__, sha256=sha256_file(data),
                            estimator=info["estimator"], methods=info["methods"])
    mlflow_model.save(os.path.join(path, "MLmodel"))
    conda_env, requirements, constraints = _process_pip_requirements(get_default_pip_requirements(), pip_requirements, extra_pip_requirements)
    import yaml  # an MLflow dependency

    with open(os.path.join(path, _CONDA_ENV_FILE_NAME), "w") as fh:
        yaml.safe_dump(conda_env, stream=fh, default_flow_style=False)
    if constraints:
        with open(os.path.join(path, _CONSTRAINTS_FILE_NAME), "w") as fh:
            fh.write("\n".join(constraints))
    with open(os.path.join(path, _REQUIREMENTS_FILE_NAME), "w") as fh:
        fh.write("\n".join(requirements))
    _PythonEnv.current().to_yaml(os.path.join(path, _PYTHON_ENV_FILE_NAME))


def log_model(model: Any, name: str | None = None, *, registered_model_name: str | None = None, **kwargs: Any) -> Any:
    """Log ``model`` (as :func:`save_model`) to the active run; register it as ``registered_model_name`` if given.

    Returns MLflow's ``ModelInfo``. ``kwargs`` go to :func:`save_model` and MLflow's ``Model.log``.
    """
    mlflow = _mlflow()
    return mlflow.models.Model.log(artifact_path=None, name=name, flavor=sys.modules[__name__], model=model,
                                   registered_model_name=registered_model_name, **kwargs)


def load_model(model_uri: str, dst_path: str | None = None, **load_options: Any) -> Any:
    """The :class:`mlejax.Model` of an MLflow model (``runs:/…``, ``models:/NAME@ALIAS``, a path, …).

    The file's sha256 must match the one recorded at save (``MLESecurityError`` otherwise).
    ``load_options`` go to :func:`mlejax.load_model`.
    """
    mlflow = _mlflow()
    from mlflow.models import Model

    from .model import load_model as load_mle
    from .registry.store import sha256_file

    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dst_path)
    flavor = Model.load(os.path.join(local, "MLmodel")).flavors.get(FLAVOR_NAME)
    if flavor is None:
        raise ValueError(f"{model_uri} has no {FLAVOR_NAME!r} flavor; it was not saved with mlejax.mlflow")
    data = os.path.join(local, flavor["data"])
    found = sha256_file(data)
    if found != flavor["sha256"]:
        raise MLESecurityError(f"{model_uri}: {flavor['data']} has sha256 {found}, the MLmodel recorded {flavor['sha256']}; "
                               "it was modified after logging. Log the model again from a trusted copy")
    return load_mle(data, **load_options)


class _PyFuncModel:
    """What ``mlflow.pyfunc`` wraps: ``predict(data, params={"method": ...})`` → that method of the model (default ``predict``)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def get_raw_model(self) -> Any:
        return self.model

    def predict(self, data: Any, params: dict | None = None) -> Any:
        method = (params or {}).get("method", "predict")
        return getattr(self.model, method)(data)


def _load_pyfunc(path: str) -> _PyFuncModel:
    """The pyfunc loader: ``path`` is the ``.mle`` file inside the logged model directory."""
    from .model import load_model as load_mle

    return _PyFuncModel(load_mle(path))

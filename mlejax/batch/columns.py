"""A batch of named columns in, named outputs out: the column rules of every job built on a Model.

:class:`ScoringSpec` decides, once per model and input schema, which columns
feed the model (and in what order), which are copied through (``keep``), and
what the outputs are called; then it turns each batch of columns into the
model's input matrix and each result into named output columns. Batch
scoring (:func:`mlejax.score`), the Ray/Dask/Spark adapters and a serving
layer use it the same way.

Output names follow the method:

========================  =====================================================
``predict``               ``label`` (classifiers), ``output`` or ``output_<i>``
``predict_proba``         ``proba_<class>`` for each class in ``classes_``
``predict_log_proba``     ``log_proba_<class>``
``decision_function``     ``decision`` (one column) or ``decision_<i>``
``transform``             ``transform_<i>``
``score_samples``         ``score_samples``
``apply``                 ``leaf_<i>``
========================  =====================================================

Columns may be NumPy arrays or pyarrow arrays; nulls become NaN (the model
decides whether it accepts missing values). Nothing here imports pyarrow.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from ..format.errors import InputError
from ..lowering.seq_buckets import refuse_variable_axes
from ..model import Model

__all__ = ["ScoringSpec", "default_method", "output_names"]

#: graph output -> (column prefix, whether a single column keeps the bare prefix)
_PREFIXES = {
    "label": ("label", True),
    "output": ("output", True),
    "probabilities": ("proba", False),
    "log_probabilities": ("log_proba", False),
    "decision": ("decision", True),
    "transform": ("transform", False),
    "score_samples": ("score_samples", True),
    "leaf_index": ("leaf", False),
}


def default_method(model: Model) -> str:
    """``predict_proba`` where the model has it, else ``predict``, else ``transform`` (else its first method)."""
    for method in ("predict_proba", "predict", "transform"):
        if method in model.methods:
            return method
    return sorted(model.methods)[0]


def output_names(model: Model, output: str, shape: Sequence[int]) -> list[str]:
    """Column names of graph ``output`` whose per-batch shape is ``shape`` (``[batch]`` or ``[batch, k]``)."""
    prefix, bare = _PREFIXES.get(output, (output, True))
    if len(shape) == 1:
        return [prefix]
    width = int(np.prod(shape[1:]))
    if width == 1 and bare:
        return [prefix]
    if output in ("probabilities", "log_probabilities") and model.classes_ is not None and len(model.classes_) == width:
        return [f"{prefix}_{c}" for c in model.classes_]
    return [f"{prefix}_{i}" for i in range(width)]


@dataclasses.dataclass(frozen=True)
class ScoringSpec:
    """How one model scores batches of one schema: input columns, kept columns, output names and dtypes."""

    model: Model
    method: str
    output: str
    inputs: tuple[str, ...]
    keep: tuple[str, ...]
    dtype: np.dtype
    output_names: tuple[str, ...]
    output_dtype: np.dtype

    @classmethod
    def resolve(
        cls,
        model: Model,
        names: Sequence[str],
        *,
        method: str | None = None,
        columns: Sequence[str] | None = None,
        keep: Sequence[str] = (),
        numeric: Sequence[str] | None = None,
        positional: bool = False,
    ) -> "ScoringSpec":
        """Check the columns a source offers (``names``) against the model; raise :class:`InputError` before any row is read.

        ``columns`` default to the model's ``feature_names_in_`` where it has
        them (all columns, in order, for a ``positional`` source such as a
        ``.npy`` array), else every column in ``numeric`` (default: all) in
        source order, less the ``keep`` columns. Extra columns are ignored.
        """
        refuse_variable_axes(model.graph, "batch scoring")
        method = method or default_method(model)
        if method not in model.methods:
            raise ValueError(f"this model (exported from {model.source_estimator}) has no {method}(); it has: {', '.join(sorted(model.methods))}")
        names = [str(n) for n in names]
        feature_names = getattr(model, "feature_names_in_", None)
        if columns is not None:
            inputs = [str(c) for c in columns]
        elif feature_names is not None and not positional:
            inputs = [str(c) for c in feature_names]
        else:
            inputs = [n for n in names if (numeric is None or n in set(numeric)) and n not in {str(k) for k in keep}]
        keep = [str(k) for k in keep]
        missing = [n for n in dict.fromkeys(inputs + keep) if n not in names]
        if missing:
            raise InputError(
                f"input column(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} not found; "
                f"the input has {names[:10]}{' ...' if len(names) > 10 else ''}"
            )
        if model.n_features_in_ is not None and len(inputs) != model.n_features_in_:
            raise InputError(
                f"{len(inputs)} input columns {inputs[:5]}{' ...' if len(inputs) > 5 else ''} selected, "
                f"but this model is expecting {model.n_features_in_} features; pass columns=[...]"
            )
        output = model.methods[method]
        out_names, out_dtype = _output_schema(model, output)
        clash = sorted(set(keep).intersection(out_names))
        if clash:
            raise InputError(f"kept column(s) {clash} have the names of output columns; rename them in the input")
        # Host-encoded models (string categories, exact float64 splits) read raw float64 values.
        dtype = np.dtype(np.float64 if model._host is not None else model.graph.inputs[0].dtype)
        return cls(model, method, output, tuple(inputs), tuple(keep), dtype, tuple(out_names), out_dtype)

    def matrix(self, columns: Mapping[str, Any], rows: int, out: np.ndarray | None = None) -> np.ndarray:
        """The model's input matrix ``[rows, n_inputs]`` (into the first ``rows`` rows of ``out`` when given)."""
        if out is None:
            out = np.empty((rows, len(self.inputs)), self.dtype)
        for j, name in enumerate(self.inputs):
            out[:rows, j] = numeric_values(columns[name], name)
        return out

    # The Model's own input checks and label mapping (private to mlejax; used only here).
    def model_inputs(self, X: np.ndarray) -> list[np.ndarray]:
        """Every graph input for matrix ``X``: the Model's checks, host encoding and defaults of optional inputs."""
        return self.model._prepare_all([X], by_position=True)

    def to_host(self, values: np.ndarray) -> np.ndarray:
        """A raw graph output as the method returns it (class indices mapped to ``classes_``)."""
        return self.model._to_host(self.output, values)

    def outputs(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """Named output columns of one result (labels already mapped to ``classes_``)."""
        values = np.asarray(values)
        if values.ndim == 1:
            return {self.output_names[0]: values}
        flat = values.reshape(values.shape[0], -1)
        return {name: flat[:, i] for i, name in enumerate(self.output_names)}

    def score(self, columns: Mapping[str, Any], rows: int) -> dict[str, np.ndarray]:
        """Score one in-memory batch with the model's own method (one device); the named outputs."""
        if rows == 0:
            return {name: np.empty(0, self.output_dtype) for name in self.output_names}
        return self.outputs(getattr(self.model, self.method)(self.matrix(columns, rows)))


def numeric_values(col: Any, name: str) -> np.ndarray:
    """A column (NumPy or pyarrow) as a numeric NumPy array, nulls as NaN; :class:`InputError` naming a sample value otherwise."""
    if hasattr(col, "null_count") and hasattr(col, "type"):  # pyarrow Array / ChunkedArray, without importing pyarrow
        kind = str(col.type)
        if kind == "bool" or kind.startswith("decimal"):
            import pyarrow as pa

            col = col.cast(pa.float64())
        elif not (kind.startswith(("int", "uint", "float", "double", "halffloat")) or kind == "null"):
            raise InputError(f"column {name!r} is {kind}, not numeric (e.g. {_sample(col.drop_null())!r}); encode it first or leave it out of columns=")
        return col.to_numpy(zero_copy_only=False)
    arr = np.asarray(col)
    if arr.dtype.kind in "biuf":
        return arr
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        bad = next((v for v in arr if not _is_number(v)), arr[0] if arr.size else None)
        raise InputError(f"column {name!r} has dtype {arr.dtype}, not numeric (e.g. {bad!r}); encode it first or leave it out of columns=") from None


def _sample(values: Any) -> Any:
    return values[0].as_py() if len(values) else None


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _output_schema(model: Model, output: str) -> tuple[list[str], np.dtype]:
    """Output column names and dtype, from the output's traced shape (no compilation, no data)."""
    import jax

    info = model.graph.inputs[0]
    spec = jax.ShapeDtypeStruct((1, *info.shape[1:]), np.dtype(info.dtype))
    out = jax.eval_shape(model.jax_function(output), spec)
    dtype = model.classes_.dtype if output == "label" and model.classes_ is not None else np.dtype(out.dtype)
    return output_names(model, output, out.shape), dtype

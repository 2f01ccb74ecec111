"""scikit-learn dummy estimators: the same answer for every row.

``DummyRegressor`` (every strategy) predicts ``constant_``.
``DummyClassifier`` with ``most_frequent``, ``prior`` or ``constant`` predicts
one label (``argmax(class_prior_)`` or the constant) and fixed probabilities
(one-hot, ``class_prior_``, one-hot); several outputs are handled as
:mod:`.sklearn_multioutput` does (labels over the union of classes,
probabilities side by side). ``stratified`` and ``uniform`` draw labels at
random in ``predict`` (from ``random_state``, differently on every call), so a
compiled program cannot reproduce them: they are refused.
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import set_classes
from .registry import ExportContext, register_converter
from .sklearn_multioutput import hstack_native, union_classes


def _rows(ctx: ExportContext, x: str, values: np.ndarray, dtype=np.float32) -> str:
    """``values`` (a row) repeated for every row of ``x``: [B, len(values)]."""
    b = ctx.builder
    values = np.asarray(values).reshape(1, -1)
    return b.op("BroadcastTo", b.tensor("dummy.row", values, dtype), x, shape=["B", values.shape[1]])


def convert_dummy_regressor(model, x: str, ctx: ExportContext) -> dict:
    """DummyRegressor: ``constant_`` for every row ([B] for one output)."""
    y = _rows(ctx, x, np.asarray(model.constant_, dtype=np.float64))
    return {"output": ctx.builder.op("Squeeze", y, axis=1) if model.n_outputs_ == 1 else y}


def convert_dummy_classifier(model, x: str, ctx: ExportContext) -> dict:
    """DummyClassifier (most_frequent, prior, constant): fixed labels and probabilities."""
    b = ctx.builder
    strategy = model._strategy
    if strategy not in ("most_frequent", "prior", "constant"):
        raise UnsupportedModelError(
            f"DummyClassifier(strategy={strategy!r}) draws its predictions at random on every call; "
            "supported strategies: most_frequent, prior, constant"
        )
    if getattr(model, "sparse_output_", False):
        raise UnsupportedModelError("DummyClassifier with sparse_output=True is not supported")
    single = model.n_outputs_ == 1
    classes = [model.classes_] if single else list(model.classes_)
    priors = [model.class_prior_] if single else list(model.class_prior_)
    constants = [model.constant] if single else list(np.ravel(model.constant))
    union, tables = union_classes(classes)
    set_classes(ctx, union)
    probas, labels = [], []
    for cls, prior, const, table in zip(classes, priors, constants, tables):
        if strategy == "constant":
            pick = int(np.flatnonzero(np.asarray(cls) == const)[0])
        else:
            pick = int(np.argmax(prior))
        proba = np.asarray(prior, dtype=np.float64) if strategy == "prior" else np.eye(len(cls))[pick]
        probas.append(proba)
        labels.append(table[pick])
    proba = _rows(ctx, x, np.concatenate(probas))
    label = _rows(ctx, x, np.asarray(labels), np.int32)
    return {
        "label": b.op("Squeeze", label, axis=1) if single else label,
        "probabilities": proba,
        "log_probabilities": b.op("Log", proba),
    }


convert_dummy_classifier.native_method = hstack_native

register_converter("sklearn.DummyRegressor", convert_dummy_regressor)
register_converter("sklearn.DummyClassifier", convert_dummy_classifier)

"""scikit-learn multi-output meta-estimators: MultiOutputRegressor/Classifier, RegressorChain, ClassifierChain.

Every member is converted with its own converter (any supported estimator).

- ``MultiOutputRegressor.predict``: the members' predictions side by side, [B, n_outputs].
- ``MultiOutputClassifier.predict``: [B, n_outputs] labels. ``classes_`` of
  the exported model is the sorted union of the members' classes (one label
  array, as every mlejax model has); each member's class index is mapped into
  it inside the graph, so ``predict`` returns the members' own labels.
  ``predict_proba`` (a list of per-output arrays in scikit-learn) is returned
  as one array, the list's arrays side by side: ``np.hstack(list)``.
- Chains (``RegressorChain``, ``ClassifierChain``): member ``k`` reads
  ``[X, chain values of members 0..k-1]``, where a chain value is the
  member's ``predict`` (``chain_method="predict"``; a classifier's label as
  a number), ``predict_proba[:, -1]`` or ``decision_function``; outputs are
  put back in label order (``order_``). ``ClassifierChain.predict`` is a float
  array of 0/1 labels, as in scikit-learn.

The helpers (:func:`union_classes`, :func:`labels_in`, :func:`column`,
:func:`hstack_native`) serve every converter whose model has several outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import set_classes
from .registry import ExportContext, register_converter

__all__ = ["union_classes", "labels_in", "column", "hstack_native"]


def union_classes(classes_per_output: list) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sorted union of several outputs' classes, and for each output where its classes sit in it."""
    arrays = [np.asarray(c) for c in classes_per_output]
    kinds = {"str" if a.dtype.kind in "OUS" else "num" for a in arrays}
    if len(kinds) > 1:
        raise UnsupportedModelError("outputs mixing string and numeric class labels are not supported; "
                                    "every output's labels must be all strings or all numbers")
    union = np.unique(np.concatenate([a.astype(object) if "str" in kinds else a for a in arrays]))
    if "str" in kinds:
        union = union.astype(object)
    return union, [np.searchsorted(union, a).astype(np.int32) for a in arrays]


def column(ctx: ExportContext, value: str) -> str:
    """A [B] value as a [B, 1] column (a [B, 1] value is reshaped to itself)."""
    return ctx.builder.op("Reshape", value, shape=[1])


def labels_in(ctx: ExportContext, index: str, table: np.ndarray, dtype: Any = np.int32) -> str:
    """``table[index]`` for a [B] class index: a member's label index mapped into a wider class list (or to values)."""
    b = ctx.builder
    return b.op("Gather", b.tensor("labels.table", np.asarray(table), dtype), index, axis=0)


def hstack_native(model: Any, method: str, inputs: list) -> Any:
    """The source model's ``method`` on float64 inputs; a list of per-output arrays is put side by side.

    Converters of multi-output classifiers use it as their ``native_method``
    (the export check compares with it).
    """
    widened = [x.astype(np.float64) if isinstance(x, np.ndarray) and x.dtype == np.float32 else x for x in inputs]
    result = getattr(model, method)(*widened)
    return np.hstack(result) if isinstance(result, list) else result


def _label_values(ctx: ExportContext, est: Any, out: dict) -> str:
    """A member's ``predict`` as numbers, [B]: a classifier's label index mapped to its (numeric) classes."""
    if "label" not in out:
        return out["output"]
    classes = np.asarray(est.classes_)
    if classes.dtype.kind not in "biuf":
        raise UnsupportedModelError(f"a chain member's labels must be numbers to feed the next member; found {classes.dtype}")
    return labels_in(ctx, out["label"], classes.astype(np.float64), np.float32)


def _positive_proba(ctx: ExportContext, out: dict) -> str:
    """``predict_proba[:, -1]`` of a binary member, [B] (scikit-learn's ``_get_response_values``)."""
    b = ctx.builder
    return b.op("Index", out["probabilities"], axis=1, index=-1)


def _response(ctx: ExportContext, est: Any, out: dict, method: str) -> str:
    if method == "predict":
        return _label_values(ctx, est, out)
    if method == "predict_proba":
        return _positive_proba(ctx, out)
    if method == "decision_function":
        return out["decision"]
    raise UnsupportedModelError(f"chain_method {method!r} is not supported; supported: predict, predict_proba, decision_function")


def convert_multioutput_regressor(model, x: str, ctx: ExportContext) -> dict:
    """MultiOutputRegressor: each member's ``predict`` as one column."""
    cols = [column(ctx, ctx.convert_member(est, x)["output"]) for est in model.estimators_]
    return {"output": ctx.builder.op("Concat", *cols, axis=1)}


def convert_multioutput_classifier(model, x: str, ctx: ExportContext) -> dict:
    """MultiOutputClassifier: [B, n_outputs] labels over the union of classes, probabilities side by side."""
    b = ctx.builder
    members = [ctx.convert_member(est, x) for est in model.estimators_]
    union, tables = union_classes([est.classes_ for est in model.estimators_])
    set_classes(ctx, union)
    result = {"label": b.op("Concat", *(column(ctx, labels_in(ctx, m["label"], t)) for m, t in zip(members, tables)), axis=1)}
    if all("probabilities" in m for m in members):
        result["probabilities"] = b.op("Concat", *(m["probabilities"] for m in members), axis=1)
    return result


convert_multioutput_classifier.native_method = hstack_native


def _chain(model, x: str, ctx: ExportContext, methods: tuple[str, ...]) -> dict[str, list[str]]:
    """Run the chain; per requested output method, the members' [B] responses in chain order."""
    b = ctx.builder
    chain_method = getattr(model, "chain_method_", "predict")
    feed: list[str] = []
    responses: dict[str, list[str]] = {m: [] for m in methods}
    for est in model.estimators_:
        x_aug = b.op("Concat", x, *feed, axis=1) if feed else x
        out = ctx.convert_member(est, x_aug)
        feed.append(column(ctx, _response(ctx, est, out, chain_method)))
        for m in methods:
            responses[m].append(_response(ctx, est, out, m))
    return responses


def _in_label_order(ctx: ExportContext, model, values: list[str]) -> str:
    """Chain-ordered [B] responses as [B, n_labels] columns in label order (column ``order_[k]`` is member ``k``)."""
    inv = np.empty(len(model.order_), dtype=np.int64)
    inv[np.asarray(model.order_)] = np.arange(len(model.order_))
    return ctx.builder.op("Concat", *(column(ctx, values[k]) for k in inv), axis=1)


def convert_regressor_chain(model, x: str, ctx: ExportContext) -> dict:
    """RegressorChain: each member reads X and the earlier members' predictions."""
    return {"output": _in_label_order(ctx, model, _chain(model, x, ctx, ("predict",))["predict"])}


def convert_classifier_chain(model, x: str, ctx: ExportContext) -> dict:
    """ClassifierChain: 0/1 labels (floats), positive-class probabilities, decisions, in label order."""
    b = ctx.builder
    est0 = model.estimators_[0]
    methods = ["predict"]
    if hasattr(est0, "predict_proba"):
        methods.append("predict_proba")
    if hasattr(est0, "decision_function"):
        methods.append("decision_function")
    responses = _chain(model, x, ctx, tuple(methods))
    result = {"output": _in_label_order(ctx, model, responses["predict"])}
    if "predict_proba" in responses:
        result["probabilities"] = _in_label_order(ctx, model, responses["predict_proba"])
        result["log_probabilities"] = b.op("Log", result["probabilities"])
    if "decision_function" in responses:
        result["decision"] = _in_label_order(ctx, model, responses["decision_function"])
    return result


register_converter("sklearn.MultiOutputRegressor", convert_multioutput_regressor)
register_converter("sklearn.MultiOutputClassifier", convert_multioutput_classifier)
register_converter("sklearn.RegressorChain", convert_regressor_chain)
register_converter("sklearn.ClassifierChain", convert_classifier_chain)

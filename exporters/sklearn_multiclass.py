"""scikit-learn one-vs-rest: ``OneVsRestClassifier`` over any convertible binary estimator.

Each member scores its class with ``decision_function`` when it has one,
else with ``predict_proba[:, 1]`` (sklearn's ``_predict_binary``); regressors
give ``predict``. Multiclass ``predict`` is the first argmax of the scores;
binary ``predict`` compares the single score with 0 (decision) or 0.5
(probability). ``predict_proba`` stacks the members' positive-class
probabilities and divides each row by its sum unless that sum is 0.
Multilabel models are not supported.
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import set_classes
from .registry import ExportContext, register_converter


def _column(ctx: ExportContext, value: str, index: int | None) -> str:
    """``value[:, index]`` (or a [B] value) as a [B, 1] column."""
    b = ctx.builder
    if index is not None:
        return b.op("Take", value, b.tensor("ovr.col", np.asarray([index]), np.int32), axis=1)
    return b.op("Reshape", value, shape=[1])


def convert_one_vs_rest(model, x: str, ctx: ExportContext) -> dict:
    """OneVsRestClassifier (binary and multiclass): scores, labels, probabilities, decisions."""
    if model.label_binarizer_.y_type_.startswith("multilabel"):
        raise UnsupportedModelError("multilabel OneVsRestClassifier is not supported; binary and multiclass are")
    b = ctx.builder
    members = [ctx.convert_member(est, x) for est in model.estimators_]
    set_classes(ctx, model.classes_)
    has_decision = all("decision" in m for m in members) and hasattr(model.estimators_[0], "decision_function")
    scores, probas = [], []
    for est, out in zip(model.estimators_, members):
        if "output" in out and "label" not in out:
            scores.append(_column(ctx, out["output"], None))
        elif has_decision:
            scores.append(_column(ctx, out["decision"], None))
        elif "probabilities" in out:
            scores.append(_column(ctx, out["probabilities"], 1))
        else:
            raise UnsupportedModelError(f"OneVsRestClassifier member {type(est).__name__} gives neither decision values nor probabilities")
        if "probabilities" in out:
            probas.append(_column(ctx, out["probabilities"], 1))
    score = scores[0] if len(scores) == 1 else b.op("Concat", *scores, axis=1)
    result: dict = {}
    if len(members) == 1:
        s = b.op("Squeeze", score, axis=1)
        threshold = 0.0 if has_decision else 0.5
        result["label"] = b.op("Greater", s, threshold=threshold)
        if has_decision:
            result["decision"] = s
    else:
        result["label"] = b.op("ArgMax", score)
        if has_decision:
            result["decision"] = score
    if len(probas) == len(members):
        p = probas[0] if len(probas) == 1 else b.op("Concat", *probas, axis=1)
        if len(probas) == 1:
            p1 = b.op("Squeeze", p, axis=1)
            p = b.op("Concat", _column(ctx, b.op("Sub", b.tensor("one", np.ones(1), np.float32), p1), None), p, axis=1)
        result["probabilities"] = b.op("NormalizeRows", p, norm="l1")
    return result


register_converter("sklearn.OneVsRestClassifier", convert_one_vs_rest)

"""scikit-learn multi-layer perceptrons."""

from __future__ import annotations

from ..format.errors import UnsupportedModelError
from ._common import linear, logistic_pair, set_classes, softmax_heads
from .registry import ExportContext, register_converter

_ACTIVATIONS = {"identity": "Identity", "logistic": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "exp": "Exp"}


def _forward(model, x: str, ctx: ExportContext) -> str:
    """Hidden layers with ``activation``, output layer without its activation."""
    h = x
    layers = list(zip(model.coefs_, model.intercepts_))
    for i, (w, bias) in enumerate(layers):
        h = linear(ctx, h, w.T, bias, hint=f"mlp.layer{i}", float64=False)  # float32 layers: quantize= applies
        if i < len(layers) - 1:
            h = ctx.builder.op(_ACTIVATIONS[model.activation], h)
    return h


def convert_mlp_classifier(model, x: str, ctx: ExportContext) -> dict:
    """MLPClassifier: softmax for multiclass; logistic [1-p, p] and ``p > 0.5`` (logit > 0) for binary.

    Multilabel models give one sigmoid per label and predict the 0/1 indicator ``logit > 0``.
    """
    b = ctx.builder
    if model.out_activation_ not in ("logistic", "softmax"):
        raise UnsupportedModelError(f"MLPClassifier with output activation {model.out_activation_!r} is not supported; logistic and softmax are")
    set_classes(ctx, model.classes_)
    z = _forward(model, x, ctx)
    if model.out_activation_ == "logistic" and model.n_outputs_ != 1:  # multilabel; classes_ is arange(n_labels)
        return {"probabilities": b.op("Sigmoid", z), "log_probabilities": b.op("LogSigmoid", z), "label": b.op("Greater", z, threshold=0.0)}
    if model.out_activation_ == "softmax":
        heads = softmax_heads(ctx, z)
        return {**heads, "label": b.op("ArgMax", z)}
    z = b.op("Squeeze", z, axis=1)
    return {**logistic_pair(ctx, z), "label": b.op("Greater", z, threshold=0.0)}


def convert_mlp_regressor(model, x: str, ctx: ExportContext) -> dict:
    """MLPRegressor: identity output (``exp`` for the Poisson loss), raveled for one target."""
    y = ctx.builder.op(_ACTIVATIONS[model.out_activation_], _forward(model, x, ctx))
    if model.n_outputs_ == 1:
        y = ctx.builder.op("Squeeze", y, axis=1)
    return {"output": y}


register_converter("sklearn.MLPClassifier", convert_mlp_classifier)
register_converter("sklearn.MLPRegressor", convert_mlp_regressor)

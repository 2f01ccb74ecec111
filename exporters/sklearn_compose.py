"""scikit-learn composition: Pipeline, ColumnTransformer, FeatureUnion, TransformedTargetRegressor
and the hyper-parameter searches (their ``best_estimator_``).
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._host_encoding import RAW_INPUT, raw_columns, record_raw_columns, request_ignored_column, set_feature_names
from .registry import ExportContext, register_converter
from .sklearn_preprocessing import inverse_transform_graph


def _transform_of(step, x: str, ctx: ExportContext, where: str) -> str:
    """The ``transform`` output of converting ``step`` on ``x`` (``"passthrough"`` is the identity)."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return x
    out = ctx.convert(step, x)
    if "transform" not in out:
        raise UnsupportedModelError(f"{where} ({type(step).__name__}) gives no transform output")
    return out["transform"]


def _concat(ctx: ExportContext, parts: list[str], what: str) -> str:
    if not parts:
        raise UnsupportedModelError(f"{what} produces no output columns; nothing to export")
    return parts[0] if len(parts) == 1 else ctx.builder.op("Concat", *parts, axis=1)


def _weighted(ctx: ExportContext, y: str, weight) -> str:
    if weight is None:
        return y
    return ctx.builder.op("Mul", y, ctx.builder.tensor("weight", np.asarray([weight], np.float64), np.float32))


def convert_pipeline(model, x: str, ctx: ExportContext) -> dict:
    """Chain each step's ``transform``; the last step gives the pipeline's outputs."""
    steps = [(name, step) for name, step in model.steps if step is not None and not (isinstance(step, str) and step == "passthrough")]
    if not steps:
        raise UnsupportedModelError("a Pipeline made only of 'passthrough' steps has nothing to export")
    for name, step in steps[:-1]:
        x = _transform_of(step, x, ctx, f"Pipeline step {name!r}")
    return ctx.convert(steps[-1][1], x)


def convert_column_transformer(model, x: str, ctx: ExportContext) -> dict:
    """ColumnTransformer: each fitted transformer on its columns, outputs side by side.

    Columns come from the fit (``_transformer_to_input_indices``), so names,
    indices, masks, slices and callables all resolve to the same indices.
    Unused raw columns are ignored (a string column that is dropped does not
    need to be numeric at predict time).
    """
    b = ctx.builder
    width = model.n_features_in_
    raw = raw_columns(ctx, x, width)
    weights = model.transformer_weights or {}
    parts, used, sources = [], set(), []
    for name, trans, _ in model.transformers_:
        indices = list(model._transformer_to_input_indices.get(name, []))
        if (isinstance(trans, str) and trans == "drop") or not indices:
            continue
        used.update(indices)
        sub = b.op("Take", x, b.tensor(f"columns.{name}", np.asarray(indices), np.int32))
        if raw is not None:
            record_raw_columns(ctx, sub, [raw[0][i] for i in indices], raw[1])
        y = _transform_of(trans, sub, ctx, f"ColumnTransformer transformer {name!r}")
        sources.append(None if weights.get(name) is not None else _column_sources(ctx, y, trans, len(indices)))
        parts.append(_weighted(ctx, y, weights.get(name)))
    if raw is not None:
        for i in sorted(set(range(width)) - used):
            request_ignored_column(ctx, raw[1], raw[0][i])
    if x == RAW_INPUT:
        set_feature_names(ctx, getattr(model, "feature_names_in_", None))
    out = _concat(ctx, parts, "this ColumnTransformer")
    if len(parts) > 1 and all(entries is not None for entries in sources) and any(any(entries) for entries in sources):
        ctx.options["column_sources"][out] = [e for entries in sources for e in entries]  # trees fold through scalers
    return {"transform": out}


def _column_sources(ctx: ExportContext, y: str, trans, n_in: int) -> list | None:
    """The scaler records of part ``y`` (:func:`.sklearn_preprocessing.record_column_sources`), one per column.

    ``None`` for each column of a part that is no recorded scaler (its width from
    ``get_feature_names_out``), or ``None`` when that width is unknown.
    """
    recorded = (ctx.options.get("column_sources") or {}).get(y)
    if recorded is not None:
        return recorded
    if isinstance(trans, str) and trans == "passthrough":
        return [None] * n_in
    try:
        return [None] * len(trans.get_feature_names_out())
    except Exception:  # a transformer without feature names: its width is not known here
        return None


def convert_feature_union(model, x: str, ctx: ExportContext) -> dict:
    """FeatureUnion: every transformer on the same input, outputs side by side, times ``transformer_weights``."""
    weights = model.transformer_weights or {}
    parts = [
        _weighted(ctx, _transform_of(trans, x, ctx, f"FeatureUnion transformer {name!r}"), weights.get(name))
        for name, trans in model.transformer_list
        if not (isinstance(trans, str) and trans == "drop")
    ]
    return {"transform": _concat(ctx, parts, "this FeatureUnion")}


def convert_transformed_target_regressor(model, x: str, ctx: ExportContext) -> dict:
    """TransformedTargetRegressor: the regressor's output through ``transformer_.inverse_transform``.

    ``inverse_func`` must be a known numpy ufunc (a function's code is never
    exported) or the fitted ``transformer`` must have a supported inverse.
    """
    out = ctx.convert(model.regressor_, x)
    if "output" not in out:
        raise UnsupportedModelError(f"TransformedTargetRegressor: regressor {type(model.regressor_).__name__} gives no output")
    return {"output": inverse_transform_graph(model.transformer_, out["output"], ctx)}


def convert_search_cv(model, x: str, ctx: ExportContext) -> dict:
    """GridSearchCV / RandomizedSearchCV / Halving*: export ``best_estimator_`` (needs ``refit=True``)."""
    best = getattr(model, "best_estimator_", None)
    if best is None:
        raise UnsupportedModelError(f"{type(model).__name__} without best_estimator_ (refit=False) cannot be exported; refit it")
    return ctx.convert(best, x)


register_converter("sklearn.Pipeline", convert_pipeline)
register_converter("sklearn.ColumnTransformer", convert_column_transformer)
register_converter("sklearn.FeatureUnion", convert_feature_union)
register_converter("sklearn.TransformedTargetRegressor", convert_transformed_target_regressor)
for _name in ("GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV"):
    register_converter(f"sklearn.{_name}", convert_search_cv)

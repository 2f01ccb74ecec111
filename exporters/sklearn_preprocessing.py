"""scikit-learn preprocessing: scalers, normalizer, binarizer, quantile / power transforms,
discretizer, polynomial and spline features, one-hot / ordinal encoders, imputers,
missing indicator and FunctionTransformer.

Float32 notes: comparisons against fitted float64 edges use the float32 value
that gives the same answer on every float32 input (``KBinsDiscretizer``);
scalers are written as ``(x - offset) * scale`` so a large offset does not
cancel away the result's precision.

String categories of the encoders are encoded on the host (see
:mod:`mlejax.host`); the graph then encodes numeric codes.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..format.errors import UnsupportedModelError
from ._host_encoding import RAW_INPUT, raw_columns, request_category_column, set_feature_names
from .registry import ExportContext, register_converter
from .sklearn_tree import float32_threshold

__all__ = ["inverse_transform_graph", "UFUNC_OPS", "ufunc_graph"]

_F32_TINY = float(10 * np.finfo(np.float32).eps)


def _f32(ctx: ExportContext, hint: str, value: Any) -> str:
    return ctx.builder.tensor(hint, np.asarray(value, dtype=np.float64), np.float32)


def _i32(ctx: ExportContext, hint: str, value: Any) -> str:
    return ctx.builder.tensor(hint, np.asarray(value), np.int32)


def _split(value: Any) -> tuple[np.ndarray, np.ndarray]:
    """A float64 array as float32 ``hi + lo`` (``lo`` is the rounding remainder)."""
    v = np.asarray(value, dtype=np.float64)
    hi = v.astype(np.float32)
    return hi, (v - hi).astype(np.float32)


def _sub_f64(ctx: ExportContext, x: str, value: Any, hint: str) -> str:
    """``x - value`` for a float64 ``value``: ``(x - hi) - lo``, exact-ish when x is close to value."""
    b = ctx.builder
    hi, lo = _split(value)
    y = b.op("Sub", x, b.tensor(hint, hi))
    return y if not lo.any() else b.op("Sub", y, b.tensor(hint + ".lo", lo))


def _clip(ctx: ExportContext, y: str, lo: float, hi: float) -> str:
    b = ctx.builder
    return b.op("Min", b.op("Max", y, _f32(ctx, "clip.lo", [lo])), _f32(ctx, "clip.hi", [hi]))


# --- scalers -------------------------------------------------------------------------
#
# Each scaler also records, for the tree models that may read its output, scikit-learn's
# own float64 arithmetic per column (``record_column_sources``): a tree then tests the
# scaler's input against thresholds folded back through it (``sklearn_tree.fold_column_sources``),
# so its decisions are the source pipeline's, not those of the float32 scaler below.


def record_column_sources(ctx: ExportContext, x: str, y: str, functions: list) -> None:
    """Record that column ``j`` of ``y`` is ``functions[j]`` (float64 → float64, non-decreasing) of column ``j`` of ``x``.

    Chained scalers compose: when ``x`` is itself recorded, ``y`` points at ``x``'s source.
    """
    sources = ctx.options.setdefault("column_sources", {})
    before = sources.get(x) or [None] * len(functions)
    entries = []
    for j, fn in enumerate(functions):
        if before[j] is None:
            entries.append((x, j, fn))
        else:
            src, col, first = before[j]
            entries.append((src, col, lambda v, fn=fn, first=first: fn(first(v))))
    sources[y] = entries


def _affine_functions(shift, scale, multiply: bool, clip: tuple | None = None) -> list | None:
    """Per column ``clip((v - shift) / scale)`` or, with ``multiply``, ``clip(v * scale + shift)``, in float64 as sklearn.

    ``shift`` / ``scale`` may be None (step skipped); None when a scale is not positive (not increasing).
    """
    n = len(scale if scale is not None else shift)
    shift = np.zeros(n) if shift is None else np.asarray(shift, np.float64)
    scale = None if scale is None else np.asarray(scale, np.float64)
    if scale is not None and not np.all(scale > 0):
        return None

    def fn(v, j):
        if multiply:
            v = v * scale[j] + shift[j]
        else:
            v = v - shift[j]
            v = v if scale is None else v / scale[j]
        return v if clip is None else np.clip(v, *clip)

    return [lambda v, j=j: fn(v, j) for j in range(n)]


def _with_sources(ctx: ExportContext, x: str, y: str, functions: list | None) -> dict:
    if functions is not None:
        record_column_sources(ctx, x, y, functions)
    return {"transform": y}


def convert_standard_scaler(model, x: str, ctx: ExportContext) -> dict:
    """StandardScaler: ``(x - mean_) / scale_`` (each step only when fitted with it)."""
    b = ctx.builder
    y = x
    mean = model.mean_ if model.mean_ is not None and model.with_mean else None
    if mean is not None:
        y = _sub_f64(ctx, y, mean, "scaler.mean")
    if model.scale_ is not None:
        y = b.op("Div", y, _f32(ctx, "scaler.scale", model.scale_))
    if y == x:
        return {"transform": y}
    return _with_sources(ctx, x, y, _affine_functions(mean, model.scale_, multiply=False))


def convert_min_max_scaler(model, x: str, ctx: ExportContext) -> dict:
    """MinMaxScaler: ``x * scale_ + min_`` (error-free product: the two terms often cancel), then ``clip``."""
    b = ctx.builder
    scale, shift = _split(model.scale_), _split(model.min_)
    y = b.op("AffineExact", x, *(b.tensor(f"minmax.{n}", t) for n, t in zip(("scale", "scale_lo", "min", "min_lo"), (*scale, *shift))))
    if model.clip:
        y = _clip(ctx, y, *model.feature_range)
    clip = tuple(model.feature_range) if model.clip else None
    return _with_sources(ctx, x, y, _affine_functions(model.min_, model.scale_, multiply=True, clip=clip))


def convert_max_abs_scaler(model, x: str, ctx: ExportContext) -> dict:
    """MaxAbsScaler: ``x / scale_``, clipped to [-1, 1] with ``clip=True``."""
    y = ctx.builder.op("Div", x, _f32(ctx, "maxabs.scale", model.scale_))
    clip = getattr(model, "clip", False)
    if clip:
        y = _clip(ctx, y, -1.0, 1.0)
    return _with_sources(ctx, x, y, _affine_functions(None, model.scale_, multiply=False, clip=(-1.0, 1.0) if clip else None))


def convert_robust_scaler(model, x: str, ctx: ExportContext) -> dict:
    """RobustScaler: ``(x - center_) / scale_``."""
    b = ctx.builder
    y = x
    center = model.center_ if model.center_ is not None and model.with_centering else None
    scale = model.scale_ if model.scale_ is not None and model.with_scaling else None
    if center is not None:
        y = _sub_f64(ctx, y, center, "robust.center")
    if scale is not None:
        y = b.op("Div", y, _f32(ctx, "robust.scale", scale))
    if y == x:
        return {"transform": y}
    return _with_sources(ctx, x, y, _affine_functions(center, scale, multiply=False))


def convert_normalizer(model, x: str, ctx: ExportContext) -> dict:
    """Normalizer: rows divided by their l1 / l2 / max norm; norms below 10 * float32 eps count as 1."""
    return {"transform": ctx.builder.op("NormalizeRows", x, norm=model.norm, tiny=_F32_TINY)}


def convert_binarizer(model, x: str, ctx: ExportContext) -> dict:
    """Binarizer: ``x > threshold`` as 0/1, exact for every float32 x (compared with the largest float32 <= threshold)."""
    b = ctx.builder
    threshold = float(float32_threshold(np.asarray([model.threshold]))[0])
    return {"transform": b.op("Cast", b.op("Greater", x, threshold=threshold), dtype="float32")}


# --- inverse transforms (TransformedTargetRegressor) ----------------------------------


def _inverse_function_transformer(model, x, ctx):
    _check_function_transformer(model)
    return x if model.inverse_func is None else ufunc_graph(ctx, model.inverse_func, x, "inverse_func")


def _inverse_standard_scaler(model, x, ctx):
    b = ctx.builder
    y = x if model.scale_ is None else b.op("Mul", x, _f32(ctx, "scaler.scale", model.scale_))
    return y if model.mean_ is None or not model.with_mean else b.op("Add", y, _f32(ctx, "scaler.mean", model.mean_))


def _inverse_min_max_scaler(model, x, ctx):
    b = ctx.builder
    y = b.op("Sub", x, _f32(ctx, "minmax.low", [model.feature_range[0]]))
    return b.op("Add", b.op("Div", y, _f32(ctx, "minmax.scale", model.scale_)), _f32(ctx, "minmax.data_min", model.data_min_))


def _inverse_max_abs_scaler(model, x, ctx):
    return ctx.builder.op("Mul", x, _f32(ctx, "maxabs.scale", model.scale_))


def _inverse_robust_scaler(model, x, ctx):
    b = ctx.builder
    y = x
    if model.scale_ is not None and model.with_scaling:
        y = b.op("Mul", y, _f32(ctx, "robust.scale", model.scale_))
    if model.center_ is not None and model.with_centering:
        y = b.op("Add", y, _f32(ctx, "robust.center", model.center_))
    return y


_INVERSES = {
    "FunctionTransformer": _inverse_function_transformer,
    "StandardScaler": _inverse_standard_scaler,
    "MinMaxScaler": _inverse_min_max_scaler,
    "MaxAbsScaler": _inverse_max_abs_scaler,
    "RobustScaler": _inverse_robust_scaler,
}


def inverse_transform_graph(model, x: str, ctx: ExportContext) -> str:
    """The graph of ``model.inverse_transform`` applied to value ``x`` (a fitted transformer)."""
    fn = _INVERSES.get(type(model).__name__)
    if fn is None:
        raise UnsupportedModelError(
            f"inverse_transform of {type(model).__name__} is not supported; supported: {', '.join(sorted(_INVERSES))}"
        )
    return fn(model, x, ctx)


# --- FunctionTransformer ----------------------------------------------------------------


def _ufunc_ops() -> dict:
    return {
        np.exp: ("Exp", {}),
        np.log: ("Log", {}),
        np.sqrt: ("Sqrt", {}),
        np.abs: ("Abs", {}),
        np.negative: ("Neg", {}),
        np.tanh: ("Tanh", {}),
        np.expm1: ("Expm1", {}),
        np.log1p: ("Log1p", {}),
        np.square: ("Square", {}),
    }


#: numpy functions a FunctionTransformer / TransformedTargetRegressor may use, by name.
UFUNC_OPS = sorted(f.__name__ for f in _ufunc_ops())


def ufunc_graph(ctx: ExportContext, fn: Any, x: str, what: str) -> str:
    """Apply the known numpy ufunc ``fn`` to ``x``; any other callable is :class:`UnsupportedModelError`."""
    for ufunc, (op, attrs) in _ufunc_ops().items():
        if fn is ufunc:
            return ctx.builder.op(op, x, **attrs)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    raise UnsupportedModelError(
        f"{what}={getattr(fn, '__module__', '')}.{name} is not supported: a function's code is never exported. "
        f"Supported: None or one of numpy's {', '.join('np.' + n for n in UFUNC_OPS)}"
    )


def _check_function_transformer(model) -> None:
    if model.kw_args or model.inv_kw_args:
        raise UnsupportedModelError("FunctionTransformer with kw_args / inv_kw_args is not supported")


def convert_function_transformer(model, x: str, ctx: ExportContext) -> dict:
    """FunctionTransformer: identity (``func=None``) or a known numpy ufunc."""
    _check_function_transformer(model)
    return {"transform": x if model.func is None else ufunc_graph(ctx, model.func, x, "func")}


# --- quantile, power, discretizer ------------------------------------------------------


def convert_quantile_transformer(model, x: str, ctx: ExportContext) -> dict:
    """QuantileTransformer (uniform / normal output) with scikit-learn's averaged interpolation."""
    from scipy import stats

    bound = 1e-7 - np.spacing(1)
    clip = [stats.norm.ppf(bound), stats.norm.ppf(1 - bound)]
    refs = np.asarray(model.references_, dtype=np.float64)
    q = np.asarray(model.quantiles_, dtype=np.float64).T
    lo, hi = q[:, 0], q[:, -1]
    if model.output_distribution == "normal":  # p = 0 where x - 1e-7 < q[0], p = 1 where x + 1e-7 > q[-1]
        lo, hi = lo + 1e-7, hi - 1e-7
    b = ctx.builder
    q_hi, q_lo = _split(q)
    y = b.op(
        "QuantileInterp", x, b.tensor("quantile.q", q_hi), b.tensor("quantile.q_lo", q_lo),
        _f32(ctx, "quantile.refs", refs), _f32(ctx, "quantile.refs_c", 1.0 - refs),
        b.tensor("quantile.bounds", np.concatenate([np.stack(_split(lo)), np.stack(_split(hi))])),
        _f32(ctx, "quantile.clip", clip), output=model.output_distribution,
    )
    return {"transform": y}


def convert_power_transformer(model, x: str, ctx: ExportContext) -> dict:
    """PowerTransformer: Yeo-Johnson or Box-Cox per column, then its internal standardisation.

    The graph computes ``y(x) - y(c)`` around a float32 point ``c`` whose
    transform is the fitted mean, so standardising does not cancel float32
    precision away (see the ``PowerTransform`` op).
    """
    from scipy import special, stats

    lam = np.asarray(model.lambdas_, dtype=np.float64)
    box_cox = model.method == "box-cox"
    if box_cox:
        is_zero, is_two = np.abs(lam) < 1e-19, np.zeros(lam.shape, bool)
    else:
        eps = np.finfo(np.float64).eps
        is_zero, is_two = np.abs(lam) < eps, np.abs(lam - 2) <= eps
    default = 1.0 if box_cox else 0.0
    center = np.full(lam.shape, default)
    if model.standardize:
        mean = np.asarray(model._scaler.mean_, dtype=np.float64)
        with np.errstate(all="ignore"):
            guess = np.array([special.inv_boxcox(m, l) if box_cox else model._yeo_johnson_inverse_transform(np.array([m]), l)[0]
                              for m, l in zip(mean, lam)])
        ok = np.isfinite(guess) & ((guess > 0) if box_cox else True)
        center = np.where(ok, guess, default)
    center = center.astype(np.float32).astype(np.float64)
    y_center = np.array([special.boxcox(c, l) if box_cox else stats.yeojohnson(np.array([c]), l)[0] for c, l in zip(center, lam)])
    shift = y_center - np.asarray(model._scaler.mean_, dtype=np.float64) if model.standardize else y_center
    b = ctx.builder
    y = b.op(
        "PowerTransform", x, _f32(ctx, "power.lambdas", lam), b.tensor("power.zero", is_zero, bool),
        b.tensor("power.two", is_two, bool), _f32(ctx, "power.center", center), _f32(ctx, "power.y_center", y_center),
        _f32(ctx, "power.shift", shift), method=model.method,
    )
    if model.standardize:
        y = b.op("Div", y, _f32(ctx, "power.scale", model._scaler.scale_))
    return _with_sources(ctx, x, y, _power_functions(model))


def _power_functions(model) -> list:
    """Per column, scikit-learn's own float64 transform of that column (for trees reading the output).

    Box-Cox is ``scipy.special.boxcox``, Yeo-Johnson ``scipy.stats.yeojohnson``
    (what scikit-learn calls), then ``(y - mean_) / scale_`` as its internal
    StandardScaler. Yeo-Johnson is increasing for every lambda, Box-Cox on
    ``x > 0`` (scikit-learn refuses ``x <= 0``; the value is ``-inf`` there).
    """
    from scipy import special, stats

    lam = np.asarray(model.lambdas_, dtype=np.float64)
    scaler = model._scaler if model.standardize else None

    def fn(v, j):
        v = np.asarray(v, np.float64)
        with np.errstate(all="ignore"):
            if model.method == "box-cox":
                y = np.where(v > 0, special.boxcox(np.where(v > 0, v, 1.0), lam[j]), -np.inf)
            else:
                y = stats.yeojohnson(v, lam[j])
            if scaler is not None:
                y = (y - scaler.mean_[j]) / scaler.scale_[j]
        return y

    return [lambda v, j=j: fn(v, j) for j in range(lam.shape[0])]


def _one_hot_identity(ctx: ExportContext, codes: str, sizes: list[int]) -> str:
    """One-hot encode int codes ``0..sizes[j]-1`` of each column into consecutive blocks."""
    k = max(sizes)
    slots = np.full((len(sizes), k + 1), -1, np.int64)
    offset = 0
    for j, n in enumerate(sizes):
        slots[j, :n] = offset + np.arange(n)
        offset += n
    return ctx.builder.op("CategoryOneHot", codes, _i32(ctx, "onehot.slots", slots), n_out=int(offset))


def convert_kbins_discretizer(model, x: str, ctx: ExportContext) -> dict:
    """KBinsDiscretizer: bin = number of inner edges ``<= x`` (exact on float32 input); ordinal or one-hot."""
    inner = [np.asarray(e, dtype=np.float64)[1:-1] for e in model.bin_edges_]
    width = max(1, max(len(e) for e in inner))
    edges = np.full((len(inner), width), np.nan, np.float32)
    for j, e in enumerate(inner):
        edges[j, : len(e)] = -float32_threshold(-e)  # smallest float32 >= edge
    b = ctx.builder
    y = b.op("Bucketize", x, b.tensor("kbins.edges", edges))
    if model.encode == "ordinal":
        return {"transform": y}
    return {"transform": _one_hot_identity(ctx, b.op("Cast", y, dtype="int32"), [int(n) for n in model.n_bins_])}


# --- polynomial and spline features -----------------------------------------------------


def convert_polynomial_features(model, x: str, ctx: ExportContext) -> dict:
    """PolynomialFeatures: one product of input columns per ``powers_`` row, in scikit-learn's column order."""
    powers = np.asarray(model.powers_)
    n_features = powers.shape[1]
    depth = max(1, int(powers.sum(axis=1).max()))
    terms = np.full((powers.shape[0], depth), n_features, np.int64)
    for o, row in enumerate(powers):
        idx = np.repeat(np.arange(n_features), row)
        terms[o, : len(idx)] = idx
    return {"transform": ctx.builder.op("Monomials", x, _i32(ctx, "poly.terms", terms))}


def convert_spline_transformer(model, x: str, ctx: ExportContext) -> dict:
    """SplineTransformer: B-spline bases per column (Cox-de Boor in the graph), every extrapolation mode."""
    splines = model.bsplines_
    degree = int(model.degree)
    n_out = int(splines[0].c.shape[1])
    n_basis = splines[0].t.size - degree - 1
    mode = model.extrapolation
    knots = np.stack([s.t for s in splines])
    lo, hi = knots[:, degree].copy(), knots[:, n_basis].copy()
    tables = np.zeros((4, len(splines), n_out))  # f_lo, d_lo, f_hi, d_hi
    if mode == "linear" and degree <= 1 and len(splines) > 1:
        # scikit-learn 1.9's transform bumps its local ``degree`` to 2 while handling
        # the first feature, so later features use the knots t[degree + 1] and
        # t[-degree - 2] as their linear-extrapolation range; replicated for parity.
        lo[1:], hi[1:] = knots[1:, degree + 1], knots[1:, -degree - 2]
    if mode in ("constant", "linear"):
        reach = degree if mode == "constant" else (degree + 1 if degree <= 1 else degree)
        low_cols, high_cols = np.arange(n_out) < reach, np.arange(n_out) >= n_out - reach
        for j, s in enumerate(splines):
            tables[0, j] = np.where(low_cols, s(lo[j]), 0.0)
            tables[2, j] = np.where(high_cols, s(hi[j]), 0.0)
            if mode == "linear":
                tables[1, j] = np.where(low_cols, s(lo[j], nu=1), 0.0)
                tables[3, j] = np.where(high_cols, s(hi[j], nu=1), 0.0)
    origin = np.stack(_split(lo))
    y = ctx.builder.op(
        "BSplineBasis", x, _f32(ctx, "spline.knots", knots - lo[:, None]), _i32(ctx, "spline.cols", np.arange(n_basis) % n_out),
        ctx.builder.tensor("spline.origin", origin), _f32(ctx, "spline.span", hi - lo),
        *(_f32(ctx, f"spline.{n}", t) for n, t in zip(("f_lo", "d_lo", "f_hi", "d_hi"), tables)),
        degree=degree, n_out=n_out, mode=mode,
    )
    if not model.include_bias:
        keep = [j for j in range(len(splines) * n_out) if (j + 1) % n_out != 0]
        y = ctx.builder.op("Take", y, _i32(ctx, "spline.keep", keep))
    return {"transform": y}


# --- encoders ----------------------------------------------------------------------------


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def _column_kind(cats: np.ndarray, i: int, model) -> str:
    """``"string"`` or ``"numeric"`` categories for encoder column ``i``."""
    if cats.dtype.kind in "biuf":
        return "numeric"
    values = [v for v in cats if not _is_missing(v)]
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        return "numeric"
    raise UnsupportedModelError(
        f"{type(model).__name__}: column {i} mixes category types ({sorted({type(v).__name__ for v in values})}); "
        "supported: all strings or all numbers"
    )


def _graph_categories(model, x: str, ctx: ExportContext) -> list[np.ndarray]:
    """Per column, the float64 categories the graph sees (NaN last), requesting host codes for string columns."""
    cats = model.categories_
    raw = raw_columns(ctx, x, len(cats))
    unknown = "error" if model.handle_unknown == "error" else "code"
    out = []
    for i, c in enumerate(cats):
        c = np.asarray(c)
        if _column_kind(c, i, model) == "numeric":
            values = np.asarray([np.nan if _is_missing(v) else float(v) for v in c], np.float64)
            finite = values[~np.isnan(values)]
            if np.unique(finite.astype(np.float32)).size != finite.size:
                raise UnsupportedModelError(
                    f"{type(model).__name__}: column {i} has categories that are equal in float32; "
                    "mlejax computes in float32, so they cannot be told apart"
                )
            out.append(values)
            continue
        if raw is None:
            raise UnsupportedModelError(
                f"{type(model).__name__}: string categories in column {i} are supported only when the encoder reads "
                "raw input columns (directly, first in a Pipeline, or in a ColumnTransformer)"
            )
        has_missing = len(c) > 0 and _is_missing(c[-1])
        missing = None if not has_missing else ("none" if c[-1] is None else "nan")
        names = [str(v) for v in (c[:-1] if has_missing else c)]
        request_category_column(ctx, raw[1], raw[0][i], names, missing, unknown)
        out.append(np.r_[np.arange(len(names), dtype=np.float64), [np.nan] * has_missing])
    if x == RAW_INPUT:
        set_feature_names(ctx, getattr(model, "feature_names_in_", None))
    return out


def _category_index(ctx: ExportContext, x: str, graph_cats: list[np.ndarray]) -> tuple[str, int]:
    """``CategoryIndex`` node over the graph categories; returns (value, K = unknown index)."""
    k = max(1, max(len(c) for c in graph_cats))
    table = np.full((len(graph_cats), k), np.inf, np.float32)
    n_valid = np.zeros(len(graph_cats), np.int64)
    nan_index = np.full(len(graph_cats), k, np.int64)
    for j, c in enumerate(graph_cats):
        finite = c[~np.isnan(c)]
        table[j, : finite.size] = finite
        n_valid[j] = finite.size
        if np.isnan(c).any():
            nan_index[j] = finite.size
    b = ctx.builder
    idx = b.op("CategoryIndex", x, b.tensor("encoder.categories", table), _i32(ctx, "encoder.n_valid", n_valid), _i32(ctx, "encoder.nan_index", nan_index))
    return idx, k


def _probe(model) -> np.ndarray:
    """``model.transform`` of a table whose row r holds category r of every column (dense)."""
    cats = model.categories_
    k = max(len(c) for c in cats)
    rows = np.empty((k, len(cats)), dtype=object)
    for j, c in enumerate(cats):
        rows[:, j] = [c[min(r, len(c) - 1)] for r in range(k)]
    if all(np.asarray(c).dtype.kind in "biuf" for c in cats):
        rows = rows.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.transform(rows)
    return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=np.float64)


def convert_one_hot_encoder(model, x: str, ctx: ExportContext) -> dict:
    """OneHotEncoder (dense output): categories → output slots read off scikit-learn's own transform.

    Unknowns: zeros (``ignore``), the infrequent column (``infrequent_if_exist``
    / ``warn``), or an error for host-encoded strings and zeros for numbers
    (``error``: the graph cannot raise). drop / min_frequency / max_categories
    are all covered by the probe.
    """
    graph_cats = _graph_categories(model, x, ctx)
    idx, k = _category_index(ctx, x, graph_cats)
    probe = _probe(model)
    sizes = list(model._n_features_outs)
    offsets = np.r_[0, np.cumsum(sizes)]
    slots = np.full((len(graph_cats), k + 1), -1, np.int64)
    infrequent = getattr(model, "infrequent_categories_", None) if model._infrequent_enabled else None
    for j, c in enumerate(model.categories_):
        block = probe[: len(c), offsets[j] : offsets[j + 1]]
        hot = block.argmax(axis=1) + offsets[j]
        slots[j, : len(c)] = np.where(block.max(axis=1) > 0, hot, -1)
        if model.handle_unknown in ("infrequent_if_exist", "warn") and infrequent is not None and infrequent[j] is not None:
            first = next(i for i, v in enumerate(c) if v == infrequent[j][0] or (_is_missing(v) and _is_missing(infrequent[j][0])))
            slots[j, k] = slots[j, first]
    y = ctx.builder.op("CategoryOneHot", idx, _i32(ctx, "onehot.slots", slots), n_out=int(offsets[-1]))
    return {"transform": y}


def convert_ordinal_encoder(model, x: str, ctx: ExportContext) -> dict:
    """OrdinalEncoder: per-category codes read off scikit-learn's own transform.

    Unknowns give ``unknown_value`` (``use_encoded_value``); with ``error`` the
    host raises for strings and the graph gives NaN for numbers.
    """
    graph_cats = _graph_categories(model, x, ctx)
    idx, k = _category_index(ctx, x, graph_cats)
    probe = _probe(model)
    table = np.full((len(graph_cats), k + 1), np.nan)
    for j, c in enumerate(model.categories_):
        table[j, : len(c)] = probe[: len(c), j]
        if model.handle_unknown == "use_encoded_value":
            table[j, k] = model.unknown_value
    return {"transform": ctx.builder.op("CategoryTable", idx, _f32(ctx, "ordinal.table", table))}


# --- imputers ----------------------------------------------------------------------------


def _missing_attr(model) -> Any:
    """The ``missing`` attribute of ``MissingMask`` / ``FillMissing`` for ``model.missing_values``."""
    mv = model.missing_values
    if mv is None or (isinstance(mv, (float, np.floating)) and math.isnan(mv)) or type(mv).__name__ == "NAType":
        return "nan"
    if isinstance(mv, (int, float, np.integer, np.floating)) and not isinstance(mv, bool):
        return float(mv)
    raise UnsupportedModelError(f"{type(model).__name__}: missing_values={mv!r} is not supported; supported: NaN or a number")


def _indicator(model, x: str, ctx: ExportContext) -> str:
    """MissingIndicator mask (bool) over its ``features_``."""
    b = ctx.builder
    y = x
    if len(model.features_) != model.n_features_in_:
        y = b.op("Take", x, _i32(ctx, "indicator.features", model.features_))
    return b.op("MissingMask", y, missing=_missing_attr(model))


def convert_missing_indicator(model, x: str, ctx: ExportContext) -> dict:
    """MissingIndicator: boolean mask of missing values in ``features_`` (``error_on_new`` cannot raise)."""
    return {"transform": _indicator(model, x, ctx)}


def convert_simple_imputer(model, x: str, ctx: ExportContext) -> dict:
    """SimpleImputer: missing → ``statistics_``; features without statistics dropped; optional indicator."""
    try:
        stats = np.asarray(model.statistics_, dtype=np.float64)
    except (TypeError, ValueError):
        raise UnsupportedModelError(
            f"SimpleImputer with non-numeric statistics {list(model.statistics_)[:5]} is not supported; supported: numeric data"
        ) from None
    b = ctx.builder
    y = b.op("FillMissing", x, _f32(ctx, "imputer.fill", np.nan_to_num(stats)), missing=_missing_attr(model))
    if not model.keep_empty_features and np.isnan(stats).any():
        y = b.op("Take", y, _i32(ctx, "imputer.valid", np.flatnonzero(~np.isnan(stats))))
    if model.add_indicator:
        y = b.op("Concat", y, b.op("Cast", _indicator(model.indicator_, x, ctx), dtype="float32"), axis=1)
    return {"transform": y}


register_converter("sklearn.StandardScaler", convert_standard_scaler)
register_converter("sklearn.MinMaxScaler", convert_min_max_scaler)
register_converter("sklearn.MaxAbsScaler", convert_max_abs_scaler)
register_converter("sklearn.RobustScaler", convert_robust_scaler)
register_converter("sklearn.Normalizer", convert_normalizer)
register_converter("sklearn.Binarizer", convert_binarizer)
register_converter("sklearn.FunctionTransformer", convert_function_transformer)
register_converter("sklearn.QuantileTransformer", convert_quantile_transformer)
register_converter("sklearn.PowerTransformer", convert_power_transformer)
register_converter("sklearn.KBinsDiscretizer", convert_kbins_discretizer)
register_converter("sklearn.PolynomialFeatures", convert_polynomial_features)
register_converter("sklearn.SplineTransformer", convert_spline_transformer)
register_converter("sklearn.OneHotEncoder", convert_one_hot_encoder)
register_converter("sklearn.OrdinalEncoder", convert_ordinal_encoder)
register_converter("sklearn.SimpleImputer", convert_simple_imputer)
register_converter("sklearn.MissingIndicator", convert_missing_indicator)

"""Preprocessing ops: imputation, encoding, binning, quantile / power transforms, polynomial and spline features.

All rules are column-wise over an input ``x`` of shape [B, F] (F features),
compute in float32 and keep memory at O(B x F x small) (never proportional to
the training-set size). Per-feature tables are stored tensors with a leading
F axis; ragged per-feature tables are padded (the padding is stated per op).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

from ..format.graph import Node
from .registry import Attr, register_rule

_MISSING = {"missing": Attr("number_or_nan")}


def _check_width(node: Node, shapes, budget: int) -> None:
    if node.attrs["n_out"] > budget:
        raise ValueError(f"n_out {node.attrs['n_out']} is over this model's bound of {budget} outputs per row")

def _missing_mask(x, missing):
    return jnp.isnan(x) if missing == "nan" else x == missing


@register_rule("MissingMask", attrs=_MISSING)
def _missing_mask_rule(node: Node, x):
    """Boolean mask of missing entries: ``isnan(x)`` when ``attrs["missing"] == "nan"``, else ``x == missing``."""
    return _missing_mask(x, node.attrs["missing"])


@register_rule("FillMissing", attrs=_MISSING)
def _fill_missing(node: Node, x, fill):
    """Replace missing entries (as in ``MissingMask``) of column j by ``fill[j]``."""
    return jnp.where(_missing_mask(x, node.attrs["missing"]), fill, x)


def _split_f32(a):
    """Veltkamp split of float32 ``a`` into 12-bit halves: ``a == hi + lo`` exactly."""
    c = a * 4097.0
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    """``a * b == p + e`` exactly (Dekker's product without FMA)."""
    p = a * b
    a_hi, a_lo = _split_f32(a)
    b_hi, b_lo = _split_f32(b)
    e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, e


@register_rule("AffineExact")
def _affine_exact(node: Node, x, scale_hi, scale_lo, shift_hi, shift_lo):
    """``x * scale + shift`` per column, with float64 ``scale`` / ``shift`` given as float32 hi + lo pairs.

    The product is error-free (Dekker), so the result is within a few float32
    ulps of the float64 answer even when ``x * scale`` and ``shift`` cancel.
    """
    p, e = _two_prod(x, jnp.broadcast_to(scale_hi, x.shape))
    return (p + shift_hi) + (e + x * scale_lo + shift_lo)


@register_rule("Bucketize")
def _bucketize(node: Node, x, edges):
    """Bin index per entry: the number of ``edges[j, :]`` that are ``<= x[:, j]`` (``searchsorted(side="right")``).

    ``edges`` is [F, E], padded with NaN (a NaN edge never counts). Returns float32.
    """
    return jnp.sum(edges[None, :, :] <= x[:, :, None], axis=2).astype(x.dtype)


@register_rule("CategoryIndex")
def _category_index(node: Node, x, cats, n_valid, nan_index):
    """Index of each entry in its column's categories, or K (the padded width of ``cats``) when unknown.

    ``cats`` [F, K] holds each column's sorted non-NaN categories, padded with
    +inf beyond ``n_valid[j]``; a NaN entry maps to ``nan_index[j]`` (K when
    NaN is not a category). Returns int32 [B, F].
    """
    k = cats.shape[1]
    pos = jax.vmap(lambda c, col: jnp.searchsorted(c, col, side="left"), in_axes=(0, 1), out_axes=1)(cats, x)
    pos = jnp.minimum(pos, k - 1).astype(jnp.int32)
    found = (pos < n_valid[None, :]) & (jnp.take_along_axis(cats.T, pos, axis=0) == x)
    idx = jnp.where(found, pos, k)
    return jnp.where(jnp.isnan(x), nan_index[None, :], idx).astype(jnp.int32)


def _gather_per_column(table, idx):
    """``table[j, idx[:, j]]`` for every column j: [F, K+1] table, [B, F] indices → [B, F]."""
    return table[jnp.arange(table.shape[0])[None, :], idx]


@register_rule("CategoryTable")
def _category_table(node: Node, idx, table):
    """Per-column lookup ``table[j, idx[:, j]]``; ``table`` is [F, K+1] (the last slot is the unknown value)."""
    return _gather_per_column(table, idx)


@register_rule("CategoryOneHot", attrs={"n_out": Attr("int", lo=0)}, check=_check_width)
def _category_one_hot(node: Node, idx, slots):
    """One-hot rows of width ``attrs["n_out"]``: entry (b, j) sets column ``slots[j, idx[b, j]]``, or none when -1."""
    n_out = node.attrs["n_out"]
    s = _gather_per_column(slots, idx)
    s = jnp.where(s < 0, n_out, s)
    rows = jnp.arange(idx.shape[0])[:, None]
    return jnp.zeros((idx.shape[0], n_out), jnp.float32).at[rows, s].set(1.0, mode="drop")


def _interp_right(x, xp, xp_lo, fp):
    """``np.interp(x, xp + xp_lo, fp)`` for one column (xp non-decreasing): anchor at the last ``xp[j] <= x``.

    ``xp_lo`` is the float32 remainder of float64 knots, so ``x - knot`` keeps full precision.
    """
    n = xp.shape[0]
    j = jnp.clip(jnp.searchsorted(xp, x, side="right") - 1, 0, n - 2)
    slope = (fp[j + 1] - fp[j]) / ((xp[j + 1] - xp[j]) + (xp_lo[j + 1] - xp_lo[j]))
    y = fp[j] + slope * ((x - xp[j]) - xp_lo[j])
    y = jnp.where(x < xp[0], fp[0], y)
    return jnp.where(x >= xp[n - 1], fp[n - 1], y)


def _interp_left(x, xp, xp_lo, fp):
    """``-np.interp(-x, -xp[::-1], -fp[::-1])``: the same interpolation anchored at the first ``xp[i] >= x``."""
    n = xp.shape[0]
    i = jnp.clip(jnp.searchsorted(xp, x, side="left"), 1, n - 1)
    slope = (fp[i] - fp[i - 1]) / ((xp[i] - xp[i - 1]) + (xp_lo[i] - xp_lo[i - 1]))
    y = fp[i] - slope * ((xp[i] - x) + xp_lo[i])
    y = jnp.where(x > xp[n - 1], fp[n - 1], y)
    return jnp.where(x <= xp[0], fp[0], y)


def _interp_both(x, xp, xp_lo, fp):
    """scikit-learn's averaged forward/backward interpolation (ties on flat quantiles go to the middle)."""
    return 0.5 * (_interp_right(x, xp, xp_lo, fp) + _interp_left(x, xp, xp_lo, fp))


def _less(x, hi, lo):
    """``x < hi + lo`` exactly, for float32 x and a float64 value split into float32 ``hi`` + ``lo``."""
    return (x < hi) | ((x == hi) & (lo > 0))


@register_rule("QuantileInterp", attrs={"output": Attr("str", choices=("uniform", "normal"))})
def _quantile_interp(node: Node, x, q_hi, q_lo, refs, refs_c, bounds, clip):
    """QuantileTransformer's forward transform, per column j against quantiles ``q_hi[j] + q_lo[j]`` [F, Q].

    ``p = 0.5 * (interp(x, q, refs) - interp(-x, -q[::-1], -refs[::-1]))``
    (float64 quantiles kept as float32 hi + lo pairs). ``bounds`` [4, F] holds
    b = (b0 + b1, b2 + b3): p is 0 where x is (``uniform``) equal to b0 / (``normal``)
    below it, and 1 where x equals / is above b2. ``output == "normal"``
    returns ``ndtri(p)`` clipped to ``clip`` [2]; the upper half is computed as
    ``-ndtri(1 - p)`` with ``1 - p`` interpolated directly from ``refs_c = 1 -
    refs`` so the tail keeps float32 precision. NaN stays NaN.
    """
    normal = node.attrs["output"] == "normal"

    def column(xc, qh, ql, b):
        if normal:
            at_lo = _less(xc, b[0], b[1])
            at_hi = _less(-xc, -b[2], -b[3])
        else:
            at_lo = (xc == b[0]) & (b[1] == 0)
            at_hi = (xc == b[2]) & (b[3] == 0)
        p = _interp_both(xc, qh, ql, refs)
        pc = _interp_both(xc, qh, ql, refs_c)
        p = jnp.where(at_lo, 0.0, jnp.where(at_hi, 1.0, p))
        pc = jnp.where(at_lo, 1.0, jnp.where(at_hi, 0.0, pc))
        if normal:
            p = jnp.clip(jnp.where(p <= 0.5, ndtri(p), -ndtri(pc)), clip[0], clip[1])
        return jnp.where(jnp.isnan(xc), jnp.nan, p)

    return jax.vmap(column, in_axes=(1, 0, 0, 1), out_axes=1)(x, q_hi, q_lo, bounds)


def _power_branch(log_base, mu, mu_zero):
    """``(b**mu - 1) / mu`` from ``log(b)`` (``log(b)`` itself when mu is 0)."""
    safe = jnp.where(mu_zero, 1.0, mu)
    return jnp.where(mu_zero, log_base, jnp.expm1(safe * log_base) / safe)


@register_rule("PowerTransform", attrs={"method": Attr("str", choices=("box-cox", "yeo-johnson"))})
def _power_transform(node: Node, x, lambdas, is_zero, is_two, center, y_center, shift):
    """Per-column Yeo-Johnson (``method="yeo-johnson"``) or Box-Cox with ``lambdas`` [F], as ``y(x) - y(c) + shift``.

    ``y`` is SciPy's transform (``expm1``/``log1p`` forms; ``is_zero`` / ``is_two``
    [F], decided at export in float64, pick the ``lambda == 0`` / ``lambda == 2``
    limits). ``c = center`` [F] is a point near the data with ``y_center = y(c)``:
    where x lies on c's branch with ``|base(x) / base(c) - 1| <= 1/2`` (base is
    ``1 + x``, ``1 - x`` or ``x``) the difference is computed without
    cancellation as ``base(c)**mu * (r**mu - 1) / mu`` with r that ratio;
    elsewhere as ``y(x) - y_center``. Standardising after a power transform
    subtracts a mean close to y(c), so this keeps float32 precision.
    """
    box_cox = node.attrs["method"] == "box-cox"
    if box_cox:
        branches = [(jnp.ones_like(x, bool), x, center, lambdas, is_zero, 1.0, jnp.log)]
    else:
        branches = [
            (x >= 0, x, center, lambdas, is_zero, 1.0, jnp.log1p),
            (x < 0, -x, -center, 2.0 - lambdas, is_two, -1.0, jnp.log1p),
        ]
    plain = jnp.full_like(x, jnp.nan)
    near = jnp.zeros_like(x)
    is_near = jnp.zeros_like(x, bool)
    for mask, v, vc, mu, mu_zero, sign, log in branches:
        base_c = vc if box_cox else 1.0 + vc
        plain = jnp.where(mask, sign * _power_branch(log(jnp.where(mask, v, 1.0)), mu, mu_zero), plain)
        ratio = (v - vc) / base_c
        same = mask & (vc >= 0) & (jnp.abs(ratio) <= 0.5)
        scale = jnp.exp(mu * jnp.log(base_c))
        near = jnp.where(same, sign * scale * _power_branch(jnp.log1p(ratio), mu, mu_zero), near)
        is_near = is_near | same
    return jnp.where(is_near, near, plain - y_center) + shift


@register_rule("Monomials")
def _monomials(node: Node, x, terms):
    """Polynomial features: output column o is ``prod_d x[:, terms[o, d]]``; index F (one past the last column) is 1."""
    xe = jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
    return jnp.prod(xe[:, terms], axis=2)


def _bspline_bases(x, t, degree):
    """Cox-de Boor: the ``degree + 1`` non-zero B-spline values at x and the first basis index.

    ``t`` is one column's knot vector [T]; the interval ``t[l] <= x < t[l+1]`` is
    clamped to ``[degree, T - degree - 2]`` (SciPy's extrapolation).
    """
    n_basis = t.shape[0] - degree - 1
    l = jnp.clip(jnp.searchsorted(t, x, side="right") - 1, degree, n_basis - 1)
    b = [jnp.ones_like(x)]
    for k in range(1, degree + 1):
        nxt = [jnp.zeros_like(x) for _ in range(k + 1)]
        for r in range(k):
            left = t[l + r + 1 - k]
            right = t[l + r + 1]
            w = b[r] / (right - left)
            nxt[r] = nxt[r] + w * (right - x)
            nxt[r + 1] = (x - left) * w
        b = nxt
    return jnp.stack(b, axis=-1), l - degree


@register_rule("BSplineBasis", attrs={"degree": Attr("int", lo=0, hi=64), "n_out": Attr("int", lo=1), "mode": Attr("str", choices=("continue", "periodic", "error", "constant", "linear"))}, check=_check_width)
def _bspline_basis(node: Node, x, knots, col_map, origin, span, f_lo, d_lo, f_hi, d_hi):
    """SplineTransformer: per column j, B-spline basis values at ``x[:, j]`` → [B, F * n_out].

    Works in the shifted coordinate ``u = x - o`` where ``o = origin[0] +
    origin[1]`` (a float64 start of the base interval as float32 hi + lo);
    ``knots`` [F, T] are given relative to o and the base interval is ``[0,
    span[j]]``. Basis i of column j lands in output slot ``col_map[i]`` of
    that column's ``n_out`` slots (periodic splines wrap). ``mode`` is the
    extrapolation: ``continue`` (polynomial of the end intervals),
    ``periodic`` (u wrapped into ``[0, span)``), ``error`` (NaN outside),
    ``constant`` / ``linear``: outside the row is ``f_lo + u * d_lo`` below
    and ``f_hi + (u - span) * d_hi`` above ([F, n_out] tables, zero where
    scikit-learn leaves zeros). A NaN input gives a zero row
    (``handle_missing="zeros"``).
    """
    degree, n_out, mode = node.attrs["degree"], node.attrs["n_out"], node.attrs["mode"]

    def column(xc, t, o_hi, o_lo, width, flo, dlo, fhi, dhi):
        u = (xc - o_hi) - o_lo
        ue = jnp.mod(u, width) if mode == "periodic" else u
        vals, first = _bspline_bases(ue, t, degree)
        slots = col_map[first[:, None] + jnp.arange(degree + 1)[None, :]]
        out = jnp.zeros((xc.shape[0], n_out), xc.dtype)
        out = out.at[jnp.arange(xc.shape[0])[:, None], slots].add(vals)
        below, above = (u < 0)[:, None], (u > width)[:, None]
        if mode == "error":
            out = jnp.where(below | above, jnp.nan, out)
        elif mode in ("constant", "linear"):
            low = flo[None, :] + u[:, None] * dlo[None, :]
            high = fhi[None, :] + (u - width)[:, None] * dhi[None, :]
            out = jnp.where(below, low, jnp.where(above, high, out))
        return jnp.where(jnp.isnan(xc)[:, None], 0.0, out)

    y = jax.vmap(column, in_axes=(1, 0, 0, 0, 0, 0, 0, 0, 0), out_axes=1)(
        x, knots, origin[0], origin[1], span, f_lo, d_lo, f_hi, d_hi
    )
    return y.reshape(x.shape[0], -1)

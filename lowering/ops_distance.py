"""Distance-based ops: pairwise distances, k-nearest selection, neighbour averages, kernels, Gaussians.

Shared conventions (version 1 of every op here):

- ``metric`` (attr) is one of ``"euclidean"``, ``"sqeuclidean"``,
  ``"manhattan"``, ``"chebyshev"``, ``"minkowski"`` (with attr ``p``) or
  ``"cosine"``. Distances are computed from explicit differences
  (``sum((x - y)**2)``, never ``|x|² - 2x·y + |y|²``), so float32 keeps a
  relative error near one ulp instead of cancelling catastrophically; the
  cosine distance ``1 - x̂·ŷ`` is computed as ``|x̂ - ŷ|² / 2`` on unit rows
  for the same reason (a zero row has cosine similarity 0 to everything, as
  in scikit-learn).
- Ops that read a stored point set (``points`` [N, F]) scan it in chunks with
  ``lax.scan``: at most about ``_MAX_WORK`` distances (batch × chunk) exist at
  once, whatever N is.
- Ties between equal distances go to the lower point index (a stable order).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from ..format.graph import Node
from .ops_core import AXIS, float64_scope, joined, wide
from .registry import Attr, register_rule

#: Upper bound on batch rows × points whose distances are held at once.
_MAX_WORK = 1 << 22
_HIGHEST = jax.lax.Precision.HIGHEST
_METRICS = ("euclidean", "sqeuclidean", "manhattan", "chebyshev", "minkowski", "cosine")
_METRIC = {"metric": Attr("str", "euclidean", choices=_METRICS), "p": Attr("number", 2.0)}
_WEIGHTS = {"weights": Attr("str", "uniform", choices=("uniform", "distance"))}
#: kernel parameters shared with ops_kernels
KERNEL_PARAMS = {"gamma": Attr("number", 1.0), "coef0": Attr("number", 0.0), "degree": Attr("number", 3, lo=0, hi=1000)}


def _check_k(node: Node, shapes, budget: int) -> None:
    points = shapes[1]
    if points is not None and len(points) >= 1 and node.attrs["k"] > points[0]:
        raise ValueError(f"k={node.attrs['k']} neighbours asked for, but only {points[0]} points are stored")


# --- distances ------------------------------------------------------------------------


def _unit_rows(x):
    """Rows scaled to unit L2 norm (zero rows stay zero) and a 0/1 flag of zero rows."""
    norm = jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True))
    zero = norm == 0
    return x / jnp.where(zero, 1.0, norm), zero[:, 0].astype(x.dtype)


def _prepare(x, metric: str):
    """One side of a distance as ``(rows, zero_row_flags)``: unit rows for cosine, else ``x`` as is."""
    if metric == "cosine":
        return _unit_rows(x)
    return x, jnp.zeros((x.shape[0],), x.dtype)


def _scores(x, y, metric: str, p: float):
    """A monotone transform of the distance between every row of ``x`` [B, F] and ``y`` [C, F] → [B, C].

    ``x``/``y`` are ``(rows, zero_flags)`` pairs from :func:`_prepare`.
    :func:`_finish` turns scores into distances.
    """
    (xa, xz), (ya, yz) = x, y
    diff = xa[:, None, :] - ya[None, :, :]  # fused into the reduction by XLA, never materialised
    if metric in ("euclidean", "sqeuclidean"):
        return jnp.sum(diff * diff, axis=2)
    if metric == "manhattan":
        return jnp.sum(jnp.abs(diff), axis=2)
    if metric == "chebyshev":
        return jnp.max(jnp.abs(diff), axis=2)
    if metric == "minkowski":
        return jnp.sum(jnp.abs(diff) ** p, axis=2)
    if metric == "cosine":
        return 0.5 * jnp.sum(diff * diff, axis=2) + 0.5 * (xz[:, None] + yz[None, :])
    raise ValueError(f"unknown metric {metric!r}; known: {_METRICS}")


def _finish(scores, metric: str, p: float):
    """Distances from :func:`_scores`."""
    if metric == "euclidean":
        return jnp.sqrt(scores)
    if metric == "minkowski":
        return scores ** (1.0 / p)
    return scores


def _metric(node: Node) -> tuple[str, float]:
    return node.attrs["metric"], float(node.attrs["p"])


def _distances(x, y, metric: str, p: float):
    return _finish(_scores(_prepare(x, metric), _prepare(y, metric), metric, p), metric, p)


@register_rule("PairwiseDistance", attrs=_METRIC)
def _pairwise_distance(node: Node, x, y):
    """Distances [B, M] between the rows of ``x`` [B, F] and a small stored set ``y`` [M, F] (centroids).

    Not chunked: use only where M is small (cluster centres, class centroids).
    """
    metric, p = _metric(node)
    return _distances(x, y, metric, p)


# --- chunked scans over a stored point set ----------------------------------------------


def _scan_rows(batch: int, arrays: tuple, body: Callable, init):
    """Fold ``body(carry, valid [C], offset, *chunks)`` over chunks of C rows of ``arrays`` (all [N, ...]).

    C is chosen so batch × C stays under ``_MAX_WORK``; the last chunk is
    zero-padded and its padding rows have ``valid`` False.
    """
    n = arrays[0].shape[0]
    chunk = int(max(1, min(n, _MAX_WORK // max(batch, 1))))
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n

    def chunked(a):
        a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape((n_chunks, chunk) + a.shape[1:])

    def step(carry, args):
        offset, *chunks = args
        valid = offset + jnp.arange(chunk, dtype=jnp.int32) < n
        return body(carry, valid, offset, *chunks), None

    offsets = jnp.arange(n_chunks, dtype=jnp.int32) * chunk
    carry, _ = jax.lax.scan(step, init, (offsets, *map(chunked, arrays)))
    return carry


def k_nearest(x, points, k: int, metric: str, p: float):
    """Distances [B, k] (ascending) and indices [B, k] (int32) of the ``k`` nearest points of each row."""
    batch = x.shape[0]
    xs = _prepare(x, metric)

    def body(carry, valid, offset, y_c, yz_c):
        best, best_idx = carry
        scores = jnp.where(valid[None, :], _scores(xs, (y_c, yz_c), metric, p), jnp.inf)
        idx = jnp.broadcast_to(offset + jnp.arange(scores.shape[1], dtype=jnp.int32), scores.shape)
        # Current best first: on equal scores top_k keeps the earlier (lower-index) point.
        cand = jnp.concatenate([best, scores], axis=1)
        cand_idx = jnp.concatenate([best_idx, idx], axis=1)
        neg, pos = jax.lax.top_k(-cand, k)
        return -neg, jnp.take_along_axis(cand_idx, pos, axis=1)

    init = (jnp.full((batch, k), jnp.inf, x.dtype), jnp.full((batch, k), -1, jnp.int32))
    best, best_idx = _scan_rows(batch, _prepare(points, metric), body, init)
    return _finish(best, metric, p), best_idx


@register_rule("KNearest", attrs={**_METRIC, "k": Attr("int", lo=1)}, outputs=2, check=_check_k)
def _k_nearest(node: Node, x, points):
    """The ``k`` (attr) nearest rows of ``points`` [N, F] to each row of ``x``: (distances [B, k], indices [B, k] int32).

    Sorted by (distance, index) ascending; scanned over ``points`` in chunks.
    """
    metric, p = _metric(node)
    return k_nearest(x, points, int(node.attrs["k"]), metric, p)


def _inverse_distance_weights(dist):
    """scikit-learn's ``weights="distance"``: ``1/d``, except rows with a zero distance weigh those points 1, others 0."""
    zero = dist == 0
    any_zero = jnp.any(zero, axis=-1, keepdims=True)
    return jnp.where(any_zero, zero.astype(dist.dtype), 1.0 / jnp.where(zero, 1.0, dist))


@register_rule("NeighborsMean", attrs=_WEIGHTS)
def _neighbors_mean(node: Node, dist, idx, values):
    """Weighted mean of ``values`` [N, T] over each row's neighbours ``idx`` [B, k] → [B, T].

    ``weights`` (attr): ``"uniform"`` or ``"distance"`` (inverse distance,
    with scikit-learn's rule for zero distances). With one-hot class rows as
    ``values`` this is the neighbours' class-vote share.
    """
    gathered = jnp.take(values, idx, axis=0)  # [B, k, T]
    if node.attrs["weights"] == "distance":
        w = _inverse_distance_weights(dist)
    else:
        w = jnp.ones(dist.shape, values.dtype)
    total = jnp.einsum("bk,bkt->bt", w, gathered, precision=_HIGHEST)
    return total / jnp.sum(w, axis=1, keepdims=True)


@register_rule("RadiusNeighborsMean", attrs={**_METRIC, **_WEIGHTS, "radius": Attr("number")})
def _radius_neighbors_mean(node: Node, x, points, values, fallback=None):
    """Weighted mean of ``values`` [N, T] over all points within ``radius`` (``d <= radius``) → [B, T].

    ``weights`` (attr) as in ``NeighborsMean``. Rows with no point within the
    radius get ``fallback`` [T] if given, else NaN. Scanned in chunks.
    """
    metric, p = _metric(node)
    radius = float(node.attrs["radius"])
    distance_weights = node.attrs["weights"] == "distance"
    batch, t = x.shape[0], values.shape[1]
    xs = _prepare(x, metric)

    def body(carry, valid, offset, y_c, yz_c, vals):
        sums, total, zero_sums, zero_total = carry
        dist = _finish(_scores(xs, (y_c, yz_c), metric, p), metric, p)
        inside = (dist <= radius) & valid[None, :]
        if distance_weights:
            zero = (inside & (dist == 0)).astype(values.dtype)
            zero_sums = zero_sums + jnp.matmul(zero, vals, precision=_HIGHEST)
            zero_total = zero_total + jnp.sum(zero, axis=1)
            w = jnp.where(inside & (dist > 0), 1.0 / jnp.where(dist > 0, dist, 1.0), 0.0)
        else:
            w = inside.astype(values.dtype)
        return sums + jnp.matmul(w, vals, precision=_HIGHEST), total + jnp.sum(w, axis=1), zero_sums, zero_total

    zeros_bt = jnp.zeros((batch, t), values.dtype)
    zeros_b = jnp.zeros((batch,), values.dtype)
    rows = (*_prepare(points, metric), values)
    sums, total, zero_sums, zero_total = _scan_rows(batch, rows, body, (zeros_bt, zeros_b, zeros_bt, zeros_b))
    if distance_weights:
        use_zero = zero_total > 0
        sums = jnp.where(use_zero[:, None], zero_sums, sums)
        total = jnp.where(use_zero, zero_total, total)
    empty = total == 0
    mean = sums / jnp.where(empty, 1.0, total)[:, None]
    fill = jnp.full((t,), jnp.nan, values.dtype) if fallback is None else fallback
    return jnp.where(empty[:, None], fill[None, :], mean)


@register_rule("NearestLabel", attrs={**_METRIC, "fill": Attr("int", -1), "radius": Attr("number", None, nullable=True)})
def _nearest_label(node: Node, x, points, labels):
    """``labels`` [N] (int32) of each row's nearest point; ``fill`` (attr) where that point is farther than
    ``radius`` (attr, optional; ``d <= radius`` counts as within) or where ``points`` is empty.
    """
    metric, p = _metric(node)
    fill = int(node.attrs["fill"])
    if points.shape[0] == 0:
        return jnp.full((x.shape[0],), fill, jnp.int32)
    dist, idx = k_nearest(x, points, 1, metric, p)
    label = jnp.take(labels, idx[:, 0], axis=0).astype(jnp.int32)
    radius = node.attrs.get("radius")
    if radius is None:
        return label
    return jnp.where(dist[:, 0] <= float(radius), label, fill)


# --- kernels ----------------------------------------------------------------------------


def _kernel(x, y, kind: str, gamma: float, coef0: float, degree: float):
    """scikit-learn's pairwise kernels between rows of ``x`` [B, F] and ``y`` [C, F] → [B, C]."""
    if kind == "rbf":
        return jnp.exp(-gamma * _scores(_prepare(x, "sqeuclidean"), _prepare(y, "sqeuclidean"), "sqeuclidean", 2.0))
    if kind == "cosine":
        xn, _ = _unit_rows(x)
        yn, _ = _unit_rows(y)
        return jnp.matmul(xn, yn.T, precision=_HIGHEST)
    dot = jnp.matmul(x, y.T, precision=_HIGHEST)
    if kind == "linear":
        return dot
    if kind == "poly":
        return (gamma * dot + coef0) ** degree
    if kind == "sigmoid":
        return jnp.tanh(gamma * dot + coef0)
    raise ValueError(f"unknown kernel {kind!r}; known: linear, poly, rbf, sigmoid, cosine")


@register_rule("KernelProduct", attrs={"kernel": Attr("str", choices=("linear", "poly", "rbf", "sigmoid", "cosine")), **KERNEL_PARAMS}, outputs=2)
def _kernel_product(node: Node, x, points, coef):
    """``(K @ coef, K.mean(axis=1))`` for the kernel matrix ``K`` [B, N] between ``x`` and ``points`` [N, F].

    ``coef`` is [N, T]. Attrs: ``kernel`` (linear, poly, rbf, sigmoid,
    cosine), ``gamma``, ``coef0``, ``degree``. ``K`` is built chunk by chunk
    over ``points`` and never held whole.
    """
    a = node.attrs
    kind, gamma, coef0, degree = a["kernel"], float(a["gamma"]), float(a["coef0"]), a["degree"]
    batch = x.shape[0]

    def body(carry, valid, offset, y_c, c_c):
        prod, rowsum = carry
        k = jnp.where(valid[None, :], _kernel(x, y_c, kind, gamma, coef0, degree), 0.0)
        return prod + jnp.matmul(k, c_c, precision=_HIGHEST), rowsum + jnp.sum(k, axis=1)

    init = (jnp.zeros((batch, coef.shape[1]), x.dtype), jnp.zeros((batch,), x.dtype))
    prod, rowsum = _scan_rows(batch, (points, coef), body, init)
    return prod, rowsum / points.shape[0]


@register_rule("KernelCentredProduct", attrs={"kernel": Attr("str", choices=("linear", "poly", "rbf", "sigmoid", "cosine")), **KERNEL_PARAMS})
def _kernel_centred_product(node: Node, x, points, coef, row_term, colsum, k_all):
    """``K_c @ coef`` [B, T] for the kernel ``K`` [B, N] between ``x`` and ``points`` [N, F], centred as KernelCenterer.

    ``K_c @ coef = K @ coef - row_term - (mean_j K[:, j] - k_all) * colsum``.
    Each parameter is a float64 value stored as a float32 ``hi, lo`` pair along
    a leading axis of 2: ``coef`` [2, N, T], ``row_term`` and ``colsum`` [2, T],
    ``k_all`` [2]. Computed in float64 inside the op and rounded once: the
    centred kernel is a small difference of large kernel values (polynomial
    kernels on unscaled data, saturating sigmoids). Attrs as ``KernelProduct``;
    ``K`` is built chunk by chunk over ``points``.
    """
    a = node.attrs
    kind, gamma, coef0, degree = a["kernel"], float(a["gamma"]), float(a["coef0"]), a["degree"]
    batch, dtype = x.shape[0], x.dtype
    with float64_scope():
        xw = wide(x)
        c64, r64, s64, k64 = (joined(t[0], t[1]) for t in (coef, row_term, colsum, k_all))

        def body(carry, valid, offset, y_c, c_c):
            prod, rowsum = carry
            k = jnp.where(valid[None, :], _kernel(xw, y_c.astype(jnp.float64), kind, gamma, coef0, degree), 0.0)
            return prod + jnp.matmul(k, c_c, precision=_HIGHEST), rowsum + jnp.sum(k, axis=1)

        init = (jnp.zeros((batch, c64.shape[1]), jnp.float64), jnp.zeros((batch,), jnp.float64))
        prod, rowsum = _scan_rows(batch, (points, c64), body, init)
        shift = rowsum / points.shape[0] - k64
        return (prod - r64[None, :] - shift[:, None] * s64[None, :]).astype(dtype)


# --- Gaussians --------------------------------------------------------------------------


@register_rule("GaussianMahalanobis", attrs={"covariance_type": Attr("str", choices=("full", "tied", "diag", "spherical")),
                                             "head": Attr("str", "distance", choices=("distance", "log_density", "log_sum_exp"))})
def _gaussian_mahalanobis(node: Node, x, means, prec_chol, means_lo=None, prec_chol_lo=None, log_const=None):
    """Squared Mahalanobis distances [B, K] of ``x`` to ``means`` [K, F] under Cholesky factors of precisions.

    ``covariance_type`` (attr) fixes the layout of ``prec_chol``, as
    scikit-learn's ``precisions_cholesky_``: ``full`` [K, F, F], ``tied``
    [F, F], ``diag`` [K, F], ``spherical`` [K]. The value is
    ``|(x - mean_k) @ L_k|²``, computed from the centred differences in
    float64 inside the op (rounded once); the optional ``*_lo`` inputs are the
    float32 remainders of float64 ``means`` / ``prec_chol``. ``head`` (attr):
    ``distance`` (the distances), ``log_density`` (``log_const - d / 2``, with
    ``log_const`` [2, K] a float64 per-component constant as a float32 hi, lo
    pair) or ``log_sum_exp`` (its log-sum-exp over components, [B]): mixture
    log-densities, whose terms cancel, taken before rounding.
    """
    kind = node.attrs["covariance_type"]
    dtype = x.dtype
    with float64_scope():
        means = means.astype(jnp.float64) if means_lo is None else joined(means, means_lo)
        prec_chol = prec_chol.astype(jnp.float64) if prec_chol_lo is None else joined(prec_chol, prec_chol_lo)
        diff = wide(x)[:, None, :] - means[None, :, :]  # [B, K, F]
        if kind == "full":
            y = jnp.einsum("bkf,kfg->bkg", diff, prec_chol, precision=_HIGHEST)
        elif kind == "tied":
            y = jnp.einsum("bkf,fg->bkg", diff, prec_chol, precision=_HIGHEST)
        elif kind == "diag":
            y = diff * prec_chol[None, :, :]
        elif kind == "spherical":
            y = diff * prec_chol[None, :, None]
        else:
            raise ValueError(f"node {node.name!r}: unknown covariance_type {kind!r}")
        d = jnp.sum(y * y, axis=2)
        head = node.attrs["head"]
        if head != "distance":
            if log_const is None:
                raise ValueError(f"node {node.name!r}: head {head!r} needs the log_const input")
            d = joined(log_const[0], log_const[1])[None, :] - 0.5 * d
            if head == "log_sum_exp":
                d = jax.nn.logsumexp(d, axis=1)
        return d.astype(dtype)


@register_rule("LogSumExp", attrs={"axis": AXIS})
def _log_sum_exp(node: Node, x):
    """``log(sum(exp(x), axis))``, max-shifted for stability; ``axis`` (attr, default -1) is reduced away."""
    return jax.nn.logsumexp(x, axis=node.attrs["axis"])

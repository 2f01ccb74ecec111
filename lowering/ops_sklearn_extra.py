"""Ops for scikit-learn estimators that need more than the shared op families: ``KNNImpute``.

``KNNImpute`` (version 1) is scikit-learn's ``KNNImputer.transform`` on the
numbers: inputs ``x`` [B, F] (NaN marks a missing value), the stored
training rows ``points`` [N, F] (NaN where they miss a value) and ``fill``
[F] (the mean of each column's present training values). Attributes ``k``
(neighbours, 1 ≤ k ≤ N) and ``weights`` (``uniform`` or ``distance``).

The distance between a row and a training row is scikit-learn's
``nan_euclidean``: ``sqrt(F / n * sum((x - y)**2))`` over the ``n``
coordinates present in both, undefined when ``n = 0``. Each missing value
``x[b, j]`` becomes the (weighted) mean of column ``j`` over the ``k``
nearest training rows that have column ``j``; rows at an undefined distance
weigh 0; distance weights are ``1/d`` (only the rows at distance 0 count
where there are some). Where no candidate is at a defined distance the value
is ``fill[j]``. Ties between equal distances go to the lower training row
(scikit-learn's ``argpartition`` leaves that order unspecified). Memory is
O(B × N) per column, one column at a time.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from ..format.graph import Node
from .registry import Attr, register_rule

_HIGHEST = lax.Precision.HIGHEST


def _check_knn_impute(node: Node, shapes, budget: int) -> None:
    points = shapes[1]
    if points is not None and len(points) == 2 and node.attrs["k"] > points[0]:
        raise ValueError(f"k={node.attrs['k']} neighbours asked for, but only {points[0]} training rows are stored")


def _nan_euclidean(x, points):
    """[B, N] nan-euclidean distances (``inf`` where no coordinate is present in both)."""
    present_x = ~jnp.isnan(x)
    present_p = ~jnp.isnan(points)
    x0 = jnp.where(present_x, x, 0.0)
    p0 = jnp.where(present_p, points, 0.0)
    both = present_x[:, None, :] & present_p[None, :, :]
    diff = jnp.where(both, x0[:, None, :] - p0[None, :, :], 0.0)  # fused into the reduction by XLA
    sq = jnp.sum(diff * diff, axis=2)
    count = jnp.matmul(present_x.astype(x.dtype), present_p.astype(x.dtype).T, precision=_HIGHEST)
    dist = jnp.sqrt(sq / jnp.maximum(count, 1.0) * x.shape[1])
    return jnp.where(count == 0, jnp.inf, dist)


@register_rule("KNNImpute", attrs={"k": Attr("int", lo=1), "weights": Attr("str", "uniform", choices=("uniform", "distance"))},
               check=_check_knn_impute)
def _knn_impute(node: Node, x, points, fill):
    """KNNImputer's transform: missing entries of ``x`` from the ``k`` nearest training rows having that column."""
    k = int(node.attrs["k"])
    distance = node.attrs["weights"] == "distance"
    dist = _nan_euclidean(x, points)
    values = jnp.where(jnp.isnan(points), 0.0, points)

    def column(args):
        donor_missing, col_values, col_fill = args
        d = jnp.where(donor_missing[None, :], jnp.inf, dist)
        neg, idx = lax.top_k(-d, k)  # the k smallest, lower index first among equals
        dk = -neg
        finite = jnp.isfinite(dk)
        if distance:
            zero = dk == 0
            any_zero = jnp.any(zero, axis=1, keepdims=True)
            w = jnp.where(any_zero, zero.astype(x.dtype), jnp.where(finite, 1.0 / jnp.where(zero, 1.0, dk), 0.0))
        else:
            w = finite.astype(x.dtype)
        total = jnp.sum(w, axis=1)
        mean = jnp.sum(w * jnp.take(col_values, idx), axis=1) / jnp.where(total > 0, total, 1.0)
        return jnp.where(total > 0, mean, col_fill)

    imputed = lax.map(column, (jnp.isnan(points).T, values.T, fill)).T  # [B, F]
    return jnp.where(jnp.isnan(x), imputed, x)

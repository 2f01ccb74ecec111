"""Ops for meta-estimators beyond ``TreeEnsemble``.

- ``WeightedMedian``: scikit-learn's AdaBoost.R2 weighted median of per-estimator predictions.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..format.graph import Node
from .registry import register_rule


@register_rule("WeightedMedian")
def _weighted_median(node: Node, predictions, weights):
    """Weighted median of ``predictions`` [B, n] with estimator ``weights`` [n] (AdaBoost.R2).

    Per row: order the predictions ascending, accumulate their weights in that
    order, and return the prediction at the first position whose cumulative
    weight is ``>= 0.5 *`` the total. Tied predictions return the same value
    whatever their order, so the sort's tie rule does not matter.
    """
    order = jnp.argsort(predictions, axis=1)
    cdf = jnp.cumsum(weights[order], axis=1)
    first = jnp.argmax(cdf >= 0.5 * cdf[:, -1:], axis=1)
    chosen = jnp.take_along_axis(order, first[:, None], axis=1)
    return jnp.take_along_axis(predictions, chosen, axis=1)[:, 0]

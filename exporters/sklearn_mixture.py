"""scikit-learn Gaussian mixtures: GaussianMixture and BayesianGaussianMixture.

Both score a row by the weighted log-density of every component,
``-0.5 * |(x - mean_k) @ L_k|² + c_k``, with ``L_k`` the Cholesky factor of
the precision (``precisions_cholesky_``, all four covariance types) and
``c_k`` a per-component constant computed in float64 at export: the
Gaussian normaliser, ``log det L_k`` and the log mixture weight (for the
Bayesian mixture, the variational expectations of scikit-learn's
``_estimate_log_prob`` and ``_estimate_log_weights``). ``predict`` is the
argmax, ``predict_proba`` the softmax and ``score_samples`` the logsumexp.
"""

from __future__ import annotations

import numpy as np

from ._common import split64
from .registry import ExportContext, register_converter


def _log_det_cholesky(prec_chol: np.ndarray, covariance_type: str, n_components: int, n_features: int) -> np.ndarray:
    """``log det L_k`` per component from the Cholesky factors of the precisions."""
    if covariance_type == "full":
        return np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.full(n_components, np.log(np.diag(prec_chol)).sum())
    if covariance_type == "diag":
        return np.log(prec_chol).sum(axis=1)
    return n_features * np.log(prec_chol)


def _log_weights(model) -> np.ndarray:
    """Log mixture weights: plain for GaussianMixture, expected under the variational posterior otherwise."""
    concentration = getattr(model, "weight_concentration_", None)
    if concentration is None:
        return np.log(np.asarray(model.weights_, dtype=np.float64))
    from scipy.special import digamma

    if model.weight_concentration_prior_type == "dirichlet_process":
        a, b = (np.asarray(c, dtype=np.float64) for c in concentration)
        digamma_sum = digamma(a + b)
        stick = np.cumsum(digamma(b) - digamma_sum)[:-1]
        return digamma(a) - digamma_sum + np.concatenate([[0.0], stick])
    concentration = np.asarray(concentration, dtype=np.float64)
    return digamma(concentration) - digamma(concentration.sum())


def _bayesian_terms(model, n_features: int) -> np.ndarray:
    """The per-component terms BayesianGaussianMixture adds to the Gaussian log-density."""
    if getattr(model, "degrees_of_freedom_", None) is None:
        return 0.0
    from scipy.special import digamma

    dof = np.asarray(model.degrees_of_freedom_, dtype=np.float64)
    log_lambda = n_features * np.log(2.0) + digamma(0.5 * (dof - np.arange(n_features)[:, None])).sum(axis=0)
    return -0.5 * n_features * np.log(dof) + 0.5 * (log_lambda - n_features / np.asarray(model.mean_precision_))


def convert_gaussian_mixture(model, x: str, ctx: ExportContext) -> dict:
    """GaussianMixture / BayesianGaussianMixture: weighted component log-densities and their heads."""
    b = ctx.builder
    means = np.asarray(model.means_, dtype=np.float64)
    n_components, n_features = means.shape
    prec_chol = np.asarray(model.precisions_cholesky_, dtype=np.float64)
    const = (
        -0.5 * n_features * np.log(2 * np.pi)
        + _log_det_cholesky(prec_chol, model.covariance_type, n_components, n_features)
        + _bayesian_terms(model, n_features)
        + _log_weights(model)
    )
    (means_hi, means_lo), (prec_hi, prec_lo) = split64(means), split64(prec_chol)
    params = [
        b.tensor("mixture.means", means_hi, np.float32),
        b.tensor("mixture.precisions_cholesky", prec_hi, np.float32),
        b.tensor("mixture.means_lo", means_lo, np.float32),
        b.tensor("mixture.precisions_cholesky_lo", prec_lo, np.float32),
        b.tensor("mixture.log_const", np.stack(split64(const)), np.float32),
    ]
    # float64 inside the op, from float64 parameters kept as float32 hi + lo: the constant and the
    # distances cancel, so the log-densities and their log-sum-exp are taken before rounding
    weighted = b.op("GaussianMahalanobis", x, *params, covariance_type=model.covariance_type, head="log_density")
    return {
        "label": b.op("ArgMax", weighted),
        "probabilities": b.op("Softmax", weighted),
        "score_samples": b.op("GaussianMahalanobis", x, *params, covariance_type=model.covariance_type, head="log_sum_exp"),
    }


register_converter("sklearn.GaussianMixture", convert_gaussian_mixture)
register_converter("sklearn.BayesianGaussianMixture", convert_gaussian_mixture)

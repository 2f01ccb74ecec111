"""``kernel="precomputed"`` for scikit-learn's SVMs and KernelPCA: the input row is the kernel row.

With a precomputed kernel the model's input ``X`` holds the kernel values of
each query against the training rows ([B, n_train]), so both models are
affine in ``X``:

- libsvm decision values: ``X[:, support_] @ coef + intercept``, exported as
  one ``linear`` with the coefficients scattered to the support rows;
- KernelPCA: scikit-learn centres the kernel row (``KernelCenterer``:
  ``K - K_fit_rows_ - mean(K) + K_fit_all_``) and multiplies by the scaled
  eigenvectors ``A``; folded in float64 into ``X @ (A - 1 colsum(A) / n) +
  (K_fit_all_ - K_fit_rows_) @ A``.
"""

from __future__ import annotations

import numpy as np

from ._common import linear
from .registry import ExportContext

__all__ = ["precomputed_kernel_sum", "precomputed_kernel_pca"]


def precomputed_kernel_sum(model, x: str, ctx: ExportContext, coef: np.ndarray, intercept: np.ndarray) -> str:
    """libsvm's ``sum_s K(x, sv_s) coef[s, :] + intercept`` [B, M] when ``x`` is the precomputed kernel row."""
    weights = np.zeros((int(model.n_features_in_), coef.shape[1]))
    weights[np.asarray(model.support_, dtype=np.int64)] = coef
    return linear(ctx, x, weights.T, intercept, hint="svm.precomputed")


def precomputed_kernel_pca(model, x: str, ctx: ExportContext, alphas: np.ndarray) -> str:
    """KernelPCA ``transform`` of precomputed kernel rows: the centred kernel row times ``alphas``, folded."""
    centerer = model._centerer
    n = alphas.shape[0]
    weights = alphas - np.outer(np.full(n, 1.0 / n), alphas.sum(axis=0))
    bias = (float(centerer.K_fit_all_) - np.asarray(centerer.K_fit_rows_, dtype=np.float64)) @ alphas
    return linear(ctx, x, weights.T, bias, hint="kpca.precomputed")

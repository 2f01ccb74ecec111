"""scikit-learn decomposition: PCA, IncrementalPCA, TruncatedSVD, KernelPCA, FastICA (transform).

Linear projections centre first and then project, ``(x - mean_) @ W``
(whitening folded into ``W`` in float64), which is scikit-learn's
``x @ W - mean_ @ W`` rearranged to avoid float32 cancellation. A whitened
component whose variance is below machine epsilon is divided by ``eps``, as in
scikit-learn; its output is rounding noise amplified ~1e15 times, so it matches
scikit-learn only within the float32 conditioning bound
``(n + 2) · u32 · (|x - mean_| @ |W|ᵀ)`` (see the PCA tests), not within 1e-5.
``PCA.score_samples`` is the probabilistic-PCA log-likelihood with the
precision matrix factored as ``A Aᵀ - N Nᵀ`` at export.

KernelPCA keeps its training rows (``X_fit_``) in the file; the centred
kernel product ``K_c @ A`` (``A`` the scaled eigenvectors) is computed as
``K @ A - k_rows @ A - (mean_j K_ij - k_all) * sum(A)`` from the stored
``KernelCenterer`` statistics, with ``K`` built chunk by chunk.

NMF is not supported: its ``transform`` runs an iterative solver whose stopping
test is global over the batch, so a row's result depends on the other rows.
"""

from __future__ import annotations

import numpy as np

from ..format.errors import UnsupportedModelError
from ._common import linear, split64
from .registry import ExportContext, register_converter
from .sklearn_precomputed import precomputed_kernel_pca


def _centred_projection(ctx: ExportContext, x: str, mean, weight: np.ndarray, hint: str) -> str:
    """``(x - mean) @ weight.T`` (no centring when ``mean`` is None); ``weight`` is [K, F].

    The centring is folded into a float64 bias, ``x @ weight.T - mean @ weight.T``,
    so the whole projection is one float64 op rounded once, as scikit-learn's
    float64 transform is before a tree model rounds it to float32.
    """
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.zeros(weight.shape[0]) if mean is None else -(weight @ np.asarray(mean, dtype=np.float64))
    return linear(ctx, x, weight, bias, hint=hint)


def convert_pca(model, x: str, ctx: ExportContext) -> dict:
    """PCA / IncrementalPCA: centred projection, whitened like scikit-learn (scale clipped at eps)."""
    weight = np.asarray(model.components_, dtype=np.float64)
    if model.whiten:
        variance = np.asarray(model.explained_variance_)
        scale = np.sqrt(variance.astype(np.float64))
        scale[scale < np.finfo(variance.dtype).eps] = np.finfo(variance.dtype).eps
        weight = weight / scale[:, None]
    out = {"transform": _centred_projection(ctx, x, model.mean_, weight, "pca")}
    if hasattr(model, "score_samples"):
        score = _pca_log_likelihood(model, x, ctx)
        if score is not None:
            out["score_samples"] = score
    return out


def _pca_log_likelihood(model, x: str, ctx: ExportContext) -> str | None:
    """``-0.5 * (x - mean)ᵀ P (x - mean) - 0.5 * (F log 2π - fast_logdet(P))`` with ``P = get_precision()``.

    ``P`` is split at export as ``A Aᵀ - N Nᵀ`` from its eigenvalues (positive
    and negative parts), so the quadratic form follows scikit-learn's also when
    rounding has left ``P`` indefinite (``noise_variance_`` near 0), where
    scikit-learn still scores: ``-inf`` on every row unless ``det P > 0``
    (``fast_logdet``). With ``P`` that ill-conditioned, scikit-learn's finite
    scores are float64 rounding noise and agree only as far as that allows. ``None``
    (the method is left out) when ``get_precision`` itself fails, as
    scikit-learn's ``score_samples`` then does on every input.
    """
    b = ctx.builder
    try:
        precision = np.asarray(model.get_precision(), dtype=np.float64)
    except (np.linalg.LinAlgError, ValueError):  # singular covariance; infinities in the inversion lemma
        return None
    if not np.all(np.isfinite(precision)):
        return None
    sign, logdet = np.linalg.slogdet(precision)
    eigval, eigvec = np.linalg.eigh((precision + precision.T) / 2)
    const = -0.5 * (precision.shape[0] * np.log(2 * np.pi) - (logdet if sign > 0 else -np.inf))
    mean = b.tensor("pca.mean_row", np.asarray(model.mean_, dtype=np.float64)[None, :], np.float32)

    def quadratic(part: np.ndarray) -> str:
        factor = eigvec[:, part] * np.sqrt(np.abs(eigval[part]))  # factor @ factor.T == ±(that part of P)
        quad = b.op("GaussianMahalanobis", x, mean, b.tensor("pca.precision_factor", factor, np.float32), covariance_type="tied")
        return b.op("Squeeze", quad, axis=1)

    quad = quadratic(eigval > 0)
    if sign > 0 and np.any(eigval < 0):  # with det P <= 0 every score is -inf: the positive part cannot overflow it
        quad = b.op("Sub", quad, quadratic(eigval < 0))
    scaled = b.op("Mul", quad, b.tensor("pca.minus_half", np.array([-0.5]), np.float32))
    return b.op("Add", scaled, b.tensor("pca.log_const", np.array([const]), np.float32))


def convert_truncated_svd(model, x: str, ctx: ExportContext) -> dict:
    """TruncatedSVD: ``x @ components_.T`` (no centring)."""
    return {"transform": _centred_projection(ctx, x, None, np.asarray(model.components_), "svd")}


def convert_fast_ica(model, x: str, ctx: ExportContext) -> dict:
    """FastICA: ``(x - mean_) @ components_.T`` when whitened, else ``x @ components_.T``."""
    mean = model.mean_ if model.whiten else None
    return {"transform": _centred_projection(ctx, x, mean, np.asarray(model.components_), "ica")}


_KERNELS = ("linear", "poly", "rbf", "sigmoid", "cosine")


def convert_kernel_pca(model, x: str, ctx: ExportContext) -> dict:
    """KernelPCA: centred kernel against the stored training rows times the scaled eigenvectors.

    The linear kernel is exactly a centred projection, ``(x - μ) @ (X_fit - μ)ᵀ A``,
    so it is exported as one (folded in float64; no training rows stored).
    """
    b = ctx.builder
    if model.kernel not in _KERNELS + ("precomputed",):
        raise UnsupportedModelError(
            f"KernelPCA with kernel={model.kernel!r} is not supported; supported kernels: {', '.join(_KERNELS)}, precomputed"
        )
    eigenvalues = np.asarray(model.eigenvalues_, dtype=np.float64)
    vectors = np.asarray(model.eigenvectors_, dtype=np.float64)
    alphas = np.zeros_like(vectors)
    nz = np.flatnonzero(eigenvalues)
    alphas[:, nz] = vectors[:, nz] / np.sqrt(eigenvalues[nz])
    if model.kernel == "precomputed":  # the input is the kernel row: affine in it
        return {"transform": precomputed_kernel_pca(model, x, ctx, alphas)}
    fit_x = np.asarray(model.X_fit_, dtype=np.float64)
    if model.kernel == "linear":
        mean = fit_x.mean(axis=0)
        return {"transform": _centred_projection(ctx, x, mean, ((fit_x - mean).T @ alphas).T, "kpca")}
    _check_kernel_resolution(model, fit_x)
    gamma = model.gamma_ if hasattr(model, "gamma_") else model.gamma
    # K_c @ A = K @ A - (k_rows @ A) - (row_mean - k_all) * colsum(A), with KernelCenterer's k_rows, k_all,
    # all in float64 inside the op: the centred kernel is a small difference of large kernel values
    centerer = model._centerer
    k_rows = np.asarray(centerer.K_fit_rows_, dtype=np.float64)
    pair = lambda name, v: b.tensor(f"kpca.{name}", np.stack(split64(v)), np.float32)  # noqa: E731
    return {"transform": b.op(
        "KernelCentredProduct", x, b.tensor("kpca.X_fit", fit_x, np.float32), pair("alphas", alphas),
        pair("row_term", k_rows @ alphas), pair("alpha_colsum", alphas.sum(axis=0)),
        pair("k_all", np.array(float(centerer.K_fit_all_))),
        kernel=model.kernel, gamma=float(gamma if gamma is not None else 1.0 / fit_x.shape[1]),
        coef0=float(model.coef0), degree=_integral(model.degree),
    )}


#: Refuse a KernelPCA whose float32 kernel rounding exceeds this fraction of its centred kernel.
_KERNEL_RESOLUTION = 1e-3
#: Training rows the resolution check evaluates the kernel on.
_RESOLUTION_ROWS = 256


def _check_kernel_resolution(model, fit_x: np.ndarray) -> None:
    """Refuse a kernel that saturates: its centred values lie below the float32 rounding of the kernel.

    The transform reads only the centred kernel ``K_c``; the op computes in
    float64, which rounds ``K`` by about ``u64 · max|K|``. Where that is over
    ``_KERNEL_RESOLUTION · max|K_c|`` (on training rows) — ``tanh`` of large
    products, which is exactly 1 — nothing of ``K_c`` is left and the export is
    refused with the reason.
    """
    kernel = model._get_kernel(fit_x[:_RESOLUTION_ROWS], fit_x)
    centred = model._centerer.transform(kernel.copy())
    spread, size = float(np.max(np.abs(centred))), float(np.max(np.abs(kernel)))
    rounding = float(np.finfo(np.float64).eps) / 2 * size
    if not rounding <= _KERNEL_RESOLUTION * spread:
        raise UnsupportedModelError(
            f"KernelPCA(kernel={model.kernel!r}) saturates on its training data: the centred kernel spans "
            f"{spread:.3g} where float64 rounds kernel values of {size:.3g} by {rounding:.3g}, so its "
            "transform is float64 rounding noise that no program reproduces. Scale the inputs (e.g. StandardScaler) or lower gamma so the kernel "
            "does not saturate"
        )


def _integral(v: float) -> int | float:
    """``v`` as an int when it is integral (an integer power keeps negative bases finite)."""
    return int(v) if float(v).is_integer() else float(v)


def convert_nmf(model, x: str, ctx: ExportContext) -> dict:
    """NMF / MiniBatchNMF: not supported (see the module docstring)."""
    raise UnsupportedModelError(
        f"{type(model).__name__}.transform is not supported: it runs an iterative solver whose stopping test is "
        "global over the batch, so results depend on which rows are scored together. Supported decompositions: "
        "PCA, IncrementalPCA, TruncatedSVD, KernelPCA, FastICA"
    )


register_converter("sklearn.PCA", convert_pca)
register_converter("sklearn.IncrementalPCA", convert_pca)
register_converter("sklearn.TruncatedSVD", convert_truncated_svd)
register_converter("sklearn.FastICA", convert_fast_ica)
register_converter("sklearn.KernelPCA", convert_kernel_pca)
register_converter("sklearn.NMF", convert_nmf)
register_converter("sklearn.MiniBatchNMF", convert_nmf)

"""Data shared by the gradient-boosting parity tests."""

from __future__ import annotations

import numpy as np


def gbdt_data(n: int = 400, f: int = 6, nan: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Float32 features (a fraction ``nan`` set to NaN) and a nonlinear signal of the first four."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    signal = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3]
    if nan:
        X[rng.random(X.shape) < nan] = np.nan
    return X, signal


def quantile_labels(signal: np.ndarray, k: int, names=None) -> np.ndarray:
    """``k`` balanced classes cut at the signal's quantiles, optionally named."""
    y = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, k + 1)[1:-1]))
    return y if names is None else np.asarray(names, dtype=object)[y]

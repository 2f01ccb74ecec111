"""Parity bound for outputs that are sums of many float32 terms (linear models, kernel expansions).

Float32 evaluates ``sum_i t_i`` with an error of a few float32 ulps (eps = 1.2e-7) of ``sum_i |t_i|``,
not of the result: where large terms cancel (SGD-family models on unscaled data, polynomial kernels),
the error exceeds ``1e-5 * (1 + |native|)``. Such outputs are checked with the bound
``1e-5 * (1 + |native|) + TERM_TOL * scale``, ``scale`` being the row's ``sum_i |t_i|`` computed in
float64 from the source model; TERM_TOL is about 8 ulps.
"""

from __future__ import annotations

import numpy as np

from helpers import TOL

TERM_TOL = 1e-6


def assert_close_with_terms(ours, native, scale, what: str = "") -> float:
    """``|ours - native| <= 1e-5 (1 + |native|) + TERM_TOL * scale`` per row (infinities exact); return the worst error."""
    native = np.asarray(native, dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64)
    assert ours.shape == native.shape, f"{what}: shape {ours.shape} != native {native.shape}"
    err = np.where(ours == native, 0.0, np.abs(ours - native))
    allowance = TERM_TOL * np.asarray(scale, dtype=np.float64).reshape(-1, *([1] * (native.ndim - 1)))
    bound = np.where(np.isfinite(native), TOL * (1 + np.abs(native)) + allowance, 0.0)
    assert np.all(err <= bound), f"{what}: {np.sum(~(err <= bound))} values off; worst {np.max(err - bound)} over the bound"
    return float(np.max(err))

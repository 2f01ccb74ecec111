"""Shared test helpers: export → load round trip and parity assertions against native outputs."""

from __future__ import annotations

import os

import numpy as np

import mlejax as mle

#: Worst absolute error seen by assert_close per test (nodeid → error); reported by ``pytest --parity-report``.
WORST_ERRORS: dict[str, float] = {}

#: Default parity bound: |ours - native| <= TOL * (1 + |native|).
TOL = 1e-5


def roundtrip(model, X, tmp_path, name: str = "model.mle", **export_kwargs):
    """Export ``model`` (checked on ``X[:64]``) to ``tmp_path/name`` and load it back."""
    path = tmp_path / name
    mle.export_model(model, path, sample_input=X[:64] if X is not None else None, **export_kwargs)
    return mle.load_model(path)


def assert_close(ours, native, tol: float = TOL, what: str = "") -> float:
    """Assert |ours - native| <= tol * (1 + |native|) elementwise (NaN/inf must match); return the worst abs error."""
    ours = np.asarray(ours, dtype=np.float64)
    native = np.asarray(native, dtype=np.float64)
    assert ours.shape == native.shape, f"{what}: shape {ours.shape} != native {native.shape}"
    same = (ours == native) | (np.isnan(ours) & np.isnan(native))
    with np.errstate(invalid="ignore"):
        err = np.where(same, 0.0, np.abs(ours - native))
    bound = np.where(np.isfinite(native), tol * (1 + np.abs(native)), 0.0)  # infinities must match exactly
    bad = ~(same | (err <= bound))  # NaN where native is NaN would make the bound NaN
    assert not bad.any(), f"{what}: {bad.sum()} values off; worst abs error {np.nanmax(err)} (bound {tol}*(1+|native|))"
    worst = float(err.max()) if err.size else 0.0
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    if test:
        WORST_ERRORS[test] = max(WORST_ERRORS.get(test, 0.0), worst)
    return worst


def assert_same_labels(ours, native, what: str = "") -> None:
    """Labels must match exactly, dtype kind included (strings stay strings)."""
    ours = np.asarray(ours)
    native = np.asarray(native)
    assert ours.shape == native.shape, f"{what}: shape {ours.shape} != native {native.shape}"
    mism = int(np.sum(ours != native))
    assert mism == 0, f"{what}: {mism} of {native.size} labels differ"
    assert (ours.dtype.kind in "OU") == (native.dtype.kind in "OU"), f"{what}: dtype {ours.dtype} vs native {native.dtype}"


def check_methods(model, loaded, X, methods=("predict", "predict_proba", "predict_log_proba", "decision_function", "transform"), tol: float = TOL) -> dict:
    """Compare every method the native model has with the loaded model; return worst errors."""
    worst = {}
    for method in methods:
        if not hasattr(model, method):
            assert not hasattr(loaded, method), f"loaded model has {method} but the source does not"
            continue
        native = getattr(model, method)(X)
        ours = getattr(loaded, method)(X)
        is_label = method == "predict" and hasattr(model, "classes_")
        if is_label:
            assert_same_labels(ours, native, what=method)
            worst[method] = 0.0
        else:
            worst[method] = assert_close(ours, native, tol=tol, what=method)
    return worst

"""``apply`` of scikit-learn trees and tree ensembles: leaf node ids in sklearn's numbering and shapes.

DecisionTree → ``(n,)``, RandomForest / ExtraTrees → ``(n, n_estimators)``,
GradientBoostingClassifier → ``(n, n_estimators, K)`` (K = 1 when binary), GradientBoostingRegressor → ``(n, n_estimators)``;
both float64 in sklearn. Ids must be equal, on rows at every threshold
and one float32 step either side, single rows and NaN where the estimator
accepts NaN. IsolationForest has no ``apply`` in scikit-learn, nor in mlejax.
"""

import numpy as np
import pytest

from sklearn.ensemble import (
    ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier, GradientBoostingRegressor,
    IsolationForest, RandomForestClassifier, RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from helpers import roundtrip


def _data(nan: bool, seed: int = 0, n: int = 300, f: int = 5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 0.5) + 0.25 * (X[:, 4] > 0)
    if nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    return X, y


def edge_rows(model, X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` with one feature set to each split threshold (as float32) and one float32 step either side."""
    trees = [model] if hasattr(model, "tree_") else np.ravel(model.estimators_)
    rows = []
    for est in trees[:3]:
        t = est.tree_
        inner = np.flatnonzero((t.children_left >= 0) & np.isfinite(t.threshold))  # inf: a NaN-only split
        for node in inner[:20]:
            v = np.float32(t.threshold[node])
            for value in (np.nextafter(v, np.float32(-np.inf)), v, np.nextafter(v, np.float32(np.inf))):
                row = X[len(rows) % len(X)].copy()
                row[t.feature[node]] = value
                rows.append(row)
    return np.asarray(rows, np.float32)


def _check_apply(model, X, tmp_path):
    m = roundtrip(model, X, tmp_path)
    assert "apply" in m.methods
    for rows in (X, X[:1], X[-1:], edge_rows(model, X)):
        native = model.apply(rows)
        ours = m.apply(rows)
        assert ours.shape == native.shape, (ours.shape, native.shape)
        assert np.array_equal(ours, native), f"{int(np.sum(ours != native))} leaf ids differ"


CASES = [
    (DecisionTreeClassifier(max_depth=6, random_state=0), True),
    (DecisionTreeRegressor(random_state=0), True),
    (RandomForestClassifier(n_estimators=5, random_state=0), True),
    (RandomForestRegressor(n_estimators=4, max_depth=5, random_state=0), True),
    (ExtraTreesClassifier(n_estimators=4, random_state=0), True),
    (ExtraTreesRegressor(n_estimators=3, random_state=0), True),
    (GradientBoostingClassifier(n_estimators=4, max_depth=3, random_state=0), False),  # 3 classes: K = 3
    (GradientBoostingRegressor(n_estimators=5, random_state=0), False),
]


@pytest.mark.parametrize("model,nan", CASES, ids=[type(m).__name__ for m, _ in CASES])
def test_apply(model, nan, tmp_path):
    X, y = _data(nan)
    model.fit(X, y.astype(int) if hasattr(model, "predict_proba") else y)
    _check_apply(model, X, tmp_path)


def test_gradient_boosting_binary_apply(tmp_path):
    X, y = _data(False)
    model = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, y > 1)
    assert model.apply(X[:2]).shape == (2, 3, 1)
    _check_apply(model, X, tmp_path)


def test_multi_output_regressor_apply(tmp_path):
    X, y = _data(True)
    model = DecisionTreeRegressor(max_depth=5, random_state=0).fit(X, np.c_[y, -y])
    _check_apply(model, X, tmp_path)


def test_isolation_forest_has_no_apply(tmp_path):
    X, _ = _data(True)
    model = IsolationForest(n_estimators=3, random_state=0).fit(X)
    assert not hasattr(model, "apply")
    assert not hasattr(roundtrip(model, X, tmp_path), "apply")

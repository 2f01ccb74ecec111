"""The remaining univariate and sequential selectors, as a step and at the end of a pipeline."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.feature_selection import SelectFdr, SelectFpr, SelectFwe, SequentialFeatureSelector
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from helpers import check_methods, roundtrip


@pytest.mark.parametrize(
    "selector",
    [SelectFdr(alpha=0.05), SelectFpr(alpha=0.05), SelectFwe(alpha=0.05),
     SequentialFeatureSelector(LogisticRegression(max_iter=300), n_features_to_select=3, cv=2)],
    ids=lambda s: type(s).__name__,
)
def test_selectors(selector, tmp_path):
    X, y = make_classification(300, 10, n_informative=4, random_state=0)
    X = X.astype(np.float32).astype(np.float64)
    fitted = selector.fit(X, y)
    assert 0 < fitted.get_support().sum() < X.shape[1]  # a real selection
    check_methods(fitted, roundtrip(fitted, X, tmp_path, "s.mle"), X)
    pipe = make_pipeline(clone(selector), LogisticRegression(max_iter=300)).fit(X, y)
    check_methods(pipe, roundtrip(pipe, X, tmp_path, "p.mle"), X)

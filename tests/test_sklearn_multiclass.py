"""OneVsRestClassifier against scikit-learn."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

import mlejax as mle
from helpers import check_methods, roundtrip


@pytest.mark.parametrize(
    "base",
    [LogisticRegression(max_iter=500), DecisionTreeClassifier(max_depth=4, random_state=0), SVC(kernel="rbf"), RandomForestClassifier(5, max_depth=4, random_state=0)],
    ids=lambda m: type(m).__name__,
)
@pytest.mark.parametrize("n_classes,labels", [(2, None), (4, None), (3, ["x", "y", "z"])])
def test_one_vs_rest(base, n_classes, labels, tmp_path):
    X, y = make_classification(400, 6, n_informative=4, n_classes=n_classes, random_state=0)
    X = X.astype(np.float64)  # float32 values; sklearn computes the float64 reference
    X = X.astype(np.float32).astype(np.float64)
    if labels is not None:
        y = np.asarray(labels, dtype=object)[y]
    model = OneVsRestClassifier(base).fit(X, y)
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, X, methods=("predict", "predict_proba", "decision_function"))
    check_methods(model, m, X[:1], methods=("predict", "predict_proba", "decision_function"))


def test_multilabel_is_refused(tmp_path):
    X, _ = make_classification(100, 4, random_state=0)
    Y = (np.random.default_rng(0).random((100, 3)) > 0.5).astype(int)
    model = OneVsRestClassifier(LogisticRegression()).fit(X, Y)
    with pytest.raises(mle.UnsupportedModelError, match="multilabel"):
        mle.export_model(model, tmp_path / "m.mle")

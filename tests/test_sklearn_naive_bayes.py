"""Parity of scikit-learn naive Bayes classifiers with scikit-learn.

None of them accepts NaN in ``X``. CategoricalNB codes outside the trained
categories (where scikit-learn raises) are checked against mlejax's documented
rule, computed independently from the model's tables: that feature is left out.
``pytest -s`` prints the worst error per case.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.naive_bayes import BernoulliNB, CategoricalNB, ComplementNB, GaussianNB, MultinomialNB

from helpers import assert_close, check_methods, roundtrip

import mlejax as mle

LABELS = np.array(["ant", "bee", "cat", "dog"], dtype=object)


def _continuous(n_classes, strings, n=400, seed=0):
    X, y = make_classification(n, 6, n_informative=4, n_classes=n_classes, n_clusters_per_class=1, random_state=seed)
    return (X * 2 + 5).astype(np.float32), (LABELS[y] if strings else y)


def _counts(n_classes, strings, n=400, seed=0):
    """Non-negative integer counts whose rates depend on the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    rates = rng.uniform(0.2, 4.0, (n_classes, 8))
    return rng.poisson(rates[y]).astype(np.float32), (LABELS[y] if strings else y)


def _parity(model, X, tmp_path, name):
    m = roundtrip(model, X, tmp_path)
    worst = check_methods(model, m, X, methods=("predict", "predict_proba", "predict_log_proba"))
    check_methods(model, m, X[:1], methods=("predict", "predict_proba", "predict_log_proba"))
    print(f"WORST {name}: {worst}")
    return m


DATASETS = [(2, False), (4, True)]
DATA_IDS = ["binary", "4class-str"]


@pytest.mark.parametrize("n_classes,strings", DATASETS, ids=DATA_IDS)
@pytest.mark.parametrize("var_smoothing", [1e-9, 1e-2])
def test_gaussian_nb(n_classes, strings, var_smoothing, tmp_path):
    X, y = _continuous(n_classes, strings)
    model = GaussianNB(var_smoothing=var_smoothing).fit(X.astype(np.float64), y)
    _parity(model, X, tmp_path, f"GaussianNB[{n_classes}, vs={var_smoothing}]")


def test_gaussian_nb_priors_and_large_batch(tmp_path):
    X, y = _continuous(3, False, n=3000, seed=2)
    model = GaussianNB(priors=[0.2, 0.3, 0.5]).fit(X, y)
    _parity(model, X, tmp_path, "GaussianNB[priors, 3000 rows]")


@pytest.mark.parametrize("cls", [MultinomialNB, ComplementNB], ids=lambda c: c.__name__)
@pytest.mark.parametrize("n_classes,strings", DATASETS, ids=DATA_IDS)
@pytest.mark.parametrize("alpha", [1.0, 0.1])
def test_count_nb(cls, n_classes, strings, alpha, tmp_path):
    X, y = _counts(n_classes, strings)
    model = cls(alpha=alpha).fit(X, y)
    _parity(model, X, tmp_path, f"{cls.__name__}[{n_classes}, alpha={alpha}]")


def test_complement_nb_norm_and_single_class(tmp_path):
    X, y = _counts(3, False)
    _parity(ComplementNB(norm=True).fit(X, y), X, tmp_path, "ComplementNB[norm]")
    _parity(ComplementNB().fit(X, np.zeros(len(X), int)), X, tmp_path, "ComplementNB[1 class]")


@pytest.mark.parametrize("binarize", [0.0, 1.5, None], ids=["0", "1.5", "None"])
@pytest.mark.parametrize("n_classes,strings", DATASETS, ids=DATA_IDS)
def test_bernoulli_nb(binarize, n_classes, strings, tmp_path):
    X, y = _counts(n_classes, strings)
    if binarize is None:
        X = (X > 1).astype(np.float32)  # binarize=None expects 0/1 features
    else:
        X[::7] = binarize  # values exactly at the threshold binarise to 0
    model = BernoulliNB(binarize=binarize).fit(X, y)
    _parity(model, X, tmp_path, f"BernoulliNB[{n_classes}, binarize={binarize}]")


def _categories(n_classes, strings, n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = np.stack([(rng.integers(0, k, n) + y * (f % 2)) % k for f, k in enumerate([2, 3, 5, 4, 7])], axis=1)
    return X.astype(np.float32), (LABELS[y] if strings else y)


@pytest.mark.parametrize("n_classes,strings", DATASETS, ids=DATA_IDS)
@pytest.mark.parametrize("min_categories", [None, 8])
def test_categorical_nb(n_classes, strings, min_categories, tmp_path):
    X, y = _categories(n_classes, strings)
    model = CategoricalNB(alpha=0.5, min_categories=min_categories).fit(X, y)
    m = _parity(model, X, tmp_path, f"CategoricalNB[{n_classes}, min_categories={min_categories}]")
    # Fractional codes truncate toward zero, as scikit-learn's integer conversion does.
    F = X + np.float32(0.75)
    F[:, 0] = np.where(X[:, 0] == 0, -0.5, X[:, 0])
    check_methods(model, m, F, methods=("predict", "predict_proba", "predict_log_proba"))


def test_categorical_nb_out_of_range_codes(tmp_path):
    """Codes scikit-learn rejects (too large, negative, NaN) leave that feature out of the row's likelihood."""
    X, y = _categories(3, False)
    model = CategoricalNB().fit(X, y)
    E = X[:6].copy()
    E[0, 1], E[1, 2], E[2, 4], E[3, 0], E[4, 3], E[5, 1] = 3, 99, -1, np.nan, np.inf, -np.inf
    jll = np.tile(model.class_log_prior_, (len(E), 1))
    for f, table in enumerate(model.feature_log_prob_):
        for i, v in enumerate(E[:, f]):
            if np.isfinite(v) and 0 <= int(v) < table.shape[1] and v > -1:
                jll[i] += table[:, int(v)]
    expected = jll - np.logaddexp.reduce(jll, axis=1, keepdims=True)
    m = roundtrip(model, X, tmp_path)
    # NaN and infinity: scikit-learn raises, and so does mlejax unless asked not to check
    with pytest.raises(ValueError, match="NaN"):
        model.predict(E[3:4])
    with pytest.raises(mle.InputError, match=r"contains NaN: 1 column: X\[:, 0\]"):
        m.predict(E)
    assert_close(m.predict_log_proba(E, check_finite=False), expected)
    assert_close(m.predict_proba(E, check_finite=False), np.exp(expected))
    assert list(m.predict(E, check_finite=False)) == list(model.classes_[np.argmax(jll, axis=1)])

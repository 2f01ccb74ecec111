"""Every converter family compiles for iree-cpu, or mle-compile names the op IREE cannot take (issue 17).

Slow: one IREE compile per model. Each compiled method runs in IREE's native
runner and is compared with the source framework's own method.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from helpers import TOL, assert_close
from test_aot import _native_score, _padded, _runner

import mlejax as mle
from mlejax import aot

pytest.importorskip("iree.compiler")
pytestmark = pytest.mark.slow
rng = np.random.default_rng(3)
BATCH = 16


def _data(n=300, f=5):
    X = rng.standard_normal((n, f)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] + 0.3 * X[:, 2] ** 2 > 0).astype(int) + (X[:, 4] > 0.8).astype(int)
    return X, y, X[:, 0] * 2 + X[:, 1] ** 2


def _sklearn(name):
    from sklearn import cluster, decomposition, ensemble, linear_model, naive_bayes, neighbors, pipeline, preprocessing, svm, tree

    X, y, r = _data()
    Xp = np.abs(X)
    return {
        "logistic": (linear_model.LogisticRegression(max_iter=500), X, y),
        "ridge": (linear_model.Ridge(), X, r),
        "svc_rbf": (svm.SVC(probability=False), X, y),
        "knn": (neighbors.KNeighborsClassifier(5), X, y),
        "gaussian_nb": (naive_bayes.GaussianNB(), X, y),
        "multinomial_nb": (naive_bayes.MultinomialNB(), Xp, y),
        "decision_tree": (tree.DecisionTreeClassifier(max_depth=6, random_state=0), X, y),
        "extra_trees_reg": (ensemble.ExtraTreesRegressor(10, max_depth=6, random_state=0), X, r),
        "gradient_boosting": (ensemble.GradientBoostingClassifier(n_estimators=10, random_state=0), X, y),
        "hist_gradient_boosting": (ensemble.HistGradientBoostingRegressor(max_iter=10), X, r),
        "isolation_forest": (ensemble.IsolationForest(n_estimators=10, random_state=0), X, None),
        "scaler_pca": (pipeline.make_pipeline(preprocessing.StandardScaler(), decomposition.PCA(3)), X, None),
        "kmeans": (cluster.KMeans(3, n_init=2, random_state=0), X.astype(np.float64), None),  # float32 fit: predict refuses float32
        "polynomial_ridge": (pipeline.make_pipeline(preprocessing.PolynomialFeatures(2), linear_model.Ridge()), X, r),
    }[name]


SKLEARN = ["logistic", "ridge", "svc_rbf", "knn", "gaussian_nb", "multinomial_nb", "decision_tree", "extra_trees_reg",
           "gradient_boosting", "hist_gradient_boosting", "isolation_forest", "scaler_pca", "kmeans", "polynomial_ridge"]
METHODS = ("predict", "predict_proba", "decision_function", "transform", "score_samples")


def _compile_or_named_refusal(path, out):
    """compile(); an UnsupportedModelError must name the op (and node) IREE cannot take."""
    try:
        return aot.compile(path, out, target="iree-cpu", batch_sizes=[BATCH], cpu="generic")
    except mle.UnsupportedModelError as exc:
        assert "cannot compile op " in str(exc) or "custom calls" in str(exc), str(exc)
        pytest.skip(f"refused with a named op: {exc}")


@pytest.mark.parametrize("name", SKLEARN)
def test_sklearn_families(name, tmp_path):
    est, X, y = _sklearn(name)
    est.fit(X) if y is None else est.fit(X, y)
    path = tmp_path / "m.mle"
    mle.export_model(est, path, sample_input=X[:64])
    sig = _compile_or_named_refusal(path, tmp_path / "out")
    rows = X[:11]
    for method in sig["methods"]:
        if method not in METHODS:
            continue
        got = _native_score(tmp_path / "out", method, _padded(rows, BATCH), tmp_path)[: rows.shape[0]]
        native = getattr(est, method)(rows)
        if method == "predict" and sig["classes_"] is not None:
            assert np.array_equal(np.asarray(sig["classes_"])[got], native), f"{name}.predict"
        else:
            assert_close(got, native, TOL, what=f"{name}.{method}")


def test_keras_dense(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")])
    X = rng.standard_normal((40, 5)).astype(np.float32)
    path = tmp_path / "k.mle"
    mle.export_model(net, path, sample_input=X[:16])
    sig = _compile_or_named_refusal(path, tmp_path / "out")
    method = "predict" if "predict" in sig["methods"] else next(iter(sig["methods"]))
    got = _native_score(tmp_path / "out", method, X[:BATCH], tmp_path)
    assert_close(got, net.predict(X[:BATCH], verbose=0), TOL, what="keras")


def test_torch_lstm(tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 6, batch_first=True)
            self.fc = nn.Linear(6, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    torch.manual_seed(0)
    net = Net().eval()
    X = rng.standard_normal((BATCH, 7, 4)).astype(np.float32)
    path = tmp_path / "lstm.mle"
    mle.export_model(net, path, input_shape=(1, 7, 4))
    sig = _compile_or_named_refusal(path, tmp_path / "out")
    got = _native_score(tmp_path / "out", next(iter(sig["methods"])), X, tmp_path)
    with torch.no_grad():
        assert_close(got, net(torch.from_numpy(X)).numpy(), 1e-4, what="torch lstm")


def test_torch_embedding_int64_ids(tmp_path):
    """int64 token ids: the artifact takes int32 (JAX without x64), and signature.json says so."""
    torch = pytest.importorskip("torch")
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 4)
            self.fc = nn.Linear(4, 2)

        def forward(self, ids):
            return self.fc(self.embed(ids).mean(1))

    torch.manual_seed(0)
    net = Net().eval()
    ids = rng.integers(0, 20, (BATCH, 5)).astype(np.int64)
    path = tmp_path / "emb.mle"
    mle.export_model(net, path, sample_input=ids)
    sig = _compile_or_named_refusal(path, tmp_path / "out")
    assert sig["inputs"][0]["dtype"] == "int32"
    x_path, y_path = tmp_path / "ids.npy", tmp_path / "y.npy"
    np.save(x_path, ids.astype(np.int32))
    method = next(iter(sig["methods"]))
    subprocess.run(["env", "-i", _runner(), f"--module={tmp_path / 'out' / 'model.vmfb'}", f"--function={method}_b{BATCH}",
                    f"--input=@{x_path}", f"--output=@{y_path}"], cwd=tmp_path, check=True, capture_output=True)
    with torch.no_grad():
        assert_close(np.load(y_path), net(torch.from_numpy(ids)).numpy(), TOL, what="torch embedding")

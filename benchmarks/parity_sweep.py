"""Parity sweep over configurations mined from peer converter test suites (issue 19).

The configurations follow the estimators, hyper-parameters and data shapes that
Hummingbird (``tests/test_sklearn_*``), sklearn-onnx
(``tests/test_sklearn_*_converter*.py``) and onnxmltools
(``tests/xgboost|lightgbm|catboost``) test their converters on: random
``rand(100, 200)``-style data with ``max_depth`` in 1..12/None for trees, iris,
digits, breast cancer and diabetes for the rest, float32 inputs. The code is
our own. Each configuration is fitted, exported, loaded and run on its data and
on tree edge rows; every method the source has is compared with the native
result on the same float32-valued rows (labels exact, floats within
``1e-5 * (1 + |native|)``).

Prints one line per failure and the totals: configurations, passed, failed by
reason (``refused``: an UnsupportedModelError; ``error``: any other exception;
``values``: a float output over the bound; ``labels``: labels that differ;
``ties``: labels that differ only where the native float64 scores tie exactly;
``missing``: a method the source has and the model lacks).

    python benchmarks/parity_sweep.py                # every configuration
    python benchmarks/parity_sweep.py --only xgb lgbm --limit 20
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any, Callable

import numpy as np

TOL = 1e-5
METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform", "score_samples", "apply")


# --- data ------------------------------------------------------------------------------------

def _rand(n: int = 100, f: int = 200, classes: int | None = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, f)).astype(np.float32)
    y = rng.integers(classes, size=n) if classes else rng.normal(size=n)
    return X, y


def _dataset(name: str):
    from sklearn import datasets

    loader = {"iris": datasets.load_iris, "digits": datasets.load_digits, "cancer": datasets.load_breast_cancer,
              "diabetes": datasets.load_diabetes}[name]
    d = loader()
    return d.data.astype(np.float32), d.target


# --- configurations --------------------------------------------------------------------------

def configurations() -> list[tuple[str, str, Callable[[], Any], Callable[[], tuple]]]:
    """(group, name, make estimator, make data) for every configuration."""
    from sklearn import ensemble, linear_model, mixture, naive_bayes, neighbors, neural_network, svm, tree
    from sklearn.decomposition import PCA, KernelPCA, TruncatedSVD
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    out = []
    add = lambda g, n, m, d: out.append((g, n, m, d))  # noqa: E731
    depths = [1, 3, 8, 10, 12, None]
    # Hummingbird-style trees: rand(100, 200), classes 2/3, depth sweep
    for k in (2, 3):
        for d in depths:
            add("trees", f"DecisionTreeClassifier(max_depth={d}) k={k}", lambda d=d: tree.DecisionTreeClassifier(max_depth=d, random_state=0), lambda k=k: _rand(classes=k))
            add("trees", f"RandomForestClassifier(10, max_depth={d}) k={k}", lambda d=d: ensemble.RandomForestClassifier(10, max_depth=d, random_state=0), lambda k=k: _rand(classes=k))
            add("trees", f"ExtraTreesClassifier(10, max_depth={d}) k={k}", lambda d=d: ensemble.ExtraTreesClassifier(10, max_depth=d, random_state=0), lambda k=k: _rand(classes=k))
            add("gbdt", f"GradientBoostingClassifier(10, max_depth={d}) k={k}", lambda d=d: ensemble.GradientBoostingClassifier(n_estimators=10, max_depth=d, random_state=0), lambda k=k: _rand(classes=k))
            add("gbdt", f"HistGradientBoostingClassifier(10, max_depth={d if d != 1 else 2}) k={k}", lambda d=d: ensemble.HistGradientBoostingClassifier(max_iter=10, max_depth=d if d != 1 else 2), lambda k=k: _rand(classes=k))
    for d in depths:
        add("trees", f"DecisionTreeRegressor(max_depth={d})", lambda d=d: tree.DecisionTreeRegressor(max_depth=d, random_state=0), lambda: _rand(classes=None))
        add("trees", f"RandomForestRegressor(10, max_depth={d})", lambda d=d: ensemble.RandomForestRegressor(10, max_depth=d, random_state=0), lambda: _rand(classes=None))
        add("gbdt", f"GradientBoostingRegressor(10, max_depth={d})", lambda d=d: ensemble.GradientBoostingRegressor(n_estimators=10, max_depth=d, random_state=0), lambda: _rand(classes=None))
        add("gbdt", f"HistGradientBoostingRegressor(10, max_depth={d if d != 1 else 2})", lambda d=d: ensemble.HistGradientBoostingRegressor(max_iter=10, max_depth=d if d != 1 else 2), lambda: _rand(classes=None))
    add("trees", "IsolationForest(10)", lambda: ensemble.IsolationForest(n_estimators=10, random_state=0), lambda: _rand(classes=None))
    # sklearn-onnx style: real data sets, typical hyper-parameters
    for data in ("iris", "cancer", "digits"):
        for loss in ("hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron", "squared_error"):
            add("linear", f"SGDClassifier({loss}) {data}", lambda loss=loss: linear_model.SGDClassifier(loss=loss, max_iter=50, random_state=0), lambda data=data: _dataset(data))
        add("linear", f"LogisticRegression {data}", lambda: linear_model.LogisticRegression(max_iter=300), lambda data=data: _dataset(data))
        add("linear", f"RidgeClassifier {data}", lambda: linear_model.RidgeClassifier(), lambda data=data: _dataset(data))
        add("linear", f"Perceptron {data}", lambda: linear_model.Perceptron(random_state=0), lambda data=data: _dataset(data))
        add("nb", f"MultinomialNB {data}", lambda: naive_bayes.MultinomialNB(), lambda data=data: _dataset(data))
        add("nb", f"BernoulliNB {data}", lambda: naive_bayes.BernoulliNB(), lambda data=data: _dataset(data))
        add("nb", f"GaussianNB {data}", lambda: naive_bayes.GaussianNB(), lambda data=data: _dataset(data))
        add("nb", f"ComplementNB {data}", lambda: naive_bayes.ComplementNB(), lambda data=data: _dataset(data))
        for act in ("identity", "relu", "tanh", "logistic"):
            add("mlp", f"MLPClassifier({act}) {data}", lambda act=act: neural_network.MLPClassifier(activation=act, hidden_layer_sizes=(20,), max_iter=200, random_state=0), lambda data=data: _dataset(data))
        for cov in ("full", "tied", "diag", "spherical"):
            add("mixture", f"GaussianMixture({cov}) {data}", lambda cov=cov: mixture.GaussianMixture(3, covariance_type=cov, random_state=0), lambda data=data: _dataset(data))
        for kernel in ("linear", "poly", "rbf", "sigmoid"):
            add("svm", f"SVC({kernel}, probability) {data}", lambda kernel=kernel: svm.SVC(kernel=kernel, probability=True, random_state=0), lambda data=data: _dataset(data))
            add("svm", f"NuSVC({kernel}, ovo) {data}", lambda kernel=kernel: svm.NuSVC(kernel=kernel, probability=True, decision_function_shape="ovo", random_state=0), lambda data=data: _dataset(data))
        add("ensemble", f"Bagging(LogisticRegression) {data}", lambda: ensemble.BaggingClassifier(linear_model.LogisticRegression(max_iter=300), n_estimators=5, random_state=0), lambda data=data: _dataset(data))
        add("ensemble", f"AdaBoostClassifier {data}", lambda: ensemble.AdaBoostClassifier(n_estimators=10, random_state=0), lambda data=data: _dataset(data))
        add("neighbors", f"KNeighborsClassifier(5) {data}", lambda: neighbors.KNeighborsClassifier(5), lambda data=data: _dataset(data))
        add("pipeline", f"StandardScaler+RandomForest {data}", lambda: make_pipeline(StandardScaler(), ensemble.RandomForestClassifier(10, max_depth=6, random_state=0)), lambda data=data: _dataset(data))
        add("pipeline", f"MinMaxScaler+GradientBoosting {data}", lambda: make_pipeline(MinMaxScaler(), ensemble.GradientBoostingClassifier(n_estimators=10, random_state=0)), lambda data=data: _dataset(data))
        add("pipeline", f"RobustScaler+DecisionTree {data}", lambda: make_pipeline(RobustScaler(), tree.DecisionTreeClassifier(random_state=0)), lambda data=data: _dataset(data))
        for n in (2, 3):
            add("decomposition", f"PCA({n}) {data}", lambda n=n: PCA(n), lambda data=data: _dataset(data))
            add("decomposition", f"TruncatedSVD({n}) {data}", lambda n=n: TruncatedSVD(n, random_state=0), lambda data=data: _dataset(data))
            for kernel in ("poly", "rbf", "cosine"):
                add("decomposition", f"KernelPCA({n}, {kernel}) {data}", lambda n=n, kernel=kernel: KernelPCA(n, kernel=kernel), lambda data=data: (_dataset(data)[0][:300], None))
    for data in ("diabetes",):
        add("linear", f"LinearRegression {data}", lambda: linear_model.LinearRegression(), lambda: _dataset("diabetes"))
        add("linear", f"SGDRegressor {data}", lambda: linear_model.SGDRegressor(random_state=0), lambda: _dataset("diabetes"))
        add("ensemble", f"AdaBoostRegressor(LinearRegression) {data}", lambda: ensemble.AdaBoostRegressor(linear_model.LinearRegression(), n_estimators=10, random_state=0), lambda: _dataset("diabetes"))
        for kernel in ("linear", "poly", "rbf", "sigmoid"):
            add("svm", f"NuSVR({kernel}) standardised {data}", lambda kernel=kernel: make_pipeline(StandardScaler(), svm.NuSVR(kernel=kernel)), lambda: _dataset("diabetes"))
            add("svm", f"SVR({kernel}) standardised {data}", lambda kernel=kernel: make_pipeline(StandardScaler(), svm.SVR(kernel=kernel)), lambda: _dataset("diabetes"))
    rng = np.random.default_rng(0)
    ints = rng.integers(0, 100, size=(300, 10))
    add("linear", "SGDClassifier(log_loss) int64", lambda: linear_model.SGDClassifier(loss="log_loss", random_state=0), lambda: (ints, (ints[:, 0] + ints[:, 1] > 100).astype(int) + (ints[:, 2] > 50)))
    _gbdt_libraries(add)
    return out


def _gbdt_libraries(add) -> None:
    """onnxmltools-style XGBoost / LightGBM / CatBoost configurations (skipped where the library is missing)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    try:
        import xgboost as xgb
    except ImportError:
        xgb = None
    try:
        import lightgbm as lgb
    except ImportError:
        lgb = None
    try:
        import catboost as cb
    except ImportError:
        cb = None
    for data in ("iris", "cancer"):
        for n, d in ((3, 3), (10, 6), (1, 2)):
            if xgb:
                add("xgb", f"XGBClassifier({n}, max_depth={d}) {data}", lambda n=n, d=d: xgb.XGBClassifier(n_estimators=n, max_depth=d), lambda data=data: _dataset(data))
            if lgb:
                add("lgbm", f"LGBMClassifier({n}, num_leaves={2 ** d}) {data}", lambda n=n, d=d: lgb.LGBMClassifier(n_estimators=n, num_leaves=2 ** d, min_child_samples=5, verbose=-1), lambda data=data: _dataset(data))
            if cb:
                add("catboost", f"CatBoostClassifier({n}, depth={d}) {data}", lambda n=n, d=d: cb.CatBoostClassifier(iterations=n, depth=d, verbose=0, thread_count=1, random_seed=0), lambda data=data: _dataset(data))
        if xgb:
            add("pipeline", f"StandardScaler+XGBClassifier {data}", lambda: make_pipeline(StandardScaler(), xgb.XGBClassifier(n_estimators=30, max_depth=4)), lambda data=data: _dataset(data))
        if lgb:
            add("pipeline", f"StandardScaler+LGBMClassifier {data}", lambda: make_pipeline(StandardScaler(), lgb.LGBMClassifier(n_estimators=30, verbose=-1)), lambda data=data: _dataset(data))
        if cb:
            add("pipeline", f"StandardScaler+CatBoostClassifier {data}", lambda: make_pipeline(StandardScaler(), cb.CatBoostClassifier(iterations=30, depth=4, verbose=0, thread_count=1, random_seed=0)), lambda data=data: _dataset(data))
    for d in (3, 8):
        if xgb:
            add("xgb", f"XGBRegressor(10, max_depth={d})", lambda d=d: xgb.XGBRegressor(n_estimators=10, max_depth=d), lambda: _rand(classes=None))
        if lgb:
            add("lgbm", f"LGBMRegressor(10, num_leaves={2 ** d})", lambda d=d: lgb.LGBMRegressor(n_estimators=10, num_leaves=2 ** d, min_child_samples=5, verbose=-1), lambda: _rand(classes=None))
        if cb:
            add("catboost", f"CatBoostRegressor(10, depth={d})", lambda d=d: cb.CatBoostRegressor(iterations=10, depth=min(d, 6), verbose=0, thread_count=1, random_seed=0), lambda: _rand(classes=None))


# --- checking --------------------------------------------------------------------------------

def _native(model, method: str, X: np.ndarray):
    if method == "apply" and type(model).__module__.startswith("catboost"):
        return model.calc_leaf_indexes(X)
    if method == "apply" and type(model).__module__.startswith("lightgbm"):
        return model.predict(X, pred_leaf=True)
    if method == "decision_function" and type(model).__module__.startswith(("lightgbm", "xgboost", "catboost")):
        return None
    return getattr(model, method)(X)


def _tied(model, X: np.ndarray, rows: np.ndarray) -> bool:
    """Whether every differing label row has two native float64 scores that tie exactly."""
    scores = None
    for method in ("decision_function", "predict_proba"):
        if hasattr(model, method):
            try:
                scores = np.asarray(getattr(model, method)(X[rows].astype(np.float64)))
                break
            except Exception:  # noqa: BLE001 - a method the model lacks at run time
                continue
    if scores is None:
        return False
    if scores.ndim == 1:
        return bool(np.all(scores == 0))
    top = np.sort(scores, axis=1)
    return bool(np.all(top[:, -1] == top[:, -2]))


def check(model, X: np.ndarray, tmp: str) -> tuple[str, str]:
    """(reason, detail): reason ``passed`` or a failure reason."""
    import mlejax as mle

    path = os.path.join(tmp, "m.mle")
    try:
        mle.export_model(model, path)
    except mle.UnsupportedModelError as e:
        return "refused", str(e)[:160]
    m = mle.load_model(path)
    X32 = X.astype(np.float32)
    worst = 0.0
    for method in METHODS:
        if not hasattr(model, method) or (method == "apply" and not _has_apply(model)):
            continue
        try:
            with np.errstate(all="ignore"):
                native = _native(model, method, X32.astype(np.float64))
        except Exception:  # noqa: BLE001 - the source itself raises (e.g. transform of a predictor)
            continue
        if native is None:
            continue
        if not hasattr(m, method):
            return "missing", method
        ours = np.asarray(getattr(m, method)(X32))
        native = np.asarray(native)
        exact = method == "apply" or (method == "predict" and (_is_classifier(model) or native.dtype.kind != "f"))
        if exact:
            diff = np.flatnonzero(np.any((ours.reshape(native.shape) != native).reshape(len(native), -1), axis=1))
            if diff.size:
                if method == "predict" and _tied(model, X32, diff):
                    return "ties", f"{diff.size} rows"
                return "labels", f"{method}: {diff.size} rows"
            continue
        ours, native = ours.astype(np.float64).reshape(native.shape), native.astype(np.float64)
        same = (ours == native) | (np.isnan(ours) & np.isnan(native))
        err = np.where(same, 0.0, np.abs(ours - native) / (1 + np.abs(native)))
        w = float(np.max(err, initial=0.0))
        worst = max(worst, w)
        if not w <= TOL:
            return "values", f"{method}: worst relative error {w:.2e}"
    return "passed", f"worst {worst:.1e}"


def _is_classifier(model) -> bool:
    kind = getattr(model, "_estimator_type", None)  # CatBoostRegressor has a classes_ attribute too
    return kind == "classifier" if kind is not None else hasattr(model, "classes_")


def _has_apply(model) -> bool:
    return hasattr(model, "apply") and not type(model).__module__.startswith("sklearn.pipeline")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="groups to run (trees, gbdt, linear, nb, mlp, mixture, svm, ensemble, "
                        "neighbors, pipeline, decomposition, xgb, lgbm, catboost)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many configurations per group")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    counts: collections.Counter = collections.Counter()
    per_group: dict = collections.defaultdict(int)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for group, name, make, data in configurations():
            if args.only and group not in args.only:
                continue
            if args.limit is not None and per_group[group] >= args.limit:
                continue
            per_group[group] += 1
            try:
                X, y = data()
                model = make()
                model.fit(X, y) if y is not None else model.fit(X)
                reason, detail = check(model, X, tmp)
            except Exception as e:  # noqa: BLE001 - reported, the sweep goes on
                reason, detail = "error", f"{type(e).__name__}: {str(e)[:160]}"
                if os.environ.get("SWEEP_TRACEBACK"):
                    traceback.print_exc()
            counts[reason] += 1
            if reason != "passed":
                print(f"[{reason}] {group}: {name}: {detail}", flush=True)
    total = sum(counts.values())
    failed = {k: v for k, v in counts.items() if k != "passed"}
    print(f"\nconfigurations: {total}  passed: {counts['passed']}  failed: {sum(failed.values())} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(failed.items())) or 'none'})  [{time.perf_counter() - start:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

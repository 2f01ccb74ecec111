"""Issue 19 (parity round 2): valid models that export failed on or refused, each against the native predictions."""

import warnings

import numpy as np
import pytest

import mlejax as mle
from helpers import assert_close, assert_same_labels, check_methods, roundtrip

xgb = pytest.importorskip("xgboost")


# --- a selector that keeps no feature ----------------------------------------------------

def test_select_from_model_selecting_nothing(tmp_path):
    """scikit-learn's transform returns an (n, 0) array (with a warning); so does the model, and export checks it."""
    from sklearn.feature_selection import SelectFromModel
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    model = SelectFromModel(Lasso(alpha=0.01), threshold=1e5).fit(X, X[:, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "No features were selected"
        native = model.transform(X)
        report = mle.export_model(model, tmp_path / "m.mle", sample_input=X)
    assert native.shape == (50, 0)
    assert report["verification"]["transform"]["max_abs_error"] == 0.0
    m = mle.load_model(tmp_path / "m.mle")
    assert m.transform(X).shape == (50, 0) and m.transform(X[:1]).shape == (1, 0)


# --- PCA score_samples with an indefinite or failing precision ---------------------------

def _digits():
    from sklearn.datasets import load_digits

    return load_digits().data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pca_arpack_on_digits(seed, tmp_path):
    """PCA(svd_solver="arpack") keeps 63 of 64 components: noise_variance_ is rounding noise around 0.

    Export never fails. Where get_precision raises, scikit-learn's score_samples
    raises too and the method is left out; where det P <= 0 every score is -inf,
    in both; a well-conditioned arpack PCA matches within the usual bound.
    """
    from sklearn.decomposition import PCA

    X = _digits()
    model = PCA(svd_solver="arpack", random_state=seed).fit(X)
    m = roundtrip(model, X, tmp_path)
    assert_close(m.transform(X[:64]), model.transform(X[:64]))
    try:
        precision = model.get_precision()
    except ValueError:
        assert not hasattr(m, "score_samples")
        with pytest.raises(ValueError):
            model.score_samples(X[:2])
        return
    assert hasattr(m, "score_samples")
    if np.linalg.slogdet(precision)[0] <= 0:
        assert np.all(model.score_samples(X[:64]) == -np.inf)
        assert np.all(m.score_samples(X[:64]) == -np.inf)


def test_pca_arpack_well_conditioned(tmp_path):
    from sklearn.decomposition import PCA

    X = _digits()
    model = PCA(n_components=30, svd_solver="arpack", random_state=0).fit(X)
    m = roundtrip(model, X, tmp_path)
    assert_close(m.score_samples(X[:64]), model.score_samples(X[:64]))
    assert_close(m.score_samples(X[:1]), model.score_samples(X[:1]))


@pytest.mark.parametrize("noise", [-0.3, -2.0])
def test_pca_indefinite_precision(noise, tmp_path):
    """A precision with negative eigenvalues (noise_variance_ < 0): scikit-learn still scores, and so does the model."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))).astype(np.float32)
    model = PCA(n_components=3).fit(X)
    model.noise_variance_ = noise
    eigval = np.linalg.eigvalsh(model.get_precision())
    assert eigval.min() < 0
    m = roundtrip(model, X, tmp_path)
    native = model.score_samples(X[:64])
    assert_close(m.score_samples(X[:64]), native)


# --- XGBoost classifiers that were refused -----------------------------------------------

def _xgb_data(n=200):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:logistic"])
def test_xgb_classifier_single_class(objective, tmp_path):
    """One class: base_score 0, bounded to 1e-6 by XGBoost; predict gives column index 0, predict_proba two columns."""
    X = _xgb_data()
    model = xgb.XGBClassifier(n_estimators=3, max_depth=2, objective=objective).fit(X, np.zeros(len(X), int))
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, X, methods=("predict", "predict_proba", "apply"))
    assert_close(m.decision_function(X), model.predict(X, output_margin=True))
    assert m.predict_proba(X[:1]).shape == model.predict_proba(X[:1]).shape == (1, 2)


def test_xgb_classifier_reg_logistic(tmp_path):
    """XGBClassifier(objective="reg:logistic") predicts as binary:logistic: [1 - p, p], label p > 0.5."""
    X = _xgb_data()
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) > 0).astype(int)
    model = xgb.XGBClassifier(n_estimators=5, max_depth=3, objective="reg:logistic").fit(X, y)
    m = roundtrip(model, X, tmp_path)
    check_methods(model, m, X, methods=("predict", "predict_proba", "apply"))
    for rows in (X[:1], X[-1:]):
        assert_same_labels(m.predict(rows), model.predict(rows))
        assert_close(m.predict_proba(rows), model.predict_proba(rows))


def test_xgb_regressor_logistic_base_score_one(tmp_path):
    """reg:logistic on all-one targets: base_score 1, bounded to 1 - 1e-6 by XGBoost."""
    X = _xgb_data()
    model = xgb.XGBRegressor(n_estimators=2, objective="reg:logistic").fit(X, np.ones(len(X)))
    m = roundtrip(model, X, tmp_path)
    assert_close(m.predict(X), model.predict(X))
    assert_close(m.decision_function(X), model.predict(X, output_margin=True))


# --- KernelPCA whose kernel saturates -------------------------------------------------------

def test_kernel_pca_saturated_kernel_refused(tmp_path):
    """On raw digits tanh(<x, y> / 64 + 1) is exactly 1 in float64: the centred kernel is rounding noise; refused with the reason."""
    from sklearn.decomposition import KernelPCA

    model = KernelPCA(n_components=4, kernel="sigmoid").fit(_digits()[:300])
    with pytest.raises(mle.UnsupportedModelError, match="saturates.*float64 rounding noise"):
        mle.export_model(model, tmp_path / "m.mle")


@pytest.mark.parametrize("params", [{"kernel": "sigmoid", "gamma": 0.01}, pytest.param({"kernel": "rbf", "gamma": 1e-9}, marks=pytest.mark.slow)])
def test_kernel_pca_nearly_saturated_kernel(params, tmp_path):
    """Kernels within 1e-9 of 1 (lost to float32) are centred in float64 inside the op: exported and within the bound."""
    from sklearn.decomposition import KernelPCA

    X = _digits()[:300]
    model = KernelPCA(n_components=4, **params).fit(X)
    m = roundtrip(model, X.astype(np.float32), tmp_path)
    assert_close(m.transform(X[:64].astype(np.float32)), model.transform(X[:64]))


def test_kernel_pca_sigmoid_on_scaled_digits(tmp_path):
    """The same kernel on standardised digits does not saturate: exported and within the bound."""
    from sklearn.decomposition import KernelPCA
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit_transform(_digits()[:300]).astype(np.float32)
    model = KernelPCA(n_components=4, kernel="sigmoid").fit(X)
    m = roundtrip(model, X, tmp_path)
    assert_close(m.transform(X[:64]), model.transform(X[:64]))


# --- scalers feeding trees: thresholds folded into the scaler's input ------------------------

def _split_points(model) -> list[tuple[int, float]]:
    """(feature, threshold) of every split of a fitted tree model, in the space of its input."""
    if isinstance(model, xgb.XGBModel):
        df = model.get_booster().trees_to_dataframe()
        df = df[df.Feature != "Leaf"]
        return [(int(f[1:]), float(t)) for f, t in zip(df.Feature, df.Split)]
    if hasattr(model, "_predictors"):  # HistGradientBoosting
        return [(int(n["feature_idx"]), float(n["num_threshold"])) for it in model._predictors for p in it
                for n in p.nodes if not n["is_leaf"] and not n["is_categorical"]]
    trees = [model] if hasattr(model, "tree_") else np.ravel(model.estimators_)
    return [(int(f), float(t)) for e in trees for f, t in zip(e.tree_.feature, e.tree_.threshold) if f >= 0 and np.isfinite(t)]


def _to_raw(pre, j: int, value: float, width: int) -> float:
    """The raw value of column ``j`` that ``pre`` maps to ``value`` (float64 inverse of a scaler, ColumnTransformer too)."""
    from sklearn.compose import ColumnTransformer

    if isinstance(pre, ColumnTransformer):
        for name, trans, columns in pre.transformers_:
            out = pre.output_indices_[name]
            if out.start <= j < out.stop:
                if trans == "passthrough":
                    return value
                z = np.zeros((1, out.stop - out.start))
                z[0, j - out.start] = value
                return float(trans.inverse_transform(z)[0, j - out.start])
    z = np.zeros((1, width))
    z[0, j] = value
    return float(pre.inverse_transform(z)[0, j])


def _pipeline_edge_rows(pipe, X: np.ndarray, per_model: int = 60) -> np.ndarray:
    """float32 rows whose column sits at the raw image of a split threshold and 1-2 float32 steps either side."""
    pre, model = pipe[:-1], pipe[-1]
    points = _split_points(model)[:per_model]
    rows = []
    for i, (j, t) in enumerate(points):
        raw_col = j if not hasattr(pre[0], "output_indices_") else None
        r = np.float32(_to_raw(pre[0] if len(pre) == 1 else pre, j, t, X.shape[1]))
        for steps in (-2, -1, 0, 1, 2):
            v = r
            for _ in range(abs(steps)):
                v = np.nextafter(v, np.float32(np.inf if steps > 0 else -np.inf))
            row = X[i % len(X)].copy()
            row[j if raw_col is None else raw_col] = v
            rows.append(row)
    return np.asarray(rows, np.float32)


def _check_pipeline(pipe, X, tmp_path, edge=True):
    m = roundtrip(pipe, X, tmp_path)
    methods = [k for k in ("predict", "predict_proba") if hasattr(pipe, k)]
    sets = [X, X[:1]] + ([_pipeline_edge_rows(pipe, X)] if edge else [])
    worst = 0.0
    for rows in sets:
        native_rows = rows.astype(np.float64)  # float32 values, scaled by sklearn in float64
        for method in methods:
            ours, native = getattr(m, method)(rows), getattr(pipe, method)(native_rows)
            if method == "predict" and hasattr(pipe, "classes_"):
                assert_same_labels(ours, native, what=method)
            else:
                worst = max(worst, assert_close(ours, native, what=method))
    return worst


def _scaled_data(n=600, f=5, seed=0, nan=0.0):
    """Columns with offsets and spreads that make a float32 scaler round differently from sklearn's float64 one."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, f)) * [1.0, 37.0, 1e-3, 250.0, 3.0][:f] + [0.0, 1000.0, 5.0, -3e4, 1e5][:f]).astype(np.float32)
    z = (X - X.mean(0)) / X.std(0)
    y = (z[:, 0] + z[:, 1] > 0).astype(int) + (z[:, 2] - z[:, 3] > 0.5)
    if nan:
        X[rng.random(X.shape) < nan] = np.nan
    return X, y


def test_standard_scaler_xgb_classifier_three_classes(tmp_path):
    """The issue's case: float32 scaling differed from sklearn's float64 by tens of float32 steps near thresholds."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _scaled_data()
    pipe = make_pipeline(StandardScaler(), xgb.XGBClassifier(n_estimators=30, max_depth=4)).fit(X, y)
    _check_pipeline(pipe, X, tmp_path)


def test_standard_scaler_hist_gradient_boosting(tmp_path):
    """HistGradientBoosting compares the scaler's float64 output with float64 thresholds: folded with those."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _scaled_data(nan=0.05)
    pipe = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(X, y)
    _check_pipeline(pipe, X, tmp_path)


@pytest.mark.parametrize("scaler", ["minmax-clip", "robust", "maxabs", "chain"] + [
    pytest.param(k, marks=pytest.mark.slow) for k in ("yeo-johnson", "box-cox")])
def test_scalers_feeding_sklearn_trees(scaler, tmp_path):
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from sklearn.preprocessing import PowerTransformer

    X, y = _scaled_data(nan=0.05 if scaler != "chain" else 0.0)
    if scaler == "box-cox":
        X = np.abs(X) + np.float32(1e-3)
    steps = {
        "yeo-johnson": [PowerTransformer(), RandomForestClassifier(n_estimators=4, max_depth=6, random_state=0)],
        "box-cox": [PowerTransformer(method="box-cox"), DecisionTreeClassifier(max_depth=8, random_state=0)],
        "minmax-clip": [MinMaxScaler(clip=True), RandomForestClassifier(n_estimators=5, max_depth=6, random_state=0)],
        "robust": [RobustScaler(), DecisionTreeClassifier(random_state=0)],
        "maxabs": [MaxAbsScaler(), RandomForestClassifier(n_estimators=4, random_state=0)],
        "chain": [StandardScaler(), MinMaxScaler(), GradientBoostingRegressor(n_estimators=10, random_state=0)],
    }[scaler]
    pipe = make_pipeline(*steps).fit(X, y)
    _check_pipeline(pipe, X, tmp_path)


def test_column_transformer_scalers_feeding_trees(tmp_path):
    """Scaled and passthrough columns side by side: scaled ones fold, the others stay."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import RobustScaler, StandardScaler

    X, y = _scaled_data()
    ct = ColumnTransformer([("s", StandardScaler(), [1, 3]), ("r", RobustScaler(), [4])], remainder="passthrough")
    pipe = make_pipeline(ct, ExtraTreesClassifier(n_estimators=4, max_depth=8, random_state=0)).fit(X, y)
    _check_pipeline(pipe, X, tmp_path, edge=False)  # edge rows below map output columns back to raw ones
    rows = _column_transformer_edge_rows(pipe, X)
    m = roundtrip(pipe, X, tmp_path, name="again.mle")
    assert_close(m.predict_proba(rows), pipe.predict_proba(rows.astype(np.float64)))


def _column_transformer_edge_rows(pipe, X):
    ct, model = pipe[0], pipe[-1]
    raw_of = {}
    for name, _, columns in ct.transformers_:
        out = ct.output_indices_[name]
        for k, c in enumerate(columns):
            raw_of[out.start + k] = c
    rows = []
    for i, (j, t) in enumerate(_split_points(model)[:80]):
        r = np.float32(_to_raw(ct, j, t, X.shape[1]))
        for v in (np.nextafter(r, np.float32(-np.inf)), r, np.nextafter(r, np.float32(np.inf))):
            row = X[i % len(X)].copy()
            row[raw_of[j]] = v
            rows.append(row)
    return np.asarray(rows, np.float32)


# --- LightGBM and CatBoost behind scalers: folded too ---------------------------------------

def _gbdt_split_points(model) -> list[tuple[int, float]]:
    """(feature, threshold) of LightGBM / CatBoost numeric splits, in the space of the model's input."""
    if type(model).__module__.startswith("lightgbm"):
        df = model.booster_.trees_to_dataframe()
        df = df[df.split_feature.notna() & (df.decision_type == "<=")]
        names = model.booster_.feature_name()
        return [(names.index(f), float(t)) for f, t in zip(df.split_feature, df.threshold)]
    borders = model.get_borders()
    return [(int(f), float(b)) for f, bs in borders.items() for b in bs if abs(b) < 1e30]  # -FLT_MAX: NaN's border


@pytest.mark.parametrize("library", ["lightgbm", pytest.param("catboost", marks=pytest.mark.slow)])
def test_scaler_feeding_lightgbm_catboost(library, tmp_path):
    """LightGBM compares the scaler's float64 output with float64 thresholds; CatBoost rounds it to float32 first."""
    pytest.importorskip(library)
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _scaled_data(nan=0.05)
    if library == "lightgbm":
        import lightgbm as lgb

        model = lgb.LGBMClassifier(n_estimators=30, num_leaves=15, min_child_samples=5, verbose=-1)
    else:
        import catboost as cb

        model = cb.CatBoostClassifier(iterations=30, depth=4, verbose=0, random_seed=0, thread_count=1)
    pipe = make_pipeline(StandardScaler(), model).fit(X, y)
    global _split_points
    try:
        saved, _split_points = _split_points, _gbdt_split_points
        _check_pipeline(pipe, X, tmp_path)
    finally:
        _split_points = saved


# --- edge rows for tree models: every threshold, one float32 step either side, special values -----

_SPECIAL = np.array([0.0, -0.0, 1e30, -1e30, 3e38, -3e38, 1.4e-45, -1.4e-45, 1e-40, -1e-40, 1.1754942e-38], np.float32)


def _edge_rows(points, X, nan: bool) -> np.ndarray:
    """Rows of ``X`` with one column set to a threshold (rounded to float32) or one float32 step either side,
    then every column set to each special value (and NaN where the model accepts it)."""
    rows = []
    for i, (j, t) in enumerate(p for p in points if abs(p[1]) <= np.finfo(np.float32).max):
        t32 = np.float32(t)
        for v in (np.nextafter(t32, np.float32(-np.inf)), t32, np.nextafter(t32, np.float32(np.inf))):
            row = X[i % len(X)].copy()
            row[j] = v
            rows.append(row)
    for k, v in enumerate(list(_SPECIAL) + ([np.float32(np.nan)] if nan else [])):
        rows.append(np.full(X.shape[1], v, np.float32))  # every column at once
        row = X[k % len(X)].copy()
        row[k % X.shape[1]] = v  # one column
        rows.append(row)
    return np.asarray(rows, np.float32)


def _edge_model(kind: str, X, y):
    if kind == "sklearn-tree":
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(max_depth=6, random_state=0).fit(X, y)
    if kind == "sklearn-forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=5, max_depth=5, random_state=0).fit(X, y)
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    if kind == "xgboost":
        return xgb.XGBClassifier(n_estimators=10, max_depth=4).fit(X, y)
    if kind == "lightgbm":
        lgb = pytest.importorskip("lightgbm")
        return lgb.LGBMClassifier(n_estimators=10, num_leaves=8, min_child_samples=5, verbose=-1).fit(X, y)
    cb = pytest.importorskip("catboost")
    return cb.CatBoostClassifier(iterations=10, depth=3, verbose=0, random_seed=0, thread_count=1).fit(X, y)


@pytest.mark.parametrize("kind", ["sklearn-tree", "xgboost", "lightgbm"] + [
    pytest.param(k, marks=pytest.mark.slow) for k in ("sklearn-forest", "hgb", "catboost")])
def test_tree_edge_rows(kind, tmp_path):
    """Values at every threshold and one float32 step either side, ±0, ±1e30, ±3e38, subnormals, NaN: native labels and probabilities."""
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(300, 4)) * [1.0, 1e-3, 1e3, 1e-30]).astype(np.float32)  # one column in the subnormal-ish range
    X[:, 3] = np.where(rng.random(300) < 0.1, 0.0, X[:, 3])
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int) + (X[:, 2] > 500)
    nan = kind != "sklearn-forest"  # one model without NaN in training or edge rows
    if nan:
        X[rng.random(X.shape) < 0.05] = np.nan
    model = _edge_model(kind, X, y)
    points = _gbdt_split_points(model) if kind in ("lightgbm", "catboost") else _split_points(model)
    assert points
    rows = _edge_rows(points[:150], np.nan_to_num(X), nan)
    m = roundtrip(model, X, tmp_path)
    assert_same_labels(m.predict(rows).reshape(-1), model.predict(rows.astype(np.float64)).reshape(-1), what="predict")
    assert_close(m.predict_proba(rows), model.predict_proba(rows.astype(np.float64)), what="predict_proba")


def test_pca_feeding_a_tree_rounds_scikit_learns_float64_projection(tmp_path):
    """Rows moved onto every split threshold of the tree, in PCA space: the float64 projection decides their side.

    scikit-learn projects float64 rows in float64 and the tree rounds the
    result to float32; a float32 centring before the projection sends some of
    these rows the other way (2 of 2008 did, before the centring was folded
    into a float64 bias).
    """
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.tree import DecisionTreeRegressor

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float64)
    pipe = make_pipeline(PCA(n_components=20, random_state=0), DecisionTreeRegressor(random_state=0)).fit(X, y)
    pca, tree = pipe[0], pipe[-1].tree_
    rows = []
    for i, (f, t) in enumerate(zip(tree.feature, tree.threshold)):
        if f >= 0:
            x = X[i % len(X)]
            z = (x - pca.mean_) @ pca.components_[f]
            rows.append(x + (t - z) * pca.components_[f])
    R = np.concatenate([X, np.asarray(rows, dtype=np.float32).astype(np.float64)])  # float32-exact inputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mle.export_model(pipe, tmp_path / "pca_tree.mle", sample_input=X[:100])
    ours = mle.load_model(tmp_path / "pca_tree.mle").predict(R)
    np.testing.assert_array_equal(ours, pipe.predict(R))

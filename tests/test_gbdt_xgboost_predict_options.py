"""XGBoost's predict-time options against XGBoost itself: ``base_margin``, ``iteration_range``, pandas categories.

Every float is checked to |ours - native| <= 1e-5·(1+|native|) (the data has
NaN); labels and leaf indices must be equal.
"""

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")
pd = pytest.importorskip("pandas")

import jax  # noqa: E402

import mlejax as mle  # noqa: E402
from helpers import assert_close, assert_same_labels, roundtrip  # noqa: E402
from helpers_gbdt import gbdt_data, quantile_labels  # noqa: E402
from mlejax.format import read_mle, write_mle  # noqa: E402


def _margins(n, k, seed=1):
    return np.random.default_rng(seed).normal(size=(n, k)).astype(np.float32)


def _classifier(k, **kw):
    X, s = gbdt_data(300)
    model = xgb.XGBClassifier(n_estimators=6, max_depth=3, **kw).fit(X, quantile_labels(s, k))
    return model, X


def _leaves(leaves, n):
    """``pred_leaf`` as [batch, n_trees] (XGBoost, and the model, squeeze it to 1-D when one tree is used)."""
    return np.asarray(leaves).reshape(n, -1)


def _check_all(m, model, X, **options):
    """predict / predict_proba / decision_function with ``options`` against the wrapper, batch and single rows."""
    for rows in (slice(None), slice(0, 1), slice(-1, None)):
        x = X[rows]
        opts = {k: (v[rows] if k == "base_margin" else v) for k, v in options.items()}
        assert_close(m.decision_function(x, **opts), model.predict(x, output_margin=True, **opts), what="margin")
        if hasattr(model, "predict_proba"):
            assert_same_labels(m.predict(x, **opts), model.predict(x, **opts), what="labels")
            assert_close(m.predict_proba(x, **opts), model.predict_proba(x, **opts), what="proba")
        else:
            assert_close(m.predict(x, **opts), model.predict(x, **opts), what="predict")


# --- base_margin ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 3])
def test_base_margin_classifier(k, tmp_path):
    model, X = _classifier(k)
    m = roundtrip(model, X, tmp_path)
    margin = _margins(len(X), 1 if k == 2 else k)
    _check_all(m, model, X, base_margin=margin[:, 0] if k == 2 else margin)
    if k == 2:  # [batch, 1] is accepted too
        assert_close(m.predict_proba(X, base_margin=margin), model.predict_proba(X, base_margin=margin))
    _check_all(m, model, X)  # the default stays base_score


@pytest.mark.parametrize("objective", ["reg:squarederror", "count:poisson", "reg:logistic"])
def test_base_margin_regressor(objective, tmp_path):
    X, s = gbdt_data(300)
    y = {"reg:logistic": 1 / (1 + np.exp(-s))}.get(objective, np.exp(s / 3))
    model = xgb.XGBRegressor(n_estimators=6, max_depth=3, objective=objective).fit(X, y)
    m = roundtrip(model, X, tmp_path)
    _check_all(m, model, X, base_margin=_margins(len(X), 1)[:, 0])


def test_base_margin_multi_target_and_booster(tmp_path):
    X, s = gbdt_data(300)
    Y = np.c_[s, np.sin(s)]
    model = xgb.XGBRegressor(n_estimators=4, max_depth=3, tree_method="hist").fit(X, Y)
    m = roundtrip(model, X, tmp_path)
    margin = _margins(len(X), 2)
    _check_all(m, model, X, base_margin=margin)
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3},
                        xgb.DMatrix(X, label=quantile_labels(s, 3)), num_boost_round=4)
    path = tmp_path / "booster.mle"
    mle.export_model(booster, path, sample_input=X[:64])
    mb = mle.load_model(path)
    margin = _margins(len(X), 3)
    dm = xgb.DMatrix(X, base_margin=margin)
    assert_close(mb.predict(X, base_margin=margin), booster.predict(dm))
    assert_close(mb.decision_function(X, base_margin=margin), booster.predict(dm, output_margin=True))


def test_base_margin_run_and_jax_function(tmp_path):
    model, X = _classifier(3)
    m = roundtrip(model, X, tmp_path)
    margin = _margins(len(X), 3)
    native = model.predict_proba(X, base_margin=margin)
    proba = m.outputs.index("probabilities")
    assert_close(m.run([X, margin])[proba], native)
    assert_close(m.run([X], base_margin=margin)[proba], native)
    assert_close(m.run([X])[proba], model.predict_proba(X))
    f = m.jax_function("predict_proba")
    assert_close(jax.jit(f)(X, margin), native)
    assert_close(jax.jit(f)(X), model.predict_proba(X))
    with pytest.raises(TypeError, match="both positionally and by keyword"):
        m.predict_proba(X, margin, base_margin=margin)


def test_base_margin_errors(tmp_path):
    model, X = _classifier(3)
    m = roundtrip(model, X, tmp_path)
    with pytest.raises(mle.InputError, match=r"base_margin.*expected shape \['batch', 3\], got \[300, 2\]"):
        m.predict(X, base_margin=_margins(len(X), 2))
    with pytest.raises(mle.InputError, match="'base_margin' has 5 rows, but 'X' has 300"):
        m.predict(X, base_margin=_margins(5, 3))
    with pytest.raises(mle.InputError, match="base_margin"):
        m.predict(X, base_margin=_margins(len(X), 3)[:, 0])
    with pytest.raises(TypeError, match="accepts: base_margin, iteration_range"):
        m.predict(X, basemargin=1)
    with pytest.raises(TypeError, match=r"apply\(\) got unexpected keyword argument\(s\) \['base_margin'\]; .* accepts: iteration_range"):
        m.apply(X, base_margin=_margins(len(X), 3))
    with pytest.raises(mle.InputError, match="takes 1 to 2 input"):
        m.run([X, X, X])


# --- iteration_range -----------------------------------------------------------------------------
RANGES = [(0, 0), (0, 1), (0, 3), (1, 3), (2, 6), (3, 3), (4, 0), (0, 6)]


@pytest.mark.parametrize("k,parallel", [(2, 1), (3, 2), (4, 1)])
def test_iteration_range_classifier(k, parallel, tmp_path):
    """An iteration is n_classes × num_parallel_tree trees; base_score stays; apply has end × that many columns."""
    model, X = _classifier(k, num_parallel_tree=parallel)
    m = roundtrip(model, X, tmp_path)
    margin = _margins(len(X), 1 if k == 2 else k)
    margin = margin[:, 0] if k == 2 else margin
    for r in RANGES:
        _check_all(m, model, X, iteration_range=r)
        _check_all(m, model, X, iteration_range=r, base_margin=margin)
        if r[0] == 0:
            leaves = model.apply(X, iteration_range=r)
            assert _leaves(leaves, len(X)).shape[1] == (r[1] or 6) * parallel * (k if k > 2 else 1)
            assert_same_labels(m.apply(X, iteration_range=r), leaves, what=f"apply {r}")


def test_iteration_range_regressor_rf_and_dart(tmp_path):
    X, s = gbdt_data(300)
    reg = xgb.XGBRegressor(n_estimators=8, max_depth=3).fit(X, s)
    rf = xgb.XGBRFRegressor(n_estimators=5, max_depth=3).fit(X, s)  # one iteration of 5 trees
    dart = xgb.XGBRegressor(n_estimators=6, max_depth=3, booster="dart", rate_drop=0.3, skip_drop=0.0, random_state=0).fit(X, s)
    # dart: XGBoost's own inplace predict fails on an empty range for a single row, so none here.
    dart_ranges = [r for r in RANGES if r[0] != r[1]]
    for name, model, ranges in (("reg", reg, RANGES + [(7, 8)]), ("rf", rf, [(0, 1), (1, 1), (0, 0)]), ("dart", dart, dart_ranges)):
        m = roundtrip(model, X, tmp_path, name=f"{name}.mle")
        for r in ranges:
            _check_all(m, model, X, iteration_range=r)
            if r[0] == 0:
                assert_same_labels(m.apply(X, iteration_range=r), model.apply(X, iteration_range=r))


def test_iteration_range_best_iteration(tmp_path):
    """Every tree is stored: the default is best_iteration, a range may go past it (as XGBoost)."""
    X, s = gbdt_data(400)
    model = xgb.XGBRegressor(n_estimators=100, max_depth=3, learning_rate=0.5, early_stopping_rounds=3)
    model.fit(X[:300], s[:300], eval_set=[(X[300:], s[300:])], verbose=False)
    n_rounds = model.get_booster().num_boosted_rounds()
    assert model.best_iteration + 1 < n_rounds
    m = roundtrip(model, X, tmp_path)
    for r in (None, (0, 0), (0, n_rounds), (2, 0), (1, n_rounds - 1)):
        _check_all(m, model, X, **({} if r is None else {"iteration_range": r}))
        if r is None or r[0] == 0:
            opts = {} if r is None else {"iteration_range": r}
            assert_same_labels(m.apply(X, **opts), model.apply(X, **opts))


def test_iteration_range_booster_open_end(tmp_path):
    """A Booster reads (b, 0) as (b, n_rounds), a wrapper as its default range."""
    X, s = gbdt_data(300)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(X, label=s > 0), num_boost_round=6)
    path = tmp_path / "booster.mle"
    mle.export_model(booster, path, sample_input=X[:64])
    m = mle.load_model(path)
    dm = xgb.DMatrix(X)
    for r in ((0, 0), (2, 0), (1, 4), (5, 5)):
        assert_close(m.predict(X, iteration_range=r), booster.predict(dm, iteration_range=r))
        assert_close(m.decision_function(X, iteration_range=r), booster.predict(dm, iteration_range=r, output_margin=True))
    with pytest.raises(mle.InputError, match="out of range"):
        m.predict(X, iteration_range=(0, 7))
    with pytest.raises(xgb.core.XGBoostError):
        booster.predict(dm, iteration_range=(0, 7))


@pytest.mark.parametrize("bad,match", [((0, 7), "out of range"), ((4, 2), "must not exceed"), ((-1, 2), ">= 0"),
                                       ((1, 3), "starting at 0"), ("ab", "pair of ints"), ((0, 1.5), "pair of ints")])
def test_iteration_range_errors(bad, match, tmp_path):
    model, X = _classifier(3)
    m = roundtrip(model, X, tmp_path)
    method = m.apply if match == "starting at 0" else m.predict
    with pytest.raises(mle.InputError, match=match):
        method(X, iteration_range=bad)
    if isinstance(bad[0], int) and bad[0] >= 0 and isinstance(bad[1], int):  # XGBoost refuses these too
        with pytest.raises(xgb.core.XGBoostError):
            (model.apply if match == "starting at 0" else model.predict)(X, iteration_range=bad)


def test_iteration_range_programs_are_cached_and_jax_function(tmp_path):
    model, X = _classifier(3)
    m = roundtrip(model, X, tmp_path)
    m.predict(X, iteration_range=(1, 3))
    m.predict_proba(X, iteration_range=(1, 3))
    m.predict(X, iteration_range=(0, 6))  # the default range: the stored program
    assert len(m._ranged) == 1
    f = jax.jit(m.jax_function("decision_function", iteration_range=(1, 3)))
    assert_close(f(X), model.predict(X, output_margin=True, iteration_range=(1, 3)))
    leaf = m.jax_function("apply", iteration_range=(0, 2))
    assert_same_labels(np.asarray(leaf(X)), model.apply(X, iteration_range=(0, 2)).astype(np.int32))
    outputs = m.run([X], iteration_range=(0, 2))
    assert_close(outputs[m.outputs.index("probabilities")], model.predict_proba(X, iteration_range=(0, 2)))


# --- pandas category columns ---------------------------------------------------------------------
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Kyiv"]


def _frame(n, seed=0, categories=None):
    rng = np.random.default_rng(seed)
    c = rng.choice(CITIES, n).astype(object)
    c[rng.random(n) < 0.1] = None
    a = rng.normal(size=n)
    a[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"a": a, "city": pd.Categorical(c, categories=categories), "b": rng.normal(size=n)})


def _target(frame):
    return frame["a"].fillna(0).to_numpy() + frame["city"].isin(["Paris", "Oslo"]).to_numpy() * 1.5 - frame["b"].to_numpy() * 0.3


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_string_categories_recoded_as_xgboost(task, tmp_path):
    train = _frame(500)
    y = _target(train)
    if task == "regression":
        model = xgb.XGBRegressor(n_estimators=6, max_depth=3, enable_categorical=True, tree_method="hist").fit(train, y)
    else:
        model = xgb.XGBClassifier(n_estimators=6, max_depth=3, enable_categorical=True, tree_method="hist",
                                  max_cat_to_onehot=1).fit(train, quantile_labels(y, 2 if task == "binary" else 3))
    m = roundtrip(model, train, tmp_path)
    same = _frame(200, seed=1)  # training categories (sorted), NaN
    reordered = _frame(200, seed=2, categories=["Rome", "Kyiv", "Paris", "Lima", "Oslo"])
    subset = same[same["city"].isin(["Oslo", "Lima"]) | same["city"].isna()].copy()
    subset["city"] = subset["city"].cat.remove_unused_categories()
    for frame in (same, reordered, subset, same.iloc[:1], reordered.iloc[-1:]):
        _check_all(m, model, frame)
    assert_close(m.predict(same[["b", "city", "a"]]), model.predict(same))  # columns matched by name (XGBoost refuses)
    assert_same_labels(m.apply(reordered), model.apply(reordered))
    unseen = _frame(3, seed=3, categories=CITIES + ["Tokyo"])
    unseen.loc[1, "city"] = "Tokyo"
    with pytest.raises(mle.InputError, match="Tokyo"):
        m.predict(unseen)
    with pytest.raises(xgb.core.XGBoostError, match="Tokyo"):
        model.predict(unseen)


def test_categories_with_base_margin_and_iteration_range(tmp_path):
    train = _frame(500)
    model = xgb.XGBClassifier(n_estimators=6, max_depth=3, enable_categorical=True, tree_method="hist").fit(train, _target(train) > 0.5)
    m = roundtrip(model, train, tmp_path)
    frame = _frame(100, seed=4, categories=list(reversed(CITIES)))
    _check_all(m, model, frame, base_margin=_margins(len(frame), 1)[:, 0], iteration_range=(1, 4))


# --- the metadata, malformed ---------------------------------------------------------------------
def _rewrite(tmp_path, model, X, edit):
    m = roundtrip(model, X, tmp_path)
    f = read_mle(str(tmp_path / "model.mle"))
    meta, graph = dict(f.metadata), dict(f.graph)
    edit(meta, graph)
    write_mle(tmp_path / "bad.mle", metadata=meta, graph=graph, tensors={k: np.asarray(v) for k, v in f.tensors.items()})
    return m


@pytest.mark.parametrize("key,value,match", [
    ("input_defaults", {"base_margin": [0.0, 1.0]}, "input_defaults"),
    ("input_defaults", {"nope": [0.0, 0.0, 0.0]}, "input_defaults"),
    ("input_defaults", {"base_margin": ["a", 0, 0]}, "input_defaults"),
    ("input_defaults", [1, 2], "input_defaults"),
    ("iterations", {"indptr": [0, 3, 2], "default": [0, 2], "open_end": "default", "nodes": []}, "iterations.indptr"),
    ("iterations", {"indptr": [1, 18], "default": [0, 1], "open_end": "default", "nodes": ["x"]}, "iterations.indptr"),
    ("iterations", "edit:default", "iterations.default"),
    ("iterations", "edit:open_end", "iterations.open_end"),
    ("iterations", "edit:nodes", "iterations.nodes"),
    ("iterations", "edit:indptr", "trees"),
    ("batch_axis", {"nope": 1}, "batch_axis"),
    ("batch_axis", {"probabilities": 0}, "batch_axis"),
    ("batch_axis", {"probabilities": True}, "batch_axis"),
])
def test_malformed_metadata_is_a_format_error(key, value, match, tmp_path):
    model, X = _classifier(3)

    def edit(meta, graph):
        if isinstance(value, str) and value.startswith("edit:"):
            field = value[5:]
            spec = dict(meta[key])
            spec[field] = {"default": [0, 99], "open_end": "first", "nodes": ["Add.1"], "indptr": list(range(7))}[field]
            meta[key] = spec
        else:
            meta[key] = value

    _rewrite(tmp_path, model, X, edit)
    with pytest.raises(mle.MLEFormatError, match=match):
        mle.load_model(tmp_path / "bad.mle")


def test_malformed_tree_range_attr_is_a_format_error(tmp_path):
    model, X = _classifier(3)

    def edit(meta, graph):
        nodes = [dict(n) for n in graph["nodes"]]
        for n in nodes:
            if n["op"] == "TreeEnsemble":
                n["attrs"] = {**n["attrs"], "tree_range": [0, 10**6]}
        graph["nodes"] = nodes

    _rewrite(tmp_path, model, X, edit)
    m = mle.load_model(tmp_path / "bad.mle")
    with pytest.raises(mle.MLEFormatError, match="tree_range"):
        m.predict(X)

"""Tree lowering strategies: every strategy finds the same leaves; layout analysis; the heuristic.

The per-library parity suites (test_sklearn_*, test_gbdt_*) run under any
strategy with ``MLEJAX_TREE_STRATEGY=<name>``; here each strategy is checked
against the native model and against the others on forests that exercise NaN,
missing intervals, categorical splits and uneven depths.
"""

from __future__ import annotations

import numpy as np
import pytest

import mlejax
from mlejax.lowering.tree_strategies import STRATEGIES, analyze, choose, feasible

from helpers import roundtrip

ALL = STRATEGIES  # "auto" picks one of them


def _data(n: int = 600, f: int = 6, seed: int = 0, nan: float = 0.1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 - X[:, 2] > 0.3).astype(int) + (X[:, 3] > 1).astype(int)
    X[rng.random(X.shape) < nan] = np.nan
    return X, y


def _load_each(model, X, tmp_path):
    path = tmp_path / "m.mle"
    mlejax.export_model(model, path, sample_input=X[:32])
    return {s: mlejax.load_model(path, tree_strategy=s) for s in ALL}


def _check_all_strategies(native, X, tmp_path, expect: set[str]):
    models = _load_each(native, X, tmp_path)
    ref_proba = native.predict_proba(X)
    ran = set()
    for strategy, m in models.items():
        proba = m.predict_proba(X)
        np.testing.assert_allclose(proba, ref_proba, rtol=1e-5, atol=1e-5, err_msg=strategy)
        if hasattr(native, "apply") and "apply" in m.methods:
            np.testing.assert_array_equal(m.apply(X), native.apply(X), err_msg=strategy)  # shapes too
        ran.add(m.tree_strategy)
    assert expect <= ran, f"strategies that ran: {ran}, expected at least {expect}"


def test_random_forest_with_nan_every_strategy(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    X, y = _data()
    rf = RandomForestClassifier(n_estimators=7, max_depth=4, random_state=0).fit(X, y)
    _check_all_strategies(rf, X, tmp_path, {"traversal", "perfect", "bitvector", "gemm"})


def test_uneven_deep_tree_bitvector_and_traversal(tmp_path):
    from sklearn.tree import DecisionTreeClassifier

    X, y = _data(nan=0.0)
    tree = DecisionTreeClassifier(max_leaf_nodes=40, random_state=0).fit(X, y)
    _check_all_strategies(tree, X, tmp_path, {"traversal", "bitvector"})


def test_hgb_categorical_and_missing_every_strategy(tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = _data(nan=0.05)
    X[:, 4] = np.random.default_rng(1).integers(0, 12, len(X))
    X[::17, 4] = np.nan
    hgb = HistGradientBoostingClassifier(max_iter=6, max_leaf_nodes=8, categorical_features=[4], random_state=0).fit(X, y)
    _check_all_strategies(hgb, X, tmp_path, {"traversal", "bitvector", "gemm"})


def test_xgboost_missing_value_every_strategy(tmp_path):
    xgboost = pytest.importorskip("xgboost")
    X, y = _data(nan=0.0)
    X[::7, 1] = -999.0  # the user's missing value: a missing interval [m, m]
    X[::5, 2] = np.nan
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=3, missing=-999.0, n_jobs=1, random_state=0).fit(X, y)
    _check_all_strategies(model, X, tmp_path, {"traversal", "perfect", "bitvector", "gemm"})


def test_catboost_is_detected_oblivious(tmp_path):
    catboost = pytest.importorskip("catboost")
    X, y = _data(nan=0.05)
    model = catboost.CatBoostClassifier(iterations=8, depth=3, verbose=0, random_seed=0, allow_writing_files=False,
                                        thread_count=1).fit(X, y)
    m = roundtrip(model, X, tmp_path)
    m.predict_proba(X)  # batch 600: the heuristic's large-batch choice
    assert m.tree_strategy == "oblivious"
    _check_all_strategies(model, X, tmp_path, {"traversal", "oblivious", "perfect", "bitvector", "gemm"})


def test_heuristic_choices():
    oblivious = _layout(oblivious=True)
    regular = _layout(oblivious=False)
    assert choose("auto", oblivious, 1, "cpu") == "traversal"  # small batch
    assert choose("auto", oblivious, 4096, "cpu") == "oblivious"
    assert choose("auto", regular, 4096, "cpu") == "perfect"
    assert choose("auto", regular, 4096, "gpu") == "gemm"
    assert choose("auto", None, 4096, "cpu") == "traversal"  # no layout (malformed, or no host arrays)
    assert choose("oblivious", regular, 4096, "cpu") == "perfect"  # infeasible request: the heuristic's pick
    assert choose("bitvector", regular, 1, "cpu") == "bitvector"  # a feasible request is honoured at any batch
    assert set(feasible(regular)) == {"traversal", "perfect", "bitvector", "gemm"}


def _layout(oblivious: bool):
    # One perfect depth-2 tree in heap order; level 1 shares its split iff ``oblivious``.
    left = np.array([1, 3, 5, 3, 4, 5, 6])
    right = np.array([2, 4, 6, 3, 4, 5, 6])
    threshold = np.array([0.0, 1.0, 1.0 if oblivious else 2.0, 0, 0, 0, 0], np.float32)
    host = {"left": left, "right": right, "roots": np.array([0]), "feature": np.zeros(7, np.int32),
            "threshold": threshold, "default_left": np.zeros(7, bool), "missing_lo": np.zeros(0, np.float32),
            "missing_hi": np.zeros(0, np.float32), "cat_start": np.zeros(0, np.int32),
            "cat_len": np.zeros(0, np.int32), "cat_bits": np.zeros(0, np.uint32), "cat_other_left": np.zeros(0, bool)}
    layout = analyze(host, 4)
    assert layout is not None and layout.depth == 2
    return layout


@pytest.mark.parametrize("case", ["cycle", "shared", "out_of_range", "too_deep", "leaf_half"])
def test_analyze_rejects_malformed_forests(case):
    left = np.array([1, 1, 2])
    right = np.array([2, 1, 2])
    roots = np.array([0])
    depth = 3
    if case == "cycle":
        left = np.array([1, 0, 2])
    elif case == "shared":
        right = np.array([1, 1, 2])
    elif case == "out_of_range":
        right = np.array([7, 1, 2])
    elif case == "too_deep":
        depth = 0
    elif case == "leaf_half":
        right = np.array([2, 2, 2])  # node 1 points to itself on the left only
    host = {"left": left, "right": right, "roots": roots}
    assert analyze(host, depth) is None


def test_unknown_strategy_is_rejected(tmp_path):
    from sklearn.tree import DecisionTreeRegressor

    X, y = _data(nan=0.0)
    path = tmp_path / "m.mle"
    mlejax.export_model(DecisionTreeRegressor(max_depth=2).fit(X, y), path)
    with pytest.raises(ValueError, match="tree_strategy"):
        mlejax.load_model(path, tree_strategy="fastest")


def test_jax_function_without_host_arrays(tmp_path):
    """Under an outer jit with traced params the layout is unknown: the traversal runs, same result."""
    import jax

    from sklearn.ensemble import RandomForestRegressor

    X, y = _data()
    rf = RandomForestRegressor(n_estimators=4, max_depth=3, random_state=0).fit(X, y)
    m = roundtrip(rf, X, tmp_path)
    f = m.jax_function("predict")
    np.testing.assert_allclose(np.asarray(jax.jit(f)(X))[:, 0] if np.ndim(f(X)) == 2 else np.asarray(jax.jit(f)(X)),
                               rf.predict(X), rtol=1e-5, atol=1e-5)


def test_analyze_deep_wide_forest_is_traversal_only():
    """Deeper than the perfect strategy allows and too many leaves for bitvector: a slim layout, traversal only."""
    from mlejax.lowering.tree_strategies import BITVECTOR_MAX_LEAVES, PERFECT_MAX_DEPTH

    depth = PERFECT_MAX_DEPTH + 1
    # A left spine of ``depth`` inner nodes whose right children are leaves, plus a wide bottom:
    # one perfect subtree of depth 7 (128 leaves) hangs off the spine's end.
    left, right = [], []

    def add(l, r):
        left.append(l)
        right.append(r)
        return len(left) - 1

    def build(d):  # returns the id of a perfect subtree of depth d
        me = add(-1, -1)
        if d == 0:
            left[me], right[me] = me, me
        else:
            left[me], right[me] = build(d - 1), build(d - 1)
        return me

    root = add(-1, -1)
    node = root
    for _ in range(depth - 7 - 1):
        leaf = build(0)
        nxt = add(-1, -1)
        left[node], right[node] = nxt, leaf
        node = nxt
    sub = build(7)
    leaf = build(0)
    left[node], right[node] = sub, leaf
    host = {"left": np.array(left), "right": np.array(right), "roots": np.array([root])}
    layout = analyze(host, depth)
    assert layout is not None and layout.depth == depth
    assert layout.max_leaves == 128 + (depth - 7) > BITVECTOR_MAX_LEAVES
    assert layout.inner is None and feasible(layout) == ["traversal"]
    assert analyze(host, depth - 1) is None  # deeper than max_depth


@pytest.mark.parametrize("iterations", [1, 3, 40])
def test_oblivious_matches_traversal_for_any_tree_count(tmp_path, iterations):
    """The oblivious strategy splits the trees into at least two chunks; any count (odd, one) stays exact."""
    catboost = pytest.importorskip("catboost")
    X, y = _data(n=700, nan=0.05)
    model = catboost.CatBoostClassifier(iterations=iterations, depth=4, verbose=0, random_seed=0,
                                        allow_writing_files=False, thread_count=1).fit(X, y)
    path = tmp_path / "m.mle"
    mlejax.export_model(model, path)
    obl = mlejax.load_model(path, tree_strategy="oblivious")
    trav = mlejax.load_model(path, tree_strategy="traversal")
    for n in (1, 100, 700):
        np.testing.assert_allclose(obl.predict_proba(X[:n]), trav.predict_proba(X[:n]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(obl.predict_proba(X), model.predict_proba(X), rtol=1e-5, atol=1e-5)
    assert obl.tree_strategy == "oblivious"


def test_missing_used_detects_empty_intervals():
    """Empty missing intervals (LightGBM writes lo=+inf, hi=-inf) are dropped: decisions are one compare."""
    base = _layout(False)
    assert base.missing_used is False  # none stored
    left = np.array([1, 3, 5, 3, 4, 5, 6])
    right = np.array([2, 4, 6, 3, 4, 5, 6])
    for lo, hi, used in [(np.inf, -np.inf, False), (1.0, 0.5, False), (0.0, 0.0, True), (-1.0, 1.0, True)]:
        host = {"left": left, "right": right, "roots": np.array([0]), "feature": np.zeros(7, np.int32),
                "threshold": np.zeros(7, np.float32), "default_left": np.zeros(7, bool),
                "missing_lo": np.full(7, np.inf, np.float32), "missing_hi": np.full(7, -np.inf, np.float32),
                "cat_start": np.zeros(0, np.int32), "cat_len": np.zeros(0, np.int32),
                "cat_bits": np.zeros(0, np.uint32), "cat_other_left": np.zeros(0, bool)}
        host["missing_lo"][2], host["missing_hi"][2] = lo, hi
        assert analyze(host, 4).missing_used is used, (lo, hi)


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("n_trees", [1, 13])
def test_fused_steps_match_traversal_exactly(tmp_path, monkeypatch, lib, n_trees):
    """The fused perfect / bitvector steps (numeric forests on CPU): same bits as the traversal, any tile padding."""
    import jax

    from mlejax.lowering import tree_strategies as ts

    pytest.importorskip(lib)
    if jax.default_backend() != "cpu":
        pytest.skip("the fused steps are CPU-only")
    traced = []
    for name in ("_perfect_fused", "_bitvector_fused"):
        fn = getattr(ts, name)
        monkeypatch.setattr(ts, name, lambda *a, _fn=fn, _name=name: traced.append(_name) or _fn(*a))
    X, y = _data(n=700, nan=0.05)
    if lib == "xgboost":
        import xgboost

        model = xgboost.XGBClassifier(n_estimators=n_trees, max_depth=7, n_jobs=1).fit(X, y)  # 2 words at level 6
        strategies = ("perfect", "bitvector")
    else:
        import lightgbm

        model = lightgbm.LGBMClassifier(n_estimators=n_trees, num_leaves=40, min_child_samples=2, verbose=-1,
                                        n_jobs=1).fit(X, y)
        strategies = ("bitvector", "perfect")
    path = tmp_path / "m.mle"
    mlejax.export_model(model, path, sample_input=X[:32])
    trav = mlejax.load_model(path, tree_strategy="traversal")
    for s in strategies:
        m = mlejax.load_model(path, tree_strategy=s)
        for n in (100, 700):
            np.testing.assert_array_equal(m.predict_proba(X[:n]), trav.predict_proba(X[:n]), err_msg=s)
        if m.tree_strategy == s:
            assert f"_{s}_fused" in traced, (s, traced)
            continue
        assert s == "perfect"  # deeper than PERFECT_MAX_DEPTH: fell back
    np.testing.assert_allclose(trav.predict_proba(X), model.predict_proba(X), rtol=1e-5, atol=1e-5)


def test_jax_function_follows_load_model_tree_strategy(tmp_path):
    """``load_model(tree_strategy=...)`` reaches ``jax_function`` too: each strategy traces its own program, same values."""
    import jax

    from sklearn.ensemble import RandomForestRegressor

    X, y = _data()
    rf = RandomForestRegressor(n_estimators=4, max_depth=3, random_state=0).fit(X, y)
    path = tmp_path / "rf.mle"
    mlejax.export_model(rf, path, sample_input=X[:64])
    programs = {}
    for strategy in ("traversal", "bitvector"):
        f = mlejax.load_model(path, tree_strategy=strategy).jax_function("predict")
        np.testing.assert_allclose(np.asarray(f(X)).reshape(-1), rf.predict(X), rtol=1e-5, atol=1e-5)
        programs[strategy] = str(jax.make_jaxpr(f)(X))
    assert programs["traversal"] != programs["bitvector"]

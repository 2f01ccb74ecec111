"""mle-compile (issue 17): StableHLO and IREE artifacts, run by IREE's native runner with no Python.

Every comparison is against the source framework's own predictions (and the
loaded Model's, which must agree with them within the parity bound).
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from helpers import TOL, assert_close

import mlejax as mle
from mlejax import aot

pytest.importorskip("iree.compiler")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCORE_SH = os.path.join(ROOT, "deploy", "iree", "score.sh")
rng = np.random.default_rng(7)


def _runner() -> str:
    """IREE's native ``iree-run-module`` binary (shipped in the iree-base-runtime wheel)."""
    import iree._runtime_libs as libs

    path = os.path.join(os.path.dirname(libs.__file__), "iree-run-module")
    if not os.access(path, os.X_OK):
        pytest.skip("iree-run-module is not in the iree-base-runtime wheel")
    return path


def _native_score(out_dir, method: str, X: np.ndarray, tmp_path) -> np.ndarray:
    """``method`` on ``X`` by deploy/iree/score.sh and iree-run-module under ``env -i`` (no Python, no PATH)."""
    x_path, y_path = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x_path, np.ascontiguousarray(X, np.float32))
    proc = subprocess.run(
        ["env", "-i", f"IREE_RUN_MODULE={_runner()}", "/bin/sh", SCORE_SH, str(out_dir), method, str(x_path), str(y_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return np.load(y_path)


def _padded(X: np.ndarray, rows: int) -> np.ndarray:
    """``X`` with zero rows appended up to ``rows`` (signature.json's padding rule)."""
    return np.concatenate([X, np.zeros((rows - X.shape[0], *X.shape[1:]), X.dtype)])


def _tabular(n=400, f=6):
    X = rng.standard_normal((n, f)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 - X[:, 2] > 0.2).astype(int) + (X[:, 3] > 1).astype(int)
    return X, y


# --- the models of the issue: (fit() -> (native model, X), native truth(model, X) -> array, method) -------------
def _forest():
    from sklearn.ensemble import RandomForestClassifier

    X, y = _tabular()
    return RandomForestClassifier(12, max_depth=7, random_state=0).fit(X, y), X


def _xgboost():
    import xgboost as xgb

    X, y = _tabular()
    X[::9, 2] = np.nan
    return xgb.XGBClassifier(n_estimators=25, max_depth=4, random_state=0).fit(X, y), X


def _lightgbm():
    import lightgbm as lgb

    X, y = _tabular()
    X[::11, 1] = np.nan
    return lgb.LGBMClassifier(n_estimators=20, num_leaves=15, verbose=-1, random_state=0).fit(X, y), X


def _catboost():
    import catboost as cb

    X, y = _tabular()
    return cb.CatBoostClassifier(iterations=20, depth=4, verbose=0, random_seed=0, thread_count=1).fit(X, y), X


def _linear_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _tabular()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y), X


def _mlp():
    from sklearn.neural_network import MLPClassifier

    X, y = _tabular()
    return MLPClassifier((16, 8), max_iter=300, random_state=0).fit(X, y), X


class _CNN:
    """A small torch CNN (conv, pool, linear): fitted by construction (seeded weights)."""

    @staticmethod
    def make():
        import torch
        from torch import nn

        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                            nn.Flatten(), nn.Linear(6 * 4 * 4, 3), nn.Softmax(dim=-1)).eval()
        return net, rng.standard_normal((64, 1, 12, 12)).astype(np.float32)


def _torch_truth(net, X):
    import torch

    with torch.no_grad():
        return net(torch.from_numpy(X)).numpy()


def _proba(model, X):
    return model.predict_proba(X)


MODELS = {
    "forest": (_forest, _proba, "predict_proba"),
    "xgboost": (_xgboost, _proba, "predict_proba"),
    "lightgbm": (_lightgbm, _proba, "predict_proba"),
    "catboost": (_catboost, _proba, "predict_proba"),
    "linear_pipeline": (_linear_pipeline, _proba, "predict_proba"),
    "mlp": (_mlp, _proba, "predict_proba"),
    "cnn": (_CNN.make, _torch_truth, "predict"),
}
#: compiled in the default run (each IREE compile costs seconds); the rest with -m slow
DEFAULT = ("xgboost", "mlp")


def _export(name: str, tmp_path):
    make, truth, method = MODELS[name]
    native, X = make()
    path = tmp_path / f"{name}.mle"
    kwargs = {"input_shape": (1, *X.shape[1:])} if name == "cnn" else {"sample_input": X[:64]}
    mle.export_model(native, path, **kwargs)
    return native, X, path, truth, method


def _check_native_runner(name: str, tmp_path) -> float:
    native, X, path, truth, method = _export(name, tmp_path)
    out = tmp_path / "aot"
    sig = mle.aot.compile(path, out, target="iree-cpu", methods=[method], batch_sizes=[32], cpu="generic")
    assert sig["methods"][method]["functions"] == {"32": f"{method}_b32"}
    model = mle.load_model(path)
    rows = X[:23]  # a partial batch, padded as signature.json says
    got = _native_score(out, method, _padded(rows, 32), tmp_path)[: rows.shape[0]]
    expected = truth(native, rows)
    worst = assert_close(got, expected, TOL, what=f"{name}: iree-run-module vs the native framework")
    assert_close(got, getattr(model, method)(rows), TOL, what=f"{name}: iree-run-module vs Model")
    print(f"{name}: worst abs error vs native {worst:.2e}")
    return worst


@pytest.mark.parametrize("name", DEFAULT)
def test_native_runner_matches_model(name, tmp_path):
    _check_native_runner(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODELS if n not in DEFAULT])
def test_native_runner_matches_model_all(name, tmp_path):
    _check_native_runner(name, tmp_path)


# --- symbolic batch: jax.export of tree models -------------------------------------------------------------------
TREE_MODELS = ("forest", "xgboost", "lightgbm", "catboost")


def _symbolic_roundtrip(name: str, tmp_path) -> None:
    import jax

    native, X, path, truth, _ = _export(name, tmp_path)
    f = mle.load_model(path).jax_function("predict_proba")
    b = jax.export.symbolic_shape("b")[0]
    exported = jax.export.export(jax.jit(f))(jax.ShapeDtypeStruct((b, X.shape[1]), np.float32))
    call = jax.export.deserialize(exported.serialize()).call
    for n in (1, 130):
        assert_close(np.asarray(call(X[:n])), truth(native, X[:n]), TOL, what=f"{name}: symbolic batch, {n} rows")


@pytest.mark.parametrize("name", TREE_MODELS)
def test_symbolic_batch_export_trees(name, tmp_path):
    _symbolic_roundtrip(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["traversal", "perfect", "bitvector", "oblivious", "gemm"])
@pytest.mark.parametrize("name", TREE_MODELS)
def test_symbolic_batch_export_every_strategy(name, strategy, tmp_path, monkeypatch):
    monkeypatch.setenv("MLEJAX_TREE_STRATEGY", strategy)
    _symbolic_roundtrip(name, tmp_path)


def test_choose_without_a_batch_size():
    from mlejax.lowering.tree_strategies import analyze, choose

    # one depth-2 tree: nodes 0 (root), 1, 2 (inner), 3..6 leaves
    left, right = np.array([1, 3, 5, 3, 4, 5, 6]), np.array([2, 4, 6, 3, 4, 5, 6])
    host = {"left": left, "right": right, "roots": np.array([0]), "feature": np.array([0, 1, 1, 0, 0, 0, 0]),
            "threshold": np.zeros(7, np.float32), "default_left": np.ones(7, bool), "missing_lo": np.zeros(0),
            "missing_hi": np.zeros(0), "cat_start": np.zeros(0), "cat_len": np.zeros(0), "cat_bits": np.zeros(0),
            "cat_other_left": np.zeros(0)}
    layout = analyze(host, 2)
    assert choose("auto", layout, 1, "cpu") == "traversal"  # a small batch
    assert choose("auto", layout, None, "cpu") == choose("auto", layout, 4096, "cpu")  # unknown: as a large batch


def test_choose_bitvector_for_sparse_trees():
    """Deep but sparse trees: the bit vectors decide far fewer nodes than the padded perfect tree."""
    from mlejax.lowering.tree_strategies import PERFECT_WASTE, analyze, choose, perfect_waste

    # depth 4, inner nodes 0, 1, 2, 3, 7 (splits on distinct features), 6 leaves; the perfect tree has 15 nodes
    left, right = np.array([1, 3, 5, 7, 4, 5, 6, 9, 8, 9, 10]), np.array([2, 4, 6, 8, 4, 5, 6, 10, 8, 9, 10])
    host = {"left": left, "right": right, "roots": np.array([0]), "feature": np.arange(11),
            "threshold": np.zeros(11, np.float32), "default_left": np.ones(11, bool), "missing_lo": np.zeros(0),
            "missing_hi": np.zeros(0), "cat_start": np.zeros(0), "cat_len": np.zeros(0), "cat_bits": np.zeros(0),
            "cat_other_left": np.zeros(0)}
    layout = analyze(host, 8)
    assert layout is not None and layout.depth == 4 and layout.max_inner == 5 and layout.oblivious is None
    assert perfect_waste(layout) == 15 / 5 > PERFECT_WASTE
    assert choose("auto", layout, 4096, "cpu") == "bitvector"
    assert choose("auto", layout, 4096, "gpu") != "bitvector"  # the CPU rule only


# --- targets, signature.json, CLI --------------------------------------------------------------------------------
def test_stablehlo_target_symbolic_artifact(tmp_path):
    import jax

    native, X, path, truth, _ = _export("forest", tmp_path)
    out = tmp_path / "shlo"
    sig = mle.aot.compile(path, out, target="stablehlo", methods=["predict_proba", "predict"])
    entry = sig["methods"]["predict_proba"]
    assert entry["symbolic_batch"] and entry["artifacts"] == {"batch": "predict_proba.jaxexport"}
    assert entry["shape"] == ["batch", 3] and entry["dtype"] == "float32"
    call = jax.export.deserialize((out / "predict_proba.jaxexport").read_bytes()).call
    for n in (3, 70):
        assert_close(np.asarray(call(X[:n])), native.predict_proba(X[:n]), TOL, what="stablehlo artifact")
    labels = jax.export.deserialize((out / "predict.jaxexport").read_bytes()).call(X[:50])
    on_disk = json.loads((out / "signature.json").read_text())
    assert np.array_equal(np.asarray(on_disk["classes_"])[np.asarray(labels)], native.predict(X[:50]))
    assert on_disk["inputs"] == [{"name": "X", "dtype": "float32", "shape": ["batch", 6]}]
    import hashlib

    assert on_disk["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert on_disk["mlejax_version"] == mle.__version__ and "pad" in on_disk["padding"]


def test_cli_functions_per_method_and_batch(tmp_path, capsys):
    from sklearn.linear_model import LogisticRegression

    X, y = _tabular()
    native = LogisticRegression(max_iter=300).fit(X, y)
    path = tmp_path / "lr.mle"
    mle.export_model(native, path, sample_input=X[:64])
    out = tmp_path / "out"
    rc = aot.main([str(path), "-o", str(out), "--target", "iree-cpu", "--methods", "predict_proba,predict",
                   "--batch", "1,8", "--cpu", "generic"])
    assert rc == 0, capsys.readouterr().err
    sig = json.loads((out / "signature.json").read_text())
    assert sig["methods"]["predict"]["functions"] == {"1": "predict_b1", "8": "predict_b8"}
    assert sig["methods"]["predict_proba"]["functions"] == {"1": "predict_proba_b1", "8": "predict_proba_b8"}
    assert sig["classes_"] == [0, 1, 2] and sig["cpu"] == "generic" and sig["batch_sizes"] == [1, 8]
    one = _native_score(out, "predict_proba", X[:1], tmp_path)
    assert_close(one, native.predict_proba(X[:1]), TOL, what="predict_proba_b1")
    labels = _native_score(out, "predict", X[:8], tmp_path)
    assert np.array_equal(np.asarray(sig["classes_"])[labels], native.predict(X[:8]))
    # errors: an unknown method, bad batch sizes
    assert aot.main([str(path), "-o", str(tmp_path / "x"), "--methods", "transform"]) == 2
    assert "has no method ['transform']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="positive"):
        aot.compile(path, tmp_path / "y", batch_sizes=[0])


def test_iree_cuda_compiles_offline(tmp_path):
    from sklearn.tree import DecisionTreeRegressor

    X, y = _tabular()
    path = tmp_path / "tree.mle"
    mle.export_model(DecisionTreeRegressor(max_depth=4, random_state=0).fit(X, y), path, sample_input=X[:64])
    sig = aot.compile(path, tmp_path / "cuda", target="iree-cuda", batch_sizes=[16], cuda_target="sm_80")
    assert sig["cuda_target"] == "sm_80" and sig["methods"]["predict"]["functions"] == {"16": "predict_b16"}
    assert (tmp_path / "cuda" / "model.vmfb").stat().st_size > 0


def test_host_steps_are_refused(tmp_path):
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], 200), "x": rng.standard_normal(200)})
    y = (frame["color"] == "red").astype(int)
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ["color"]), remainder="passthrough"),
                         LogisticRegression()).fit(frame, y)
    path = tmp_path / "strings.mle"
    mle.export_model(pipe, path, sample_input=frame[:50])
    with pytest.raises(mle.UnsupportedModelError, match=r"string category codes of input columns \[0\].*cannot run inside"):
        aot.compile(path, tmp_path / "o", target="stablehlo")


def test_iree_failure_names_the_graph_op(tmp_path):
    """An IREE error located in a lowering rule's source is reported as that graph op and node."""
    import inspect

    from sklearn.linear_model import LogisticRegression

    from mlejax.lowering.registry import get_rule

    X, y = _tabular()
    path = tmp_path / "lr.mle"
    mle.export_model(LogisticRegression(max_iter=300).fit(X, y), path, sample_input=X[:64])
    model = mle.load_model(path)
    node = model.graph.nodes[0]
    fn = get_rule(node).fn
    line = inspect.getsourcelines(fn)[1] + 1
    message = (f"{inspect.getsourcefile(fn)}:{line}:8: error: 'stablehlo.reshape' op result #0 must be statically shaped\n"
               f"{inspect.getsourcefile(fn)}:{line}:8: note: see current operation")
    text = aot._iree_failure(model, "iree-cpu", message)
    assert f"cannot compile op {node.op} (node {node.name!r})" in text
    assert "'stablehlo.reshape' op result #0 must be statically shaped" in text


def test_catboost_ctr_is_refused(tmp_path):
    import catboost as cb

    X = np.empty((200, 2), dtype=object)
    X[:, 0] = rng.standard_normal(200)
    X[:, 1] = rng.choice(["a", "b", "c"], 200)
    y = (X[:, 1] == "a").astype(int)
    model = cb.CatBoostClassifier(iterations=5, depth=2, cat_features=[1], verbose=0, random_seed=0, thread_count=1).fit(X, y)
    path = tmp_path / "ctr.mle"
    mle.export_model(model, path, sample_input=X[:50])
    with pytest.raises(mle.UnsupportedModelError, match="CatBoost categorical hashing and CTR statistics"):
        aot.compile(path, tmp_path / "o")

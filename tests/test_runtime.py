"""Runtime behaviour: API surface, input checks, buckets, jax_function, isolation from frameworks."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

import mlejax as mle
from helpers import assert_close, assert_same_labels, roundtrip


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(500, 6, n_informative=4, n_classes=3, random_state=1)
    return X.astype(np.float32), np.asarray(["a", "b", "c"], dtype=object)[y]


@pytest.fixture(scope="module")
def forest(data):
    X, y = data
    return RandomForestClassifier(n_estimators=8, max_depth=6, random_state=0).fit(X, y)


def test_sklearn_attributes_and_methods(forest, data, tmp_path):
    X, _ = data
    m = roundtrip(forest, X, tmp_path)
    assert m.n_features_in_ == 6
    assert list(m.classes_) == ["a", "b", "c"]
    assert hasattr(m, "predict_proba") and not hasattr(m, "transform") and not hasattr(m, "decision_function")
    with pytest.raises(AttributeError, match="has no decision_function"):
        m.decision_function(X)
    outs = m.run([X])
    assert len(outs) == len(m.outputs)
    by_name = dict(zip(m.outputs, outs))
    assert_close(by_name["probabilities"], forest.predict_proba(X))
    assert_same_labels(by_name["label"], forest.predict(X))


def test_regressor_has_no_proba(tmp_path, data):
    X, y = data
    reg = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, X[:, 0])
    m = roundtrip(reg, X, tmp_path)
    assert not hasattr(m, "predict_proba") and m.classes_ is None
    assert_close(m.predict(X), reg.predict(X))


def test_input_errors(forest, data, tmp_path):
    X, _ = data
    m = roundtrip(forest, X, tmp_path)
    with pytest.raises(mle.InputError, match="X has 5 features, but this model is expecting 6"):
        m.predict(X[:, :5])
    with pytest.raises(mle.InputError, match="reshape"):
        m.predict(X[0])
    with pytest.raises(mle.InputError, match="dtype"):
        m.predict(np.array([["a"] * 6]))
    with pytest.raises(mle.InputError, match="0 rows"):
        m.predict(X[:0])
    with pytest.raises(ValueError):  # InputError is a ValueError, as in sklearn
        m.predict(X[:, :5])


def test_input_kinds(forest, data, tmp_path):
    X, _ = data
    m = roundtrip(forest, X, tmp_path)
    expected = forest.predict_proba(X[:5])
    assert_close(m.predict_proba(X[:5].tolist()), expected)
    assert_close(m.predict_proba(X[:5].astype(np.float64)), expected)
    assert_close(m.predict_proba(jnp.asarray(X[:5])), expected)
    torch = pytest.importorskip("torch")
    assert_close(m.predict_proba(torch.from_numpy(X[:5])), expected)


def test_pandas_columns_checked_by_name(data, tmp_path):
    X, y = data
    cols = [f"f{i}" for i in range(6)]
    df = pd.DataFrame(X, columns=cols)
    model = LogisticRegression(max_iter=300).fit(df, y)
    m = roundtrip(model, df, tmp_path)
    assert list(m.feature_names_in_) == cols
    assert_close(m.predict_proba(df), model.predict_proba(df))
    shuffled = df[cols[::-1]]  # same columns, other order: reordered by name
    assert_close(m.predict_proba(shuffled), model.predict_proba(df))
    with pytest.raises(mle.InputError, match=r"unseen at fit time: \['zz'\].*missing: \['f5'\]"):
        m.predict(df.rename(columns={"f5": "zz"}))


def test_batch_buckets_bound_compilations(forest, data, tmp_path):
    X, _ = data
    m = roundtrip(forest, X, tmp_path)
    for n in (1, 3, 5, 7, 8, 100, 120, 128):
        assert_close(m.predict_proba(X[:n]), forest.predict_proba(X[:n]))
    padded = sorted({key[1][0][0] for key in m.program.compile_seconds})
    assert padded == [1, 4, 8, 128]  # powers of two: 1, 3→4, 5/7/8→8, 100/120/128→128
    exact = mle.load_model(tmp_path / "model.mle", batch_buckets=None)
    exact.predict_proba(X[:3])
    assert [key[1][0][0] for key in exact.program.compile_seconds] == [3]


def test_tiles_above_max_tile(forest, data, tmp_path):
    X, _ = data
    roundtrip(forest, X, tmp_path)
    m = mle.load_model(tmp_path / "model.mle", max_tile=64)
    assert_close(m.predict_proba(X), forest.predict_proba(X))
    assert max(key[1][0][0] for key in m.program.compile_seconds) == 64


def test_warmup_compiles_ahead(forest, data, tmp_path):
    X, _ = data
    roundtrip(forest, X, tmp_path)
    m = mle.load_model(tmp_path / "model.mle", warmup=[16])
    assert {key[1][0][0] for key in m.program.compile_seconds} == {16}
    assert {key[0] for key in m.program.compile_seconds} == {("label",), ("probabilities",), ("log_probabilities",), ("leaf_index",)}


def test_jax_function_jit_vmap_export(data, tmp_path):
    X, y = data
    model = LogisticRegression(max_iter=300).fit(X, y)
    m = roundtrip(model, X, tmp_path)
    f = m.jax_function("predict_proba")
    assert_close(jax.jit(f)(X), model.predict_proba(X))
    per_row = jax.vmap(lambda row: f(row[None, :])[0])(jnp.asarray(X[:4]))
    assert_close(per_row, model.predict_proba(X[:4]))
    exported = jax.export.export(jax.jit(f))(jax.ShapeDtypeStruct((5, 6), jnp.float32))
    restored = jax.export.deserialize(exported.serialize())
    assert_close(restored.call(X[:5]), model.predict_proba(X[:5]))
    # differentiable: d p(class 0) / dx equals the analytic softmax gradient
    g = jax.grad(lambda x: f(x[None, :])[0, 0])(jnp.asarray(X[0]))
    p = model.predict_proba(X[:1])[0]
    analytic = p[0] * (model.coef_[0] - p @ model.coef_)
    assert_close(g, analytic, tol=1e-4)
    assert_same_labels(np.asarray(jax.jit(m.jax_function())(X)), np.searchsorted(model.classes_, model.predict(X)))


def test_benchmark_report(forest, data, tmp_path):
    X, _ = data
    m = roundtrip(forest, X, tmp_path)
    r = m.benchmark([X[:100]], num_runs=5)
    assert {"mean_time_ms", "p50_ms", "p95_ms", "rows_per_s", "first_call_ms"} <= set(r)
    assert r["batch_size"] == 100 and r["rows_per_s"] > 0 and r["p50_ms"] <= r["p95_ms"]


def test_export_report_and_inspect(forest, data, tmp_path):
    X, _ = data
    report = mle.export_model(forest, tmp_path / "m.mle", sample_input=X[:64], metadata={"owner": "team-a"})
    assert report["file_size_bytes"] == os.path.getsize(tmp_path / "m.mle")
    assert report["export_time_ms"] > 0 and report["compression_ratio"] > 0
    assert report["verification"]["predict"] == {"label_mismatches": 0}
    assert report["verification"]["predict_proba"]["max_abs_error"] < 1e-6
    info = mle.inspect_model(tmp_path / "m.mle")
    assert info["ops"]["TreeEnsemble"] == 1
    assert info["metadata"]["user"] == {"owner": "team-a"}
    assert info["metadata"]["verification"] == report["verification"]
    assert info["metadata"]["source"]["estimator"] == "sklearn.RandomForestClassifier"
    assert sum(t["nbytes"] for t in info["tensors"]) == info["tensor_bytes"]


def test_unsupported_model_lists_supported(tmp_path):
    class Mystery:
        pass

    with pytest.raises(mle.UnsupportedModelError, match="Mystery is not supported.*sklearn.RandomForestClassifier"):
        mle.export_model(Mystery(), tmp_path / "x.mle")


def test_unknown_op_is_a_clean_error(forest, data, tmp_path):
    from mlejax.format import read_mle, write_mle

    X, _ = data
    roundtrip(forest, X, tmp_path)
    with read_mle(tmp_path / "model.mle") as f:
        graph, meta, tensors = f.graph, f.metadata, {k: np.array(v) for k, v in f.tensors.items()}
    graph["nodes"][0]["op"] = "FancyNewOp"
    write_mle(tmp_path / "bad.mle", metadata=meta, graph=graph, tensors=tensors)
    with pytest.raises(mle.UnsupportedModelError, match="unknown op 'FancyNewOp'"):
        mle.load_model(tmp_path / "bad.mle")
    graph["nodes"][0]["op"] = "TreeEnsemble"
    graph["nodes"][0]["version"] = 99
    write_mle(tmp_path / "bad.mle", metadata=meta, graph=graph, tensors=tensors)
    with pytest.raises(mle.UnsupportedModelError, match="version 99 is not supported"):
        mle.load_model(tmp_path / "bad.mle")


def test_loaded_tensors_are_zero_copy_views_of_the_map(forest, data, tmp_path):
    X, _ = data
    m = roundtrip(forest, X, tmp_path)
    arr = next(iter(m._file.tensors.values()))
    base = arr
    while getattr(base, "base", None) is not None and not isinstance(base, (bytes, memoryview)):
        base = base.base
    assert not arr.flags.writeable
    assert isinstance(base, memoryview) or "mmap" in type(getattr(base, "obj", base)).__name__


_ISOLATION = textwrap.dedent(
    """
    import json, pickle, sys
    def refuse(*a, **k):
        raise AssertionError("unpickling during load")
    # numpy and jax import the pickle module; we show it is never used to load or run a model
    pickle.load = pickle.loads = pickle.Unpickler = refuse
    import numpy as np
    import mlejax as mle
    m = mle.load_model(sys.argv[1])
    p = m.predict_proba(np.load(sys.argv[2]))
    print(json.dumps({"modules": sorted(sys.modules), "shape": list(p.shape)}))
    """
)


def test_load_and_predict_import_no_framework(forest, data, tmp_path):
    X, _ = data
    roundtrip(forest, X, tmp_path)
    np.save(tmp_path / "X.npy", X[:10])
    out = subprocess.run(
        [sys.executable, "-c", _ISOLATION, str(tmp_path / "model.mle"), str(tmp_path / "X.npy")],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    roots = {name.split(".")[0] for name in result["modules"]}
    banned = {"sklearn", "torch", "tensorflow", "keras", "xgboost", "lightgbm", "catboost", "joblib", "dill", "flax", "pandas"}
    assert not roots & banned, roots & banned
    assert result["shape"] == [10, 3]


_SECOND_PROCESS = textwrap.dedent(
    """
    import json, sys, time
    import jax, numpy as np, mlejax as mle
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None)
    m = mle.load_model(sys.argv[1])
    X = np.load(sys.argv[2])
    m.predict_proba(X)
    print(json.dumps({"cache_hits": len(hits)}))
    """
)


def test_persistent_cache_serves_a_second_process(forest, data, tmp_path):
    X, _ = data
    roundtrip(forest, X, tmp_path)
    np.save(tmp_path / "X.npy", X)
    env = dict(os.environ, MLEJAX_CACHE_DIR=str(tmp_path / "xla"))
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", _SECOND_PROCESS, str(tmp_path / "model.mle"), str(tmp_path / "X.npy")],
            capture_output=True, text=True, check=True, env=env, cwd=tmp_path,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1])["cache_hits"])
    assert any((tmp_path / "xla").iterdir()), "nothing was written to the persistent cache"
    assert runs == [0, 1], f"cache hits per process: {runs} (the second process should read the first's program)"
    subprocess.run(
        [sys.executable, "-c", _SECOND_PROCESS, str(tmp_path / "model.mle"), str(tmp_path / "X.npy")],
        capture_output=True, text=True, check=True, cwd=tmp_path,
        env=dict(env, MLEJAX_COMPILATION_CACHE="0", MLEJAX_CACHE_DIR=str(tmp_path / "off")),
    )
    assert not (tmp_path / "off").exists()


def test_repeated_calls_reuse_the_executable(forest, data, tmp_path):
    """The call fast path: one compile per bucket, padded and exact batches give the native results."""
    X, _ = data
    m = roundtrip(forest, X, tmp_path)
    for _ in range(3):
        for n in (1, 3, 4, 100):
            assert_close(m.predict_proba(X[:n]), forest.predict_proba(X[:n]))
    assert sorted(key[1][0][0] for key in m.program.compile_seconds) == [1, 4, 128]
    out = m.predict_proba(X[:3])
    assert out.shape == (3, 3)


def test_small_batches_compile_serial_on_cpu(forest, data, tmp_path):
    """Tiny batches compile without XLA's parallel task assignment (its thread hand-offs cost more than the work)."""
    from mlejax.lowering.program import SERIAL_MAX_ROWS

    X, _ = data
    m = roundtrip(forest, X, tmp_path)
    if m.program.device.platform != "cpu":
        pytest.skip("CPU only")
    assert m.program._compile_kwargs([(1, 6)]) == {"compiler_options": {"xla_disable_hlo_passes": "cpu-parallel-task-assigner"}}
    assert m.program._compile_kwargs([(SERIAL_MAX_ROWS * 2, 6)]) == {}
    assert_close(m.predict_proba(X[:1]), forest.predict_proba(X[:1]))


_DISPATCH = textwrap.dedent(
    """
    import json
    import mlejax
    mlejax.load_model  # imports the runtime (import mlejax alone imports no JAX)
    from jax._src import xla_bridge
    print(json.dumps({"async": bool(xla_bridge._CPU_ENABLE_ASYNC_DISPATCH.value)}))
    """
)


@pytest.mark.parametrize("env, expected", [({}, False), ({"MLEJAX_CPU_ASYNC_DISPATCH": "1"}, True),
                                           ({"JAX_CPU_ENABLE_ASYNC_DISPATCH": "1"}, True)])
def test_cpu_dispatch_is_synchronous_unless_asked(tmp_path, env, expected):
    """Importing mlejax's runtime turns JAX's CPU async dispatch off (before JAX's backend starts) unless told not to."""
    base = {k: v for k, v in os.environ.items() if k not in ("MLEJAX_CPU_ASYNC_DISPATCH", "JAX_CPU_ENABLE_ASYNC_DISPATCH")}
    out = subprocess.run([sys.executable, "-c", _DISPATCH], capture_output=True, text=True, check=True,
                         env={**base, **env}, cwd=tmp_path)
    assert json.loads(out.stdout.strip().splitlines()[-1])["async"] is expected

"""mlejax.score and mle-score: sources, sinks, output names, key columns, order, errors; parity with native models."""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pacsv = pytest.importorskip("pyarrow.csv")
pd = pytest.importorskip("pandas")
pytest.importorskip("tqdm")

from helpers import assert_close, assert_same_labels  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402

import mlejax as mle  # noqa: E402
from mlejax.batch.cli import main as cli_main  # noqa: E402

FEATURES = [f"f{i}" for i in range(6)]
N = 1000


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(N, 6, n_informative=4, n_classes=3, random_state=0)
    frame = pd.DataFrame(X.astype(np.float32), columns=FEATURES)
    return frame, y


@pytest.fixture(scope="module")
def forest(data, tmp_path_factory):
    """A RandomForest fitted on a DataFrame (so it has feature names), exported and loaded."""
    frame, y = data
    model = RandomForestClassifier(8, max_depth=5, random_state=0).fit(frame, y)
    path = tmp_path_factory.mktemp("forest") / "rf.mle"
    mle.export_model(model, path, sample_input=frame[:32])
    return model, mle.load_model(path), path


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    """The rows with an ``id`` key and a text column, as Parquet (3 files, small row groups), CSV, Feather and .npy."""
    frame, _ = data
    root = tmp_path_factory.mktemp("inputs")
    table = pa.Table.from_pandas(frame.assign(id=np.arange(N) * 10, note="x"), preserve_index=False)
    (root / "dir").mkdir()
    for i, (a, b) in enumerate([(0, 400), (400, 700), (700, N)]):
        pq.write_table(table.slice(a, b - a), root / "dir" / f"part-{i}.parquet", row_group_size=150)
    pq.write_table(table, root / "all.parquet", row_group_size=333)
    frame.assign(id=np.arange(N) * 10).to_csv(root / "all.csv", index=False)
    import pyarrow.feather as feather

    feather.write_feather(table, root / "all.feather", chunksize=300)
    np.save(root / "all.npy", frame.to_numpy())
    return root


def proba_of(table, classes):
    return np.stack([table[f"proba_{c}"].to_numpy() for c in classes], axis=1)


def test_parquet_to_parquet_matches_native_in_order(forest, data, files, tmp_path):
    native, model, _ = forest
    frame, _ = data
    out = tmp_path / "scores.parquet"
    report = mle.score(model, files / "all.parquet", out, keep=["id"], batch_rows=128, progress=False)
    table = pq.read_table(out)
    assert table.column_names == ["id", "proba_0", "proba_1", "proba_2"]
    assert report.rows == N and report.batches == -(-N // 128) and report.output == str(out)
    np.testing.assert_array_equal(table["id"].to_numpy(), np.arange(N) * 10)
    ours = proba_of(table, model.classes_)
    assert_close(ours, native.predict_proba(frame), what="score vs native")
    assert_close(ours, model.predict_proba(frame), tol=1e-7, what="score vs Model.predict_proba")
    assert set(report.stages) == {"read", "host_to_device", "compute", "device_to_host", "write"}
    assert report.peak_rss_bytes > 0 and report.devices == ["cpu:0"] and report.rows_per_s > 0


@pytest.mark.parametrize("kind", ["dir", "glob", "csv", "feather", "npy", "pandas", "polars", "table", "batches"])
def test_sources(kind, forest, data, files):
    native, model, _ = forest
    frame, _ = data
    source = {
        "dir": files / "dir",
        "glob": str(files / "dir" / "part-*.parquet"),
        "csv": files / "all.csv",
        "feather": files / "all.feather",
        "npy": files / "all.npy",
        "pandas": frame.assign(note="x"),
        "table": pa.Table.from_pandas(frame, preserve_index=False),
        "batches": iter(pa.Table.from_pandas(frame, preserve_index=False).to_batches(max_chunksize=77)),
    }.get(kind)
    if kind == "polars":
        pl = pytest.importorskip("polars")
        source = pl.from_pandas(frame)
    report = mle.score(model, source, method="predict", batch_rows=200, progress=False)
    assert report.rows == N
    assert_same_labels(report.output["label"].to_numpy(), native.predict(frame), what=kind)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".npy", ".arrow"])
def test_sinks(suffix, forest, data, files, tmp_path):
    native, model, _ = forest
    frame, _ = data
    out = tmp_path / f"scores{suffix}"
    mle.score(model, files / "all.parquet", out, batch_rows=300, progress=False)
    if suffix == ".npy":
        ours = np.load(out)
    else:
        reader = {".parquet": pq.read_table, ".csv": pacsv.read_csv, ".arrow": lambda p: pa.ipc.open_file(p).read_all()}
        ours = proba_of(reader[suffix](out), model.classes_)
    assert_close(ours, native.predict_proba(frame), what=suffix)
    assert os.listdir(tmp_path) == [out.name], "no temporary file is left behind"


def test_output_names_follow_the_method(tmp_path):
    X, y = make_classification(300, 5, n_informative=3, n_classes=3, random_state=1)
    labels = np.array(["ant", "bee", "cat"])[y]
    X = X.astype(np.float32)
    clf = LogisticRegression(max_iter=500).fit(X, labels)
    mle.export_model(clf, tmp_path / "lr.mle", sample_input=X[:16])
    model = mle.load_model(tmp_path / "lr.mle")
    out = mle.score(model, X, progress=False).output
    assert out.column_names == ["proba_ant", "proba_bee", "proba_cat"]
    assert_close(np.stack([c.to_numpy() for c in out.columns], 1), clf.predict_proba(X))
    keyed = pa.table({"id": np.arange(300), **{f"c{j}": X[:, j] for j in range(5)}})  # no feature names: numeric columns but keep
    out = mle.score(model, keyed, keep=["id"], progress=False).output
    assert out.column_names == ["id", "proba_ant", "proba_bee", "proba_cat"]
    assert_close(np.stack([c.to_numpy() for c in out.columns[1:]], 1), clf.predict_proba(X))
    out = mle.score(model, X, method="predict", progress=False).output
    assert out.column_names == ["label"] and out.schema.field("label").type == pa.string()
    assert_same_labels(out["label"].to_numpy(zero_copy_only=False), clf.predict(X))
    out = mle.score(model, X, method="decision_function", progress=False).output
    assert out.column_names == ["decision_0", "decision_1", "decision_2"]
    assert_close(np.stack([c.to_numpy() for c in out.columns], 1), clf.decision_function(X))

    binary = LogisticRegression().fit(X, y == 1)
    mle.export_model(binary, tmp_path / "bin.mle", sample_input=X[:16])
    out = mle.score(tmp_path / "bin.mle", X, method="decision_function", progress=False).output
    assert out.column_names == ["decision"]
    assert_close(out["decision"].to_numpy(), binary.decision_function(X))

    Xr, yr = make_regression(300, 5, n_targets=2, random_state=0)
    Xr = Xr.astype(np.float32)
    for targets, names in [(yr[:, 0], ["output"]), (yr, ["output_0", "output_1"])]:
        reg = Ridge().fit(Xr, targets)
        mle.export_model(reg, tmp_path / "reg.mle", sample_input=Xr[:16])
        out = mle.score(tmp_path / "reg.mle", Xr, progress=False).output
        assert out.column_names == names
        assert_close(np.stack([c.to_numpy() for c in out.columns], 1).squeeze(), reg.predict(Xr), tol=1e-4)

    pca = PCA(3).fit(Xr)
    mle.export_model(pca, tmp_path / "pca.mle", sample_input=Xr[:16])
    out = mle.score(tmp_path / "pca.mle", Xr, progress=False).output
    assert out.column_names == ["transform_0", "transform_1", "transform_2"]
    assert_close(np.stack([c.to_numpy() for c in out.columns], 1), pca.transform(Xr), tol=1e-4)


def test_nulls_become_nan(tmp_path):
    X, y = make_classification(400, 4, random_state=2)
    X[::7, 1] = np.nan
    hgb = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    mle.export_model(hgb, tmp_path / "hgb.mle", sample_input=X[:16])
    columns = {f"c{j}": pa.array(X[:, j], from_pandas=True) for j in range(4)}  # NaN -> null
    table = pa.table(columns)
    assert table["c1"].null_count > 0
    out = mle.score(tmp_path / "hgb.mle", table, method="predict", progress=False).output
    assert_same_labels(out["label"].to_numpy(), hgb.predict(X))


def test_nulls_where_the_model_refuses_nan_name_the_column_and_count(tmp_path):
    """StandardScaler + LogisticRegression refuses NaN in scikit-learn; a null there is an InputError, not a silent label."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(300, 4, random_state=3)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    mle.export_model(model, tmp_path / "lr.mle", sample_input=X[:16])
    bad = X.copy()
    bad[[5, 9, 11], 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad)
    table = pa.table({f"c{j}": pa.array(bad[:, j], from_pandas=True) for j in range(4)})
    with pytest.raises(mle.InputError, match=r"NaN.*X\[:, 2\] \(3 values\)"):
        mle.score(tmp_path / "lr.mle", table, progress=False)


def test_column_transformer_selecting_by_name(tmp_path):
    """Columns picked by name from the file feed a ColumnTransformer that selects by name (no DataFrame needed)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(300, 4, random_state=4)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    ct = ColumnTransformer([("scale", StandardScaler(), ["b", "d"])], remainder="passthrough")
    model = make_pipeline(ct, LogisticRegression()).fit(frame, y)
    mle.export_model(model, tmp_path / "ct.mle", sample_input=frame[:16])
    shuffled = frame[["d", "c", "b", "a"]].assign(id=np.arange(300))
    out = mle.score(tmp_path / "ct.mle", shuffled, keep=["id"], progress=False).output
    assert_close(proba_of(out, model.classes_), model.predict_proba(frame))
    assert out["id"].to_pylist() == list(range(300))


def test_empty_input_gives_an_empty_output_with_the_schema(forest, data, tmp_path):
    _, model, _ = forest
    frame, _ = data
    empty = pa.Table.from_pandas(frame.assign(id=np.arange(N)), preserve_index=False).slice(0, 0)
    report = mle.score(model, empty, tmp_path / "e.parquet", keep=["id"], progress=False)
    table = pq.read_table(tmp_path / "e.parquet")
    assert report.rows == 0 and table.num_rows == 0
    assert table.schema.names == ["id", "proba_0", "proba_1", "proba_2"] and table.schema.field("proba_0").type == pa.float32()


def test_missing_column_is_named_before_any_row_is_read(forest, data):
    _, model, _ = forest
    frame, _ = data

    def batches():
        yield pa.RecordBatch.from_pandas(frame.drop(columns=["f3"]), preserve_index=False)
        raise AssertionError("rows were read")

    with pytest.raises(mle.InputError, match="'f3'"):
        mle.score(model, batches(), progress=False)
    with pytest.raises(mle.InputError, match="'nope'"):
        mle.score(model, frame, keep=["nope"], progress=False)


def test_non_numeric_column_names_column_file_and_row_group(forest, data, tmp_path):
    _, model, _ = forest
    frame, _ = data
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in" / "a.parquet", row_group_size=500)
    bad = frame.astype({"f2": str})
    bad.loc[300:, "f2"] = "oops"
    pq.write_table(pa.Table.from_pandas(bad, preserve_index=False), tmp_path / "in" / "b.parquet", row_group_size=200)
    out = tmp_path / "out.parquet"
    with pytest.raises(mle.InputError) as err:
        mle.score(model, tmp_path / "in", out, batch_rows=100, progress=False)
    message = str(err.value)
    assert "b.parquet, row group 0" in message and "'f2'" in message and "string" in message
    assert not out.exists() and os.listdir(tmp_path) == ["in"], "no partial output, no temporary file"


def test_existing_output_is_refused_unless_overwrite(forest, data, tmp_path):
    _, model, _ = forest
    frame, _ = data
    out = tmp_path / "o.parquet"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        mle.score(model, frame, out, progress=False)
    assert out.read_bytes() == b"precious"
    mle.score(model, frame, out, overwrite=True, progress=False)
    assert pq.read_table(out).num_rows == N


def test_interrupt_stops_every_thread_and_leaves_no_file(forest, data, tmp_path):
    _, model, _ = forest
    frame, _ = data
    table = pa.Table.from_pandas(frame, preserve_index=False)

    def batches():
        yield from table.to_batches(max_chunksize=100)[:3]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mle.score(model, batches(), tmp_path / "o.parquet", batch_rows=100, progress=False)
    assert not [t for t in threading.enumerate() if t.name.startswith("mlejax-score")]
    assert os.listdir(tmp_path) == []


def test_cli(forest, data, files, tmp_path, capsys):
    native, _, path = forest
    frame, _ = data
    out = tmp_path / "labels.csv"
    argv = [str(path), str(files / "all.parquet"), "-o", str(out), "--method", "predict", "--keep", "id", "--batch-rows", "256"]
    assert cli_main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"scored {N:,} rows in") and captured.out.count("\n") == 1
    assert captured.err == "", "no progress bar when stderr is not a terminal"
    table = pacsv.read_csv(out)
    assert_same_labels(table["label"].to_numpy(), native.predict(frame))
    assert cli_main(argv) == 1 and "exists" in capsys.readouterr().err
    assert cli_main([*argv, "--overwrite", "--json", "--no-progress", "--device", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == N and report["output"] == str(out) and report["output_columns"] == ["label"]
    assert report["devices"] == ["cpu:0"] and set(report["stages"]) == {"read", "host_to_device", "compute", "device_to_host", "write"}


def test_import_mlejax_imports_no_batch_dependency(tmp_path):
    code = ("import sys, mlejax; mods = [m for m in ('pyarrow', 'pandas', 'ray', 'dask', 'pyspark', 'tqdm', 'polars') if m in sys.modules]; "
            "assert not mods, mods; assert callable(mlejax.score)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, cwd=tmp_path)

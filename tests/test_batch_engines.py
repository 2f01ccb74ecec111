"""Ray Data, Dask and Spark adapters: the same columns, names and values as the native model.

Each engine's tests skip only when the engine is not installed. Ray runs one
local cluster (2 CPUs, 127.0.0.1) for the whole session; Spark is marked slow
(JVM start-up), run it with ``pytest -m slow tests/test_batch_engines.py``.
"""

import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

from helpers import assert_close, assert_same_labels  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402

import mlejax as mle  # noqa: E402

FEATURES = [f"f{i}" for i in range(5)]
N = 600


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    X, y = make_classification(N, 5, n_informative=3, n_classes=3, random_state=3)
    frame = pd.DataFrame(X.astype(np.float32), columns=FEATURES)
    native = RandomForestClassifier(6, max_depth=4, random_state=0).fit(frame, np.array(["a", "b", "c"])[y])
    path = tmp_path_factory.mktemp("engines") / "rf.mle"
    mle.export_model(native, path, sample_input=frame[:32])
    return native, str(path), frame.assign(id=np.arange(N), text="t")


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One local Ray for the session, on loopback only.

    Ray's workers start in the driver's working directory and put it on their
    path: from the repository root they would import the source tree's
    ``mlejax/`` (which lacks the mapped ``mlejax.format``) instead of the
    installed package, so the cluster starts from an empty directory.
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes every Ray process (workers
    inherit the environment) use the loopback address as its own.
    """
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    mp.chdir(tmp_path_factory.mktemp("ray-cwd"))
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
    mp.undo()


def check(out: "pd.DataFrame", native, frame, method: str) -> None:
    np.testing.assert_array_equal(np.sort(out["id"].to_numpy()), np.arange(N))
    out = out.sort_values("id")
    if method == "predict":
        assert list(out.columns) == ["id", "label"]
        assert_same_labels(out["label"].to_numpy(dtype=object), native.predict(frame[FEATURES]).astype(object))
    else:
        assert list(out.columns) == ["id", "proba_a", "proba_b", "proba_c"]
        assert_close(out[["proba_a", "proba_b", "proba_c"]].to_numpy(), native.predict_proba(frame[FEATURES]))


@pytest.mark.xdist_group("ray")  # one xdist worker runs every Ray test, so one cluster starts
@pytest.mark.parametrize("batch_format", ["pyarrow", "pandas", "numpy"])
def test_ray_predictor(ray_cluster, case, batch_format):
    import ray.data

    import mlejax.ray

    native, path, frame = case
    ds = ray.data.from_arrow(pa.Table.from_pandas(frame, preserve_index=False)).repartition(3)
    scored = ds.map_batches(mlejax.ray.Predictor, fn_constructor_kwargs={"model": path, "keep": ["id"]}, batch_format=batch_format,
                            batch_size=128, compute=ray.data.ActorPoolStrategy(size=1))
    check(scored.to_pandas(), native, frame, "predict_proba")


@pytest.mark.xdist_group("ray")
def test_ray_score(ray_cluster, case):
    import ray.data

    import mlejax.ray

    native, path, frame = case
    scored = mlejax.ray.score(ray.data.from_arrow(pa.Table.from_pandas(frame, preserve_index=False)), path, method="predict", keep=["id"], batch_size=200)
    check(scored.to_pandas(), native, frame, "predict")


@pytest.mark.parametrize("given", ["path", "model"])
def test_dask(case, given):
    dd = pytest.importorskip("dask.dataframe")
    import dask

    import mlejax.dask

    native, path, frame = case
    ddf = dd.from_pandas(frame, npartitions=4)
    model = path if given == "path" else mle.load_model(path)
    scored = mlejax.dask.score(ddf, model, keep=["id"])
    assert list(scored.columns) == ["id", "proba_a", "proba_b", "proba_c"] and scored.npartitions == 4
    with dask.config.set(scheduler="threads" if given == "path" else "synchronous"):
        check(scored.compute(), native, frame, "predict_proba")
    labels = mlejax.dask.score(ddf, model, method="predict", keep=["id"]).compute(scheduler="synchronous")
    check(labels, native, frame, "predict")


@pytest.mark.slow
def test_spark(case, monkeypatch):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter (and its packages)
    from pyspark.sql import SparkSession

    import mlejax.spark

    native, path, frame = case
    spark = (SparkSession.builder.master("local[1]").appName("mlejax-test").config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1").config("spark.sql.shuffle.partitions", "1").getOrCreate())
    try:
        df = spark.createDataFrame(frame.drop(columns=["text"]))
        for method in ("predict_proba", "predict"):
            udf = mlejax.spark.predict_batch_udf(path, method=method, batch_size=256)
            out = df.withColumn("p", udf(*FEATURES)).select("id", "p.*").toPandas()
            check(out, native, frame, method)
    finally:
        spark.stop()

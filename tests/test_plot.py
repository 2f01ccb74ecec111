"""Plots of the reports (Agg backend): what is drawn is the report's own data; matplotlib is imported only on demand."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlejax as mle

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(X, classifier, path, export report) of a 3-class logistic regression."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    path = tmp_path_factory.mktemp("plot") / "lr.mle"
    report = mle.export_model(clf, path, sample_input=X[:64], progress=False)
    yield X, clf, path, report
    plt.close("all")


def test_export_report_is_a_typed_mapping(exported):
    X, clf, path, report = exported
    assert isinstance(report, dict) and report["file_size_bytes"] == report.file_size_bytes == path.stat().st_size
    assert report.methods == sorted(report["methods"]) and "predict_proba" in report.methods
    assert report.estimator == "sklearn.LogisticRegression" and report.encrypted is False
    assert json.loads(json.dumps(report))["path"] == str(path)  # still plain data
    assert "samples" not in report  # kept beside the mapping, not in it
    with pytest.raises(AttributeError, match="no 'path'"):
        mle.ExportReport().path  # noqa: B018
    native = clf.predict_proba(X[:64].astype(np.float64)).ravel()
    ref, ours = report.samples["predict_proba"]
    np.testing.assert_array_equal(ref, native)  # the source model's own values
    assert np.max(np.abs(ours - native)) == pytest.approx(report.verification["predict_proba"]["max_abs_error"])


def test_parity_plot_draws_the_check(exported):
    X, clf, path, report = exported
    fig = report.plot("predict_proba")
    (ax,) = fig.axes
    points = ax.collections[0].get_offsets()
    ref, ours = report.samples["predict_proba"]
    np.testing.assert_array_equal(points[:, 0], ref)
    np.testing.assert_array_equal(points[:, 1], ours)
    assert f"{report.verification['predict_proba']['max_abs_error']:.2g}" in ax.get_title()
    assert len(report.plot().axes) == len(report.samples)  # one panel per checked method
    with pytest.raises(ValueError, match="checked"):
        report.plot("predict")  # labels are counted, not plotted
    with pytest.raises(ValueError, match="sample_input"):
        mle.export_model(clf, path.with_name("nosample.mle"), progress=False).plot()


def test_inspect_plot_draws_tensor_bytes_and_op_counts(exported):
    _, _, path, _ = exported
    info = mle.inspect_model(path)
    left, right = info.plot(top=2).axes
    by_size = sorted(info["tensors"], key=lambda t: -t["nbytes"])
    drawn = {t.get_text(): b.get_width() for t, b in zip(left.get_yticklabels(), left.patches)}
    expected = {t["name"]: t["nbytes"] for t in by_size[:2]}
    if len(by_size) > 2:
        expected[f"{len(by_size) - 2} others"] = sum(t["nbytes"] for t in by_size[2:])
    assert drawn == expected
    ops = {t.get_text(): b.get_width() for t, b in zip(right.get_yticklabels(), right.patches)}
    assert ops == info["ops"]


def test_benchmark_report_plot_draws_latency_and_throughput(exported):
    X, clf, path, _ = exported
    report = mle.benchmark(path, X, batch_sizes=(1, 8, 32), peers={"sklearn": clf.predict_proba}, method="predict_proba",
                           num_runs=3, warmup=1, progress=False)
    assert report.runners == ["mlejax", "sklearn"] and report.batch_sizes == [1, 8, 32]
    for r in report.rows:  # rows/s is the batch over the median time
        assert r["rows_per_s"] == pytest.approx(r["batch_size"] / (r["p50_ms"] / 1e3))
    left, right = report.plot().axes
    for line, runner in zip(left.get_lines(), report.runners):
        assert line.get_label() == runner
        assert dict(zip(line.get_xdata(), line.get_ydata())) == report.latency(runner)
    heights = {t.get_text(): b.get_height() for t, b in zip(right.get_xticklabels(), right.patches)}
    assert heights == report.throughput(32)
    html = report._repr_mimebundle_()["text/html"]
    assert "sklearn" in html and "<script" not in html


def test_matplotlib_is_imported_only_for_a_plot(exported, tmp_path):
    path = exported[2]
    code = ("import sys, mlejax as mle, mlejax.plot; info = mle.inspect_model(sys.argv[1]);"
            "assert 'matplotlib' not in sys.modules, 'imported early';"
            "import matplotlib; matplotlib.use('Agg'); info.plot(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_mle_benchmark_batch_sizes_and_plot(exported, tmp_path, capsys):
    from mlejax.cli import benchmark_main

    X, _, path, _ = exported
    np.save(tmp_path / "X.npy", X)
    png = tmp_path / "bench.png"
    assert benchmark_main([str(path), str(tmp_path / "X.npy"), "--batch-sizes", "1,16", "--runs", "2", "--json",
                           "--plot", str(png), "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["runner"], r["batch_size"]) for r in rows] == [("mlejax", 1), ("mlejax", 16)]
    assert png.stat().st_size > 5000
    assert benchmark_main([str(path), str(tmp_path / "X.npy"), "--plot", str(png)]) == 1  # --plot needs --batch-sizes
    assert "--plot needs --batch-sizes" in capsys.readouterr().err

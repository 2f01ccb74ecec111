"""Rich display in Jupyter: ``_repr_mimebundle_`` of Model, inspect and export reports, ScoreReport and the registry."""

from __future__ import annotations

import html.parser
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

import mlejax as mle
from mlejax.batch.report import STAGES, ScoreReport
from mlejax.export import ExportReport
from mlejax.format import read_mle, write_mle
from mlejax.registry import ModelRegistry

LABELS = np.array(["bronze", "silver", "gold"], dtype=object)
#: What an attacker puts in a crafted file's metadata; it must show as text.
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
#: Every tag and attribute the renderer writes: anything else came from a value that was not escaped.
TAGS = {"div", "span", "b", "code", "table", "thead", "tbody", "tr", "th", "td", "details", "summary"}
ATTRS = {"style", "class", "open"}


class _Markup(html.parser.HTMLParser):
    """Collects the tags and attributes of an HTML fragment and checks that it is balanced."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs |= {name for name, _ in attrs}
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def check_markup(text: str) -> None:
    """Only the renderer's own tags and attributes, balanced, with no script, link or external asset."""
    parser = _Markup()
    parser.feed(text)
    parser.close()
    assert not parser.stack, f"unclosed tags {parser.stack}"
    assert parser.tags <= TAGS, parser.tags - TAGS
    assert parser.attrs <= ATTRS, parser.attrs - ATTRS
    for bad in ("<script", "<img", "<style", "<link", "url(", "http"):
        assert bad not in text


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    """(X, path, export report) of a small forest with string labels, exported with a parity check."""
    rng = np.random.default_rng(0)
    X = rng.random((300, 5), dtype=np.float32)
    y = LABELS[(X[:, 0] * 3).astype(int)]
    path = tmp_path_factory.mktemp("display") / "forest.mle"
    report = mle.export_model(RandomForestClassifier(12, max_depth=4, random_state=0).fit(X, y), path, sample_input=X[:64])
    return X, path, report


def bundle(obj, **kw) -> dict[str, str]:
    out = obj._repr_mimebundle_(**kw)
    assert set(out) <= {"text/plain", "text/html"}
    return out


def test_model_bundle_describes_the_model(forest):
    X, path, _ = forest
    m = mle.load_model(path)
    out = bundle(m)
    assert set(out) == {"text/plain", "text/html"}
    assert out["text/plain"] == repr(m)
    page = out["text/html"]
    check_markup(page)
    for fact in ("sklearn.RandomForestClassifier", "predict_proba", "predict_log_proba", "apply",  # source, methods
                 "[batch, 5]", "float32",  # input schema
                 "probabilities", "leaf_index",  # outputs
                 "3: bronze, gold, silver",  # classes
                 "12 trees", "depth ≤ 4", "TreeEnsemble ×1",  # tree summary, op counts
                 "unsigned", "none (memory-mapped)", "cpu",  # file and runtime state
                 "on 64 sample rows", "exact"):  # parity recorded at export
        assert fact in page, fact
    assert "nothing yet" in page
    m.predict_proba(X[:100])
    after = bundle(m)["text/html"]
    assert "nothing yet" not in after and "probabilities" in after and ">128<" in after  # the 128-row bucket


def test_mimebundle_include_exclude(forest):
    m = mle.load_model(forest[1])
    assert set(bundle(m, include=["text/plain"])) == {"text/plain"}
    assert set(bundle(m, exclude=["text/plain"])) == {"text/html"}
    assert bundle(m, include=["image/png"]) == {}


def test_crafted_metadata_is_escaped(forest, tmp_path):
    """A file whose estimator name, labels, feature names and user metadata carry HTML shows them as text."""
    _, path, _ = forest
    with read_mle(path) as f:
        meta = dict(f.metadata)
        meta["source"] = {**meta["source"], "estimator": HOSTILE, "framework": HOSTILE}
        meta["classes"] = {"dtype": "|O", "values": [HOSTILE, "b", "c"]}
        meta["created"] = HOSTILE
        graph = dict(f.graph)
        graph["inputs"] = [dict(graph["inputs"][0], feature_names=[HOSTILE, "b", "c", "d", "e"])]
        crafted = tmp_path / "crafted.mle"
        write_mle(crafted, metadata=meta, graph=graph, tensors={k: np.array(v) for k, v in f.tensors.items()})
    m = mle.load_model(crafted)
    pages = [bundle(m)["text/html"], bundle(mle.inspect_model(crafted))["text/html"]]
    with ModelRegistry(tmp_path / "reg") as reg:
        mv = reg.register("crafted", crafted, tags={HOSTILE: HOSTILE}, description=HOSTILE)  # names are validated; tags are not
        pages += [bundle(mv)["text/html"], bundle(reg.versions("crafted"))["text/html"]]
    for page in pages:
        check_markup(page)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_inspect_report_is_still_a_dict(forest):
    _, path, _ = forest
    info = mle.inspect_model(path)
    assert isinstance(info, dict) and info["signature"] == "unsigned"
    assert json.loads(json.dumps(info, default=str))["path"] == str(path)
    assert repr(info) == repr(dict(info))  # the plain repr is unchanged
    page = bundle(info)["text/html"]
    check_markup(page)
    for fact in ("forest.mle", "sklearn.RandomForestClassifier", "unsigned", "TreeEnsemble ×1", "tree.roots",
                 "metadata", "sign it with mle-sign", "[batch, 5]"):
        assert fact in page, fact


def test_signed_and_encrypted_state(forest, tmp_path):
    X, path, _ = forest
    public, private = mle.SecurityUtils.generate_keypair()
    signed = tmp_path / "signed.mle"
    mle.SecurityUtils.sign_model(path, private, signed)
    assert "signed (verified)" in bundle(mle.load_model(signed, public_key=public))["text/html"]
    assert "signed (not verified)" in bundle(mle.inspect_model(signed))["text/html"]
    key = bytes(range(32))
    encrypted = tmp_path / "encrypted.mle"
    model = RandomForestClassifier(3, max_depth=2, random_state=0).fit(X, (X[:, 0] > 0.5).astype(int))
    mle.export_model(model, encrypted, encrypt_key=key, compression="zstd")
    page = bundle(mle.load_model(encrypted, key=key))["text/html"]
    assert "AES-256-GCM" in page and "zstd" in page


def test_export_report_parity_per_method(forest):
    _, path, report = forest
    assert isinstance(report, ExportReport) and isinstance(report, dict)
    page = bundle(report)["text/html"]
    check_markup(page)
    for fact in ("sklearn.RandomForestClassifier", str(path), "predict_proba", "label mismatches", "on 64 sample rows"):
        assert fact in page, fact
    assert "over bound" not in page
    bad = ExportReport(report, verification={"rows": 8, "predict": {"label_mismatches": 2},
                                             "predict_proba": {"max_abs_error": 0.5, "max_rel_error": 0.25}})
    assert bundle(bad)["text/html"].count("over bound") == 2
    unchecked = bundle(ExportReport(report, verification=None))["text/html"]
    assert "not checked" in unchecked


def test_score_report():
    report = ScoreReport(rows=12345, seconds=0.5, stages=dict(zip(STAGES, (0.1, 0.02, 0.3, 0.01, 0.05))), peak_rss_bytes=300 * 2**20,
                         devices=["cpu:0"], method="predict_proba", columns=["a", "b"], output_columns=["proba_x", "proba_y"],
                         batch_rows=4096, batches=4, output="/data/scores.parquet")
    out = bundle(report)
    assert out["text/plain"] == repr(report)
    check_markup(out["text/html"])
    for fact in ("12,345 in 4 batches", "24,690 rows/s", "cpu:0", "300 MiB", "proba_x", "/data/scores.parquet", *STAGES, "0.300"):
        assert fact in out["text/html"], fact


def test_registry_version_and_listings(forest, tmp_path):
    _, path, _ = forest
    with ModelRegistry(tmp_path / "reg") as reg:
        v1 = reg.register("churn", path, tags={"team": "risk"}, description="first")
        reg.set_alias("churn", "prod", v1.version)
        mv = reg.get("churn")
        page = bundle(mv)["text/html"]
        check_markup(page)
        for fact in ("churn:1", "registry://churn:1", "prod", "team=risk", "first", mv.sha256, "sklearn.RandomForestClassifier",
                     "bronze"):
            assert fact in page, fact
        versions, models, found = reg.versions("churn"), reg.list_models(), reg.search(tags={"team": "risk"})
    assert isinstance(versions, list) and versions == [mv] and found == [mv]
    assert json.loads(json.dumps(models))[0]["name"] == "churn"  # still a plain JSON-able list
    assert repr(models) == repr(list(models))
    for listing, facts in ((versions, ("1 version", "registry://churn:1", "prod")), (models, ("1 model", "churn", "prod→1"))):
        page = bundle(listing)["text/html"]
        check_markup(page)
        for fact in facts:
            assert fact in page, fact


def test_display_imports_no_notebook_stack(forest):
    """Rendering a model's HTML imports neither IPython, matplotlib nor pandas."""
    code = ("import sys, mlejax; m = mlejax.load_model(sys.argv[1]); m._repr_mimebundle_(); "
            "print([k for k in ('IPython', 'matplotlib', 'pandas') if k in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(forest[1])], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
